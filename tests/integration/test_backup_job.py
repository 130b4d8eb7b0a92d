"""Backup jobs against the real servers: a runner of the `stack` backs up namespaces of the
source cluster of the `testenv` into MinIO, in Velero's layout. Plans and jobs are inserted
in PostgreSQL as the owner (their console pages are another module's); the organisation,
cluster and repository come through the console like a user's."""
import contextlib
import gzip
import io
import json
import os
import re
import signal
import subprocess
import tarfile
import tempfile
import time

import boto3
import psycopg2
import pytest

from conftest import BUILD, Client, own_stack, unique
from fixtures_testenv import SCRIPTS, kubectl

FIXTURE_NS = "wordpress"
MANY_NS = "many-configmaps"
MANY = 1200


# ---- set-up helpers ----

def s3_client(testenv):
    return boto3.client("s3", endpoint_url=testenv["S3_ENDPOINT"], region_name=testenv["S3_REGION"],
                        aws_access_key_id=testenv["S3_ACCESS_KEY"], aws_secret_access_key=testenv["S3_SECRET_KEY"])


class Tenant:
    """An organisation signed up through the console, with the source cluster and a repository
    (a fresh bucket, under a prefix) added through the console."""

    def __init__(self, stack, testenv, prefix="team-a"):
        self.stack = stack
        self.client = Client(stack)
        self.client.signup(unique("Backup Org "), unique("backup") + "@example.test")
        with open(testenv["SOURCE_CA_FILE"]) as f:
            ca = f.read()
        r = self.client.post("/clusters", {"name": "source", "api_url": testenv["SOURCE_API_URL"],
                                           "token": testenv["SOURCE_ADMIN_TOKEN"], "ca_pem": ca})
        assert r.status_code == 303, r.text[:500]
        self.bucket = unique("backups-")
        s3_client(testenv).create_bucket(Bucket=self.bucket)
        self.prefix = prefix + "/"
        r = self.client.post("/repositories", {
            "name": "minio", "kind": "s3-compatible", "bucket": self.bucket, "region": testenv["S3_REGION"],
            "endpoint": testenv["S3_ENDPOINT"], "access_key": testenv["S3_ACCESS_KEY"],
            "secret_key": testenv["S3_SECRET_KEY"], "prefix": prefix})
        assert r.status_code == 303, r.text[:500]
        self.cluster_id = self.client.json("/clusters").json()["clusters"][0]["id"]
        self.repository_id = self.client.json("/repositories").json()["repositories"][0]["id"]
        self.org_id = self.sql_one("SELECT org_id FROM stowage.clusters WHERE id = %s", (self.cluster_id,))[0]

    def sql(self, query, args=()):
        conn = psycopg2.connect(self.stack.pg_dsn_owner)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(query, args)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def sql_one(self, query, args=()):
        rows = self.sql(query, args)
        assert rows and len(rows) == 1, f"{query}: {rows}"
        return rows[0]

    def queue_backup(self, namespaces, selector="", volume_methods=None):
        plan = unique("plan-")
        plan_id = self.sql_one(
            "INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces, label_selector, "
            "volume_methods) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (self.org_id, plan, self.cluster_id, self.repository_id, namespaces, selector,
             json.dumps(volume_methods or {})))[0]
        job_id = self.sql_one("INSERT INTO stowage.jobs (org_id, kind, backup_plan_id, cluster_id) "
                              "VALUES (%s, 'backup', %s, %s) RETURNING id", (self.org_id, plan_id, self.cluster_id))[0]
        return plan, job_id

    def job(self, job_id):
        state, error, result, backup_id, runner, phase = self.sql_one(
            "SELECT state, error, result, backup_id, runner_id, phase FROM stowage.jobs WHERE id = %s", (job_id,))
        return {"state": state, "error": error, "result": result, "backup_id": backup_id, "runner_id": runner,
                "phase": phase}

    def wait_job(self, job_id, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = self.job(job_id)
            if job["state"] not in ("queued", "running"):
                return job
            time.sleep(0.2)
        pytest.fail(f"job {job_id} still {job['state']} after {timeout} s (phase {job['phase']})")

    def backup_row(self, backup_id):
        cols = ("name", "state", "resource_count", "bytes", "completed_at", "expires_at", "namespaces", "plan_id")
        return dict(zip(cols, self.sql_one(f"SELECT {', '.join(cols)} FROM stowage.backups WHERE id = %s", (backup_id,))))

    def items(self, job_id, action="backed_up"):
        return self.sql("SELECT api_group, resource, namespace, name FROM stowage.job_items "
                        "WHERE job_id = %s AND action = %s", (job_id, action))


def backup_objects(testenv, tenant, name):
    """{key: (size, last_modified)} of every object under the backup's prefix."""
    s3 = s3_client(testenv)
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=tenant.bucket,
                                                             Prefix=f"{tenant.prefix}backups/{name}/"):
        for o in page.get("Contents", []):
            out[o["Key"]] = (o["Size"], o["LastModified"])
    return out


def download_sealed(testenv, tenant, key):
    return s3_client(testenv).get_object(Bucket=tenant.bucket, Key=key)["Body"].read()


def download(testenv, tenant, key):
    """An object of the backup as its plain content: sealed in the bucket, opened with stowage-archive."""
    return tenant.stack.archive_tool("export", tenant.repository_id, key, download_sealed(testenv, tenant, key))


PATH_RE = re.compile(r"^resources/(?P<gr>[^/]+)/(?:(?P<version>[^/]+)-preferredversion/)?"
                     r"(?:namespaces/(?P<ns>[^/]+)|cluster)/(?P<name>[^/]+)\.json$")


def read_archive(testenv, tenant, name):
    """Downloads the backup's tar.gz; checks it lists with tar -tzf; returns {path: bytes}."""
    data = download(testenv, tenant, f"{tenant.prefix}backups/{name}/{name}.tar.gz")
    with tempfile.NamedTemporaryFile(suffix=".tar.gz") as f:
        f.write(data)
        f.flush()
        listing = subprocess.run(["tar", "-tzf", f.name], capture_output=True, text=True, check=True).stdout.split()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    assert sorted(listing) == sorted(files), "tar -tzf and Python's tarfile disagree"
    return files


def check_archive_paths(files):
    """Every object file parses and names its own kind, group, version, namespace and name;
    returns {(gr, ns, name): object} of the files without a version directory."""
    objects = {}
    for path, data in files.items():
        if path == "metadata/version":
            continue
        m = PATH_RE.match(path)
        assert m, f"{path}: not a Velero resource path"
        obj = json.loads(data)
        meta = obj["metadata"]
        assert meta["name"] == m["name"], path
        assert meta.get("namespace") == m["ns"], path
        group, _, version = obj["apiVersion"].rpartition("/")
        gr = m["gr"]
        assert (gr.endswith("." + group) and gr.count(".") >= 1) if group else "." not in gr, \
            f"{path}: group of {obj['apiVersion']} does not match {gr}"
        if m["version"]:
            assert m["version"] == version, path
            plain = path.replace(f"/{version}-preferredversion/", "/")
            assert files.get(plain) == data, f"{path}: no identical copy at {plain}"
        else:
            objects[(gr, m["ns"], m["name"])] = obj
            twin = f"resources/{gr}/{version}-preferredversion/" + path[len(f"resources/{gr}/"):]
            assert files.get(twin) == data, f"{path}: no identical copy at {twin}"
    return objects


# ---- fixtures ----

@pytest.fixture(scope="module")
def tenant(stack, testenv):
    return Tenant(stack, testenv)


@pytest.fixture(scope="module")
def fixture_app(testenv):
    res = subprocess.run([os.path.join(SCRIPTS, "fixture-app"), testenv["SOURCE_KUBECONFIG"], FIXTURE_NS,
                          testenv["SOURCE_VOLUME_DIR"]], capture_output=True, text=True,
                         env=dict(os.environ, KUBECTL=testenv["KUBECTL"]))
    if res.returncode != 0:
        pytest.fail(f"scripts/testenv/fixture-app failed: {res.stderr[-2000:]}")
    return FIXTURE_NS


def fill_namespace(testenv, ns, count, labelled_every=0):
    """A namespace of `count` ConfigMaps (cm-00000 ...), every `labelled_every`-th labelled
    batch=a, created by kubectl in one apply."""
    kubectl(testenv, "source", "create", "namespace", ns)
    items = []
    for i in range(count):
        labels = {"batch": "a"} if labelled_every and i % labelled_every == 0 else {}
        items.append({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": f"cm-{i:05d}", "namespace": ns, "labels": labels},
                      "data": {"index": str(i), "payload": "x" * 200}})
    kubectl(testenv, "source", "apply", "--server-side", "-f", "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


@pytest.fixture(scope="module")
def many_configmaps(testenv):
    fill_namespace(testenv, MANY_NS, MANY, labelled_every=3)
    return MANY_NS


# ---- tests ----

def test_fixture_app_backup_is_complete_and_velero_shaped(tenant, testenv, fixture_app):
    plan, job_id = tenant.queue_backup([fixture_app], volume_methods={f"{fixture_app}/wordpress-data": "filesystem"})
    job = tenant.wait_job(job_id)
    assert job["state"] == "succeeded", job["error"]
    assert job["backup_id"], "the job does not point at its backup"
    row = tenant.backup_row(job["backup_id"])
    name = row["name"]
    assert re.fullmatch(re.escape(plan) + r"-\d{14}", name)
    assert row["state"] == "completed" and row["completed_at"] is not None
    assert row["namespaces"] == [fixture_app]
    assert 29 <= (row["expires_at"] - row["completed_at"]).days <= 30

    keys = backup_objects(testenv, tenant, name)
    base = f"{tenant.prefix}backups/{name}/"
    assert set(keys) == {base + f for f in (f"{name}.tar.gz", f"{name}-resource-list.json.gz",
                                            f"{name}-logs.gz", f"{name}-volumes.json", "velero-backup.json")}
    volumes = json.loads(download(testenv, tenant, base + f"{name}-volumes.json"))
    assert sorted(v["pvc"] for v in volumes) == ["data-mysql-0", "data-mysql-1", "wordpress-data"]
    assert all(v["method"] == "filesystem" and v["snapshot_id"] for v in volumes)
    # the row's bytes: what the backup wrote under its prefix (volume data lives in the shared data/ store)
    assert row["bytes"] == sum(size for size, _ in keys.values())
    # velero-backup.json was written last, and the row completed only after it
    last = keys[base + "velero-backup.json"][1]
    assert all(lm <= last for _, lm in keys.values())
    assert row["completed_at"].replace(microsecond=0) >= last.replace(microsecond=0)

    files = read_archive(testenv, tenant, name)
    assert files["metadata/version"] == b"1.1.0"
    objects = check_archive_paths(files)
    ns = fixture_app
    expected = [
        ("deployments.apps", ns, "wordpress"), ("services", ns, "wordpress"), ("services", ns, "mysql"),
        ("services", ns, "wordpress-nodeport"),
        ("ingresses.networking.k8s.io", ns, "wordpress"), ("configmaps", ns, "wordpress-config"),
        ("secrets", ns, "wordpress-secret"), ("persistentvolumeclaims", ns, "wordpress-data"),
        ("persistentvolumeclaims", ns, "data-mysql-0"), ("persistentvolumeclaims", ns, "data-mysql-1"),
        ("statefulsets.apps", ns, "mysql"), ("serviceaccounts", ns, "fixture-app"),
        ("roles.rbac.authorization.k8s.io", ns, "fixture-app"),
        ("rolebindings.rbac.authorization.k8s.io", ns, "fixture-app"), ("cronjobs.batch", ns, "nightly-report"),
        ("widgets.fixtures.stowage.dev", ns, "sprocket"),
        ("customresourcedefinitions.apiextensions.k8s.io", None, "widgets.fixtures.stowage.dev"),
        ("namespaces", None, ns),
        ("persistentvolumes", None, f"{ns}-wordpress-data"), ("persistentvolumes", None, f"{ns}-data-mysql-0"),
        ("persistentvolumes", None, f"{ns}-data-mysql-1"),
        ("storageclasses.storage.k8s.io", None, testenv["SOURCE_STORAGE_CLASS"]),
    ]
    missing = [e for e in expected if e not in objects]
    assert not missing, f"not in the archive: {missing}"
    assert objects[("secrets", ns, "wordpress-secret")]["kind"] == "Secret"
    assert any(gr == "pods" for gr, _, _ in objects), "pods are kept, as Velero keeps them"
    assert not [k for k in objects if k[0] in ("events", "events.events.k8s.io")], "events are noise"
    # only this namespace and the cluster-scoped objects it depends on
    assert {o[1] for o in objects} == {ns, None}
    cluster_scoped = sorted(gr for gr, o_ns, _ in objects if o_ns is None)
    assert cluster_scoped == sorted(["customresourcedefinitions.apiextensions.k8s.io", "namespaces",
                                     "persistentvolumes", "persistentvolumes", "persistentvolumes",
                                     "storageclasses.storage.k8s.io"])

    # one job item per object, and the counts per type agree with the archive
    # the volumes' data has items of its own (stowage.dev/volumedata), one per claim
    volume_items = [i for i in tenant.items(job_id) if i[0] == "stowage.dev"]
    assert sorted(i[3] for i in volume_items) == ["data-mysql-0", "data-mysql-1", "wordpress-data"]
    items = [i for i in tenant.items(job_id) if i[0] != "stowage.dev"]
    assert len(items) == len(objects) == len(files) // 2  # every object twice, plus metadata/version
    assert not tenant.items(job_id, "failed")
    per_type = {}
    for gr, _, _ in objects:
        per_type[gr] = per_type.get(gr, 0) + 1
    assert job["result"]["counts"] == per_type
    assert row["resource_count"] == len(objects)
    item_keys = {(r + ("." + g if g else ""), n or None, nm) for g, r, n, nm in items}
    assert item_keys == set(objects)

    phases = job["result"]["phases"]
    assert [p["name"] for p in phases] == ["discover", "resources", "volumes", "upload", "finalize"]  # no hooks: no hook phase
    assert all(p["state"] == "succeeded" and p["duration_ms"] >= 0 and p["started_at"] <= p["finished_at"]
               for p in phases), phases
    assert job["result"]["volumes"]["volumes"] == 3  # every claim's data was copied (the mover's totals)

    resource_list = json.loads(gzip.decompress(download(testenv, tenant, base + f"{name}-resource-list.json.gz")))
    assert f"{ns}/wordpress" in resource_list["apps/v1/Deployment"]
    assert resource_list["v1/Namespace"] == [ns]
    assert "widgets.fixtures.stowage.dev" in resource_list["apiextensions.k8s.io/v1/CustomResourceDefinition"]
    assert sum(len(v) for v in resource_list.values()) == len(objects)

    logs = gzip.decompress(download(testenv, tenant, base + f"{name}-logs.gz")).decode()
    assert f"backup {name} of plan {plan}" in logs

    velero = json.loads(download(testenv, tenant, base + "velero-backup.json"))
    assert velero["apiVersion"] == "velero.io/v1" and velero["kind"] == "Backup"
    assert velero["metadata"]["name"] == name
    assert velero["spec"]["includedNamespaces"] == [ns]
    status = velero["status"]
    assert status["phase"] == "Completed" and status["formatVersion"] == "1.1.0"
    assert status["startTimestamp"] <= status["completionTimestamp"]
    assert status["progress"] == {"totalItems": len(objects), "itemsBackedUp": len(objects)}
    ann = velero["metadata"]["annotations"]
    assert ann["stowage.dev/plan"] == plan and ann["stowage.dev/cluster"] == "source"
    assert json.loads(ann["stowage.dev/counts"]) == per_type
    # every object is sealed: a person holding only the bucket reads none of it, and an object
    # opens only under its own name
    secret_names = [n for (gr, _, n) in objects if gr == "secrets"]
    for key in keys:
        raw = download_sealed(testenv, tenant, key)
        assert raw.startswith(b"STOWAGE\x01"), key
        assert b"resources/" not in raw and b'"kind"' not in raw and not any(n.encode() in raw for n in secret_names)
    archive_key = base + f"{name}.tar.gz"
    bad = subprocess.run([os.path.join(BUILD, "stowage-archive"), "export", "-k",
                          os.path.join(tenant.stack.root, "master.key"), "-r", str(tenant.repository_id),
                          base + "renamed.tar.gz"], input=download_sealed(testenv, tenant, archive_key), capture_output=True)
    assert bad.returncode == 1 and b"does not open with this repository's key" in bad.stderr
    # no secret of ours in what the repository holds
    for key in keys:
        body = download(testenv, tenant, key)
        assert testenv["SOURCE_ADMIN_TOKEN"].encode() not in body
        assert testenv["S3_SECRET_KEY"].encode() not in body


def test_listing_past_the_page_size_returns_every_object(tenant, testenv, many_configmaps):
    _, job_id = tenant.queue_backup([many_configmaps])
    job = tenant.wait_job(job_id)
    assert job["state"] == "succeeded", job["error"]
    name = tenant.backup_row(job["backup_id"])["name"]
    objects = check_archive_paths(read_archive(testenv, tenant, name))
    ours = {n for gr, ns, n in objects if gr == "configmaps" and n.startswith("cm-")}
    assert ours == {f"cm-{i:05d}" for i in range(MANY)}
    configmaps = sum(1 for gr, _, _ in objects if gr == "configmaps")  # with kube-root-ca.crt
    assert job["result"]["counts"]["configmaps"] == configmaps
    assert len([i for i in tenant.items(job_id) if i[1] == "configmaps"]) == configmaps

    # the job page shows the results 200 a page, every one on exactly one page
    # following Next (a keyset cursor) or asking by page number (counted) gives the same pages
    total = len(tenant.items(job_id))
    seen, page, link = [], 1, f"/jobs/{job_id}"
    while True:
        view = tenant.client.json(link.split("#")[0]).json()
        assert view["items_count"] == total and len(view["items"]) <= 200
        by_number = tenant.client.json(f"/jobs/{job_id}?items_page={page}").json()
        assert by_number["items"] == view["items"] and by_number["items_from"] == view["items_from"]
        seen += [(i["type"], i["namespace"], i["name"]) for i in view["items"]]
        if "items_next_link" not in view:
            break
        link = view["items_next_link"]
        assert len(view["items"]) == 200 and link.endswith(f"items_page={page + 1}#job-items") and "items_after" in link
        page += 1
    assert page == (total + 199) // 200 and len(seen) == len(set(seen)) == total
    for bad in ("0", "x", "-1", "99999999"):
        r = tenant.client.json(f"/jobs/{job_id}?items_page={bad}")
        assert r.status_code == 422 and "Results page" in r.text, (bad, r.status_code, r.text[:300])
    for bad in ("items_after=x", "items_after=0", "items_after_failed=-5", "items_after=1e3"):
        r = tenant.client.json(f"/jobs/{job_id}?{bad}")
        assert r.status_code == 422 and "Results after" in r.text, (bad, r.status_code, r.text[:300])


def test_label_selector_limits_the_objects(tenant, testenv, many_configmaps):
    _, job_id = tenant.queue_backup([many_configmaps], selector="batch=a")
    job = tenant.wait_job(job_id)
    assert job["state"] == "succeeded", job["error"]
    name = tenant.backup_row(job["backup_id"])["name"]
    objects = check_archive_paths(read_archive(testenv, tenant, name))
    assert {n for gr, _, n in objects if gr == "configmaps"} == {f"cm-{i:05d}" for i in range(0, MANY, 3)}
    assert ("namespaces", None, many_configmaps) in objects


def test_label_selector_limits_the_volumes_too(tenant, testenv, fixture_app):
    """Issue 16: a plan's selector chose the objects but every claim's data was copied."""
    plan, job_id = tenant.queue_backup([fixture_app], selector="app=mysql")
    job = tenant.wait_job(job_id)
    assert job["state"] == "succeeded", job["error"]
    name = tenant.backup_row(job["backup_id"])["name"]
    volumes = json.loads(download(testenv, tenant, f"{tenant.prefix}backups/{name}/{name}-volumes.json"))
    assert sorted(v["pvc"] for v in volumes) == ["data-mysql-0", "data-mysql-1"]
    claims = {n for (r, n) in tenant.sql("SELECT resource, name FROM stowage.job_items WHERE job_id = %s", (job_id,))
              if r in ("persistentvolumeclaims", "volumedata")}
    assert "wordpress-data" not in claims, claims


def test_include_and_exclude_resource_types(tenant, testenv, fixture_app):
    """Issue 16: a plan keeps the types it includes (wildcards allowed) and never those it
    excludes; leaving claims out leaves their data out."""
    plan_id = tenant.sql_one(
        "INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces, include_resources, "
        "exclude_resources) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (tenant.org_id, unique("plan-"), tenant.cluster_id, tenant.repository_id, [fixture_app],
         ["*.apps", "services", "persistentvolumeclaims", "configmaps"], ["statefulsets.apps", "persistentvolumeclaims"]))[0]
    job_id = tenant.sql_one("INSERT INTO stowage.jobs (org_id, kind, backup_plan_id, cluster_id) VALUES (%s, 'backup', "
                            "%s, %s) RETURNING id", (tenant.org_id, plan_id, tenant.cluster_id))[0]
    job = tenant.wait_job(job_id)
    assert job["state"] == "succeeded", job["error"]
    kept = {r for (r,) in tenant.sql("SELECT DISTINCT resource || CASE WHEN api_group = '' THEN '' ELSE '.' || "
                                     "api_group END FROM stowage.job_items WHERE job_id = %s AND action = 'backed_up'",
                                     (job_id,))}
    assert {"deployments.apps", "services", "configmaps"} <= kept, kept
    assert not kept & {"statefulsets.apps", "persistentvolumeclaims", "secrets", "serviceaccounts"}, kept
    name = tenant.backup_row(job["backup_id"])["name"]
    keys = backup_objects(testenv, tenant, name)
    assert f"{tenant.prefix}backups/{name}/{name}-volumes.json" not in keys or \
        json.loads(download(testenv, tenant, f"{tenant.prefix}backups/{name}/{name}-volumes.json")) == []


def test_missing_namespace_is_a_failed_item_and_the_backup_partial(tenant, testenv, fixture_app):
    _, job_id = tenant.queue_backup([fixture_app, "no-such-namespace"])
    job = tenant.wait_job(job_id)
    assert job["state"] == "partially_failed", job["error"]
    failed = tenant.sql("SELECT resource, name, message FROM stowage.job_items WHERE job_id = %s AND action = 'failed'",
                        (job_id,))
    assert failed == [("namespaces", "no-such-namespace", failed[0][2])]
    assert "not found" in failed[0][2]
    row = tenant.backup_row(job["backup_id"])
    assert row["state"] == "partially_failed"
    velero = json.loads(download(testenv, tenant, f"{tenant.prefix}backups/{row['name']}/velero-backup.json"))
    assert velero["status"]["phase"] == "PartiallyFailed"


def wait_for(tenant, job_id, cond, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = tenant.job(job_id)
        if cond(job):
            return job
        assert job["state"] in ("queued", "running"), f"job ended {job['state']} too early: {job['error']}"
        time.sleep(0.02)
    pytest.fail(f"job {job_id}: condition not met in {timeout} s")


@contextlib.contextmanager
def runner_held_mid_backup(tenant, job_id):
    """Holds the runner of a backup in its resources phase: once it lists, a lock on job_items
    stops it at its next batch of items until the block ends. Yields the job."""
    job = wait_for(tenant, job_id, lambda j: j["phase"].startswith("resources:"))
    conn = psycopg2.connect(tenant.stack.pg_dsn_owner)
    try:
        with conn.cursor() as cur:
            cur.execute("LOCK TABLE stowage.job_items IN EXCLUSIVE MODE")
            deadline = time.time() + 30
            while time.time() < deadline:
                cur.execute("SELECT count(*) FROM pg_locks WHERE NOT granted "
                            "AND relation = 'stowage.job_items'::regclass")
                if cur.fetchone()[0] == 1:
                    break
                assert tenant.job(job_id)["state"] == "running", "the backup ended before it could be held"
                time.sleep(0.02)
            else:
                pytest.fail("the runner never waited for its job items")
            yield tenant.job(job_id)
    finally:
        conn.rollback()
        conn.close()


def test_cancelled_backup_leaves_nothing(tenant, testenv, many_configmaps):
    _, job_id = tenant.queue_backup([many_configmaps])
    with runner_held_mid_backup(tenant, job_id):
        tenant.sql("UPDATE stowage.jobs SET cancel_requested = true WHERE id = %s", (job_id,))
        time.sleep(1.2)  # the runner looks at cancel_requested at most once a second
    job = tenant.wait_job(job_id)
    assert job["state"] == "cancelled", job["error"]
    row = tenant.backup_row(job["backup_id"])
    assert row["state"] == "failed"
    assert backup_objects(testenv, tenant, row["name"]) == {}
    phases = {p["name"]: p["state"] for p in job["result"]["phases"]}
    assert phases["resources"] == "cancelled" and "finalize" not in phases


def test_runner_killed_mid_backup_is_never_offered(testenv, many_configmaps):
    with own_stack("hb", {"STOWAGE_HEARTBEAT_SECONDS": "1"}) as s:
        t = Tenant(s, testenv, prefix="killed")
        _, job_id = t.queue_backup([many_configmaps])
        with runner_held_mid_backup(t, job_id) as job:
            runner = job["runner_id"]
            assert re.fullmatch(r"runner-\d", runner)
            with open(os.path.join(s.root, "run", f"{runner}.pid")) as f:
                pid = int(f.read())
            os.kill(pid, signal.SIGKILL)
        job = t.wait_job(job_id, timeout=60)
        assert job["state"] == "failed"
        assert f"the runner {runner} stopped heart-beating" in job["error"]
        row = t.backup_row(job["backup_id"])
        assert row["state"] == "failed" and row["completed_at"] is None
        keys = backup_objects(testenv, t, row["name"])
        assert f"{t.prefix}backups/{row['name']}/velero-backup.json" not in keys


def test_a_namespace_without_claims_backs_up_on_a_runner_that_moves_no_data(testenv, many_configmaps):
    """A runner with no mover_launch (a hosted one before pods are configured) still backs up a
    namespace that has no claim: the data mover is only asked for when there is data to move."""
    with own_stack("nomover", {"STOWAGE_MOVER_LOCAL_ROOT": None}) as s:
        t = Tenant(s, testenv, prefix="nomover")
        _, job_id = t.queue_backup([many_configmaps])
        job = t.wait_job(job_id)
        assert job["state"] == "succeeded", job["error"]
        assert t.backup_row(job["backup_id"])["state"] == "completed"
