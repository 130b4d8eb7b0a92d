"""A real database on the real nodes, moved by mover pods: PostgreSQL 15 (the machine's Debian
packages, packed into an image by scripts/testenv/images/app-image postgres) runs as a
StatefulSet on the source cluster's real node with a claim of the real local-path-provisioner,
rows are written through exec, the database is quiesced through the runner's exec client
(k8s_exec: CHECKPOINT, no writer during the copy), its claim is backed up by a mover pod
(mover_launch = pod) and restored into the target cluster under another namespace and class;
the same StatefulSet started there finds the data, and a query through exec returns the same
rows.

What this does not yet do (issue 12): the StatefulSet is applied by the test on the target,
not restored by a restore job, and the quiesce is an exec of the test, not a Lua reference
hook of a backup plan.

Run: cd tests/integration && STOWAGE_BUILD=../../build/asan /usr/bin/python3 -m pytest test_real_database.py
"""

import json
import os
import subprocess
import time

import pytest

from conftest import unique
from fixtures_testenv import kubectl
from test_mover_pod import real_claim, vols, mover_image  # noqa: F401 (fixtures)
from test_real_node import needs_real_nodes, k8s_exec  # noqa: F401 (autouse fixture)
from test_volumes import pv_dir, walk

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APP_IMAGE = os.path.join(REPO, "scripts", "testenv", "images", "app-image")
PG_IMAGE = "stowage.test/postgres:15"
START = ("set -e; export PGDATA=/var/lib/postgresql/data/pgdata; "
         "[ -s $PGDATA/PG_VERSION ] || initdb --locale=C -E UTF8 -A trust -U postgres >/dev/null; "
         "exec postgres -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp")


@pytest.fixture(scope="module")
def pg_image(testenv, tmp_path_factory):
    if "SOURCE_REAL_NODE" not in testenv:
        pytest.skip("the test environment has no real nodes")
    tar = str(tmp_path_factory.mktemp("pgimage") / "postgres.tar")
    subprocess.run([APP_IMAGE, "postgres", tar, PG_IMAGE], check=True)
    for c in ("SOURCE", "TARGET"):
        subprocess.run([testenv["CTR"], "--address", testenv[c + "_CONTAINERD_SOCKET"], "--namespace", "k8s.io",
                        "images", "import", tar], check=True, capture_output=True)
    return PG_IMAGE


def statefulset(testenv, ns, storage_class):
    key, _, value = testenv["REAL_NODE_LABEL"].partition("=")
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": ns},
            "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
                         "nodeSelector": {key: value},
                         "tolerations": [{"key": testenv["REAL_NODE_TAINT"], "operator": "Exists",
                                          "effect": "NoSchedule"}],
                         "terminationGracePeriodSeconds": 10,
                         "securityContext": {"runAsUser": 999, "runAsGroup": 999},
                         "containers": [{"name": "postgres", "image": PG_IMAGE, "imagePullPolicy": "Never",
                                         "command": ["sh", "-c", START],
                                         "readinessProbe": {"exec": {"command": ["pg_isready", "-h", "/tmp"]},
                                                            "periodSeconds": 2},
                                         "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}]}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                         "storageClassName": storage_class, "accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}}]}}


def psql(testenv, cluster, ns, *statements):
    """Each statement its own -c: its own transaction (ALTER SYSTEM must not be in one)."""
    args = [a for sql in statements for a in ("-c", sql)]
    r = k8s_exec(testenv, cluster, ns, "db-0", "psql", "-h", "/tmp", "-U", "postgres", "-At", "-v", "ON_ERROR_STOP=1",
                 *args, timeout_ms=60000)
    assert r["rc"] == 0 and r["exit_code"] == 0, r
    return r["out"]


def ready(testenv, cluster, ns, timeout=240):
    kubectl(testenv, cluster, "-n", ns, "rollout", "status", "statefulset/db", f"--timeout={timeout}s")


def test_postgres_backed_up_by_mover_pod_starts_in_the_other_cluster_with_its_rows(vols, testenv, pg_image, tmp_path):  # noqa: F811
    ns, target_ns = unique("pgsrc"), unique("pgdst")
    kubectl(testenv, "source", "create", "namespace", ns)
    kubectl(testenv, "source", "apply", "-f", "-", stdin=json.dumps(statefulset(testenv, ns, "local-path")))
    ready(testenv, "source", ns)
    psql(testenv, "source", ns, "CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL);"
         "INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 5000) g;")
    want = psql(testenv, "source", ns, "SELECT count(*), sum(id), md5(string_agg(item, ',' ORDER BY id)) FROM orders")
    assert want.startswith("5000|12502500|"), want
    # quiesce through the hook's exec client: everything on disk (no writer runs during the
    # copy; a read-only switch by ALTER SYSTEM would be copied too and start read-only there)
    assert psql(testenv, "source", ns, "CHECKPOINT") == "CHECKPOINT\n"
    src = pv_dir(testenv, "source", ns, "data-db-0")
    assert src.startswith(testenv["SOURCE_LOCAL_PATH_DIR"] + "/"), src

    job = vols.new_job("backup")
    res = vols.run("source", job, "backup", unique("bk"), ns, json.dumps({f"{ns}/data-db-0": "filesystem"}))
    [volume] = json.loads(res.stdout)
    assert volume["node"] == testenv["SOURCE_REAL_NODE"] and volume["files"] > 500, volume
    # the source goes on; what it writes now is not in the backup
    psql(testenv, "source", ns, "INSERT INTO orders VALUES (5001, 'after the backup')")

    # the other cluster: a claim of its class on its real node, the data restored into it, then
    # the same StatefulSet, whose pod takes the claim data-db-0 as it is
    dst = real_claim(testenv, "target", target_ns, "data-db-0")
    rjob, _ = vols.restore("target", [dict(volume, storage_class=testenv["TARGET_STORAGE_CLASS"])],
                           {ns: target_ns}, tmp_path)
    assert vols.job_row(rjob)[:3] == ("volumes", 1, 1)
    pg_version = os.path.join(dst, "pgdata", "PG_VERSION")
    with open(pg_version) as f:
        assert f.read() == "15\n"
    st = os.stat(os.path.join(dst, "pgdata"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (999, 999, 0o700)
    kubectl(testenv, "target", "apply", "-f", "-",
            stdin=json.dumps(statefulset(testenv, target_ns, testenv["TARGET_STORAGE_CLASS"])))
    ready(testenv, "target", target_ns)
    got = psql(testenv, "target", target_ns, "SELECT count(*), sum(id), md5(string_agg(item, ',' ORDER BY id)) FROM orders")
    assert got == want, (got, want)
    # the restored database takes writes
    psql(testenv, "target", target_ns, "INSERT INTO orders VALUES (5001, 'written in the target')")
    assert psql(testenv, "target", target_ns, "SELECT item FROM orders WHERE id = 5001") == "written in the target\n"
    for cluster, n in (("source", ns), ("target", target_ns)):
        kubectl(testenv, cluster, "delete", "namespace", n, "--wait=false")
