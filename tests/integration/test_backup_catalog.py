"""The backup catalog against the real servers (issue 15): /backups lists every backup of the
organisation whatever became of its plan, a backup's page shows its objects, volumes and log
from the database, the restore wizard still offers a deleted plan's backup, and Delete removes
everything the backup owns (metadata first, mover snapshots, VolumeSnapshots and their
contents, objects, then the row) through the runner's delete_backup job, which retention uses
too; a delete that fails halfway leaves the backup 'deleting' (never offered) and resumes; the
prune that follows frees the volume data's packs in MinIO and the repository page says how much."""
import base64
import io
import json
import tarfile
import os
import re
import subprocess
import time

import pytest

from conftest import BUILD, Client, unique
from fixtures_testenv import kubectl
from test_backup_job import FIXTURE_NS, Tenant, backup_objects, fixture_app, s3_client  # noqa: F401


@pytest.fixture(scope="module")
def tenant(stack, testenv):
    return Tenant(stack, testenv, prefix="catalog")


@pytest.fixture(scope="module")
def backed_up(tenant, fixture_app):  # noqa: F811
    """One backup of the fixture application (three volumes by the mover) through its plan."""
    plan, job_id = tenant.queue_backup([fixture_app])
    job = tenant.wait_job(job_id)
    assert job["state"] == "succeeded", job["error"]
    plan_id = tenant.sql_one("SELECT id FROM stowage.backup_plans WHERE name = %s", (plan,))[0]
    return {"plan": plan, "plan_id": plan_id, "backup_id": job["backup_id"], "job_id": job_id,
            "name": tenant.backup_row(job["backup_id"])["name"]}


def repo_keys(testenv, tenant, under):
    s3 = s3_client(testenv)
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=tenant.bucket, Prefix=tenant.prefix + under):
        for o in page.get("Contents", []):
            out[o["Key"]] = o["Size"]
    return out


def wait_job(tenant, job_id, timeout=180):
    job = tenant.wait_job(job_id, timeout)
    return job


def test_the_backup_row_holds_what_its_page_shows(tenant, backed_up):
    names, plan_name, cluster_name, resources, volumes, bytes_new, total = tenant.sql_one(
        "SELECT name, plan_name, cluster_name, resource_list, volumes, bytes_new, bytes FROM stowage.backups WHERE id = %s",
        (backed_up["backup_id"],))
    assert plan_name == backed_up["plan"] and cluster_name == "source"
    assert resources["v1/ConfigMap"] == [f"{FIXTURE_NS}/wordpress-config"] or \
        f"{FIXTURE_NS}/wordpress-config" in resources["v1/ConfigMap"]
    assert f"{FIXTURE_NS}/wordpress" in resources["apps/v1/Deployment"]
    assert sorted(v["pvc"] for v in volumes) == ["data-mysql-0", "data-mysql-1", "wordpress-data"]
    assert all(v["method"] == "filesystem" and v["snapshot_id"] and v["files"] > 0 for v in volumes)
    # new bytes: the archive objects plus what the volumes added to the repository
    assert bytes_new == total + sum(v["bytes_new"] for v in volumes)


def test_backups_page_lists_filters_and_pages(tenant, backed_up):
    c = tenant.client
    listing = c.json("/backups").json()
    mine = [b for b in listing["backups"] if b["id"] == backed_up["backup_id"]]
    assert len(mine) == 1
    b = mine[0]
    assert (b["name"], b["plan"], b["cluster"], b["namespaces"], b["state"]) == \
        (backed_up["name"], backed_up["plan"], "source", FIXTURE_NS, "completed")
    assert b["objects"] > 20 and b["volumes"] == 3 and b["bytes_total"] > b["bytes_new"] * 0 and b["expires_at"]
    assert b["restore_link"].endswith(f"backup_plan_id={backed_up['plan_id']}&backup_id={backed_up['backup_id']}")
    # filters that match, and ones that do not
    for q in (f"plan={backed_up['plan']}", f"namespace={FIXTURE_NS}", "state=completed",
              f"cluster={tenant.cluster_id}", "from=2020-01-01", f"to={time.strftime('%Y-%m-%d', time.gmtime())}"):
        assert [x["id"] for x in c.json("/backups?" + q).json()["backups"]] == [backed_up["backup_id"]], q
    for q in ("plan=no-such-plan", "namespace=kube-system", "state=failed", "from=2099-01-01", "to=2020-01-01"):
        assert c.json("/backups?" + q).json()["backups"] == [], q
    # every input is validated, the error names the field
    for q, field, words in (("from=2026-02-30", "from", "From:"), ("to=yesterday", "to", "To:"),
                            ("page=0", "page", "Page"), ("state=gone", "state", "State"),
                            ("namespace=Not_A_Name", "namespace", "Namespace"), ("cluster=x", "cluster", "Cluster")):
        r = c.json("/backups?" + q)
        assert r.status_code == 422, q
        assert words in r.json()["filter"]["fields"][field]["error"], r.json()
    # paging: 120 backups of a deleted plan (rows only) fill three pages, newest first
    tenant.sql("INSERT INTO stowage.backups (org_id, repository_id, name, namespaces, state, plan_name, started_at) "
               "SELECT %s, %s, 'paging-' || g, ARRAY['paging'], 'failed', 'gone-plan', now() - g * interval '1 minute' "
               "FROM generate_series(1, 120) g", (tenant.org_id, tenant.repository_id))
    first = c.json("/backups?namespace=paging").json()
    assert first["total"] == 120 and first["pages"] == 3 and len(first["backups"]) == 50
    assert first["backups"][0]["name"] == "paging-1" and first["backups"][0]["plan_deleted"]
    third = c.json(first["next_link"].replace("page=2", "page=3")).json()
    assert [x["name"] for x in third["backups"]] == [f"paging-{i}" for i in range(101, 121)]
    assert "next_link" not in third and third["prev_link"] == "/backups?namespace=paging&page=2"
    html = c.get("/backups?namespace=paging&page=2").text
    assert "paging-51" in html and "gone-plan" in html and "(deleted)" in html
    tenant.sql("DELETE FROM stowage.backups WHERE org_id = %s AND name LIKE 'paging-%%'", (tenant.org_id,))


def test_backup_page_shows_objects_volumes_and_log(tenant, backed_up):
    c = tenant.client
    page = c.json(f"/backups/{backed_up['backup_id']}").json()
    types = {t["type"]: t for t in page["resources"]}
    assert types["apps/v1/Deployment"]["names"] == [f"{FIXTURE_NS}/wordpress"]
    assert types["v1/PersistentVolumeClaim"]["count"] == 3
    assert sorted(v["pvc"] for v in page["volume_list"]) == ["data-mysql-0", "data-mysql-1", "wordpress-data"]
    assert all(v["method"] == "filesystem" and int(v["files"]) > 0 and v["snapshot_id"] for v in page["volume_list"])
    assert page["writer_job_id"] == backed_up["job_id"]
    assert any("archive and resource list uploaded" in line["message"] for line in page["log"])
    html = c.get(f"/backups/{backed_up['backup_id']}").text
    assert "wordpress-data" in html and "apps/v1/Deployment" in html and 'id="backup-delete"' in html
    assert c.json("/backups/999999999").status_code == 404
    # another organisation sees nothing of it (row-level security)
    other = Client(tenant.stack)
    other.signup(unique("Other Org "), unique("other") + "@example.test")
    assert other.json(f"/backups/{backed_up['backup_id']}").status_code == 404
    assert other.json("/backups").json()["backups"] == []
    assert other.post(f"/backups/{backed_up['backup_id']}/delete", {}).status_code == 404


def verify(tenant, backup_id, read_data=False):
    data = {"read_data": "on"} if read_data else {}
    r = tenant.client.post(f"/backups/{backup_id}/verify", data)
    assert r.status_code == 303 and r.headers["Location"].startswith("/jobs/"), r.text[:300]
    job = wait_job(tenant, int(r.headers["Location"].rsplit("/", 1)[1]))
    page = tenant.client.json(f"/backups/{backup_id}").json()["backup"]
    return job, page


def test_verify_finds_a_flipped_byte_in_a_pack_and_a_missing_object(tenant, testenv, backed_up):
    backup_id, name = backed_up["backup_id"], backed_up["name"]
    job, page = verify(tenant, backup_id)
    assert job["state"] == "succeeded", job["error"]
    assert page["verify_state"] == "ok" and page["verified_at"] and not page["damaged"]
    assert job["result"]["verify"]["archive_plain_bytes"] > 0
    job, page = verify(tenant, backup_id, read_data=True)
    assert job["state"] == "succeeded" and page["verify_state"] == "ok", job["error"]
    assert 'id="backup-verified"' in tenant.client.get(f"/backups/{backup_id}").text

    # one byte flipped in the middle of the largest pack (file data) in MinIO
    s3 = s3_client(testenv)
    packs = repo_keys(testenv, tenant, f"data/{tenant.repository_id}/data/packs/")
    pack = max(packs, key=packs.get)
    original = s3.get_object(Bucket=tenant.bucket, Key=pack)["Body"].read()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    s3.put_object(Bucket=tenant.bucket, Key=pack, Body=bytes(flipped))
    try:
        job, page = verify(tenant, backup_id, read_data=True)
        assert job["state"] == "failed"
        assert page["verify_state"] == "damaged" and page["damaged"]
        packid = pack.rsplit("/", 1)[1]
        msg = page["verify_message"]
        print(f"\nverification of the flipped byte says: {msg[:600]}")
        assert f"pack {packid}" in msg, msg
        # and names the file of the volume whose chunk it was
        assert re.search(r"snapshot \d{8}T\d{6}Z-[0-9a-f]{16}: [^:]+: chunk [0-9a-f]{64}: corrupt", msg), msg
        assert f"backup {name} is damaged" in job["error"]
        listed = [b for b in tenant.client.json("/backups").json()["backups"] if b["id"] == backup_id][0]
        assert listed["damaged"]
        assert "Damaged" in tenant.client.get(f"/backups/{backup_id}").text
    finally:
        s3.put_object(Bucket=tenant.bucket, Key=pack, Body=original)

    # an archive object gone is named
    logs = f"{tenant.prefix}backups/{name}/{name}-logs.gz"
    saved = s3.get_object(Bucket=tenant.bucket, Key=logs)["Body"].read()
    s3.delete_object(Bucket=tenant.bucket, Key=logs)
    try:
        job, page = verify(tenant, backup_id)
        assert page["verify_state"] == "damaged" and f"{logs}: missing" in page["verify_message"], page
    finally:
        s3.put_object(Bucket=tenant.bucket, Key=logs, Body=saved)
    # an archive object changed is named too: it no longer opens
    meta = f"{tenant.prefix}backups/{name}/velero-backup.json"
    saved = s3.get_object(Bucket=tenant.bucket, Key=meta)["Body"].read()
    s3.put_object(Bucket=tenant.bucket, Key=meta, Body=saved[:-1] + bytes([saved[-1] ^ 1]))
    try:
        job, page = verify(tenant, backup_id)
        assert page["verify_state"] == "damaged" and page["verify_message"].startswith(meta + ":"), page
    finally:
        s3.put_object(Bucket=tenant.bucket, Key=meta, Body=saved)
    job, page = verify(tenant, backup_id, read_data=True)
    assert job["state"] == "succeeded" and page["verify_state"] == "ok", job["error"]


def test_scheduled_verification_reads_a_share_of_the_packs(stack, tenant, testenv, backed_up):
    """The scheduler verifies each idle repository every verify_interval_days (7), reading the
    share of its packs the period's number picks (1 of verify_share_parts = 4): the flipped pack
    is found in the week whose share holds it, and the backup needing it is marked damaged."""
    backup_id = backed_up["backup_id"]
    s3 = s3_client(testenv)
    packs = repo_keys(testenv, tenant, f"data/{tenant.repository_id}/data/packs/")
    pack = max(packs, key=packs.get)
    packid = pack.rsplit("/", 1)[1]
    week = 7 * 86400
    now = int(time.time())
    when = next(t for t in (now + k * week for k in range(4)) if (t // week) % 4 == int(packid[:2], 16) % 4)
    original = s3.get_object(Bucket=tenant.bucket, Key=pack)["Body"].read()
    flipped = bytearray(original)
    flipped[len(flipped) // 3] ^= 0x10
    s3.put_object(Bucket=tenant.bucket, Key=pack, Body=bytes(flipped))
    try:
        for _ in range(2):	# twice: one verification per interval, however often the scheduler runs
            res = subprocess.run([os.path.join(BUILD, "stowage-scheduler"), "-c", stack.conf, "--once",
                                  "--now", str(when)], capture_output=True, text=True, timeout=120)
            assert res.returncode == 0, res.stderr
        jobs = tenant.sql("SELECT id, result FROM stowage.jobs WHERE org_id = %s AND kind = 'verify' "
                          "AND trigger = 'schedule'", (tenant.org_id,))
        assert len(jobs) == 1, jobs
        assert jobs[0][1]["share_parts"] == 4 and jobs[0][1]["share_part"] == int(packid[:2], 16) % 4
        job = wait_job(tenant, jobs[0][0])
        assert job["state"] == "failed" and f"pack {packid}" in job["error"], job["error"]
        page = tenant.client.json(f"/backups/{backup_id}").json()["backup"]
        # the backup says which of its files is damaged
        assert page["damaged"] and re.search(r": [^:]+\.\w+: chunk [0-9a-f]{64}: corrupt", page["verify_message"]), page
        upkeep = tenant.client.json(f"/repositories/{tenant.repository_id}").json()["upkeep"]
        assert upkeep["last_verified_at"] and f"pack {packid}" in upkeep["last_verify_message"]
        assert upkeep["damaged"] == 1
    finally:
        s3.put_object(Bucket=tenant.bucket, Key=pack, Body=original)
    job, page = verify(tenant, backup_id, read_data=True)
    assert job["state"] == "succeeded" and not page["damaged"], job["error"]


def test_overview_counts_failures_and_storage(tenant, backed_up):
    home = tenant.client.json("/").json()
    assert not home["getting_started"]
    c = home["counts"]
    assert (c["clusters"], c["backup_plans"], c["backups"], c["repositories"]) == (1, 1, 1, 1), c
    assert c["namespaces"] == 1 and c["damaged"] == 0
    # the failed scheduled verification of the test before is listed first, linking to its job
    failed = tenant.sql("SELECT id FROM stowage.jobs WHERE org_id = %s AND state = 'failed' ORDER BY id DESC",
                        (tenant.org_id,))
    assert [f["id"] for f in home["failures"]][:1] == [str(failed[0][0])]
    assert home["failures"][0]["kind"] == "verify" and "pack" in home["failures"][0]["error"]
    states = {j["state"]: int(j["count"]) for j in home["jobs_24h"]}
    assert states["failed"] >= 1 and states["succeeded"] >= 3, states
    assert [s["name"] for s in home["storage"]] == ["minio"] and home["storage"][0]["backups"] == "1"
    html = tenant.client.get("/").text
    assert f'href="/jobs/{failed[0][0]}"' in html and "Storage per repository" in html
    # a new organisation sees the four steps
    other = Client(tenant.stack)
    other.signup(unique("Empty Org "), unique("empty") + "@example.test")
    assert other.json("/").json()["getting_started"] and "Register a cluster" in other.get("/").text


def test_restore_only_the_chosen_types_and_objects(tenant, testenv, backed_up):
    c = tenant.client
    base = {"target_cluster_id": tenant.cluster_id, "existing_policy": "skip", "backup_plan_id": backed_up["plan_id"],
            "backup_id": backed_up["backup_id"]}
    # every choice validated, the error naming its field
    for field, value, words in (("include_types", "Config Maps!", "Only these types:"),
                                ("label_selector", "app in ()", "Label selector:"),
                                ("objects", "configmaps/wordpress", "Only these objects:")):
        r = c.post("/restore-plans/new?step=4", {**base, "name": "bad-choice", field: value})
        assert r.status_code == 422 and words in r.text, (field, r.text[-1500:])
    ns = unique("pick-")
    r = c.post("/restore-plans", {**base, "name": ns, "namespace_map": f"{FIXTURE_NS}:{ns}",
                                  "include_types": "configmaps, deployments.apps",
                                  "objects": f"configmaps/{FIXTURE_NS}/wordpress-config\n"
                                             f"persistentvolumeclaims/{FIXTURE_NS}/wordpress-data"})
    assert r.status_code == 303, r.text[-1500:]
    plan_id = tenant.sql_one("SELECT id, selection FROM stowage.restore_plans WHERE name = %s AND org_id = %s",
                             (ns, tenant.org_id))
    assert plan_id[1]["include_types"] == ["configmaps", "deployments.apps"]
    r = c.post(f"/restore-plans/{plan_id[0]}/activate", {"confirm": "yes"})
    assert r.status_code == 303, r.text[:500]
    job = wait_job(tenant, int(r.headers["Location"].rsplit("/", 1)[1]))
    assert job["state"] == "succeeded", job["error"]
    # only the ConfigMap named and among the included types: the claim is named but not an included type
    assert kubectl(testenv, "source", "-n", ns, "get", "configmap", "wordpress-config", check=False).returncode == 0
    for kind, name in (("deployment", "wordpress"), ("pvc", "wordpress-data"), ("service", "wordpress"),
                       ("secret", "wordpress-secret")):
        assert kubectl(testenv, "source", "-n", ns, "get", kind, name, check=False).returncode != 0, kind
    created = tenant.sql("SELECT resource, name FROM stowage.job_items WHERE job_id = %s AND action = 'created'",
                         (job["id"] if "id" in job else int(r.headers["Location"].rsplit("/", 1)[1]),))
    assert ("configmaps", "wordpress-config") in created and ("namespaces", ns) in created, created
    skipped = tenant.sql("SELECT message FROM stowage.job_items WHERE job_id = %s AND name = 'wordpress'",
                         (int(r.headers["Location"].rsplit("/", 1)[1]),))
    assert any(m.startswith("not chosen") for (m,) in skipped), skipped
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")


def test_diagnostics_bundle_of_a_job(tenant, testenv, backed_up):
    c = tenant.client
    job_id = backed_up["job_id"]
    assert c.get(f"/jobs/{job_id}/diagnostics.tar.gz").status_code == 404
    r = c.post(f"/jobs/{job_id}/diagnostics", {})
    assert r.status_code == 303, r.text[:300]
    diag = wait_job(tenant, int(r.headers["Location"].rsplit("/", 1)[1]))
    assert diag["state"] == "succeeded", diag["error"]
    r = c.get(f"/jobs/{job_id}/diagnostics.tar.gz")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/gzip"
    assert f'filename="job-{job_id}-diagnostics.tar.gz"' in r.headers["Content-Disposition"]
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert {"job.json", "log.txt", "items.json", "README.txt", f"cluster/{FIXTURE_NS}/events.json",
            f"cluster/{FIXTURE_NS}/pods.json"} <= set(files), sorted(files)
    assert json.loads(files["job.json"])["id"] == job_id
    assert "archive and resource list uploaded" in files["log.txt"].decode()
    assert any(i["resource"] == "deployments" for i in json.loads(files["items.json"]))
    pods = json.loads(files[f"cluster/{FIXTURE_NS}/pods.json"])
    assert pods and all("phase" in p for p in pods)
    # never a Secret's data (the fixture's password, plain or base64)
    password = base64.b64decode(json.loads(kubectl(testenv, "source", "-n", FIXTURE_NS, "get", "secret",
                                                   "wordpress-secret", "-o", "json").stdout)["data"]["WORDPRESS_DB_PASSWORD"])
    assert password == b"fixture-db-password"
    assert all(password not in data and base64.b64encode(password) not in data for data in files.values())
    other = Client(tenant.stack)
    other.signup(unique("Nosy Org "), unique("nosy") + "@example.test")
    assert other.get(f"/jobs/{job_id}/diagnostics.tar.gz").status_code == 404


def test_a_deleted_plans_backup_stays_listed_and_restorable(tenant, testenv, backed_up):
    c = tenant.client
    r = c.post(f"/backup-plans/{backed_up['plan_id']}/delete", {})
    assert r.status_code == 303, r.text[:300]
    b = [x for x in c.json("/backups").json()["backups"] if x["id"] == backed_up["backup_id"]][0]
    assert b["plan"] == backed_up["plan"] and b["plan_deleted"] and b["plan_id"] == 0
    assert b["restore_link"].endswith(f"backup_plan_id=0&backup_id={backed_up['backup_id']}")
    # the restore wizard opened from the backup's Restore: the plan step offers the plan-less
    # backups, the backup step lists this one, and the plan saves with it
    step2 = c.json(f"/restore-plans/new?step=2&name=from-deleted&target_cluster_id={tenant.cluster_id}"
                   f"&existing_policy=skip&backup_plan_id=0&backup_id={backed_up['backup_id']}").json()
    assert any(p["id"] == "0" and p["selected"] for p in step2["plans"]), step2["plans"]
    step3 = c.json(f"/restore-plans/new?step=3&name=from-deleted&target_cluster_id={tenant.cluster_id}"
                   f"&existing_policy=skip&backup_plan_id=0&backup_id={backed_up['backup_id']}").json()
    assert [x["id"] for x in step3["backups"]] == [str(backed_up["backup_id"])]
    r = c.post("/restore-plans", {"name": "from-deleted", "target_cluster_id": tenant.cluster_id,
                                  "existing_policy": "skip", "backup_plan_id": "0",
                                  "backup_id": backed_up["backup_id"], "namespace_map": f"{FIXTURE_NS}:copy"})
    assert r.status_code == 303, r.text[:800]
    assert tenant.sql_one("SELECT backup_plan_id, backup_id FROM stowage.restore_plans WHERE name = 'from-deleted' "
                          "AND org_id = %s", (tenant.org_id,)) == (None, backed_up["backup_id"])


def test_delete_removes_everything_then_prune_frees_the_data(stack, tenant, testenv, backed_up):
    c = tenant.client
    name, backup_id = backed_up["name"], backed_up["backup_id"]
    volumes = tenant.sql_one("SELECT volumes FROM stowage.backups WHERE id = %s", (backup_id,))[0]
    snaps = repo_keys(testenv, tenant, f"data/{tenant.repository_id}/data/snapshots/")
    assert all(any(v["snapshot_id"] in k for k in snaps) for v in volumes)
    packs_before = repo_keys(testenv, tenant, f"data/{tenant.repository_id}/data/packs/")
    assert packs_before and backup_objects(testenv, tenant, name)

    r = c.post(f"/backups/{backup_id}/delete", {})
    assert r.status_code == 303 and r.headers["Location"].startswith("/jobs/"), r.text[:300]
    job_id = int(r.headers["Location"].rsplit("/", 1)[1])
    # from the press of the button on, the backup is never offered for restore
    state = tenant.sql("SELECT state FROM stowage.backups WHERE id = %s", (backup_id,))
    assert state in ([("deleting",)], [])
    step3 = c.json(f"/restore-plans/new?step=3&name=x&target_cluster_id={tenant.cluster_id}&existing_policy=skip"
                   f"&backup_plan_id=0").json()
    assert str(backup_id) not in [x["id"] for x in step3.get("backups", [])]
    job = wait_job(tenant, job_id)
    assert job["state"] == "succeeded", job["error"]
    assert job["result"]["deleted"]["volume_data_released"] == 3
    assert tenant.sql("SELECT 1 FROM stowage.backups WHERE id = %s", (backup_id,)) == []
    assert backup_objects(testenv, tenant, name) == {}
    after = repo_keys(testenv, tenant, f"data/{tenant.repository_id}/data/snapshots/")
    assert not any(v["snapshot_id"] in k for v in volumes for k in after)
    audit = c.json("/audit").json()["entries"]
    assert any(e["action"] == "backup.deleted" and e["target"] == name for e in audit)
    assert tenant.sql_one("SELECT prune_wanted FROM stowage.repositories WHERE id = %s", (tenant.repository_id,)) == (True,)

    # the scheduler queues a prune once the repository is idle; it frees the packs
    res = subprocess.run([os.path.join(BUILD, "stowage-scheduler"), "-c", stack.conf, "--once"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    prune = tenant.sql_one("SELECT id FROM stowage.jobs WHERE org_id = %s AND kind = 'prune' ORDER BY id DESC LIMIT 1",
                           (tenant.org_id,))[0]
    job = wait_job(tenant, prune)
    assert job["state"] == "succeeded", job["error"]
    packs_after = repo_keys(testenv, tenant, f"data/{tenant.repository_id}/data/packs/")
    freed = sum(packs_before.values()) - sum(packs_after.values())
    assert freed > 0 and job["result"]["prune"]["bytes_freed"] == freed
    print(f"\nprune freed {freed} bytes: {len(packs_before)} packs before, {len(packs_after)} after")
    upkeep = c.json(f"/repositories/{tenant.repository_id}").json()["upkeep"]
    assert upkeep["last_prune_bytes_freed"] == freed and not upkeep["prune_wanted"]
    assert "freed" in c.get(f"/repositories/{tenant.repository_id}").text


def test_a_delete_that_fails_halfway_resumes(tenant, testenv):
    """A backup with a VolumeSnapshot in a cluster that cannot be reached: the metadata goes, the
    delete stops at the snapshot with the reason on the backup, which stays 'deleting' (never
    offered); once the cluster answers, Delete resumes and removes the snapshot, its content
    (switched to deletionPolicy Delete first) and the row."""
    c = tenant.client
    ns = unique("snapns-")
    kubectl(testenv, "source", "create", "namespace", ns)
    content, snap = unique("snapcontent-"), unique("snap-")
    kubectl(testenv, "source", "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent", "metadata": {"name": content},
         "spec": {"deletionPolicy": "Retain", "driver": "hostpath.csi.k8s.io",
                  "source": {"snapshotHandle": "handle-1"},
                  "volumeSnapshotRef": {"namespace": ns, "name": snap}}},
        {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": snap, "namespace": ns},
         "spec": {"source": {"volumeSnapshotContentName": content}}}]}))
    r = c.post("/clusters", {"name": "unreachable", "api_url": "https://127.0.0.1:1", "token": "t",
                             "save_unverified": "on"})
    assert r.status_code == 303, r.text[:300]
    dead = [x for x in c.json("/clusters").json()["clusters"] if x["name"] == "unreachable"][0]["id"]
    name = unique("halfway-")
    volumes = [{"namespace": ns, "pvc": "data", "method": "snapshot",
                "volume_snapshot": {"api_version": "snapshot.storage.k8s.io/v1", "namespace": ns, "name": snap,
                                    "content": content}}]
    backup_id = tenant.sql_one(
        "INSERT INTO stowage.backups (org_id, repository_id, cluster_id, name, namespaces, state, volumes) "
        "VALUES (%s, %s, %s, %s, ARRAY[%s], 'completed', %s) RETURNING id",
        (tenant.org_id, tenant.repository_id, dead, name, ns, json.dumps(volumes)))[0]
    s3 = s3_client(testenv)
    for f in ("velero-backup.json", f"{name}.tar.gz"):
        s3.put_object(Bucket=tenant.bucket, Key=f"{tenant.prefix}backups/{name}/{f}", Body=b"x")

    r = c.post(f"/backups/{backup_id}/delete", {})
    job = wait_job(tenant, int(r.headers["Location"].rsplit("/", 1)[1]))
    assert job["state"] == "failed"
    state, why = tenant.sql_one("SELECT state, delete_error FROM stowage.backups WHERE id = %s", (backup_id,))
    assert state == "deleting", state
    assert why.startswith(f"VolumeSnapshot {ns}/{snap}") or "127.0.0.1" in why, why
    print(f"\nthe failed delete says: {why}")
    assert set(backup_objects(testenv, tenant, name)) == {f"{tenant.prefix}backups/{name}/{name}.tar.gz"}
    page = c.json(f"/backups/{backup_id}").json()["backup"]
    assert page["state"] == "deleting" and not page["restorable"] and "restore_link" not in page
    assert page["delete_error"] == why

    # the cluster is back (the backup's cluster is the reachable one): Delete resumes
    tenant.sql("UPDATE stowage.backups SET cluster_id = %s WHERE id = %s", (tenant.cluster_id, backup_id))
    r = c.post(f"/backups/{backup_id}/delete", {})
    job = wait_job(tenant, int(r.headers["Location"].rsplit("/", 1)[1]))
    assert job["state"] == "succeeded", job["error"]
    assert tenant.sql("SELECT 1 FROM stowage.backups WHERE id = %s", (backup_id,)) == []
    assert backup_objects(testenv, tenant, name) == {}
    assert kubectl(testenv, "source", "-n", ns, "get", "volumesnapshot", snap, check=False).returncode != 0
    assert kubectl(testenv, "source", "get", "volumesnapshotcontent", content, check=False).returncode != 0
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")


def test_a_running_backup_cannot_be_deleted_and_viewers_cannot_delete(tenant):
    c = tenant.client
    backup_id = tenant.sql_one(
        "INSERT INTO stowage.backups (org_id, repository_id, name, namespaces, state) "
        "VALUES (%s, %s, %s, ARRAY['x'], 'running') RETURNING id", (tenant.org_id, tenant.repository_id,
                                                                   unique("writing-")))[0]
    r = c.post(f"/backups/{backup_id}/delete", {})
    assert r.status_code == 409 and "still being written" in r.text
    assert tenant.sql_one("SELECT state FROM stowage.backups WHERE id = %s", (backup_id,)) == ("running",)
    viewer = c.invite(unique("viewer") + "@example.test", "viewer")
    assert viewer.post(f"/backups/{backup_id}/delete", {}).status_code == 403
    assert viewer.json("/backups").status_code == 200
    tenant.sql("DELETE FROM stowage.backups WHERE id = %s", (backup_id,))


def test_every_job_kind_reports_its_phases_in_one_shape(tenant, backed_up):
    """Runs last in this file: by now the organisation has run a backup, restores, verifications,
    a sync, diagnostics, deletes and a prune. Each finished job's page (the page's own reader of
    jobs.result) lists its phases with a state and a duration; a failed one names its error."""
    rows = tenant.sql("SELECT id, kind, state FROM stowage.jobs WHERE org_id = %s AND state NOT IN ('queued', 'running') "
                      "ORDER BY id", (tenant.org_id,))
    kinds = {kind for _, kind, _ in rows}
    assert {"backup", "restore", "verify", "sync", "diagnostics", "delete_backup", "prune"} <= kinds, kinds
    for job_id, kind, state in rows:
        view = tenant.client.json(f"/jobs/{job_id}").json()["job"]
        phases = view["phases"]
        assert phases, (kind, job_id)
        for p in phases:
            assert p["name"] and p["state"] and isinstance(p["duration_ms"], (int, float)) and p["duration"], (kind, p)
        if state == "failed":
            assert any(p["state"] != "succeeded" and p.get("error") for p in phases), (kind, phases)
        if kind not in ("backup", "restore", "migrate"):
            assert [p["name"] for p in phases] == [kind] and phases[0]["state"] == state, (kind, phases)
