"""Restore plans and migration plans can be edited (issue 15): the wizard opens with the plan's
values, the edit is validated as a new plan is (a bad field named), a plan with a queued or
running job cannot be edited (said in words), each save leaves an audit entry, and another
organisation cannot even open the form (404)."""
import pytest

from conftest import Client, unique
from test_plans_pages import add_backups, bucket, org, org_id_of, owner, page_text, restore_step1  # noqa: F401


def sql(stack, query, args=()):
    conn = owner(stack)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


@pytest.fixture
def other(stack):
    c = Client(stack)
    c.signup(unique("Other Editor "), unique("other") + "@example.test")
    return c


def backup_plan(stack, org):
    oid = org_id_of(stack, org.email)
    return sql(stack, "INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces) "
                      "VALUES (%s, %s, %s, %s, ARRAY['shop']) RETURNING id",
               (oid, unique("plan-"), org.source, org.repo))[0][0]


def running_job(stack, org, column, plan_id):
    """A job of the plan that a runner holds (runner-1 is alive, so nobody takes it back)."""
    oid = org_id_of(stack, org.email)
    return sql(stack, f"INSERT INTO stowage.jobs (org_id, kind, {column}, cluster_id, state, runner_id, started_at) "
                      f"VALUES (%s, %s, %s, %s, 'running', 'runner-1', now()) RETURNING id",
               (oid, "restore" if column == "restore_plan_id" else "migrate", plan_id, org.target))[0][0]


def audit(stack, org, action):
    oid = org_id_of(stack, org.email)
    return sql(stack, "SELECT target FROM stowage.audit_log WHERE org_id = %s AND action = %s ORDER BY id",
               (oid, action))


def test_a_restore_plan_is_edited_through_its_wizard(stack, org, other):
    plan_id = backup_plan(stack, org)
    backups = add_backups(stack, org, plan_id, "shop")
    full = restore_step1(org, name="shop-copy", namespace_map="shop:shop-copy", backup_plan_id=plan_id,
                         backup_id=backups["completed"], include_types="configmaps", hook_script="-- fix the host")
    r = org.post("/restore-plans", full)
    assert r.status_code == 303, page_text(r)[-1500:]
    rid = int(r.headers["Location"].split("/")[2])

    # the wizard opens with the plan's values: this step's fields, the others carried along
    view = org.json(f"/restore-plans/{rid}/edit").json()
    assert view["id"] == rid and view["title"] == "Edit restore plan"
    assert view["fields"]["name"]["value"] == "shop-copy"
    assert view["fields"]["namespace_map"]["value"] == "shop:shop-copy"
    hidden = {h["name"]: h["value"] for h in view["hidden"]}
    assert hidden["backup_id"] == str(backups["completed"]) and hidden["include_types"] == "configmaps"
    assert hidden["hook_script"] == "-- fix the host"
    assert view["next_action"] == f"/restore-plans/{rid}/edit?step=2" and view["action_base"] == f"/restore-plans/{rid}/edit"
    assert f'action="/restore-plans/{rid}/edit?step=2"' in page_text(org.get(f"/restore-plans/{rid}/edit"))

    # a bad field is named, and nothing changes
    r = org.post(f"/restore-plans/{rid}", dict(full, namespace_map="shop"))
    assert r.status_code == 422 and 'Namespace mapping: "shop" is not source:target' in page_text(r)
    r = org.post(f"/restore-plans/{rid}", dict(full, include_types="Config Maps!"))
    assert r.status_code == 422 and 'Only these types: "Config" is not a resource type' in page_text(r)
    assert sql(stack, "SELECT namespace_map FROM stowage.restore_plans WHERE id = %s", (rid,))[0][0] == {"shop": "shop-copy"}

    # saved: the same row, changed; the plan's name may change too; an audit entry
    r = org.post(f"/restore-plans/{rid}", dict(full, name="shop-copy-2", namespace_map="shop:shop-elsewhere",
                                                existing_policy="update", backup_id=backups["partially_failed"],
                                                notify_emails="ops@example.test"))
    assert r.status_code == 303 and r.headers["Location"] == f"/restore-plans/{rid}/jobs", page_text(r)[-1500:]
    assert sql(stack, "SELECT name, namespace_map, existing_policy, backup_id, selection->'include_types' "
                      "FROM stowage.restore_plans WHERE id = %s", (rid,))[0] == \
        ("shop-copy-2", {"shop": "shop-elsewhere"}, "update", backups["partially_failed"], ["configmaps"])
    assert audit(stack, org, "restore_plan.update") == [("shop-copy-2",)]
    assert org.json(f"/restore-plans/{rid}/edit").json()["fields"]["notify_emails"]["value"] == "ops@example.test"
    # a name another plan has is refused on the name
    assert org.post("/restore-plans", dict(full, name="shop-other")).status_code == 303
    r = org.post(f"/restore-plans/{rid}", dict(full, name="shop-other"))
    assert r.status_code == 422 and "Name: a restore plan of that name already exists" in page_text(r)

    # a plan with a running job cannot be edited, and says so
    job = running_job(stack, org, "restore_plan_id", rid)
    for r in (org.json(f"/restore-plans/{rid}/edit"), org.post(f"/restore-plans/{rid}", full),
              org.post(f"/restore-plans/{rid}/edit?step=2", full)):
        assert r.status_code == 409 and f"job #{job}" in page_text(r) and "cannot be edited" in page_text(r)
    sql(stack, "UPDATE stowage.jobs SET state = 'cancelled', finished_at = now() WHERE id = %s", (job,))
    assert org.json(f"/restore-plans/{rid}/edit").status_code == 200

    # another organisation: no such plan, whatever it sends
    assert other.json(f"/restore-plans/{rid}/edit").status_code == 404
    assert other.post(f"/restore-plans/{rid}", full).status_code == 404
    assert other.post(f"/restore-plans/{rid}/edit?step=2", full).status_code == 404
    assert sql(stack, "SELECT name FROM stowage.restore_plans WHERE id = %s", (rid,))[0][0] == "shop-copy-2"


def test_a_migration_plan_is_edited(stack, org, other):
    data = {"name": "move-shop", "source_cluster_id": org.source, "target_cluster_id": org.target,
            "repository_id": org.repo, "namespaces": "shop", "library_hooks": "", "hook_script": "",
            "class:shop/data": "standard"}
    r = org.post("/migrations", data)
    assert r.status_code == 303, page_text(r)[-1500:]
    mid = int(r.headers["Location"].rsplit("/", 1)[1])

    view = org.json(f"/migrations/{mid}/edit").json()
    assert view["title"] == "Edit migration" and view["edit_id"] == mid
    assert view["form_action"] == f"/migrations/{mid}/edit"
    assert {f: view["fields"][f]["value"] for f in ("name", "namespaces")} == {"name": "move-shop", "namespaces": "shop"}
    assert [s for s in view["sources"] if s["selected"]][0]["id"] == str(org.source)
    # the claims' classes go along to the second step
    assert view["kept_classes"] == [{"name": "class:shop/data", "value": "standard"}]
    assert 'name="class:shop/data" value="standard"' in page_text(org.get(f"/migrations/{mid}/edit"))

    for over, words in (({"namespaces": "Shop_NS"}, "Namespaces: one or more namespace names"),
                        ({"target_cluster_id": org.source}, "Target cluster: must differ from the source cluster"),
                        ({"repository_id": "999999"}, "Repository: choose one of yours"),
                        ({"class:shop/data": "Not A Class"}, "Target StorageClass: choose one of the target")):
        r = org.post(f"/migrations/{mid}", dict(data, **over))
        assert r.status_code == 422 and words in page_text(r), (over, page_text(r)[-800:])
    assert sql(stack, "SELECT namespaces FROM stowage.migration_plans WHERE id = %s", (mid,))[0][0] == ["shop"]

    r = org.post(f"/migrations/{mid}", dict(data, namespaces="shop, blog", keep_source_running="on",
                                            notify_emails="ops@example.test", **{"class:shop/data": "fast"}))
    assert r.status_code == 303 and r.headers["Location"] == f"/migrations/{mid}", page_text(r)[-1500:]
    assert sql(stack, "SELECT name, namespaces, keep_source_running, storage_classes FROM stowage.migration_plans "
                      "WHERE id = %s", (mid,))[0] == ("move-shop", ["shop", "blog"], True, {"shop/data": "fast"})
    assert audit(stack, org, "migration.update") == [("move-shop",)]
    assert org.json(f"/migrations/{mid}/edit").json()["fields"]["notify_emails"]["value"] == "ops@example.test"

    job = running_job(stack, org, "migration_plan_id", mid)
    for r in (org.json(f"/migrations/{mid}/edit"), org.post(f"/migrations/{mid}", data),
              org.post(f"/migrations/{mid}/edit", data)):
        assert r.status_code == 409 and f"job #{job}" in page_text(r), page_text(r)[-500:]
    sql(stack, "UPDATE stowage.jobs SET state = 'cancelled', finished_at = now() WHERE id = %s", (job,))

    assert other.json(f"/migrations/{mid}/edit").status_code == 404
    assert other.post(f"/migrations/{mid}", data).status_code == 404
    assert sql(stack, "SELECT namespaces FROM stowage.migration_plans WHERE id = %s", (mid,))[0][0] == ["shop", "blog"]
