"""Backup and restore plans through the console, against the real clusters and MinIO of the
test environment: every wizard step posted as a browser would (hidden fields carry the earlier
steps), bad input refused at each step with the field named, the live namespace and claim lists,
the finishing checks in words, "Backup" and "Activate" queuing jobs the real runners pick up,
the queue position, cancel, the job page and its log download, roles and tenants."""
import html
import os
import re
import subprocess
import time

import boto3
import psycopg2
import pytest

from conftest import TOP, Client, unique
from fixtures_testenv import kubectl


def ca_pem(testenv, cluster):
    with open(testenv[f"{cluster}_CA_FILE"]) as f:
        return f.read()


def add_cluster(c, testenv, name, which="SOURCE"):
    r = c.post("/clusters", {"name": name, "api_url": testenv[f"{which}_API_URL"],
                             "token": testenv[f"{which}_ADMIN_TOKEN"], "ca_pem": ca_pem(testenv, which)})
    assert r.status_code == 303, r.text
    return [x for x in c.json("/clusters").json()["clusters"] if x["name"] == name][0]["id"]


def add_repo(c, testenv, name, bucket, secret=None, **extra):
    data = {"name": name, "kind": "s3-compatible", "bucket": bucket, "region": testenv["S3_REGION"],
            "endpoint": testenv["S3_ENDPOINT"], "access_key": testenv["S3_ACCESS_KEY"],
            "secret_key": secret or testenv["S3_SECRET_KEY"], "prefix": unique("p")}
    data.update(extra)
    r = c.post("/repositories", data)
    assert r.status_code == 303, r.text
    return [x for x in c.json("/repositories").json()["repositories"] if x["name"] == name][0]["id"]


def page_text(r):
    """The page as a reader sees it: entities decoded (the templates escape '=' too)."""
    return html.unescape(r.text)


def post_json(c, path, data):
    data = dict(data)
    data.setdefault("_csrf", c.csrf())
    kw = dict(headers={"Accept": "application/json"}, allow_redirects=False)
    return c.settle(c.http.post(c.stack.url + path, data=data, **kw), path, data, kw)


@pytest.fixture(scope="module")
def bucket(testenv):
    s3 = boto3.client("s3", endpoint_url=testenv["S3_ENDPOINT"], region_name=testenv["S3_REGION"],
                      aws_access_key_id=testenv["S3_ACCESS_KEY"], aws_secret_access_key=testenv["S3_SECRET_KEY"])
    name = unique("plans-")
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def shop(testenv):
    """The fixture application in a namespace of its own on the source cluster."""
    ns = unique("shop-")
    subprocess.run([os.path.join(TOP, "scripts", "testenv", "fixture-app"), testenv["SOURCE_KUBECONFIG"], ns,
                    testenv["SOURCE_VOLUME_DIR"]], check=True, env=dict(os.environ, KUBECTL=testenv["KUBECTL"]))
    return ns


@pytest.fixture
def org(stack, testenv, bucket):
    """A fresh organisation with the source and target clusters and a repository."""
    c = Client(stack)
    c.org = unique("Plans Org ")
    c.email = unique("planner") + "@example.test"
    c.signup(c.org, c.email)
    c.source = add_cluster(c, testenv, "source")
    c.target = add_cluster(c, testenv, "target", "TARGET")
    c.repo = add_repo(c, testenv, "minio", bucket)
    return c


def step1(org, **over):
    data = {"name": "shop-daily", "cluster_id": org.source, "repository_id": org.repo, "schedule_kind": "daily",
            "at_time": "02:30", "time_zone": "Europe/Paris", "retention_days": "14"}
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def full_plan(org, ns, **over):
    data = step1(org)
    data.update({"namespaces": ns, "volume_methods": f"{ns}/wordpress-data=filesystem", "hook_script": ""})
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def create_plan(org, ns, **over):
    r = org.post("/backup-plans", full_plan(org, ns, **over))
    assert r.status_code == 303, r.text
    plan = [p for p in org.json("/backup-plans").json()["plans"] if p["name"] == over.get("name", "shop-daily")][0]
    assert r.headers["Location"] == f"/backup-plans/{plan['id']}/jobs"
    return plan


def wait_job(c, job_id, states, timeout=60):
    deadline = time.time() + timeout
    while True:
        job = c.json(f"/jobs/{job_id}").json()["job"]
        if job["state"] in states or time.time() > deadline:
            return job
        time.sleep(0.3)


def owner(stack):
    return psycopg2.connect(stack.pg_dsn_owner)


def org_id_of(stack, email):
    conn = owner(stack)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT m.org_id FROM stowage.memberships m JOIN stowage.users u ON u.id = m.user_id "
                    "WHERE u.email = %s", (email,))
        oid = cur.fetchone()[0]
    conn.close()
    return oid


# ---- the backup wizard, step by step ----

def test_step1_refuses_bad_input_naming_the_field(org):
    r = org.get("/backup-plans/new?step=1")
    assert r.status_code == 200 and 'name="name"' in page_text(r) and "source" in page_text(r) and "minio" in page_text(r)
    cases = [
        (step1(org, name="Bad Name"), "Name: use lowercase letters"),
        (step1(org, cluster_id="999999"), "Cluster: choose one of your clusters"),
        (step1(org, repository_id="x"), "Repository: must be a whole number"),
        (step1(org, at_time=""), "Time: a time of day as HH:MM"),
        (step1(org, at_time="24:00"), "Time: a time of day as HH:MM"),
        (step1(org, schedule_kind="weekly"), "Day: choose the day of the week"),
        (step1(org, schedule_kind="cron", cron="61 2 * * *"), "Cron expression: minute: 61-61 is outside 0-59"),
        (step1(org, schedule_kind="cron", cron="0 2 * *"), "Cron expression: needs five fields"),
        (step1(org, schedule_kind="cron", cron=""), "Cron expression: required for a cron schedule"),
        (step1(org, schedule_kind="yearly"), "Policy: choose one of the offered options"),
        (step1(org, time_zone="Mars/Olympus"), "Time zone: not a known IANA time zone"),
        (step1(org, retention_days="0"), "Retention (days): must be a whole number from 1 to 3650"),
        (dict(step1(org), bogus="1"), "The form has a field that belongs to no step"),
    ]
    for data, message in cases:
        r = org.post("/backup-plans/new?step=2", data)
        assert r.status_code == 422, (data, r.text[:300])
        assert message in page_text(r), (message, data)
        assert 'name="at_time"' in page_text(r)  # step 1 shown again, not step 2


def test_wizard_preselects_the_only_cluster_and_repository(stack, testenv, bucket, org):
    c = Client(stack)
    c.signup(unique("Single Org "), unique("single") + "@example.test")
    cluster, repo = add_cluster(c, testenv, "source"), add_repo(c, testenv, "minio", bucket)
    view = c.json("/backup-plans/new").json()
    assert [(o["id"], o["selected"]) for o in view["clusters"]] == [(str(cluster), True)]
    assert [(o["id"], o["selected"]) for o in view["repositories"]] == [(str(repo), True)]
    # two clusters: the user chooses
    view = org.json("/backup-plans/new").json()
    assert len(view["clusters"]) == 2 and not any(o["selected"] for o in view["clusters"])
    assert [o["selected"] for o in view["repositories"]] == [True]


def test_step2_lists_namespaces_live_filters_and_checks(org, shop):
    r = post_json(org, "/backup-plans/new?step=2", step1(org))
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["step"] == 2
    names = [n["name"] for n in view["namespace_list"]]
    assert shop in names and "kube-system" in names
    hidden = {h["name"]: h["value"] for h in view["hidden"]}
    assert hidden["name"] == "shop-daily" and hidden["time_zone"] == "Europe/Paris"
    # the server-side filter; a chosen namespace hidden by it still travels
    r = post_json(org, "/backup-plans/new?step=2", dict(step1(org), q="shop-", namespaces="default"))
    view = r.json()
    assert {n["name"] for n in view["namespace_list"]} and all("shop-" in n["name"] for n in view["namespace_list"])
    assert view["namespaces_kept"] == ["default"]
    r = org.get("/backup-plans/new?" + "&".join(f"{k}={v}" for k, v in step1(org).items()) + "&step=2&q=kube")
    assert r.status_code == 200 and 'value="kube-system"' in page_text(r) and f'value="{shop}"' not in page_text(r)
    # bad input on step 2
    for ns, message in (("", "Namespaces: choose at least one"),
                        ("Bad_NS", 'Namespaces: "Bad_NS" is not a namespace name'),
                        ("no-such-ns-here", "Namespaces: no-such-ns-here does not exist in the cluster")):
        r = org.post("/backup-plans/new?step=3", dict(step1(org), namespaces=ns))
        assert r.status_code == 422, ns
        assert message in page_text(r), (ns, r.text[:2000])
        assert 'id="ns-list"' in page_text(r)
    # the label selector, by the API server's grammar: what it would refuse is refused here, in words
    for sel, message in (("app=<x>", 'the value "<x>" of key app is not a label value'),
                         ("app=a/b", 'the value "a/b" of key app is not a label value'),
                         ("app=-web", 'the value "-web" of key app is not a label value'),
                         ("-app=web", 'the key "-app" is not a label key'),
                         ("my app=web", "after the key my comes"),
                         ("app in (a,b", "',' or ')' expected")):
        r = org.post("/backup-plans/new?step=3", dict(step1(org), namespaces=shop, label_selector=sel))
        assert r.status_code == 422 and "Label selector: " + message in page_text(r), (sel, page_text(r)[-1500:])


def test_steps_3_to_5_and_back(org, shop):
    # step 3: the claims of the namespace, found live
    r = post_json(org, "/backup-plans/new?step=3", dict(step1(org), namespaces=shop))
    assert r.status_code == 200, r.text
    claims = {(c["namespace"], c["name"]): c for c in r.json()["claims"]}
    assert set(claims) == {(shop, "wordpress-data"), (shop, "data-mysql-0"), (shop, "data-mysql-1")}
    assert claims[(shop, "wordpress-data")]["phase"] == "Bound"
    assert claims[(shop, "wordpress-data")]["storage_class"] == "fast-ssd"
    # the label selector narrows them
    r = post_json(org, "/backup-plans/new?step=3", dict(step1(org), namespaces=shop, label_selector="app=wordpress"))
    assert [c["name"] for c in r.json()["claims"]] == ["wordpress-data"]
    # step 4: one select per claim, named method:<ns>/<claim>
    r = org.post("/backup-plans/new?step=4", dict(step1(org), namespaces=shop))
    assert r.status_code == 200
    assert f'name="method:{shop}/wordpress-data"' in page_text(r) and f'name="method:{shop}/data-mysql-1"' in page_text(r)
    r = org.post("/backup-plans/new?step=5", {**step1(org), "namespaces": shop,
                                               f"method:{shop}/wordpress-data": "teleport"})
    assert r.status_code == 422 and "Copy methods:" in page_text(r) and "is not namespace/claim=filesystem, snapshot or snapshot+move" in page_text(r)
    # step 5: the methods travel as one hidden field
    r = post_json(org, "/backup-plans/new?step=5", {**step1(org), "namespaces": shop,
                                                     f"method:{shop}/wordpress-data": "snapshot",
                                                     f"method:{shop}/data-mysql-0": "filesystem",
                                                     f"method:{shop}/data-mysql-1": "snapshot+move"})
    assert r.status_code == 200 and r.json()["step"] == 5
    hidden = {h["name"]: h["value"] for h in r.json()["hidden"]}
    assert hidden["volume_methods"] == (f"{shop}/wordpress-data=snapshot\n{shop}/data-mysql-0=filesystem\n"
                                        f"{shop}/data-mysql-1=snapshot+move")
    # Back from step 5 to step 4 keeps the choice
    r = post_json(org, "/backup-plans/new?step=4", {**hidden, "hook_script": "-- quiesce"})
    assert r.status_code == 200 and r.json()["step"] == 4
    chosen = {c["name"]: (c["snapshot"], c["snapshot_move"]) for c in r.json()["claims"]}
    assert chosen == {"wordpress-data": (True, False), "data-mysql-0": (False, False), "data-mysql-1": (False, True)}
    assert {h["name"]: h["value"] for h in r.json()["hidden"]}["hook_script"] == "-- quiesce"
    # Back to step 1 shows its values again, without errors
    r = post_json(org, "/backup-plans/new?step=1", hidden)
    assert r.json()["fields"]["at_time"]["value"] == "02:30" and "error" not in r.json()["fields"]["name"]


def test_finish_checks_saves_and_audits(org, shop, stack):
    data = full_plan(org, shop, volume_methods=f"{shop}/wordpress-data=snapshot",
                     hook_script='log("quiescing")', label_selector="app.kubernetes.io/part-of!=nothing",
                     include_resources="deployments.apps, *.example.com,configmaps", exclude_resources="secrets")
    r = org.post("/backup-plans", data)
    assert r.status_code == 303, r.text
    page = page_text(org.get(r.headers["Location"], allow_redirects=True))
    assert "Backup plan shop-daily saved" in page and "snapshot class found" in page
    plan = [p for p in org.json("/backup-plans").json()["plans"] if p["name"] == "shop-daily"][0]
    assert plan["namespaces"] == shop and plan["schedule"] == "Daily at 02:30 (Europe/Paris)"
    assert plan["retention_days"] == 14 and plan["last_job_state"] == ""
    conn = owner(stack)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT schedule_cron, volume_methods, hooks, label_selector, namespaces, include_resources, "
                    "exclude_resources FROM stowage.backup_plans WHERE id = %s", (plan["id"],))
        cron, methods, hooks, selector, namespaces, include, exclude = cur.fetchone()
    conn.close()
    assert include == ["deployments.apps", "*.example.com", "configmaps"] and exclude == ["secrets"]
    assert cron == "30 2 * * *"
    assert methods == {f"{shop}/wordpress-data": "snapshot"}
    assert hooks == [{"inline": 'log("quiescing")'}]
    assert selector == "app.kubernetes.io/part-of!=nothing" and namespaces == [shop]
    assert "backup_plan.create" in page_text(org.get("/audit"))
    # Finish checks the selector again (a crafted request skips the step): refused, nothing saved
    r = org.post("/backup-plans", dict(data, name="shop-bad-selector", label_selector="tier=a/b"))
    assert r.status_code == 422 and 'Label selector: the value "a/b" of key tier is not a label value' in page_text(r)
    assert not [p for p in org.json("/backup-plans").json()["plans"] if p["name"] == "shop-bad-selector"]
    r = org.post("/backup-plans", dict(data, name="shop-bad-types", exclude_resources="Secrets/v1"))
    assert r.status_code == 422 and ('Resource types to exclude: "Secrets/v1" is not a resource[.group] pattern'
                                     in page_text(r))
    # the same name again is refused on step 1
    r = org.post("/backup-plans", data)
    assert r.status_code == 422 and "Name: a backup plan of that name already exists" in page_text(r)
    # the form shown again still offers the organisation's clusters (read in a fresh transaction)
    r = org.http.post(org.stack.url + "/backup-plans", data=dict(data, _csrf=org.csrf()), allow_redirects=False,
                      headers={"Accept": "application/json"})
    assert r.status_code == 422 and r.json()["clusters"], r.text[:500]
    # edit: the wizard starts with the plan's values; a weekly cron survives the round trip
    r = org.json(f"/backup-plans/{plan['id']}/edit")
    assert r.json()["fields"]["name"]["value"] == "shop-daily" and r.json()["fields"]["at_time"]["value"] == "02:30"
    kept = {h["name"]: h["value"] for h in r.json()["hidden"]}
    assert kept["include_resources"] == "deployments.apps, *.example.com, configmaps", kept
    assert kept["exclude_resources"] == "secrets", kept
    r = org.post(f"/backup-plans/{plan['id']}", dict(data, schedule_kind="weekly", weekday="friday", at_time="23:05",
                                                     retention_days="60"))
    assert r.status_code == 303, r.text
    plan = [p for p in org.json("/backup-plans").json()["plans"] if p["name"] == "shop-daily"][0]
    assert plan["schedule"] == "Weekly on Friday at 23:05 (Europe/Paris)" and plan["retention_days"] == 60
    r = org.json(f"/backup-plans/{plan['id']}/edit")
    assert r.json()["fields"]["weekday"]["value"] == "friday"


def test_finish_says_what_is_missing(org, shop, testenv, bucket):
    bad_repo = add_repo(org, testenv, "broken", bucket, secret="wrong-secret-key", save_unverified="on")
    r = org.post("/backup-plans", full_plan(org, shop, repository_id=bad_repo, namespaces=f"{shop}\ngone-away-ns"))
    assert r.status_code == 422
    assert "Cluster: reachable, Kubernetes v1." in page_text(r)
    assert "Repository broken: its last test failed" in page_text(r)
    assert f"Namespace {shop}: present" in page_text(r)
    assert "Namespace gone-away-ns: does not exist in the cluster" in page_text(r)
    assert org.json("/backup-plans").json()["plans"] == []
    # a snapshot plan on a cluster whose snapshot class lost its label
    kubectl(testenv, "target", "label", "volumesnapshotclass", "stowage-snapclass",
            "velero.io/csi-volumesnapshot-class-")
    try:
        r = org.post("/backup-plans", full_plan(org, "default", cluster_id=org.target,
                                                 volume_methods="default/data=snapshot"))
    finally:
        kubectl(testenv, "target", "label", "--overwrite", "volumesnapshotclass", "stowage-snapclass",
                "velero.io/csi-volumesnapshot-class=true")
    assert r.status_code == 422
    assert "no VolumeSnapshotClass is labelled velero.io/csi-volumesnapshot-class=true" in page_text(r)
    # a step left invalid is shown again with its error, even on Finish
    r = org.post("/backup-plans", full_plan(org, shop, schedule_kind="cron", cron="* * * * * *"))
    assert r.status_code == 422 and "Cron expression: needs five fields" in page_text(r) and 'name="cron"' in page_text(r)


# ---- running, the queue, cancel, the job page ----

def test_backup_queues_a_job_the_runner_takes(org, shop):
    plan = create_plan(org, shop)
    r = org.post(f"/backup-plans/{plan['id']}/backup", {})
    assert r.status_code == 200 and "Run a backup now?" in page_text(r) and 'name="confirm" value="yes"' in page_text(r)
    assert org.json(f"/backup-plans/{plan['id']}/jobs").json()["jobs"] == []
    r = org.post(f"/backup-plans/{plan['id']}/backup", {"confirm": "yes"})
    assert r.status_code == 303 and r.headers["Location"].startswith("/jobs/")
    job_id = int(r.headers["Location"].rsplit("/", 1)[1])
    jobs = org.json(f"/backup-plans/{plan['id']}/jobs").json()["jobs"]
    assert [j["id"] for j in jobs] == [job_id] and jobs[0]["kind"] == "backup" and jobs[0]["trigger"] == "manual"
    job = wait_job(org, job_id, ("succeeded", "failed", "partially_failed"), timeout=180)
    assert job["state"] == "succeeded" and job["percent"] == 100, job
    page = page_text(org.get(f"/jobs/{job_id}"))
    assert 'id="job-refresh"' not in page  # finished: nothing left to follow
    plan = [p for p in org.json("/backup-plans").json()["plans"] if p["id"] == plan["id"]][0]
    assert plan["last_job_id"] == job_id and plan["last_job_state"] == job["state"]
    log = org.get(f"/jobs/{job_id}/log.txt")
    assert log.status_code == 200 and log.headers["Content-Type"].startswith("text/plain")
    assert log.headers["Content-Disposition"] == f'attachment; filename="job-{job_id}-log.txt"'
    if job["state"] == "failed":
        assert "error" in log.text and job["error"] in log.text
    assert "backup_plan.run" in page_text(org.get("/audit"))


def test_queue_position_and_cancel(org, shop, stack):
    plan = create_plan(org, shop)
    oid = org_id_of(stack, org.email)
    conn = owner(stack)
    with conn, conn.cursor() as cur:
        # two jobs hold the cluster's two slots (cluster_concurrency = 2 in the test stack)
        cur.execute("INSERT INTO stowage.jobs (org_id, kind, backup_plan_id, cluster_id, state, started_at, phase, "
                    "percent, items_done, items_total, bytes_done, bytes_total) "
                    "SELECT %s, 'backup', %s, %s, 'running', now(), 'copying volumes', 40, 4, 10, 1048576, 5242880 "
                    "FROM generate_series(1, 2) RETURNING id", (oid, plan["id"], org.source))
        running = [row[0] for row in cur.fetchall()]
    try:
        first = int(org.post(f"/backup-plans/{plan['id']}/backup", {"confirm": "yes"}).headers["Location"].rsplit("/", 1)[1])
        second = int(org.post(f"/backup-plans/{plan['id']}/backup", {"confirm": "yes"}).headers["Location"].rsplit("/", 1)[1])
        time.sleep(1.5)  # the runners had their chance: the cluster is full
        a, b = org.json(f"/jobs/{first}").json()["job"], org.json(f"/jobs/{second}").json()["job"]
        assert a["state"] == "queued" and a["queue_ahead"] == 2 and a["queue_position"] == 3
        assert b["state"] == "queued" and b["queue_ahead"] == 3
        # what job.js polls: the job's row alone, as JSON whatever the Accept header says
        r = org.get(f"/jobs/{second}/progress")
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
        polled = r.json()
        assert polled["job"]["queue_ahead"] == 3 and polled["job"]["state"] == "queued"
        assert polled["job"]["queue_position"] == 4 and polled["job"]["active"]
        assert not {"items", "log", "undo"} & set(polled) and not {"phases", "result"} & set(polled["job"])
        page = page_text(org.get(f"/jobs/{second}"))
        assert "3 jobs ahead of it on this cluster" in page and 'id="job-refresh"' in page
        rows = {j["id"]: j for j in org.json(f"/backup-plans/{plan['id']}/jobs").json()["jobs"]}
        assert rows[first]["queue_ahead"] == 2 and rows[running[0]]["percent"] == 40
        # cancel of a queued job: at once; the one behind it moves up
        r = org.post(f"/jobs/{first}/cancel", {})
        assert r.status_code == 303 and r.headers["Location"] == f"/jobs/{first}"
        assert "Job cancelled before it started." in page_text(org.get(f"/jobs/{first}"))  # the flash, once
        a = org.json(f"/jobs/{first}").json()["job"]
        assert a["state"] == "cancelled" and a["finished_at"] and not a["active"]
        assert org.json(f"/jobs/{second}").json()["job"]["queue_ahead"] == 2
        # cancel of a running job: the runner is asked
        r = org.post(f"/jobs/{running[0]}/cancel", {})
        assert r.status_code == 303
        assert "Cancel requested" in page_text(org.get(f"/jobs/{running[0]}"))
        j = org.json(f"/jobs/{running[0]}").json()["job"]
        assert j["state"] == "running" and j["cancel_requested"] and not j["can_cancel"]
        # a finished job has nothing to cancel
        org.post(f"/jobs/{first}/cancel", {})
        assert "already finished" in page_text(org.get(f"/jobs/{first}"))
        assert org.json(f"/jobs/{first}").json()["job"]["state"] == "cancelled"
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE stowage.jobs SET state = 'failed', finished_at = now() WHERE id = ANY(%s)", (running,))
        conn.close()
    assert wait_job(org, second, ("succeeded", "failed", "partially_failed"))["state"] in ("succeeded", "failed")


def test_job_page_shows_phases_counts_items_and_log(org, shop, stack):
    plan = create_plan(org, shop)
    oid = org_id_of(stack, org.email)
    conn = owner(stack)
    result = ('{"phases": [{"name": "resources", "state": "succeeded", "duration_ms": 2500, "objects": 250}, '
              '{"name": "volumes", "state": "failed", "duration_ms": 75000, "error": "the <mover> stopped"}], '
              '"counts": {"deployments.apps": 1, "persistentvolumeclaims": 3}}')
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO stowage.jobs (org_id, kind, backup_plan_id, cluster_id, state, started_at, finished_at, "
                    "percent, items_done, items_total, items_failed, result, error) VALUES (%s, 'backup', %s, %s, "
                    "'partially_failed', now() - interval '2 minutes', now(), 100, 250, 250, 1, %s, "
                    "'1 of 250 objects failed') RETURNING id", (oid, plan["id"], org.source, result))
        job_id = cur.fetchone()[0]
        for i in range(249):
            cur.execute("INSERT INTO stowage.job_items (org_id, job_id, resource, namespace, name, action) "
                        "VALUES (%s, %s, 'configmaps', %s, %s, 'backed_up')", (oid, job_id, shop, f"cm-{i:03}"))
        cur.execute("INSERT INTO stowage.job_items (org_id, job_id, api_group, resource, namespace, name, action, message) "
                    "VALUES (%s, %s, 'apps', 'deployments', %s, 'wordpress', 'failed', 'the <API> said no')",
                    (oid, job_id, shop))
        for i in range(600):
            cur.execute("INSERT INTO stowage.job_logs (org_id, job_id, level, message) VALUES (%s, %s, 'info', %s)",
                        (oid, job_id, f"line {i}"))
    conn.close()
    view = org.json(f"/jobs/{job_id}").json()
    assert view["job"]["phases"] == [
        {"name": "resources", "state": "succeeded", "duration": "2.5 s", "duration_ms": 2500, "objects": 250},
        {"name": "volumes", "state": "failed", "duration": "1 min 15 s", "duration_ms": 75000,
         "error": "the <mover> stopped"}]
    assert view["job"]["counts"] == [{"type": "deployments.apps", "count": 1},
                                     {"type": "persistentvolumeclaims", "count": 3}]
    assert view["items"][0] == {"type": "deployments.apps", "namespace": shop, "name": "wordpress", "action": "failed",
                                "failed": True, "message": "the <API> said no"}
    assert len(view["items"]) == 200 and view["items_count"] == 250 and view["items_failed_count"] == 1
    assert len(view["log"]) == 500 and view["log"][-1]["message"] == "line 599" and view["log_count"] == 600
    page = page_text(org.get(f"/jobs/{job_id}"))
    assert "the <API> said no" in page and "Showing 1–200 of 250 results, failures first (1 failed)" in page
    # the Next link carries the last row's id (keyset paging), the page number only names the range
    assert re.fullmatch(rf"/jobs/{job_id}\?items_after=\d+&items_page=2#job-items", view["items_next_link"])
    assert "items_prev_link" not in view
    assert "the <mover> stopped" in page
    assert "the last 500 of 600 lines" in page and "Refresh" not in page
    log = org.get(f"/jobs/{job_id}/log.txt").text.splitlines()
    assert len(log) == 600 and log[0].endswith("info    line 0") and "UTC" in log[0]
    # the poll reads the job's row, not its 250 results and 600 lines
    polled = org.get(f"/jobs/{job_id}/progress").json()
    assert {k: polled["job"][k] for k in ("state", "items_done", "items_failed", "error", "duration", "active")} == {
        "state": "partially_failed", "items_done": 250, "items_failed": 1, "error": "1 of 250 objects failed",
        "duration": view["job"]["duration"], "active": False}
    assert not {"items", "log", "items_count"} & set(polled)
    assert not {"phases", "counts", "result", "items_recorded"} & set(polled["job"])


# ---- roles and tenants ----

def test_viewer_sees_but_cannot_run_or_change(stack, org, shop):
    plan = create_plan(org, shop)
    job_id = int(org.post(f"/backup-plans/{plan['id']}/backup", {"confirm": "yes"}).headers["Location"].rsplit("/", 1)[1])
    email = unique("viewer") + "@x.test"
    v = org.invite(email, "viewer", "viewer password", name="V")
    assert "shop-daily" in v.get("/backup-plans").text
    assert v.get(f"/backup-plans/{plan['id']}/jobs").status_code == 200
    assert v.get(f"/jobs/{job_id}").status_code == 200
    assert v.get(f"/jobs/{job_id}/log.txt").status_code == 200
    assert 'action="/backup-plans/' not in v.get("/backup-plans").text
    assert v.post(f"/backup-plans/{plan['id']}/backup", {"confirm": "yes"}).status_code == 403
    assert v.post(f"/jobs/{job_id}/cancel", {}).status_code == 403
    assert v.post(f"/backup-plans/{plan['id']}/delete", {}).status_code == 403
    assert v.get("/backup-plans/new").status_code == 403
    assert v.post("/backup-plans", full_plan(org, shop, name="sneaky")).status_code == 403
    assert len(org.json(f"/backup-plans/{plan['id']}/jobs").json()["jobs"]) == 1


def test_tenants_do_not_see_each_others_plans_or_jobs(stack, org, shop, testenv):
    plan = create_plan(org, shop)
    job_id = int(org.post(f"/backup-plans/{plan['id']}/backup", {"confirm": "yes"}).headers["Location"].rsplit("/", 1)[1])
    other = Client(stack)
    other.signup(unique("Nosy Org "), unique("n") + "@x.test")
    own_cluster = add_cluster(other, testenv, "mine")
    assert other.json("/backup-plans").json()["plans"] == []
    for path in (f"/backup-plans/{plan['id']}/jobs", f"/backup-plans/{plan['id']}/edit", f"/jobs/{job_id}",
                 f"/jobs/{job_id}/log.txt", f"/jobs/{job_id}/progress"):
        assert other.get(path).status_code == 404, path
    assert "job" not in other.get(f"/jobs/{job_id}/progress").json()
    for path in (f"/backup-plans/{plan['id']}/backup", f"/backup-plans/{plan['id']}/delete", f"/jobs/{job_id}/cancel"):
        assert other.post(path, {"confirm": "yes"}).status_code == 404, path
    # the other tenant's cluster and repository ids are not choices
    r = other.post("/backup-plans/new?step=2", step1(org, cluster_id=str(org.source)))
    assert r.status_code == 422 and "Cluster: choose one of your clusters" in page_text(r)
    assert "Repository: choose one of your repositories" in page_text(r)
    r = other.post("/backup-plans/new?step=2", step1(org, cluster_id=str(own_cluster)))
    assert "Repository: choose one of your repositories" in page_text(r)
    assert org.json(f"/jobs/{job_id}").status_code == 200
    # deleting keeps the jobs
    assert org.post(f"/backup-plans/{plan['id']}/delete", {}).status_code == 303
    assert org.json(f"/jobs/{job_id}").json()["job"]["backup_plan_id"] == 0


# ---- restore plans ----

def add_backups(stack, org, plan_id, ns):
    """Backups of the plan as the backup engine records them: two restorable, two not."""
    oid = org_id_of(stack, org.email)
    conn = owner(stack)
    ids = {}
    with conn, conn.cursor() as cur:
        for state, age, size in (("completed", 2, 5 * 2**20), ("partially_failed", 1, 2**20), ("running", 0, 0),
                                 ("failed", 3, 0)):
            cur.execute("INSERT INTO stowage.backups (org_id, plan_id, cluster_id, repository_id, name, namespaces, state, "
                        "resource_count, bytes, started_at, completed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, 42, %s, "
                        "now() - make_interval(hours => %s), now() - make_interval(hours => %s)) RETURNING id",
                        (oid, plan_id, org.source, org.repo, unique(f"b-{state.replace('_', '-')}-"), [ns], state, size,
                         age, age))
            ids[state] = cur.fetchone()[0]
    conn.close()
    return ids


def restore_step1(org, **over):
    data = {"name": "shop-copy", "target_cluster_id": org.target, "namespace_map": "", "storage_class_map": "",
            "existing_policy": "skip"}
    data.update(over)
    return data


def test_restore_wizard_refuses_bad_input_at_each_step(stack, org, shop):
    plan = create_plan(org, shop)
    backups = add_backups(stack, org, plan["id"], shop)
    r = org.get("/restore-plans/new")
    assert r.status_code == 200 and 'name="namespace_map"' in r.text and "target" in r.text
    for over, message in (({"name": "Copy!"}, "Name: use lowercase letters"),
                          ({"target_cluster_id": "999999"}, "Target cluster: choose one of your clusters"),
                          ({"namespace_map": "shop"}, 'Namespace mapping: "shop" is not source:target'),
                          ({"namespace_map": "shop:Shop_Copy"}, 'Namespace mapping: "shop:Shop_Copy" needs two namespace names'),
                          ({"namespace_map": "a:b\na:c"}, "Namespace mapping: a is mapped twice"),
                          ({"storage_class_map": "fast-ssd"}, 'StorageClass mapping: "fast-ssd" is not source:target'),
                          ({"existing_policy": "merge"}, "Existing objects: choose one of the offered options")):
        r = org.post("/restore-plans/new?step=2", restore_step1(org, **over))
        assert r.status_code == 422, over
        assert message in page_text(r), (message, page_text(r)[-3000:])
    # step 2: the tenant's backup plans
    base = restore_step1(org, namespace_map=f"{shop} : {shop}-copy\n", storage_class_map="fast-ssd:standard-nfs")
    r = post_json(org, "/restore-plans/new?step=2", base)
    assert r.status_code == 200 and [p["name"] for p in r.json()["plans"]] == ["shop-daily"]
    r = org.post("/restore-plans/new?step=3", dict(base, backup_plan_id="999999"))
    assert r.status_code == 422 and "Backup plan: choose one of your backup plans" in page_text(r)
    # step 3: only its restorable backups, newest first
    r = post_json(org, "/restore-plans/new?step=3", dict(base, backup_plan_id=plan["id"]))
    listed = r.json()["backups"]
    assert [int(b["id"]) for b in listed] == [backups["partially_failed"], backups["completed"]]
    assert listed[1]["size"] == "5120 kB" and listed[1]["namespaces"] == shop and listed[1]["objects"] == "42"
    for bad in (backups["running"], backups["failed"], 999999):
        r = org.post("/restore-plans/new?step=4", dict(base, backup_plan_id=plan["id"], backup_id=bad))
        assert r.status_code == 422 and "Backup: choose a completed backup of the chosen plan" in page_text(r)
    # finishing checks the mapped classes in the target
    full = dict(base, backup_plan_id=plan["id"], backup_id=backups["completed"], hook_script="-- fix the ingress host")
    r = org.post("/restore-plans", dict(full, storage_class_map="fast-ssd:no-such-class"))
    assert r.status_code == 422
    text = page_text(r)
    assert "Target cluster: reachable, Kubernetes v1." in text
    assert "StorageClass no-such-class (for fast-ssd): does not exist in the target cluster" in text
    assert org.json("/restore-plans").json()["plans"] == []


def test_restore_plan_saved_and_activated(stack, org, shop):
    plan = create_plan(org, shop)
    backups = add_backups(stack, org, plan["id"], shop)
    full = restore_step1(org, namespace_map=f"{shop}:{shop}-copy", storage_class_map="fast-ssd:standard-nfs",
                         existing_policy="update", backup_plan_id=plan["id"], backup_id=backups["completed"],
                         hook_script="-- fix the ingress host")
    r = org.post("/restore-plans", full)
    assert r.status_code == 303, page_text(r)[-2000:]
    assert "the target cluster is reachable" in page_text(org.get(r.headers["Location"]))
    row = org.json("/restore-plans").json()["plans"][0]
    assert row["name"] == "shop-copy" and row["target"] == "target" and row["backup_plan"] == "shop-daily"
    assert r.headers["Location"] == f"/restore-plans/{row['id']}/jobs"
    conn = owner(stack)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT namespace_map, storage_class_map, existing_policy, hooks, backup_id, reattach_volumes "
                    "FROM stowage.restore_plans WHERE id = %s", (row["id"],))
        assert cur.fetchone() == ({shop: f"{shop}-copy"}, {"fast-ssd": "standard-nfs"}, "update",
                                  [{"inline": "-- fix the ingress host"}], backups["completed"], False)
    conn.close()
    # reattaching the original volumes is asked for explicitly
    r = org.post("/restore-plans", dict(full, name="shop-reattach", reattach_volumes="on", restore_storage_classes="on",
                                        restore_completed_jobs="on"))
    assert r.status_code == 303, page_text(r)[-2000:]
    conn = owner(stack)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT reattach_volumes, restore_storage_classes, restore_completed_jobs FROM stowage.restore_plans "
                    "WHERE name = 'shop-reattach'")
        assert cur.fetchone() == (True, True, True)
        cur.execute("DELETE FROM stowage.restore_plans WHERE name = 'shop-reattach'")
    conn.close()
    # resource modifiers: refused in words at the hooks step, saved as written when they parse
    r = org.post("/restore-plans", dict(full, name="shop-bad-rules", resource_modifiers="version: v1\nresourceModifierRules:\n"
                                                     "- conditions: {groupResource: pods}\n"
                                                     "  patches: [{operation: repalce, path: /spec, value: 1}]\n"))
    assert r.status_code == 422
    assert ("Resource modifiers: resourceModifierRules[0].patches[0].operation: must be one of add, remove, "
            "replace, copy, move, test") in page_text(r)
    rules = "version: v1\nresourceModifierRules:\n- conditions: {groupResource: deployments.apps}\n" \
            "  imageRewrites: [{from: docker.io/, to: mirror.example/}]\n"
    r = org.post("/restore-plans", dict(full, name="shop-mirror", resource_modifiers=rules))
    assert r.status_code == 303, page_text(r)[-2000:]
    conn = owner(stack)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT resource_modifiers FROM stowage.restore_plans WHERE name = 'shop-mirror'")
        assert cur.fetchone() == (rules.rstrip(),)  # the form trims the text
        cur.execute("DELETE FROM stowage.restore_plans WHERE name = 'shop-mirror'")
    conn.close()
    r = org.post("/restore-plans", full)
    assert r.status_code == 422 and "Name: a restore plan of that name already exists" in page_text(r)
    # Activate asks first, then queues a restore job on the target cluster
    r = org.post(f"/restore-plans/{row['id']}/activate", {})
    assert r.status_code == 200 and "Activate the restore?" in page_text(r) and f"{shop} → {shop}-copy" in page_text(r)
    assert "StorageClasses mapped: fast-ssd → standard-nfs" in page_text(r)
    r = org.post(f"/restore-plans/{row['id']}/activate", {"confirm": "yes"})
    assert r.status_code == 303 and r.headers["Location"].startswith("/jobs/")
    job_id = int(r.headers["Location"].rsplit("/", 1)[1])
    job = org.json(f"/jobs/{job_id}").json()["job"]
    assert job["kind"] == "restore" and job["restore_plan_id"] == row["id"] and job["backup_id"] == backups["completed"]
    assert [j["id"] for j in org.json(f"/restore-plans/{row['id']}/jobs").json()["jobs"]] == [job_id]
    assert wait_job(org, job_id, ("succeeded", "failed", "partially_failed"))["finished_at"]
    assert "restore_plan.activate" in page_text(org.get("/audit"))
    # other tenants and viewers
    other = Client(stack)
    other.signup(unique("Other Restorer "), unique("o") + "@x.test")
    assert other.json("/restore-plans").json()["plans"] == []
    assert other.get(f"/restore-plans/{row['id']}/jobs").status_code == 404
    assert other.post(f"/restore-plans/{row['id']}/activate", {"confirm": "yes"}).status_code == 404
    r = other.post("/restore-plans/new?step=3", dict(full, target_cluster_id=org.target))
    assert r.status_code == 422 and "Target cluster: choose one of your clusters" in page_text(r)
    email = unique("rv") + "@x.test"
    v = org.invite(email, "viewer", "viewer password", name="R")
    assert "shop-copy" in v.get("/restore-plans").text
    assert v.post(f"/restore-plans/{row['id']}/activate", {"confirm": "yes"}).status_code == 403
    # a backup that is gone cannot be activated
    conn = owner(stack)
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM stowage.backups WHERE id = %s", (backups["completed"],))
    conn.close()
    r = org.post(f"/restore-plans/{row['id']}/activate", {"confirm": "yes"})
    assert r.status_code == 409 and "backup is gone" in page_text(r)


def test_hooks_step_picks_library_hooks_in_order_then_inline(org, shop, stack):
    for name in ("quiesce", "scale-down"):
        r = org.post("/hooks", {"name": name, "description": name, "source": f'log("{name}")'})
        assert r.status_code == 303, r.text
    ids = {h["name"]: h["id"] for h in org.json("/hooks").json()["hooks"]}
    r = org.post("/backup-plans", full_plan(org, shop, library_hooks="scale-down, nope"))
    assert r.status_code == 422 and 'Library hooks: no hook named &quot;nope&quot; in your library' in r.text
    r = org.post("/backup-plans", full_plan(org, shop, library_hooks="scale-down, quiesce", hook_script='log("inline")'))
    assert r.status_code == 303, r.text
    plan = [p for p in org.json("/backup-plans").json()["plans"] if p["name"] == "shop-daily"][0]
    conn = owner(stack)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT hooks FROM stowage.backup_plans WHERE id = %s", (plan["id"],))
        hooks = cur.fetchone()[0]
    conn.close()
    assert hooks == [{"hook_id": ids["scale-down"]}, {"hook_id": ids["quiesce"]}, {"inline": 'log("inline")'}]
    edit = org.get(f"/backup-plans/{plan['id']}/edit?step=5").text
    assert 'value="scale-down, quiesce"' in edit
