"""Backup and restore end to end through real jobs: a real backup of the fixture application,
its namespace deleted, a real restore, every object compared; hooks at their points (a failing
pre-backup hook stops the job before anything is read; on_failure = "continue" lets it finish
with a warning; a post-restore hook rewrites the Ingress host after a cross-cluster restore)."""
import json
import os
import re
import subprocess

import pytest

from conftest import TOP, unique
from fixtures_testenv import kubectl
from test_backup_job import Tenant
from test_restore_job import OWNED_SKIPS, comparable, get_items, snapshot, target_get, wait_for
from test_volumes import walk
from provisioner import Provisioner


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


def backup(tenant, ns, hooks=None, queue_only=False):
    """queue_only: return (job id, None) without waiting."""
    plan_id = tenant.sql_one(
        "INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces, hooks) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (tenant.org_id, unique("plan-"), tenant.cluster_id, tenant.repository_id, [ns], json.dumps(hooks or [])))[0]
    job_id = tenant.sql_one("INSERT INTO stowage.jobs (org_id, kind, backup_plan_id, cluster_id) "
                            "VALUES (%s, 'backup', %s, %s) RETURNING id", (tenant.org_id, plan_id, tenant.cluster_id))[0]
    return job_id, None if queue_only else tenant.wait_job(job_id)


def restore(tenant, backup_id, cluster_id, namespace_map=None, hooks=None, storage_class_map=None, **options):
    """options: further restore_plans columns (reattach_volumes, ...); _queue_only: do not wait."""
    queue_only = options.pop("_queue_only", False)
    cols = "".join(", " + k for k in options)
    plan_id = tenant.sql_one(
        "INSERT INTO stowage.restore_plans (org_id, name, target_cluster_id, backup_id, namespace_map, hooks, "
        f"storage_class_map{cols}) VALUES (%s, %s, %s, %s, %s, %s, %s{', %s' * len(options)}) RETURNING id",
        (tenant.org_id, unique("restore-"), cluster_id, backup_id, json.dumps(namespace_map or {}),
         json.dumps(hooks or []), json.dumps(storage_class_map or {}),
         *[json.dumps(v) if isinstance(v, dict) else v for v in options.values()]))[0]
    job_id = tenant.sql_one("INSERT INTO stowage.jobs (org_id, kind, restore_plan_id, backup_id, cluster_id) "
                            "VALUES (%s, 'restore', %s, %s, %s) RETURNING id",
                            (tenant.org_id, plan_id, backup_id, cluster_id))[0]
    if queue_only:
        return job_id, None
    return job_id, tenant.wait_job(job_id)


def assert_figures(tenant, job_id, volume_bytes):
    """Issue 11, defect 6: one definition of a job's items and data, the same in its row (the
    page), its JSON and its log: items = the results listed, data = archive + volume files."""
    items, failed = tenant.sql_one("SELECT count(*), count(*) FILTER (WHERE action = 'failed') FROM stowage.job_items "
                                   "WHERE job_id = %s", (job_id,))
    row = tenant.sql_one("SELECT items_done, items_total, items_failed, bytes_done, bytes_total, result "
                         "FROM stowage.jobs WHERE id = %s", (job_id,))
    data = row[5]["data"]
    assert data["volume_bytes"] == volume_bytes > 0 and data["archive_bytes"] > 0, data
    total = data["archive_bytes"] + volume_bytes
    assert row[:5] == (items, items, failed, total, total) and data["bytes"] == total, (row[:5], data)
    job = tenant.client.json(f"/jobs/{job_id}").json()["job"]
    assert (job["items_done"], job["items_total"], job["bytes_done"], job["bytes_total"]) == (items, items, total, total)
    page = tenant.client.get(f"/jobs/{job_id}").text
    assert f'<span id="job-items-done">{items}</span> / <span id="job-items-total">{items}</span>' in page
    assert f"{items} items ({failed} failed); data {total} bytes: archive {data['archive_bytes']} + volume data " \
        f"{volume_bytes}" in [m for (m,) in tenant.sql("SELECT message FROM stowage.job_logs WHERE job_id = %s", (job_id,))]


def test_backup_delete_namespace_restore_and_compare_every_object(tenant, testenv):
    ns = fixture_namespace(testenv)
    before = snapshot(testenv, "source", ns)
    volume_bytes = sum(e[0] for d in volume_dirs(testenv, "source", ns).values() for e in digests(d).values())
    job_id, job = backup(tenant, ns)
    assert job["state"] == "succeeded", job
    assert tenant.backup_row(job["backup_id"])["state"] == "completed"
    assert_figures(tenant, job_id, volume_bytes)
    # the finished backup's page offers to restore it: the restore wizard, its backup chosen
    import html
    link = re.search(r'<a href="([^"]+)" id="job-restore">Restore this backup</a>', tenant.client.get(f"/jobs/{job_id}").text)
    assert link, "no Restore this backup link"
    wizard = tenant.client.get(html.unescape(link.group(1)))
    assert wizard.status_code == 200 and f'name="backup_id" value="{job["backup_id"]}"' in wizard.text, wizard.text[-2000:]
    # defect 8: the log says what each phase did, volumes too: which claim, method, files, bytes, duration
    log = "\n".join(m for (m,) in tenant.sql("SELECT message FROM stowage.job_logs WHERE job_id = %s ORDER BY id", (job_id,)))
    for claim in ("wordpress-data", "data-mysql-0", "data-mysql-1"):
        assert re.search(rf"claim {ns}/{claim}: backed up by filesystem: \d+ files, \d+ bytes \(\d+ new\) in "
                         rf"[\d.]+ s, data mover snapshot \S+", log), log
    assert re.search(r"volume data: 3 of 3 claims backed up, \d+ files, %d bytes in [\d.]+ s" % volume_bytes, log), log
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=true", "--timeout=150s")
    pvs = [name for (gr, _, name) in before if gr == "persistentvolumes"]
    kubectl(testenv, "source", "delete", "persistentvolumes", *pvs, "--wait=true", "--timeout=60s")
    assert kubectl(testenv, "source", "get", "namespace", ns, check=False).returncode != 0
    data = {claim: digests(d) for claim, d in volume_dirs(testenv, "source", ns, pvcs=before).items()}
    # the claims get new volumes (the provisioner double plays the cluster's), which the mover fills
    with Provisioner(testenv, "source", [testenv["SOURCE_STORAGE_CLASS"]], testenv["SOURCE_VOLUME_DIR"]) as prov:
        rjob_id, rjob = restore(tenant, job["backup_id"], tenant.cluster_id)
    assert not prov.errors, prov.errors
    assert rjob["state"] == "succeeded", rjob
    assert_figures(tenant, rjob_id, volume_bytes)
    log = "\n".join(m for (m,) in tenant.sql("SELECT message FROM stowage.job_logs WHERE job_id = %s ORDER BY id", (rjob_id,)))
    assert re.search(rf"claim {ns}/wordpress-data: restored by filesystem: \d+ files, \d+ bytes in [\d.]+ s", log), log
    assert re.search(r"volume data: 3 of 3 claims restored, \d+ files, %d bytes" % volume_bytes, log), log
    assert re.search(r"create persistentvolumeclaims: 3 of 3 objects created, 0 failed", log), log
    compared = 0
    for (gr, o_ns, name), obj in before.items():
        if gr in OWNED_SKIPS or (gr, name) in (("configmaps", "kube-root-ca.crt"), ("serviceaccounts", "default")):
            continue
        if gr == "persistentvolumes":	# not recreated unless the plan reattaches them
            assert target_get(testenv, "source", gr, "", name) is None
            continue
        live = target_get(testenv, "source", gr, o_ns, name)
        assert live is not None, (gr, o_ns, name)
        want, got = comparable(gr, obj), comparable(gr, live)
        if gr == "persistentvolumeclaims":	# bound to its new volume
            want["spec"].pop("volumeName"), got["spec"].pop("volumeName")
        assert got == want, (gr, o_ns, name)
        compared += 1
    assert compared >= 15
    wait_for("claims bound again", lambda: all(
        p["status"].get("phase") == "Bound" for p in get_items(testenv, "source", "persistentvolumeclaims", "-n", ns)))
    restored = volume_dirs(testenv, "source", ns)
    assert sorted(restored) == sorted(data)
    for claim, d in restored.items():
        assert digests(d) == data[claim], claim


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
    with Provisioner(testenv, "target", ["standard-nfs"], testenv["TARGET_VOLUME_DIR"]):
        rjob_id, rjob = restore(tenant, job["backup_id"], tenant.target_id, namespace_map={ns: copy}, hooks=[hook],
                                storage_class_map={"fast-ssd": "standard-nfs"})
    assert rjob["state"] == "succeeded", rjob
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


def volume_dirs(testenv, cluster, ns, pvcs=None):
    """{claim: its volume's directory} of the namespace's claims (live, or of a snapshot())."""
    out = {}
    if pvcs is not None:
        claims = [o for (gr, _, _), o in pvcs.items() if gr == "persistentvolumeclaims"]
        vols = {o["metadata"]["name"]: o for (gr, _, _), o in pvcs.items() if gr == "persistentvolumes"}
    else:
        claims, vols = get_items(testenv, cluster, "persistentvolumeclaims", "-n", ns), {}
    for pvc in claims:
        pv = vols.get(pvc["spec"]["volumeName"]) or target_get(testenv, cluster, "persistentvolumes", "", pvc["spec"]["volumeName"])
        out[pvc["metadata"]["name"]] = pv["spec"]["hostPath"]["path"]
    return out


def digests(root):
    """{relative path: (size, sha256)} of the files under root: the data, not its timestamps."""
    return {p: e[5:] for p, e in walk(root).items() if len(e) > 5}


def test_cross_cluster_restore_never_touches_the_source_volumes(tenant, testenv):
    """Issue 11, defect 1: the backup carries the namespace's hostPath PersistentVolumes. A restore
    into the other cluster must not recreate them there (their paths are the source's live
    directories): the claims get new volumes in the mapped class, which the mover fills."""
    ns = fixture_namespace(testenv)
    source = volume_dirs(testenv, "source", ns)
    assert sorted(source) == ["data-mysql-0", "data-mysql-1", "wordpress-data"]
    backed_up = {claim: digests(d) for claim, d in source.items()}
    _, job = backup(tenant, ns)
    assert job["state"] == "succeeded", job
    # the application goes on writing in the source after the backup
    for claim, d in source.items():
        with open(os.path.join(d, "written-after-backup.txt"), "w") as f:
            f.write(f"{claim}: newer than the backup\n")
        with open(os.path.join(d, "ibdata1" if claim.startswith("data-") else "index.php"), "a") as f:
            f.write("changed after the backup\n")
    live = {claim: walk(d) for claim, d in source.items()}

    with Provisioner(testenv, "target", ["standard-nfs"], testenv["TARGET_VOLUME_DIR"]) as prov:
        rjob_id, rjob = restore(tenant, job["backup_id"], tenant.target_id, storage_class_map={"fast-ssd": "standard-nfs"})
    assert not prov.errors, prov.errors
    assert rjob["state"] == "succeeded", rjob

    # the source's volumes: byte for byte (and timestamp for timestamp) as the application left them
    for claim, d in source.items():
        assert walk(d) == live[claim], claim
    # the source's StorageClass came with the backup but is not created: the mapping names the target's
    assert ("storage.k8s.io", "storageclasses", "fast-ssd", "skipped") in tenant.sql(
        "SELECT api_group, resource, name, action FROM stowage.job_items WHERE job_id = %s", (rjob_id,))
    assert target_get(testenv, "target", "storageclasses", "", "fast-ssd") is None
    # no PersistentVolume of the backup in the target; each one said why
    for pv in ("%s-%s" % (ns, c) for c in source):
        assert target_get(testenv, "target", "persistentvolumes", "", pv) is None, pv
    skipped = dict(((n, m) for n, m in tenant.sql(
        "SELECT name, message FROM stowage.job_items WHERE job_id = %s AND resource = 'persistentvolumes' "
        "AND action = 'skipped'", (rjob_id,))))
    assert sorted(skipped) == sorted("%s-%s" % (ns, c) for c in source), skipped
    assert all("its claim gets a new volume in the target" in m for m in skipped.values()), skipped
    # the claims: new volumes of the mapped class, in the target's own directory, holding the backup's data
    target = volume_dirs(testenv, "target", ns)
    assert sorted(target) == sorted(source)
    for pvc in get_items(testenv, "target", "persistentvolumeclaims", "-n", ns):
        assert pvc["spec"]["storageClassName"] == "standard-nfs"
    for claim, d in target.items():
        assert d.startswith(testenv["TARGET_VOLUME_DIR"] + "/") and d != source[claim], (claim, d)
        assert digests(d) == backed_up[claim], claim


def test_claims_that_cannot_bind_are_diagnosed_in_seconds_all_at_once(tenant, testenv):
    """Issue 11, defect 4: after a namespace delete the PVs stay Released; a restore used to wait
    300 s per claim, one after the other, and then said only "no volume provisioned"."""
    import time
    ns = fixture_namespace(testenv)
    _, job = backup(tenant, ns)
    assert job["state"] == "succeeded", job
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=true", "--timeout=150s")
    released = f"{ns}-wordpress-data"
    assert target_get(testenv, "source", "persistentvolumes", "", released)["status"]["phase"] == "Released"
    started = time.time()
    rjob_id, rjob = restore(tenant, job["backup_id"], tenant.cluster_id, storage_class_map={"fast-ssd": "no-such-class"},
                            volume_map={f"{ns}/wordpress-data": released})
    took = time.time() - started
    assert rjob["state"] == "partially_failed", rjob
    assert took < 120, took	# three claims: was 3 x 300 s
    failed = dict(tenant.sql("SELECT name, message FROM stowage.job_items WHERE job_id = %s AND resource = 'volumedata' "
                             "AND action = 'failed'", (rjob_id,)))
    assert sorted(failed) == ["data-mysql-0", "data-mysql-1", "wordpress-data"], failed
    assert failed["wordpress-data"].startswith(
        f"claim {ns}/wordpress-data: not Bound: it is bound by name (spec.volumeName) to PersistentVolume {released}, "
        "which is Released"), failed
    for claim in ("data-mysql-0", "data-mysql-1"):
        assert failed[claim] == f"claim {ns}/{claim}: not Bound: its StorageClass no-such-class does not exist in the " \
            "cluster: map it to one of the cluster's classes in the plan", failed
    assert rjob["error"].endswith("(and 2 more volumes failed)"), rjob["error"]

    # a class without a provisioner: the job says so while it waits (the wait is cancelled here)
    rjob_id, _ = restore(tenant, job["backup_id"], tenant.target_id, namespace_map={ns: ns + "-wait"},
                         storage_class_map={"fast-ssd": "standard-nfs"}, _queue_only=True)
    want = f"waiting for claim {ns}-wait/wordpress-data to be Bound: its StorageClass standard-nfs has no provisioner"
    deadline = time.time() + 90
    while not any(m.startswith(want) for (m,) in tenant.sql("SELECT message FROM stowage.job_logs WHERE job_id = %s",
                                                            (rjob_id,))):
        assert time.time() < deadline, tenant.sql("SELECT message FROM stowage.job_logs WHERE job_id = %s", (rjob_id,))
        time.sleep(0.5)
    # the job page's phase says what it waits for
    deadline = time.time() + 30
    while "waiting for" not in tenant.client.json(f"/jobs/{rjob_id}").json()["job"]["phase"]:
        assert time.time() < deadline, tenant.client.json(f"/jobs/{rjob_id}").json()["job"]["phase"]
        time.sleep(0.5)
    phase = tenant.client.json(f"/jobs/{rjob_id}").json()["job"]["phase"]
    assert phase == "volumes: waiting for 3 claims to be Bound", phase
    tenant.sql("UPDATE stowage.jobs SET cancel_requested = true WHERE id = %s", (rjob_id,))
    cancelled = time.time()
    tenant.wait_job(rjob_id, timeout=60)
    assert time.time() - cancelled < 30
