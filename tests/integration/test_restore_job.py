"""Restore jobs (src/runner/job_restore.c) against the real stack (PostgreSQL, runners), the two
Kubernetes clusters and MinIO of the test environment.

Until backup jobs exist, a backup is built here: the fixture application's objects are read
with kubectl, written into a tar.gz in Velero's layout, uploaded under the repository's
backups/<name>/ and recorded 'completed'. Restore plans and jobs are queued as rows (as the
console will), and the stack's runners execute them. bench/restore_bench.py uses the helpers."""
import copy
import io
import json
import tarfile
import time

import boto3
import psycopg2

from fixtures_testenv import kubectl

# What the fixture application's namespace holds, as <resource>[.<group>] (kubectl's names).
NAMESPACED = ["configmaps", "secrets", "serviceaccounts", "persistentvolumeclaims", "services", "endpoints",
              "pods", "deployments.apps", "replicasets.apps", "statefulsets.apps", "cronjobs.batch",
              "roles.rbac.authorization.k8s.io", "rolebindings.rbac.authorization.k8s.io",
              "ingresses.networking.k8s.io", "widgets.fixtures.stowage.dev"]
WIDGET_CRD = "widgets.fixtures.stowage.dev"


def get_items(env, cluster, kind, *args):
    out = kubectl(env, cluster, "get", kind, "-o", "json", *args).stdout
    return json.loads(out)["items"]


def snapshot(env, cluster, ns, crd=True):
    """{(resource.group, namespace, name): object} of the namespace, itself, its volumes and the CRD."""
    objs = {}
    for gr in NAMESPACED:
        for o in get_items(env, cluster, gr, "-n", ns):
            objs[(gr, ns, o["metadata"]["name"])] = o
    objs[("namespaces", "", ns)] = json.loads(kubectl(env, cluster, "get", "namespace", ns, "-o", "json").stdout)
    for pv in get_items(env, cluster, "persistentvolumes"):
        if pv["metadata"]["name"].startswith(ns + "-"):
            objs[("persistentvolumes", "", pv["metadata"]["name"])] = pv
    if crd:
        objs[("customresourcedefinitions.apiextensions.k8s.io", "", WIDGET_CRD)] = json.loads(
            kubectl(env, cluster, "get", "crd", WIDGET_CRD, "-o", "json").stdout)
    return objs


def archive(objs, version="1.1.0"):
    """A tar.gz in Velero's layout holding the objects."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(path, data):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        add("metadata/version", version.encode() + b"\n")
        for (gr, ns, name), o in sorted(objs.items()):
            where = f"namespaces/{ns}" if ns else "cluster"
            add(f"resources/{gr}/{where}/{name}.json", json.dumps(o).encode())
    return buf.getvalue()


class Restorer:
    """One organisation with the source and target clusters and a repository registered
    through the console, and the owner's database connection to queue restores."""

    def __init__(self, stack, client, testenv, bucket, add_cluster, add_repo):
        self.stack, self.env, self.bucket, self.client = stack, testenv, bucket, client
        for name, which in (("source", "SOURCE"), ("target", "TARGET")):
            with open(testenv[f"{which}_CA_FILE"]) as f:
                ca = f.read()
            r = add_cluster(client, testenv, name, token=testenv[f"{which}_ADMIN_TOKEN"], ca=ca,
                            url=testenv[f"{which}_API_URL"])
            assert r.status_code == 303, r.text
        r = add_repo(client, testenv, "repo", bucket, prefix="team-a")
        assert r.status_code == 303, r.text
        clusters = {c["name"]: c["id"] for c in client.json("/clusters").json()["clusters"]}
        self.cluster = {"source": int(clusters["source"]), "target": int(clusters["target"])}
        self.repo = int(client.json("/repositories").json()["repositories"][0]["id"])
        self.s3 = boto3.client("s3", endpoint_url=testenv["S3_ENDPOINT"], region_name=testenv["S3_REGION"],
                               aws_access_key_id=testenv["S3_ACCESS_KEY"],
                               aws_secret_access_key=testenv["S3_SECRET_KEY"])
        self.db = psycopg2.connect(stack.pg_dsn_owner)
        self.db.autocommit = True
        self.org = self.one("SELECT org_id FROM stowage.clusters WHERE id = %s", (self.cluster["source"],))[0]
        self.seq = 0

    def one(self, sql, args=()):
        with self.db.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchone()

    def all(self, sql, args=()):
        with self.db.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def upload_backup(self, name, data, state="completed"):
        """The archive under <prefix>backups/<name>/ (the repository's prefix is team-a/), its metadata last, then the backups row."""
        key = f"team-a/backups/{name}/{name}.tar.gz"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=self.stack.archive_tool("import", self.repo, key, data))
        self.s3.put_object(Bucket=self.bucket, Key=f"team-a/backups/{name}/velero-backup.json",
                           Body=json.dumps({"kind": "Backup", "metadata": {"name": name}}).encode())
        return self.one("INSERT INTO stowage.backups (org_id, cluster_id, repository_id, name, namespaces, state, "
                        "completed_at) VALUES (%s, %s, %s, %s, %s, %s, now()) RETURNING id",
                        (self.org, self.cluster["source"], self.repo, name, ["shop"], state))[0]

    def restore(self, backup_id, target="target", namespace_map=None, storage_class_map=None,
                existing_policy="skip", hooks=None, timeout=240, reattach_volumes=False, volume_map=None, **options):
        """Queues a restore job and waits for its end: (state, error, result, {(resource, ns, name): (action, message)})."""
        self.seq += 1
        cols = "".join(", " + k for k in options)	# further restore_plans columns
        plan = self.one("INSERT INTO stowage.restore_plans (org_id, name, backup_id, target_cluster_id, namespace_map, "
                        f"storage_class_map, existing_policy, hooks, reattach_volumes, volume_map{cols}) "
                        f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s{', %s' * len(options)}) RETURNING id",
                        (self.org, f"plan-{int(time.time())}-{self.seq}", backup_id, self.cluster[target],
                         json.dumps(namespace_map or {}), json.dumps(storage_class_map or {}), existing_policy,
                         json.dumps(hooks or []), reattach_volumes, json.dumps(volume_map or {}),
                         *options.values()))[0]
        job = self.one("INSERT INTO stowage.jobs (org_id, kind, restore_plan_id, backup_id, cluster_id) "
                       "VALUES (%s, 'restore', %s, %s, %s) RETURNING id", (self.org, plan, backup_id, self.cluster[target]))[0]
        deadline = time.time() + timeout
        while True:
            state, error, result = self.one("SELECT state, error, result FROM stowage.jobs WHERE id = %s", (job,))
            if state not in ("queued", "running"):
                break
            assert time.time() < deadline, f"restore job {job} still {state} after {timeout} s"
            time.sleep(0.3)
        items = {}
        for group, resource, ns, name, action, message in self.all(
                "SELECT api_group, resource, namespace, name, action, message FROM stowage.job_items WHERE job_id = %s",
                (job,)):
            gr = resource + ("." + group if group else "")
            items[(gr, ns, name)] = (action, message)
        self.last_job = job
        return state, error, result, items


IGNORED_ANNOTATIONS = {"pv.kubernetes.io/bind-completed", "pv.kubernetes.io/bound-by-controller",
                       "deployment.kubernetes.io/revision", "kubectl.kubernetes.io/last-applied-configuration"}


def comparable(gr, o):
    """What a restore must give back: labels (ours aside), annotations (the binding ones aside),
    and spec or data, without what the API server assigns."""
    o = copy.deepcopy(o)
    meta = o.get("metadata", {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if not k.startswith("stowage.dev/")}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in IGNORED_ANNOTATIONS}
    out = {"labels": labels, "annotations": annotations}
    for key in ("data", "stringData", "binaryData", "type", "spec", "rules", "subjects", "roleRef"):
        if key in o:
            out[key] = o[key]
    spec = out.get("spec")
    if gr == "services":
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    if gr == "persistentvolumes":
        ref = spec.get("claimRef") or {}
        spec["claimRef"] = {"namespace": ref.get("namespace"), "name": ref.get("name")}
    if gr == "namespaces":
        out.pop("spec", None)
    return out


# ---- the tests ----

import os
import subprocess

import pytest

from conftest import Client, unique
from test_clusters_repositories import add_cluster, add_repo
from provisioner import Provisioner

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(scope="module")
def restorer(stack, testenv):
    s3 = boto3.client("s3", endpoint_url=testenv["S3_ENDPOINT"], region_name=testenv["S3_REGION"],
                      aws_access_key_id=testenv["S3_ACCESS_KEY"], aws_secret_access_key=testenv["S3_SECRET_KEY"])
    bucket = unique("restore-")
    s3.create_bucket(Bucket=bucket)
    c = Client(stack)
    c.signup(unique("Restore Org "), unique("restorer") + "@example.test")
    return Restorer(stack, c, testenv, bucket, add_cluster, add_repo)


@pytest.fixture(scope="module")
def shop(testenv):
    """The fixture application in a namespace of the source cluster."""
    ns = unique("shop")
    subprocess.run([os.path.join(TOP, "scripts", "testenv", "fixture-app"), testenv["SOURCE_KUBECONFIG"], ns,
                    testenv["SOURCE_VOLUME_DIR"]], check=True, capture_output=True, timeout=300)
    return ns


@pytest.fixture(scope="module")
def shop_backup(restorer, testenv, shop):
    """A backup of the shop: (backups.id, its name, the objects it holds)."""
    objs = snapshot(testenv, "source", shop)
    name = unique("bk-")
    return restorer.upload_backup(name, archive(objs)), name, objs


def target_get(env, cluster, gr, ns, name):
    args = ["get", gr, name, "-o", "json"] + (["-n", ns] if ns else [])
    res = kubectl(env, cluster, *args, check=False)
    return json.loads(res.stdout) if res.returncode == 0 else None


def wait_for(what, fn, timeout=60):
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


OWNED_SKIPS = {"pods", "replicasets.apps", "endpoints", "controllerrevisions.apps"}


def test_restore_into_target_maps_namespace_and_storage_class(restorer, testenv, shop, shop_backup):
    backup_id, backup_name, objs = shop_backup
    copy_ns = shop + "-copy"
    # cluster-scoped objects another test may already have put into the shared target cluster
    preexisting = {("customresourcedefinitions.apiextensions.k8s.io", name) for (gr, ns, name) in objs
                   if gr == "customresourcedefinitions.apiextensions.k8s.io" and
                   target_get(testenv, "target", gr, "", name) is not None}
    with Provisioner(testenv, "target", ["standard-nfs"], testenv["TARGET_VOLUME_DIR"]) as prov:
        state, error, result, items = restorer.restore(backup_id, "target", namespace_map={shop: copy_ns},
                                                       storage_class_map={"fast-ssd": "standard-nfs"})
        # the claims get new volumes of the mapped class (the provisioner double makes them)
        wait_for("claims bound in the target", lambda: all(
            p["status"].get("phase") == "Bound"
            for p in get_items(testenv, "target", "persistentvolumeclaims", "-n", copy_ns)))
    assert not prov.errors, prov.errors
    assert (state, error) == ("succeeded", ""), items
    phases = [p["name"] for p in result["phases"]]
    assert phases[:3] == ["download", "prepare", "create crds"]
    assert phases[-2:] == ["hooks", "finalize"]
    assert "create persistentvolumes" not in phases
    assert phases.index("create namespaces") < phases.index("create persistentvolumeclaims") < phases.index("create workloads") < phases.index("create rest")
    for (gr, ns, name) in objs:
        target_ns = copy_ns if ns else ""
        target_name = copy_ns if gr == "namespaces" else name
        action, message = items[(gr, target_ns, target_name)]
        if gr in OWNED_SKIPS:
            assert action == "skipped", (gr, name, message)
            continue
        if (gr, name) in (("configmaps", "kube-root-ca.crt"), ("serviceaccounts", "default")):
            assert action in ("created", "skipped")	# the cluster makes these in every namespace
            continue
        if gr == "persistentvolumes":	# never recreated in another cluster: its backend is the source's
            assert action == "skipped" and "its claim gets a new volume in the target" in message, (name, message)
            assert target_get(testenv, "target", gr, "", name) is None, name
            continue
        if (gr, name) in preexisting:
            assert (action, message) == ("skipped", "already exists"), (gr, name, message)
            continue
        assert action == "created", (gr, name, message)
        live = target_get(testenv, "target", gr, target_ns, target_name)
        assert live["metadata"]["labels"]["stowage.dev/backup"] == backup_name
        assert live["metadata"]["labels"]["stowage.dev/restore"] == str(restorer.last_job)
    assert "failed" not in result["counts"]
    assert result["types"]["configmaps"]["created"] >= 1

    # storage classes mapped on claims; each bound to a new volume in the target's own directory
    for pvc in get_items(testenv, "target", "persistentvolumeclaims", "-n", copy_ns):
        assert pvc["spec"]["storageClassName"] == "standard-nfs"
        pv = target_get(testenv, "target", "persistentvolumes", "", pvc["spec"]["volumeName"])
        assert pv["spec"]["hostPath"]["path"].startswith(testenv["TARGET_VOLUME_DIR"] + "/"), pv["spec"]
    # every namespace reference mapped
    rb = target_get(testenv, "target", "rolebindings.rbac.authorization.k8s.io", copy_ns, "fixture-app")
    assert [s["namespace"] for s in rb["subjects"]] == [copy_ns]
    # the node port was free in the target: kept
    src_np = objs[("services", shop, "wordpress-nodeport")]["spec"]["ports"][0]["nodePort"]
    assert target_get(testenv, "target", "services", copy_ns, "wordpress-nodeport")["spec"]["ports"][0]["nodePort"] == src_np
    # the custom resource came after its CRD was served
    assert target_get(testenv, "target", "widgets.fixtures.stowage.dev", copy_ns, "sprocket")
    for (gr, ns, name), o in objs.items():
        if gr in ("configmaps", "secrets", "deployments.apps", "cronjobs.batch", "roles.rbac.authorization.k8s.io"):
            live = target_get(testenv, "target", gr, copy_ns, name)
            if name != "kube-root-ca.crt":
                assert comparable(gr, live) == comparable(gr, o), (gr, name)


def test_restore_into_namespace_holding_some_objects_skips_them(restorer, testenv, shop, shop_backup):
    backup_id, _, objs = shop_backup
    ns = shop + "-partial"
    kubectl(testenv, "target", "create", "namespace", ns)
    kubectl(testenv, "target", "-n", ns, "create", "configmap", "wordpress-config", "--from-literal=kept=yes")
    state, error, _, items = restorer.restore(backup_id, "target", namespace_map={shop: ns},
                                              storage_class_map={"fast-ssd": "standard-nfs"})
    assert (state, error) == ("succeeded", "")
    assert items[("configmaps", ns, "wordpress-config")] == ("skipped", "already exists")
    assert items[("namespaces", "", ns)] == ("skipped", "already exists")
    assert target_get(testenv, "target", "configmaps", ns, "wordpress-config")["data"] == {"kept": "yes"}
    assert items[("secrets", ns, "wordpress-secret")][0] == "created"
    assert items[("deployments.apps", ns, "wordpress")][0] == "created"
    # the node port is taken in this cluster by the first restore's copy: dropped, in the log
    src_np = objs[("services", shop, "wordpress-nodeport")]["spec"]["ports"][0]["nodePort"]
    new_np = target_get(testenv, "target", "services", ns, "wordpress-nodeport")["spec"]["ports"][0]["nodePort"]
    assert new_np != src_np
    logs = [m for (m,) in restorer.all("SELECT message FROM stowage.job_logs WHERE job_id = %s AND level = 'warning'",
                                       (restorer.last_job,))]
    assert f"Service {ns}/wordpress-nodeport: node port {src_np} is in use in the target cluster; " \
        "the cluster assigns another" in logs
    # PersistentVolumes are never recreated in another cluster
    assert all(items[(gr, n_s, n)][0] == "skipped" for (gr, n_s, n) in items if gr == "persistentvolumes")

    # existing_policy 'update' replaces what is there with the backup's version
    state, error, _, items = restorer.restore(backup_id, "target", namespace_map={shop: ns},
                                              storage_class_map={"fast-ssd": "standard-nfs"}, existing_policy="update")
    assert items[("configmaps", ns, "wordpress-config")] == ("updated", "")
    assert items[("deployments.apps", ns, "wordpress")] == ("updated", "")
    live = target_get(testenv, "target", "configmaps", ns, "wordpress-config")
    assert live["data"] == objs[("configmaps", shop, "wordpress-config")]["data"]


def test_delete_namespace_then_restore_into_source(restorer, testenv, shop, shop_backup):
    backup_id, _, objs = shop_backup
    kubectl(testenv, "source", "delete", "namespace", shop, "--wait=true", "--timeout=150s")
    pv_names = [name for (gr, _, name) in objs if gr == "persistentvolumes"]
    kubectl(testenv, "source", "delete", "persistentvolumes", *pv_names, "--wait=true", "--timeout=60s")
    # the original volumes are recreated only when the plan asks to reattach them (same cluster)
    state, error, _, items = restorer.restore(backup_id, "source", reattach_volumes=True)
    assert (state, error) == ("succeeded", ""), [i for i in items.items() if i[1][0] == "failed"]
    for (gr, ns, name), o in objs.items():
        if gr in OWNED_SKIPS or (gr, name) in (("configmaps", "kube-root-ca.crt"), ("serviceaccounts", "default")):
            continue
        live = target_get(testenv, "source", gr, ns, name)
        assert live is not None, (gr, ns, name, items.get((gr, ns, name)))
        assert comparable(gr, live) == comparable(gr, o), (gr, ns, name)
    wait_for("claims bound again", lambda: all(
        p["status"].get("phase") == "Bound" for p in get_items(testenv, "source", "persistentvolumeclaims", "-n", shop)))
    # the controllers recreate the pods the restore left to them
    wait_for("wordpress pod", lambda: [p for p in get_items(testenv, "source", "pods", "-n", shop)
                                       if p["metadata"]["name"].startswith("wordpress-")])


def test_reattach_is_refused_in_another_cluster_and_over_a_volume_another_claim_holds(restorer, testenv, shop,
                                                                                    shop_backup):
    backup_id, _, objs = shop_backup
    state, error, _, items = restorer.restore(backup_id, "target", namespace_map={shop: shop + "-re"},
                                              reattach_volumes=True)
    assert state == "failed" and items == {}
    assert "reattach_volumes: backup" in error and "can be reattached only in the cluster they belong to" in error
    # in the source, the shop's claims hold the volumes (bound again by the test above)
    other = shop + "-other"
    state, error, _, items = restorer.restore(backup_id, "source", namespace_map={shop: other}, reattach_volumes=True)
    for name in (n for (gr, _, n) in objs if gr == "persistentvolumes"):
        action, message = items[("persistentvolumes", "", name)]
        assert action == "failed" and f"not reattached: claim {shop}/" in message, message
        assert target_get(testenv, "source", "persistentvolumes", "", name)["spec"]["claimRef"]["namespace"] == shop
    for pvc in get_items(testenv, "source", "persistentvolumeclaims", "-n", other):
        assert not pvc["spec"].get("volumeName"), pvc["spec"]	# left for a new volume
    kubectl(testenv, "source", "delete", "namespace", other, "--wait=false")


def test_change_storage_class_configmap_honoured_unless_the_plan_maps(restorer, testenv, shop_backup, shop):
    backup_id, _, _ = shop_backup
    # found by its labels in whatever namespace the cluster's admin keeps it, not only in velero
    kubectl(testenv, "target", "create", "namespace", "platform-config", check=False)
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "change-storage-class-config", "namespace": "platform-config",
                       "labels": {"velero.io/plugin-config": "", "velero.io/change-storage-class": "RestoreItemAction"}},
          "data": {"fast-ssd": "from-configmap"}}
    kubectl(testenv, "target", "apply", "-f", "-", stdin=json.dumps(cm))
    try:
        ns1, ns2 = shop + "-cm", shop + "-plan"
        state, _, _, _ = restorer.restore(backup_id, "target", namespace_map={shop: ns1})
        assert state == "succeeded"
        classes = {p["spec"]["storageClassName"] for p in get_items(testenv, "target", "persistentvolumeclaims", "-n", ns1)}
        assert classes == {"from-configmap"}
        state, _, _, _ = restorer.restore(backup_id, "target", namespace_map={shop: ns2},
                                          storage_class_map={"fast-ssd": "standard-nfs"})
        assert state == "succeeded"
        classes = {p["spec"]["storageClassName"] for p in get_items(testenv, "target", "persistentvolumeclaims", "-n", ns2)}
        assert classes == {"standard-nfs"}
    finally:
        kubectl(testenv, "target", "-n", "platform-config", "delete", "configmap", "change-storage-class-config",
                check=False)


def default_classes(env, cluster):
    return [sc["metadata"]["name"] for sc in get_items(env, cluster, "storageclasses")
            if (sc["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true"]


def test_storage_classes_created_only_when_asked_never_mapped_never_default(restorer, testenv):
    ns, gold = unique("classes"), unique("gold-")
    def sc(name):
        return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": name, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                "provisioner": "example.com/" + name, "reclaimPolicy": "Retain", "volumeBindingMode": "Immediate"}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app", "namespace": ns}, "data": {"a": "1"}}
    bid = restorer.upload_backup(unique("bk-classes-"), archive({
        ("storageclasses.storage.k8s.io", "", gold): sc(gold), ("storageclasses.storage.k8s.io", "", "fast-ssd"): sc("fast-ssd"),
        ("configmaps", ns, "app"): cm}))
    assert default_classes(testenv, "target") == ["standard-nfs"]
    # by default: none created
    state, error, _, items = restorer.restore(bid, "target", storage_class_map={"fast-ssd": "standard-nfs"})
    assert (state, error) == ("succeeded", ""), items
    assert items[("storageclasses.storage.k8s.io", "", gold)] == (
        "skipped", "not created: a restore creates StorageClasses only when its plan asks to (restore_storage_classes)")
    assert items[("storageclasses.storage.k8s.io", "", "fast-ssd")] == (
        "skipped", "not created: mapped to StorageClass standard-nfs of the target")
    assert target_get(testenv, "target", "storageclasses", "", gold) is None
    assert target_get(testenv, "target", "storageclasses", "", "fast-ssd") is None
    # asked: the unmapped one is created, not as a default; the mapped one still not
    state, error, _, items = restorer.restore(bid, "target", storage_class_map={"fast-ssd": "standard-nfs"},
                                              restore_storage_classes=True)
    assert (state, error) == ("succeeded", ""), items
    assert items[("storageclasses.storage.k8s.io", "", gold)] == ("created", "")
    assert items[("storageclasses.storage.k8s.io", "", "fast-ssd")][0] == "skipped"
    assert target_get(testenv, "target", "storageclasses", "", "fast-ssd") is None
    assert default_classes(testenv, "target") == ["standard-nfs"]
    kubectl(testenv, "target", "delete", "storageclass", gold)


def test_class_mapped_in_claim_templates_of_statefulsets_and_pod_templates(restorer, testenv):
    ns = unique("tmpl")
    labels = {"app": "db"}
    ephemeral = {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {
        "storageClassName": "fast-ssd", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}}
    pod = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "busybox"}], "volumes": [ephemeral]}}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": ns},
           "spec": {"serviceName": "db", "replicas": 0, "selector": {"matchLabels": labels}, "template": pod,
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "storageClassName": "fast-ssd", "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}}}]}}
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
              "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": pod}}
    bid = restorer.upload_backup(unique("bk-tmpl-"), archive({("statefulsets.apps", ns, "db"): sts,
                                                              ("deployments.apps", ns, "web"): deploy}))
    state, error, _, items = restorer.restore(bid, "target", storage_class_map={"fast-ssd": "standard-nfs"})
    assert (state, error) == ("succeeded", ""), items
    live = target_get(testenv, "target", "statefulsets.apps", ns, "db")["spec"]
    assert [t["spec"]["storageClassName"] for t in live["volumeClaimTemplates"]] == ["standard-nfs"]
    assert live["template"]["spec"]["volumes"][0]["ephemeral"]["volumeClaimTemplate"]["spec"]["storageClassName"] == \
        "standard-nfs"
    live = target_get(testenv, "target", "deployments.apps", ns, "web")["spec"]
    assert live["template"]["spec"]["volumes"][0]["ephemeral"]["volumeClaimTemplate"]["spec"]["storageClassName"] == \
        "standard-nfs"


def test_completed_jobs_are_not_run_again_unless_asked(restorer, testenv):
    ns = unique("jobs")
    def job(name, status):
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns},
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                                               "containers": [{"name": "c", "image": "busybox"}]}}},
                "status": status}
    done = job("migrate-db", {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
    running = job("reindex", {"active": 1})
    bid = restorer.upload_backup(unique("bk-jobs-"), archive({("jobs.batch", ns, "migrate-db"): done,
                                                              ("jobs.batch", ns, "reindex"): running}))
    state, error, _, items = restorer.restore(bid, "target")
    assert (state, error) == ("succeeded", ""), items
    action, message = items[("jobs.batch", ns, "migrate-db")]
    assert action == "skipped" and message.startswith("not recreated: the Job had finished (Complete) when backed up")
    assert target_get(testenv, "target", "jobs.batch", ns, "migrate-db") is None
    assert items[("jobs.batch", ns, "reindex")] == ("created", "")
    # asked for: recreated (into another namespace, as the first restore holds the running one)
    state, error, _, items = restorer.restore(bid, "target", namespace_map={ns: ns + "-all"}, restore_completed_jobs=True)
    assert (state, error) == ("succeeded", ""), items
    assert items[("jobs.batch", ns + "-all", "migrate-db")] == ("created", "")


RESOURCE_MODIFIERS = """version: v1
resourceModifierRules:
- conditions:
    groupResource: deployments.apps
    resourceNameRegex: "^web"
    labelSelector: {matchLabels: {tier: web}}
  patches:
  - {operation: replace, path: /spec/replicas, value: "0"}
  - {operation: add, path: /metadata/labels/restored-by, value: stowage}
  mergePatches:
  - patchData: '{"metadata": {"labels": {"team": null}, "annotations": {"owner": "platform"}}}'
  imageRewrites:
  - {from: docker.io/library/, to: registry.example.com/mirror/}
- conditions: {groupResource: configmaps, matches: [{path: /data/mode, value: strict}]}
  patches: [{operation: test, path: /data/mode, value: lenient}]
"""


def test_resource_modifiers_change_objects_before_they_are_created(restorer, testenv):
    ns = unique("mods")
    labels = {"tier": "web"}
    pod = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "docker.io/library/nginx:1.25"}],
                                                    "initContainers": [{"name": "i", "image": "quay.io/x/init:1"}]}}
    web = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web-front", "namespace": ns, "labels": {"tier": "web", "team": "a"}},
           "spec": {"replicas": 3, "selector": {"matchLabels": labels}, "template": pod}}
    api = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "api", "namespace": ns, "labels": {"tier": "web", "team": "b"}},
           "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": pod}}
    strict = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "strict", "namespace": ns},
              "data": {"mode": "strict"}}
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": ns},
             "data": {"mode": "lenient"}}
    bid = restorer.upload_backup(unique("bk-mods-"), archive({
        ("deployments.apps", ns, "web-front"): web, ("deployments.apps", ns, "api"): api,
        ("configmaps", ns, "strict"): strict, ("configmaps", ns, "other"): other}))
    state, error, _, items = restorer.restore(bid, "target", resource_modifiers=RESOURCE_MODIFIERS)
    assert state == "partially_failed", (state, error, items)
    live = target_get(testenv, "target", "deployments.apps", ns, "web-front")
    assert live, items
    assert live["spec"]["replicas"] == 0
    assert live["metadata"]["labels"]["restored-by"] == "stowage"
    assert live["metadata"]["annotations"]["owner"] == "platform"
    assert "team" not in live["metadata"]["labels"]
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.com/mirror/nginx:1.25"
    assert live["spec"]["template"]["spec"]["initContainers"][0]["image"] == "quay.io/x/init:1"
    # the rule's name condition leaves api as it was
    live = target_get(testenv, "target", "deployments.apps", ns, "api")
    assert live["spec"]["replicas"] == 2 and live["metadata"]["labels"]["team"] == "b"
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/library/nginx:1.25"
    # a patch that cannot apply fails its object in words, and the object is not created
    assert items[("configmaps", ns, "strict")] == (
        "failed", "resource modifier rule 2, patch 1 (test): /data/mode: test failed: the value differs")
    assert target_get(testenv, "target", "configmaps", ns, "strict") is None
    assert items[("configmaps", ns, "other")] == ("created", "")
    # rules the database holds but that do not parse fail the job before anything is created
    state, error, _, items = restorer.restore(bid, "target", namespace_map={ns: ns + "-bad"},
                                              resource_modifiers="version: v2\nresourceModifierRules: []\n")
    assert state == "failed" and error == "restore plan: version: must be v1", (state, error)
    assert target_get(testenv, "target", "configmaps", ns + "-bad", "other") is None


def test_hooks_run_in_every_namespace_of_the_restore(restorer, testenv):
    """Issue 16: a plan of several namespaces runs its hooks in each (it ran in the first only)."""
    a, b = unique("hns-a"), unique("hns-b")
    objs = {("configmaps", ns, "app"): {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "app", "namespace": ns}, "data": {"who": ns}}
            for ns in (a, b)}
    bid = restorer.upload_backup(unique("bk-hns-"), archive(objs))
    script = ('local cm = k8s.get("v1", "ConfigMap", "app")\n'
              'log("in " .. job.namespace .. " target " .. job.target_namespace .. " sees " .. cm.data.who)\n'
              'k8s.patch("v1", "ConfigMap", "app", {data = {hooked = "yes"}})\n')
    state, error, result, _ = restorer.restore(bid, "target", hooks=[{"inline": script}])
    assert (state, error) == ("succeeded", ""), (state, error, result.get("hooks"))
    runs = {h["namespace"]: h for h in result["hooks"]}
    assert sorted(runs) == sorted([a, b]), result["hooks"]
    for ns in (a, b):
        assert runs[ns]["state"] == "succeeded" and f"in {ns} target {ns} sees {ns}" in runs[ns]["log"][-1], runs[ns]
        assert target_get(testenv, "target", "configmaps", ns, "app")["data"]["hooked"] == "yes"
    # the job page lists each namespace's run
    page = restorer.client.get(f"/jobs/{restorer.last_job}").text
    assert f"<td>{a}</td>" in page and f"<td>{b}</td>" in page


def test_hook_policy_of_a_plan_entry_timeout_retries_on_error(restorer, testenv):
    """Issue 16: each hook entry of a plan may set timeout_s, retries (with backoff) and on_error."""
    ns = unique("hpol")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tries", "namespace": ns}, "data": {"n": "0"}}
    bid = restorer.upload_backup(unique("bk-hpol-"), archive({("configmaps", ns, "tries"): cm}))
    flaky = ('local cm = k8s.get("v1", "ConfigMap", "tries")\n'
             'local n = tonumber(cm.data.n) + 1\n'
             'k8s.patch("v1", "ConfigMap", "tries", {data = {n = tostring(n)}})\n'
             'if n < 3 then error("not ready yet, try " .. n) end\n'
             'log("ready on try " .. n)\n')
    endless = "sleep(5000)\nlog('woke')\n"	# within the deployment's 60 s, not within the entry's 1 s
    state, error, result, _ = restorer.restore(bid, "target", hooks=[
        {"inline": flaky, "retries": 3},
        {"inline": endless, "timeout_s": 1, "on_error": "continue"},
        {"inline": "log('after')"}])
    assert (state, error) == ("succeeded", ""), (state, error, result.get("hooks"))
    first, second, third = result["hooks"]
    assert first["state"] == "succeeded" and first["attempts"] == 3 and "ready on try 3" in first["log"][-1], first
    assert target_get(testenv, "target", "configmaps", ns, "tries")["data"]["n"] == "3"
    assert second["state"] == "continued" and second["attempts"] == 1 and "time limit" in second["error"], second
    assert second["duration_ms"] < 20000, second	# the entry's 1 s, not the deployment's 60 s
    assert third["state"] == "succeeded"
    page = restorer.client.get(f"/jobs/{restorer.last_job}").text
    assert "after 3 attempts" in page
    # a policy that is not one is refused in words, and the job fails at that entry
    state, error, result, _ = restorer.restore(bid, "target", namespace_map={ns: ns + "-bad"},
                                              hooks=[{"inline": "log('x')", "retries": 9}])
    assert state == "failed" and "entry 1 of the hook list: retries must be a whole number from 0 to 5" in error, error


def test_pre_restore_hooks_run_before_any_object_is_created(restorer, testenv):
    """Issue 16: a hook entry may ask for pre-restore; entries without a phase stay post-restore."""
    ns = unique("pre")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app", "namespace": ns}, "data": {"a": "1"}}
    bid = restorer.upload_backup(unique("bk-pre-"), archive({("configmaps", ns, "app"): cm}))
    probe = 'local cm = k8s.get("v1", "ConfigMap", "app")\nlog(job.phase .. ": " .. (cm and "present" or "absent"))\n'
    state, error, result, _ = restorer.restore(bid, "target", hooks=[{"inline": probe, "phase": "pre-restore"},
                                                                     {"inline": probe}])
    assert (state, error) == ("succeeded", ""), (state, error, result.get("hooks"))
    assert [(h["phase"], h["log"][-1]) for h in result["hooks"]] == [
        ("pre-restore", "pre-restore: absent"), ("post-restore", "post-restore: present")], result["hooks"]
    assert [p["name"] for p in result["phases"]][:3] == ["download", "prepare", "pre-restore hooks"], result["phases"]
    # a failing pre-restore hook stops the restore before anything is created
    state, error, result, items = restorer.restore(bid, "target", namespace_map={ns: ns + "-stop"},
                                                   hooks=[{"inline": "error('not now')", "phase": "pre-restore"}])
    assert state == "failed" and "hook inline-1 failed at pre-restore" in error, error
    assert target_get(testenv, "target", "configmaps", ns + "-stop", "app") is None


def test_objects_stored_at_a_version_the_target_does_not_serve_restore_at_its_own(restorer, testenv):
    """Issue 16: the backup holds gadgets at v1; the target's CRD serves only v2. Each object is
    restored at v2 and says so, instead of failing on a path the target does not have."""
    group = "gadgets-%s.stowage.dev" % unique("g")
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"gadgets.{group}"},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"kind": "Gadget", "listKind": "GadgetList", "plural": "gadgets", "singular": "gadget"},
                    "versions": [{"name": "v2", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    kubectl(testenv, "target", "apply", "-f", "-", stdin=json.dumps(crd))
    wait_for("the gadget CRD", lambda: kubectl(testenv, "target", "get", f"gadgets.{group}", "-A",
                                                check=False).returncode == 0)
    ns = unique("gadgets")
    gadget = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g1", "namespace": ns},
              "spec": {"size": 3}}
    bid = restorer.upload_backup(unique("bk-gadget-"), archive({(f"gadgets.{group}", ns, "g1"): gadget}))
    state, error, _, items = restorer.restore(bid, "target")
    assert (state, error) == ("succeeded", ""), items
    assert items[(f"gadgets.{group}", ns, "g1")] == (
        "created", f"restored at {group}/v2: the target cluster does not serve {group}/v1")
    live = target_get(testenv, "target", f"gadgets.{group}", ns, "g1")
    assert live["apiVersion"] == f"{group}/v2" and live["spec"] == {"size": 3}


def test_hook_errors_name_their_line(restorer, testenv):
    """Issue 11, defect 9: a hook raising a table, or a bad string.format, said no line."""
    import re
    ns = unique("hookline")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app", "namespace": ns}, "data": {"a": "1"}}
    bid = restorer.upload_backup(unique("bk-hook-"), archive({("configmaps", ns, "app"): cm}))
    for script, line, words in (("local n = 1\n\nerror({code = 3})\n", 3, "error raised with a table value, not a message"),
                                ("local n = 1\nlog(string.format('%d objects', 'many'))\n", 2, "bad argument #2 to ")):
        state, error, result, _ = restorer.restore(bid, "target", namespace_map={ns: unique("hl")},
                                                   hooks=[{"inline": script}])
        assert state == "failed", (state, error)
        assert re.search(r"\.lua:%d: %s" % (line, re.escape(words)), error), error
        assert re.search(r"\.lua:%d: " % line, json.dumps(result["hooks"])), result["hooks"]


def test_failed_objects_are_listed_and_the_rest_restored(restorer, testenv):
    ns = unique("broken")
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "good", "namespace": ns}, "data": {"a": "1"}}
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad", "namespace": ns},
           "data": {"not a valid key!": "x"}}
    bid = restorer.upload_backup(unique("bk-broken-"), archive({("configmaps", ns, "good"): good,
                                                                ("configmaps", ns, "bad"): bad}))
    state, error, result, items = restorer.restore(bid, "target")
    assert state == "partially_failed"
    assert error.startswith("1 of 3 objects failed: configmaps " + ns + "/bad: Invalid: ")
    assert items[("configmaps", ns, "bad")][0] == "failed"
    assert "not a valid key!" in items[("configmaps", ns, "bad")][1]
    assert items[("configmaps", ns, "good")] == ("created", "")
    assert items[("namespaces", "", ns)] == ("created", "")	# the backup had no Namespace object: made
    assert result["counts"] == {"created": 2, "failed": 1}
    phases = {p["name"]: p for p in result["phases"]}
    assert phases["create configmaps"]["state"] == "partially_failed" and phases["create configmaps"]["objects"] == 2
    assert phases["create namespaces"]["state"] == "succeeded"
    assert result["failed"] == [error[len("1 of 3 objects failed: "):]]


def test_unusable_backups_are_refused_in_words(restorer, testenv):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default"}}
    bid = restorer.upload_backup(unique("bk-running-"), archive({("configmaps", "default", "x"): cm}), state="running")
    state, error, _, items = restorer.restore(bid, "target")
    assert state == "failed" and "is running: only a completed or partially failed backup can be restored" in error
    assert items == {}

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../etc/evil.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    bid = restorer.upload_backup(unique("bk-evil-"), buf.getvalue())
    state, error, _, items = restorer.restore(bid, "target")
    assert state == "failed" and '".." is not allowed in a path' in error
    assert items == {}
