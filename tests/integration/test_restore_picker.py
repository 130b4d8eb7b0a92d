"""Restore exactly what is needed (issue 15) and resource modifiers previewed (issue 16), against
the real servers: the restore wizard offers the chosen backup's objects as checkboxes (from the
resource types the backup job records, sql/023), by type and namespace with the cluster-scoped
ones apart, filtered and paged in SQL (a backup of 100,000 objects renders one page); one
ConfigMap alone, then one Deployment with its claim alone, are restored by ticking their boxes
through the wizard's posts, and nothing else is created; a CRD is chosen from the cluster-scoped
group; an object the backup does not hold is refused naming it; the modifiers step previews the
rewritten image, read from the archive by a runner."""

import pytest

from conftest import unique
from fixtures_testenv import kubectl
from provisioner import Provisioner
from test_backup_catalog import backed_up  # noqa: F401 (one backup of the fixture application)
from test_backup_job import FIXTURE_NS, Tenant, fixture_app  # noqa: F401

JSON = {"Accept": "application/json"}


def json_text(view):
    """The answer without the posted fields it echoes: what the server read, not what it was sent."""
    view = dict(view)
    view.pop("fields", None)
    view.pop("hidden", None)
    return str(view)
CRD = "customresourcedefinitions.apiextensions.k8s.io//widgets.fixtures.stowage.dev"


@pytest.fixture(scope="module")
def tenant(stack, testenv):
    return Tenant(stack, testenv, prefix="picker")


def base(tenant, backed_up, name):
    return {"name": name, "target_cluster_id": tenant.cluster_id, "existing_policy": "skip",
            "backup_plan_id": backed_up["plan_id"], "backup_id": backed_up["backup_id"]}


def step(tenant, n, fields, query=""):
    r = tenant.client.post(f"/restore-plans/new?step={n}{query}", fields, headers=JSON)
    assert r.status_code == 200, r.text[-1500:]
    return r.json()


def picked(view):
    p = view["object_picker"]
    return {o["value"]: o["checked"] for g in p["namespaced"] + p["cluster_scoped"] for o in g["objects"]}


def restore_by_ticking(tenant, testenv, backed_up, boxes):
    """The wizard's posts as a browser sends them: step 3 lists the backup's objects, the boxes
    are ticked, step 4 carries the choice hidden, Finish saves; then Activate. The job and the
    objects it created."""
    ns = unique("pick-")
    fields = {**base(tenant, backed_up, ns), "namespace_map": f"{FIXTURE_NS}:{ns}"}
    view = step(tenant, 3, fields)
    offered = picked(view)
    assert set(boxes) <= set(offered) and not any(offered.values())
    view = step(tenant, 4, {**fields, "object": boxes})
    hidden = {h["name"]: h["value"] for h in view["hidden"]}
    assert hidden["objects"].split("\n") == boxes
    r = tenant.client.post("/restore-plans", {**hidden, "resource_modifiers": ""})
    assert r.status_code == 303, r.text[-1500:]
    plan_id, selection = tenant.sql_one("SELECT id, selection FROM stowage.restore_plans WHERE name = %s "
                                        "AND org_id = %s", (ns, tenant.org_id))
    assert selection["objects"] == boxes
    # editing the plan shows its choices ticked
    edit = tenant.client.json(f"/restore-plans/{plan_id}/edit")
    assert edit.status_code == 200
    carried = {**fields, **{h["name"]: h["value"] for h in edit.json()["hidden"]}}
    assert carried["objects"] == hidden["objects"]
    r = tenant.client.post(f"/restore-plans/{plan_id}/edit?step=3", carried, headers=JSON)
    assert r.status_code == 200, r.text[-800:]
    assert {v for v, checked in picked(r.json()).items() if checked} == set(boxes)
    r = tenant.client.post(f"/restore-plans/{plan_id}/activate", {"confirm": "yes"})
    assert r.status_code == 303, r.text[:500]
    job_id = int(r.headers["Location"].rsplit("/", 1)[1])
    job = tenant.wait_job(job_id)
    job["id"] = job_id
    created = set(tenant.sql("SELECT resource, coalesce(namespace, ''), name FROM stowage.job_items "
                             "WHERE job_id = %s AND action = 'created'", (job_id,)))
    return ns, job, created


def test_the_picker_groups_filters_and_pages(tenant, backed_up):
    fields = base(tenant, backed_up, "picker-view")
    view = step(tenant, 3, fields)
    p = view["object_picker"]
    assert p["available"] and p["page"] == 1 and p["pages"] == 1
    count = tenant.sql_one("SELECT resource_count FROM stowage.backups WHERE id = %s", (backed_up["backup_id"],))[0]
    assert p["total"] == count
    groups = {(g["type"], g["namespace"]) for g in p["namespaced"]}
    assert ("configmaps", FIXTURE_NS) in groups and ("deployments.apps", FIXTURE_NS) in groups
    # cluster-scoped objects in their own group: the CRD, the namespace, the volumes
    cluster = {g["type"]: [o["value"] for o in g["objects"]] for g in p["cluster_scoped"]}
    assert CRD in cluster["customresourcedefinitions.apiextensions.k8s.io"]
    assert all(g["namespace"] == "" for g in p["cluster_scoped"])
    assert "namespaces//" + FIXTURE_NS in cluster["namespaces"]
    # the filter is a plain field (a GET parameter too): no JavaScript needed
    view = step(tenant, 3, {**fields, "object_filter": "Wordpress-Config"})
    assert list(picked(view)) == [f"configmaps/{FIXTURE_NS}/wordpress-config"] and view["object_picker"]["total"] == 1
    q = "&".join(f"{k}={v}" for k, v in fields.items())
    got = tenant.client.json(f"/restore-plans/new?step=3&{q}&object_filter=widgets").json()
    assert set(picked(got)) == {CRD, f"widgets.fixtures.stowage.dev/{FIXTURE_NS}/sprocket"}
    # a hostile filter is only text
    assert step(tenant, 3, {**fields, "object_filter": "%' OR 1=1 --"})["object_picker"]["total"] == 0
    # a ticked box on another page stays chosen in the textarea
    view = step(tenant, 3, {**fields, "object_filter": "wordpress-config", "object": [CRD]})
    assert view["fields"]["objects"]["value"] == CRD


def test_a_backup_of_100000_objects_renders_one_page(tenant, backed_up):
    """The picker pages in SQL: a backup row listing 100,000 ConfigMaps shows 100 boxes a page."""
    big = tenant.sql_one(
        "INSERT INTO stowage.backups (org_id, plan_id, repository_id, name, state, namespaces, resource_count, "
        "resource_list, resource_types, started_at, completed_at) "
        "SELECT org_id, plan_id, repository_id, name || '-big', state, namespaces, 100000, "
        "jsonb_build_object('v1/ConfigMap', (SELECT jsonb_agg('big/cm-' || lpad(i::text, 6, '0')) "
        "FROM generate_series(1, 100000) i)), '{\"v1/ConfigMap\": {\"resource\": \"configmaps\", \"group\": \"\", "
        "\"namespaced\": true}}', started_at, completed_at FROM stowage.backups WHERE id = %s RETURNING id",
        (backed_up["backup_id"],))[0]
    fields = {**base(tenant, backed_up, "big"), "backup_id": big}
    view = step(tenant, 3, {**fields, "object_page": "1000"})
    p = view["object_picker"]
    assert p["total"] == 100000 and p["pages"] == 1000 and p["page"] == 1000 and p["prev_page"] == 999
    assert "next_page" not in p
    assert list(picked(view))[-1] == "configmaps/big/cm-100000" and len(picked(view)) == 100
    html = tenant.client.post("/restore-plans/new?step=3", fields).text
    assert html.count('name="object"') == 100 and "page 1 of 1000" in html
    # validated against the backup: one it holds passes, one it does not is named
    r = tenant.client.post("/restore-plans/new?step=4", {**fields, "object": ["configmaps/big/cm-054321"]})
    assert r.status_code == 200 and "Only these objects" not in r.text
    r = tenant.client.post("/restore-plans/new?step=4", {**fields, "object": ["configmaps/big/cm-100001"]})
    assert r.status_code == 422 and "configmaps/big/cm-100001 is not in this backup" in r.text
    tenant.sql("DELETE FROM stowage.backups WHERE id = %s RETURNING id", (big,))


def test_an_object_not_in_the_backup_is_refused_naming_it(tenant, backed_up):
    fields = base(tenant, backed_up, "not-there")
    for bad in (f"configmaps/{FIXTURE_NS}/no-such-config", f"secrets/{FIXTURE_NS}/wordpress-config",
                "customresourcedefinitions.apiextensions.k8s.io/wordpress/widgets.fixtures.stowage.dev"):
        r = tenant.client.post("/restore-plans/new?step=4", {**fields, "object": [f"configmaps/{FIXTURE_NS}/wordpress-config", bad]})
        assert r.status_code == 422 and f"Only these objects: {bad} is not in this backup" in r.text, r.text[-800:]
        r = tenant.client.post("/restore-plans", {**fields, "objects": bad})
        assert r.status_code == 422 and f"{bad} is not in this backup" in r.text
    assert tenant.sql_one("SELECT count(*) FROM stowage.restore_plans WHERE name = 'not-there'")[0] == 0


def test_another_organisation_sees_none_of_the_objects(stack, testenv, tenant, backed_up):
    """The picker and the preview read through row-level security: another organisation naming
    this backup (with a cluster of its own, so that its first step passes) gets no object names
    and no preview: its backup step refuses the backup."""
    other = Tenant(stack, testenv, prefix="picker-other")
    own_plan = other.sql_one("INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces) "
                             "VALUES (%s, 'own', %s, %s, %s) RETURNING id",
                             (other.org_id, other.cluster_id, other.repository_id, [FIXTURE_NS]))[0]
    fields = {**base(tenant, backed_up, "steal"), "target_cluster_id": other.cluster_id, "backup_plan_id": own_plan}
    view = step(other, 3, {**fields, "object_filter": "wordpress"})
    assert not view["object_picker"]["available"] and "wordpress-config" not in json_text(view)
    for query in ("", "&preview=1"):
        r = other.client.post(f"/restore-plans/new?step=4{query}", {**fields, "object": [f"configmaps/{FIXTURE_NS}/wordpress-config"],
                              "resource_modifiers": "version: v1\nresourceModifierRules: []\n"}, headers=JSON)
        assert r.status_code == 422 and "Backup: choose a completed backup" in r.text, r.text[-500:]
        assert "preview" not in r.json() and "live_pending" not in r.json()


def test_restore_one_configmap_alone(tenant, testenv, backed_up):
    ns, job, created = restore_by_ticking(tenant, testenv, backed_up, [f"configmaps/{FIXTURE_NS}/wordpress-config"])
    assert job["state"] == "succeeded", job["error"]
    assert created == {("namespaces", "", ns), ("configmaps", ns, "wordpress-config")}, created
    names = kubectl(testenv, "source", "-n", ns, "get", "all,configmaps,secrets,pvc,ingresses,serviceaccounts,roles",
                    "-o", "name").stdout.split()
    assert sorted(names) == sorted(["configmap/wordpress-config", "configmap/kube-root-ca.crt",
                                    "serviceaccount/default"]), names
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")


def test_restore_one_deployment_with_its_claim_alone(tenant, testenv, backed_up):
    boxes = [f"deployments.apps/{FIXTURE_NS}/wordpress", f"persistentvolumeclaims/{FIXTURE_NS}/wordpress-data"]
    with Provisioner(testenv, "source", [testenv["SOURCE_STORAGE_CLASS"]], testenv["SOURCE_VOLUME_DIR"]) as prov:
        ns, job, created = restore_by_ticking(tenant, testenv, backed_up, boxes)
    assert not prov.errors, prov.errors
    assert job["state"] == "succeeded", job["error"]
    assert created == {("namespaces", "", ns), ("deployments", ns, "wordpress"),
                       ("persistentvolumeclaims", ns, "wordpress-data"), ("volumedata", ns, "wordpress-data")}, created
    names = kubectl(testenv, "source", "-n", ns, "get", "deployments,statefulsets,services,configmaps,secrets,pvc,"
                    "ingresses,cronjobs,roles", "-o", "name").stdout.split()
    assert sorted(names) == sorted(["deployment.apps/wordpress", "persistentvolumeclaim/wordpress-data",
                                    "configmap/kube-root-ca.crt"]), names
    log = "\n".join(m for (m,) in tenant.sql("SELECT message FROM stowage.job_logs WHERE job_id = %s", (job["id"],)))
    assert f"claim {ns}/wordpress-data: restored by filesystem" in log, log[-2000:]
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")


def test_a_crd_chosen_from_the_cluster_scoped_group(tenant, testenv, backed_up):
    kubectl(testenv, "source", "delete", "crd", "widgets.fixtures.stowage.dev", "--wait=true", "--timeout=60s")
    ns, job, created = restore_by_ticking(tenant, testenv, backed_up, [CRD])
    assert job["state"] == "succeeded", job["error"]
    assert ("customresourcedefinitions", "", "widgets.fixtures.stowage.dev") in created
    assert {c for c in created if c[0] != "namespaces"} == {("customresourcedefinitions", "", "widgets.fixtures.stowage.dev")}
    assert kubectl(testenv, "source", "get", "crd", "widgets.fixtures.stowage.dev", check=False).returncode == 0
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")


def test_the_modifiers_step_previews_a_changed_image(tenant, backed_up):
    rules = ("version: v1\nresourceModifierRules:\n- conditions: {groupResource: deployments.apps}\n"
             "  imageRewrites: [{from: 'wordpress:', to: 'registry.example/mirror/wordpress:'}]\n")
    fields = {**base(tenant, backed_up, "preview"), "objects": f"deployments.apps/{FIXTURE_NS}/wordpress\n"
              f"configmaps/{FIXTURE_NS}/wordpress-config", "resource_modifiers": rules}
    # the client follows "a runner applies them…" as live.js does, resubmitting to ?preview=1
    view = step(tenant, 4, fields, "&preview=1")
    assert "preview_error" not in view, view.get("preview_error")
    p = view["preview"]
    assert p["examined"] == 2 and len(p["changed"]) == 1
    d = p["changed"][0]
    assert (d["type"], d["object"], d["rules"]) == ("deployments.apps", f"{FIXTURE_NS}/wordpress", 1)
    assert {"path": "/spec/template/spec/containers/0/image", "before": '"wordpress:6.5-apache"',
            "after": '"registry.example/mirror/wordpress:6.5-apache"'} in d["changes"], d
    # no objects chosen: the backup's first ones; rules that do not parse are named, no runner asked
    view = step(tenant, 4, {**fields, "objects": ""}, "&preview=1")
    assert view["preview"]["examined"] > 2 and len(view["preview"]["changed"]) == 1
    view = step(tenant, 4, {**fields, "resource_modifiers": "version: v2"}, "&preview=1")
    assert "version" in view["preview_error"] and "preview" not in view
    html = tenant.client.post("/restore-plans/new?step=4&preview=1", fields).text
    assert "registry.example/mirror/wordpress:6.5-apache" in html and 'id="modifier-preview"' in html


def test_a_flood_of_object_lines_is_refused_for_its_length(tenant, backed_up):
    """The chosen objects come as lines, from the textarea and the boxes, and are merged with
    repeats dropped before the form checks the field: 1.5 MB of distinct lines (150,000) were each
    compared with all before them, minutes of a web worker's CPU for one post (nginx gave up at
    120 s with a 504)."""
    lines = "\n".join(f"x{i:06d}" for i in range(150000))
    r = tenant.client.post("/restore-plans/new?step=4", {**base(tenant, backed_up, "flood"), "objects": lines},
                           headers=JSON, timeout=600)
    assert r.status_code == 422, (r.status_code, r.text[:300])
    assert r.json()["fields"]["objects"]["error"] == "Only these objects: at most 65536 characters", r.text[:500]
