"""Accounts on a hosted, multi-tenant service where every organisation is an attacker: where
sign-in may lead, what a stored secret may be sent to, cookies and the socket behind TLS."""
import re
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
