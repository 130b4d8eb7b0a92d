"""Backup and restore end to end through real jobs: a real backup of the fixture application,
its namespace deleted, a real restore, every object compared; hooks at their points (a failing
pre-backup hook stops the job before anything is read; on_failure = "continue" lets it finish
with a warning; a post-restore hook rewrites the Ingress host after a cross-cluster restore)."""
import json
import os
import subprocess

import pytest

from conftest import TOP, unique
from fixtures_testenv import kubectl
from test_backup_job import Tenant
from test_restore_job import OWNED_SKIPS, comparable, get_items, snapshot, target_get, wait_for


@pytest.fixture(scope="module")
def tenant(stack, testenv):
    t = Tenant(stack, testenv, prefix="e2e")
    with open(testenv["TARGET_CA_FILE"]) as f:
        ca = f.read()
    r = t.client.post("/clusters", {"name": "target", "api_url": testenv["TARGET_API_URL"],
                                    "token": testenv["TARGET_ADMIN_TOKEN"], "ca_pem": ca})
    assert r.status_code == 303, r.text[:500]
    t.target_id = [c for c in t.client.json("/clusters").json()["clusters"] if c["name"] == "target"][0]["id"]
    return t


def fixture_namespace(testenv):
    ns = unique("e2e")
    res = subprocess.run([os.path.join(TOP, "scripts", "testenv", "fixture-app"), testenv["SOURCE_KUBECONFIG"], ns,
                          testenv["SOURCE_VOLUME_DIR"]], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"fixture-app: {res.stderr}"
    return ns


def backup(tenant, ns, hooks=None):
    plan_id = tenant.sql_one(
        "INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces, hooks) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (tenant.org_id, unique("plan-"), tenant.cluster_id, tenant.repository_id, [ns], json.dumps(hooks or [])))[0]
    job_id = tenant.sql_one("INSERT INTO stowage.jobs (org_id, kind, backup_plan_id, cluster_id) "
                            "VALUES (%s, 'backup', %s, %s) RETURNING id", (tenant.org_id, plan_id, tenant.cluster_id))[0]
    return job_id, tenant.wait_job(job_id)


def restore(tenant, backup_id, cluster_id, namespace_map=None, hooks=None):
    plan_id = tenant.sql_one(
        "INSERT INTO stowage.restore_plans (org_id, name, target_cluster_id, backup_id, namespace_map, hooks) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (tenant.org_id, unique("restore-"), cluster_id, backup_id, json.dumps(namespace_map or {}),
         json.dumps(hooks or [])))[0]
    job_id = tenant.sql_one("INSERT INTO stowage.jobs (org_id, kind, restore_plan_id, backup_id, cluster_id) "
                            "VALUES (%s, 'restore', %s, %s, %s) RETURNING id",
                            (tenant.org_id, plan_id, backup_id, cluster_id))[0]
    return job_id, tenant.wait_job(job_id)


def test_backup_delete_namespace_restore_and_compare_every_object(tenant, testenv):
    ns = fixture_namespace(testenv)
    before = snapshot(testenv, "source", ns)
    job_id, job = backup(tenant, ns)
    assert job["state"] == "succeeded", job
    assert tenant.backup_row(job["backup_id"])["state"] == "completed"
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=true", "--timeout=150s")
    pvs = [name for (gr, _, name) in before if gr == "persistentvolumes"]
    kubectl(testenv, "source", "delete", "persistentvolumes", *pvs, "--wait=true", "--timeout=60s")
    assert kubectl(testenv, "source", "get", "namespace", ns, check=False).returncode != 0
    _, rjob = restore(tenant, job["backup_id"], tenant.cluster_id)
    assert rjob["state"] == "succeeded", rjob
    compared = 0
    for (gr, o_ns, name), obj in before.items():
        if gr in OWNED_SKIPS or (gr, name) in (("configmaps", "kube-root-ca.crt"), ("serviceaccounts", "default")):
            continue
        live = target_get(testenv, "source", gr, o_ns, name)
        assert live is not None, (gr, o_ns, name)
        assert comparable(gr, live) == comparable(gr, obj), (gr, o_ns, name)
        compared += 1
    assert compared >= 15
    wait_for("claims bound again", lambda: all(
        p["status"].get("phase") == "Bound" for p in get_items(testenv, "source", "persistentvolumeclaims", "-n", ns)))


def test_failing_pre_backup_hook_fails_the_job_before_anything_is_read(tenant, testenv):
    ns = fixture_namespace(testenv)
    job_id, job = backup(tenant, ns, hooks=[{"inline": "print('quiescing')\nerror('database refused to quiesce')"}])
    assert job["state"] == "failed", job
    assert "database refused to quiesce" in job["error"]
    assert tenant.items(job_id) == []  # nothing was read
    assert tenant.backup_row(job["backup_id"])["state"] == "failed"
    hooks = job["result"]["hooks"]
    assert hooks[0]["state"] == "failed" and hooks[0]["phase"] == "pre-backup"
    assert "quiescing" in "\n".join(hooks[0]["log"])
    page = tenant.client.get(f"/jobs/{job_id}").text
    assert "database refused to quiesce" in page and "pre-backup" in page


def test_continue_on_failure_hook_lets_the_backup_finish_with_a_warning(tenant, testenv):
    ns = fixture_namespace(testenv)
    job_id, job = backup(tenant, ns, hooks=[{"inline": 'on_failure = "continue"\nerror("optional step broke")'}])
    assert job["state"] == "succeeded", job
    # a hook without a phase runs at its plan's point only: once, before the backup
    assert [(h["phase"], h["state"]) for h in job["result"]["hooks"]] == [("pre-backup", "continued")]
    warnings = tenant.sql("SELECT message FROM stowage.job_logs WHERE job_id = %s AND level = 'warning'",
                          (job_id,))
    assert any("optional step broke" in w[0] for w in warnings), warnings
    assert len(tenant.items(job_id)) > 10


def test_post_restore_hook_rewrites_the_ingress_host_in_the_target(tenant, testenv):
    ns = fixture_namespace(testenv)
    _, job = backup(tenant, ns)
    assert job["state"] == "succeeded", job
    with open(os.path.join(TOP, "lua", "rewrite-ingress-host.lua")) as f:
        script = f.read()
    copy = ns + "-moved"
    hook = {"inline": script, "params": {"old_domain": "blog.fixture.example", "new_domain": "blog.target.example"}}
    rjob_id, rjob = restore(tenant, job["backup_id"], tenant.target_id, namespace_map={ns: copy}, hooks=[hook])
    assert rjob["state"] in ("succeeded", "partially_failed"), rjob
    assert rjob["result"]["hooks"][0]["state"] == "succeeded", rjob["result"]["hooks"]
    ingress = json.loads(kubectl(testenv, "target", "-n", copy, "get", "ingress", "wordpress", "-o", "json").stdout)
    assert [r["host"] for r in ingress["spec"]["rules"]] == ["blog.target.example"]
    source = json.loads(kubectl(testenv, "source", "-n", ns, "get", "ingress", "wordpress", "-o", "json").stdout)
    assert [r["host"] for r in source["spec"]["rules"]] == ["blog.fixture.example"]


def test_plan_with_more_hooks_than_one_point_runs_fails_in_words(tenant, testenv):
    # the wizards allow 16 library hooks and one script; a plan written otherwise is refused by the runner
    ns = fixture_namespace(testenv)
    job_id, job = backup(tenant, ns, hooks=[{"inline": f"log('hook {i}')"} for i in range(18)])
    assert job["state"] == "failed", job
    assert "the plan lists 18 hooks at pre-backup; at most 17 run at one point" in job["error"]
    assert tenant.items(job_id) == []
