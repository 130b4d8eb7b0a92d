"""One-click migration through the console, against the real clusters, MinIO and runners:
the fixture application moves from the source cluster to the target with a StorageClass per
claim; the source is stopped first (or keeps running, by option); a target that already has
the namespace is refused with the conflict named and nothing changes in either cluster."""
import json
import os
import re
import subprocess
import time

import boto3
import pytest

from conftest import TOP, unique
from fixtures_testenv import kubectl
from test_clusters_repositories import add_cluster, add_repo, cluster_row

WORKLOADS = ("deployments.apps/wordpress", "statefulsets.apps/mysql")


def register(admin, testenv):
    """Both clusters ("src", "dst") and a repository ("store", a fresh bucket) registered:
    their ids."""
    s3 = boto3.client("s3", endpoint_url=testenv["S3_ENDPOINT"], region_name=testenv["S3_REGION"],
                      aws_access_key_id=testenv["S3_ACCESS_KEY"], aws_secret_access_key=testenv["S3_SECRET_KEY"])
    bucket = unique("migrate-")
    s3.create_bucket(Bucket=bucket)
    assert add_cluster(admin, testenv, "src").status_code == 303
    with open(testenv["TARGET_CA_FILE"]) as f:
        target_ca = f.read()
    assert add_cluster(admin, testenv, "dst", token=testenv["TARGET_ADMIN_TOKEN"], ca=target_ca,
                       url=testenv["TARGET_API_URL"]).status_code == 303
    assert add_repo(admin, testenv, "store", bucket).status_code == 303
    repo = [x for x in admin.json("/repositories").json()["repositories"] if x["name"] == "store"][0]["id"]
    return cluster_row(admin, "src")["id"], cluster_row(admin, "dst")["id"], repo


@pytest.fixture
def setup(admin, testenv):
    """Both clusters and a repository registered; the fixture app in a fresh namespace."""
    src, dst, repo = register(admin, testenv)
    ns = unique("app")
    subprocess.run([os.path.join(TOP, "scripts", "testenv", "fixture-app"), testenv["SOURCE_KUBECONFIG"], ns,
                    testenv["SOURCE_VOLUME_DIR"]], check=True, capture_output=True, timeout=300)
    return admin, src, dst, repo, ns


def replicas(testenv, cluster, ns):
    out = {}
    for kind in ("deployments", "statefulsets"):
        items = json.loads(kubectl(testenv, cluster, "-n", ns, "get", kind, "-o", "json").stdout)["items"]
        for o in items:
            out[f"{kind}.apps/{o['metadata']['name']}"] = o["spec"].get("replicas")
    items = json.loads(kubectl(testenv, cluster, "-n", ns, "get", "cronjobs", "-o", "json").stdout)["items"]
    for o in items:
        out[f"cronjobs.batch/{o['metadata']['name']}"] = bool(o["spec"].get("suspend", False))
    return out


def make_plan(client, src, dst, repo, ns, keep_running=False, target_class="standard-nfs", hook_script=None):
    base = {"name": unique("mig-"), "source_cluster_id": str(src), "target_cluster_id": str(dst),
            "repository_id": str(repo), "namespaces": ns}
    if hook_script:
        base["hook_script"] = hook_script
    if keep_running:
        base["keep_source_running"] = "on"
    step2 = client.post("/migrations/new", base)
    assert step2.status_code == 200, step2.text
    claims = re.findall(r'name="class:([^"]+)"', step2.text)
    assert len(claims) >= 2, step2.text  # the fixture app's claims, found live in the source
    assert "standard-nfs" in step2.text  # the target's classes offered
    data = dict(base, **{f"class:{c}": target_class for c in claims})
    r = client.post("/migrations", data)
    assert r.status_code == 303, r.text
    return int(r.headers["Location"].rsplit("/", 1)[1]), claims


def provide_target_volumes(testenv, claims, storage_class="standard-nfs", node=None):
    """Static PersistentVolumes in the target, each reserved for one migrated claim (claimRef),
    the way an administrator pre-provisions storage: the classes fast-ssd and standard-nfs have
    no provisioner, so without these the target's claims stay Pending. With node, the volumes
    are that node's (nodeAffinity): a pod using them runs there."""
    docs = []
    for key in claims:
        ns, claim = key.split("/", 1)
        path = os.path.join(testenv["TARGET_VOLUME_DIR"], f"{ns}-{claim}")
        os.makedirs(path, exist_ok=True)
        docs.append({"apiVersion": "v1", "kind": "PersistentVolume",
                     "metadata": {"name": f"{ns}-target-{claim}"},
                     "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                              "storageClassName": storage_class, "persistentVolumeReclaimPolicy": "Retain",
                              "hostPath": {"path": path},
                              "claimRef": {"namespace": ns, "name": claim}}})
        if node:
            docs[-1]["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
    kubectl(testenv, "target", "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))


def tree_digest(path):
    """{relative path: sha256} of every file under path."""
    import hashlib
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            full = os.path.join(root, f)
            with open(full, "rb") as fh:
                out[os.path.relpath(full, path)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def volume_dir(testenv, cluster, ns, claim):
    pvc = json.loads(kubectl(testenv, cluster, "-n", ns, "get", "pvc", claim, "-o", "json").stdout)
    pv = json.loads(kubectl(testenv, cluster, "get", "pv", pvc["spec"]["volumeName"], "-o", "json").stdout)
    return pv["spec"]["hostPath"]["path"]


def run_migration(client, plan_id, timeout=300):
    r = client.post(f"/migrations/{plan_id}/migrate", {"confirm": "on"})
    assert r.status_code == 303, r.text
    job = r.headers["Location"]
    deadline = time.time() + timeout
    while True:
        body = client.json(job).json()["job"]
        if body["state"] not in ("queued", "running"):
            return body
        assert time.time() < deadline, f"migration still {body['state']} at {body.get('phase')}"
        time.sleep(1)


def test_migration_moves_the_application_and_stops_the_source(setup, testenv):
    client, src, dst, repo, ns = setup
    before = replicas(testenv, "source", ns)
    assert before["deployments.apps/wordpress"] >= 1
    plan, claims = make_plan(client, src, dst, repo, ns)
    page = client.post(f"/migrations/{plan}/precheck", {})
    assert "No conflict in the target cluster." in page.text
    provide_target_volumes(testenv, claims)
    job = run_migration(client, plan)
    assert job["state"] == "succeeded", job
    names = [p["name"] for p in job["phases"]]
    assert names == ["pre-check", "stop source", "backup", "restore", "start target"]
    assert all(p["state"] == "succeeded" and isinstance(p["duration_ms"], (int, float)) for p in job["phases"])
    # every object of the application is in the target, in the same namespace
    for kind in ("deployment/wordpress", "statefulset/mysql", "service/wordpress", "configmap/wordpress-config",
                 "secret/wordpress-secret", "ingress/wordpress", "cronjob/nightly-report",
                 "serviceaccount/fixture-app", "role/fixture-app", "rolebinding/fixture-app", "service/wordpress-nodeport"):
        assert kubectl(testenv, "target", "-n", ns, "get", kind, check=False).returncode == 0, kind
    # the claims have the chosen class and no PersistentVolume was copied
    pvcs = json.loads(kubectl(testenv, "target", "-n", ns, "get", "pvc", "-o", "json").stdout)["items"]
    assert sorted(f"{ns}/{p['metadata']['name']}" for p in pvcs) == sorted(claims)
    assert {p["spec"]["storageClassName"] for p in pvcs} == {"standard-nfs"}
    # the volumes' files came along: the same files in the target's volume directories
    for key in claims:
        claim = key.split("/", 1)[1]
        source_files = tree_digest(volume_dir(testenv, "source", ns, claim))
        assert source_files, f"the fixture put no file in {key}"
        assert tree_digest(volume_dir(testenv, "target", ns, claim)) == source_files, key
    # the workloads run in the target at their original counts; the source is stopped
    after_target = replicas(testenv, "target", ns)
    after_source = replicas(testenv, "source", ns)
    for w in WORKLOADS:
        assert after_target[w] == before[w], (w, after_target, before)
        assert after_source[w] == 0, (w, after_source)
    for k, v in before.items():
        if k.startswith("cronjobs"):
            assert after_target[k] == v and after_source[k] is True
    deadline = time.time() + 120
    while True:  # kwok runs the target's pods
        pods = json.loads(kubectl(testenv, "target", "-n", ns, "get", "pods", "-o", "json").stdout)["items"]
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        if len(running) >= before["deployments.apps/wordpress"] + before["statefulsets.apps/mysql"]:
            break
        assert time.time() < deadline, [p["status"].get("phase") for p in pods]
        time.sleep(1)


def test_keep_running_option_leaves_the_source_as_it_was(setup, testenv):
    client, src, dst, repo, ns = setup
    before = replicas(testenv, "source", ns)
    with open(os.path.join(TOP, "lua", "rewrite-ingress-host.lua")) as f:
        hook = 'params = {old_domain = "blog.fixture.example", new_domain = "blog.new-cluster.example"}\n' + f.read()
    plan, claims = make_plan(client, src, dst, repo, ns, keep_running=True, hook_script=hook)
    provide_target_volumes(testenv, claims)
    job = run_migration(client, plan)
    assert job["state"] == "succeeded", job
    # the post-migration hook ran once, in the target (manual 7.4: the site's new address)
    assert [(h["phase"], h["state"]) for h in job["hooks"]] == [("post-restore", "succeeded")]
    ingress = json.loads(kubectl(testenv, "target", "-n", ns, "get", "ingress", "wordpress", "-o", "json").stdout)
    assert [r["host"] for r in ingress["spec"]["rules"]] == ["blog.new-cluster.example"]
    source = json.loads(kubectl(testenv, "source", "-n", ns, "get", "ingress", "wordpress", "-o", "json").stdout)
    assert [r["host"] for r in source["spec"]["rules"]] == ["blog.fixture.example"]
    assert "stop source" not in [p["name"] for p in job["phases"]]
    assert replicas(testenv, "source", ns) == before
    after_target = replicas(testenv, "target", ns)
    for w in WORKLOADS:
        assert after_target[w] == before[w]


def test_existing_namespace_in_target_is_refused_and_nothing_changes(setup, testenv):
    client, src, dst, repo, ns = setup
    kubectl(testenv, "target", "create", "namespace", ns)
    before_source = replicas(testenv, "source", ns)
    plan, _ = make_plan(client, src, dst, repo, ns)
    page = client.post(f"/migrations/{plan}/precheck", {})
    assert f"namespace {ns} already exists in the target cluster" in page.text
    r = client.post(f"/migrations/{plan}/migrate", {"confirm": "on"})
    assert r.status_code == 409
    assert f"namespace {ns} already exists in the target cluster" in r.text
    assert client.json(f"/migrations/{plan}").json()["jobs"] == []
    assert replicas(testenv, "source", ns) == before_source
    assert json.loads(kubectl(testenv, "target", "-n", ns, "get", "all", "-o", "json").stdout)["items"] == []


def test_a_class_missing_in_the_target_is_a_conflict(setup, testenv):
    client, src, dst, repo, ns = setup
    plan, _ = make_plan(client, src, dst, repo, ns)
    # the plan is stored with a class the target lacks (as if deleted since): the pre-check names it
    import psycopg2
    conn = psycopg2.connect(client.stack.pg_dsn_owner)
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE stowage.migration_plans SET storage_classes = "
                    "(SELECT jsonb_object_agg(key, 'gold') FROM jsonb_each(storage_classes)) WHERE id = %s", (plan,))
    conn.close()
    page = client.post(f"/migrations/{plan}/precheck", {})
    assert "StorageClass gold, needed by PVC" in page.text and "does not exist in the target cluster" in page.text


def test_migration_form_errors_name_the_field(setup):
    client, src, dst, repo, ns = setup
    r = client.post("/migrations/new", {"name": "Bad!", "source_cluster_id": str(src), "target_cluster_id": str(src),
                                        "repository_id": str(repo), "namespaces": "ok, Not_OK"})
    assert r.status_code == 422
    assert "Name: use lowercase" in r.text
    assert "Namespaces: one or more namespace names" in r.text
    r = client.post("/migrations/new", {"name": "x", "source_cluster_id": str(src), "target_cluster_id": str(src),
                                        "repository_id": str(repo), "namespaces": ns})
    assert "Target cluster: must differ from the source cluster" in r.text
    r = client.post("/migrations/new", {"name": "x", "source_cluster_id": str(src), "target_cluster_id": str(dst),
                                        "repository_id": str(repo), "namespaces": "no-such-namespace"})
    assert r.status_code == 422 and "no-such-namespace in the source cluster: does not exist" in r.text
