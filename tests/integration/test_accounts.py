"""Accounts on a hosted, multi-tenant service where every organisation is an attacker: where
sign-in may lead, what a stored secret may be sent to, cookies and the socket behind TLS."""
import grp
import os
import re
import stat
import socket
import time

import psycopg2
import pytest
import requests

import subprocess

from conftest import CSRF_RE, TOP, Client, own_stack, unique

NEXT_ATTACKS = [
    "//evil.example/x",             # protocol-relative: another site
    "///evil.example/x",
    "/\\evil.example/x",            # browsers read '\' as '/'
    "\\\\evil.example/x",
    "/x\\y",
    "https://evil.example/",        # a scheme
    "javascript:alert(1)",
    "/javascript:alert(1)",
    "evil.example/x",               # not a path on this site
    "",
    "/\t/evil.example/x",           # control characters, stripped by browsers
    "/\r\nSet-Cookie: a=b",
    "/\x00x",
    "/a//evil.example",             # a "//" anywhere
    "/%2F%2Fevil.example",          # encoded slashes and backslashes
    "/%5Cevil.example",
]


def signin_post(c, data):
    """A sign-in POST; nginx's per-client limit (30 a minute) may answer 429, then wait a token
    (Stowage's own 429s, in words, are answers)."""
    for _ in range(20):
        r = c.post("/signin", data)
        if r.status_code != 429 or "Too many" in r.text:
            return r
        time.sleep(2.1)
    return r


@pytest.mark.parametrize("attack", NEXT_ATTACKS)
def test_signin_form_carries_only_a_path_on_this_site(client, attack):
    r = client.get("/signin", params={"next": attack})
    if r.status_code == 400:  # the query itself refused (a NUL byte)
        return
    page = r.text
    m = re.search(r'name="_next" value="([^"]*)"', page)
    assert m and m.group(1) == "/", (attack, m and m.group(1))


@pytest.mark.parametrize("attack", NEXT_ATTACKS)
def test_signin_next_accepts_only_a_path_on_this_site(stack, admin, attack):
    c = Client(stack)
    r = signin_post(c, {"email": admin.email, "password": "correct horse battery", "_next": attack})
    if r.status_code == 400:  # the form itself refused (a NUL byte)
        return
    assert r.status_code == 303 and r.headers["Location"] == "/", (attack, r.headers.get("Location"))


def test_signin_next_keeps_a_local_path(stack, admin):
    c = Client(stack)
    r = signin_post(c, {"email": admin.email, "password": "correct horse battery", "_next": "/backups?plan=3"})
    assert r.status_code == 303 and r.headers["Location"] == "/backups?plan=3"


def test_signin_form_never_carries_a_foreign_next(client):
    page = client.get("/signin", params={"next": "//evil.example/x"}).text
    assert "evil.example" not in page
    page = client.get("/signin", params={"next": "/audit"}).text
    assert 'value="/audit"' in page


def _listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(5)
    s.settimeout(0.5)
    return s


def _connected(s):
    try:
        conn, _ = s.accept()
        conn.close()
        return True
    except socket.timeout:
        return False


def test_changing_a_clusters_url_or_ca_needs_its_token_again(admin):
    bait = _listener()  # the "new" API server: must never see a connection carrying the stored token
    r = admin.post("/clusters", {"name": "moved", "api_url": "https://127.0.0.1:1", "token": "stored-secret-token",
                                 "ca_pem": "", "save_unverified": "on"})
    assert r.status_code == 303, r.text
    cid = [x for x in admin.json("/clusters").json()["clusters"] if x["name"] == "moved"][0]["id"]
    new_url = f"https://127.0.0.1:{bait.getsockname()[1]}"
    r = admin.post(f"/clusters/{cid}", {"name": "moved", "api_url": new_url, "token": "", "ca_pem": "",
                                        "save_unverified": "on"})
    assert r.status_code == 422
    assert "Bearer token: required again when the API server URL changes" in r.text
    assert not _connected(bait)
    # Any PEM-shaped text: the refusal comes before it is used.
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    r = admin.post(f"/clusters/{cid}", {"name": "moved", "api_url": "https://127.0.0.1:1", "token": "",
                                        "ca_pem": pem, "save_unverified": "on"})
    assert r.status_code == 422
    assert "Bearer token: required again when the CA bundle changes" in r.text
    row = admin.json(f"/clusters/{cid}").json()
    assert "127.0.0.1:1" in str(row)
    # The same URL and CA keep the stored token; a new URL with a token typed again is fine.
    r = admin.post(f"/clusters/{cid}", {"name": "moved", "api_url": "https://127.0.0.1:1", "token": "",
                                        "ca_pem": "", "save_unverified": "on"})
    assert r.status_code == 303, r.text
    r = admin.post(f"/clusters/{cid}", {"name": "moved", "api_url": new_url, "token": "a-new-token",
                                        "ca_pem": "", "save_unverified": "on"})
    assert r.status_code == 303, r.text
    bait.close()


def tls_cert(stack):
    """The throwaway certificate scripts/nginx made for the TLS listener."""
    return os.path.join(stack.root, "nginx", "tls.crt")


def test_cookies_over_tls_are_secure_with_the_host_prefix_and_hsts(stack, admin):
    tls = requests.Session()
    tls.trust_env = False  # else REQUESTS_CA_BUNDLE would win over verify
    tls.verify = tls_cert(stack)
    r = tls.get(stack.tls_url + "/signin")
    assert r.status_code == 200
    assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    csrf_cookie = r.raw.headers.getlist("Set-Cookie")
    assert csrf_cookie and all(c.startswith("__Host-") and "; Secure" in c and "Path=/" in c and "Domain" not in c
                               for c in csrf_cookie), csrf_cookie
    token = re.search(r'name="_csrf" value="([^"]+)"', r.text).group(1)
    for _ in range(20):
        r = tls.post(stack.tls_url + "/signin", data={"email": admin.email, "password": "correct horse battery",
                                                     "_csrf": token}, allow_redirects=False)
        if r.status_code != 429:
            break
        time.sleep(2.1)
    assert r.status_code == 303, r.text
    session = [c for c in r.raw.headers.getlist("Set-Cookie") if "stowage_session=" in c][0]
    assert session.startswith("__Host-stowage_session=") and "; Secure" in session and "HttpOnly" in session
    assert tls.get(stack.tls_url + "/", allow_redirects=False).status_code == 200
    # Over TLS the unprefixed name is not ours: a cookie a sibling site planted does not count.
    value = session.split(";")[0].split("=", 1)[1]
    planted = requests.get(stack.tls_url + "/", verify=tls_cert(stack), allow_redirects=False,
                           headers={"Cookie": f"stowage_session={value}"})
    assert planted.status_code == 303 and "/signin" in planted.headers["Location"]


def test_plain_http_has_no_hsts_and_unprefixed_cookies(client):
    r = client.get("/signin")
    assert "Strict-Transport-Security" not in r.headers
    assert all(not c.startswith("__Host-") for c in r.raw.headers.getlist("Set-Cookie"))


def test_fastcgi_socket_is_reachable_by_nginx_only(stack):
    run = os.path.join(stack.root, "run")
    nginx_group = subprocess.run([os.path.join(TOP, "scripts", "nginx"), "group"], capture_output=True,
                                 text=True, check=True).stdout.strip()
    d, sock = os.stat(run), os.stat(os.path.join(run, "web.sock"))
    assert stat.S_IMODE(d.st_mode) == 0o750
    assert stat.S_ISSOCK(sock.st_mode) and stat.S_IMODE(sock.st_mode) == 0o660
    assert grp.getgrgid(d.st_gid).gr_name == nginx_group
    assert grp.getgrgid(sock.st_gid).gr_name == nginx_group
    with open(os.path.join(stack.root, "nginx", "nginx.conf")) as f:
        conf = f.read()
    if os.getuid() == 0:  # root's nginx drops its workers into that group
        assert f"user {nginx_group} " in conf or f" {nginx_group};" in conf


# Accounts and invitations: an address is proven by a mailed link before it counts.

def members_of(c):
    return [m["email"] for m in c.json("/members").json()["members"]]


def test_unconfirmed_account_cannot_sign_in(stack):
    c = Client(stack)
    email = unique("unconfirmed") + "@x.test"
    c.signup_unconfirmed(unique("Unconfirmed Org "), email)
    assert c.get("/").status_code == 303  # no session from the sign-up itself
    r = signin_post(Client(stack), {"email": email, "password": "correct horse battery"})
    assert r.status_code == 422 and "not confirmed yet" in r.text
    assert "stowage_session=" not in r.headers.get("Set-Cookie", "")
    # Opening the link is not enough (a mail scanner would); its button is.
    link = stack.mail.link(email, "/confirm/")
    assert c.get(link).status_code == 200
    r = signin_post(Client(stack), {"email": email, "password": "correct horse battery"})
    assert r.status_code == 422 and "not confirmed yet" in r.text
    r = c.follow(link)
    assert r.status_code == 303 and c.get("/").status_code == 200


def test_confirmation_link_works_once(stack):
    c = Client(stack)
    email = unique("once") + "@x.test"
    c.signup(unique("Once Org "), email)
    link = stack.mail.link(email, "/confirm/")
    other = Client(stack)
    page = other.get(link)
    r = other.post(link, {"_csrf": CSRF_RE.search(page.text).group(1)})
    assert r.status_code == 410 and "already used or has expired" in r.text
    assert other.get("/").status_code == 303
    assert Client(stack).get("/confirm/" + "A" * 43).status_code == 200  # just the button...
    bogus = Client(stack)
    page = bogus.get("/confirm/" + "A" * 43)
    assert bogus.post("/confirm/" + "A" * 43, {"_csrf": CSRF_RE.search(page.text).group(1)}).status_code == 410


def test_squatted_address_never_gets_another_organisations_membership(stack, admin):
    victim = unique("victim") + "@x.test"
    squatter = Client(stack)
    squatter_org = unique("Squatter Org ")
    squatter.signup_unconfirmed(squatter_org, victim, password="squatter password")
    # Another organisation invites the address later: the invitation is pending, nobody joins yet.
    r = admin.post("/members", {"email": victim, "display_name": "Vic", "role": "admin"})
    assert r.status_code == 303
    assert victim not in members_of(admin)
    assert victim in [i["email"] for i in admin.json("/members").json()["invitations"]]
    r = signin_post(Client(stack), {"email": victim, "password": "squatter password"})
    assert r.status_code == 422 and "not confirmed yet" in r.text
    # The owner of the address follows the invitation's link: a new account of their own.
    link = stack.mail.link(victim, "/invitations/")
    owner = Client(stack)
    page = owner.get(link)
    assert page.status_code == 200 and "Choose your name and a password" in page.text
    r = owner.post(link, {"_csrf": CSRF_RE.search(page.text).group(1), "display_name": "Vic",
                          "password": "the owner's password"})
    assert r.status_code == 303, r.text
    assert owner.json("/").json()["me"]["role"] == "admin"
    assert victim in members_of(admin)
    # The squatter's password opens nothing, and the squatter's confirmation link is dead.
    r = signin_post(Client(stack), {"email": victim, "password": "squatter password"})
    assert r.status_code == 422 and "Email or password is wrong." in r.text
    late = Client(stack)
    page = late.get(stack.mail.link(victim, "/confirm/"))
    r = late.post(stack.mail.link(victim, "/confirm/"), {"_csrf": CSRF_RE.search(page.text).group(1)})
    assert r.status_code == 410
    owner_check = psycopg2.connect(stack.pg_dsn_owner)
    cur = owner_check.cursor()
    cur.execute("SELECT count(*) FROM stowage.orgs WHERE name = %s", (squatter_org,))
    assert cur.fetchone()[0] == 0  # the squatter's organisation went with the unconfirmed account
    owner_check.close()


def test_invitation_link_works_once_and_only_for_its_address(stack, admin):
    email = unique("twice") + "@x.test"
    admin.invite(email, "viewer", "viewer password")
    link = stack.mail.link(email, "/invitations/")
    r = Client(stack).get(link)
    assert r.status_code == 410 and "already used" in r.text


def test_invitation_of_an_existing_account_needs_its_owner_signed_in(stack, admin):
    other = Client(stack)
    other.email = unique("existing") + "@x.test"
    other.signup(unique("Existing Org "), other.email, password="existing password")
    r = admin.post("/members", {"email": other.email, "display_name": "Ex", "role": "operator"})
    assert r.status_code == 303
    link = stack.mail.link(other.email, "/invitations/")
    assert other.email not in members_of(admin)  # pending until accepted
    # Anonymous, or signed in as someone else: the page says to sign in; accepting is refused.
    anon = Client(stack)
    page = anon.get(link)
    assert "sign in as" in page.text and re.search(r"/signin\?next(=|&#61;)%2Finvitations%2F", page.text), page.text[-400:]
    assert anon.post(link, {"display_name": "Mallory", "password": "mallory password"}).status_code == 403
    assert admin.post(link, {}).status_code == 403
    assert other.email not in members_of(admin)
    # The owner, signed in, accepts.
    page = other.get(link)
    assert "Accept the invitation" in page.text
    r = other.post(link, {})
    assert r.status_code == 303
    assert other.email in members_of(admin)
    assert other.json("/").json()["me"]["role"] == "operator"
    # Their password did not change, and they still belong to their own organisation.
    r = signin_post(Client(stack), {"email": other.email, "password": "existing password"})
    assert r.status_code == 303


def test_invite_form_says_nothing_about_whether_an_address_has_an_account(stack, admin):
    existing = unique("known") + "@x.test"
    Client(stack).signup(unique("Known Org "), existing)
    fresh = unique("unknown") + "@x.test"
    answers = []
    for email in (existing, fresh):
        r = admin.post("/members", {"email": email, "display_name": "X", "role": "viewer"})
        flash = admin.get("/members").text
        m = re.search(r'class="flash[^"]*"[^>]*>([^<]*)<', flash)
        answers.append((r.status_code, r.headers.get("Location"), (m.group(1) if m else flash).replace(email, "ADDR")))
    assert answers[0] == answers[1]
    assert "already had an account" not in str(answers)
    audit = [e for e in admin.json("/audit").json()["entries"] if e["action"] == "member.invite"]
    assert all("new_account" not in e["detail"] for e in audit)


# Passwords: changed by the member, reset through a mailed link; either ends every session.

def second_session(stack, email, password="correct horse battery"):
    c = Client(stack)
    assert signin_post(c, {"email": email, "password": password}).status_code == 303
    assert c.get("/").status_code == 200
    return c


def test_member_changes_password_and_every_session_ends(stack, admin):
    other_browser = second_session(stack, admin.email)
    r = admin.post("/account/password", {"current_password": "not my password", "new_password": "a brand new password"})
    assert r.status_code == 422 and "Current password: wrong" in r.text
    assert "not my password" not in r.text
    assert admin.get("/").status_code == 200
    r = admin.post("/account/password", {"current_password": "correct horse battery", "new_password": "short"})
    assert r.status_code == 422 and "New password: use at least 10 characters" in r.text
    r = admin.post("/account/password", {"current_password": "correct horse battery",
                                         "new_password": "a brand new password"})
    assert r.status_code == 303 and r.headers["Location"] == "/signin"
    assert admin.get("/").status_code == 303
    assert other_browser.get("/").status_code == 303
    r = signin_post(Client(stack), {"email": admin.email, "password": "correct horse battery"})
    assert r.status_code == 422
    second_session(stack, admin.email, "a brand new password")
    audit = second_session(stack, admin.email, "a brand new password").json("/audit").json()["entries"]
    assert any(e["action"] == "user.password_change" for e in audit)


def test_forgotten_password_is_reset_by_a_mailed_link_once(stack, admin):
    other_browser = second_session(stack, admin.email)
    anon = Client(stack)
    answers = []
    nobody = unique("nobody") + "@x.test"
    for email in (admin.email, nobody):
        r = anon.post("/password/forgot", {"email": email})
        assert r.status_code == 200
        answers.append(r.text.replace(email, "ADDR").replace(anon.csrf(), "CSRF"))
    assert answers[0] == answers[1]  # the page says nothing about whether the address has an account
    assert stack.mail.links_to(nobody, "/password/reset/") == []
    link = stack.mail.link(admin.email, "/password/reset/")
    page = anon.get(link)
    assert page.status_code == 200
    r = anon.post(link, {"new_password": "short"})
    assert r.status_code == 422 and "New password: use at least 10 characters" in r.text
    r = anon.post(link, {"new_password": "reset password 123"})
    assert r.status_code == 303 and r.headers["Location"] == "/signin"
    assert admin.get("/").status_code == 303 and other_browser.get("/").status_code == 303
    assert anon.get(link).status_code == 410
    assert anon.post(link, {"new_password": "attacker password"}).status_code == 410
    r = signin_post(Client(stack), {"email": admin.email, "password": "correct horse battery"})
    assert r.status_code == 422
    second_session(stack, admin.email, "reset password 123")


def test_no_reset_link_for_an_unconfirmed_account(stack):
    email = unique("squat") + "@x.test"
    Client(stack).signup_unconfirmed(unique("Squat Org "), email)
    assert Client(stack).post("/password/forgot", {"email": email}).status_code == 200
    time.sleep(1)
    assert stack.mail.links_to(email, "/password/reset/") == []



# Rate limits: per address, per client, and a slowed-down address after ten wrong passwords.

def test_tenth_wrong_password_slows_the_address_down_in_words(stack, admin):
    c = Client(stack)
    for i in range(10):
        r = signin_post(c, {"email": admin.email, "password": f"wrong password {i}"})
        assert r.status_code == 422 and "Email or password is wrong." in r.text, (i, r.status_code)
    # Now even the right password waits: guessing goes on at one try every 30 seconds.
    r = signin_post(c, {"email": admin.email, "password": "correct horse battery"})
    assert r.status_code == 429
    assert "Too many wrong passwords for this address" in r.text and "Try again in" in r.text
    assert "stowage_session=" not in r.headers.get("Set-Cookie", "")
    # An address without an account is slowed down alike: the answer tells nothing.
    nobody = unique("nobody") + "@x.test"
    for i in range(10):
        assert signin_post(c, {"email": nobody, "password": f"guess {i}"}).status_code == 422
    r = signin_post(c, {"email": nobody, "password": "guess 10"})
    assert r.status_code == 429 and "Too many wrong passwords for this address" in r.text
    # Other accounts are not affected.
    other = Client(stack)
    other_email = unique("unaffected") + "@x.test"
    other.signup(unique("Unaffected Org "), other_email)
    assert signin_post(Client(stack), {"email": other_email, "password": "correct horse battery"}).status_code == 303


def test_mails_to_one_address_are_rate_limited(stack, admin):
    email = unique("flooded") + "@x.test"
    codes = [Client(stack).post("/password/forgot", {"email": email}).status_code for _ in range(6)]
    assert codes[:5] == [200] * 5
    r = Client(stack).post("/password/forgot", {"email": email})
    assert r.status_code == 429 and "Too many password reset mails for this address" in r.text
    victim = unique("invited") + "@x.test"
    for i in range(5):
        assert admin.post("/members", {"email": victim, "display_name": "V", "role": "viewer"}).status_code == 303
    r = admin.post("/members", {"email": victim, "display_name": "V", "role": "viewer"})
    assert r.status_code == 429 and "Too many invitations for this address" in r.text
    assert len(stack.mail.links_to(victim, "/invitations/")) == 5
    squat = unique("resignup") + "@x.test"
    for i in range(5):
        Client(stack).signup_unconfirmed(unique("Again Org "), squat)
    r = Client(stack).post("/signup", {"org": unique("Again Org "), "display_name": "A", "email": squat,
                                       "password": "correct horse battery"})
    assert r.status_code == 429 and "Too many sign-ups for this address" in r.text


@pytest.fixture(scope="module")
def strict_stack():
    """A second installation whose per-client limit is 3 an hour (sign-ins: 30)."""
    with own_stack("strict", client_rate_limit=3) as s:
        yield s


def test_signups_and_resets_from_one_client_are_rate_limited(strict_stack):
    for i in range(3):
        Client(strict_stack).signup_unconfirmed(unique("Client Org "), unique("client") + "@x.test")
    r = Client(strict_stack).post("/signup", {"org": unique("Client Org "), "display_name": "C",
                                              "email": unique("client") + "@x.test", "password": "correct horse battery"})
    assert r.status_code == 429 and "Too many sign-ups from your network address" in r.text
    for i in range(3):
        assert Client(strict_stack).post("/password/forgot", {"email": unique("r") + "@x.test"}).status_code == 200
    r = Client(strict_stack).post("/password/forgot", {"email": unique("r") + "@x.test"})
    assert r.status_code == 429 and "Too many password reset mails from your network address" in r.text


def test_signup_says_nothing_about_whether_an_address_has_an_account(stack, admin):
    fresh = unique("fresh") + "@x.test"
    answers = []
    for email in (admin.email, fresh):
        org = unique("Probe Org ")
        r = Client(stack).post("/signup", {"org": org, "display_name": "P", "email": email,
                                           "password": "probe password 1"})
        answers.append((r.status_code, re.sub(r'value="[^"]*"', "", r.text).replace(email, "ADDR")))
    assert answers[0] == answers[1] and answers[0][0] == 200
    # The owner hears of it; nothing was created and nothing of theirs changed.
    mail = stack.mail.wait_subject(admin.email, "You already have a Stowage account")
    assert "/confirm/" not in mail and "/password/forgot" in mail
    assert signin_post(Client(stack), {"email": admin.email, "password": "correct horse battery"}).status_code == 303
    assert len(admin.json("/members").json()["members"]) == 1
    # A taken organisation name is refused the same way for every address.
    for email in (admin.email, unique("fresh") + "@x.test"):
        r = Client(stack).post("/signup", {"org": admin.org, "display_name": "P", "email": email,
                                           "password": "probe password 1"})
        assert r.status_code == 422 and "Organisation: that name is already taken" in r.text



def test_without_smtp_the_links_are_in_the_web_log_and_it_says_so():
    """The demo's case: no smtp_url. The mail, link included, is written to the web log."""
    with own_stack("nosmtp", smtp=False) as s:
        email = unique("logged") + "@x.test"
        c = Client(s)
        r = c.post("/signup", {"org": unique("Logged Org "), "display_name": "L", "email": email,
                               "password": "correct horse battery"})
        assert r.status_code == 200 and "Check your mail" in r.text
        with open(os.path.join(s.root, "logs", "web.log")) as f:
            log = f.read()
        assert "no smtp_url" in log and "written to this log instead of being sent" in log
        assert s.mail.links_to(email, "/confirm/") == []  # nothing went out
        link = re.search(r"mail to " + re.escape(email) + r" is only logged here: .*?http://[^/\s]+(/confirm/[A-Za-z0-9_-]+)",
                         log).group(1)
        assert c.follow(link).status_code == 303 and c.get("/").status_code == 200


def test_password_change_form_is_no_password_oracle_for_a_stolen_session(admin):
    for i in range(10):
        r = admin.post("/account/password", {"current_password": f"guess number {i}", "new_password": "attacker password"})
        assert r.status_code == 422 and "Current password: wrong" in r.text
    r = admin.post("/account/password", {"current_password": "correct horse battery", "new_password": "attacker password"})
    assert r.status_code == 429 and "Too many wrong passwords for this address" in r.text
    assert admin.get("/").status_code == 200  # nothing changed: the session is still there


def test_access_log_never_holds_a_live_one_time_link(stack):
    c = Client(stack)
    email = unique("logcheck") + "@x.test"
    c.signup(unique("Log Org "), email)
    token = stack.mail.link(email, "/confirm/").rsplit("/", 1)[1]
    # nginx buffers its access log and writes it out within a second (nginx/stowage.conf.in)
    deadline = time.time() + 10
    while True:
        with open(os.path.join(stack.root, "nginx", "access.log")) as f:
            log = f.read()
        if "/confirm/[token]" in log or time.time() > deadline:
            break
        time.sleep(0.2)
    assert "/confirm/[token]" in log
    assert token not in log
