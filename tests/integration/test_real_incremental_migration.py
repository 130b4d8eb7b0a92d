"""Incremental migration, readiness and test migrations with the real application on real nodes
(issue 16; docs/migration.md). The same data (the real app: PostgreSQL with 3000 rows, nginx, and
a 48 MiB file beside the web content) is migrated once in full and once by pre-copy, pre-copy
again, cutover: both downtimes are printed beside each other; the test asserts correctness only:
the rows and the files match byte for byte, and the cutover's restore wrote fewer bytes than the
full one's (and the second pre-copy fewer than the first).

A target that never becomes ready (a Deployment that crash-loops on any node but the source's)
starts the source again at its counts and the job fails in words; a test migration restores into
the target, and leaves nothing there, with the source never stopped.

Run: cd tests/integration && STOWAGE_BUILD=../../build/asan /usr/bin/python3 -m pytest test_real_incremental_migration.py
"""

import json
import os
import time

import psycopg2
import pytest

from conftest import unique
from fixtures_testenv import kubectl
from test_migration import make_plan, provide_target_volumes, register, tree_digest
from test_real_app import real_app
from test_real_database import psql, ready
from test_real_node import needs_real_nodes  # noqa: F401 (autouse fixture)

ROWS = "SELECT count(*), sum(id), md5(string_agg(item, ',' ORDER BY id)) FROM orders"
BIG = 48 << 20


def claim_dir(testenv, cluster, ns, claim):
    pvc = json.loads(kubectl(testenv, cluster, "-n", ns, "get", "pvc", claim, "-o", "json").stdout)
    pv = json.loads(kubectl(testenv, cluster, "get", "pv", pvc["spec"]["volumeName"], "-o", "json").stdout)
    spec = pv["spec"]
    return (spec.get("hostPath") or spec.get("local"))["path"]


def app(testenv, with_big_file=True):
    ns = unique("incr")
    real_app(testenv, ns, "source", "3000")
    if with_big_file:
        with open(os.path.join(claim_dir(testenv, "source", ns, "web-content"), "big.bin"), "wb") as f:
            f.write(os.urandom(BIG))
    return ns


def run(client, plan, action, data=None, timeout=600):
    r = client.post(f"/migrations/{plan}/{action}", data or {})
    assert r.status_code == 303, r.text
    deadline = time.time() + timeout
    while True:
        body = client.json(r.headers["Location"]).json()["job"]
        if body["state"] not in ("queued", "running"):
            return body
        assert time.time() < deadline, f"{action} still {body['state']} at {body.get('phase')}"
        time.sleep(1)


def replicas(testenv, cluster, ns, kind, name):
    return json.loads(kubectl(testenv, cluster, "-n", ns, "get", kind, name, "-o", "json").stdout)["spec"]["replicas"]


def set_plan(stack, plan, **columns):
    conn = psycopg2.connect(stack.pg_dsn_owner)
    with conn, conn.cursor() as cur:
        for column, value in columns.items():
            cur.execute(f"UPDATE stowage.migration_plans SET {column} = %s WHERE id = %s", (value, plan))
    conn.close()


@pytest.fixture
def clusters(admin, testenv):
    src, dst, repo = register(admin, testenv)
    made = []
    yield admin, src, dst, repo, made
    for ns in made:
        for cluster in ("source", "target"):
            kubectl(testenv, cluster, "delete", "namespace", ns, "--wait=false", check=False)


def test_cutover_after_pre_copy_writes_only_the_change(clusters, testenv, stack):
    client, src, dst, repo, made = clusters

    # the full migration of one copy of the data
    full_ns = app(testenv)
    made.append(full_ns)
    full_rows = psql(testenv, "source", full_ns, ROWS)
    plan, claims = make_plan(client, src, dst, repo, full_ns)
    provide_target_volumes(testenv, claims, node=testenv["TARGET_REAL_NODE"])
    full = run(client, plan, "migrate", {"confirm": "on"})
    assert full["state"] == "succeeded", full
    assert full["migration_mode"] == "full" and full["downtime_ms"] > 0, full
    ready(testenv, "target", full_ns)
    assert psql(testenv, "target", full_ns, ROWS) == full_rows

    # the same data, pre-copied twice while the source serves, then cut over
    ns = app(testenv)
    made.append(ns)
    plan, claims = make_plan(client, src, dst, repo, ns)
    provide_target_volumes(testenv, claims, node=testenv["TARGET_REAL_NODE"])
    page = client.json(f"/migrations/{plan}").json()
    assert "last_precopy" not in page and page["has_precopy"] is False, page
    # a cutover needs a pre-copy first: refused in words, the source untouched
    early = run(client, plan, "cutover", {"confirm": "on"})
    assert early["state"] == "failed" and "needs a pre-copy" in early["error"], early
    assert replicas(testenv, "source", ns, "statefulset", "db") == 1

    first = run(client, plan, "precopy")
    assert first["state"] == "succeeded", first
    assert [p["name"] for p in first["phases"]] == ["pre-check", "backup", "restore"], first["phases"]
    assert "downtime_ms" not in first
    assert replicas(testenv, "source", ns, "statefulset", "db") == 1  # never stopped
    psql(testenv, "source", ns, "INSERT INTO orders SELECT g, 'second ' || g FROM generate_series(3001, 3500) g")
    second = run(client, plan, "precopy")
    assert second["state"] == "succeeded", second
    assert second["volume_bytes_written"] < first["volume_bytes_written"], (second, first)
    page = client.json(f"/migrations/{plan}").json()
    assert page["last_precopy"]["id"] == second["id"] and page["has_precopy"] is True, page

    # the change made while the source still runs: rows, a file added, one removed
    psql(testenv, "source", ns, "INSERT INTO orders SELECT g, 'late ' || g FROM generate_series(3501, 3600) g")
    web_src = claim_dir(testenv, "source", ns, "web-content")
    with open(os.path.join(web_src, "late.txt"), "w") as f:
        f.write("written after the pre-copy\n")
    os.unlink(os.path.join(web_src, "big.bin"))
    rows = psql(testenv, "source", ns, ROWS)
    assert rows.startswith("3600|"), rows

    cut = run(client, plan, "cutover", {"confirm": "on"})
    assert cut["state"] == "succeeded", cut
    assert [p["name"] for p in cut["phases"]] == ["pre-check", "stop source", "backup", "restore", "start target"]
    print(f"\n# downtime: full migration {full['downtime_ms'] / 1000:.1f} s "
          f"({full['volume_bytes_written']} bytes written); cutover after pre-copy "
          f"{cut['downtime_ms'] / 1000:.1f} s ({cut['volume_bytes_written']} bytes written); "
          f"pre-copies wrote {first['volume_bytes_written']} then {second['volume_bytes_written']} bytes")
    assert cut["volume_bytes_written"] < full["volume_bytes_written"], (cut, full)
    ready(testenv, "target", ns)
    assert psql(testenv, "target", ns, ROWS) == rows
    # the web content byte for byte: the late file there, the removed one gone
    web_dst = claim_dir(testenv, "target", ns, "web-content")
    assert tree_digest(web_dst) == tree_digest(web_src)
    assert not os.path.exists(os.path.join(web_dst, "big.bin"))
    assert replicas(testenv, "source", ns, "statefulset", "db") == 0
    page = client.get(f"/jobs/{cut['id']}").text
    assert 'id="job-downtime"' in page and "cutover" in page


CRASHER = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "worker"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "worker"}}, "template": {
        "metadata": {"labels": {"app": "worker"}},
        "spec": {"nodeSelector": {"stowage.dev/node": "real"},
                 "tolerations": [{"key": "stowage.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}],
                 "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "worker", "image": "stowage.test/nginx:1.22", "imagePullPolicy": "Never",
                                 "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                                 "command": ["sh", "-c", None]}]}}}}


def test_a_target_that_crash_loops_starts_the_source_again(clusters, testenv, stack):
    client, src, dst, repo, made = clusters
    ns = app(testenv, with_big_file=False)
    made.append(ns)
    rows = psql(testenv, "source", ns, ROWS)
    worker = json.loads(json.dumps(CRASHER))
    # runs on the source's real node only: anywhere else it exits at once, again and again
    worker["spec"]["template"]["spec"]["containers"][0]["command"][2] = (
        f'[ "$NODE_NAME" = "{testenv["SOURCE_REAL_NODE"]}" ] || {{ echo "not the source node"; exit 1; }}; '
        "exec sleep 100000")
    kubectl(testenv, "source", "-n", ns, "apply", "-f", "-", stdin=json.dumps(worker))
    kubectl(testenv, "source", "-n", ns, "rollout", "status", "deployment/worker", "--timeout=120s")
    plan, claims = make_plan(client, src, dst, repo, ns)
    set_plan(stack, plan, ready_timeout_seconds=30)
    assert "within 30 s" in client.get(f"/migrations/{plan}").text
    provide_target_volumes(testenv, claims, node=testenv["TARGET_REAL_NODE"])
    job = run(client, plan, "migrate", {"confirm": "on"})
    assert job["state"] == "failed", job
    assert [p["name"] for p in job["phases"]] == ["pre-check", "stop source", "backup", "restore", "start target",
                                                  "restart source"], job["phases"]
    assert "the target did not become ready" in job["error"], job["error"]
    assert "deployments.apps/worker: 0 of 1 ready" in job["error"], job["error"]
    assert job["error"].endswith("the source application was started again at its original replica counts"), job["error"]
    assert "downtime_ms" not in job
    # the source serves again, as it was; the target's copy is scaled to zero
    for kind, name in (("statefulset", "db"), ("deployment", "web"), ("deployment", "worker")):
        assert replicas(testenv, "source", ns, kind, name) == 1, (kind, name)
        assert replicas(testenv, "target", ns, kind, name) == 0, (kind, name)
    ready(testenv, "source", ns)
    assert psql(testenv, "source", ns, ROWS) == rows


def test_a_test_migration_leaves_nothing_behind(clusters, testenv, stack):
    client, src, dst, repo, made = clusters
    ns = app(testenv, with_big_file=False)
    made.append(ns)
    before = json.loads(kubectl(testenv, "source", "-n", ns, "get", "pod", "db-0", "-o", "json").stdout)["metadata"]["uid"]
    plan, claims = make_plan(client, src, dst, repo, ns)
    provide_target_volumes(testenv, claims, node=testenv["TARGET_REAL_NODE"])
    job = run(client, plan, "test")
    assert job["state"] == "succeeded", job
    assert [p["name"] for p in job["phases"]] == ["pre-check", "backup", "restore", "remove test copy"], job["phases"]
    assert job["migration_mode"] == "test" and "downtime_ms" not in job
    items = client.json(f"/jobs/{job['id']}").json()["items"]
    assert any(i["action"] == "deleted" and i["type"] == "namespaces" and i["name"] == ns for i in items), items
    # nothing of it is left in the target
    kubectl(testenv, "target", "wait", "--for=delete", f"namespace/{ns}", "--timeout=180s", check=False)
    assert kubectl(testenv, "target", "get", "namespace", ns, check=False).returncode != 0
    # the source never stopped: the same database pod, its rows
    pod = json.loads(kubectl(testenv, "source", "-n", ns, "get", "pod", "db-0", "-o", "json").stdout)
    assert pod["metadata"]["uid"] == before
    assert replicas(testenv, "source", ns, "statefulset", "db") == 1
