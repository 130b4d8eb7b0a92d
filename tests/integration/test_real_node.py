"""The real node of each test cluster (scripts/testenv/start: containerd + runc + kubelet, issue
12): a pod runs in a real container, `kubectl logs` and `kubectl exec` reach it through the API
server, and the runner's own exec client (src/kube/k8s_exec.c, what hooks call) gets a real
container's stdout, stderr and exit status, times out, and says when a command does not exist.
No double here: kwok plays no part (its nodes are tainted out by label selection).

Run: cd tests/integration && STOWAGE_BUILD=../../build/asan /usr/bin/python3 -m pytest test_real_node.py
"""

import json
import os
import subprocess
import time

import pytest

from conftest import unique
from fixtures_testenv import kubectl

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("STOWAGE_BUILD", REPO)
ITEST_EXEC = os.path.join(BUILD, "tests", "integration", "c", "itest_exec")
CLUSTERS = ("source", "target")


@pytest.fixture(autouse=True)
def needs_real_nodes(testenv):
    if "SOURCE_REAL_NODE" not in testenv:
        pytest.skip("the test environment has no real nodes (not root, or STOWAGE_TESTENV_REAL_NODES=0)")


def real_pod(testenv, ns, name, command, image=None, host_network=False, volumes=None, mounts=None):
    """A pod pinned to the real node (its label, its taint tolerated), never pulled."""
    key, _, value = testenv["REAL_NODE_LABEL"].partition("=")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeSelector": {key: value},
                     "tolerations": [{"key": testenv["REAL_NODE_TAINT"], "operator": "Exists",
                                      "effect": "NoSchedule"}],
                     "hostNetwork": host_network, "terminationGracePeriodSeconds": 1,
                     "restartPolicy": "Never",
                     "containers": [{"name": "main", "image": image or testenv["TOOLS_IMAGE"],
                                     "imagePullPolicy": "Never", "command": command,
                                     "volumeMounts": mounts or []}],
                     "volumes": volumes or []}}


def run_pod(testenv, cluster, pod, phase="Running", timeout=120):
    kubectl(testenv, cluster, "create", "namespace", pod["metadata"]["namespace"], check=False)
    kubectl(testenv, cluster, "apply", "-f", "-", stdin=json.dumps(pod))
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        got = json.loads(kubectl(testenv, cluster, "-n", ns, "get", "pod", name, "-o", "json").stdout)
        if got["status"].get("phase") in (phase, "Failed" if phase != "Failed" else "-"):
            break
        time.sleep(0.5)
    assert got and got["status"].get("phase") == phase, json.dumps(got.get("status"), indent=1)
    return got


def k8s_exec(testenv, cluster, ns, pod, *argv, timeout_ms=20000, output_max=1 << 20, container="-"):
    if not os.access(ITEST_EXEC, os.X_OK):
        pytest.fail(f"{ITEST_EXEC} is not built: run `make check` first")
    c = cluster.upper()
    env = dict(os.environ, API_URL=testenv[c + "_API_URL"], TOKEN=testenv[c + "_ADMIN_TOKEN"],
               CA_FILE=testenv[c + "_CA_FILE"])
    res = subprocess.run([ITEST_EXEC, ns, pod, container, str(timeout_ms), str(output_max), *argv],
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def shell_pods(testenv):
    """One long-running busybox pod on each cluster's real node."""
    if "SOURCE_REAL_NODE" not in testenv:
        pytest.skip("the test environment has no real nodes (not root, or STOWAGE_TESTENV_REAL_NODES=0)")
    ns = unique("realnode")
    pods = {}
    for cluster in CLUSTERS:
        pod = real_pod(testenv, ns, "shell", ["sh", "-c", "echo ready on $(hostname); exec sleep 3600"])
        pods[cluster] = run_pod(testenv, cluster, pod)
    yield ns, pods
    for cluster in CLUSTERS:
        kubectl(testenv, cluster, "delete", "namespace", ns, "--wait=false", check=False)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_pod_runs_on_the_real_node_with_an_address_on_its_bridge(testenv, shell_pods, cluster):
    ns, pods = shell_pods
    pod = pods[cluster]
    c = cluster.upper()
    assert pod["spec"]["nodeName"] == testenv[c + "_REAL_NODE"]
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] and status["containerID"].startswith("containerd://"), status
    # the pod's address is on the node's bridge subnet, not kwok's made-up 10.244/16
    subnet = testenv[c + "_REAL_NODE_IP"].rsplit(".", 1)[0] + "."
    assert pod["status"]["podIP"].startswith(subnet) and pod["status"]["podIP"] != testenv[c + "_REAL_NODE_IP"]
    node = json.loads(kubectl(testenv, cluster, "get", "node", testenv[c + "_REAL_NODE"], "-o", "json").stdout)
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://1.6")
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.34.4"
    assert {"key": testenv["REAL_NODE_TAINT"], "value": "true", "effect": "NoSchedule"} in node["spec"]["taints"]


def test_logs_and_exec_through_the_api_server(testenv, shell_pods):
    ns, _ = shell_pods
    for cluster in CLUSTERS:
        logs = kubectl(testenv, cluster, "-n", ns, "logs", "shell").stdout
        assert logs == "ready on shell\n", logs
        res = kubectl(testenv, cluster, "-n", ns, "exec", "shell", "--", "sh", "-c",
                      "cat /proc/1/cmdline | tr '\\0' ' '; echo; id -u; echo oops >&2; exit 4", check=False)
        assert res.returncode == 4, res.stderr
        # PID 1 is the container's own process (its sh exec'd sleep): a real PID namespace,
        # not a local process of this machine as kwok's exec gives
        lines = res.stdout.splitlines()
        assert lines[0].strip() == "sleep 3600" and lines[1] == "0", res.stdout
        assert "oops" in res.stderr


def test_ordinary_pods_stay_off_the_real_node(testenv):
    """The fixture application and other tests' deployments keep landing on kwok's nodes."""
    ns = unique("offreal")
    kubectl(testenv, "source", "create", "namespace", ns)
    kubectl(testenv, "source", "-n", ns, "create", "deployment", "web", "--image=nginx:1.27", "--replicas=4")
    kubectl(testenv, "source", "-n", ns, "rollout", "status", "deployment/web", "--timeout=120s")
    nodes = kubectl(testenv, "source", "-n", ns, "get", "pods", "-o",
                    "jsonpath={.items[*].spec.nodeName}").stdout.split()
    assert len(nodes) == 4 and all(n.startswith("source-node-") for n in nodes), nodes
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")


def test_hook_exec_client_against_a_real_container(testenv, shell_pods):
    """k8s_exec (src/kube/k8s_exec.c) as hooks use it, through the API server to containerd."""
    ns, _ = shell_pods
    r = k8s_exec(testenv, "source", ns, "shell", "sh", "-c", "printf 'to stdout'; printf 'to stderr' >&2; exit 7")
    assert r == {"rc": 0, "exit_code": 7, "out": "to stdout", "err": "to stderr", "truncated": False}, r

    r = k8s_exec(testenv, "source", ns, "shell", "cat", "/etc/hostname", container="main")
    assert r["rc"] == 0 and r["exit_code"] == 0 and r["out"] == "shell\n", r

    # output beyond the limit is dropped and said so; the command still ends with its status
    r = k8s_exec(testenv, "source", ns, "shell", "head", "-c", "300000", "/dev/zero", output_max=65536)
    assert r["rc"] == 0 and r["exit_code"] == 0 and r["truncated"] and len(r["out"]) <= 65536, \
        {k: v for k, v in r.items() if k != "out"}

    # a timeout: the call returns within its limit, says Timeout
    began = time.monotonic()
    r = k8s_exec(testenv, "source", ns, "shell", "sleep", "30", timeout_ms=1500)
    took = time.monotonic() - began
    assert r["rc"] == -1 and r["reason"] == "Timeout", r
    assert took < 15, took

    # a command the container does not have: the runtime's words, no exit status made up
    r = k8s_exec(testenv, "source", ns, "shell", "no-such-command", "--flag")
    assert r["rc"] == -1 or r["exit_code"] != 0, r
    words = json.dumps(r)
    assert "no-such-command" in words and ("not found" in words or "no such file" in words.lower()), r

    # a container the pod lacks, and a pod that does not exist
    r = k8s_exec(testenv, "source", ns, "shell", "true", container="sidecar")
    assert r["rc"] == -1 and "sidecar" in r["message"], r
    r = k8s_exec(testenv, "source", ns, "no-such-pod", "true")
    assert r["rc"] == -1 and r["reason"] == "NotFound", r


def test_pod_exit_status_and_host_network(testenv):
    """A pod that ends: its container's exit code in the pod status; hostNetwork pods share the
    machine's loopback (what the mover pod needs to reach MinIO on 127.0.0.1)."""
    ns = unique("realexit")
    pod = real_pod(testenv, ns, "fails", ["sh", "-c", "echo bye; exit 3"])
    got = run_pod(testenv, "source", pod, phase="Failed")
    assert got["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    url = testenv["S3_ENDPOINT"] + "/minio/health/live"
    # (busybox 1.35's wget -T segfaults: the time limit is timeout's)
    pod = real_pod(testenv, ns, "hostnet", ["sh", "-c", f"timeout 10 wget -q -O /dev/null {url} && echo reached"],
                   host_network=True)
    run_pod(testenv, "source", pod, phase="Succeeded")
    assert kubectl(testenv, "source", "-n", ns, "logs", "hostnet").stdout == "reached\n"
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")


def test_local_path_provisioner_gives_a_claim_a_volume_on_the_real_node(testenv):
    """The real local-path-provisioner (StorageClass local-path, WaitForFirstConsumer): a claim
    binds once a pod on the real node uses it, to a hostPath PV under C_LOCAL_PATH_DIR pinned to
    that node, made by its helper pod; deleting the claim deletes the volume and its directory."""
    ns = unique("localpath")
    kubectl(testenv, "source", "create", "namespace", ns)
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": ns},
             "spec": {"storageClassName": "local-path", "accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": "64Mi"}}}}
    kubectl(testenv, "source", "apply", "-f", "-", stdin=json.dumps(claim))
    pod = real_pod(testenv, ns, "user", ["sh", "-c", "echo provisioned > /data/hello; ls -ld /data"],
                   volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                   mounts=[{"name": "data", "mountPath": "/data"}])
    run_pod(testenv, "source", pod, phase="Succeeded", timeout=180)
    got = json.loads(kubectl(testenv, "source", "-n", ns, "get", "pvc", "data", "-o", "json").stdout)
    assert got["status"]["phase"] == "Bound"
    pv = json.loads(kubectl(testenv, "source", "get", "pv", got["spec"]["volumeName"], "-o", "json").stdout)
    path = pv["spec"]["hostPath"]["path"]
    assert path.startswith(testenv["SOURCE_LOCAL_PATH_DIR"] + "/"), path
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == [testenv["SOURCE_REAL_NODE"]], terms
    with open(os.path.join(path, "hello")) as f:
        assert f.read() == "provisioned\n"
    kubectl(testenv, "source", "-n", ns, "delete", "pod", "user")
    kubectl(testenv, "source", "-n", ns, "delete", "pvc", "data")
    deadline = time.time() + 120
    while time.time() < deadline and os.path.exists(path):
        time.sleep(1)
    assert not os.path.exists(path), f"{path} is still there after its claim was deleted"
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")
