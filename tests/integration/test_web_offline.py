"""The web worker makes no outbound connection and runs no tenant code; runners answer for it.

A stack like a hosted deployment (allowed_private_networks empty; no SMTP server, so mails go to
the web log) whose stowage-web runs in a network namespace of its own (scripts/stack: unshare -n)
with nothing but its own loopback: it reaches PostgreSQL and nginx through unix sockets only.
Every page that needs a tenant's server (cluster and repository Test and save, the backup
wizard's live lists and checks, the migration's claims and pre-check, a hook's dry run) must
still work, answered by a runner: a connect() coming back into the web would fail them all.

The operator opts loopback (where the test clusters and MinIO listen) in for one organisation
only (org_network_opt_ins): another organisation of the same deployment is refused in words.

Run: cd tests/integration && STOWAGE_BUILD=../../build/asan /usr/bin/python3 -m pytest test_web_offline.py
"""
import json
import os
import re
import socket
import threading
import time

import subprocess

import boto3
import psycopg2
import pytest

from conftest import TOP, Client, own_stack, unique, owner_query


@pytest.fixture(scope="module")
def shop(testenv):
    """The fixture application in a namespace of its own on the source cluster."""
    ns = unique("offline-shop-")
    subprocess.run([os.path.join(TOP, "scripts", "testenv", "fixture-app"), testenv["SOURCE_KUBECONFIG"], ns,
                    testenv["SOURCE_VOLUME_DIR"]], check=True, env=dict(os.environ, KUBECTL=testenv["KUBECTL"]))
    return ns


@pytest.fixture(scope="module")
def hosted(testenv):
    with own_stack("offline", {"STOWAGE_ALLOWED_PRIVATE_NETWORKS": "", "STOWAGE_MOVER_LOCAL_ROOT": None},
                   smtp=False) as s:
        yield s


def signup(s, org):
    """Signs up and confirms through the link the web log holds (no SMTP server)."""
    c = Client(s)
    email = unique("offline") + "@example.test"
    r = c.post("/signup", {"org": org, "display_name": "O", "email": email, "password": "correct horse battery"})
    assert r.status_code == 200 and "Check your mail" in r.text, r.text[:500]
    with open(os.path.join(s.root, "logs", "web.log")) as f:
        log = f.read()
    link = re.search(r"mail to " + re.escape(email) + r" is only logged here: .*?http://[^/\s]+(/confirm/[A-Za-z0-9_-]+)",
                     log).group(1)
    assert c.follow(link).status_code == 303
    c.org_id = owner_query(s, "SELECT id FROM stowage.orgs WHERE name = %s", (org,))[0][0]
    return c


def opt_in_loopback(s, org_id):
    """What the operator does, as the owner role: the web's role cannot (see below)."""
    owner_query(s, "INSERT INTO stowage.org_network_opt_ins (org_id, networks, reason) VALUES (%s, %s, %s)",
                (org_id, "127.0.0.0/8, ::1/128", "the test clusters and MinIO listen on loopback"))


def cluster_form(testenv, name, which="SOURCE"):
    with open(testenv[f"{which}_CA_FILE"]) as f:
        ca = f.read()
    return {"name": name, "api_url": testenv[f"{which}_API_URL"], "token": testenv[f"{which}_ADMIN_TOKEN"], "ca_pem": ca}


def repo_form(testenv, bucket):
    return {"name": "minio", "kind": "s3-compatible", "bucket": bucket, "region": testenv["S3_REGION"],
            "endpoint": testenv["S3_ENDPOINT"], "access_key": testenv["S3_ACCESS_KEY"],
            "secret_key": testenv["S3_SECRET_KEY"]}


def web_pid(s):
    with open(os.path.join(s.root, "run", "web.pid")) as f:
        return int(f.read().strip())


@pytest.fixture(scope="module")
def opted(hosted, testenv):
    """An organisation the operator opted loopback in for, with both clusters and a repository."""
    c = signup(hosted, unique("Opted Org "))
    opt_in_loopback(hosted, c.org_id)
    r = c.post("/clusters", cluster_form(testenv, "source"))
    assert r.status_code == 303 and r.headers["Location"] == "/clusters", r.text[:1000]
    assert c.post("/clusters", cluster_form(testenv, "target", "TARGET")).status_code == 303
    clusters = {x["name"]: x for x in c.json("/clusters").json()["clusters"]}
    assert clusters["source"]["status"] == "connected", clusters
    c.source, c.target = clusters["source"]["id"], clusters["target"]["id"]
    bucket = unique("offline-")
    boto3.client("s3", endpoint_url=testenv["S3_ENDPOINT"], region_name=testenv["S3_REGION"],
                 aws_access_key_id=testenv["S3_ACCESS_KEY"],
                 aws_secret_access_key=testenv["S3_SECRET_KEY"]).create_bucket(Bucket=bucket)
    r = c.post("/repositories", repo_form(testenv, bucket))
    assert r.status_code == 303, r.text[:1000]
    repo = c.json("/repositories").json()["repositories"][0]
    assert repo["status"] == "connected", repo
    c.repo = repo["id"]
    return c


def test_the_web_worker_runs_without_a_network_or_the_master_key(hosted):
    pid = web_pid(hosted)
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    with open(f"/proc/{pid}/net/dev") as f:
        interfaces = [line.split(":")[0].strip() for line in f.readlines()[2:]]
    assert interfaces == ["lo"], interfaces
    # it holds the public sealing key only: the master key file is empty where it looks
    with open(os.path.join(hosted.root, "master.key")) as f:
        assert len(f.read().strip()) == 64
    with open(f"/proc/{pid}/root{hosted.root}/master.key") as f:
        assert f.read() == ""
    with open(os.path.join(hosted.root, "stowage.conf")) as f:
        assert f"sealing_key_file = {hosted.root}/sealing.key" in f.read()
    # its workers too (forked from it)
    children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    assert children and all(os.readlink(f"/proc/{c}/ns/net") == os.readlink(f"/proc/{pid}/ns/net") for c in children)


def test_cluster_and_repository_test_and_save_are_answered_by_a_runner(opted, hosted, testenv):
    # Test: the page follows the request, then says the runner's words.
    r = opted.post(f"/clusters/{opted.source}/test", {})
    assert r.status_code == 303 and r.headers["Location"] == f"/clusters/{opted.source}", r.text[:500]
    assert opted.waited >= 0
    page = opted.get(f"/clusters/{opted.source}")
    assert "Connected: Kubernetes v1." in page.text, page.text[:2000]
    r = opted.post(f"/repositories/{opted.repo}/test", {})
    assert r.status_code == 303
    assert "Connected: wrote, read back and deleted a probe object" in opted.get(f"/repositories/{opted.repo}").text
    # A cluster nobody listens for is refused on save in words, and nothing is stored.
    r = opted.post("/clusters", dict(cluster_form(testenv, "nowhere"), api_url="https://127.0.0.1:9"))
    assert r.status_code == 422 and "Not saved:" in r.text and "refused" in r.text, r.text[:2000]
    assert "nowhere" not in [x["name"] for x in opted.json("/clusters").json()["clusters"]]


def test_json_clients_follow_the_request_state(opted):
    """An API client posts, is sent to the request, and polls its state until it is answered."""
    csrf = opted.csrf()
    t0 = time.monotonic()
    r = opted.http.post(opted.stack.url + f"/clusters/{opted.source}/test", data={"_csrf": csrf},
                        headers={"Accept": "application/json"}, allow_redirects=False)
    assert r.status_code == 303 and re.match(r"^/requests/\d+$", r.json()["redirect"]), r.text
    request = r.json()["redirect"]
    states = set()
    deadline = time.time() + 30
    while time.time() < deadline:
        v = opted.json(request + "/state").json()["request"]
        states.add(v["state"])
        assert v["kind"] == "cluster_probe"
        if v["answered"]:
            break
        time.sleep(0.1)
    assert v["answered"] and v["state"] == "answered" and v["error"] == "", v
    print(f"a cluster Test, asked by the web and answered by a runner, in {(time.monotonic() - t0) * 1000:.0f} ms")
    # The request's page then acts on the answer once: here, the cluster's status.
    r = opted.json(request)
    assert r.status_code == 303 and r.json()["redirect"] == f"/clusters/{opted.source}"
    # Another organisation's request is not there for this one (row-level security).
    stranger = signup(opted.stack, unique("Stranger "))
    assert stranger.json(request + "/state").status_code == 404
    assert stranger.json(request).status_code == 404


def test_backup_wizard_migration_and_dry_run_read_the_cluster_through_a_runner(opted, testenv, shop):
    # Step 2 lists the cluster's namespaces, read by a runner.
    base = {"name": "offline-plan", "cluster_id": opted.source, "repository_id": opted.repo,
            "schedule_kind": "manual", "time_zone": "UTC", "retention_days": "7"}
    r = opted.post("/backup-plans/new?step=2", base)
    assert r.status_code == 200 and f'value="{shop}"' in r.text, r.text[:2000]
    # Step 3 lists the claims of the namespace.
    r = opted.post("/backup-plans/new?step=3", dict(base, namespaces=shop))
    assert r.status_code == 200 and "wordpress-data" in r.text, r.text[:3000]
    # A namespace the cluster lacks is refused on step 2, in words.
    r = opted.post("/backup-plans/new?step=3", dict(base, namespaces="no-such-ns"))
    assert r.status_code == 422 and "no-such-ns does not exist in the cluster" in r.text, r.text[:3000]
    # Finishing checks the plan against the cluster through a runner, then saves it.
    r = opted.post("/backup-plans", dict(base, namespaces=shop, volume_methods=f"{shop}/wordpress-data=filesystem",
                                         hook_script=""))
    assert r.status_code == 303 and r.headers["Location"].endswith("/jobs"), r.text[:3000]
    # The migration's claims (source) and classes (target), and its pre-check.
    mig = {"name": "offline-mig", "source_cluster_id": str(opted.source), "target_cluster_id": str(opted.target),
           "repository_id": str(opted.repo), "namespaces": shop}
    r = opted.post("/migrations/new", mig)
    assert r.status_code == 200, r.text[:2000]
    claims = re.findall(r'name="class:([^"]+)"', r.text)
    assert claims and "standard-nfs" in r.text, r.text[:3000]
    r = opted.post("/migrations", dict(mig, **{f"class:{c}": "standard-nfs" for c in claims}))
    assert r.status_code == 303, r.text[:2000]
    plan = r.headers["Location"]
    r = opted.post(plan + "/precheck", {})
    assert r.status_code == 200 and ("No conflict in the target cluster" in r.text or 'class="conflicts"' in r.text), r.text[:3000]
    # A hook's dry run runs in a runner's hook process; the page shows its log.
    r = opted.post("/hooks", {"name": "reader", "description": "",
                              "source": 'local cm = k8s.get("v1", "ConfigMap", "kube-root-ca.crt")\nlog("read", cm.metadata.name)'})
    assert r.status_code == 303, r.text[:1000]
    hid = r.headers["Location"].rsplit("/", 1)[1]
    r = opted.post(f"/hooks/{hid}/dry-run", {"cluster_id": str(opted.source), "namespace": shop,
                                           "phase": "pre-backup"})
    assert r.status_code == 200 and "Completed in" in r.text and "read\tkube-root-ca.crt" in r.text, r.text[:3000]


def test_an_organisations_network_opt_in_does_not_let_another_reach_loopback(hosted, opted, testenv):
    other = signup(hosted, unique("Not Opted "))
    r = other.post("/clusters", cluster_form(testenv, "source"))
    assert r.status_code == 422, r.text[:500]
    assert "address 127.0.0.1 is loopback (127.0.0.0/8), which is always refused" in r.text, r.text[:2000]
    r = other.post("/repositories", repo_form(testenv, "any-bucket"))
    assert r.status_code == 422 and "loopback (127.0.0.0/8), which is always refused" in r.text, r.text[:2000]
    # the opted-in organisation still reaches it, in the same deployment at the same moment
    assert opted.post(f"/clusters/{opted.source}/test", {}).status_code == 303
    assert "Connected" in opted.get(f"/clusters/{opted.source}").text


def test_the_web_role_can_neither_answer_requests_nor_opt_networks_in(hosted, opted):
    """As the web's database role: answering, claiming and opting in are refused by PostgreSQL."""
    conn = psycopg2.connect(hosted.pg_dsn_app)
    conn.autocommit = True
    cur = conn.cursor()
    attempts = [
        ("UPDATE stowage.runner_requests SET state = 'answered', result = '{\"ok\": true}'", "permission denied"),
        ("SELECT * FROM stowage.claim_runner_request('web', 10)", "permission denied"),
        ("INSERT INTO stowage.org_network_opt_ins (org_id, networks) VALUES (%d, '0.0.0.0/0')" % opted.org_id,
         "permission denied"),
        ("SELECT networks FROM stowage.org_network_opt_ins", "permission denied"),
    ]
    for sql, words in attempts:
        cur.execute("BEGIN")
        cur.execute("SELECT set_config('app.org_id', %s, true)", (str(opted.org_id),))
        with pytest.raises(psycopg2.Error) as e:
            cur.execute(sql)
        assert words in str(e.value), (sql, str(e.value))
        cur.execute("ROLLBACK")
    conn.close()


def test_a_tenants_tarpit_holds_no_web_worker_and_no_other_organisations_lane(hosted, opted, testenv):
    """An API server that accepts and never answers: the web answers at once (the runner waits,
    within its deadline); one organisation's many such Tests leave lanes for another's."""
    tarpit = socket.socket()
    tarpit.bind(("127.0.0.1", 0))
    tarpit.listen(64)
    held = []
    stop = threading.Event()

    def hold():
        tarpit.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(tarpit.accept()[0])
            except OSError:
                pass
    t = threading.Thread(target=hold, daemon=True)
    t.start()
    try:
        form = dict(cluster_form(testenv, "tarpit"), api_url=f"https://127.0.0.1:{tarpit.getsockname()[1]}")
        times = []
        for i in range(4):
            t0 = time.monotonic()
            r = opted.post("/clusters", dict(form, name=f"tarpit-{i}"), settle=False)
            times.append(time.monotonic() - t0)
            assert r.status_code == 303 and r.headers["Location"].startswith("/requests/")
        print(f"web answered saves against a tarpit in at most {max(times) * 1000:.0f} ms")
        assert max(times) < 2.0, times
        # another organisation (opted in too) is answered while those wait
        other = signup(hosted, unique("Busy Neighbour "))
        opt_in_loopback(hosted, other.org_id)
        t0 = time.monotonic()
        r = other.post("/clusters", cluster_form(testenv, "source"))
        took = time.monotonic() - t0
        assert r.status_code == 303, r.text[:1000]
        print(f"another organisation's save answered in {took:.1f} s while four Tests hung")
        assert took < 8, took
    finally:
        stop.set()
        t.join()
        for s in held:
            s.close()
        tarpit.close()


def test_a_request_naming_another_organisations_cluster_or_sealed_token_reads_nothing(hosted, opted, testenv):
    """A tenant that writes its own request rows (as the web's role could, for its organisation)
    naming another organisation's cluster, or carrying another organisation's sealed token,
    gets an answer in words and nothing of the other organisation."""
    victim_token = owner_query(hosted, "SELECT token_enc::text FROM stowage.clusters WHERE id = %s", (opted.source,))[0][0]
    attacker = signup(hosted, unique("Request Forger "))
    opt_in_loopback(hosted, attacker.org_id)  # the network is not what stops it
    conn = psycopg2.connect(hosted.pg_dsn_app)
    conn.autocommit = True
    cur = conn.cursor()

    def ask(kind, params):
        cur.execute("BEGIN")
        cur.execute("SELECT set_config('app.org_id', %s, true)", (str(attacker.org_id),))
        cur.execute("INSERT INTO stowage.runner_requests (kind, params) VALUES (%s, %s) RETURNING id", (kind, json.dumps(params)))
        rid = cur.fetchone()[0]
        cur.execute("COMMIT")
        return rid

    def answer(rid, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            cur.execute("BEGIN")
            cur.execute("SELECT set_config('app.org_id', %s, true)", (str(attacker.org_id),))
            cur.execute("SELECT state, result::text, error FROM stowage.runner_requests WHERE id = %s", (rid,))
            state, result, error = cur.fetchone()
            cur.execute("COMMIT")
            if state == "answered":
                return json.loads(result) if result else None, error
            time.sleep(0.2)
        raise AssertionError(f"request {rid} not answered")

    read = ask("cluster_read", {"reads": [{"read": "namespaces", "cluster_id": opted.source}]})
    result, error = answer(read)
    one = result["results"][0]
    assert not one["ok"] and "does not exist" in one["error"], one
    probe = ask("cluster_probe", {"purpose": "cluster_test", "cluster_id": opted.source,
                                  "api_url": testenv["SOURCE_API_URL"], "ca_pem": "", "token_enc": victim_token})
    result, error = answer(probe)
    assert not result["ok"] and "cannot be decrypted" in result["message"], result
    # and the victim's cluster row was not touched by the attacker's "Test"
    assert owner_query(hosted, "SELECT status FROM stowage.clusters WHERE id = %s", (opted.source,))[0][0] == "connected"
    dry = ask("hook_dry_run", {"cluster_id": opted.source, "namespace": "default", "phase": "pre-backup",
                               "name": "x", "source": "log('x')"})
    result, error = answer(dry)
    assert result is None and "does not exist" in error, error
    conn.close()


def test_a_tenant_cannot_queue_the_runners_full_of_requests(hosted, testenv):
    """Saves against a tarpit pile up (a runner answers an organisation two at a time, each
    after its 10 s deadline): past 20 waiting, the next is refused in words."""
    tarpit = socket.socket()
    tarpit.bind(("127.0.0.1", 0))
    tarpit.listen(128)
    try:
        c = signup(hosted, unique("Flooder "))
        opt_in_loopback(hosted, c.org_id)
        form = dict(cluster_form(testenv, "x"), api_url=f"https://127.0.0.1:{tarpit.getsockname()[1]}")
        codes = [c.post("/clusters", dict(form, name=f"flood-{i}"), settle=False).status_code for i in range(24)]
        assert codes[:20] == [303] * 20, codes
        assert 429 in codes[20:], codes
        r = c.post("/clusters", dict(form, name="one-more"), settle=False)
        assert r.status_code == 429 and "Too many requests of your organisation are waiting for a runner" in r.text
    finally:
        tarpit.close()


def test_a_request_no_runner_answers_is_answered_in_words(hosted, opted):
    """A request whose runner died while answering is answered with why after two minutes, and
    an old pending one is taken: no page waits for ever."""
    params = json.dumps({"reads": [{"read": "version", "cluster_id": opted.source}]})
    stale = owner_query(hosted, "INSERT INTO stowage.runner_requests (org_id, kind, params, state, created_at) "
                        "VALUES (%s, 'cluster_read', %s, 'pending', now() - interval '3 minutes'), "
                        "(%s, 'cluster_read', %s, 'running', now() - interval '3 minutes') RETURNING id",
                        (opted.org_id, params, opted.org_id, params))
    owner_query(hosted, "UPDATE stowage.runner_requests SET claimed_at = now() - interval '3 minutes', "
                "runner_id = 'runner-gone' WHERE id = %s", (stale[1][0],))
    deadline = time.time() + 45
    while time.time() < deadline:
        rows = owner_query(hosted, "SELECT state, error FROM stowage.runner_requests WHERE id IN (%s, %s) ORDER BY id",
                           (stale[0][0], stale[1][0]))
        if all(state == "answered" for state, _ in rows):
            break
        time.sleep(1)
    # a live runner takes an old pending request at once (the sweep answers it only when none does)
    assert rows[0][0] == "answered", rows
    assert rows[1] == ("answered", "The runner answering this stopped; try again."), rows
