"""A cancelled restore says which objects it created, and "remove what this restore created"
undoes exactly those (issue 15), against the real target cluster: a restore of the fixture
application is cancelled while it waits for its claims, the undo job deletes every object the
restore recorded as created (by uid), and leaves alone what was there before (a ConfigMap of the
same name the restore skipped, another ConfigMap, the namespace) and an object deleted and made
again since (another uid). Another organisation cannot undo it; only a cancelled restore can be."""
import json
import time

import pytest

from conftest import Client, unique
from fixtures_testenv import kubectl
from test_backup_restore_e2e import backup, fixture_namespace, restore, tenant  # noqa: F401


def live(testenv, resource, group, ns, name):
    """The object in the target, or None when it is gone."""
    kind = f"{resource}.{group}" if group else resource
    args = ["get", kind, name, "-o", "json"] + (["-n", ns] if ns else [])
    res = kubectl(testenv, "target", *args, check=False)
    if res.returncode != 0:
        # gone, or its type with it (a CustomResourceDefinition the restore created)
        assert "NotFound" in res.stderr or "doesn't have a resource type" in res.stderr, res.stderr
        return None
    return json.loads(res.stdout)


def wait_cancelled_midway(tenant, job_id, timeout=120):
    """The restore created its objects and waits for its claims (their class has no provisioner)."""
    deadline = time.time() + timeout
    while not tenant.sql_one("SELECT count(*) FROM stowage.job_logs WHERE job_id = %s AND message LIKE 'waiting for claim %%'",
                             (job_id,))[0]:
        assert time.time() < deadline, tenant.job(job_id)
        time.sleep(0.5)
    r = tenant.client.post(f"/jobs/{job_id}/cancel", {})
    assert r.status_code == 303
    job = tenant.wait_job(job_id, timeout=90)
    assert job["state"] == "cancelled", job


def test_undo_a_cancelled_restore(tenant, testenv):  # noqa: F811
    ns = fixture_namespace(testenv)
    bjob_id, job = backup(tenant, ns)
    assert job["state"] == "succeeded", job
    target_ns = ns + "-undo"
    # what the target holds before the restore: the namespace, a ConfigMap the backup also has
    # (the restore skips it), and one of its own
    kubectl(testenv, "target", "create", "namespace", target_ns)
    kubectl(testenv, "target", "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "wordpress-config", "namespace": target_ns},
         "data": {"mine": "yes"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pre-existing", "namespace": target_ns},
         "data": {"keep": "me"}}]}))
    before = {n: live(testenv, "configmaps", "", target_ns, n)["metadata"]["uid"] for n in ("wordpress-config", "pre-existing")}
    ns_uid = live(testenv, "namespaces", "", "", target_ns)["metadata"]["uid"]

    rjob_id, _ = restore(tenant, job["backup_id"], tenant.target_id, namespace_map={ns: target_ns},
                         storage_class_map={"fast-ssd": "standard-nfs"}, _queue_only=True)
    wait_cancelled_midway(tenant, rjob_id)

    created = tenant.sql("SELECT api_group, api_version, resource, namespace, name, uid FROM stowage.job_items "
                         "WHERE job_id = %s AND action = 'created' ORDER BY id", (rjob_id,))
    assert len(created) >= 5 and all(uid for *_, uid in created), created
    names = {(r, n) for _, _, r, _, n, _ in created}
    assert ("configmaps", "wordpress-config") not in names and ("namespaces", target_ns) not in names
    assert ("persistentvolumeclaims", "wordpress-data") in names
    skipped = dict(tenant.sql("SELECT name, message FROM stowage.job_items WHERE job_id = %s AND action = 'skipped' "
                              "AND resource = 'configmaps'", (rjob_id,)))
    assert skipped["wordpress-config"] == "already exists"
    for group, _, resource, obj_ns, name, uid in created:
        obj = live(testenv, resource, group, obj_ns, name)
        assert obj and obj["metadata"]["uid"] == uid, (resource, name)

    # the job's page says what it created and offers the undo
    page = tenant.client.json(f"/jobs/{rjob_id}").json()
    assert page["undo"]["created"] == len(created) and page["undo"]["can_undo"]
    assert "Remove what this restore created" in tenant.client.get(f"/jobs/{rjob_id}").text

    # somebody deletes one of them and makes it again: another object, left alone
    replaced = [c for c in created if c[2] == "secrets"][0]
    obj = live(testenv, "secrets", "", target_ns, replaced[4])
    kubectl(testenv, "target", "delete", "secret", replaced[4], "-n", target_ns)
    kubectl(testenv, "target", "create", "secret", "generic", replaced[4], "-n", target_ns, "--from-literal=made=again")
    replaced_uid = live(testenv, "secrets", "", target_ns, replaced[4])["metadata"]["uid"]
    assert replaced_uid != obj["metadata"]["uid"]

    # another organisation cannot undo it; only a cancelled restore can be undone
    other = Client(tenant.stack)
    other.signup(unique("Other Undo "), unique("other") + "@example.test")
    assert other.post(f"/jobs/{rjob_id}/undo", {}).status_code == 404
    r = tenant.client.post(f"/jobs/{bjob_id}/undo", {})
    assert r.status_code == 409 and "Only a cancelled restore can be undone" in r.text

    r = tenant.client.post(f"/jobs/{rjob_id}/undo", {})
    assert r.status_code == 303 and r.headers["Location"].startswith("/jobs/"), r.text[:300]
    undo_id = int(r.headers["Location"].rsplit("/", 1)[1])
    undo = tenant.wait_job(undo_id, timeout=180)
    assert undo["state"] == "succeeded", undo
    assert undo["result"]["undo"] == {"deleted": len(created) - 1, "left_alone": 1, "failed": 0}, undo["result"]
    results = {(r, n): (a, m) for r, n, a, m in tenant.sql(
        "SELECT resource, name, action, message FROM stowage.job_items WHERE job_id = %s", (undo_id,))}
    assert results[("secrets", replaced[4])][0] == "skipped" and "replaced since the restore" in \
        results[("secrets", replaced[4])][1]
    assert all(a == "deleted" for (r, n), (a, _) in results.items() if (r, n) != ("secrets", replaced[4]))

    # every object the restore created is gone (the claims once their protection lets go)
    deadline = time.time() + 120
    for group, _, resource, obj_ns, name, uid in created:
        if (resource, name) == ("secrets", replaced[4]):
            continue
        while (obj := live(testenv, resource, group, obj_ns, name)) is not None:
            assert obj["metadata"]["uid"] == uid
            assert time.time() < deadline, f"{resource}/{name} still there: {obj['metadata']}"
            time.sleep(1)
    # and what was there before, or made since, is untouched
    kept = live(testenv, "configmaps", "", target_ns, "wordpress-config")
    assert kept["metadata"]["uid"] == before["wordpress-config"] and kept["data"] == {"mine": "yes"}
    assert live(testenv, "configmaps", "", target_ns, "pre-existing")["metadata"]["uid"] == before["pre-existing"]
    assert live(testenv, "namespaces", "", "", target_ns)["metadata"]["uid"] == ns_uid
    assert live(testenv, "secrets", "", target_ns, replaced[4])["metadata"]["uid"] == replaced_uid
    # the restore's page now links its undo, and offers no second one
    page = tenant.client.json(f"/jobs/{rjob_id}").json()
    assert page["undo"]["job_id"] == undo_id and not page["undo"]["can_undo"]
    assert tenant.sql("SELECT target FROM stowage.audit_log WHERE org_id = %s AND action = 'restore.undo'",
                      (tenant.org_id,)) == [(str(rjob_id),)]
    kubectl(testenv, "target", "delete", "namespace", target_ns, "--wait=false")
