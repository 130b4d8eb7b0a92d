"""The real application (scripts/testenv/real-app, tests/testenv/real-app.yaml) on a test
cluster's real node: PostgreSQL in a StatefulSet with a claim of the real local-path-provisioner,
holding the rows the script wrote, and an nginx web tier (Debian's nginx in an image of
scripts/testenv/images/app-image) serving a page from a claim of its own. The script refuses bad
arguments in words, and a second run changes nothing.

Run: cd tests/integration && STOWAGE_BUILD=../../build/asan /usr/bin/python3 -m pytest test_real_app.py
"""

import json
import os
import subprocess

from conftest import TOP, unique
from fixtures_testenv import kubectl
from test_real_node import needs_real_nodes, k8s_exec  # noqa: F401 (autouse fixture)

REAL_APP = os.path.join(TOP, "scripts", "testenv", "real-app")


def real_app(testenv, *args, check=True):
    """scripts/testenv/real-app ROOT args...; with check, it must succeed."""
    res = subprocess.run([REAL_APP, testenv["TESTENV_ROOT"], *args], capture_output=True, text=True, timeout=600)
    assert not check or res.returncode == 0, res.stderr
    return res


def test_real_app_runs_its_database_and_web_tier_on_the_real_node(testenv):
    ns = unique("realapp")
    real_app(testenv, ns, "source", "2500")
    pods = json.loads(kubectl(testenv, "source", "-n", ns, "get", "pods", "-o", "json").stdout)["items"]
    assert sorted(p["metadata"]["labels"]["app"] for p in pods) == ["db", "web"]
    for p in pods:
        assert p["spec"]["nodeName"] == testenv["SOURCE_REAL_NODE"] and p["status"]["phase"] == "Running", p["status"]
        assert p["status"]["containerStatuses"][0]["ready"], p["status"]
    claims = json.loads(kubectl(testenv, "source", "-n", ns, "get", "pvc", "-o", "json").stdout)["items"]
    assert sorted((c["metadata"]["name"], c["spec"]["storageClassName"], c["status"]["phase"]) for c in claims) == \
        [("data-db-0", "local-path", "Bound"), ("web-content", "local-path", "Bound")]
    r = k8s_exec(testenv, "source", ns, "db-0", "psql", "-h", "/tmp", "-U", "postgres", "-At", "-c",
                 "SELECT count(*), sum(id) FROM orders")
    assert r["rc"] == 0 and r["exit_code"] == 0 and r["out"] == "2500|3126250\n", r
    web = [p["metadata"]["name"] for p in pods if p["metadata"]["labels"]["app"] == "web"][0]
    r = k8s_exec(testenv, "source", ns, web, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/")
    assert r["rc"] == 0 and r["out"] == "<h1>Stowage real app</h1>\n", r
    # nginx is Debian's, run by an unprivileged user
    r = k8s_exec(testenv, "source", ns, web, "sh", "-c", "nginx -v 2>&1; id -u")
    assert r["out"].startswith("nginx version: nginx/1.22") and r["out"].endswith("\n33\n"), r

    # a second run: nothing new, no row twice
    real_app(testenv, ns, "source", "2500")
    r = k8s_exec(testenv, "source", ns, "db-0", "psql", "-h", "/tmp", "-U", "postgres", "-At", "-c",
                 "SELECT count(*) FROM orders")
    assert r["out"] == "2500\n", r
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")


def test_real_app_refuses_bad_arguments_in_words(testenv):
    for args, words in ((["Bad_NS"], "NAMESPACE Bad_NS: must be a DNS label"),
                        (["ok", "elsewhere"], "CLUSTER elsewhere: source or target"),
                        (["ok", "source", "1; DROP TABLE orders"], "ROWS 1; DROP TABLE orders: a whole number")):
        res = real_app(testenv, *args, check=False)
        assert res.returncode == 1 and words in res.stderr, (args, res.stderr)
    res = subprocess.run([REAL_APP, "/nonexistent", "ns"], capture_output=True, text=True)
    assert res.returncode == 1 and "ROOT /nonexistent: no env file" in res.stderr, res.stderr
