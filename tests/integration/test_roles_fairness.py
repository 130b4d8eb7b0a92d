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


@pytest.mark.parametrize("table, column", [
    ("backup_plans", "cluster_id"), ("jobs", "cluster_id"), ("jobs", "backup_id"), ("restore_plans", "target_cluster_id"),
])
def test_database_refuses_a_reference_to_another_organisations_row(stack, table, column):
    """Even as the owner, who bypasses row-level security: the organisation travels with the id."""
    mine, theirs = make_orgs(stack, 2)
    conn = psycopg2.connect(stack.pg_dsn_owner)
    try:
        with conn.cursor() as cur:
            def one(sql, params):
                cur.execute(sql, params)
                return cur.fetchone()[0]

            def repository(org):
                return one("INSERT INTO stowage.repositories (org_id, name, kind, bucket, access_key, secret_key_enc, "
                           "key_id) VALUES (%s, 'r', 's3', 'bucket', 'k', '\\x00', 'k1') RETURNING id", (org,))

            their_cluster = one("INSERT INTO stowage.clusters (org_id, name, api_url, token_enc, key_id) "
                                "VALUES (%s, 'theirs', 'https://203.0.113.1', '\\x00', 'k1') RETURNING id", (theirs,))
            their_backup = one("INSERT INTO stowage.backups (org_id, repository_id, name, namespaces) "
                               "VALUES (%s, %s, 'b', '{x}') RETURNING id", (theirs, repository(theirs)))
            my_repository = repository(mine)
            their_id = their_backup if column == "backup_id" else their_cluster
            sql = {"backup_plans": "INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces) "
                                   f"VALUES (%s, 'p', %s, {my_repository}, '{{x}}')",
                   "jobs": f"INSERT INTO stowage.jobs (org_id, kind, {column}) VALUES (%s, 'backup', %s)",
                   "restore_plans": "INSERT INTO stowage.restore_plans (org_id, name, target_cluster_id) "
                                    "VALUES (%s, 'r', %s)"}[table]
            with pytest.raises(psycopg2.errors.ForeignKeyViolation, match=r"_org_"):
                cur.execute(sql, (mine, their_id))
    finally:
        conn.rollback()
        conn.close()


@pytest.mark.parametrize("sql", [
    "UPDATE stowage.users SET password_hash = 'x'",
    "UPDATE stowage.users SET email = 'mine@example.test'",
    "UPDATE stowage.orgs SET name = 'taken over'",
])
def test_web_role_cannot_rewrite_users_or_organisations(stack, sql):
    conn = connect(stack, "stowage_app")
    with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="permission denied for table"):
        with conn.cursor() as cur:
            cur.execute(sql)
    conn.close()
