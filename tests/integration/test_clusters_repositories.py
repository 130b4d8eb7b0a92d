"""Clusters and backup repositories through the console, against the real API servers and the
real MinIO of the test environment: connection tests in words, secrets sealed at rest and never
sent back, tenants apart, viewers read-only."""
import html
import os
import subprocess

import boto3
import psycopg2
import pytest

from conftest import Client, unique


def ca_pem(testenv, cluster="SOURCE"):
    with open(testenv[f"{cluster}_CA_FILE"]) as f:
        return f.read()


def add_cluster(c, testenv, name, token=None, ca=None, url=None, **extra):
    data = {"name": name, "api_url": url or testenv["SOURCE_API_URL"],
            "token": token if token is not None else testenv["SOURCE_ADMIN_TOKEN"],
            "ca_pem": ca if ca is not None else ca_pem(testenv)}
    data.update(extra)
    return c.post("/clusters", data)


@pytest.fixture(scope="module")
def bucket(testenv):
    s3 = boto3.client("s3", endpoint_url=testenv["S3_ENDPOINT"], region_name=testenv["S3_REGION"],
                      aws_access_key_id=testenv["S3_ACCESS_KEY"], aws_secret_access_key=testenv["S3_SECRET_KEY"])
    name = unique("repo-test-")
    s3.create_bucket(Bucket=name)
    return name


def add_repo(c, testenv, name, bucket, secret=None, **extra):
    data = {"name": name, "kind": "s3-compatible", "bucket": bucket, "region": testenv["S3_REGION"],
            "endpoint": testenv["S3_ENDPOINT"], "access_key": testenv["S3_ACCESS_KEY"],
            "secret_key": secret if secret is not None else testenv["S3_SECRET_KEY"]}
    data.update(extra)
    return c.post("/repositories", data)


def cluster_row(c, name):
    return [x for x in c.json("/clusters").json()["clusters"] if x["name"] == name][0]


def test_add_cluster_says_connected_with_version(admin, testenv):
    r = add_cluster(admin, testenv, "source")
    assert r.status_code == 303, r.text
    assert "Connected: Kubernetes v1." in admin.get("/clusters").text  # the flash after the redirect
    row = cluster_row(admin, "source")
    assert row["status"] == "connected"
    assert row["k8s_version"].startswith("v1.")


def test_cluster_errors_in_words(admin, testenv):
    r = add_cluster(admin, testenv, "limited", token=testenv["SOURCE_LIMITED_TOKEN"])
    assert r.status_code == 422
    assert "forbidden (403)" in r.text
    r = add_cluster(admin, testenv, "badtoken", token="not-a-valid-token")
    assert r.status_code == 422 and "token rejected (401" in r.text
    r = add_cluster(admin, testenv, "wrongca", ca=ca_pem(testenv, "TARGET"))
    assert r.status_code == 422 and "TLS verification failed" in r.text
    r = add_cluster(admin, testenv, "refused", url="https://127.0.0.1:1")
    assert r.status_code == 422 and "connection refused" in r.text
    r = add_cluster(admin, testenv, "outside", url="https://192.0.2.10:6443")
    assert r.status_code == 422 and "allowed networks" in r.text
    assert [x["name"] for x in admin.json("/clusters").json()["clusters"]] == []
    # one rule for the address, the one the form states: https:// only, refused before any connection
    r = add_cluster(admin, testenv, "plain", url=testenv["SOURCE_API_URL"].replace("https://", "http://"))
    assert r.status_code == 422 and "API server URL: must be an https:// URL" in r.text
    assert "(https:// only)" in admin.get("/clusters/new").text
    r = add_cluster(admin, testenv, "Bad Name!", ca="not a pem")
    assert r.status_code == 422
    assert "Name: use lowercase letters" in r.text and "CA bundle: must be PEM" in r.text


def test_cluster_saved_unverified_shows_the_reason(admin, testenv):
    r = add_cluster(admin, testenv, "later", url="https://127.0.0.1:1", save_unverified="on")
    assert r.status_code == 303
    row = cluster_row(admin, "later")
    assert row["status"] == "error" and "connection refused" in row["status_message"]


def test_token_is_never_sent_back_and_edit_keeps_it(admin, testenv):
    assert add_cluster(admin, testenv, "keeper").status_code == 303
    cid = cluster_row(admin, "keeper")["id"]
    token = testenv["SOURCE_ADMIN_TOKEN"]
    for body in (admin.get(f"/clusters/{cid}").text, admin.json(f"/clusters/{cid}").text,
                 admin.json("/clusters").text, admin.get("/audit").text):
        assert token not in body
    r = admin.post(f"/clusters/{cid}", {"name": "keeper", "api_url": testenv["SOURCE_API_URL"],
                                        "ca_pem": ca_pem(testenv), "token": ""})
    assert r.status_code == 303, r.text
    assert cluster_row(admin, "keeper")["status"] == "connected"
    assert admin.post(f"/clusters/{cid}/test", {}).status_code == 303
    assert "Connected: Kubernetes" in admin.get(f"/clusters/{cid}").text


def test_database_holds_no_plaintext_secret(stack, admin, testenv, bucket):
    assert add_cluster(admin, testenv, "dumped").status_code == 303
    assert add_repo(admin, testenv, "dumped", bucket).status_code == 303
    dump = subprocess.run(["pg_dump", "-h", os.path.join(stack.root, "pg"), "-p", str(stack.pg_port),
                           "-U", "stowage_owner", "-d", "stowage", "--data-only"],
                          capture_output=True, text=True, check=True).stdout
    assert "dumped" in dump  # the rows are in the dump...
    assert testenv["SOURCE_ADMIN_TOKEN"] not in dump  # ...their secrets are not
    assert testenv["S3_SECRET_KEY"] not in dump


def test_tampered_or_moved_ciphertext_does_not_decrypt(stack, admin, testenv):
    assert add_cluster(admin, testenv, "tamper").status_code == 303
    cid = cluster_row(admin, "tamper")["id"]
    other = Client(stack)
    other.signup(unique("Tamper Org "), unique("t") + "@x.test")
    assert add_cluster(other, testenv, "victim").status_code == 303
    vid = cluster_row(other, "victim")["id"]
    owner = psycopg2.connect(stack.pg_dsn_owner)
    with owner, owner.cursor() as cur:
        # the other tenant's sealed token copied into this tenant's row
        cur.execute("UPDATE stowage.clusters SET token_enc = (SELECT token_enc FROM stowage.clusters WHERE id = %s) "
                    "WHERE id = %s", (vid, cid))
    admin.post(f"/clusters/{cid}/test", {})
    assert "cannot be decrypted" in admin.get(f"/clusters/{cid}").text
    with owner, owner.cursor() as cur:
        cur.execute("UPDATE stowage.clusters SET token_enc = set_byte(token_enc, 20, get_byte(token_enc, 20) # 1) "
                    "WHERE id = %s", (vid,))
    other.post(f"/clusters/{vid}/test", {})
    assert "cannot be decrypted" in other.get(f"/clusters/{vid}").text
    # broken rows would (rightly) stop a key rotation in a later test: remove them
    assert other.post(f"/clusters/{vid}/delete", {}).status_code == 303
    assert admin.post(f"/clusters/{cid}/delete", {}).status_code == 303
    owner.close()


def test_tenants_do_not_see_each_others_clusters(stack, admin, testenv):
    assert add_cluster(admin, testenv, "mine").status_code == 303
    cid = cluster_row(admin, "mine")["id"]
    other = Client(stack)
    other.signup(unique("Curious Org "), unique("c") + "@x.test")
    assert other.get(f"/clusters/{cid}").status_code == 404
    assert other.post(f"/clusters/{cid}/test", {}).status_code == 404
    assert other.post(f"/clusters/{cid}/delete", {}).status_code == 404
    assert other.json("/clusters").json()["clusters"] == []
    assert cluster_row(admin, "mine")["name"] == "mine"


def test_viewer_sees_but_cannot_add(stack, admin, testenv):
    assert add_cluster(admin, testenv, "seen").status_code == 303
    email = unique("v") + "@x.test"
    v = admin.invite(email, "viewer", "viewer password", name="V")
    assert "seen" in v.get("/clusters").text
    assert add_cluster(v, testenv, "nope").status_code == 403
    assert v.post(f"/clusters/{cluster_row(admin, 'seen')['id']}/delete", {}).status_code == 403


def test_repository_connected_and_errors_in_words(admin, testenv, bucket):
    r = add_repo(admin, testenv, "minio", bucket)
    assert r.status_code == 303, r.text
    row = [x for x in admin.json("/repositories").json()["repositories"] if x["name"] == "minio"][0]
    assert row["status"] == "connected"
    r = add_repo(admin, testenv, "badsecret", bucket, secret="wrong-secret-key")
    assert r.status_code == 422 and "signature does not match" in r.text
    r = add_repo(admin, testenv, "nobucket", "no-such-bucket-here")
    assert r.status_code == 422 and "does not exist" in r.text
    r = add_repo(admin, testenv, "noendpoint", bucket, endpoint="")
    assert r.status_code == 422 and "Endpoint: required for an S3-compatible store" in r.text
    r = add_repo(admin, testenv, "badbucket", "Bad_Bucket")
    assert r.status_code == 422 and "Bucket: 3 to 63 lowercase" in r.text
    for region in ("-starts-with-dash", "ends-", "us--east-1", "US-EAST-1", "us east 1"):
        r = add_repo(admin, testenv, "badregion", bucket, region=region)
        assert r.status_code == 422 and "Region: words of lowercase letters and digits joined by single '-'" in \
            html.unescape(r.text), region
    body = admin.json("/repositories").text + admin.get(f"/repositories/{row['id']}").text
    assert testenv["S3_SECRET_KEY"] not in body


def test_two_organisations_share_one_bucket(stack, admin, testenv, bucket):
    other = Client(stack)
    other.signup(unique("Sharing Org "), unique("s") + "@x.test")
    assert add_repo(admin, testenv, "shared", bucket, prefix="team-a").status_code == 303
    assert add_repo(other, testenv, "shared", bucket, prefix="team-b").status_code == 303


def kubeconfig_yaml(testenv, context="prod-admin@source", user_block=None, ca_line=None):
    import base64
    ca = base64.b64encode(ca_pem(testenv).encode()).decode()
    user = user_block or f"    token: {testenv['SOURCE_ADMIN_TOKEN']}"
    return f"""apiVersion: v1
kind: Config
clusters:
- name: src
  cluster:
    server: {testenv['SOURCE_API_URL']}
{ca_line or '    certificate-authority-data: ' + ca}
users:
- name: admin
  user:
{user}
contexts:
- name: {context}
  context:
    cluster: src
    user: admin
current-context: {context}
"""


def test_import_kubeconfig_upload(admin, testenv):
    token = admin.csrf()
    r = admin.http.post(admin.stack.url + "/clusters/import", data={"_csrf": token},
                        files={"kubeconfig": ("config", kubeconfig_yaml(testenv), "application/yaml")},
                        allow_redirects=False)
    r = admin.settle(r, "/clusters/import", None, {"allow_redirects": False})
    assert r.status_code == 303, r.text
    row = cluster_row(admin, "prod-admin-source")
    assert row["status"] == "connected" and row["api_url"] == testenv["SOURCE_API_URL"]
    assert testenv["SOURCE_ADMIN_TOKEN"] not in admin.json(f"/clusters/{row['id']}").text


def test_import_kubeconfig_refusals_in_words(admin, testenv):
    r = admin.post("/clusters/import", {"kubeconfig_text": kubeconfig_yaml(
        testenv, user_block="    client-certificate-data: AAAA\n    client-key-data: AAAA")})
    assert r.status_code == 422 and "client certificate" in r.text
    r = admin.post("/clusters/import", {"kubeconfig_text": kubeconfig_yaml(
        testenv, ca_line=f"    certificate-authority: {testenv['SOURCE_CA_FILE']}")})
    assert r.status_code == 422 and "certificate-authority" in r.text
    r = admin.post("/clusters/import", {"kubeconfig_text": "clusters: [unclosed"})
    assert r.status_code == 422 and "Kubeconfig:" in r.text
    r = admin.post("/clusters/import", {"kubeconfig_text": kubeconfig_yaml(testenv), "context": "nope"})
    assert r.status_code == 422 and "nope" in r.text
    assert admin.json("/clusters").json()["clusters"] == []


def test_key_rotation_reseals_every_secret(testenv, tmp_path):
    """On an installation of its own: between the two rotations the running workers and runners
    open no secret, which would fail whatever else ran on the shared stack then. (That every
    sealed value of the shared stack opens is checked when its session ends: conftest.)"""
    from conftest import own_stack
    with own_stack("rotate") as stack:
        admin = Client(stack)
        admin.signup(unique("Rotate Org "), unique("rotate") + "@example.test")
        rotate_and_back(stack, admin, testenv, tmp_path)


def rotate_and_back(stack, admin, testenv, tmp_path):
    assert add_cluster(admin, testenv, "rotated").status_code == 303
    cid = cluster_row(admin, "rotated")["id"]
    new_key = str(tmp_path / "new.key")
    out = stack.rotate_key(new_key)
    assert oct(os.stat(new_key).st_mode & 0o777) == "0o600"
    assert out.returncode == 0, out.stderr
    assert "re-sealed" in out.stdout and testenv["SOURCE_ADMIN_TOKEN"] not in out.stdout + out.stderr
    # the running workers still hold the old key: the secret no longer opens for them
    admin.post(f"/clusters/{cid}/test", {})
    assert "cannot be decrypted" in admin.get(f"/clusters/{cid}").text
    # rotate back with a configuration that names the new key: it opens under the new key
    back = stack.rotate_key_back(new_key, str(tmp_path / "new.conf"))
    assert back.returncode == 0, back.stderr
    admin.post(f"/clusters/{cid}/test", {})
    assert "Connected: Kubernetes" in admin.get(f"/clusters/{cid}").text


def test_a_cluster_in_use_by_a_plan_is_not_deleted(stack, admin, testenv, bucket):
    assert add_cluster(admin, testenv, "busy").status_code == 303
    assert add_repo(admin, testenv, "busy-store", bucket).status_code == 303
    cid = cluster_row(admin, "busy")["id"]
    conn = psycopg2.connect(stack.pg_dsn_owner)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces) "
                    "SELECT org_id, 'uses-busy', id, (SELECT id FROM stowage.repositories WHERE name = 'busy-store' "
                    "AND org_id = c.org_id), ARRAY['default'] FROM stowage.clusters c WHERE id = %s", (cid,))
    conn.close()
    r = admin.post(f"/clusters/{cid}/delete", {})
    assert r.status_code == 409 and "used by a plan" in r.text
    assert cluster_row(admin, "busy")["name"] == "busy"


def test_connection_tests_are_rate_limited_per_organisation(stack, admin, testenv):
    """Each test or save connects to the tenant's server from our network: an organisation gets
    rate_limit_per_org of them an hour (120 by default), then 429 in words; another organisation
    is not affected."""
    add_cluster(admin, testenv, "probed")
    cid = cluster_row(admin, "probed")["id"]
    answers = [admin.post(f"/clusters/{cid}/test", {}).status_code for _ in range(120)]
    # the save above counted as one
    assert answers.count(303) == 119 and answers[-1] == 429, answers
    r = admin.post(f"/clusters/{cid}/test", {})
    assert r.status_code == 429 and "Too many connection tests and dry runs for your organisation" in r.text
    other = Client(stack)
    other.signup(unique("Other Org "), unique("other") + "@example.test")
    add_cluster(other, testenv, "fresh")
    assert cluster_row(other, "fresh")["status"] == "connected"
