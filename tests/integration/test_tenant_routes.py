"""The tenant boundary at the console's front door, route by route from the routing table.

Another organisation's admin, signed in and with an admin API token, asks every route that
names a row by id with this organisation's ids: each GET and each POST is answered exactly as
an id that no organisation has (a 404, or a refusal that comes before any lookup), and not a
row of this organisation changed. This organisation's viewer and operator ask every route their
role may not: each is a 403, and nothing changed. A route added to the table is in the sweep
without a line here; one that answers anything but the refusal fails it by name."""
import re

import pytest
from psycopg2 import sql

from automation_world import World, create_token
from conftest import CSRF_RE, Client, unique
from test_api_doc import routing_table

pytest_plugins = ["fixtures_testenv"]

CSRF_JSON_RE = re.compile(r'"csrf":"[^"]*"')

# What each POST sends: the fields its owner would send, so that the refusal comes from the
# lookup of the row and not from a missing field. "C" stands for the intruder's own cluster.
BODIES = {
    "/members/:id/role": {"role": "viewer"},
    "/clusters/:id": {"name": "taken", "api_url": "https://127.0.0.1:6443", "token": "t", "ca_pem": "",
                      "save_unverified": "on"},
    "/clusters/:id/limits": {"time_zone": "UTC", "concurrency": "1", "bandwidth": ""},
    "/repositories/:id": {"name": "taken", "kind": "s3-compatible", "bucket": "taken", "region": "us-east-1",
                          "endpoint": "http://127.0.0.1:9", "prefix": "", "access_key": "a", "secret_key": "s",
                          "save_unverified": "on"},
    "/hooks/:id": {"name": "taken", "description": "", "source": "function run(ctx) end\n"},
    "/hooks/:id/dry-run": {"cluster_id": "C", "namespace": "default", "phase": "pre-backup", "params": ""},
    "/backup-plans/:id/backup": {"confirm": "yes"},
    "/backup-plans/:id/test-restore": {"cluster_id": "C", "schedule": "", "hook_script": ""},
    "/restore-plans/:id/activate": {"confirm": "yes"},
    "/migrations/:id/migrate": {"confirm": "on"},
    "/migrations/:id/cutover": {"confirm": "on"},
    "/backups/:id/test-restore": {"cluster_id": "C"},
}
# An id no organisation has: a foreign row must be answered exactly as this one is.
MISSING = 2147480000
# The one route whose :id is not a row of an organisation: a sign-in under way, bound to the
# browser that started it (test_sso.py).
NOT_A_ROW = {"/sso/finish/:id"}


@pytest.fixture(scope="module")
def world(stack, testenv):
    return World(stack, testenv)


def ids_of(world):
    members = world.client.json("/members").json()["members"]
    tokens = world.client.json("/tokens").json()["tokens"]
    return {"/clusters/": world.source_id, "/repositories/": world.tenant.repository_id,
            "/backup-plans/": world.plan_id, "/restore-plans/": world.restore_plan_id,
            "/jobs/": world.job_id, "/hooks/": world.hook_id, "/migrations/": world.migration_id,
            "/requests/": world.request_id, "/backups/": world.backup_id,
            "/members/": [m for m in members if m["is_me"]][0]["id"], "/tokens/": tokens[0]["id"]}


def with_ids(pattern, ids):
    """(the path naming the world's row, that row's id)."""
    for prefix, value in ids.items():
        if pattern.startswith(prefix):
            return pattern.replace(":id", str(value), 1), value
    raise AssertionError(f"{pattern}: no row of the world for its :id; add one to ids_of()")


# What using an API token writes, and nothing else does: its last use, and the audit's entry of it.
TOKEN_USE = {"api_tokens": ("last_used_at", "true"), "audit_log": ("", "action <> 'token.use'")}


def snapshot(world):
    """Every row of the organisation, table by table: (count, digest of the rows), but for what
    a token's use writes."""
    tables = [r[0] for r in world.tenant.sql(
        "SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t "
        "USING (table_schema, table_name) WHERE c.table_schema = 'stowage' AND c.column_name = 'org_id' "
        "AND t.table_type = 'BASE TABLE' ORDER BY 1")]
    assert len(tables) > 20, tables
    rows = {}
    for table in tables:
        column, keep = TOKEN_USE.get(table, ("", "true"))
        query = sql.SQL("SELECT count(*), md5(coalesce(string_agg((to_jsonb(t) - %s)::text, '|' "
                        "ORDER BY (to_jsonb(t) - %s)::text), '')) FROM stowage.{} t WHERE org_id = %s AND "
                        + keep).format(sql.Identifier(table))
        rows[table] = world.tenant.sql_one(query, (column, column, world.tenant.org_id))
    return rows


def changed(before, after):
    return sorted(t for t in before if before[t] != after[t])


def normalised(r, path, row):
    """An answer without what differs between any two answers: the path and the id asked, a fresh
    CSRF token of a request without a session."""
    text = r.text.replace(path, "PATH").replace(f'"id":{row},', '"id":ID,')
    text = CSRF_JSON_RE.sub('"csrf":""', CSRF_RE.sub('name="_csrf" value=""', text))
    return r.status_code, text, r.headers.get("Location", "")


def test_another_organisation_meets_a_404_on_every_route_that_names_a_row(stack, world, testenv):
    ids = ids_of(world)
    intruder = Client(stack)
    intruder.signup(unique("Intruder Org "), unique("intruder") + "@example.test")
    robot = Client(stack)  # the same organisation through the JSON API, with an admin token
    robot.http.headers.update({"Authorization": "Bearer " + create_token(intruder, unique("intruder-"), "admin"),
                               "Accept": "application/json"})
    with open(testenv["TARGET_CA_FILE"]) as f:
        ca = f.read()
    assert intruder.post("/clusters", {"name": "mine", "api_url": testenv["TARGET_API_URL"],
                                       "token": testenv["TARGET_ADMIN_TOKEN"], "ca_pem": ca}).status_code == 303
    own_cluster = str(intruder.json("/clusters").json()["clusters"][0]["id"])
    before = snapshot(world)
    asked, found, wrong = 0, 0, []
    for method, pattern, flags in routing_table():
        if ":id" not in pattern or pattern in NOT_A_ROW:
            continue
        data = {k: own_cluster if v == "C" else v for k, v in BODIES.get(pattern, {}).items()}
        for who in (intruder, robot):
            answers = []
            for path, row in with_ids(pattern, ids), (pattern.replace(":id", str(MISSING), 1), MISSING):
                # a page that asks a runner is followed to the runner's answer
                if method == "GET":
                    r = who.get(path)
                elif who is intruder:
                    r = who.post(path, data)
                else:
                    kw = {"allow_redirects": False}
                    r = who.settle(who.http.post(stack.url + path, data=data, **kw), path, data, kw)
                answers.append(normalised(r, path, row))
            (status, text, location), missing = answers
            how = "session" if who is intruder else "token"
            if (status, text, location) != missing:
                at = next((i for i, (a, b) in enumerate(zip(text, missing[1])) if a != b), 0)
                wrong.append(f"{method} {pattern} ({how}): {status} {location} {text[at - 100:at + 200]!r}, "
                             f"but for a missing id {missing[0]} {missing[2]} {missing[1][at - 100:at + 200]!r}")
            found += status == 404
        asked += 1
    assert not wrong, "\n".join(wrong)
    # the sweep reached the lookups: a token meets 403 only on a person's pages
    assert asked >= 50 and found >= 2 * asked - 10, (asked, found)
    assert changed(before, snapshot(world)) == []


def test_a_role_meets_a_403_on_every_route_above_it(stack, world):
    ids = ids_of(world)
    tokens = {"viewer": world.viewer_token, "operator": world.operator_token}
    before = snapshot(world)
    refused = 0
    for method, pattern, flags in routing_table():
        if "ROUTE_PUBLIC" in flags or "ROUTE_PERSON" in flags:
            continue
        above = {"viewer": "ROUTE_OPERATOR" in flags or "ROUTE_ADMIN" in flags,
                 "operator": "ROUTE_ADMIN" in flags}
        path = with_ids(pattern, ids)[0] if ":id" in pattern else pattern
        data = {k: str(world.target_id) if v == "C" else v for k, v in BODIES.get(pattern, {}).items()}
        for role, token in tokens.items():
            if not above[role]:
                continue
            r = world.bearer(method, path, token=token, **({"json": data} if method == "POST" else {}),
                             headers={"Accept": "application/json"})
            assert r.status_code == 403, f"{role}: {method} {path}: {r.status_code} {r.text[:200]}"
            refused += 1
    assert refused >= 60, refused
    assert changed(before, snapshot(world)) == []
