"""A runner outlives a restart of its PostgreSQL: it does not spin while the database is away,
and it claims jobs again afterwards. On a stack of its own, since the database goes down."""
import os
import subprocess
import time

import psycopg2
import pytest

from conftest import TOP, own_stack


def runner_pids(stack):
    run = os.path.join(stack.root, "run")
    return [int(open(os.path.join(run, f)).read()) for f in sorted(os.listdir(run)) if f.startswith("runner-")]


def cpu_seconds(pid):
    """User + system CPU time of a process and its threads, in seconds."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pg(stack, verb):
    args = [os.path.join(TOP, "scripts", "pg"), verb, os.path.join(stack.root, "pg")]
    subprocess.run(args + ([str(stack.pg_port)] if verb == "start" else []), check=True, stdout=subprocess.DEVNULL)


def queue_job(stack):
    """A job of an organisation of its own, with no plan: the runner that claims it fails it."""
    conn = psycopg2.connect(stack.pg_dsn_owner)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO stowage.orgs (name) VALUES ('Restart Org') RETURNING id")
        org = cur.fetchone()[0]
        cur.execute("INSERT INTO stowage.jobs (org_id, kind) VALUES (%s, 'backup') RETURNING id", (org,))
        job = cur.fetchone()[0]
    conn.close()
    return job


def job_state(stack, job):
    conn = psycopg2.connect(stack.pg_dsn_owner)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT state, runner_id FROM stowage.jobs WHERE id = %s", (job,))
        row = cur.fetchone()
    conn.close()
    return row


@pytest.fixture
def restart_stack():
    with own_stack("restart", smtp=False) as s:
        yield s


def test_runner_neither_spins_nor_stops_claiming_across_a_database_restart(restart_stack):
    pids = runner_pids(restart_stack)
    assert pids
    pg(restart_stack, "stop")
    before = {pid: cpu_seconds(pid) for pid in pids}
    time.sleep(8)
    spent = {pid: cpu_seconds(pid) - before[pid] for pid in pids}
    # a loop that polls a dead socket burns a whole core: 8 s of CPU in 8 s
    assert all(s < 2 for s in spent.values()), spent
    pg(restart_stack, "start")

    before = {pid: cpu_seconds(pid) for pid in pids}
    job = queue_job(restart_stack)
    deadline = time.time() + 90
    while job_state(restart_stack, job)[0] == "queued":
        assert time.time() < deadline, "no runner claimed the job after the database came back"
        time.sleep(0.5)
    state, runner = job_state(restart_stack, job)
    assert runner and runner.startswith("runner-"), (state, runner)
    time.sleep(4)
    assert all(cpu_seconds(pid) - before[pid] < 3 for pid in pids)
    logs = "".join(open(os.path.join(restart_stack.root, "logs", f)).read()
                   for f in os.listdir(os.path.join(restart_stack.root, "logs")) if f.startswith("runner-"))
    assert "the listening connection to the database was lost" in logs
    assert "listening for jobs again" in logs
