"""A hostile tenant's API server and S3 endpoint (hostile_servers.py, started here on
loopback) against the runner's code and the data mover: every attack is refused in words,
the attacked process ends on its own with an error (no crash, no sanitizer report), and the
hostile server is still there afterwards.

The runner's side runs through tests/integration/c/itest_volumes (job_backup_volumes with a
job of the real database) and itest_exec (k8s_exec, a hook's exec), the mover's side through
stowage-mover itself.

Run: cd tests/integration && STOWAGE_BUILD=../../build/asan /usr/bin/python3 -m pytest test_hostile_servers.py
"""
import json
import os
import subprocess
import time

import psycopg2
import pytest

from conftest import Client, unique
from hostile_servers import HostileAPIServer, HostileS3Server

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("STOWAGE_BUILD", REPO)
ITEST = os.path.join(BUILD, "tests", "integration", "c", "itest_volumes")
ITEST_EXEC = os.path.join(BUILD, "tests", "integration", "c", "itest_exec")
MOVER = os.path.join(BUILD, "stowage-mover")
SANITIZER = ("AddressSanitizer", "runtime error:", "LeakSanitizer")


@pytest.fixture(scope="module")
def org(stack):
    conn = psycopg2.connect(stack.pg_dsn_owner)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("INSERT INTO stowage.orgs (name) VALUES (%s) RETURNING id", (unique("Hostile org "),))
    yield cur, cur.fetchone()[0]
    conn.close()


@pytest.fixture(scope="module")
def volume_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-volumes")
    (root / "vol").mkdir()
    return root


@pytest.fixture(scope="module")
def api(tmp_path_factory, volume_root):
    hostpaths = {"hostroot": "/", "dotdot": f"{volume_root}/vol/../../../../etc",
                 "etc": "/etc", "keydir": os.path.dirname(os.path.abspath(__file__))}
    s = HostileAPIServer(str(tmp_path_factory.mktemp("hostile-api")), hostpaths)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def s3():
    s = HostileS3Server()
    yield s
    s.stop()


def backup(stack, org, api, s3, volume_root, tmp_path, ns, timeout_ms=None):
    cur, org_id = org
    cur.execute("INSERT INTO stowage.jobs (org_id, kind, state) VALUES (%s, 'backup', 'running') RETURNING id",
                (org_id,))
    job = cur.fetchone()[0]
    conf = tmp_path / "runner.conf"
    conf.write_text(f"mover_launch = local\nmover_single_tenant = yes\nmover_local_root = {volume_root}\n")
    env = dict(os.environ, DATABASE_URL=stack.pg_dsn_app, ORG_ID=str(org_id), JOB_ID=str(job), CLUSTER_ID="1",
               API_URL=api.url, CA_FILE=api.cert_file, TOKEN="hostile", S3_ENDPOINT=s3.url, S3_REGION="us-east-1",
               S3_ACCESS_KEY="AKIAHOSTILE", S3_SECRET_KEY="hostile-secret", S3_BUCKET="nobucket",
               REPO_ID="1", REPO_PREFIX="p/", MASTER_KEY_HEX="11" * 32, MOVER_PATH=MOVER,
               RUNNER_CONFIG=str(conf))
    if timeout_ms:
        env["K8S_TIMEOUT_MS"] = str(timeout_ms)
    start = time.monotonic()
    res = subprocess.run([ITEST, "backup", unique("bk"), ns, "{}"], env=env, capture_output=True, text=True,
                         timeout=300)
    res.seconds = time.monotonic() - start
    assert not any(s in res.stderr for s in SANITIZER), res.stderr
    return res


@pytest.mark.parametrize("ns, words", [
    ("giant", "the API server's reply is larger than 128 MiB (one list page); stopped reading"),
    ("deep", "the API server's reply nests deeper than 128 levels; stopped reading"),
    ("many", "the API server's reply holds more than 4194304 JSON values (one list page); stopped reading"),
    ("endless", "the API server's list did not end after 2000 pages (its continue token never ran out); stopped"),
    ("repeat", "the API server's list repeats its continue token; stopped"),
])
def test_hostile_api_replies_are_refused_in_words(stack, org, api, s3, volume_root, tmp_path, ns, words):
    before = api.server.requests
    res = backup(stack, org, api, s3, volume_root, tmp_path, ns)
    assert res.returncode == 1, res.stderr
    assert f"listing the claims of namespace {ns}" in res.stderr and words in res.stderr, res.stderr
    assert api.alive()
    if ns == "endless":
        assert api.server.requests - before == 2000
    print(f"{ns}: refused after {res.seconds:.1f} s, {api.server.requests - before} requests")


def test_a_trickling_api_server_meets_the_request_deadline(stack, org, api, s3, volume_root, tmp_path):
    res = backup(stack, org, api, s3, volume_root, tmp_path, "trickle", timeout_ms=2000)
    assert res.returncode == 1 and "timed out" in res.stderr, res.stderr
    assert res.seconds < 60, res.seconds
    assert api.alive()
    print(f"trickle: refused after {res.seconds:.1f} s")


def hostile_exec(api, pod):
    env = dict(os.environ, API_URL=api.url, TOKEN="hostile", CA_FILE=api.cert_file)
    res = subprocess.run([ITEST_EXEC, "default", pod, "-", "2000", "1024", "true"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert not any(s in res.stderr for s in SANITIZER), res.stderr
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.parametrize("pod", ["frames", "pings"])
def test_an_exec_flooded_after_its_upgrade_ends_at_its_deadline(api, pod):
    """Bytes that keep coming are no reason to wait past the deadline: the exec (2 s) fails in
    words at it, long before the server would stop (a minute, with no status: an exec that ran
    on would fail otherwise)."""
    out = hostile_exec(api, pod)
    assert out["rc"] == -1 and out["reason"] == "Timeout", out
    assert out["message"] == "Timeout: the command did not finish within its time limit", out
    assert api.alive()


def test_an_exec_whose_server_resets_the_connection_fails_in_words(api):
    """curl writes why a read failed into the exec's error buffer: it must still be there."""
    out = hostile_exec(api, "reset")
    assert out == {"rc": -1, "reason": "ConnectionLost",
                   "message": "ConnectionLost: Failure when receiving data from the peer"}, out
    assert api.alive()


@pytest.mark.parametrize("ns, why", [
    ("hostroot", "it is not below mover_local_root"),
    ("etc", "it is not below mover_local_root"),
    ("keydir", "it is not below mover_local_root"),
    ("dotdot", 'it has a "." or ".." component or an empty one'),
])
def test_hostile_host_paths_are_refused_before_a_byte_moves(stack, org, api, s3, volume_root, tmp_path, ns, why):
    before = s3.server.requests
    res = backup(stack, org, api, s3, volume_root, tmp_path, ns)
    assert res.returncode == 1, res.stderr
    path = api.server.hostpaths[ns]
    assert (f'claim {ns}/data: the directory "{path}" of PersistentVolume pv-{ns} is refused: {why}; '
            "nothing was copied") in res.stderr, res.stderr
    assert s3.server.requests == before, "the repository was contacted for a refused volume"


def mover(s3, tmp_path, bucket):
    key = tmp_path / "key"
    key.write_text("22" * 32 + "\n")
    key.chmod(0o600)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIAHOSTILE", AWS_SECRET_ACCESS_KEY="hostile-secret")
    start = time.monotonic()
    res = subprocess.run([MOVER, "snapshots", "--repo", f"s3://{bucket}/p?endpoint={s3.url}&region=us-east-1"
                          "&path_style=1&deadline_s=3", "--repo-id", "x", "--key-file", str(key)],
                         env=env, capture_output=True, text=True, timeout=300)
    res.seconds = time.monotonic() - start
    assert not any(s in res.stderr for s in SANITIZER), res.stderr
    return res


@pytest.mark.parametrize("bucket, words", [
    ("trickle", "the endpoint took longer than the 3 s deadline of one request; stopped"),
    ("endless", "listing repeats its continuation token; stopped"),
    ("giant", "larger than allowed"),
])
def test_hostile_s3_replies_are_refused_in_words(s3, tmp_path, bucket, words):
    res = mover(s3, tmp_path, bucket)
    assert res.returncode == 1 and words in res.stderr, res.stderr
    assert res.seconds < 120, res.seconds
    assert s3.alive()
    print(f"{bucket}: refused after {res.seconds:.1f} s")


def test_a_deployment_that_opts_nothing_in_refuses_loopback_clusters_and_repositories(testenv):
    """A stack like a hosted deployment (allowed_private_networks empty, allowed_networks still
    naming loopback): the console refuses a cluster and a repository on loopback, in words."""
    from conftest import Client, own_stack
    with own_stack("hosted", {"STOWAGE_ALLOWED_PRIVATE_NETWORKS": ""}) as s:
        c = Client(s)
        c.signup(unique("Hosted "), unique("admin") + "@example.test")
        with open(testenv["SOURCE_CA_FILE"]) as f:
            ca = f.read()
        r = c.post("/clusters", {"name": "loopback", "api_url": testenv["SOURCE_API_URL"],
                                 "token": testenv["SOURCE_ADMIN_TOKEN"], "ca_pem": ca})
        assert r.status_code == 422, r.text[:500]
        assert ("address 127.0.0.1 is loopback (127.0.0.0/8), which is always refused unless "
                "allowed_private_networks names it") in r.text, r.text[:2000]
        r = c.post("/repositories", {"name": "loopback", "kind": "s3-compatible", "bucket": "any-bucket",
                                     "region": testenv["S3_REGION"], "endpoint": testenv["S3_ENDPOINT"],
                                     "access_key": testenv["S3_ACCESS_KEY"], "secret_key": testenv["S3_SECRET_KEY"]})
        assert r.status_code == 422, r.text[:500]
        assert "loopback (127.0.0.0/8), which is always refused" in r.text, r.text[:2000]


def cluster_read(stack, api, token, reads):
    """A tenant with a cluster at the hostile server (token picks its behaviour) asks a runner for
    reads, as the web does; the answer as stored: (result, error)."""
    c = Client(stack)
    c.signup(unique("Padded Org "), unique("padded") + "@example.test")
    with open(api.cert_file) as f:
        r = c.post("/clusters", {"name": "padded", "api_url": api.url, "token": token, "ca_pem": f.read()})
    assert r.status_code == 303, r.text[:500]
    cluster_id = c.json("/clusters").json()["clusters"][0]["id"]
    conn = psycopg2.connect(stack.pg_dsn_owner)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT org_id FROM stowage.clusters WHERE id = %s", (cluster_id,))
    org_id = cur.fetchone()[0]
    cur.execute("INSERT INTO stowage.runner_requests (org_id, kind, params) VALUES (%s, 'cluster_read', %s) "
                "RETURNING id", (org_id, json.dumps({"reads": [dict(r, cluster_id=cluster_id) for r in reads]})))
    rid = cur.fetchone()[0]
    deadline = time.time() + 60
    while True:
        cur.execute("SELECT state, result::text, error FROM stowage.runner_requests WHERE id = %s", (rid,))
        state, result, error = cur.fetchone()
        if state == "answered" or time.time() > deadline:
            break
        time.sleep(0.2)
    conn.close()
    assert state == "answered", state
    return (json.loads(result) if result else None), error


def test_a_list_page_padded_past_its_limit_reaches_the_web_as_one_page(stack, api):
    """A form's live list (the backup wizard's namespaces) asks for a page of 500; the tenant's
    server sends 10,000 (an aggregated server may ignore limit; a hostile one pads up to the
    128 MiB a page may hold). The runner keeps the page it asked for: the answer every wizard
    page parses again holds 500 names, not all that came. An answer still over 8 MiB (names of
    20,000 bytes) is not kept at all, and says so."""
    result, error = cluster_read(stack, api, "hostile-padded-token", [{"read": "namespaces"}])
    one = result["results"][0]
    assert error == "" and one["ok"], (error, one)
    assert one["data"] == [f"ns-{i:05d}" for i in range(500)]
    result, error = cluster_read(stack, api, "huge-names-token", [{"read": "namespaces"}])
    assert result is None and error == "The cluster's answer is larger than 8 MiB; nothing of it is kept.", error
