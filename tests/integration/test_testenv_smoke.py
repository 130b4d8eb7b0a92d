"""Smoke tests of the real test environment (scripts/testenv/): two independent Kubernetes
clusters whose ordinary pods run on kwok's simulated nodes (the real node's taint keeps them off
it; test_real_node.py is about that one), RBAC that refuses the limited token, and a
MinIO that stores objects. Run: cd tests/integration && /usr/bin/python3 -m pytest -p fixtures_testenv test_testenv_smoke.py
"""

import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid

import boto3
import botocore.exceptions
import pytest

from fixtures_testenv import SCRIPTS, kubectl, read_env, read_pids, running_in

CLUSTERS = ("source", "target")


def api_status(env, cluster, method, path, token, body=None):
    """HTTP status of one request to cluster's API server, verified with its CA file."""
    c = cluster.upper()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(env[c + "_API_URL"] + path, data=data, method=method,
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    ctx = ssl.create_default_context(cafile=env[c + "_CA_FILE"])
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def jsonpath(env, cluster, *args):
    return kubectl(env, cluster, "get", *args).stdout.split()


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_deployment_pods_reach_running_on_kwok_nodes(testenv, cluster):
    ns = f"smoke-{cluster}"
    kubectl(testenv, cluster, "create", "namespace", ns)
    kubectl(testenv, cluster, "-n", ns, "create", "deployment", "web",
            "--image=nginx:1.27", "--replicas=2")
    kubectl(testenv, cluster, "-n", ns, "rollout", "status", "deployment/web", "--timeout=120s")
    phases = jsonpath(testenv, cluster, "-n", ns, "pods", "-l", "app=web",
                      "-o", "jsonpath={.items[*].status.phase}")
    assert phases == ["Running", "Running"]
    nodes = jsonpath(testenv, cluster, "-n", ns, "pods", "-l", "app=web",
                     "-o", "jsonpath={.items[*].spec.nodeName}")
    assert all(n.startswith(f"{cluster}-node-") for n in nodes), nodes


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_limited_token_is_refused_where_rbac_says(testenv, cluster):
    c = cluster.upper()
    limited, admin = testenv[c + "_LIMITED_TOKEN"], testenv[c + "_ADMIN_TOKEN"]
    assert api_status(testenv, cluster, "GET", "/api/v1/namespaces/default/pods", limited) == 200
    assert api_status(testenv, cluster, "GET", "/api/v1/namespaces/kube-system/pods", limited) == 403
    assert api_status(testenv, cluster, "GET", "/api/v1/namespaces/default/secrets", limited) == 403
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"limited-{cluster}"}}
    assert api_status(testenv, cluster, "POST", "/api/v1/namespaces", limited, ns) == 403
    assert api_status(testenv, cluster, "POST", "/api/v1/namespaces", admin, ns) == 201
    assert api_status(testenv, cluster, "GET", "/api/v1/namespaces", "not-a-token") == 401
    res = kubectl(testenv, cluster, "create", "namespace", f"limited2-{cluster}",
                  token=limited, check=False)
    assert res.returncode != 0 and "Forbidden" in res.stderr


def test_clusters_do_not_see_each_other(testenv):
    assert testenv["SOURCE_API_URL"] != testenv["TARGET_API_URL"]
    kubectl(testenv, "source", "-n", "default", "create", "configmap", "only-in-source",
            "--from-literal=k=v")
    res = kubectl(testenv, "target", "-n", "default", "get", "configmap", "only-in-source",
                  check=False)
    assert res.returncode != 0 and "NotFound" in res.stderr
    src = set(jsonpath(testenv, "source", "nodes", "-o", "jsonpath={.items[*].metadata.name}"))
    tgt = set(jsonpath(testenv, "target", "nodes", "-o", "jsonpath={.items[*].metadata.name}"))
    assert src and tgt and not src & tgt
    # Each cluster's token is unknown to the other cluster.
    status = api_status(testenv, "target", "GET", "/api/v1/namespaces",
                        testenv["SOURCE_ADMIN_TOKEN"])
    assert status == 401


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_storage_class_and_snapshot_class(testenv, cluster):
    sc = testenv[cluster.upper() + "_STORAGE_CLASS"]
    assert sc == {"source": "fast-ssd", "target": "standard-nfs"}[cluster]
    default = kubectl(testenv, cluster, "get", "storageclass", sc, "-o",
                      "jsonpath={.metadata.annotations.storageclass\\.kubernetes\\.io/is-default-class}")
    assert default.stdout == "true"
    classes = json.loads(kubectl(testenv, cluster, "get", "volumesnapshotclass", "-l",
                                 "velero.io/csi-volumesnapshot-class=true", "-o", "json").stdout)
    assert [i["deletionPolicy"] for i in classes["items"]] == ["Retain"]
    assert classes["items"][0]["apiVersion"] == "snapshot.storage.k8s.io/v1"
    for kind in ("volumesnapshots", "volumesnapshotcontents"):
        kubectl(testenv, cluster, "get", f"{kind}.v1.snapshot.storage.k8s.io", "-A")


def test_fixture_app_runs_with_bound_local_volumes(testenv):
    ns = "fixture"
    vol = testenv["SOURCE_VOLUME_DIR"]
    subprocess.run([os.path.join(SCRIPTS, "fixture-app"), testenv["SOURCE_KUBECONFIG"], ns, vol],
                   check=True, env=dict(os.environ, KUBECTL=testenv["KUBECTL"]))
    pods = json.loads(kubectl(testenv, "source", "-n", ns, "get", "pods", "-o", "json").stdout)
    owners = sorted(p["metadata"]["name"].rsplit("-", 2)[0] for p in pods["items"])
    assert owners == ["mysql", "mysql", "wordpress"]
    assert {p["status"]["phase"] for p in pods["items"]} == {"Running"}
    pvcs = json.loads(kubectl(testenv, "source", "-n", ns, "get", "pvc", "-o", "json").stdout)
    got = {p["metadata"]["name"]: (p["status"]["phase"], p["spec"]["storageClassName"],
                                   p["spec"]["volumeName"]) for p in pvcs["items"]}
    assert got == {n: ("Bound", "fast-ssd", f"{ns}-{n}")
                   for n in ("wordpress-data", "data-mysql-0", "data-mysql-1")}
    pv = json.loads(kubectl(testenv, "source", "get", "pv", f"{ns}-wordpress-data", "-o",
                            "json").stdout)
    path = pv["spec"]["hostPath"]["path"]
    assert path.startswith(vol + "/")
    with open(os.path.join(path, "wp-content/uploads/2024/hello.txt")) as f:
        assert f.read() == f"hello from {ns}\n"
    for kind, name in (("widget.fixtures.stowage.dev", "sprocket"), ("cronjob", "nightly-report"),
                       ("ingress", "wordpress"), ("statefulset", "mysql"),
                       ("rolebinding", "fixture-app"), ("secret", "wordpress-secret")):
        kubectl(testenv, "source", "-n", ns, "get", kind, name)
    nodeport = kubectl(testenv, "source", "-n", ns, "get", "service", "wordpress-nodeport",
                       "-o", "jsonpath={.spec.ports[0].nodePort}").stdout
    assert 30000 <= int(nodeport) <= 32767


def s3_client(env, secret_key=None):
    return boto3.client("s3", endpoint_url=env["S3_ENDPOINT"], region_name=env["S3_REGION"],
                        aws_access_key_id=env["S3_ACCESS_KEY"],
                        aws_secret_access_key=secret_key or env["S3_SECRET_KEY"])


def test_minio_put_and_get_object(testenv):
    s3 = s3_client(testenv)
    bucket = f"smoke-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(300_000)
    s3.put_object(Bucket=bucket, Key="dir/object.bin", Body=body)
    got = s3.get_object(Bucket=bucket, Key="dir/object.bin")["Body"].read()
    assert got == body
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == ["dir/object.bin"]


def test_minio_refuses_a_wrong_secret(testenv):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3_client(testenv, secret_key="wrong-secret-key").list_buckets()
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_start_refuses_a_root_in_use(testenv):
    res = subprocess.run([os.path.join(SCRIPTS, "start"), testenv["TESTENV_ROOT"]],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "not empty" in res.stderr
    kubectl(testenv, "source", "get", "namespace", "default")


def test_second_environment_runs_beside_the_first_and_stops_alone(testenv, tmp_path):
    root = str(tmp_path / "second")
    res = subprocess.run([os.path.join(SCRIPTS, "start"), root], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    try:
        second = read_env(os.path.join(root, "env"))
        pids = read_pids(root)
        # minio + 2 x (etcd, apiserver, controller-manager, scheduler, kwok), and with real nodes
        # 2 x (containerd, kubelet, local-path-provisioner)
        real = "TARGET_REAL_NODE" in second
        assert len(pids) == (17 if real else 11)
        for key in ("S3_ENDPOINT", "SOURCE_API_URL", "TARGET_API_URL"):
            assert second[key] != testenv[key]
        nodes = kubectl(second, "target", "get", "nodes", "-o", "name").stdout.split()
        assert nodes == [f"node/target-node-{i}" for i in range(3)] + (["node/target-real-node"] if real else [])
    finally:
        subprocess.run([os.path.join(SCRIPTS, "stop"), root], check=True, capture_output=True)
    assert [p for p in pids if running_in(p, root)] == []
    subprocess.run([os.path.join(SCRIPTS, "stop"), root], check=True)  # idempotent
    kubectl(testenv, "source", "get", "namespace", "default")
    kubectl(testenv, "target", "get", "namespace", "default")


def test_start_fails_clearly_and_stops_what_it_started(testenv, tmp_path):
    """A scheduler that cannot start: start names it, exits 1 and leaves nothing running."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in os.listdir(testenv["TESTENV_BIN"]):
        os.symlink(os.path.join(testenv["TESTENV_BIN"], name), bindir / name)
    (bindir / "kube-scheduler").unlink()
    (bindir / "kube-scheduler").write_text("#!/bin/sh\necho cannot schedule >&2\nexit 3\n")
    (bindir / "kube-scheduler").chmod(0o755)
    root = str(tmp_path / "root")
    res = subprocess.run([os.path.join(SCRIPTS, "start"), root], capture_output=True, text=True,
                         env=dict(os.environ, STOWAGE_TESTENV_BIN=str(bindir)))
    assert res.returncode == 1
    assert "source kube-scheduler exited with status 3" in res.stderr
    with open(os.path.join(root, "logs", "source-kube-scheduler.log")) as f:
        assert "cannot schedule" in f.read()
    with open(os.path.join(root, "pids.stopped")) as f:  # stop renames the pid file
        pids = [int(line) for line in f if line.strip()]
    assert len(pids) >= 8 and [p for p in pids if running_in(p, root)] == []
    assert not os.path.exists(os.path.join(root, "env"))
