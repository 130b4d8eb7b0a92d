"""A restore at the shipped pace (restore_parallelism requests in flight, no fixed rate) against
an API server that pushes back (issue 14):

- the real kube-apiserver of the test environment, made to refuse for real by API Priority and
  Fairness: a FlowSchema sends the restorer's ServiceAccount to a PriorityLevelConfiguration of
  one concurrency share whose limitResponse is Reject, so concurrent creates get 429. The
  restore still ends succeeded with every object created, and says it was slowed down;
- a hostile server (hostile_servers.PushbackAPIServer) that refuses every ConfigMap create with
  429 and a Retry-After of a day, of 1e9 seconds, or garbage: the restore waits each out within
  the cap, gives each object up after a bounded number of attempts (or once the server has
  accepted nothing for a minute), and ends with those objects failed in words;
  a cancel ends such a restore while it waits. A backup's LIST pages refused more often than a
  failing server is retried, one of them asking a day, are waited out within the cap.

Run: cd tests/integration && STOWAGE_BUILD=../../build/asan /usr/bin/python3 -m pytest test_restore_pushback.py
"""
import json
import threading
import time

import pytest

from conftest import unique
from fixtures_testenv import kubectl
from hostile_servers import PushbackAPIServer
from test_clusters_repositories import add_cluster
from test_restore_job import archive, restorer  # noqa: F401

PUSHBACK_ATTEMPTS = 8		# RESTORE_PUSHBACK_ATTEMPTS in src/runner/job_restore.c
RETRY_AFTER_MAX_S = 10		# K8S_RETRY_AFTER_MAX_MS in src/kube/k8s_client.h
GIVEUP_S = 60			# RESTORE_PUSHBACK_GIVEUP_MS


def configmaps(ns, n):
    return {("configmaps", ns, f"cm-{i:04d}"): {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:04d}", "namespace": ns},
        "data": {"index": str(i), "pad": "x" * 256}} for i in range(n)}


def register(restorer, name, url, token, ca):
    r = add_cluster(restorer.client, restorer.env, name, token=token, ca=ca, url=url)
    assert r.status_code == 303, r.text
    clusters = {c["name"]: c["id"] for c in restorer.client.json("/clusters").json()["clusters"]}
    restorer.cluster[name] = int(clusters[name])


@pytest.fixture(scope="module")
def apf_cluster(restorer, testenv):
    """The target cluster through a ServiceAccount of its own that API Priority and Fairness
    holds to one concurrency share and rejects past it."""
    sa, name = unique("restorer-"), unique("stowage-pushback-")
    kubectl(testenv, "target", "create", "serviceaccount", sa, "-n", "default")
    kubectl(testenv, "target", "create", "clusterrolebinding", sa, "--clusterrole=cluster-admin",
            f"--serviceaccount=default:{sa}")
    kubectl(testenv, "target", "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
         "metadata": {"name": name},
         "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 1, "lendablePercent": 0,
                                                 "borrowingLimitPercent": 0, "limitResponse": {"type": "Reject"}}}},
        {"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema", "metadata": {"name": name},
         "spec": {"priorityLevelConfiguration": {"name": name}, "matchingPrecedence": 100,
                  "distinguisherMethod": {"type": "ByUser"},
                  "rules": [{"subjects": [{"kind": "ServiceAccount", "serviceAccount": {"name": sa, "namespace": "default"}}],
                             "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                                "namespaces": ["*"], "clusterScope": True}],
                             "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}]}}]}))
    token = kubectl(testenv, "target", "create", "token", sa, "-n", "default", "--duration=2h").stdout.strip()
    # the API server takes up a new FlowSchema within moments
    deadline = time.time() + 60
    while "Dangling" not in kubectl(testenv, "target", "get", "flowschema", name, "-o", "json").stdout:
        assert time.time() < deadline, "the FlowSchema was never taken up"
        time.sleep(0.5)
    with open(testenv["TARGET_CA_FILE"]) as f:
        register(restorer, "target-apf", testenv["TARGET_API_URL"], token, f.read())
    yield "target-apf"
    kubectl(testenv, "target", "delete", "flowschema", name, check=False)
    kubectl(testenv, "target", "delete", "prioritylevelconfiguration", name, check=False)


def test_restore_slowed_by_priority_and_fairness_still_creates_everything(restorer, testenv, apf_cluster):
    n = 400
    src, dst = unique("apf-src"), unique("apf-dst")
    objs = configmaps(src, n)
    backup_id = restorer.upload_backup(unique("bk-apf-"), archive(objs))
    state, error, result, items = restorer.restore(backup_id, apf_cluster, namespace_map={src: dst}, timeout=900)
    assert state == "succeeded", (state, error)
    created = [k for k, (a, _) in items.items() if k[0] == "configmaps" and a == "created"]
    assert len(created) == n, {a for a, _ in items.values()}
    listed = json.loads(kubectl(testenv, "target", "get", "configmaps", "-n", dst, "-o", "json").stdout)["items"]
    assert {o["metadata"]["name"] for o in listed} >= {name for _, _, name in objs}
    # the server pushed back, and the restore says it slowed down
    create = result["create"]
    assert create["pushbacks"] > 0 and create["rate_limit"] == 0, create
    assert create["smallest_in_flight"] < create["parallelism"], create
    logs = [m for (m,) in restorer.all("SELECT message FROM stowage.job_logs WHERE job_id = %s", (restorer.last_job,))]
    assert any("slowed down by the API server" in m for m in logs), logs
    print(f"APF: {n} ConfigMaps in {create['seconds']} s, {create['pushbacks']} push backs, "
          f"down to {create['smallest_in_flight']} in flight, {create['pushback_wait_seconds']} s waited")


@pytest.fixture(scope="module")
def hostile(restorer, testenv, tmp_path_factory):
    s = PushbackAPIServer(str(tmp_path_factory.mktemp("pushback")), testenv["TARGET_API_URL"],
                          testenv["TARGET_CA_FILE"], ["86400", "1000000000", "soon, maybe", "-3"])
    with open(s.cert_file) as f:
        register(restorer, "target-pushback", s.url, testenv["TARGET_ADMIN_TOKEN"], f.read())
    yield s
    s.stop()


def test_a_server_that_pushes_back_forever_does_not_stall_the_restore(restorer, hostile):
    src, dst = unique("pb-src"), unique("pb-dst")
    objs = configmaps(src, 3)
    backup_id = restorer.upload_backup(unique("bk-pb-"), archive(objs))
    before = hostile.server.refused
    state, error, result, items = restorer.restore(backup_id, "target-pushback", namespace_map={src: dst}, timeout=300)
    assert state == "partially_failed", (state, error)	# the namespace was created, no ConfigMap
    for key in objs:
        action, message = items[("configmaps", dst, key[2])]
        assert action == "failed", (action, message)
        assert (f"the API server pushed back all {PUSHBACK_ATTEMPTS} attempts" in message or
                f"the API server has accepted no request for {GIVEUP_S} s" in message), message
    assert 3 <= hostile.server.refused - before <= 3 * PUSHBACK_ATTEMPTS
    # each wait within the cap whatever the server asked (a day, 1e9 s, garbage), and no more
    # waiting once the server had accepted nothing for GIVEUP_S
    assert 0 < result["create"]["pushback_wait_seconds"] <= GIVEUP_S + RETRY_AFTER_MAX_S + 1, result["create"]
    assert hostile.alive()


def test_a_restore_waiting_on_a_push_back_is_cancelled_at_once(restorer, hostile):
    src, dst = unique("pbc-src"), unique("pbc-dst")
    backup_id = restorer.upload_backup(unique("bk-pbc-"), archive(configmaps(src, 3)))
    before = hostile.server.refused
    done = {}
    t = threading.Thread(target=lambda: done.update(r=restorer.restore(backup_id, "target-pushback",
                                                                        namespace_map={src: dst}, timeout=300)))
    t.start()
    deadline = time.time() + 120
    while hostile.server.refused - before < 3:	# every object pushed back once: all wait now
        assert time.time() < deadline and t.is_alive(), "no create reached the server"
        time.sleep(0.2)
    job = restorer.one("SELECT max(id) FROM stowage.jobs WHERE org_id = %s AND kind = 'restore'", (restorer.org,))[0]
    r = restorer.client.post(f"/jobs/{job}/cancel", {})
    assert r.status_code == 303, r.text
    t.join(120)
    state, error, _, _ = done["r"]
    assert state == "cancelled", (state, error)
    # the waits ended with the cancel: far fewer attempts than the bound
    assert hostile.server.refused - before < 3 * PUSHBACK_ATTEMPTS


def test_a_backup_waits_out_pushed_back_list_pages_within_the_cap(restorer, testenv, hostile):
    ns = unique("pb-backup")
    kubectl(testenv, "target", "create", "namespace", ns)
    kubectl(testenv, "target", "create", "configmap", "kept", "-n", ns, "--from-literal=a=b")
    before = hostile.server.refused
    hostile.server.list_refusals = 6	# one more than the attempts a failing server gets; one asks a day
    plan = restorer.one("INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces) "
                        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                        (restorer.org, unique("pb-plan-"), restorer.cluster["target-pushback"], restorer.repo, [ns]))[0]
    job = restorer.one("INSERT INTO stowage.jobs (org_id, kind, backup_plan_id, cluster_id) VALUES (%s, 'backup', %s, %s) "
                       "RETURNING id", (restorer.org, plan, restorer.cluster["target-pushback"]))[0]
    deadline = time.time() + 300
    while (state := restorer.one("SELECT state FROM stowage.jobs WHERE id = %s", (job,))[0]) in ("queued", "running"):
        assert time.time() < deadline, f"backup job {job} still {state}"
        time.sleep(0.5)
    error = restorer.one("SELECT error FROM stowage.jobs WHERE id = %s", (job,))[0]
    assert state == "succeeded", (state, error)
    assert hostile.server.refused - before == 6 and hostile.server.list_refusals == 0
    names = [n for (n,) in restorer.all("SELECT name FROM stowage.job_items WHERE job_id = %s AND resource = 'configmaps'",
                                        (job,))]
    assert "kept" in names, names
