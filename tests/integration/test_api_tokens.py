"""API tokens against the real stack (nginx, FastCGI workers, PostgreSQL): created once by an admin,
Authorization: Bearer on the console's own JSON routes, the same roles and row-level security,
no CSRF for a bearer request but never for a cookie that rides along, every use audited."""
import re

import psycopg2
import requests

from conftest import Client, unique

HOOK = "function run(ctx) log('hello') end\n"


def create_token(c, name, role, days=None):
    data = {"name": name, "role": role}
    if days is not None:
        data["expires_in_days"] = str(days)
    r = c.post("/tokens", data)
    assert r.status_code == 201, f"{r.status_code} {r.text[:500]}"
    m = re.search(r'<code id="new-token">(stw_[A-Za-z0-9_-]{43})</code>', r.text)
    assert m, r.text[:1000]
    return m.group(1)


def bearer(stack, method, path, token, **kw):
    headers = dict(kw.pop("headers", {}))
    headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, stack.url + path, headers=headers, allow_redirects=False, timeout=30, **kw)


def test_token_is_shown_once_stored_hashed_and_works_on_json_routes(stack, admin):
    token = create_token(admin, unique("ci-"), "operator")
    # shown once: the list never carries it
    listing = admin.json("/tokens").json()
    assert token not in str(listing) and token not in admin.get("/tokens").text
    assert listing["tokens"][0]["prefix"] == token[:8]
    owner = psycopg2.connect(stack.pg_dsn_owner)
    with owner, owner.cursor() as cur:
        cur.execute("SELECT encode(token_hash, 'hex'), prefix FROM stowage.api_tokens WHERE prefix = %s", (token[:8],))
        rows = cur.fetchall()
    owner.close()
    import hashlib
    assert (hashlib.sha256(token.encode()).hexdigest(), token[:8]) in rows
    # the same routes the console uses, as JSON without asking, and no CSRF token for a POST
    r = bearer(stack, "GET", "/clusters", token)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json"), r.text[:300]
    assert r.json()["org"]["name"] == admin.org and "Set-Cookie" not in r.headers
    name = unique("tok-hook-")
    r = bearer(stack, "POST", "/hooks", token, json={"name": name, "source": HOOK})
    assert r.status_code == 303, r.text[:300]
    assert any(h["name"] == name for h in admin.json("/hooks").json()["hooks"])
    # last use listed, every use audited (the refused POST below as well)
    t = [t for t in admin.json("/tokens").json()["tokens"] if t["prefix"] == token[:8]][0]
    assert t["last_used"] and t["state"] == "active"
    uses = [e for e in admin.json("/audit").json()["entries"] if e["action"] == "token.use"]
    assert any('"/hooks"' in e["detail"] and '"POST"' in e["detail"] for e in uses)
    created = [e for e in admin.json("/audit").json()["entries"] if e["action"] == "hook.create" and e["target"] == name]
    assert created and created[0]["user"] == admin.email


def test_wrong_expired_and_revoked_tokens_are_refused(stack, admin):
    good = create_token(admin, unique("soon-"), "viewer", days=1)
    assert bearer(stack, "GET", "/clusters", good).status_code == 200
    for bad in ("stw_" + "A" * 43, good[:-1] + ("A" if good[-1] != "A" else "B"), "not-a-token", good[4:]):
        r = bearer(stack, "GET", "/clusters", bad)
        assert r.status_code == 401, (bad, r.status_code)
        assert r.json()["error"]["message"] == "The API token is unknown, revoked or expired."
        assert "invalid_token" in r.headers["WWW-Authenticate"]
    # another scheme is refused too, not ignored
    r = requests.get(stack.url + "/clusters", headers={"Authorization": f"Basic {good}"}, allow_redirects=False)
    assert r.status_code == 401
    # expired: moved into the past by the database's owner
    owner = psycopg2.connect(stack.pg_dsn_owner)
    with owner, owner.cursor() as cur:
        cur.execute("UPDATE stowage.api_tokens SET created_at = now() - interval '3 days', "
                    "expires_at = now() - interval '1 second' WHERE prefix = %s", (good[:8],))
    owner.close()
    assert bearer(stack, "GET", "/clusters", good).status_code == 401
    states = {t["prefix"]: t["state"] for t in admin.json("/tokens").json()["tokens"]}
    assert states[good[:8]] == "expired"
    # revoked
    other = create_token(admin, unique("revoke-me-"), "operator")
    assert bearer(stack, "GET", "/", other).status_code == 200
    tid = [t for t in admin.json("/tokens").json()["tokens"] if t["prefix"] == other[:8]][0]["id"]
    assert admin.post(f"/tokens/{tid}/revoke", {}).status_code == 303
    assert bearer(stack, "GET", "/", other).status_code == 401
    refused = [e for e in admin.json("/audit").json()["entries"] if e["action"] == "token.refused"]
    assert any('"revoked"' in e["detail"] for e in refused) and any('"expired"' in e["detail"] for e in refused)


def test_viewer_token_cannot_post_and_token_never_exceeds_its_creator(stack, admin):
    viewer = create_token(admin, unique("view-"), "viewer")
    assert bearer(stack, "GET", "/hooks", viewer).status_code == 200
    r = bearer(stack, "POST", "/hooks", viewer, json={"name": unique("nope-"), "source": HOOK})
    assert r.status_code == 403 and "Your role (viewer)" in r.json()["error"]["message"]
    # an operator token cannot manage members (admin routes)
    op = create_token(admin, unique("op-"), "operator")
    r = bearer(stack, "POST", "/members", op, json={"email": unique("x") + "@x.test", "display_name": "X", "role": "admin"})
    assert r.status_code == 403
    # an admin token made by an admin who is then demoted to viewer acts as a viewer
    second = admin.invite(unique("second") + "@x.test", "admin", "second password", name="Second Admin")
    strong = create_token(second, unique("strong-"), "admin")
    assert bearer(stack, "GET", "/", strong).json()["me"]["role"] == "admin"
    sid = [m for m in admin.json("/members").json()["members"] if m["email"] == second.email][0]["id"]
    assert admin.post(f"/members/{sid}/role", {"role": "viewer"}).status_code == 303
    assert bearer(stack, "GET", "/", strong).json()["me"]["role"] == "viewer"
    assert bearer(stack, "POST", "/hooks", strong, json={"name": unique("nope-"), "source": HOOK}).status_code == 403
    # removed from the organisation: the token ends
    assert admin.post(f"/members/{sid}/remove", {}).status_code == 303
    assert bearer(stack, "GET", "/", strong).status_code == 401


def test_token_of_one_organisation_sees_nothing_of_another(stack, admin):
    other = Client(stack)
    other.org, other.email = unique("Other "), unique("other") + "@x.test"
    other.signup(other.org, other.email)
    secret_hook = unique("other-secret-")
    assert other.post("/hooks", {"name": secret_hook, "source": HOOK}).status_code == 303
    other_hook = [h for h in other.json("/hooks").json()["hooks"] if h["name"] == secret_hook][0]["id"]
    token = create_token(admin, unique("iso-"), "admin")
    for path in ("/hooks", "/audit", "/members", "/clusters", "/backup-plans", "/tokens"):
        r = bearer(stack, "GET", path, token)
        assert other.org not in r.text and secret_hook not in r.text and other.email not in r.text, path
    assert bearer(stack, "GET", f"/hooks/{other_hook}", token).status_code == 404
    assert bearer(stack, "POST", f"/hooks/{other_hook}/delete", token, json={}).status_code == 404
    assert any(h["name"] == secret_hook for h in other.json("/hooks").json()["hooks"])


def test_token_management_and_password_need_a_person(stack, admin):
    token = create_token(admin, unique("admin-"), "admin")
    for method, path in (("GET", "/tokens"), ("POST", "/tokens"), ("GET", "/account"),
                         ("POST", "/account/password"), ("POST", "/signout"), ("POST", "/signin")):
        r = bearer(stack, method, path, token, json={})
        assert r.status_code == 403, (method, path, r.status_code)


def test_csrf_still_required_for_cookie_sessions_even_with_a_bearer(stack, admin):
    token = create_token(admin, unique("both-"), "admin")
    name = unique("csrf-")
    # a cookie session without CSRF token: refused, as before
    r = admin.http.post(stack.url + "/hooks", data={"name": name, "source": HOOK}, allow_redirects=False)
    assert r.status_code == 403
    # the same cookie plus a valid bearer: refused outright, the cookie gets no exemption
    r = admin.http.post(stack.url + "/hooks", data={"name": name, "source": HOOK},
                        headers={"Authorization": f"Bearer {token}"}, allow_redirects=False)
    assert r.status_code == 400 and "not both" in r.json()["error"]["message"]
    # a stale or forged session cookie counts too
    r = requests.post(stack.url + "/hooks", data={"name": name, "source": HOOK},
                      headers={"Authorization": f"Bearer {token}", "Cookie": "stowage_session=x"},
                      allow_redirects=False)
    assert r.status_code == 400
    assert not any(h["name"] == name for h in admin.json("/hooks").json()["hooks"])
    # a token on a public route, and an anonymous POST, stay refused
    assert bearer(stack, "POST", "/signup", token, data={}).status_code == 403
    anon = requests.post(stack.url + "/hooks", data={"name": name, "source": HOOK}, allow_redirects=False)
    assert anon.status_code in (303, 403)
