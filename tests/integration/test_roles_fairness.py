"""Each program has its own database role, granted what it does; and runners claim jobs fairly
across organisations. Against the stack's real PostgreSQL, as each role."""
import psycopg2
import pytest

from conftest import unique


def connect(stack, role):
    dsn = stack.pg_dsn_app.replace("user=stowage_app", f"user={role}")
    return psycopg2.connect(dsn)


def make_orgs(stack, n):
    conn = psycopg2.connect(stack.pg_dsn_owner)
    with conn, conn.cursor() as cur:
        ids = []
        for _ in range(n):
            cur.execute("INSERT INTO stowage.orgs (name) VALUES (%s) RETURNING id", (unique("Fair Org "),))
            ids.append(cur.fetchone()[0])
    conn.close()
    return ids


@pytest.mark.parametrize("call", [
    "SELECT * FROM stowage.claim_job('web', 10, 10)",
    "SELECT stowage.runner_heartbeat('web')",
    "SELECT * FROM stowage.reap_stale_jobs(1)",
    "SELECT * FROM stowage.scheduler_due_plans(now())",
    "SELECT * FROM stowage.scheduler_expired_backups(now())",
])
def test_web_role_cannot_claim_reap_or_schedule(stack, call):
    conn = connect(stack, "stowage_app")
    with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="permission denied for function"):
        with conn.cursor() as cur:
            cur.execute(call)
    conn.close()


def test_scheduler_role_cannot_claim_jobs(stack):
    conn = connect(stack, "stowage_scheduler")
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM stowage.claim_job('scheduler', 10, 10)")
    conn.close()


def test_claiming_is_fair_across_organisations_and_capped_per_organisation(stack):
    busy, quiet = make_orgs(stack, 2)
    conn = connect(stack, "stowage_runner")
    try:
        with conn.cursor() as cur:
            # all in one transaction that is rolled back: the stack's own runners never see it
            def add(org, state, age_s):
                cur.execute("SELECT set_config('app.org_id', %s, true)", (str(org),))
                cur.execute("INSERT INTO stowage.jobs (kind, state, runner_id, queued_at) "
                            "VALUES ('backup', %s, %s, now() - make_interval(secs => %s)) RETURNING id",
                            (state, "elsewhere" if state == "running" else None, age_s))
                return cur.fetchone()[0]

            add(busy, "running", 600)
            add(busy, "running", 600)
            old_busy = add(busy, "queued", 300)
            add(busy, "queued", 200)
            new_quiet = add(quiet, "queued", 10)

            def claim(org_limit):
                cur.execute("SELECT job_id FROM stowage.claim_job('test-runner', 100, %s) "
                            "WHERE job_id = ANY(%s)", (org_limit, [old_busy, new_quiet]))
                row = cur.fetchone()
                return row[0] if row else None

            # the organisation with fewer running jobs goes first, though its job is newer
            assert claim(10) == new_quiet
            # the busy organisation is at its cap of 2 running jobs: nothing for it
            assert claim(2) is None
            # under a higher cap its oldest job is next
            assert claim(10) == old_busy
    finally:
        conn.rollback()
        conn.close()
