"""The foundation against real PostgreSQL and real nginx: sign-up, sign-in, sessions, CSRF,
roles, tenant isolation in the database itself, input limits, escaping, JSON answers."""
import http.client
import os
import re
import signal
import subprocess
import tempfile
import time

import psycopg2
import psycopg2.errors
import pytest
import requests

from conftest import BUILD, TOP, Client, own_stack, unique


def add_cluster_row(cur, name, email):
    """A cluster row straight in the database (as the owner), in the organisation of the user
    with this email: a page's rows without registering a cluster."""
    cur.execute("INSERT INTO stowage.clusters (org_id, name, api_url, token_enc, key_id) "
                "SELECT m.org_id, %s, 'https://k8s.example.com:6443', '\\x00', 'test' "
                "FROM stowage.memberships m JOIN stowage.users u ON u.id = m.user_id WHERE u.email = %s",
                (name, email))


def test_signup_lands_signed_in_on_the_overview(admin):
    r = admin.get("/")
    assert r.status_code == 200
    assert admin.org in r.text
    assert "Welcome to Stowage" in r.text  # the flash message, shown once
    assert "Welcome to Stowage" not in admin.get("/").text


def test_session_cookie_is_httponly_and_samesite(stack):
    c = Client(stack)
    r = c.signup(unique("Cookie "), unique("c") + "@x.test")  # the confirmation signs in
    cookie = [h for h in r.raw.headers.getlist("Set-Cookie") if h.startswith("stowage_session=")][0]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie


def test_protected_page_without_session_redirects_to_signin(client):
    r = client.get("/members")
    assert r.status_code == 303
    assert r.headers["Location"] == "/signin?next=%2Fmembers"
    assert client.json("/members").status_code == 401


def test_signin_wrong_password_then_right_one(stack, admin):
    c = Client(stack)
    r = c.post("/signin", {"email": admin.email, "password": "wrong password!"})
    assert r.status_code == 422
    assert "Email or password is wrong." in r.text
    r = c.post("/signin", {"email": admin.email, "password": "correct horse battery", "_next": "/audit"})
    assert r.status_code == 303 and r.headers["Location"] == "/audit"
    assert c.get("/audit").status_code == 200


def test_signin_never_redirects_to_another_site(stack, admin):
    c = Client(stack)
    r = c.post("/signin", {"email": admin.email, "password": "correct horse battery", "_next": "//evil.example/x"})
    assert r.status_code == 303 and r.headers["Location"] == "/"


def test_signout_ends_the_session(admin):
    assert admin.post("/signout", {}).status_code == 303
    assert admin.get("/").status_code == 303


def test_post_without_csrf_token_is_refused(stack, admin):
    r = admin.http.post(stack.url + "/members", data={"email": "x@y.test", "display_name": "X",
                                                       "role": "viewer", "password": "long enough pw"},
                        allow_redirects=False)
    assert r.status_code == 403
    r = admin.post("/members", {"email": "x@y.test", "display_name": "X", "role": "viewer",
                                "password": "long enough pw", "_csrf": "A" * 43})
    assert r.status_code == 403
    anonymous = requests.post(stack.url + "/signin", data={"email": admin.email, "password": "x"},
                              allow_redirects=False)
    assert anonymous.status_code == 403


def test_form_errors_name_the_field(client):
    r = client.post("/signup", {"org": "", "display_name": "A", "email": "not-an-email", "password": "short"})
    assert r.status_code == 422
    assert "Organisation: required" in r.text
    assert "Email: not an email address" in r.text
    assert "Password:" in r.text


def test_html_is_escaped(stack):
    c = Client(stack)
    org = unique("<script>alert('x')</script> & Co ")
    c.signup(org, unique("esc") + "@x.test")
    page = c.get("/").text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co" in page


def test_same_route_answers_json(admin):
    r = admin.json("/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["org"]["name"] == admin.org
    assert body["me"]["role"] == "admin"
    assert "password" not in r.text


def test_json_body_is_accepted_with_csrf_header(stack, admin):
    token = admin.csrf()
    email = unique("json") + "@x.test"
    r = admin.http.post(stack.url + "/members", json={"email": email, "display_name": "J", "role": "viewer"},
                        headers={"X-CSRF-Token": token, "Accept": "application/json"}, allow_redirects=False)
    assert r.status_code == 303, r.text
    assert any(m["email"] == email for m in admin.json("/members").json()["invitations"])


def test_viewer_cannot_change_anything(stack, admin):
    email = unique("viewer") + "@x.test"
    v = admin.invite(email, "viewer", "viewer password", name="V")
    assert v.get("/members").status_code == 200
    r = v.post("/members", {"email": unique("z") + "@x.test", "display_name": "Z", "role": "admin"})
    assert r.status_code == 403
    assert "Your role (viewer) does not allow this" in r.text
    me = [m for m in v.json("/members").json()["members"] if m["email"] == email][0]
    assert v.post(f"/members/{me['id']}/role", {"role": "admin"}).status_code == 403
    assert v.json("/").json()["me"]["can_write"] is False


def test_last_admin_cannot_be_demoted(admin):
    me = [m for m in admin.json("/members").json()["members"] if m["is_me"]][0]
    r = admin.post(f"/members/{me['id']}/role", {"role": "viewer"})
    assert r.status_code == 409
    assert admin.json("/").json()["me"]["role"] == "admin"


def test_tenant_cannot_reach_another_tenants_rows_by_guessing_ids(stack, admin):
    other = Client(stack)
    other.org, other.email = unique("Other "), unique("other") + "@x.test"
    other.signup(other.org, other.email)
    other_id = [m for m in other.json("/members").json()["members"] if m["is_me"]][0]["id"]
    # admin of the first organisation aims at the other organisation's admin by id
    assert admin.post(f"/members/{other_id}/role", {"role": "viewer"}).status_code == 404
    assert admin.post(f"/members/{other_id}/remove", {}).status_code == 404
    assert other.json("/").json()["me"]["role"] == "admin"
    emails = [m["email"] for m in admin.json("/members").json()["members"]]
    assert other.email not in emails
    audit = admin.json("/audit").json()["entries"]
    assert all(other.org not in e["target"] for e in audit)


def test_row_level_security_hides_every_tenant_row_without_a_tenant(stack, admin):
    conn = psycopg2.connect(stack.pg_dsn_app)
    conn.autocommit = False
    cur = conn.cursor()
    for table in ("orgs", "users", "memberships", "sessions", "audit_log"):
        cur.execute(f"SELECT count(*) FROM stowage.{table}")
        assert cur.fetchone()[0] == 0, f"{table} visible without a tenant"
    conn.rollback()
    # Bound to the first organisation: only its rows, whatever the WHERE clause says.
    cur.execute("SELECT id FROM stowage.orgs WHERE name = %s", (admin.org,))
    assert cur.fetchall() == []  # not visible before binding either
    conn.rollback()
    owner = psycopg2.connect(stack.pg_dsn_owner)
    ocur = owner.cursor()
    ocur.execute("SELECT id FROM stowage.orgs WHERE name = %s", (admin.org,))
    org_id = ocur.fetchone()[0]
    ocur.execute("SELECT count(DISTINCT org_id) FROM stowage.memberships")
    assert ocur.fetchone()[0] >= 2  # the owner sees several tenants, so the next check means something
    owner.close()
    cur.execute("SELECT set_config('app.org_id', %s, true)", (str(org_id),))
    cur.execute("SELECT DISTINCT org_id FROM stowage.memberships")
    assert cur.fetchall() == [(org_id,)]
    cur.execute("SELECT DISTINCT org_id FROM stowage.audit_log")
    assert cur.fetchall() == [(org_id,)]
    # Writing into another tenant is refused by the policy.
    with pytest.raises(psycopg2.Error):
        cur.execute("INSERT INTO stowage.audit_log (org_id, action) VALUES (%s, 'x.y')", (org_id + 100000,))
    conn.rollback()
    conn.close()


def test_every_table_sits_behind_row_level_security(stack):
    """The catalog, not a list kept by hand: a migration that adds a table without row-level
    security, a tenant table whose policy does not bind it to the request's organisation, a
    reference between tenant tables without org_id in it, a view
    (which reads as its owner, past the policies), a role the processes connect as that could
    skip the policies, or a definer function anyone may call, fails here."""
    conn = psycopg2.connect(stack.pg_dsn_owner)
    cur = conn.cursor()
    cur.execute("SELECT c.relname, c.relkind, c.relrowsecurity, pg_get_userbyid(c.relowner), "
                "EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id' "
                "AND NOT a.attisdropped) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'stowage' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')")
    relations = cur.fetchall()
    assert len(relations) >= 25  # the schema is there, so the checks below mean something
    for name, kind, rls, owner, has_org in relations:
        assert kind in ("r", "p"), f"{name}: a view or foreign table in the tenant schema ({kind})"
        assert rls, f"{name}: row-level security is off"
        assert owner == "stowage_owner", f"{name}: owned by {owner}"
    tenant_tables = {name for name, _, _, _, has_org in relations if has_org}
    assert {"clusters", "repositories", "backups", "jobs", "job_items", "sessions"} <= tenant_tables
    cur.execute("SELECT c.relname, p.polname, pg_get_expr(p.polqual, p.polrelid), "
                "pg_get_expr(p.polwithcheck, p.polrelid), p.polcmd FROM pg_policy p "
                "JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'stowage'")
    policies = cur.fetchall()
    assert len(policies) >= 20
    for table, policy, using, check, command in policies:
        for expr in (using, check):
            assert expr is None or "current_org()" in expr, f"{table}.{policy}: {expr} does not bind the tenant"
        assert using is not None or command == "a", f"{table}.{policy}: no USING, so every tenant's rows"
    # A reference from one tenant table to another carries org_id with it, so that a row cannot
    # point at another organisation's (a plain (job_id) key beside an (org_id, job_id) one is fine).
    cur.execute("WITH fk AS (SELECT con.conname, con.conrelid, con.confrelid, ARRAY(SELECT a.attname FROM "
                "unnest(con.conkey) k JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k) AS cols "
                "FROM pg_constraint con WHERE con.contype = 'f' AND con.connamespace = 'stowage'::regnamespace) "
                "SELECT f.conrelid::regclass::text, f.conname, f.confrelid::regclass::text FROM fk f "
                "WHERE f.confrelid <> f.conrelid AND NOT 'org_id' = ANY (f.cols) AND NOT EXISTS (SELECT 1 FROM fk g "
                "WHERE g.conrelid = f.conrelid AND g.confrelid = f.confrelid AND 'org_id' = ANY (g.cols) "
                "AND g.cols @> f.cols)")
    unbound = [(a, c, b) for a, c, b in cur.fetchall()
               if a.split(".")[-1] in tenant_tables and b.split(".")[-1] in tenant_tables]
    assert unbound == [], f"references between tenants' rows without org_id: {unbound}"
    # The roles the processes connect as: no superuser, no policy bypass, no table of their own,
    # and not members of the owner.
    cur.execute("SELECT r.rolname, r.rolsuper, r.rolbypassrls, pg_has_role(r.oid, 'stowage_owner', 'USAGE'), "
                "(SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid) FROM pg_roles r "
                "WHERE r.rolname IN ('stowage_app', 'stowage_runner', 'stowage_scheduler', 'stowage_metrics')")
    roles = cur.fetchall()
    assert len(roles) == 4
    for role, superuser, bypass, owner_member, owns in roles:
        assert not superuser and not bypass and not owner_member and owns == 0, role
    # A definer function runs as the owner, past the policies: its search_path is pinned and only
    # the roles it was granted to may call it.
    cur.execute("SELECT p.proname, pg_get_userbyid(p.proowner), coalesce(array_to_string(p.proconfig, ','), ''), "
                "p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0) "
                "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = 'stowage' AND p.prosecdef")
    definers = cur.fetchall()
    assert len(definers) >= 30
    for name, owner, config, public in definers:
        assert owner == "stowage_owner", f"{name}: owned by {owner}"
        assert "search_path=stowage, pg_temp" in config, f"{name}: search_path not pinned ({config})"
        assert not public, f"{name}: PUBLIC may execute it"
    conn.close()


def test_workers_reusing_prepared_statements_keep_tenants_apart(stack, admin):
    """A web worker prepares each statement once and runs it for every tenant after (generic
    plans after five runs): interleaved requests of two organisations, a forged session and no
    session on the same three workers each see their own rows only, whatever the worker ran
    before."""
    other = Client(stack)
    other.email = unique("other") + "@x.test"
    other.signup(unique("Other "), other.email)
    owner = psycopg2.connect(stack.pg_dsn_owner)
    with owner, owner.cursor() as cur:
        for c in (admin, other):
            c.cluster = unique("cluster-")
            add_cluster_row(cur, c.cluster, c.email)
    forged = Client(stack)
    forged.http.cookies.set("stowage_session", "A" * 43)
    # a real session of the other organisation, expired: its cookie is valid, its row too old
    expired = Client(stack)
    expired.email = unique("expired") + "@x.test"
    expired.signup(unique("Expired "), expired.email)
    with owner, owner.cursor() as cur:
        cur.execute("UPDATE stowage.sessions SET expires_at = now() - interval '1 second' WHERE user_id = "
                    "(SELECT id FROM stowage.users WHERE email = %s)", (expired.email,))
    try:
        for _ in range(20):
            for c in (admin, other):
                r = c.json("/clusters")
                assert r.status_code == 200
                assert [k["name"] for k in r.json()["clusters"]] == [c.cluster]
            assert forged.json("/clusters").status_code == 401
            assert expired.json("/clusters").status_code == 401
            assert Client(stack).json("/clusters").status_code == 401
            for c in (forged, expired):
                page = c.get("/clusters")
                assert page.status_code == 303 and page.headers["Location"].startswith("/signin")
                assert admin.cluster not in page.text and other.cluster not in page.text
    finally:
        # made-up tokens would stop a key rotation of the shared stack
        with owner, owner.cursor() as cur:
            cur.execute("DELETE FROM stowage.clusters WHERE name = ANY(%s)", ([admin.cluster, other.cluster],))
        owner.close()


def test_read_only_pages_commit_and_refuse_writes(stack, admin):
    """A ROUTE_READ_ONLY page (/clusters) runs in a READ ONLY transaction whose COMMIT is sent
    while the page goes out and read by the worker's next request: no web connection is left in
    a transaction, and its worker's next request, a write, commits as before."""
    for _ in range(6):  # every worker (3) answers at least one
        assert admin.json("/clusters").status_code == 200
    # the superuser sees every backend's state (another role sees NULL, which would prove nothing)
    conn = psycopg2.connect(host=os.path.join(stack.root, "pg"), port=stack.pg_port, user="postgres", dbname="stowage")
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stowage-web' AND state = 'idle'")
    assert cur.fetchone()[0] >= 1
    deadline = time.time() + 10
    while True:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stowage-web' "
                    "AND state <> 'idle'")
        if cur.fetchone()[0] == 0:
            break
        assert time.time() < deadline, "a web worker's connection stayed in its transaction"
        time.sleep(0.1)
    name = unique("after-read-only-")
    cur.execute("SELECT count(*) FROM stowage.audit_log")
    before = cur.fetchone()[0]
    email = unique("written") + "@x.test"
    admin.post("/members", {"email": email, "display_name": name, "role": "viewer"})
    cur.execute("SELECT count(*) FROM stowage.audit_log")
    assert cur.fetchone()[0] > before
    # the database itself refuses a write in such a transaction (what the flag promises)
    app = psycopg2.connect(stack.pg_dsn_app)
    acur = app.cursor()
    acur.execute("BEGIN READ ONLY")
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        acur.execute("DELETE FROM stowage.sessions")
    app.rollback()
    app.close()
    conn.close()


def test_session_begin_binds_only_its_own_transaction(stack, admin):
    """session_begin (sql/009) binds the transaction it runs in to the session's tenant, to no
    tenant for an unknown token, and the binding ends with the transaction."""
    token = admin.http.cookies.get("stowage_session")
    conn = psycopg2.connect(stack.pg_dsn_app)
    cur = conn.cursor()
    cur.execute("SELECT org_id, role FROM stowage.session_begin(sha256(convert_to(%s, 'UTF8')))", (token,))
    org_id, role = cur.fetchone()
    assert role == "admin"
    cur.execute("SELECT current_setting('app.org_id'), (SELECT count(*) FROM stowage.orgs)")
    assert cur.fetchone() == (str(org_id), 1)
    conn.commit()
    cur.execute("SELECT coalesce(current_setting('app.org_id', true), ''), (SELECT count(*) FROM stowage.orgs)")
    assert cur.fetchone() == ("", 0)
    cur.execute("SELECT set_config('app.org_id', %s, true)", (str(org_id),))
    cur.execute("SELECT count(*) FROM stowage.session_begin(sha256(convert_to(%s, 'UTF8')))", ("B" * 43,))
    assert cur.fetchone()[0] == 0
    cur.execute("SELECT current_setting('app.org_id'), (SELECT count(*) FROM stowage.orgs)")
    assert cur.fetchone() == ("", 0)
    conn.rollback()
    # NULL (no hash at all) finds no session and unbinds, even over a bound transaction
    cur.execute("SELECT set_config('app.org_id', %s, true)", (str(org_id),))
    cur.execute("SELECT count(*) FROM stowage.session_begin(NULL)")
    assert cur.fetchone()[0] == 0
    cur.execute("SELECT current_setting('app.org_id'), (SELECT count(*) FROM stowage.orgs)")
    assert cur.fetchone() == ("", 0)
    conn.rollback()
    conn.close()


def test_audit_log_records_who_did_what(admin):
    email = unique("audited") + "@x.test"
    admin.post("/members", {"email": email, "display_name": "A", "role": "operator"})
    entries = admin.json("/audit").json()["entries"]
    invite = [e for e in entries if e["action"] == "member.invite" and e["target"] == email]
    assert invite and invite[0]["user"] == admin.email
    assert '"role": "operator"' in invite[0]["detail"]
    assert any(e["action"] == "org.create" for e in entries)


def test_malformed_requests_get_clear_4xx(stack, admin):
    conn = http.client.HTTPConnection("127.0.0.1", stack.http_port)
    conn.request("GET", "/signin?q=%zz")  # sent as is: requests would re-quote it
    resp = conn.getresponse()
    body = resp.read().decode()
    assert resp.status == 400
    assert "%" in body and "q" in body, body  # the reason names the field
    conn.close()
    r = admin.http.post(stack.url + "/members", data=b"x" * 10, headers={"Content-Type": "text/csv"},
                        allow_redirects=False)
    assert r.status_code == 415
    r = admin.http.post(stack.url + "/members", data=b"a=" + b"x" * (3 * 1024 * 1024),
                        headers={"Content-Type": "application/x-www-form-urlencoded"}, allow_redirects=False)
    assert r.status_code == 413
    assert admin.get("/no/such/page").status_code == 404
    assert admin.http.delete(stack.url + "/members", allow_redirects=False).status_code == 405
    # a JSON body's list items are fields too, and its values are counted before it is parsed
    # (a list of a million items was a million parsed nodes and fields, before any sign-in)
    for body in ({"email": [""] * 300}, {"email": "a@x.test", "pad": [0] * 500000}):
        r = requests.post(stack.url + "/signin", json=body, headers={"Accept": "application/json"},
                          allow_redirects=False)
        assert r.status_code == 400 and "more than 256 fields" in r.text, r.text[:300]


def test_security_headers(client):
    r = client.get("/signin")
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/static/stowage.css").status_code == 200


def test_signin_is_rate_limited(stack):
    c = Client(stack)
    token = c.csrf()
    codes = [c.http.post(stack.url + "/signin", data={"email": "nobody@x.test", "password": "x", "_csrf": token},
                         allow_redirects=False).status_code for _ in range(40)]
    assert 429 in codes
    assert codes[0] == 422


def test_migrations_apply_once(stack):
    out = subprocess.run([os.path.join(BUILD, "stowage-migrate"), "-c", stack.conf, "-s", os.path.join(TOP, "sql"),
                          "--status"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "pending" not in out.stdout and "applied 001_foundation.sql" in out.stdout
    again = subprocess.run([os.path.join(BUILD, "stowage-migrate"), "-c", stack.conf, "-s", os.path.join(TOP, "sql")],
                           capture_output=True, text=True)
    assert again.returncode == 0 and "applied" not in again.stderr


def start_own_web(stack, d, env=None):
    """A second stowage-web with the stack's configuration but a socket and counters of its own (a
    second web would otherwise replace the stack's live counters file), 2 workers; returns the
    process and its socket once it listens."""
    sock = os.path.join(d, "w.sock")
    conf = os.path.join(d, "web.conf")
    with open(stack.conf) as src, open(conf, "w") as dst:
        for line in src:
            if not line.startswith(("fcgi_socket", "web_workers", "web_metrics_file")):
                dst.write(line)
        dst.write(f"fcgi_socket = {sock}\nweb_workers = 2\n")
    p = subprocess.Popen([os.path.join(BUILD, "stowage-web"), "-c", conf], stderr=subprocess.PIPE, text=True, env=env)
    for _ in range(100):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    assert os.path.exists(sock)
    return p, sock


def test_web_workers_stop_cleanly_on_sigterm(stack):
    with tempfile.TemporaryDirectory() as d:
        p, sock = start_own_web(stack, d)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
        assert not os.path.exists(sock)
        assert "stopped" in p.stderr.read()


def test_web_runs_with_a_deep_malloc_cache_unless_the_operator_set_one(stack):
    """stowage-web starts itself again once with glibc.malloc.tcache_count (web_main.c) ahead of the
    tunables an operator set, in the parent and so in every worker; an operator's own count stays.
    (/proc/PID/environ shows the first tunable only: glibc parses the variable in place.)"""
    for given, seen in [("glibc.malloc.trim_threshold=262144", b"glibc.malloc.tcache_count=4096"),
                        ("glibc.malloc.tcache_count=100", b"glibc.malloc.tcache_count=100")]:
        with tempfile.TemporaryDirectory() as d:
            p, _ = start_own_web(stack, d, dict(os.environ, GLIBC_TUNABLES=given))
            try:
                for _ in range(100):
                    workers = open(f"/proc/{p.pid}/task/{p.pid}/children").read().split()
                    if len(workers) == 2:
                        break
                    time.sleep(0.05)
                assert len(workers) == 2
                for pid in [p.pid] + [int(w) for w in workers]:
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        environ = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
                    assert environ[b"GLIBC_TUNABLES"] == seen, (given, pid)
            finally:
                p.send_signal(signal.SIGTERM)
                assert p.wait(timeout=10) == 0


def test_route_query_failure_opens_the_request_again_without_it():
    """/clusters' query rides in the pipeline that opens the request (route_query in routes.c).
    When it fails there, the request is opened again without it and the page runs it itself: a
    migration that changes the type of a column it returns fails each worker's prepared plan once
    ("cached plan must not change result type"), and the page still answers with its rows; a
    query the database refuses (SELECT revoked) is the page's own error (500), with no rows."""
    with own_stack("route-query") as s:
        c = Client(s)
        c.email = unique("route") + "@x.test"
        c.signup(unique("Route Org "), c.email)
        owner = psycopg2.connect(s.pg_dsn_owner)
        names = [unique("route-cluster-") for _ in range(2)]
        with owner, owner.cursor() as cur:
            for name in names:
                add_cluster_row(cur, name, c.email)
        try:
            for _ in range(12):  # every worker (3) has prepared the page's query
                r = c.json("/clusters")
                assert r.status_code == 200 and sorted(k["name"] for k in r.json()["clusters"]) == sorted(names)
            with owner, owner.cursor() as cur:
                cur.execute("ALTER TABLE stowage.clusters ALTER COLUMN status_message TYPE varchar(4000)")
            for i in range(12):
                r = c.json("/clusters") if i % 2 else c.get("/clusters")
                assert r.status_code == 200, r.text
                assert all(name in r.text for name in names)
            with open(os.path.join(s.root, "logs", "web.log")) as f:
                log = f.read()
            assert "cached plan must not change result type (a request's first query" in log
            with owner, owner.cursor() as cur:
                cur.execute("REVOKE SELECT ON stowage.clusters FROM stowage_app")
            for i in range(6):
                r = c.json("/clusters") if i % 2 else c.get("/clusters")
                assert r.status_code == 500
                assert "The database refused" in r.text and not any(name in r.text for name in names)
            with open(os.path.join(s.root, "logs", "web.log")) as f:
                log = f.read()
            assert "GET /clusters: database: permission denied for table clusters" in log
            with owner, owner.cursor() as cur:
                cur.execute("GRANT SELECT ON stowage.clusters TO stowage_app")
            r = c.json("/clusters")
            assert r.status_code == 200 and sorted(k["name"] for k in r.json()["clusters"]) == sorted(names)
        finally:
            owner.close()


def test_a_request_answered_before_its_body_is_read_ends_cleanly(stack, admin):
    """A worker closes nginx's connection as soon as it has answered, once it has read the rest
    of the request (web_main.c): a POST refused before its body is read (a malformed query) still
    gets its 400, not nginx's 502 for a connection closed under its upload, and the next requests
    on the same workers get their own answers, a forged session none of the rows."""
    admin.cluster = unique("cluster-")
    owner = psycopg2.connect(stack.pg_dsn_owner)
    with owner, owner.cursor() as cur:
        add_cluster_row(cur, admin.cluster, admin.email)
    forged = Client(stack)
    forged.http.cookies.set("stowage_session", "C" * 43)
    try:
        for _ in range(6):  # every worker (3) gets such a request
            conn = http.client.HTTPConnection("127.0.0.1", stack.http_port)
            conn.request("POST", "/members?q=%zz", body=b"a=" + b"x" * (1024 * 1024),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
            resp = conn.getresponse()
            assert resp.status == 400, resp.read()
            resp.read()
            conn.close()
            r = admin.json("/clusters")
            assert r.status_code == 200 and admin.cluster in [k["name"] for k in r.json()["clusters"]]
            page = forged.get("/clusters")
            assert page.status_code == 303 and admin.cluster not in page.text
    finally:
        with owner, owner.cursor() as cur:
            cur.execute("DELETE FROM stowage.clusters WHERE name = %s", (admin.cluster,))
        owner.close()
