"""The scheduler against real PostgreSQL and MinIO: one job per due time with two schedulers
running at once, a missed run fired once after downtime, and retention deleting exactly the
expired backups and their objects. The clock is the scheduler's --now option, so nothing here
waits for real minutes or asserts on speed."""
import os
import subprocess
import time

import boto3
import psycopg2
import pytest

from conftest import BUILD, unique
from test_clusters_repositories import add_cluster, add_repo, cluster_row


def scheduler(stack, now):
    return subprocess.Popen([os.path.join(BUILD, "stowage-scheduler"), "-c", stack.conf, "--once", "--now", str(now)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_two_schedulers(stack, now):
    procs = [scheduler(stack, now), scheduler(stack, now)]
    logs = ""
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        logs += err
    return logs


@pytest.fixture
def org(stack, admin, testenv):
    """An organisation with a cluster and a repository; returns (client, org_id, cluster_id, repo_id, bucket)."""
    s3 = boto3.client("s3", endpoint_url=testenv["S3_ENDPOINT"], region_name=testenv["S3_REGION"],
                      aws_access_key_id=testenv["S3_ACCESS_KEY"], aws_secret_access_key=testenv["S3_SECRET_KEY"])
    bucket = unique("sched-")
    s3.create_bucket(Bucket=bucket)
    assert add_cluster(admin, testenv, "prod").status_code == 303
    assert add_repo(admin, testenv, "store", bucket).status_code == 303
    conn = psycopg2.connect(stack.pg_dsn_owner)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT org_id, id FROM stowage.clusters WHERE name = 'prod' AND org_id = "
                "(SELECT id FROM stowage.orgs WHERE name = %s)", (admin.org,))
    org_id, cluster_id = cur.fetchone()
    cur.execute("SELECT id FROM stowage.repositories WHERE org_id = %s", (org_id,))
    repo_id = cur.fetchone()[0]
    yield admin, cur, org_id, cluster_id, repo_id, bucket, s3
    conn.close()


def make_plan(cur, org_id, cluster_id, repo_id, cron, tz="UTC"):
    cur.execute("INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces, "
                "schedule_kind, schedule_cron, time_zone) VALUES (%s, %s, %s, %s, ARRAY['default'], 'cron', %s, %s) "
                "RETURNING id", (org_id, unique("plan-"), cluster_id, repo_id, cron, tz))
    return cur.fetchone()[0]


def scheduled_jobs(cur, plan_id):
    cur.execute("SELECT extract(epoch FROM scheduled_for)::bigint FROM stowage.jobs WHERE backup_plan_id = %s "
                "ORDER BY scheduled_for", (plan_id,))
    return [r[0] for r in cur.fetchall()]


def test_every_minute_exactly_once_with_two_schedulers(stack, org):
    _, cur, org_id, cluster_id, repo_id, _, _ = org
    plan = make_plan(cur, org_id, cluster_id, repo_id, "* * * * *")
    base = (int(time.time()) // 60 + 10) * 60 + 5  # a minute boundary plus 5 s, in the future
    for t in range(base, base + 200, 10):  # 3 minutes and 20 s, two schedulers each tick
        run_two_schedulers(stack, t)
    fired = scheduled_jobs(cur, plan)
    assert fired == [base - 5 + 60, base - 5 + 120, base - 5 + 180]
    cur.execute("SELECT DISTINCT kind, trigger, cluster_id FROM stowage.jobs WHERE backup_plan_id = %s", (plan,))
    assert cur.fetchall() == [("backup", "schedule", cluster_id)]


def test_missed_runs_fire_once_after_downtime(stack, org):
    _, cur, org_id, cluster_id, repo_id, _, _ = org
    plan = make_plan(cur, org_id, cluster_id, repo_id, "*/5 * * * *", "Europe/Paris")
    base = (int(time.time()) // 3600 + 48) * 3600  # a whole hour, two days ahead
    run_two_schedulers(stack, base + 1)  # sets the first run: base + 5 min
    logs = run_two_schedulers(stack, base + 3 * 3600 + 1)  # three hours without a scheduler
    assert scheduled_jobs(cur, plan) == [base + 300]
    assert "missed while no scheduler ran, fired once" in logs
    cur.execute("SELECT extract(epoch FROM next_run_at)::bigint FROM stowage.backup_plans WHERE id = %s", (plan,))
    assert cur.fetchone()[0] == base + 3 * 3600 + 300
    run_two_schedulers(stack, base + 3 * 3600 + 301)
    assert scheduled_jobs(cur, plan) == [base + 300, base + 3 * 3600 + 300]


def test_daily_schedule_follows_the_plans_time_zone(stack, org):
    _, cur, org_id, cluster_id, repo_id, _, _ = org
    plan = make_plan(cur, org_id, cluster_id, repo_id, "0 3 * * *", "Asia/Shanghai")
    run_two_schedulers(stack, int(time.time()))
    cur.execute("SELECT to_char(next_run_at AT TIME ZONE 'Asia/Shanghai', 'HH24:MI'), "
                "to_char(next_run_at AT TIME ZONE 'UTC', 'HH24:MI') FROM stowage.backup_plans WHERE id = %s", (plan,))
    assert cur.fetchone() == ("03:00", "19:00")


def put_backup(s3, bucket, name, keys=("velero-backup.json", "{n}.tar.gz", "{n}-logs.gz", "{n}-resource-list.json.gz")):
    for k in keys:
        s3.put_object(Bucket=bucket, Key=f"backups/{name}/{k.format(n=name)}", Body=b"x")


def objects(s3, bucket, name):
    res = s3.list_objects_v2(Bucket=bucket, Prefix=f"backups/{name}/")
    return sorted(o["Key"] for o in res.get("Contents", []))


def wait_delete_jobs(cur, org_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        cur.execute("SELECT count(*) FROM stowage.jobs WHERE org_id = %s AND kind = 'delete_backup' "
                    "AND state IN ('queued', 'running')", (org_id,))
        if cur.fetchone()[0] == 0:
            cur.execute("SELECT state, error FROM stowage.jobs WHERE org_id = %s AND kind = 'delete_backup'", (org_id,))
            jobs = cur.fetchall()
            assert all(j[0] == "succeeded" for j in jobs), jobs
            return
        time.sleep(0.3)
    pytest.fail("delete jobs still running")


def test_retention_deletes_exactly_the_expired_backups(stack, org):
    client, cur, org_id, cluster_id, repo_id, bucket, s3 = org
    rows = {}
    for name, state, expires in (("old-1", "completed", "-2 days"), ("old-2", "partially_failed", "-1 hour"),
                                 ("fresh", "completed", "+5 days"), ("writing", "running", "-1 day")):
        put_backup(s3, bucket, name)
        cur.execute("INSERT INTO stowage.backups (org_id, repository_id, name, namespaces, state, expires_at) "
                    "VALUES (%s, %s, %s, ARRAY['default'], %s, now() + %s::interval) RETURNING id",
                    (org_id, repo_id, name, state, expires))
        rows[name] = cur.fetchone()[0]
    run_two_schedulers(stack, int(time.time()))
    # retention deletes through the runner's delete_backup job, the Delete button's path: one
    # job per expired backup however many schedulers saw it, the backups 'deleting' meanwhile
    cur.execute("SELECT b.name FROM stowage.jobs j JOIN stowage.backups b ON b.id = j.backup_id "
                "WHERE j.org_id = %s AND j.kind = 'delete_backup' AND j.state IN ('queued', 'running') "
                "AND b.state = 'deleting' ORDER BY 1", (org_id,))
    queued = [r[0] for r in cur.fetchall()]
    cur.execute("SELECT count(*) FROM stowage.jobs WHERE org_id = %s AND kind = 'delete_backup'", (org_id,))
    assert cur.fetchone()[0] == 2
    assert set(queued) <= {"old-1", "old-2"}
    wait_delete_jobs(cur, org_id)
    cur.execute("SELECT name FROM stowage.backups WHERE org_id = %s ORDER BY name", (org_id,))
    assert [r[0] for r in cur.fetchall()] == ["fresh", "writing"]
    assert objects(s3, bucket, "old-1") == [] and objects(s3, bucket, "old-2") == []
    assert len(objects(s3, bucket, "fresh")) == 4 and len(objects(s3, bucket, "writing")) == 4
    audit = client.json("/audit").json()["entries"]
    expired = sorted(e["target"] for e in audit if e["action"] == "backup.expire")
    assert expired == ["old-1", "old-2"]
    assert '"objects_deleted": 4' in [e for e in audit if e["target"] == "old-1"][0]["detail"]


def test_scheduler_stops_cleanly_on_sigterm(stack):
    p = subprocess.Popen([os.path.join(BUILD, "stowage-scheduler"), "-c", stack.conf], stderr=subprocess.PIPE, text=True)
    time.sleep(1)
    p.terminate()
    assert p.wait(timeout=10) == 0
    assert "scheduler stopped" in p.stderr.read()


def test_schedule_preview_explains_the_next_five_runs(admin):
    r = admin.http.get(admin.stack.url + "/schedule/preview", params={"kind": "daily", "at": "02:30", "tz": "Asia/Shanghai"},
                       headers={"Accept": "application/json"})
    body = r.json()
    assert r.status_code == 200 and body["cron"] == "30 2 * * *"
    assert len(body["next_runs"]) == 5 and all("02:30 CST" in t for t in body["next_runs"])
    r = admin.http.get(admin.stack.url + "/schedule/preview", params={"kind": "cron", "cron": "61 * * * *"},
                       headers={"Accept": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "Cron expression: minute: 61-61 is outside 0-59"
    r = admin.http.get(admin.stack.url + "/schedule/preview", params={"kind": "cron", "cron": "* * * * *", "tz": "Nowhere/X"})
    assert r.status_code == 422 and "not a known time zone" in r.text
