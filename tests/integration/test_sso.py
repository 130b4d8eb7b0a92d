"""Single sign-on against a real OpenID provider on loopback: the example server of
github.com/zitadel/oidc (an OpenID Certified provider library) built from the Go module proxy by
scripts/testenv/build-oidc-provider (our main on its example packages, listening on 127.0.0.1
only: asserted), with its login form, a users file and its two web clients ("web" and "api",
secret "secret"). An admin configures the organisation's provider on the
console page in Chromium; a member signs in through the provider's login form and lands signed in
with the role the claim maps to. Password sign-in is refused once SSO is required; a token the
provider issued to another organisation's client does not sign into this one; a replayed state,
a code of another client and a callback from another browser are refused."""
import html
import ipaddress
import json
import os
import re
import socket
import subprocess
import time
from urllib.parse import parse_qs, urljoin, urlparse

import psycopg2
import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import fill, gone, screenshot, signup
from conftest import TOP, Client, free_port, unique

USERS = {
    "u-carol": {"ID": "u-carol", "Username": "carol", "Password": "carol-secret-1", "FirstName": "Carol",
                "LastName": "Operator", "Email": "carol.sso@example.test", "EmailVerified": True,
                "PreferredLanguage": "en"},
    "u-dave": {"ID": "u-dave", "Username": "dave", "Password": "dave-secret-1", "FirstName": "Dave",
               "LastName": "Viewer", "Email": "dave.sso@example.test", "EmailVerified": True,
               "PreferredLanguage": "en"},
    "u-erin": {"ID": "u-erin", "Username": "erin", "Password": "erin-secret-1", "FirstName": "Erin",
               "LastName": "Nobody", "Email": "erin.sso@example.test", "EmailVerified": True,
               "PreferredLanguage": "en"},
    "u-frank": {"ID": "u-frank", "Username": "frank", "Password": "frank-secret-1", "FirstName": "Frank",
                "LastName": "Other", "Email": "frank.sso@example.test", "EmailVerified": True,
                "PreferredLanguage": "en"},
    "u-grace": {"ID": "u-grace", "Username": "grace", "Password": "grace-secret-1", "FirstName": "Grace",
                "LastName": "Rotated", "Email": "grace.sso@example.test", "EmailVerified": True,
                "PreferredLanguage": "en"},
}
ROLE_MAP = "carol=operator\ndave=viewer\nfrank=viewer\ngrace=viewer\n"


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture(scope="module")
def provider(stack):
    binary = subprocess.run([os.path.join(TOP, "scripts", "testenv", "build-oidc-provider")], check=True,
                            capture_output=True, text=True).stdout.strip().splitlines()[-1]
    port = free_port()
    users = os.path.join(stack.root, "oidc-users.json")
    with open(users, "w") as f:
        json.dump(USERS, f)
    log = open(os.path.join(stack.root, "logs", "oidc-provider.log"), "ab")
    proc = subprocess.Popen([binary], env={"PORT": str(port), "USERS_FILE": users,
                                           "REDIRECT_URI": stack.url + "/sso/callback"},
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    wait_port(port)
    yield f"http://localhost:{port}/"
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def test_provider_listens_on_loopback_only(provider):
    port = urlparse(provider).port
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    addresses = subprocess.run(["hostname", "-I"], check=True, capture_output=True, text=True).stdout.split()
    other = next((a for a in addresses if not ipaddress.ip_address(a).is_loopback), None)
    if other is None:
        pytest.skip("the machine has no address but loopback (hostname -I)")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((other, port), timeout=5).close()


def owner_sql(stack, sql, args=()):
    with psycopg2.connect(stack.pg_dsn_owner) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else None


def configure(admin, issuer, client_id, require=False, default_role=""):
    data = {"issuer": issuer, "client_id": client_id, "client_secret": "secret", "role_claim": "preferred_username",
            "role_map": ROLE_MAP, "default_role": default_role}
    if require:
        data["require_sso"] = "on"
    r = admin.post("/settings/sso", data)
    assert r.status_code == 303 and r.headers["Location"] == "/settings/sso", f"{r.status_code} {r.text[:800]}"


def provider_login(http, authorize_url, username, password):
    """The provider's login form, as a browser would post it; returns our callback URL with the
    code and state, without following it."""
    r = http.get(authorize_url, allow_redirects=False)
    for _ in range(5):
        if r.status_code not in (301, 302, 303):
            break
        r = http.get(urljoin(r.url, r.headers["Location"]), allow_redirects=False)
    m = re.search(r'name="id" value="([^"]+)"', r.text)
    assert m, f"no login form at the provider: {r.status_code} {r.text[:300]}"
    r = http.post(urljoin(r.url, "/login/username"), data={"id": m.group(1), "username": username,
                                                            "password": password}, allow_redirects=False)
    for _ in range(5):
        loc = urljoin(r.url, r.headers.get("Location", ""))
        if "/sso/callback" in loc:
            return loc
        assert r.status_code in (301, 302, 303), f"the provider did not send us back: {r.status_code} {r.text[:300]}"
        r = http.get(loc, allow_redirects=False)
    pytest.fail("the provider redirected too often")


def start_sso(client, org):
    """POST /signin/sso for org: the provider's authorization URL."""
    r = client.post("/signin/sso", {"org": org})
    assert r.status_code == 200, f"{r.status_code} {r.text[:500]}"
    m = re.search(r'id="sso-continue" href="([^"]+)"', r.text)
    assert m, r.text[:500]
    return html.unescape(m.group(1))


def finish(client, callback_url, timeout=60):
    """Follows our callback and the "signing in…" page until it answers."""
    path = urlparse(callback_url)
    if path.path.startswith("/sso/finish/"):
        loc = path.path
    else:
        r = client.http.get(client.stack.url + path.path + "?" + path.query, allow_redirects=False)
        if r.status_code != 303:
            return r
        loc = r.headers["Location"]
    deadline = time.time() + timeout
    while True:
        r = client.http.get(client.stack.url + loc, allow_redirects=False)
        if not (r.status_code == 200 and 'id="sso-pending"' in r.text):
            return r
        assert time.time() < deadline, "no runner answered the sign-in"
        time.sleep(0.3)


def test_console_configures_sso_and_chromium_signs_in_through_the_provider(stack, provider, browser):
    org, email = unique("SSO Org "), unique("ssoadmin") + "@example.test"
    signup(browser, stack, {"org": org, "display_name": "Sam Admin", "email": email, "password": "sso admin pass 1"})
    browser.get(stack.url + "/settings/sso")
    assert browser.find_element(By.ID, "redirect-uri").text == stack.url + "/sso/callback"
    fill(browser, "/settings/sso", {"issuer": provider, "client_id": "web", "client_secret": "secret",
                                    "role_claim": "preferred_username", "role_map": ROLE_MAP})
    WebDriverWait(browser, 60).until(lambda d: "Single sign-on saved" in d.page_source)
    assert "secret" not in browser.find_element(By.NAME, "client_secret").get_attribute("value")
    screenshot(browser, "sso-settings")
    # the secret is sealed at rest
    sealed = owner_sql(stack, "SELECT client_secret_enc FROM stowage.org_sso o JOIN stowage.orgs g ON g.id = o.org_id "
                              "WHERE g.name = %s", (org,))[0][0]
    assert b"secret" not in bytes(sealed)

    signout = browser.find_element(By.CSS_SELECTOR, 'form[action="/signout"] button')
    signout.click()
    WebDriverWait(browser, 15).until(gone(signout))
    fill(browser, "/signin/sso", {"org": org})  # a page that moves on to the provider
    # the provider's own login form
    WebDriverWait(browser, 15).until(lambda d: d.current_url.startswith(provider.rstrip("/")))
    browser.find_element(By.NAME, "username").send_keys("carol")
    browser.find_element(By.NAME, "password").send_keys("carol-secret-1")
    browser.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
    WebDriverWait(browser, 60).until(lambda d: d.current_url.rstrip("/") == stack.url and
                                     d.find_elements(By.CLASS_NAME, "who"))
    who = browser.find_element(By.CLASS_NAME, "who").text
    assert "Carol Operator" in who and "operator" in who, who
    screenshot(browser, "sso-signed-in")
    rows = owner_sql(stack, "SELECT m.role FROM stowage.memberships m JOIN stowage.users u ON u.id = m.user_id "
                            "JOIN stowage.orgs o ON o.id = m.org_id WHERE u.email = %s AND o.name = %s",
                     ("carol.sso@example.test", org))
    assert rows == [("operator",)]


def test_unmapped_claim_replay_and_other_browser_are_refused(stack, provider, admin):
    configure(admin, provider, "web")
    erin = Client(stack)
    callback = provider_login(erin.http, start_sso(erin, admin.org), "erin", "erin-secret-1")
    r = finish(erin, callback)
    assert r.status_code == 403 and "maps to no role" in r.text, r.text[:500]

    dave = Client(stack)
    callback = provider_login(dave.http, start_sso(dave, admin.org), "dave", "dave-secret-1")
    # the callback from another browser (no cookie of this sign-in) is refused
    thief = Client(stack)
    r = thief.http.get(callback, allow_redirects=False)
    assert r.status_code == 400 and "not started in this browser" in r.text
    r = dave.http.get(callback, allow_redirects=False)
    assert r.status_code == 303
    finish_path = r.headers["Location"]
    # the same state again, from the same browser: refused
    again = dave.http.get(callback, allow_redirects=False)
    assert again.status_code == 400 and "used already" in again.text, again.text[:300]
    r = finish(dave, stack.url + finish_path)
    assert r.status_code == 303 and r.headers["Location"] == "/", r.text[:500]
    assert dave.json("/").json()["me"]["role"] == "viewer"
    # and once signed in: refused, and the finished sign-in does not make a second session
    assert dave.http.get(callback, allow_redirects=False).status_code == 400
    assert dave.http.get(stack.url + finish_path, allow_redirects=False).status_code == 400


def test_require_sso_refuses_password_sign_in(stack, provider, admin):
    configure(admin, provider, "web", require=True)
    c = Client(stack)
    r = c.post("/signin", {"email": admin.email, "password": "correct horse battery"})
    assert r.status_code == 422 and "requires single sign-on" in r.text, r.text[:500]
    assert c.json("/").status_code in (302, 303, 401)
    # a wrong password learns nothing of it
    r = c.post("/signin", {"email": admin.email, "password": "wrong horse battery"})
    assert r.status_code == 422 and "requires single sign-on" not in r.text


def test_a_provider_makes_accounts_of_its_own_organisation_only(stack, provider, admin):
    """An organisation's provider names whatever address it likes: the account it makes exists in
    that organisation alone, and the address's owner signs up, signs in and resets as if it were
    not there (before, the provider's account took the address and locked its owner out)."""
    configure(admin, provider, "web", default_role="viewer")
    erin = Client(stack)
    r = finish(erin, provider_login(erin.http, start_sso(erin, admin.org), "erin", "erin-secret-1"))
    assert r.status_code == 303, r.text[:500]
    assert erin.json("/").json()["me"]["email"] == "erin.sso@example.test"
    # the address's owner signs up (the confirmation mail comes), and their password leads to
    # their organisation, also once the provider's organisation requires single sign-on
    owner = Client(stack)
    own_org = unique("Erin's Own ")
    owner.signup(own_org, "erin.sso@example.test", password="erin own password")
    configure(admin, provider, "web", require=True, default_role="viewer")
    c = Client(stack)
    c.signin("erin.sso@example.test", password="erin own password")
    assert c.json("/").json()["org"]["name"] == own_org
    before = len(stack.mail.links_to("erin.sso@example.test", "/password/reset/"))
    assert Client(stack).post("/password/forgot", {"email": "erin.sso@example.test"}).status_code == 200
    reset = stack.mail.link("erin.sso@example.test", "/password/reset/", before + 1)
    page = Client(stack).get(reset)
    assert page.status_code == 200, page.text[:300]
    # the provider still signs in its own account, into its organisation only
    again = Client(stack)
    r = finish(again, provider_login(again.http, start_sso(again, admin.org), "erin", "erin-secret-1"))
    assert r.status_code == 303, r.text[:500]
    assert again.json("/").json()["org"]["name"] == admin.org
    accounts = owner_sql(stack, "SELECT u.sso_org_id IS NULL, array_agg(o.name) FROM stowage.users u "
                                "JOIN stowage.memberships m ON m.user_id = u.id JOIN stowage.orgs o ON o.id = m.org_id "
                                "WHERE lower(u.email) = 'erin.sso@example.test' AND (u.sso_org_id IS NULL OR "
                                "o.name = %s) GROUP BY u.id, u.sso_org_id ORDER BY 1", (admin.org,))
    assert accounts == [(False, [admin.org]), (True, [own_org])], accounts


def test_an_organisation_requiring_sso_does_not_shut_its_members_out_of_another(stack, provider, admin):
    email = unique("both") + "@example.test"
    member = admin.invite(email, "viewer", password="both password")  # a new account, in admin's first
    other = Client(stack)
    other.org = unique("Other Org ")
    other.signup(other.org, unique("other") + "@example.test")
    assert other.post("/members", {"email": email, "display_name": "Both", "role": "operator"}).status_code == 303
    link = stack.mail.link(email, "/invitations/", 2)  # the second: the first was admin's
    assert member.post(link, {}).status_code == 303
    configure(admin, provider, "web", require=True)
    c = Client(stack)
    c.signin(email, password="both password")
    assert c.json("/").json()["org"]["name"] == other.org


def test_single_sign_on_is_counted_per_client_not_per_organisation(stack, provider, admin):
    """Anyone may type an organisation's name: a count per name let six starts an hour from
    anywhere shut the organisation's single sign-on (stack's per-address limit: 5)."""
    configure(admin, provider, "web")
    for _ in range(7):
        assert start_sso(Client(stack), admin.org).startswith(provider.rstrip("/"))


def test_token_of_another_organisations_client_does_not_sign_in(stack, provider, admin):
    configure(admin, provider, "web")
    other = Client(stack)
    other.org, other.email = unique("SSO Other "), unique("other") + "@example.test"
    other.signup(other.org, other.email)
    configure(other, provider, "api")

    # a code the provider issued to the other organisation's client, brought to this one's
    # callback with this one's state: the runner exchanges it with this organisation's client and
    # the provider refuses it
    victim = Client(stack)
    ours = provider_login(victim.http, start_sso(victim, admin.org), "carol", "carol-secret-1")
    attacker = Client(stack)
    theirs = provider_login(attacker.http, start_sso(attacker, other.org), "frank", "frank-secret-1")
    code = parse_qs(urlparse(theirs).query)["code"][0]
    state = parse_qs(urlparse(ours).query)["state"][0]
    r = finish(victim, f"{stack.url}/sso/callback?code={code}&state={state}")
    assert r.status_code == 502 and "refused the code" in r.text, r.text[:500]

    # the other organisation's ID token (audience "api"), answered for a sign-in of this one: the
    # web's own check of the token refuses it
    r = finish(attacker, theirs)
    assert r.status_code == 303, r.text[:500]
    token = owner_sql(stack, "SELECT result->>'id_token' FROM stowage.runner_requests q JOIN stowage.orgs o "
                             "ON o.id = q.org_id WHERE q.kind = 'sso_exchange' AND o.name = %s "
                             "AND result ? 'id_token' ORDER BY q.id DESC LIMIT 1", (other.org,))[0][0]
    victim2 = Client(stack)
    ours = provider_login(victim2.http, start_sso(victim2, admin.org), "carol", "carol-secret-1")
    path = urlparse(ours)
    r = victim2.http.get(stack.url + path.path + "?" + path.query, allow_redirects=False)
    assert r.status_code == 303
    login = int(r.headers["Location"].rsplit("/", 1)[1])
    # wait for the runner's real answer, then put the other client's token in its place
    deadline = time.time() + 60
    while owner_sql(stack, "SELECT q.state FROM stowage.sso_logins l JOIN stowage.runner_requests q "
                           "ON q.id = l.request_id WHERE l.id = %s", (login,))[0][0] != "answered":
        assert time.time() < deadline
        time.sleep(0.2)
    owner_sql(stack, "UPDATE stowage.runner_requests SET result = jsonb_build_object('ok', true, 'id_token', %s::text) "
                     "WHERE id = (SELECT request_id FROM stowage.sso_logins WHERE id = %s)", (token, login))
    r = victim2.http.get(f"{stack.url}/sso/finish/{login}", allow_redirects=False)
    assert r.status_code == 403 and "issued for another client" in r.text, r.text[:500]
    assert victim2.json("/").status_code != 200


def test_settings_are_admin_only_and_validated(stack, provider, admin):
    operator = admin.invite(unique("op") + "@example.test", "operator")
    assert operator.get("/settings/sso").status_code in (403, 404)
    r = admin.post("/settings/sso", {"issuer": "ftp://x", "client_id": "web", "client_secret": "s",
                                     "role_claim": "groups", "role_map": ""})
    assert r.status_code == 422 and "Issuer URL" in r.text
    r = admin.post("/settings/sso", {"issuer": provider, "client_id": "web", "client_secret": "s",
                                     "role_claim": "groups", "role_map": "x=root"})
    assert r.status_code == 422 and "Role mapping: line 1" in r.text
    # an issuer that is not the one its discovery document names is refused by the runner
    r = admin.post("/settings/sso", {"issuer": provider.replace("localhost", "127.0.0.1"), "client_id": "web",
                                     "client_secret": "s", "role_claim": "groups", "role_map": ""})
    assert r.status_code == 422 and "must be identical" in r.text, r.text[:800]


def test_key_rotation_reseals_the_client_secret(stack, provider, admin, tmp_path):
    """stowage-keys rotate re-seals the provider's client secret with the other secrets (before, it
    stayed under the old key and stopped opening once that key was destroyed); rotated and back,
    the runner opens it for a sign-in."""
    configure(admin, provider, "web")
    query = ("SELECT client_secret_enc, key_id FROM stowage.org_sso o JOIN stowage.orgs g ON g.id = o.org_id "
             "WHERE g.name = %s")
    sealed, key_id = owner_sql(stack, query, (admin.org,))[0]
    new_key = str(tmp_path / "new.key")
    out = stack.rotate_key(new_key)
    assert out.returncode == 0, out.stderr
    resealed, new_id = owner_sql(stack, query, (admin.org,))[0]
    assert new_id != key_id and bytes(resealed) != bytes(sealed)
    back = stack.rotate_key_back(new_key, str(tmp_path / "new.conf"))
    assert back.returncode == 0, back.stderr
    assert owner_sql(stack, query, (admin.org,))[0][1] == key_id
    grace = Client(stack)
    r = finish(grace, provider_login(grace.http, start_sso(grace, admin.org), "grace", "grace-secret-1"))
    assert r.status_code == 303 and r.headers["Location"] == "/", r.text[:500]
