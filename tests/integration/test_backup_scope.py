"""The scope of a backup (issue 16) through real backup and restore jobs of the stack's runners,
against the test environment's two clusters and MinIO:

- a namespace backup carries the cluster-scoped objects its namespace depends on: the
  ClusterRoleBindings naming its ServiceAccounts and the ClusterRoles they (and its RoleBindings)
  grant, the PriorityClasses of its pods, the StorageClasses of its claims; never the ones every
  cluster makes itself. A restore into another namespace of the same cluster does not grant the
  new namespace's accounts those cluster-wide rights (whatever the existing-object policy); into
  another cluster the bindings name the mapped namespace;
- a whole-cluster plan backs up every namespace but the system ones and every listable
  cluster-scoped type but the noise (docs/jobs.md lists both); its restore brings a deleted
  namespace and ClusterRole back and leaves what exists alone;
- a claim restored by filesystem copy loses the dataSource that named the snapshot it was once
  made from (the snapshot does not exist in the target; the mover fills the claim).

Run: cd tests/integration && STOWAGE_BUILD=../../build/asan /usr/bin/python3 -m pytest test_backup_scope.py
"""
import html
import json
import os

import pytest

from conftest import unique
from fixtures_testenv import kubectl
from provisioner import Provisioner
from test_backup_restore_e2e import backup, digests, restore, tenant  # noqa: F401 (fixture)
from test_plans_pages import post_json
from test_restore_job import target_get, wait_for

RBAC = "rbac.authorization.k8s.io"


def apply(testenv, cluster, *objects):
    kubectl(testenv, cluster, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                      "items": list(objects)}))


def items(tenant, job_id, action=None):
    rows = tenant.sql("SELECT api_group, resource, namespace, name, action, message FROM stowage.job_items "
                      "WHERE job_id = %s", (job_id,))
    return {(g, r, ns, n): (a, m) for g, r, ns, n, a, m in rows if action is None or a == action}


def sa_binding(name, role, *accounts):
    return {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "namespace": ns, "name": sa} for ns, sa in accounts]}


@pytest.fixture(scope="module")
def app(testenv):
    """A namespace whose account holds cluster-wide rights, and the cluster-scoped objects it uses."""
    ns, u = unique("scope"), unique("s")
    kubectl(testenv, "source", "create", "namespace", ns)
    kubectl(testenv, "source", "create", "namespace", ns + "-other")
    names = {"reader": f"{u}-reader", "editor": f"{u}-editor", "binding": f"{u}-binding", "view": f"{u}-view",
             "other": f"{u}-other", "priority": f"{u}-high", "class": f"{u}-class"}
    rule = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]
    apply(testenv, "source",
          {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": ns}},
          {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": names["reader"]}, "rules": rule},
          {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": names["editor"]}, "rules": rule},
          sa_binding(names["binding"], names["reader"], (ns, "app")),
          # the built-in role "view": the binding is the namespace's, the role every cluster's
          sa_binding(names["view"], "view", (ns, "app")),
          # another namespace's binding: not this backup's
          sa_binding(names["other"], names["reader"], (ns + "-other", "app")),
          {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": {"name": "edit-here", "namespace": ns},
           "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": names["editor"]},
           "subjects": [{"kind": "ServiceAccount", "namespace": ns, "name": "app"}]},
          {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": names["priority"]},
           "value": 1000},
          {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": names["class"]},
           "provisioner": "example.test/none", "reclaimPolicy": "Retain"},
          {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "worker", "namespace": ns},
           "spec": {"priorityClassName": names["priority"], "serviceAccountName": "app",
                    "containers": [{"name": "c", "image": "example.test/worker:1"}]}},
          {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "scratch", "namespace": ns},
           "spec": {"storageClassName": names["class"], "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}})
    return ns, names


def test_namespace_backup_carries_the_cluster_scoped_objects_it_uses(tenant, testenv, app):
    ns, names = app
    job_id, job = backup(tenant, ns)
    assert job["state"] == "succeeded", job
    got = items(tenant, job_id, "backed_up")
    cluster = {(g, r, n) for (g, r, o_ns, n) in got if not o_ns}
    for want in [(RBAC, "clusterrolebindings", names["binding"]), (RBAC, "clusterrolebindings", names["view"]),
                 (RBAC, "clusterroles", names["reader"]), (RBAC, "clusterroles", names["editor"]),
                 ("scheduling.k8s.io", "priorityclasses", names["priority"]),
                 ("storage.k8s.io", "storageclasses", names["class"]), ("", "namespaces", ns)]:
        assert want in cluster, (want, sorted(cluster))
    # another namespace's binding, and the roles every cluster makes itself, stay out
    assert (RBAC, "clusterrolebindings", names["other"]) not in cluster
    assert not [n for (g, r, n) in cluster if r == "clusterroles" and n in ("view", "cluster-admin", "admin", "edit")]
    assert not [n for (g, r, n) in cluster if r == "priorityclasses" and n.startswith("system-")]
    tenant.scope_backup = job["backup_id"]


def test_restore_into_another_namespace_of_the_same_cluster_grants_no_cluster_rights(tenant, testenv, app):
    ns, names = app
    copy = ns + "-copy"
    # even with the policy that updates existing objects, the original binding stays as it is
    rjob_id, rjob = restore(tenant, tenant.scope_backup, tenant.cluster_id, namespace_map={ns: copy},
                            existing_policy="update")
    assert rjob["state"] in ("succeeded", "partially_failed"), rjob
    got = items(tenant, rjob_id)
    action, message = got[(RBAC, "clusterrolebindings", "", names["binding"])]
    assert action == "skipped", (action, message)
    assert f"ServiceAccount {copy}/app" in message and names["reader"] in message and "not granted" in message, message
    live = json.loads(kubectl(testenv, "source", "get", "clusterrolebinding", names["binding"], "-o", "json").stdout)
    assert live["subjects"] == [{"kind": "ServiceAccount", "namespace": ns, "name": "app"}]
    # no binding in the cluster names the copy's account
    crbs = json.loads(kubectl(testenv, "source", "get", "clusterrolebindings", "-o", "json").stdout)["items"]
    assert not [b for b in crbs if any(s.get("namespace") == copy for s in b.get("subjects") or [])]
    # the namespace's own RoleBinding comes along: it grants rights in the copy only
    rb = json.loads(kubectl(testenv, "source", "-n", copy, "get", "rolebinding", "edit-here", "-o", "json").stdout)
    assert rb["subjects"][0]["namespace"] == copy and rb["roleRef"]["name"] == names["editor"]


def test_restore_into_another_cluster_binds_the_mapped_namespace_and_never_overwrites(tenant, testenv, app):
    ns, names = app
    moved = ns + "-moved"
    rjob_id, rjob = restore(tenant, tenant.scope_backup, tenant.target_id, namespace_map={ns: moved})
    assert rjob["state"] in ("succeeded", "partially_failed"), rjob
    got = items(tenant, rjob_id)
    for key in [(RBAC, "clusterrolebindings", "", names["binding"]), (RBAC, "clusterroles", "", names["reader"]),
                (RBAC, "clusterroles", "", names["editor"]), ("scheduling.k8s.io", "priorityclasses", "", names["priority"])]:
        assert got[key][0] == "created", (key, got[key])
    # a StorageClass is the cluster's: created only when the plan asks
    assert got[("storage.k8s.io", "storageclasses", "", names["class"])][0] == "skipped"
    crb = target_get(testenv, "target", "clusterrolebindings", "", names["binding"])
    assert crb["subjects"] == [{"kind": "ServiceAccount", "namespace": moved, "name": "app"}]
    assert crb["roleRef"]["name"] == names["reader"]
    # an existing cluster-scoped object is left alone under the default policy
    kubectl(testenv, "target", "label", "clusterrole", names["reader"], "changed-in-target=yes")
    rjob_id, rjob = restore(tenant, tenant.scope_backup, tenant.target_id, namespace_map={ns: moved})
    got = items(tenant, rjob_id)
    assert got[(RBAC, "clusterroles", "", names["reader"])] == ("skipped", "already exists")
    assert target_get(testenv, "target", "clusterroles", "", names["reader"])["metadata"]["labels"]["changed-in-target"] == "yes"


def test_whole_cluster_plan_through_the_wizard(tenant):
    data = {"name": unique("whole-"), "cluster_id": tenant.cluster_id, "repository_id": tenant.repository_id,
            "schedule_kind": "manual", "retention_days": "7", "hook_script": "",
            "exclude_resources": "persistentvolumeclaims, persistentvolumes, pods"}
    # no namespace and not the whole cluster: refused, the field named
    r = tenant.client.post("/backup-plans", data)
    assert r.status_code == 422 and "Namespaces: choose at least one, or the whole cluster" in html.unescape(r.text)
    # the claims step with no namespace chosen lists none and goes on
    r = post_json(tenant.client, "/backup-plans/new?step=3", dict(data, whole_cluster="on"))
    assert r.status_code == 200 and r.json().get("claims", []) == [], r.text[:500]
    r = tenant.client.post("/backup-plans", dict(data, whole_cluster="on"))
    assert r.status_code == 303, r.text[-2000:]
    plan = [p for p in tenant.client.json("/backup-plans").json()["plans"] if p["name"] == data["name"]][0]
    assert plan["whole_cluster"] is True and plan["namespaces"] == "", plan
    kept = {h["name"]: h["value"] for h in tenant.client.json(f"/backup-plans/{plan['id']}/edit").json()["hidden"]}
    assert kept.get("whole_cluster") == "true", kept
    tenant.whole_plan = plan["id"]


def test_whole_cluster_backup_and_its_restore(tenant, testenv, app):
    ns, names = app
    plan_id = tenant.whole_plan
    job_id = tenant.sql_one("INSERT INTO stowage.jobs (org_id, kind, backup_plan_id, cluster_id) "
                            "VALUES (%s, 'backup', %s, %s) RETURNING id", (tenant.org_id, plan_id, tenant.cluster_id))[0]
    job = tenant.wait_job(job_id, timeout=600)
    assert job["state"] == "succeeded", job
    row = tenant.backup_row(job["backup_id"])
    assert ns in row["namespaces"] and ns + "-other" in row["namespaces"] and "default" in row["namespaces"]
    assert not {"kube-system", "kube-public", "kube-node-lease"} & set(row["namespaces"]), row["namespaces"]
    got = items(tenant, job_id, "backed_up")
    types = {(g, r) for (g, r, _, _) in got}
    cluster = {(g, r, n) for (g, r, o_ns, n) in got if not o_ns}
    # every cluster-scoped object of the tenant's, whatever binds it
    for want in [(RBAC, "clusterrolebindings", names["other"]), (RBAC, "clusterroles", names["reader"]),
                 ("storage.k8s.io", "storageclasses", names["class"]),
                 ("scheduling.k8s.io", "priorityclasses", names["priority"])]:
        assert want in cluster, want
    # not the noise, not what the cluster makes itself, not what the plan excludes
    assert not types & {("", "nodes"), ("", "events"), ("coordination.k8s.io", "leases"),
                        ("", "persistentvolumeclaims"), ("", "pods"), ("", "persistentvolumes")}, types
    assert (RBAC, "clusterroles", "cluster-admin") not in cluster
    assert not [n for (g, r, n) in cluster if r == "apiservices"]	# the built-in ones only, here
    assert not [o for (g, r, o, n) in got if o == "kube-system"]

    # disaster: the namespace and a ClusterRole are gone; the whole backup restored into the same
    # cluster brings them back and leaves every existing object alone
    kubectl(testenv, "source", "delete", "namespace", ns + "-other", "--wait=true", "--timeout=120s")
    kubectl(testenv, "source", "delete", "clusterrole", names["editor"])
    kubectl(testenv, "source", "label", "clusterrole", names["reader"], "changed-since=yes")
    rjob_id, rjob = restore(tenant, job["backup_id"], tenant.cluster_id)
    assert rjob["state"] in ("succeeded", "partially_failed"), rjob
    got = items(tenant, rjob_id)
    assert got[("", "namespaces", "", ns + "-other")][0] == "created"
    assert got[(RBAC, "clusterroles", "", names["editor"])][0] == "created"
    assert got[(RBAC, "clusterroles", "", names["reader"])] == ("skipped", "already exists")
    assert target_get(testenv, "source", "clusterroles", "", names["reader"])["metadata"]["labels"]["changed-since"] == "yes"
    assert target_get(testenv, "source", "namespaces", "", ns + "-other") is not None


def test_claim_restored_by_filesystem_copy_loses_its_snapshot_data_source(tenant, testenv):
    """The claim was itself made from a VolumeSnapshot (dataSource); restored by filesystem copy
    into the other cluster, where no such snapshot exists, it must come back a plain claim that
    the provisioner binds and the mover fills."""
    ns = unique("cloned")
    moved = ns + "-moved"
    kubectl(testenv, "source", "create", "namespace", ns)
    d = os.path.join(testenv["SOURCE_VOLUME_DIR"], f"{ns}-data")
    os.makedirs(os.path.join(d, "db"))
    with open(os.path.join(d, "db", "table"), "wb") as f:
        f.write(os.urandom(100000))
    source = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "nightly-snap"}
    apply(testenv, "source",
          {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{ns}-data"},
           "spec": {"storageClassName": "fast-ssd", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": d, "type": "Directory"},
                    "claimRef": {"namespace": ns, "name": "data"}}},
          {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": ns},
           "spec": {"storageClassName": "fast-ssd", "accessModes": ["ReadWriteOnce"], "volumeName": f"{ns}-data",
                    "resources": {"requests": {"storage": "1Gi"}}, "dataSource": source}})
    kubectl(testenv, "source", "-n", ns, "wait", "--for=jsonpath={.status.phase}=Bound", "pvc/data", "--timeout=60s")
    claim = json.loads(kubectl(testenv, "source", "-n", ns, "get", "pvc", "data", "-o", "json").stdout)
    assert claim["spec"]["dataSource"]["kind"] == "VolumeSnapshot"
    _, job = backup(tenant, ns)
    assert job["state"] == "succeeded", job

    with Provisioner(testenv, "target", ["standard-nfs"], testenv["TARGET_VOLUME_DIR"]) as prov:
        rjob_id, _ = restore(tenant, job["backup_id"], tenant.target_id, namespace_map={ns: moved},
                             storage_class_map={"fast-ssd": "standard-nfs"}, _queue_only=True)
        restored = wait_for("the restored claim", lambda: target_get(testenv, "target", "persistentvolumeclaims",
                                                                     moved, "data"), timeout=180)
        assert "dataSource" not in restored["spec"] and "dataSourceRef" not in restored["spec"], restored["spec"]
        rjob = tenant.wait_job(rjob_id)
    assert not prov.errors, prov.errors
    assert rjob["state"] == "succeeded", rjob
    live = target_get(testenv, "target", "persistentvolumeclaims", moved, "data")
    pv = target_get(testenv, "target", "persistentvolumes", "", live["spec"]["volumeName"])
    assert digests(pv["spec"]["hostPath"]["path"]) == digests(d)


def test_whole_cluster_box_in_chromium(stack, testenv, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from browser import fill, screenshot, signup
    from test_backup_job import s3_client
    from test_browser_wizards import submit

    bucket = unique("whole-web-")
    s3_client(testenv).create_bucket(Bucket=bucket)
    signup(browser, stack, {"org": unique("Whole Org "), "display_name": "Whole", "email": unique("whole") + "@x.test",
                            "password": "browser password 4"})
    with open(testenv["SOURCE_CA_FILE"]) as f:
        ca = f.read()
    browser.get(stack.url + "/clusters/new")
    fill(browser, "/clusters", {"name": "source", "api_url": testenv["SOURCE_API_URL"],
                                "token": testenv["SOURCE_ADMIN_TOKEN"], "ca_pem": ca})
    browser.get(stack.url + "/repositories/new")
    fill(browser, "/repositories", {"name": "minio", "kind": "s3-compatible", "bucket": bucket, "prefix": "whole",
                                    "endpoint": testenv["S3_ENDPOINT"], "access_key": testenv["S3_ACCESS_KEY"],
                                    "secret_key": testenv["S3_SECRET_KEY"]})
    browser.get(stack.url + "/backup-plans/new")
    browser.find_element(By.NAME, "name").send_keys("everything")
    Select(browser.find_element(By.NAME, "cluster_id")).select_by_visible_text("source")
    Select(browser.find_element(By.NAME, "repository_id")).select_by_visible_text("minio")
    browser.find_element(By.CSS_SELECTOR, 'input[name="schedule_kind"][value="manual"]').click()
    retention = browser.find_element(By.NAME, "retention_days")
    retention.clear()
    retention.send_keys("7")
    submit(browser, "Next")
    # nothing chosen, box not ticked: refused on the step, in words
    submit(browser, "Next")
    assert "Namespaces: choose at least one, or the whole cluster" in browser.page_source
    browser.find_element(By.ID, "whole-cluster").click()
    screenshot(browser, "backup-wizard-whole-cluster")
    submit(browser, "Next")
    assert "3. " in browser.find_element(By.CSS_SELECTOR, '[aria-current="step"]').text
    submit(browser, "Next")
    submit(browser, "Next")
    submit(browser, "Finish")
    assert "Backup plan everything saved" in browser.find_element(By.CLASS_NAME, "flash").text
    browser.get(stack.url + "/backup-plans/" + browser.current_url.rstrip("/").split("/")[-2] + "/edit")
    submit(browser, "Next")
    assert browser.find_element(By.ID, "whole-cluster").is_selected()
