"""Notifications against the real servers: a real SMTP server on loopback (aiosmtpd) receives the
mail of a backup job that really failed, a webhook receiver on loopback (http.server) receives its
signed POST (verified here with the secret the console showed once), first answering 500 so that
the runner retries; the scheduler's daily report is delivered; a webhook URL on loopback or the
metadata address is refused on its field for an organisation the operator did not opt in; another
organisation neither sees nor changes the settings (docs/notifications.md)."""
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import threading
import time

import boto3
import pytest

from conftest import BUILD, Client, own_stack, free_port, unique, owner_query

pytest_plugins = ["fixtures_testenv"]


@pytest.fixture(scope="module")
def hosted(testenv):
    """A stack like a hosted deployment: no range of the deny list opted in for everyone, mail on,
    retries after 1 s (doubling) so that the retry is seen soon."""
    with own_stack("notify", {"STOWAGE_ALLOWED_PRIVATE_NETWORKS": "", "STOWAGE_NOTIFICATION_RETRY_SECONDS": "1"}) as s:
        yield s


def signup(s):
    c = Client(s)
    c.org = unique("Notify Org ")
    c.email = unique("notify") + "@example.test"
    c.signup(c.org, c.email)
    c.org_id = owner_query(s, "SELECT id FROM stowage.orgs WHERE name = %s", (c.org,))[0][0]
    return c


def send_json(c, path, body):
    """A JSON POST as a script would send it with a browser session."""
    return c.http.post(c.stack.url + path, json=body, allow_redirects=False,
                       headers={"Accept": "application/json", "X-CSRF-Token": c.csrf()})


class Receiver:
    """A webhook receiver on loopback: answers the first `failures` POSTs with 500, then 200, and
    keeps every request (headers, raw body)."""

    def __init__(self, failures=1):
        self.requests = []
        self.cond = threading.Condition()
        self.failures = failures
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.cond:
                    receiver.requests.append((dict(self.headers.items()), body))
                    status = 500 if len(receiver.requests) <= receiver.failures else 200
                    receiver.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}/stowage-hook"

    def wait(self, count, timeout=60):
        deadline = time.time() + timeout
        with self.cond:
            while len(self.requests) < count:
                left = deadline - time.time()
                assert left > 0, f"{len(self.requests)} webhook POSTs within {timeout}s, waited for {count}"
                self.cond.wait(left)
            return list(self.requests)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def verify(secret, headers, body, tolerance=300):
    """The receiver's check of docs/notifications.md."""
    ts = headers["X-Stowage-Timestamp"]
    if not ts.isdigit() or abs(time.time() - int(ts)) > tolerance:
        return False
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest("sha256=" + mac, headers["X-Stowage-Signature"])


@pytest.fixture(scope="module")
def opted(hosted, testenv):
    """An organisation the operator opted loopback in for (its clusters, MinIO and its webhook
    receiver listen there), with the source cluster, a repository and a backup plan."""
    c = signup(hosted)
    owner_query(hosted, "INSERT INTO stowage.org_network_opt_ins (org_id, networks, reason) VALUES (%s, %s, %s)",
                (c.org_id, "127.0.0.0/8, ::1/128", "the test servers listen on loopback"))
    with open(testenv["SOURCE_CA_FILE"]) as f:
        ca = f.read()
    r = c.post("/clusters", {"name": "source", "api_url": testenv["SOURCE_API_URL"],
                             "token": testenv["SOURCE_ADMIN_TOKEN"], "ca_pem": ca})
    assert r.status_code == 303, r.text[:1000]
    c.bucket = unique("notify-")
    c.s3 = boto3.client("s3", endpoint_url=testenv["S3_ENDPOINT"], region_name=testenv["S3_REGION"],
                        aws_access_key_id=testenv["S3_ACCESS_KEY"], aws_secret_access_key=testenv["S3_SECRET_KEY"])
    c.s3.create_bucket(Bucket=c.bucket)
    r = c.post("/repositories", {"name": "minio", "kind": "s3-compatible", "bucket": c.bucket,
                                 "region": testenv["S3_REGION"], "endpoint": testenv["S3_ENDPOINT"],
                                 "access_key": testenv["S3_ACCESS_KEY"], "secret_key": testenv["S3_SECRET_KEY"]})
    assert r.status_code == 303, r.text[:1000]
    c.cluster = cluster = c.json("/clusters").json()["clusters"][0]["id"]
    c.repo = repo = c.json("/repositories").json()["repositories"][0]["id"]
    c.plan = unique("nightly-")
    c.plan_id = owner_query(hosted, "INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces) "
                            "VALUES (%s, %s, %s, %s, ARRAY['default']) RETURNING id", (c.org_id, c.plan, cluster, repo))[0][0]
    return c


@pytest.fixture(scope="module")
def receiver():
    r = Receiver(failures=1)
    yield r
    r.stop()


def test_a_webhook_to_loopback_or_the_metadata_address_is_refused_on_its_field(hosted):
    attacker = signup(hosted)  # no opt-in: the deny list applies in full
    for url, why in ((f"http://127.0.0.1:{free_port()}/x", "loopback"),
                     ("http://169.254.169.254/latest/meta-data/", "link-local"),
                     ("http://[::1]:8080/x", "loopback"),
                     ("http://10.0.0.7/x", "10.0.0.0/8")):
        r = send_json(attacker, "/notifications", {"emails": "", "webhook_url": url, "on_failure": True})
        assert r.status_code == 422, r.text[:500]
        error = r.json()["fields"]["webhook_url"]["error"]
        assert error.startswith("Webhook URL:") and why in error, error
        assert "webhook_secret" not in r.json()
    settings = attacker.json("/notifications").json()["settings"]
    assert settings["stored"] is False and settings["webhook_url"] == ""
    assert owner_query(hosted, "SELECT count(*) FROM stowage.notification_settings WHERE org_id = %s",
                       (attacker.org_id,))[0][0] == 0
    # an address that is not one a mail may go to (a header injection) is refused on its field too
    r = send_json(attacker, "/notifications", {"emails": "ops@example.test\r\nBcc: eve@evil.test"})
    assert r.status_code == 422 and r.json()["fields"]["emails"]["error"].startswith("Mail to:"), r.text[:500]


def test_the_backup_plan_wizard_takes_the_plans_own_addresses(opted):
    name = unique("wizard-")
    plan = {"name": name, "cluster_id": opted.cluster, "repository_id": opted.repo, "schedule_kind": "manual",
            "retention_days": "7", "namespaces": "default", "volume_methods": "", "hook_script": ""}
    first = {k: plan[k] for k in ("name", "cluster_id", "repository_id", "schedule_kind", "retention_days")}
    r = opted.post("/backup-plans/new?step=2", dict(first, notify_emails="ops@example.test, not-an-address"))
    assert r.status_code == 422 and "is not an address a mail may go to" in r.text, r.text[:500]
    r = opted.post("/backup-plans", dict(plan, notify_emails="ops@example.test, oncall@example.test"))
    assert r.status_code == 303, r.text[:1000]
    plan_id = [p for p in opted.json("/backup-plans").json()["plans"] if p["name"] == name][0]["id"]
    settings = opted.json(f"/backup-plans/{plan_id}/notifications").json()["settings"]
    assert settings["inherit"] is False and settings["emails"] == "ops@example.test, oncall@example.test"
    assert settings["on_failure"] is True and settings["on_success"] is False
    assert "oncall@example.test" in opted.get(f"/backup-plans/{plan_id}/edit").text
    # none left: the plan follows the organisation's defaults again
    r = send_json(opted, f"/backup-plans/{plan_id}/notifications", {"inherit": True})
    assert r.status_code == 200 and r.json()["settings"]["inherit"] is True, r.text[:500]


def test_a_failed_backup_is_mailed_and_posted_signed_and_retried(hosted, opted, receiver):
    org_ops, plan_ops = unique("org-ops") + "@example.test", unique("plan-ops") + "@example.test"
    r = send_json(opted, "/notifications", {"emails": org_ops, "on_failure": True, "on_partial": True})
    assert r.status_code == 200 and r.json()["settings"]["emails"] == org_ops, r.text[:500]
    # the plan's own settings replace the organisation's for its jobs
    r = send_json(opted, f"/backup-plans/{opted.plan_id}/notifications",
                  {"emails": plan_ops, "webhook_url": receiver.url, "on_failure": True})
    assert r.status_code == 200, r.text[:500]
    secret = r.json()["webhook_secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    again = opted.json(f"/backup-plans/{opted.plan_id}/notifications").json()
    assert "webhook_secret" not in again and again["settings"]["webhook_url"] == receiver.url
    assert secret not in json.dumps(again)
    sealed = owner_query(hosted, "SELECT webhook_secret_enc FROM stowage.notification_settings WHERE backup_plan_id = %s",
                         (opted.plan_id,))[0][0]
    assert secret.encode() not in bytes(sealed)

    # the backup really fails: its repository's bucket is gone
    for obj in opted.s3.list_objects_v2(Bucket=opted.bucket).get("Contents", []):
        opted.s3.delete_object(Bucket=opted.bucket, Key=obj["Key"])
    opted.s3.delete_bucket(Bucket=opted.bucket)
    r = opted.post(f"/backup-plans/{opted.plan_id}/backup", {"confirm": "yes"})
    assert r.status_code == 303, r.text[:500]
    job_id = int(r.headers["Location"].rsplit("/", 1)[1])

    text = hosted.mail.wait_subject(plan_ops, f"[Stowage] Backup {opted.plan} failed", timeout=180)
    assert f"Backup job {job_id} of plan {opted.plan}" in text and f"/jobs/{job_id}" in text
    assert "Error:" in text
    state, error = owner_query(hosted, "SELECT state, error FROM stowage.jobs WHERE id = %s", (job_id,))[0]
    assert state == "failed" and error in text
    assert not [m for m in hosted.mail.messages if m[0] == org_ops.lower()], "the plan's settings replace the default"

    first, second = receiver.wait(2)
    for headers, body in (first, second):
        assert headers["Content-Type"] == "application/json"
        assert verify(secret, headers, body), headers
        assert not verify(secret + "x", headers, body)
        assert not verify(secret, headers, body + b" ")
    one, two = json.loads(first[1]), json.loads(second[1])
    assert one["event"] == "job.failed" and one["job"]["id"] == job_id and one["job"]["plan"] == opted.plan
    assert one["job"]["state"] == "failed" and one["organisation"] == opted.org
    assert one["delivery"] == two["delivery"] and (one["attempt"], two["attempt"]) == (1, 2)

    deadline = time.time() + 30
    while True:
        rows = {d["channel"]: d for d in opted.json("/notifications").json()["deliveries"] if d["job_id"] == job_id}
        if rows.get("webhook", {}).get("state") == "delivered" and rows.get("email", {}).get("state") == "delivered":
            break
        assert time.time() < deadline, rows
        time.sleep(0.2)
    assert rows["webhook"]["attempts"] == 2 and rows["webhook"]["delivered"]
    assert rows["email"]["attempts"] == 1 and rows["email"]["target"] == plan_ops
    opted.webhook_secret = secret


def test_key_rotation_reseals_the_webhook_secret(hosted, opted, receiver, tmp_path):
    """stowage-keys rotate re-seals the webhook secret with the other secrets (and passes over
    settings without a webhook); rotated and back, the runner signs with the same secret."""
    before = owner_query(hosted, "SELECT webhook_secret_enc FROM stowage.notification_settings WHERE backup_plan_id = %s",
                         (opted.plan_id,))[0][0]
    new_key = str(tmp_path / "new.key")
    out = hosted.rotate_key(new_key)
    assert out.returncode == 0, out.stderr
    assert opted.webhook_secret not in out.stdout + out.stderr
    assert owner_query(hosted, "SELECT webhook_secret_enc FROM stowage.notification_settings WHERE backup_plan_id = %s",
                       (opted.plan_id,))[0][0] != before
    back = hosted.rotate_key_back(new_key, str(tmp_path / "new.conf"))
    assert back.returncode == 0, back.stderr
    seen = len(receiver.requests)
    r = opted.post(f"/backup-plans/{opted.plan_id}/backup", {"confirm": "yes"})
    assert r.status_code == 303, r.text[:500]
    job_id = int(r.headers["Location"].rsplit("/", 1)[1])
    headers, body = receiver.wait(seen + 1, timeout=180)[seen]
    assert json.loads(body)["job"]["id"] == job_id and verify(opted.webhook_secret, headers, body)


def test_the_daily_report_is_delivered_once_at_its_hour(hosted, opted):
    ops = unique("report") + "@example.test"
    # the scheduler's clock a day after the failed job of the test above (less 5 s, so that the
    # report's day still holds it), and the report's hour that clock's: the hour has come
    failed_at = owner_query(hosted, "SELECT extract(epoch FROM max(finished_at))::bigint FROM stowage.jobs "
                            "WHERE org_id = %s AND state = 'failed'", (opted.org_id,))[0][0]
    assert failed_at, "the failed job of the test above"
    tomorrow = failed_at + 86400 - 5
    r = send_json(opted, "/notifications", {"emails": ops, "on_failure": True, "report": "daily",
                                            "report_hour": time.gmtime(tomorrow).tm_hour})
    assert r.status_code == 200 and r.json()["settings"]["report"] == "daily", r.text[:500]
    # one report however many schedulers run, however often
    for _ in range(2):
        procs = [subprocess.Popen([os.path.join(BUILD, "stowage-scheduler"), "-c", hosted.conf, "--once",
                                   "--now", str(tomorrow)], stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for p in procs:
            p.communicate(timeout=60)
            assert p.returncode == 0
    text = hosted.mail.wait_subject(ops, f"[Stowage] Daily protection report of {opted.org}", timeout=60)
    assert f"{opted.plan}: NO GOOD BACKUP" in text, text
    failed = owner_query(hosted, "SELECT count(*) FROM stowage.jobs WHERE org_id = %s AND state = 'failed' "
                         "AND finished_at > to_timestamp(%s)", (opted.org_id, tomorrow - 86400))[0][0]
    assert failed >= 1 and f"{failed} failed jobs in the period" in text and "failed backup job" in text, text
    assert owner_query(hosted, "SELECT count(*) FROM stowage.notification_deliveries WHERE org_id = %s "
                       "AND event = 'report'", (opted.org_id,))[0][0] == 1


def test_another_organisation_neither_sees_nor_changes_the_settings(hosted, opted):
    other = signup(hosted)
    page = other.json("/notifications").json()
    assert page["settings"]["stored"] is False and page["deliveries"] == []
    for path in (f"/backup-plans/{opted.plan_id}/notifications",):
        assert other.json(path).status_code == 404
        r = send_json(other, path, {"emails": "eve@evil.test", "webhook_url": "https://evil.example/x"})
        assert r.status_code == 404, r.text[:300]
    mine = opted.json(f"/backup-plans/{opted.plan_id}/notifications").json()["settings"]
    assert "eve@evil.test" not in mine["emails"] and "evil" not in mine["webhook_url"]
    # a viewer of the organisation reads the settings but cannot change them
    viewer = opted.invite(unique("viewer") + "@example.test", "viewer")
    assert viewer.json("/notifications").status_code == 200
    assert send_json(viewer, "/notifications", {"emails": "eve@evil.test"}).status_code == 403
