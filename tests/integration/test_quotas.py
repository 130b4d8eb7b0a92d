"""How much one organisation may keep (sql/031_organisation_quotas.sql): the row past a table's
bound is refused with a sentence naming the bound, whether the web or a runner stores it, and
nothing of another organisation is affected. The rows up to the bound are written here as the
database's owner (as if made through the console, only faster)."""
from conftest import Client, owner_query as owner, unique


def signed_up(stack):
    c = Client(stack)
    email = unique("quota") + "@example.test"
    c.signup(unique("Quota Org "), email)
    c.org_id = owner(stack, "SELECT m.org_id FROM stowage.memberships m JOIN stowage.users u ON u.id = m.user_id "
                            "WHERE u.email = %s", (email,))[0][0]
    return c


def test_the_row_past_a_bound_is_refused_in_words_and_others_are_not_touched(stack):
    full, other = signed_up(stack), signed_up(stack)
    owner(stack, "INSERT INTO stowage.hooks (org_id, name) SELECT %s, 'h' || n FROM generate_series(1, 500) n",
          (full.org_id,))
    hook = {"name": "one-more", "description": "", "source": "log('hello')"}
    r = full.post("/hooks", hook)
    assert r.status_code == 409, (r.status_code, r.text[:300])
    assert "This organisation has 500 hooks, the most it may have: delete one to add another." in r.text
    assert owner(stack, "SELECT count(*) FROM stowage.hooks WHERE org_id = %s", (full.org_id,))[0][0] == 500
    assert other.post("/hooks", hook).status_code == 303  # another organisation's bound is its own



def test_a_cluster_past_the_bound_is_not_stored_and_the_page_says_why(stack, testenv):
    """A cluster is stored by a runner, after its connection test: the bound is met there."""
    c = signed_up(stack)
    owner(stack, "INSERT INTO stowage.clusters (org_id, name, api_url, token_enc, key_id) "
                 "SELECT %s, 'c' || n, 'https://127.0.0.1:1', '\\x00', 'k' FROM generate_series(1, 200) n",
          (c.org_id,))
    try:
        with open(testenv["SOURCE_CA_FILE"]) as f:
            r = c.post("/clusters", {"name": "one-more", "api_url": testenv["SOURCE_API_URL"],
                                     "token": testenv["SOURCE_ADMIN_TOKEN"], "ca_pem": f.read()})
        assert r.status_code == 422, (r.status_code, r.text[:300])
        assert "Not saved: This organisation has 200 clusters, the most it may have" in r.text, r.text[-1500:]
        assert owner(stack, "SELECT count(*) FROM stowage.clusters WHERE org_id = %s", (c.org_id,))[0][0] == 200
    finally:  # their tokens are not sealed: they would stop the stack's key rotation test
        owner(stack, "DELETE FROM stowage.clusters WHERE org_id = %s", (c.org_id,))


def test_hook_versions_are_bounded_by_their_bytes(stack):
    c = signed_up(stack)
    assert c.post("/hooks", {"name": "big", "description": "", "source": "log('v1')"}).status_code == 303
    hook_id = owner(stack, "SELECT id FROM stowage.hooks WHERE org_id = %s AND name = 'big'", (c.org_id,))[0][0]
    # 255 versions of 256 KiB beside the first: 262135 bytes short of 64 MiB
    owner(stack, "INSERT INTO stowage.hook_versions (org_id, hook_id, version, source) "
                 "SELECT %s, %s, n, repeat('-', 262144) FROM generate_series(2, 256) n", (c.org_id, hook_id))
    owner(stack, "UPDATE stowage.hooks SET current_version = 256 WHERE id = %s", (hook_id,))
    fits = "log('" + "v" * 262128 + "')"    # 262135 bytes: the last that fits
    r = c.post(f"/hooks/{hook_id}", {"name": "big", "description": "", "source": fits.replace("v", "vv", 1)})
    assert r.status_code == 409, (r.status_code, r.text[:300])
    assert "hooks keep 63 MiB of script versions, and 64 MiB is the most" in r.text, r.text[:800]
    assert owner(stack, "SELECT max(version) FROM stowage.hook_versions WHERE hook_id = %s", (hook_id,))[0][0] == 256
    assert c.post(f"/hooks/{hook_id}", {"name": "big", "description": "", "source": fits}).status_code == 303
    assert owner(stack, "SELECT max(version) FROM stowage.hook_versions WHERE hook_id = %s", (hook_id,))[0][0] == 257
