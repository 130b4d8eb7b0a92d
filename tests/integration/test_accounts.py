"""Accounts on a hosted, multi-tenant service where every organisation is an attacker: where
sign-in may lead, what a stored secret may be sent to, cookies and the socket behind TLS."""
import re
import socket
import time

import pytest

from conftest import Client, unique

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
    """A sign-in POST; nginx's per-address limit (30 a minute) may answer 429, then wait a token."""
    for _ in range(20):
        r = c.post("/signin", data)
        if r.status_code != 429:
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
