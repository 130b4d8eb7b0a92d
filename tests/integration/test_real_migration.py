"""Migration with real pods (issue 12): the real application (scripts/testenv/real-app:
PostgreSQL's StatefulSet and an nginx Deployment on the source cluster's real node, claims of the
real local-path-provisioner, rows written through exec) is migrated by the console's one-click
migration (the stack's runners) to the target cluster, its claims mapped to the target's class
standard-nfs (volumes pre-provisioned on the target's real node: that class has no provisioner).
The source is scaled to zero and its pods are gone; the database starts in the target from the
moved files and a query through exec returns the same rows; the web tier serves its page there.

The restart-on-failure path: a migration whose restore fails (a post-restore hook of the plan
that refuses) starts the source again at its recorded counts: a new database pod runs on the
real node and answers with its rows.

Run: cd tests/integration && STOWAGE_BUILD=../../build/asan /usr/bin/python3 -m pytest test_real_migration.py
"""

import json

import psycopg2
import pytest

from conftest import unique
from fixtures_testenv import kubectl
from test_migration import make_plan, provide_target_volumes, register, run_migration
from test_real_app import real_app
from test_real_database import psql, ready
from test_real_node import needs_real_nodes, k8s_exec  # noqa: F401 (autouse fixture)

ROWS = "SELECT count(*), sum(id), md5(string_agg(item, ',' ORDER BY id)) FROM orders"


@pytest.fixture
def database(admin, testenv):
    """The clusters and a repository registered; the real application (scripts/testenv/real-app:
    PostgreSQL with 3000 rows, nginx) in a fresh namespace of the source."""
    src, dst, repo = register(admin, testenv)
    ns = unique("pgmig")
    real_app(testenv, ns, "source", "3000")
    rows = psql(testenv, "source", ns, ROWS)
    assert rows.startswith("3000|4501500|"), rows
    yield admin, src, dst, repo, ns, rows
    for cluster in ("source", "target"):
        kubectl(testenv, cluster, "delete", "namespace", ns, "--wait=false", check=False)


def pods(testenv, cluster, ns):
    return json.loads(kubectl(testenv, cluster, "-n", ns, "get", "pods", "-o", "json").stdout)["items"]


def test_migration_moves_a_real_database_and_stops_its_source(database, testenv, stack):
    client, src, dst, repo, ns, rows = database
    plan, claims = make_plan(client, src, dst, repo, ns)
    assert sorted(claims) == [f"{ns}/data-db-0", f"{ns}/web-content"], claims
    provide_target_volumes(testenv, claims, node=testenv["TARGET_REAL_NODE"])
    job = run_migration(client, plan)
    assert job["state"] == "succeeded", job
    assert [p["name"] for p in job["phases"]] == ["pre-check", "stop source", "backup", "restore", "start target"]
    # the backup began once the source's pods had ended: a database still shutting down writes
    # its files
    conn = psycopg2.connect(stack.pg_dsn_owner)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT message FROM stowage.job_logs WHERE job_id = %s ORDER BY id", (job["id"],))
        log = [m for (m,) in cur.fetchall()]
    conn.close()
    assert "the source application is stopped: its pods have ended" in log, log
    # the source: scaled to zero, its pods gone (the claims and their files stay)
    for kind, name in (("statefulset", "db"), ("deployment", "web")):
        obj = json.loads(kubectl(testenv, "source", "-n", ns, "get", kind, name, "-o", "json").stdout)
        assert obj["spec"]["replicas"] == 0, (kind, obj["spec"])
    kubectl(testenv, "source", "-n", ns, "wait", "--for=delete", "pod", "--all", "--timeout=60s")
    assert pods(testenv, "source", ns) == []
    # the target: both tiers run on its real node from the moved files: the same rows, the page
    ready(testenv, "target", ns)
    kubectl(testenv, "target", "-n", ns, "rollout", "status", "deployment/web", "--timeout=240s")
    running = pods(testenv, "target", ns)
    assert sorted(p["metadata"]["labels"]["app"] for p in running) == ["db", "web"]
    assert {p["spec"]["nodeName"] for p in running} == {testenv["TARGET_REAL_NODE"]}
    pvcs = json.loads(kubectl(testenv, "target", "-n", ns, "get", "pvc", "-o", "json").stdout)["items"]
    assert {(p["spec"]["storageClassName"], p["status"]["phase"]) for p in pvcs} == {("standard-nfs", "Bound")}, pvcs
    assert psql(testenv, "target", ns, ROWS) == rows
    psql(testenv, "target", ns, "INSERT INTO orders VALUES (3001, 'written in the target')")
    web = [p["metadata"]["name"] for p in running if p["metadata"]["labels"]["app"] == "web"][0]
    r = k8s_exec(testenv, "target", ns, web, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/")
    assert r["out"] == "<h1>Stowage real app</h1>\n", r


def test_a_failed_migration_starts_the_real_source_again(database, testenv, stack):
    client, src, dst, repo, ns, rows = database
    plan, claims = make_plan(client, src, dst, repo, ns)
    provide_target_volumes(testenv, claims, node=testenv["TARGET_REAL_NODE"])
    [before] = [p for p in pods(testenv, "source", ns) if p["metadata"]["labels"]["app"] == "db"]
    conn = psycopg2.connect(stack.pg_dsn_owner)
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE stowage.migration_plans SET hooks = %s WHERE id = %s", (json.dumps([
            {"phase": "post-restore", "inline": 'error("the restored database did not pass its check")'}]), plan))
    conn.close()
    job = run_migration(client, plan)
    assert job["state"] == "failed", job
    assert "the restored database did not pass its check" in job["error"], job["error"]
    assert job["error"].endswith("the source application was started again at its original replica counts"), job["error"]
    assert [p["name"] for p in job["phases"]] == ["pre-check", "stop source", "backup", "restore", "restart source"]
    # the source's pods were stopped (the backup read a stopped database) and run again
    for kind, name in (("statefulset", "db"), ("deployment", "web")):
        obj = json.loads(kubectl(testenv, "source", "-n", ns, "get", kind, name, "-o", "json").stdout)
        assert obj["spec"]["replicas"] == 1, (kind, obj["spec"])
    ready(testenv, "source", ns)
    kubectl(testenv, "source", "-n", ns, "rollout", "status", "deployment/web", "--timeout=240s")
    [pod] = [p for p in pods(testenv, "source", ns) if p["metadata"]["labels"]["app"] == "db"]
    assert pod["spec"]["nodeName"] == testenv["SOURCE_REAL_NODE"] and pod["metadata"]["uid"] != before["metadata"]["uid"]
    assert psql(testenv, "source", ns, ROWS) == rows
