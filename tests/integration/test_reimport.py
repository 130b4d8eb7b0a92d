"""Re-import (disaster recovery, issue 15) against the real servers: an organisation backs up the
fixture application (objects and three volumes) into a bucket; then everything the database knew
of it is destroyed (its organisation, repository row, plans, backups, jobs: gone); a new
organisation adds the same bucket, whose creation syncs it: the backup is back in the catalog,
its repository opens it under the key it was sealed with, a forged backup in the bucket is
refused in words, a second sync adds no duplicate; the backup restores into the other cluster
and every object and every volume file is compared with the source.

The database is destroyed by deleting the organisation's rows, not by a new PostgreSQL: the
stack is shared by the session. That is the harder case for the keys: the new repository row
gets another id than the one the bucket was sealed under (a new database could even reuse it)."""
import json

import boto3
import pytest

from conftest import Client, unique
from test_backup_job import Tenant
from test_backup_restore_e2e import backup, digests, fixture_namespace, restore, volume_dirs
from test_restore_job import OWNED_SKIPS, comparable, snapshot, target_get
from provisioner import Provisioner


def destroy_organisation(tenant):
    """Everything the database holds of the organisation, as its owner: gone."""
    org = tenant.org_id
    for table in ("job_logs", "job_items", "jobs", "restore_plans", "backups", "backup_plans", "migration_plans",
                  "repositories", "clusters"):
        tenant.sql(f"DELETE FROM stowage.{table} WHERE org_id = %s", (org,))
    tenant.sql("DELETE FROM stowage.orgs WHERE id = %s", (org,))
    assert tenant.sql("SELECT 1 FROM stowage.repositories WHERE id = %s", (tenant.repository_id,)) == []


def add_clusters(client, testenv):
    for name in ("source", "target"):
        with open(testenv[f"{name.upper()}_CA_FILE"]) as f:
            ca = f.read()
        r = client.post("/clusters", {"name": name, "api_url": testenv[f"{name.upper()}_API_URL"],
                                      "token": testenv[f"{name.upper()}_ADMIN_TOKEN"], "ca_pem": ca})
        assert r.status_code == 303, r.text[:500]
    return {c["name"]: c["id"] for c in client.json("/clusters").json()["clusters"]}


def sync_jobs(tenant2, org_id):
    return tenant2.sql("SELECT id FROM stowage.jobs WHERE org_id = %s AND kind = 'sync' ORDER BY id", (org_id,))


def test_backup_destroy_the_database_sync_restore_elsewhere_and_compare(stack, testenv):
    old = Tenant(stack, testenv, prefix="dr")
    ns = fixture_namespace(testenv)
    before = snapshot(testenv, "source", ns)
    data = {claim: digests(d) for claim, d in volume_dirs(testenv, "source", ns).items()}
    assert sorted(data) == ["data-mysql-0", "data-mysql-1", "wordpress-data"] and all(data.values())
    _, job = backup(old, ns)
    assert job["state"] == "succeeded", job
    name = old.backup_row(job["backup_id"])["name"]
    old_repository = old.repository_id
    # a backup in the bucket that no key of this Stowage sealed: written by someone holding only the bucket
    s3 = boto3.client("s3", endpoint_url=testenv["S3_ENDPOINT"], region_name=testenv["S3_REGION"],
                      aws_access_key_id=testenv["S3_ACCESS_KEY"], aws_secret_access_key=testenv["S3_SECRET_KEY"])
    s3.put_object(Bucket=old.bucket, Key="dr/backups/forged/velero-backup.json", Body=json.dumps(
        {"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "forged"},
         "spec": {"includedNamespaces": ["kube-system"]}, "status": {"phase": "Completed"}}).encode())

    destroy_organisation(old)

    # a new organisation, the same bucket: the repository's creation syncs it
    client = Client(stack)
    client.signup(unique("Recovered Org "), unique("dr") + "@example.test")
    clusters = add_clusters(client, testenv)
    r = client.post("/repositories", {"name": "recovered", "kind": "s3-compatible", "bucket": old.bucket,
                                      "region": testenv["S3_REGION"], "endpoint": testenv["S3_ENDPOINT"],
                                      "access_key": testenv["S3_ACCESS_KEY"], "secret_key": testenv["S3_SECRET_KEY"],
                                      "prefix": "dr"})
    assert r.status_code == 303, r.text[:500]
    repo = client.json("/repositories").json()["repositories"][0]["id"]
    new = old  # its SQL helpers only; the organisation below is the new one
    org_id = new.sql_one("SELECT org_id FROM stowage.repositories WHERE id = %s", (repo,))[0]
    assert repo != old_repository
    jobs = sync_jobs(new, org_id)
    assert len(jobs) == 1, jobs
    sync = new.wait_job(jobs[0][0])
    # the forged backup is refused in words; the real one imported
    assert sync["state"] == "partially_failed", sync
    assert sync["result"]["sync"]["imported"] == 1 and sync["result"]["sync"]["refused"] == 1, sync["result"]
    refusal = sync["result"]["sync"]["refusals"][0]
    assert refusal.startswith("backup forged: dr/backups/forged/velero-backup.json:") and "not imported" in refusal
    print(f"\nthe forged backup: {refusal}")
    assert new.sql_one("SELECT seal_id FROM stowage.repositories WHERE id = %s", (repo,)) == (old_repository,)
    listing = client.json("/backups").json()["backups"]
    assert [(b["name"], b["state"], b["namespaces"], b["volumes"]) for b in listing] == [(name, "completed", ns, 3)]
    backup_id = listing[0]["id"]
    page = client.json(f"/backups/{backup_id}").json()
    assert any(t["type"] == "apps/v1/Deployment" for t in page["resources"])
    upkeep = client.json(f"/repositories/{repo}").json()["upkeep"]
    assert upkeep["last_sync_message"] == "1 imported, 0 already known, 1 refused", upkeep

    # a second sync adds nothing twice
    r = client.post(f"/repositories/{repo}/sync", {})
    assert r.status_code == 303 and r.headers["Location"].startswith("/jobs/"), r.text[:300]
    again = new.wait_job(int(r.headers["Location"].rsplit("/", 1)[1]))
    assert again["result"]["sync"]["imported"] == 0 and again["result"]["sync"]["known"] == 1, again["result"]
    assert len(client.json("/backups").json()["backups"]) == 1

    # it verifies, and restores into the other cluster: every object and every volume file
    r = client.post(f"/backups/{backup_id}/verify", {"read_data": "on"})
    verified = new.wait_job(int(r.headers["Location"].rsplit("/", 1)[1]))
    assert verified["state"] == "succeeded", verified["error"]
    new.org_id = org_id
    with Provisioner(testenv, "target", ["standard-nfs"], testenv["TARGET_VOLUME_DIR"]) as prov:
        _, rjob = restore(new, backup_id, clusters["target"], storage_class_map={"fast-ssd": "standard-nfs"})
    assert not prov.errors, prov.errors
    assert rjob["state"] == "succeeded", rjob["error"]
    compared = 0
    for (gr, o_ns, obj_name), obj in before.items():
        if o_ns != ns or gr in OWNED_SKIPS or (gr, obj_name) in (("configmaps", "kube-root-ca.crt"),
                                                                 ("serviceaccounts", "default")):
            continue
        live = target_get(testenv, "target", gr, o_ns, obj_name)
        assert live is not None, (gr, o_ns, obj_name)
        want, got = comparable(gr, obj), comparable(gr, live)
        if gr == "persistentvolumeclaims":	# a new volume, in the mapped class
            want["spec"].pop("volumeName"), got["spec"].pop("volumeName")
            assert got["spec"].pop("storageClassName") == "standard-nfs"
            want["spec"].pop("storageClassName")
        assert got == want, (gr, o_ns, obj_name)
        compared += 1
    assert compared >= 14, compared
    restored = {claim: digests(d) for claim, d in volume_dirs(testenv, "target", ns).items()}
    assert restored == data
    print(f"compared {compared} objects and {sum(len(v) for v in data.values())} volume files")
