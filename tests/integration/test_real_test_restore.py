"""Test restores of real databases on the real nodes (issue 16): Redis (Debian's redis-server,
packed by scripts/testenv/images/app-image redis) backed up with lua/redis-quiesce.lua (BGSAVE,
waited for, LASTSAVE moved), MariaDB backed up with lua/mysql-quiesce.lua: each test-restored by
the stack's runner into the other cluster (its claims mapped by the target's change-storage-class
ConfigMap to a class of static volumes on the target's real node), the workloads started once the
data is in, and the restore-side check hooks (lua/redis-check.lua, lua/sql-check.lua) run against
the restored pods: a good backup passes with the rows or keys found, a backup whose data was made
wrong fails in words naming the check, and the temporary namespace is gone afterwards either way.

Run: cd tests/integration && STOWAGE_BUILD=../../build/asan /usr/bin/python3 -m pytest test_real_test_restore.py
"""

import json
import os
import subprocess

import pytest

from conftest import TOP, unique
from fixtures_testenv import kubectl
from test_backup_job import Tenant
from test_real_app import real_app
from test_real_database import statefulset
from test_real_hooks import lua
from test_real_node import needs_real_nodes, k8s_exec  # noqa: F401 (autouse fixture)

APP_IMAGE = os.path.join(TOP, "scripts", "testenv", "images", "app-image")
CLASS = "trestore-static"


@pytest.fixture(scope="module")
def tenant(stack, testenv):
    """A tenant with both clusters; the target maps local-path to CLASS (static volumes)."""
    t = Tenant(stack, testenv, prefix="realtr")
    with open(testenv["TARGET_CA_FILE"]) as f:
        ca = f.read()
    r = t.client.post("/clusters", {"name": "target", "api_url": testenv["TARGET_API_URL"],
                                    "token": testenv["TARGET_ADMIN_TOKEN"], "ca_pem": ca})
    assert r.status_code == 303, r.text[:500]
    t.target_id = [c for c in t.client.json("/clusters").json()["clusters"] if c["name"] == "target"][0]["id"]
    kubectl(testenv, "target", "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": CLASS},
         "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "Immediate"},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "trestore-config"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "change-storage-class", "namespace": "trestore-config",
            "labels": {"velero.io/plugin-config": "", "velero.io/change-storage-class": "RestoreItemAction"}},
         "data": {"local-path": CLASS}}]}))
    yield t
    kubectl(testenv, "target", "delete", "namespace", "trestore-config", "--wait=false", check=False)


def static_volumes(testenv, n):
    """n volumes of CLASS on the target's real node, for whichever claims of that class come."""
    docs = []
    for _ in range(n):
        name = unique("trpv")
        os.makedirs(os.path.join(testenv["TARGET_VOLUME_DIR"], name))  # the volume's directory, as provisioned
        docs.append({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
                     "spec": {"storageClassName": CLASS, "capacity": {"storage": "2Gi"},
                              "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
                              "hostPath": {"path": os.path.join(testenv["TARGET_VOLUME_DIR"], name),
                                           "type": "DirectoryOrCreate"},
                              "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                                  {"key": "kubernetes.io/hostname", "operator": "In",
                                   "values": [testenv["TARGET_REAL_NODE"]]}]}]}}}})
    kubectl(testenv, "target", "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))


def image(testenv, tmp_path_factory, kind, name):
    tar = str(tmp_path_factory.mktemp(kind) / f"{kind}.tar")
    subprocess.run([APP_IMAGE, kind, tar, name], check=True)
    for c in ("SOURCE", "TARGET"):
        subprocess.run([testenv["CTR"], "--address", testenv[c + "_CONTAINERD_SOCKET"], "--namespace", "k8s.io",
                        "images", "import", tar], check=True, capture_output=True)


def database(testenv, ns, name, container):
    """statefulset() of test_real_database renamed, with container (a dict) as its one container."""
    sts = statefulset(testenv, ns, "local-path")
    sts["metadata"]["name"] = sts["spec"]["serviceName"] = name
    sts["spec"]["selector"]["matchLabels"]["app"] = sts["spec"]["template"]["metadata"]["labels"]["app"] = name
    sts["spec"]["template"]["spec"]["containers"] = [container]
    kubectl(testenv, "source", "create", "namespace", ns)
    kubectl(testenv, "source", "apply", "-f", "-", stdin=json.dumps(sts))
    kubectl(testenv, "source", "-n", ns, "rollout", "status", f"statefulset/{name}", "--timeout=240s")


def plan(tenant, ns, hooks, checks):
    plan_id = tenant.sql_one(
        "INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces, hooks, "
        "test_restore_cluster_id, test_restore_hooks) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (tenant.org_id, unique("realtr-"), tenant.cluster_id, tenant.repository_id, [ns], json.dumps(hooks),
         tenant.target_id, json.dumps(checks)))[0]
    return plan_id


def backup_now(tenant, plan_id):
    job_id = tenant.sql_one("INSERT INTO stowage.jobs (org_id, kind, backup_plan_id, cluster_id) "
                            "VALUES (%s, 'backup', %s, %s) RETURNING id", (tenant.org_id, plan_id, tenant.cluster_id))[0]
    job = tenant.wait_job(job_id, timeout=600)
    assert job["state"] == "succeeded", job
    return tenant.sql_one("SELECT backup_id FROM stowage.jobs WHERE id = %s", (job_id,))[0], job


def run_test_restore(tenant, testenv, backup_id, claims):
    static_volumes(testenv, claims)
    r = tenant.client.post(f"/backups/{backup_id}/test-restore", {"cluster_id": str(tenant.target_id)})
    assert r.status_code == 303, r.text[:500]
    job_id = int(r.headers["Location"].rsplit("/", 1)[1])
    job = tenant.wait_job(job_id, timeout=900)
    for name in job["result"]["test_restore"]["namespaces"]:
        assert kubectl(testenv, "target", "get", "namespace", name, check=False).returncode != 0, name
    job["log"] = "\n".join(m for (m,) in tenant.sql("SELECT level || ' ' || message FROM stowage.job_logs "
                                                  "WHERE job_id = %s ORDER BY id", (job_id,)))
    return job_id, job




def redis_cli(testenv, ns, *args):
    r = k8s_exec(testenv, "source", ns, "redis-0", "redis-cli", *args, timeout_ms=60000)
    assert r["rc"] == 0 and r["exit_code"] == 0, r
    return r["out"]


def test_redis_quiesced_by_bgsave_test_restores_into_the_other_cluster(tenant, testenv, tmp_path_factory):
    image(testenv, tmp_path_factory, "redis", "stowage.test/redis:7")
    ns = unique("redis")
    database(testenv, ns, "redis", {
        "name": "redis", "image": "stowage.test/redis:7", "imagePullPolicy": "Never",
        "readinessProbe": {"exec": {"command": ["redis-cli", "PING"]}, "periodSeconds": 2},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}]})
    k8s_exec(testenv, "source", ns, "redis-0", "sh", "-c",
             "for i in $(seq 1 300); do echo \"SET order:$i item-$i\"; done | redis-cli >/dev/null", timeout_ms=60000)
    redis_cli(testenv, ns, "SET", "stowage:check", "restored")
    assert redis_cli(testenv, ns, "DBSIZE") == "301\n"
    before = int(redis_cli(testenv, ns, "LASTSAVE"))
    params = {"pod": "redis-0", "container": "redis"}
    checks = [{"inline": lua("redis-check.lua"),
               "params": dict(params, key="stowage:check", value="restored", min_keys=301)}]
    plan_id = plan(tenant, ns, [{"inline": lua("redis-quiesce.lua"), "phase": "pre-backup", "params": params}], checks)
    backup_id, job = backup_now(tenant, plan_id)
    [hook] = job["result"]["hooks"]
    assert hook["state"] == "succeeded", hook
    after = int(redis_cli(testenv, ns, "LASTSAVE"))
    assert after > before, (before, after)
    assert any(f"snapshot written\tredis-0\tLASTSAVE\t{after}" in line for line in hook["log"]), hook
    job_id, job = run_test_restore(tenant, testenv, backup_id, 1)
    assert job["state"] == "succeeded", job["log"]
    [check] = job["result"]["test_restore"]["checks"]
    assert check["state"] == "succeeded" and any("stowage:check\t=\trestored\t;\t301\tkeys" in x for x in check["log"]), check
    assert [p["name"] for p in job["result"]["phases"]][-3:-1] == ["start workloads", "hooks"], job["result"]["phases"]

    # the data made wrong: emptied, then backed up (the quiesce saves the empty set)
    redis_cli(testenv, ns, "FLUSHALL")
    bad_id, _ = backup_now(tenant, plan_id)
    job_id, job = run_test_restore(tenant, testenv, bad_id, 1)
    assert job["state"] == "failed", job
    assert "hook inline-1 failed at post-restore" in job["error"] and \
        f"redis-check: key stowage:check is absent in redis-0 (stowage-test-{job_id}-0): the data did not come back" \
        in job["error"], job["error"]
    assert job["result"]["test_restore"]["passed"] is False
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")


def mysql(testenv, ns, sql):
    r = k8s_exec(testenv, "source", ns, "mysql-0", "mysql", "-N", "-B", "-e", sql, timeout_ms=60000)
    assert r["rc"] == 0 and r["exit_code"] == 0, r
    return r["out"]


def test_mariadb_backed_up_quiesced_restores_into_the_other_cluster_with_its_rows(tenant, testenv, tmp_path_factory):
    """Issue 16: a MariaDB restore, tested: backed up with the quiesce hook, restored into the
    other cluster by a test restore, the rows verified there by lua/sql-check.lua."""
    image(testenv, tmp_path_factory, "mariadb", "stowage.test/mariadb:10.11")
    ns = unique("maria")
    database(testenv, ns, "mysql", {
        "name": "mysql", "image": "stowage.test/mariadb:10.11", "imagePullPolicy": "Never",
        "readinessProbe": {"exec": {"command": ["mysql", "-e", "SELECT 1"]}, "periodSeconds": 2},
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}]})
    mysql(testenv, ns, "CREATE DATABASE shop; USE shop; CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL) "
          "ENGINE=InnoDB; INSERT INTO orders SELECT seq, CONCAT('item ', seq) FROM seq_1_to_1000")
    rows = "SELECT count(*), sum(id), md5(group_concat(item ORDER BY id)) FROM shop.orders"
    want = mysql(testenv, ns, rows).rstrip("\n")
    assert want.startswith("1000\t500500\t"), want
    params = {"pod": "mysql-0", "container": "mysql"}
    quiesce = [{"inline": lua("mysql-quiesce.lua"), "phase": "pre-backup", "params": params},
               {"inline": lua("mysql-quiesce.lua"), "phase": "post-backup", "params": params}]
    checks = [{"inline": lua("sql-check.lua"), "params": dict(params, engine="mysql", query=rows, expect=want)}]
    plan_id = plan(tenant, ns, quiesce, checks)
    backup_id, job = backup_now(tenant, plan_id)
    assert [h["state"] for h in job["result"]["hooks"]] == ["succeeded", "succeeded"], job["result"]["hooks"]
    job_id, job = run_test_restore(tenant, testenv, backup_id, 1)
    assert job["state"] == "succeeded", job["log"]
    [check] = job["result"]["test_restore"]["checks"]
    assert check["state"] == "succeeded" and any(want.replace("\t", " ") in x.replace("\t", " ") for x in check["log"]), check

    # rows lost in the source, backed up: the check names what it found
    mysql(testenv, ns, "DELETE FROM shop.orders WHERE id > 10")
    bad_id, _ = backup_now(tenant, plan_id)
    job_id, job = run_test_restore(tenant, testenv, bad_id, 1)
    assert job["state"] == "failed", job
    assert "sql-check (mysql): " + rows + ' answered "10\t55\t' in job["error"] and \
        "the data is not what was backed up" in job["error"], job["error"]
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")


def test_postgres_real_app_test_restores_with_its_rows_checked(tenant, testenv):
    """The real application (PostgreSQL and its web tier), quiesced by lua/postgres-quiesce.lua,
    test-restored into the other cluster, its rows checked by lua/sql-check.lua."""
    ns = unique("pgtr")
    real_app(testenv, ns, "source", "1500")
    rows = "SELECT count(*), sum(id) FROM orders"
    params = {"pod": "db-0", "container": "postgres", "psql": ["psql", "-h", "/tmp", "-U", "postgres"]}
    quiesce = [{"inline": lua("postgres-quiesce.lua"), "phase": "pre-backup", "params": params},
               {"inline": lua("postgres-quiesce.lua"), "phase": "post-backup", "params": params}]
    checks = [{"inline": lua("sql-check.lua"), "params": {
        "engine": "postgres", "pod": "db-0", "client": params["psql"], "query": rows, "expect": "1500|1125750"}}]
    plan_id = plan(tenant, ns, quiesce, checks)
    backup_id, job = backup_now(tenant, plan_id)
    assert [h["state"] for h in job["result"]["hooks"]] == ["succeeded", "succeeded"], job["result"]["hooks"]
    job_id, job = run_test_restore(tenant, testenv, backup_id, 2)  # data-db-0 and web-content
    assert job["state"] == "succeeded", job["log"]
    [check] = job["result"]["test_restore"]["checks"]
    assert check["state"] == "succeeded" and any("->\t1500|1125750" in x for x in check["log"]), check
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")
