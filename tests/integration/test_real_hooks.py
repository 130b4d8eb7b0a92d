"""The quiesce reference hooks (lua/postgres-quiesce.lua, lua/mysql-quiesce.lua) against real
databases on the source cluster's real node, in real backup jobs (the stack's runner): PostgreSQL
15 (the real application of scripts/testenv/real-app) and MariaDB 10.11, each from the machine's
Debian packages packed into an image by scripts/testenv/images/app-image, in a StatefulSet with a
claim of the real local-path-provisioner.

A write issued while the database is quiesced (by a pre-backup hook after the quiesce, so before
the volume phase begins) is still waiting when the volume phase has ended and goes through only
after the post-backup hook unlocked: its start, the volume phase's end, the post-backup hook's
start and the write's end are ordered so (the database's clock and the job log's are this
machine's). And a plan hook's k8s.exec against the real container: stdout, stderr, exit status,
a timeout, a command that does not exist.

Run: cd tests/integration && STOWAGE_BUILD=../../build/asan /usr/bin/python3 -m pytest test_real_hooks.py
"""

import json
import os
import re
import subprocess
import time

import pytest

from conftest import TOP, unique
from fixtures_testenv import kubectl
from test_backup_job import Tenant
from test_backup_restore_e2e import backup
from test_real_app import real_app
from test_real_database import psql, statefulset
from test_real_node import needs_real_nodes, k8s_exec  # noqa: F401 (autouse fixture)

APP_IMAGE = os.path.join(TOP, "scripts", "testenv", "images", "app-image")
MARIADB_IMAGE = "stowage.test/mariadb:10.11"


def lua(name):
    with open(os.path.join(TOP, "lua", name)) as f:
        return f.read()


@pytest.fixture(scope="module")
def tenant(stack, testenv):
    return Tenant(stack, testenv, prefix="hooks")


@pytest.fixture(scope="module")
def postgres(testenv):
    """The real application (scripts/testenv/real-app): PostgreSQL's StatefulSet db with a
    table orders of 1000 rows, and its web tier, on the source's real node."""
    ns = unique("pghook")
    real_app(testenv, ns)
    yield ns
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")


@pytest.fixture(scope="module")
def mariadb(testenv, tmp_path_factory):
    """MariaDB's StatefulSet mysql on the source's real node, a table shop.orders of 1000 rows."""
    tar = str(tmp_path_factory.mktemp("mariadb") / "mariadb.tar")
    subprocess.run([APP_IMAGE, "mariadb", tar, MARIADB_IMAGE], check=True)
    subprocess.run([testenv["CTR"], "--address", testenv["SOURCE_CONTAINERD_SOCKET"], "--namespace", "k8s.io",
                    "images", "import", tar], check=True, capture_output=True)
    ns = unique("mariahook")
    sts = statefulset(testenv, ns, "local-path")
    sts["metadata"]["name"] = sts["spec"]["serviceName"] = "mysql"
    pod = sts["spec"]["template"]["spec"]
    pod["containers"] = [{"name": "mysql", "image": MARIADB_IMAGE, "imagePullPolicy": "Never",
                          "readinessProbe": {"exec": {"command": ["mysql", "-e", "SELECT 1"]}, "periodSeconds": 2},
                          "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}]}]
    kubectl(testenv, "source", "create", "namespace", ns)
    kubectl(testenv, "source", "apply", "-f", "-", stdin=json.dumps(sts))
    kubectl(testenv, "source", "-n", ns, "rollout", "status", "statefulset/mysql", "--timeout=240s")
    mysql(testenv, ns, "CREATE DATABASE shop; USE shop; CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL) "
          "ENGINE=InnoDB; INSERT INTO orders SELECT seq, CONCAT('item ', seq) FROM seq_1_to_1000")
    yield ns
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")


def mysql(testenv, ns, sql):
    r = k8s_exec(testenv, "source", ns, "mysql-0", "mysql", "-N", "-B", "-e", sql, timeout_ms=60000)
    assert r["rc"] == 0 and r["exit_code"] == 0, r
    return r["out"]


def log_times(tenant, job_id):
    return tenant.sql("SELECT extract(epoch FROM at)::float8, message FROM stowage.job_logs WHERE job_id = %s "
                      "ORDER BY id", (job_id,))


def first(lines, words):
    found = [(at, m) for at, m in lines if words in m]
    assert found, (words, [m for _, m in lines])
    return found[0][0]


def writer_hook(pod, shell):
    """A pre-backup hook that issues a write in the background: shell prints the time, writes,
    prints the time again; its output lands in the container's /tmp/writer.out."""
    return {"phase": "pre-backup", "inline": (
        f'local r = k8s.exec("{pod}", nil, {{"sh", "-c", {json.dumps("(" + shell + "; echo end) > /tmp/writer.out 2>&1 &")}}})\n'
        'if r.exit_code ~= 0 then error(r.stderr) end\nlog("write issued")\n')}


def assert_write_waited(testenv, tenant, ns, pod, job_id, job):
    assert job["state"] == "succeeded", job
    hooks = job["result"]["hooks"]
    assert [(h["phase"], h["state"]) for h in hooks] == [("pre-backup", "succeeded")] * 2 + [("post-backup", "succeeded")], hooks
    lines = log_times(tenant, job_id)
    quiesced, volumes_done = first(lines, ": quiesced\t"), first(lines, "volume data: ")
    post = first(lines, "running at post-backup")
    first(lines, ": resumed\t")
    out = kubectl(testenv, "source", "-n", ns, "exec", pod, "--", "cat", "/tmp/writer.out").stdout.split()
    assert len(out) == 3 and out[2] == "end", out
    issued, written = float(out[0]), float(out[1])
    # issued after the quiesce; waited through the whole volume phase; through once unlocked
    assert quiesced < issued < volumes_done < post < written, (quiesced, issued, volumes_done, post, written)
    print(f"{pod}: the write waited {written - issued:.2f} s; volume phase ended {volumes_done - issued:.2f} s "
          "after it was issued")


def test_postgres_quiesce_hook_holds_a_write_until_post_backup(testenv, tenant, postgres):
    ns = postgres
    params = {"pod": "db-0", "container": "postgres", "psql": ["psql", "-h", "/tmp", "-U", "postgres"]}
    q = "psql -h /tmp -U postgres -X -q -A -t"
    hooks = [{"inline": lua("postgres-quiesce.lua"), "phase": "pre-backup", "params": params},
             writer_hook("db-0", f"{q} -c 'SELECT extract(epoch FROM clock_timestamp())'; "
                                 f"{q} -c \"INSERT INTO orders VALUES (100001, 'during the backup') "
                                 "RETURNING extract(epoch FROM clock_timestamp())\""),
             {"inline": lua("postgres-quiesce.lua"), "phase": "post-backup", "params": params}]
    job_id, job = backup(tenant, ns, hooks=hooks)
    assert_write_waited(testenv, tenant, ns, "db-0", job_id, job)
    assert psql(testenv, "source", ns, "SELECT item FROM orders WHERE id = 100001") == "during the backup\n"
    # no locking session is left, and the table takes writes at once
    assert psql(testenv, "source", ns, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                "'stowage-quiesce'") == "0\n"
    psql(testenv, "source", ns, "INSERT INTO orders VALUES (100002, 'after the backup')")


def test_mariadb_quiesce_hook_holds_a_write_until_post_backup(testenv, tenant, mariadb):
    ns = mariadb
    params = {"pod": "mysql-0", "container": "mysql"}
    hooks = [{"inline": lua("mysql-quiesce.lua"), "phase": "pre-backup", "params": params},
             writer_hook("mysql-0", "mysql -N -e 'SELECT UNIX_TIMESTAMP(SYSDATE(6))'; "
                                    "mysql -N -e \"INSERT INTO shop.orders VALUES (100001, 'during the backup'); "
                                    "SELECT UNIX_TIMESTAMP(SYSDATE(6))\""),
             {"inline": lua("mysql-quiesce.lua"), "phase": "post-backup", "params": params}]
    job_id, job = backup(tenant, ns, hooks=hooks)
    assert_write_waited(testenv, tenant, ns, "mysql-0", job_id, job)
    assert mysql(testenv, ns, "SELECT item FROM shop.orders WHERE id = 100001") == "during the backup\n"
    assert mysql(testenv, ns, "SELECT count(*) FROM information_schema.processlist WHERE info LIKE "
                 "'SELECT ''stowage-quiesce''%' AND id <> CONNECTION_ID()") == "0\n"
    mysql(testenv, ns, "INSERT INTO shop.orders VALUES (100002, 'after the backup')")


def test_post_backup_hook_fails_in_words_when_the_lock_ended_early(testenv, tenant, postgres):
    """max_lock_s shorter than the backup: the copy is no longer guarded, and the job says so."""
    ns = postgres
    params = {"pod": "db-0", "container": "postgres", "psql": ["psql", "-h", "/tmp", "-U", "postgres"], "max_lock_s": 1}
    hooks = [{"inline": lua("postgres-quiesce.lua"), "phase": "pre-backup", "params": params},
             {"inline": "sleep(3000)", "phase": "pre-backup"},
             {"inline": lua("postgres-quiesce.lua"), "phase": "post-backup", "params": params}]
    _, job = backup(tenant, ns, hooks=hooks)
    assert job["state"] == "failed", job
    assert "no session holds the locks any more (it ended before the backup did, after max_lock_s = 1 s?): " \
        "the copy may hold writes made while it ran" in job["error"], job["error"]


def test_hook_exec_against_a_real_container(testenv, tenant, postgres):
    """k8s.exec of a plan's hook, through the hook sandbox and the runner, in the database's pod."""
    ns = postgres
    script = """
local r = k8s.exec("db-0", "postgres", {"sh", "-c", "echo out; echo err >&2; exit 3"})
log("exit", r.exit_code, "stdout", r.stdout, "stderr", r.stderr)
r = k8s.exec("db-0", nil, {"psql", "-h", "/tmp", "-U", "postgres", "-At", "-c", "SELECT count(*) FROM orders"})
log("rows", r.stdout)
local ok, e = pcall(k8s.exec, "db-0", "postgres", {"sleep", "30"}, {timeout_ms = 1000})
log("timeout", ok, e)
ok, e = pcall(k8s.exec, "db-0", "postgres", {"no-such-command"})
log("missing", ok, e)
"""
    job_id, job = backup(tenant, ns, hooks=[{"inline": script}])
    assert job["state"] == "succeeded", job
    lines = [m for _, m in log_times(tenant, job_id)]
    text = "\n".join(lines)
    assert any(m.endswith("exit\t3\tstdout\tout") for m in lines), text
    assert any(m.endswith(": \tstderr\terr") for m in lines), text
    assert any(re.search(r": rows\t10\d\d$", m) for m in lines), text
    timeout = [m for m in lines if ": timeout\tfalse\t" in m]
    assert timeout and "time" in timeout[0].lower(), text
    missing = [m for m in lines if ": missing\tfalse\t" in m]
    assert missing and "no-such-command" in missing[0], text


def test_a_cancelled_backup_still_runs_its_post_backup_hook(testenv, tenant, postgres):
    """Cancelled while quiesced: the post-backup hook runs all the same and the writes go on
    (they would otherwise wait for max_lock_s)."""
    ns = postgres
    params = {"pod": "db-0", "container": "postgres", "psql": ["psql", "-h", "/tmp", "-U", "postgres"]}
    hooks = [{"inline": lua("postgres-quiesce.lua"), "phase": "pre-backup", "params": params},
             {"inline": "sleep(5000)", "phase": "pre-backup"},
             {"inline": lua("postgres-quiesce.lua"), "phase": "post-backup", "params": params}]
    job_id, _ = backup(tenant, ns, hooks=hooks, queue_only=True)
    deadline = time.time() + 120
    while not any(": quiesced\t" in m for _, m in log_times(tenant, job_id)):
        assert time.time() < deadline, [m for _, m in log_times(tenant, job_id)]
        time.sleep(0.3)
    tenant.sql("UPDATE stowage.jobs SET cancel_requested = true WHERE id = %s", (job_id,))
    job = tenant.wait_job(job_id)
    assert job["state"] == "cancelled", job
    assert [(h["phase"], h["state"]) for h in job["result"]["hooks"]][-1] == ("post-backup", "succeeded"), \
        job["result"]["hooks"]
    lines = [m for _, m in log_times(tenant, job_id)]
    assert any("the backup stopped (cancelled): its post-backup hooks run all the same" in m for m in lines), lines
    assert any(": resumed\t" in m for m in lines), lines
    assert psql(testenv, "source", ns, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                "'stowage-quiesce'") == "0\n"
    psql(testenv, "source", ns, "INSERT INTO orders VALUES (100003, 'after a cancelled backup')")
