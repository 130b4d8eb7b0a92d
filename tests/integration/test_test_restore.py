"""Test restores (issue 16, src/runner/job_test_restore.c): a backup restored into a temporary
namespace of a chosen cluster by the stack's runner, the plan's check hooks run there, the
namespace deleted afterwards whether the checks passed or failed; the result (passed, each
check's state and output, duration) on the backup's page and in its JSON; a labelled namespace
left by an ended test restore (a crashed runner's) deleted by the next run; a plan's
test-restore schedule queued by the scheduler; a cluster of no one's organisation refused.

Run: cd tests/integration && STOWAGE_BUILD=../../build/asan /usr/bin/python3 -m pytest test_test_restore.py
"""

import json
import os
import subprocess

import pytest

from conftest import BUILD, unique
from fixtures_testenv import kubectl
from test_backup_job import Tenant

CHECK = """
local cm = k8s.get("v1", "ConfigMap", "orders")
if not cm then error("check orders: the ConfigMap orders is missing in " .. job.namespace) end
if cm.data.rows ~= "1000" then
  error("check orders: " .. tostring(cm.data.rows) .. " rows, expected 1000")
end
log("orders has", cm.data.rows, "rows in", job.namespace)
"""


@pytest.fixture(scope="module")
def tenant(stack, testenv):
    return Tenant(stack, testenv, prefix="trestore")


@pytest.fixture(scope="module")
def app(tenant, testenv):
    """A namespace with a ConfigMap orders {rows: 1000}, its plan with the check hook set through
    the plan's page, and a first backup."""
    ns = unique("trsrc")
    kubectl(testenv, "source", "create", "namespace", ns)
    kubectl(testenv, "source", "-n", ns, "create", "configmap", "orders", "--from-literal=rows=1000")
    plan_id = tenant.sql_one(
        "INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (tenant.org_id, unique("trplan-"), tenant.cluster_id, tenant.repository_id, [ns]))[0]
    r = tenant.client.post(f"/backup-plans/{plan_id}/test-restore",
                           {"cluster_id": str(tenant.cluster_id), "schedule": "", "hook_script": CHECK})
    assert r.status_code == 303, r.text[:500]
    yield ns, plan_id
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false", check=False)


def backup_now(tenant, plan_id):
    job_id = tenant.sql_one("INSERT INTO stowage.jobs (org_id, kind, backup_plan_id, cluster_id) "
                            "VALUES (%s, 'backup', %s, %s) RETURNING id", (tenant.org_id, plan_id, tenant.cluster_id))[0]
    job = tenant.wait_job(job_id)
    assert job["state"] == "succeeded", job
    return tenant.sql_one("SELECT backup_id FROM stowage.jobs WHERE id = %s", (job_id,))[0]


def run_test_restore(tenant, backup_id):
    r = tenant.client.post(f"/backups/{backup_id}/test-restore", {"cluster_id": str(tenant.cluster_id)})
    assert r.status_code == 303 and r.headers["Location"].startswith("/jobs/"), (r.status_code, r.text[:500])
    job_id = int(r.headers["Location"].rsplit("/", 1)[1])
    return job_id, tenant.wait_job(job_id)


def namespace_exists(testenv, name):
    return kubectl(testenv, "source", "get", "namespace", name, check=False).returncode == 0


def test_a_good_backup_passes_and_its_namespace_is_gone(tenant, testenv, app):
    ns, plan_id = app
    backup_id = backup_now(tenant, plan_id)
    job_id, job = run_test_restore(tenant, backup_id)
    assert job["state"] == "succeeded", job
    t = job["result"]["test_restore"]
    assert t["passed"] is True and t["cleaned_up"] is True and t["duration_ms"] > 0, t
    assert t["namespaces"] == [f"stowage-test-{job_id}-0"], t
    [check] = t["checks"]
    assert check["name"] == "inline-1" and check["state"] == "succeeded", check
    assert check["namespace"] == f"stowage-test-{job_id}-0", check
    assert any(f"orders has\t1000\trows in\tstowage-test-{job_id}-0" in line for line in check["log"]), check
    assert not namespace_exists(testenv, t["namespaces"][0])
    # the backup's page: the result and the check's output, in HTML and JSON
    page = tenant.client.json(f"/backups/{backup_id}").json()
    [shown] = [x for x in page["test_restores"] if x["id"] == job_id]
    assert shown["passed"] is True and shown["checks"][0]["state"] == "succeeded", shown
    assert "orders has" in shown["checks"][0]["log"], shown
    html = tenant.client.get(f"/backups/{backup_id}").text
    assert 'id="backup-test-restores"' in html and f"/jobs/{job_id}" in html and "passed" in html


def test_a_backup_with_wrong_data_fails_naming_the_check_and_its_namespace_is_gone(tenant, testenv, app):
    ns, plan_id = app
    kubectl(testenv, "source", "-n", ns, "patch", "configmap", "orders", "--type=merge", "-p", '{"data":{"rows":"7"}}')
    try:
        backup_id = backup_now(tenant, plan_id)
    finally:
        kubectl(testenv, "source", "-n", ns, "patch", "configmap", "orders", "--type=merge",
                "-p", '{"data":{"rows":"1000"}}')
    job_id, job = run_test_restore(tenant, backup_id)
    assert job["state"] == "failed", job
    assert "hook inline-1 failed at post-restore" in job["error"] and "check orders: 7 rows, expected 1000" in job["error"], \
        job["error"]
    t = job["result"]["test_restore"]
    assert t["passed"] is False and t["cleaned_up"] is True, t
    assert t["checks"][0]["state"] == "failed", t
    assert not namespace_exists(testenv, f"stowage-test-{job_id}-0")
    shown = [x for x in tenant.client.json(f"/backups/{backup_id}").json()["test_restores"] if x["id"] == job_id][0]
    assert shown["passed"] is False and "7 rows, expected 1000" in shown["error"], shown


def test_the_next_run_deletes_what_an_ended_test_restore_left(tenant, testenv, app):
    """A runner that crashed mid-way leaves its labelled namespace; its job has ended (reaped):
    the next test restore on that cluster deletes it. A young one of a job not of this
    organisation (no such job) stays."""
    ns, plan_id = app
    backup_id = tenant.sql_one("SELECT id FROM stowage.backups WHERE plan_id = %s AND state = 'completed' "
                               "ORDER BY id LIMIT 1", (plan_id,))[0]
    ended = tenant.sql_one("SELECT id FROM stowage.jobs WHERE kind = 'test_restore' AND backup_id = %s "
                           "ORDER BY id LIMIT 1", (backup_id,))[0]
    left, foreign = f"stowage-test-{ended}-9", unique("trforeign")
    for name, owner in ((left, str(ended)), (foreign, "999999999")):
        kubectl(testenv, "source", "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"stowage.io/test-restore": owner}}}))
    try:
        job_id, job = run_test_restore(tenant, backup_id)
        assert job["state"] == "succeeded", job
        assert not namespace_exists(testenv, left)
        assert namespace_exists(testenv, foreign)
        logs = [m for (m,) in tenant.sql("SELECT message FROM stowage.job_logs WHERE job_id = %s", (job_id,))]
        assert any(f"deleted namespace {left}, left by test restore job {ended} (that job has ended)" in m
                   for m in logs), logs
    finally:
        kubectl(testenv, "source", "delete", "namespace", foreign, "--wait=false", check=False)


def test_a_scheduled_test_restore_is_queued_by_the_scheduler(tenant, stack, app):
    ns, plan_id = app
    r = tenant.client.post(f"/backup-plans/{plan_id}/test-restore",
                           {"cluster_id": str(tenant.cluster_id), "schedule": "0 3 * * 0", "hook_script": CHECK})
    assert r.status_code == 303, r.text[:500]
    page = tenant.client.json(f"/backup-plans/{plan_id}/jobs").json()
    assert page["plan"]["test_restore"]["cron"] == "0 3 * * 0", page["plan"]
    newest = backup_now(tenant, plan_id)  # a good one: the newest finished backup is the one tested
    # Sunday 2026-12-06 03:00 UTC: first round sets the next run, the second (at it) queues
    sunday = 1796526000
    for now in (sunday - 3600, sunday + 30):
        p = subprocess.run([os.path.join(BUILD, "stowage-scheduler"), "-c", stack.conf, "--once", "--now", str(now)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
    rows = tenant.sql("SELECT id, trigger, backup_id, cluster_id, scheduled_for FROM stowage.jobs "
                      "WHERE kind = 'test_restore' AND backup_plan_id = %s AND trigger = 'schedule'", (plan_id,))
    assert len(rows) == 1, rows
    job_id, trigger, backup_id, cluster_id, due = rows[0]
    assert (backup_id, cluster_id) == (newest, tenant.cluster_id) and int(due.timestamp()) == sunday, rows
    job = tenant.wait_job(job_id)
    assert job["state"] == "succeeded" and job["result"]["test_restore"]["passed"], job
    # off the schedule again, so the stack's own scheduler does not run it on Sundays
    tenant.client.post(f"/backup-plans/{plan_id}/test-restore",
                       {"cluster_id": str(tenant.cluster_id), "schedule": "", "hook_script": CHECK})


def test_refused_in_words(tenant, app):
    """Another organisation's cluster (or none) and a bad schedule; a backup not finished."""
    ns, plan_id = app
    backup_id = tenant.sql_one("SELECT id FROM stowage.backups WHERE plan_id = %s ORDER BY id LIMIT 1", (plan_id,))[0]
    r = tenant.client.post(f"/backups/{backup_id}/test-restore", {"cluster_id": "999999"})
    assert r.status_code == 422 and "Cluster: no such cluster in your organisation" in r.text, r.text[:300]
    r = tenant.client.post(f"/backup-plans/{plan_id}/test-restore",
                           {"cluster_id": str(tenant.cluster_id), "schedule": "every sunday"})
    assert r.status_code == 422 and "Schedule:" in r.text, r.text[:300]
    assert tenant.sql_one("SELECT test_restore_cron FROM stowage.backup_plans WHERE id = %s", (plan_id,))[0] == ""
    tenant.sql("UPDATE stowage.backups SET state = 'failed' WHERE id = %s", (backup_id,))
    try:
        r = tenant.client.post(f"/backups/{backup_id}/test-restore", {"cluster_id": str(tenant.cluster_id)})
        assert r.status_code == 409 and "Only a finished backup can be test-restored" in r.text, r.text[:300]
    finally:
        tenant.sql("UPDATE stowage.backups SET state = 'completed' WHERE id = %s", (backup_id,))


def test_another_organisations_backup_plan_and_cluster_are_refused_and_nothing_is_made(tenant, stack, testenv, app):
    """Another organisation posting this one's backup or plan to the test-restore forms: 404 in
    the words of an id nobody has; this organisation naming the other's cluster: the field's
    "no such cluster", as for an id nobody has. Neither answer names the other organisation's
    rows; no job is queued, no setting changes, nothing is audited."""
    ns, plan_id = app
    other = Tenant(stack, testenv, prefix="trother")
    finished = tenant.sql("SELECT id FROM stowage.backups WHERE plan_id = %s AND state = 'completed' "
                          "ORDER BY id LIMIT 1", (plan_id,))
    backup_id = finished[0][0] if finished else backup_now(tenant, plan_id)
    backup_name, plan_name = tenant.sql_one("SELECT b.name, p.name FROM stowage.backups b JOIN stowage.backup_plans p "
                                            "ON p.id = b.plan_id WHERE b.id = %s", (backup_id,))
    their_org, my_org = (tenant.sql_one("SELECT name FROM stowage.orgs WHERE id = %s", (t.org_id,))[0]
                         for t in (other, tenant))

    def state():
        return (tenant.sql("SELECT org_id, kind, count(*) FROM stowage.jobs WHERE org_id IN (%s, %s) "
                           "GROUP BY 1, 2 ORDER BY 1, 2", (tenant.org_id, other.org_id)),
                tenant.sql("SELECT test_restore_cron, test_restore_cluster_id, test_restore_hooks::text "
                           "FROM stowage.backup_plans WHERE id = %s", (plan_id,)),
                tenant.sql("SELECT count(*) FROM stowage.audit_log WHERE org_id IN (%s, %s)",
                           (tenant.org_id, other.org_id)))

    before = state()
    settings = {"schedule": "* * * * *", "hook_script": "error('not mine')"}
    nobody = 999999999
    # the other organisation, with its own (real) cluster, at this one's backup and plan
    for path, mine, data, words in (("/backups/{}/test-restore", backup_id, {}, "There is no such backup."),
                                    ("/backup-plans/{}/test-restore", plan_id, settings, "There is no such backup plan.")):
        for row in (mine, nobody):
            r = other.client.post(path.format(row), dict(data, cluster_id=str(other.cluster_id)))
            assert r.status_code == 404 and words in r.text, (path, row, r.status_code, r.text[:300])
            for name in (backup_name, plan_name, my_org):
                assert name not in r.text, (path, name)
    # this organisation naming the other's cluster: as a cluster nobody has
    for path, data in (("/backups/{}/test-restore".format(backup_id), {}),
                       ("/backup-plans/{}/test-restore".format(plan_id), settings)):
        answers = [tenant.client.post(path, dict(data, cluster_id=str(cid))) for cid in (other.cluster_id, nobody)]
        for r in answers:
            assert r.status_code == 422 and "Cluster: no such cluster in your organisation" in r.text, r.text[:300]
            assert their_org not in r.text
    assert state() == before
