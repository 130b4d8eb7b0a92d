"""Per-cluster limits (issue 16): the Limits page (validation naming the field and line, audit,
JSON, another organisation's cluster), the job claim honouring a cluster's own concurrency, and
the data mover's bandwidth windows for real: against MinIO, a run limited to a rate takes at
least the time the rate implies, an unlimited window is not throttled, and a window that ends
during a run changes the rate then; in a mover pod on a real node, the runner reads the
cluster's windows in its time zone and the pod is paced by them.

A lower bound on a limited run's time is what the limit means (correctness), not a speed claim.

Run: cd tests/integration && STOWAGE_BUILD=../../build/asan /usr/bin/python3 -m pytest test_bandwidth.py
"""
import json
import os
import subprocess
import time
import urllib.parse

import psycopg2
import pytest

from conftest import unique
from fixtures_testenv import kubectl
from test_mover_pod import mover_image, vols  # noqa: F401 (fixtures)
from test_mover_volume import MOVER, common, create_bucket, keyfile  # noqa: F401 (fixture)
from test_real_node import real_pod, run_pod
from test_clusters_repositories import add_cluster as console_add_cluster

pytest_plugins = ["fixtures_testenv"]
MB = 1000 * 1000


def org_of(stack, client):
    conn = psycopg2.connect(stack.pg_dsn_owner)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM stowage.orgs WHERE name = %s", (client.org,))
        org = cur.fetchone()[0]
    conn.close()
    return org


def add_cluster(client, testenv, name="prod"):
    """A cluster added through the console (its token sealed as the product seals it), its id."""
    r = console_add_cluster(client, testenv, name)
    assert r.status_code == 303, r.text[:500]
    return [c["id"] for c in client.json("/clusters").json()["clusters"] if c["name"] == name][0]


def owner_rows(stack, sql, params=()):
    conn = psycopg2.connect(stack.pg_dsn_owner)
    with conn, conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    conn.close()
    return rows


# ---- the Limits page ----

def test_limits_page_saves_windows_zone_and_concurrency_and_audits(stack, admin, testenv):
    cid = add_cluster(admin, testenv)
    page = admin.get(f"/clusters/{cid}")
    assert f"/clusters/{cid}/limits" in page.text
    r = admin.post(f"/clusters/{cid}/limits", {
        "time_zone": "Europe/Paris", "concurrency": "1",
        "bandwidth": "both 10MB/s mon-fri 08:00-20:00\r\n\r\nupload 2MiB/s sat,sun 22:00-06:00\r\n"})
    assert r.status_code == 303, r.text[:500]
    j = admin.json(f"/clusters/{cid}/limits").json()
    assert j["fields"]["time_zone"]["value"] == "Europe/Paris"
    assert j["fields"]["concurrency"]["value"] == "1"
    assert j["fields"]["bandwidth"]["value"] == "both 10MB/s mon-fri 08:00-20:00\nupload 2MiB/s sat,sun 22:00-06:00\n"
    assert j["rules"] == [
        {"direction": "both", "rate": "10MB/s", "bytes_per_second": 10000000, "days": "mon-fri",
         "start": "08:00", "end": "20:00"},
        {"direction": "upload", "rate": "2MiB/s", "bytes_per_second": 2097152, "days": "sat,sun",
         "start": "22:00", "end": "06:00"}]
    assert owner_rows(stack, "SELECT time_zone, concurrency FROM stowage.clusters WHERE id = %s", (cid,)) == \
        [("Europe/Paris", 1)]
    audit = owner_rows(stack, "SELECT action, target, detail::text FROM stowage.audit_log WHERE action = 'cluster.limits' "
                       "AND target = 'prod' AND org_id = %s", (org_of(stack, admin),))
    assert len(audit) == 1 and "10MB/s" in audit[0][2] and "Europe/Paris" in audit[0][2]
    # empty concurrency and no windows: back to the runners' default, unlimited
    r = admin.post(f"/clusters/{cid}/limits", {"time_zone": "UTC", "concurrency": "", "bandwidth": ""})
    assert r.status_code == 303
    assert owner_rows(stack, "SELECT concurrency FROM stowage.clusters WHERE id = %s", (cid,)) == [(None,)]
    assert owner_rows(stack, "SELECT count(*) FROM stowage.cluster_bandwidth_rules WHERE cluster_id = %s", (cid,)) == [(0,)]


@pytest.mark.parametrize("field, value, words", [
    ("bandwidth", "both 10MB/s daily 08:00-20:00\nboth 10Mbit/s daily 08:00-20:00", "Bandwidth windows: line 2: rate:"),
    ("bandwidth", "sideways 1MB/s daily 08:00-09:00", "direction: \"sideways\" is not upload, download or both"),
    ("bandwidth", "both 1MB/s weekdays 08:00-09:00", "days: \"weekdays\""),
    ("bandwidth", "both 1MB/s daily 8-9", "time: \"8-9\" is not START-END"),
    ("bandwidth", "both 1MB/s daily 09:00-09:00", "starts where it ends"),
    ("bandwidth", "both 1B/s daily 08:00-09:00", "outside 1KB/s to 100GB/s"),
    ("bandwidth", "both 1MB/s daily 08:00-09:00\n" * 33, "at most 32 rules"),
    ("time_zone", "Mars/Olympus", "Time zone: \"Mars/Olympus\" is not a known IANA time zone"),
    ("time_zone", "../../etc/passwd", "Time zone:"),
    ("concurrency", "0", "Jobs at once: a whole number from 1 to 64"),
    ("concurrency", "65", "Jobs at once: a whole number from 1 to 64"),
    ("concurrency", "1; DROP TABLE x", "Jobs at once"),
])
def test_limits_refuse_bad_input_naming_the_field_and_write_nothing(stack, admin, testenv, field, value, words):
    cid = add_cluster(admin, testenv)
    form = {"time_zone": "UTC", "concurrency": "2", "bandwidth": "both 5MB/s daily 00:00-24:00", field: value}
    assert admin.post(f"/clusters/{cid}/limits", {"time_zone": "Asia/Tokyo", "concurrency": "3",
                                                  "bandwidth": "upload 1MB/s daily 01:00-02:00"}).status_code == 303
    r = admin.post(f"/clusters/{cid}/limits", form)
    assert r.status_code == 422
    assert words in r.text.replace("&quot;", '"')
    # nothing half-written: the earlier limits stand
    assert owner_rows(stack, "SELECT time_zone, concurrency FROM stowage.clusters WHERE id = %s", (cid,)) == \
        [("Asia/Tokyo", 3)]
    assert owner_rows(stack, "SELECT direction, bytes_per_second FROM stowage.cluster_bandwidth_rules "
                      "WHERE cluster_id = %s", (cid,)) == [("upload", 1000000)]


def test_another_organisations_cluster_limits_are_not_found(stack, admin, client, testenv):
    theirs = add_cluster(admin, testenv, "theirs")
    client.org = unique("Other ")
    client.email = unique("other") + "@example.test"
    client.signup(client.org, client.email)
    assert client.get(f"/clusters/{theirs}/limits").status_code == 404
    r = client.post(f"/clusters/{theirs}/limits", {"time_zone": "UTC", "concurrency": "64",
                                                   "bandwidth": "both 1KB/s daily 00:00-24:00"})
    assert r.status_code == 404
    assert owner_rows(stack, "SELECT concurrency FROM stowage.clusters WHERE id = %s", (theirs,)) == [(None,)]
    assert owner_rows(stack, "SELECT count(*) FROM stowage.cluster_bandwidth_rules WHERE cluster_id = %s",
                      (theirs,)) == [(0,)]
    # nor can a row name another organisation's cluster, even as the owner
    conn = psycopg2.connect(stack.pg_dsn_owner)
    try:
        with pytest.raises(psycopg2.errors.ForeignKeyViolation):
            with conn.cursor() as cur:
                cur.execute("INSERT INTO stowage.cluster_bandwidth_rules (org_id, cluster_id, position, direction, "
                            "bytes_per_second, days, start_minute, end_minute) VALUES (%s, %s, 1, 'both', 1000, 127, 0, 1440)",
                            (org_of(stack, client), theirs))
    finally:
        conn.rollback()
        conn.close()


# ---- the claim ----

def test_a_cluster_with_concurrency_1_holds_its_second_job_while_another_clusters_runs(stack, admin, testenv):
    org = org_of(stack, admin)
    one, other = add_cluster(admin, testenv, "one"), add_cluster(admin, testenv, "other")
    conn = psycopg2.connect(stack.pg_dsn_app.replace("user=stowage_app", "user=stowage_runner"))
    try:
        with conn.cursor() as cur:
            # one transaction, rolled back: the stack's own runners never see these jobs
            cur.execute("SELECT set_config('app.org_id', %s, true)", (str(org),))
            cur.execute("UPDATE stowage.clusters SET concurrency = 1 WHERE id = %s", (one,))

            def add(cluster, state, age_s):
                cur.execute("INSERT INTO stowage.jobs (kind, state, runner_id, cluster_id, queued_at) "
                            "VALUES ('backup', %s, %s, %s, now() - make_interval(secs => %s)) RETURNING id",
                            (state, "elsewhere" if state == "running" else None, cluster, age_s))
                return cur.fetchone()[0]

            add(one, "running", 600)
            waiting = add(one, "queued", 300)		# older, but its cluster is at its own limit of 1
            other_job = add(other, "queued", 10)

            def claim():
                cur.execute("SELECT job_id FROM stowage.claim_job('test-runner', 10, 100) WHERE job_id = ANY(%s)",
                            ([waiting, other_job],))
                row = cur.fetchone()
                return row[0] if row else None

            assert claim() == other_job	# the global limit of 10 would have let `waiting` go first
            assert claim() is None		# still one running on `one`
            cur.execute("UPDATE stowage.clusters SET concurrency = NULL WHERE id = %s", (one,))
            assert claim() == waiting	# the runners' default (10) again
    finally:
        conn.rollback()
        conn.close()


# ---- the mover against MinIO ----

@pytest.fixture
def repo(testenv, tmp_path, keyfile):  # noqa: F811
    bucket = unique("bandwidth-")
    create_bucket(testenv, bucket)
    query = urllib.parse.urlencode({"endpoint": testenv["S3_ENDPOINT"], "region": testenv["S3_REGION"],
                                    "path_style": "1"}, safe=":/")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=testenv["S3_ACCESS_KEY"], AWS_SECRET_ACCESS_KEY=testenv["S3_SECRET_KEY"])
    return common(f"s3://{bucket}/team-a?{query}", keyfile), env


def volume(tmp_path, size):
    src = tmp_path / unique("src")
    src.mkdir()
    (src / "data.bin").write_bytes(os.urandom(size))	# incompressible: every byte is uploaded
    return str(src)


def backup(repo, src, *rate):
    args, env = repo
    start = time.monotonic()
    res = subprocess.run([MOVER, "backup", *args, "--source", src, *rate], capture_output=True, text=True,
                         env=env, timeout=300)
    elapsed = time.monotonic() - start
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    rates = [(o["direction"], o["bytes_per_second"], o["at"]) for o in lines if o.get("phase") == "rate"]
    return lines[-1], rates, elapsed


def test_a_mover_limited_to_2MBps_takes_the_time_the_rate_implies(repo, tmp_path):
    now = int(time.time())
    done, rates, elapsed = backup(repo, volume(tmp_path, 10 * MB), "--rate-upload", f"{now - 60}:{2 * MB}")
    assert done["bytes_written"] >= 10 * MB
    assert [r[:2] for r in rates] == [("upload", 2 * MB)]
    # 10 MB at 2 MB/s is 5 s, less the limiter's burst of a tenth of a second
    assert elapsed >= done["bytes_written"] / (2 * MB) - 0.1
    assert done["rate_wait_ms"] >= 3000


def test_an_unlimited_window_is_not_throttled(repo, tmp_path):
    now = int(time.time())
    # unlimited now, a limit an hour from now: the limiter runs and never waits
    done, rates, _ = backup(repo, volume(tmp_path, 10 * MB), "--rate-upload", f"{now - 60}:0,{now + 3600}:{1 * MB}",
                            "--rate-download", f"{now - 60}:0")
    assert [r[:2] for r in rates] == [("upload", 0)]
    assert done["rate_wait_ms"] == 0
    # no window at all: no limiter, no rate lines
    done, rates, _ = backup(repo, volume(tmp_path, 1 * MB))
    assert rates == [] and done["rate_wait_ms"] == 0


def test_a_window_that_ends_during_the_run_lifts_the_limit_then(repo, tmp_path):
    now = int(time.time())
    boundary = now + 12
    # 24 MB at 1 MB/s would wait about 24 s; the window ends 12 s in and the rest goes unlimited
    done, rates, elapsed = backup(repo, volume(tmp_path, 24 * MB), "--rate-upload", f"{now - 60}:{MB},{boundary}:0")
    assert [r[:2] for r in rates] == [("upload", MB), ("upload", 0)], rates
    assert rates[1][2] >= boundary
    assert 0 < done["rate_wait_ms"] < 20000
    # (a window that starts mid-run: src/core/test_rate_window.c, on a simulated clock; a store
    # object already on its way when it starts goes at the link's speed, see docs/operations.md)


def test_a_schedule_that_is_not_one_is_refused_naming_the_option(repo, tmp_path):
    args, env = repo
    for bad in ("x", "100:5", "200:1000,100:0", "100:1000;rm -rf /"):
        res = subprocess.run([MOVER, "backup", *args, "--source", str(tmp_path), "--rate-upload", bad],
                             capture_output=True, text=True, env=env, timeout=60)
        assert res.returncode == 2 and "option --rate-upload:" in res.stderr, (bad, res.stderr)


# ---- a mover pod on a real node, paced by the cluster's windows as the runner reads them ----

def test_a_mover_pod_is_paced_by_the_window_open_now_in_the_clusters_time_zone(vols, testenv):
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo
    zone = "Pacific/Chatham"	# +12:45/+13:45: a window in UTC or the machine's zone would be elsewhere
    local = datetime.now(ZoneInfo(zone))
    opened, closes = local - timedelta(minutes=60), local + timedelta(minutes=60)
    later = local + timedelta(hours=3)
    conn = psycopg2.connect(vols.stack.pg_dsn_owner)
    conn.autocommit = True
    # the row only holds the windows (itest_volumes gets the token from its environment); its
    # made-up token would stop a key rotation of the shared stack, so it is removed afterwards
    with conn.cursor() as cur:
        cur.execute("INSERT INTO stowage.clusters (org_id, name, api_url, token_enc, key_id, time_zone) "
                    "VALUES (%s, %s, 'https://203.0.113.1', '\\x00', 'k1', %s) RETURNING id",
                    (vols.org_id, unique("paced-"), zone))
        cid = cur.fetchone()[0]
        minute = lambda t: t.hour * 60 + t.minute  # noqa: E731
        # open now: uploads at 2 MB/s; one three hours on (not now) would allow only 1KB/s
        for pos, (bps, start, end) in enumerate([(2 * MB, opened, closes), (1000, later, later + timedelta(minutes=30))]):
            cur.execute("INSERT INTO stowage.cluster_bandwidth_rules (org_id, cluster_id, position, direction, "
                        "bytes_per_second, days, start_minute, end_minute) VALUES (%s, %s, %s, 'upload', %s, 127, %s, %s)",
                        (vols.org_id, cid, pos + 1, bps, minute(start), minute(end) or 1440))
    vols.cluster_id = cid
    try:
        ns = unique("paced")
        kubectl(testenv, "source", "create", "namespace", ns)
        kubectl(testenv, "source", "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": ns},
            "spec": {"storageClassName": "local-path", "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}))
        writer = real_pod(testenv, ns, "writer", ["sh", "-c", "head -c 8000000 /dev/urandom > /data/blob && echo written"],
                          volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                          mounts=[{"name": "data", "mountPath": "/data"}])
        run_pod(testenv, "source", writer, phase="Succeeded", timeout=180)
        kubectl(testenv, "source", "-n", ns, "delete", "pod", "writer", "--wait=true")
        job = vols.new_job("backup")
        res = vols.run("source", job, "backup", unique("bk"), ns, json.dumps({f"{ns}/data": "filesystem"}))
        [volume] = json.loads(res.stdout)
        assert volume["bytes"] == 8000000, volume
        # 8 MB at 2 MB/s: about 4 s of waiting in the pod, less the time the upload itself took
        assert volume["rate_wait_ms"] > 1000, volume
        assert volume["duration_ms"] >= 8000000 / (2 * MB) * 1000 - 100, volume
        logs = [m for (m,) in owner_rows(vols.stack, "SELECT message FROM stowage.job_logs WHERE job_id = %s", (job,))]
        assert any("upload rate now 2MB/s" in m for m in logs), logs
        assert not any("1KB/s" in m for m in logs), logs
    finally:
        vols.cluster_id = 1
        with conn.cursor() as cur:
            cur.execute("DELETE FROM stowage.clusters WHERE id = %s", (cid,))
        conn.close()
