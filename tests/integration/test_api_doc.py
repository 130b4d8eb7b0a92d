"""docs/api.md cannot drift from the code: every route of the routing table is documented and
nothing else is; every GET route, fetched as JSON from the real stack (with an API token, a
browser session or anonymously, as the route wants), has exactly the documented top-level keys
and item keys; every field a POST section names is a field the code knows."""
import glob
import os
import re

import pytest

from automation_world import World
from conftest import TOP, Client, unique

pytest_plugins = ["fixtures_testenv"]

COMMON = {"csrf", "me", "org", "title", "flash"}
KEY_RE = re.compile(r"^[a-z][a-z0-9_<>]*\??$")


def routing_table():
    with open(os.path.join(TOP, "src", "web", "routes.c")) as f:
        text = f.read()
    table = text[text.index("web_routes[] = {"):text.index("};", text.index("web_routes[] = {"))]
    return [(m, p, flags) for m, p, _, flags in
            re.findall(r'\{ "(GET|POST)", "([^"]+)", (\w+), ([^}]+?) \}', table)]


def doc_sections():
    """{(method, path): section text}."""
    with open(os.path.join(TOP, "docs", "api.md")) as f:
        text = f.read()
    parts = re.split(r"^### `(GET|POST) ([^`]+)`\n", text, flags=re.M)
    sections = {}
    for i in range(1, len(parts), 3):
        body = re.split(r"^## ", parts[i + 2], flags=re.M)[0]
        assert (parts[i], parts[i + 1]) not in sections, f"{parts[i]} {parts[i + 1]} documented twice"
        sections[(parts[i], parts[i + 1])] = body
    return sections


def ticked(text):
    """The key names in text; a parenthesis explains (values, units), it names no key."""
    text = re.sub(r"\([^()]*\)", "", text)
    return [t for t in re.findall(r"`([^`]+)`", text) if KEY_RE.match(t)]


def documented_keys(sections, route):
    """(top-level keys, {list or object name: keys}) of a GET section; 'as `GET x`' includes x's."""
    body = sections[route]
    top, nested = set(), {}
    for paragraph in body.split("\n\n"):
        if "Keys:" in paragraph:
            text = paragraph[paragraph.index("Keys:") + 5:]
            ref = re.search(r"as `GET ([^`]+)`", text)
            if ref:
                top |= documented_keys(sections, ("GET", ref.group(1)))[0]
            top |= set(ticked(text))
        m = re.match(r"`([a-z_]+)(\[\]|\{\})`: (.*)", paragraph.strip(), re.S)
        if m and "`GET " not in m.group(3):
            nested[m.group(1)] = set(ticked(m.group(3)))
    return top, nested


def check_keys(where, actual, documented):
    actual = {("state_<state>" if k.startswith("state_") else k) for k in actual}
    required = {k for k in documented if not k.endswith("?")}
    optional = {k.rstrip("?") for k in documented if k.endswith("?")}
    missing = required - actual
    extra = actual - required - optional
    assert not missing and not extra, f"{where}: in docs/api.md but not answered: {sorted(missing)}; " \
                                      f"answered but not in docs/api.md: {sorted(extra)}"


def test_every_route_is_documented_and_every_documented_route_exists():
    routes = {(m, p) for m, p, _ in routing_table()}
    documented = set(doc_sections())
    assert len(routes) > 60
    assert not routes - documented, f"routes missing from docs/api.md: {sorted(routes - documented)}"
    assert not documented - routes, f"docs/api.md documents routes that do not exist: {sorted(documented - routes)}"


def test_every_documented_post_field_is_a_field_of_the_code():
    literals = set()
    for path in glob.glob(os.path.join(TOP, "src", "web", "*.c")):
        with open(path) as f:
            literals |= set(re.findall(r'"([a-z_0-9-]+)"', f.read()))
    for (method, path), body in doc_sections().items():
        if method != "POST":
            continue
        for name in ticked(body):
            assert name.rstrip("?") in literals, f"POST {path}: docs/api.md names `{name}`, which no web source knows"


@pytest.fixture(scope="module")
def world(stack, testenv):
    return World(stack, testenv)


def links(stack, world):
    """Live one-time links for the public pages that need one."""
    newcomer = Client(stack)
    email = unique("doc-new") + "@example.test"
    n = newcomer.signup_unconfirmed(unique("Doc Org "), email)
    confirm = stack.mail.link(email, "/confirm/", n)
    invitee = unique("doc-invitee") + "@example.test"
    assert world.client.post("/members", {"email": invitee, "display_name": "I", "role": "viewer"}).status_code == 303
    invitation = stack.mail.link(invitee, "/invitations/", 1)
    owner = Client(stack)
    owner_email = unique("doc-owner") + "@example.test"
    owner.signup(unique("Doc Owner Org "), owner_email)
    assert Client(stack).post("/password/forgot", {"email": owner_email}).status_code == 200
    reset = stack.mail.link(owner_email, "/password/reset/", 1)
    return {"/confirm/:token": confirm, "/invitations/:token": invitation, "/password/reset/:token": reset}


def test_every_get_route_answers_the_documented_keys(stack, world):
    sections = doc_sections()
    ids = {"/clusters/:id": world.source_id, "/repositories/:id": world.tenant.repository_id,
           "/backup-plans/:id": world.plan_id, "/restore-plans/:id": world.restore_plan_id,
           "/jobs/:id": world.job_id, "/hooks/:id": world.hook_id, "/migrations/:id": world.migration_id,
           "/requests/:id": world.request_id, "/backups/:id": world.backup_id}
    tokens = links(stack, world)
    # a bandwidth window, so that the limits page's rules[] has an item to check
    assert world.client.post(f"/clusters/{world.source_id}/limits", {
        "time_zone": "UTC", "concurrency": "", "bandwidth": "both 100GB/s sun 03:00-03:01"}).status_code == 303
    queries = {"/schedule/preview": "?kind=daily&at=03:00&tz=Europe/Paris"}
    checked = 0
    for method, pattern, flags in routing_table():
        # /requests/:id answers as the page that asked; a diagnostics bundle exists once gathered;
        # the single sign-on's return pages need a provider's round trip (test_sso.py); a backup's
        # object is read by a runner for a named object, its archive once downloaded (test_backup_day_two.py)
        if method != "GET" or pattern in ("/requests/:id", "/jobs/:id/diagnostics.tar.gz", "/sso/callback",
                                          "/sso/finish/:id", "/jobs/:id/archive.tar.gz", "/backups/:id/object"):
            continue
        path = tokens.get(pattern, pattern)
        for prefix, value in ids.items():
            if path.startswith(prefix):
                path = path.replace(":id", str(value))
        path += queries.get(pattern, "")
        if "ROUTE_PUBLIC" in flags:
            r = Client(stack).json(path)
        elif "ROUTE_PERSON" in flags:
            r = world.client.json(path)
        else:
            r = world.bearer("GET", path)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:300]}"
        if pattern.endswith(".txt"):
            assert r.headers["Content-Type"].startswith("text/plain") and "text/plain" in sections[(method, pattern)]
            continue
        assert r.headers["Content-Type"].startswith("application/json"), path
        body = r.json()
        top, nested = documented_keys(sections, (method, pattern))
        actual = {k for k in body if k not in COMMON and not k.startswith("nav_")}
        check_keys(f"GET {pattern}", actual, top)
        for name, keys in nested.items():
            value = body.get(name)
            if isinstance(value, list):
                assert value, f"GET {path}: `{name}` is empty, so its items cannot be checked"
                value = value[0]
            assert isinstance(value, dict), f"GET {path}: `{name}` is not a list of objects or an object"
            check_keys(f"GET {pattern} {name}", set(value), keys)
        checked += 1
    assert checked >= 30
