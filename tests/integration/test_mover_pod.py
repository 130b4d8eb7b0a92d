"""The data mover's pod path for real (mover_launch = pod, src/runner/mover_pod.c): the runner's
volume phase (driven by itest_volumes, as test_volumes.py does) starts mover pods that run the
build's stowage-mover in a real container on each cluster's real node, back a claim's files up
into MinIO and restore them into a claim of the other cluster, under another namespace and
StorageClass; the files compare equal (content, mode, owner, mtime, symlinks).

The image is built from STOWAGE_BUILD's stowage-mover by scripts/testenv/images/oci-image (what
docker/mover/Dockerfile holds: the binary and its libraries) and imported into both nodes'
containerd; nothing is pulled. The pods use hostNetwork (mover_pod_host_network = yes) to reach
MinIO on 127.0.0.1. The source claim is provisioned by the real local-path-provisioner (class
local-path) when the pod that writes its files starts on the real node; the target's is a static
hostPath PersistentVolume pinned to the real node by nodeAffinity (the restore creates no pod
before its claim is bound, so a WaitForFirstConsumer class would wait for ever there).

Run: cd tests/integration && STOWAGE_BUILD=../../build/asan /usr/bin/python3 -m pytest test_mover_pod.py
"""

import hashlib
import json
import os
import subprocess
import time

import pytest

from conftest import unique
from fixtures_testenv import kubectl
from test_real_node import needs_real_nodes, real_pod, run_pod  # noqa: F401 (autouse fixture)
from test_volumes import ITEST, MOVER, Volumes, pv_dir, walk
import boto3
import psycopg2

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OCI_IMAGE = os.path.join(REPO, "scripts", "testenv", "images", "oci-image")


@pytest.fixture(scope="module")
def mover_image(testenv, tmp_path_factory):
    """The build's stowage-mover as an image in both real nodes' containerd."""
    if "SOURCE_REAL_NODE" not in testenv:
        pytest.skip("the test environment has no real nodes")
    with open(MOVER, "rb") as f:
        tag = hashlib.sha256(f.read()).hexdigest()[:12]
    name = f"stowage.test/mover:{tag}"
    tar = str(tmp_path_factory.mktemp("images") / "mover.tar")
    subprocess.run([OCI_IMAGE, "mover", tar, name, MOVER], check=True)
    for c in ("SOURCE", "TARGET"):
        subprocess.run([testenv["CTR"], "--address", testenv[c + "_CONTAINERD_SOCKET"], "--namespace", "k8s.io",
                        "images", "import", tar], check=True, capture_output=True)
    return name


@pytest.fixture(scope="module")
def vols(stack, testenv, tmp_path_factory, mover_image):
    s3 = boto3.client("s3", endpoint_url=testenv["S3_ENDPOINT"], region_name=testenv["S3_REGION"],
                      aws_access_key_id=testenv["S3_ACCESS_KEY"], aws_secret_access_key=testenv["S3_SECRET_KEY"])
    bucket = unique("moverpod-")
    s3.create_bucket(Bucket=bucket)
    conn = psycopg2.connect(stack.pg_dsn_owner)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("INSERT INTO stowage.orgs (name) VALUES (%s) RETURNING id", (unique("Mover pod org "),))
    v = Volumes(stack, testenv, cur, cur.fetchone()[0], bucket)
    # the hosted deployment's launch path: no mover_local_root, nothing read on this machine
    v.runner_conf = tmp_path_factory.mktemp("runner") / "runner.conf"
    v.runner_conf.write_text(f"mover_launch = pod\nmover_image = {mover_image}\nmover_pod_host_network = yes\n")
    v.s3 = s3
    yield v
    conn.close()


def real_claim(testenv, cluster, ns, name, size="1Gi"):
    """A claim bound to a hostPath PV on the cluster's real node; returns the PV's directory."""
    c = cluster.upper()
    path = os.path.join(testenv[c + "_VOLUME_DIR"], f"{ns}-{name}")
    sc = testenv[c + "_STORAGE_CLASS"]
    kubectl(testenv, cluster, "create", "namespace", ns, check=False)
    kubectl(testenv, cluster, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{ns}-{name}"},
         "spec": {"storageClassName": sc, "capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                  "persistentVolumeReclaimPolicy": "Retain",
                  "hostPath": {"path": path, "type": "DirectoryOrCreate"},
                  "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                      {"key": "kubernetes.io/hostname", "operator": "In", "values": [testenv[c + "_REAL_NODE"]]}]}]}},
                  "claimRef": {"namespace": ns, "name": name}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": ns},
         "spec": {"storageClassName": sc, "accessModes": ["ReadWriteOnce"], "volumeName": f"{ns}-{name}",
                  "resources": {"requests": {"storage": size}}}}]}))
    kubectl(testenv, cluster, "-n", ns, "wait", "--for=jsonpath={.status.phase}=Bound", f"pvc/{name}", "--timeout=60s")
    return path


WRITE = """set -e
cd /data
mkdir -p www/uploads db
echo 'Stowage on a real node' > www/index.html
head -c 3145728 /dev/urandom > www/uploads/video.bin
head -c 65536 /dev/urandom > db/ibdata1
printf 'rows\\n' > db/table.csv
chown 999:999 db db/ibdata1 db/table.csv
chmod 0640 db/table.csv
chmod 0700 db
ln -s www/index.html latest
touch -d '2024-02-29 12:00:00' www/index.html
echo written
"""


def mover_pods(testenv, cluster, ns):
    return json.loads(kubectl(testenv, cluster, "-n", ns, "get", "pod,secret", "-l",
                              "app.kubernetes.io/component=data-mover", "-o", "json").stdout)["items"]


def start_backup(vols, testenv, ns):
    """itest_volumes backing up the claim ns/data in the background (a fault test acts meanwhile)."""
    c = testenv
    env = dict(os.environ, DATABASE_URL=vols.stack.pg_dsn_app, ORG_ID=str(vols.org_id), JOB_ID=str(vols.new_job("backup")),
               CLUSTER_ID="1", API_URL=c["SOURCE_API_URL"], CA_FILE=c["SOURCE_CA_FILE"], TOKEN=c["SOURCE_ADMIN_TOKEN"],
               S3_ENDPOINT=c["S3_ENDPOINT"], S3_REGION=c["S3_REGION"], S3_ACCESS_KEY=c["S3_ACCESS_KEY"],
               S3_SECRET_KEY=c["S3_SECRET_KEY"], S3_BUCKET=vols.bucket, REPO_ID=str(vols.repo_id),
               REPO_PREFIX="team-a/", MASTER_KEY_HEX=vols.master_key, MOVER_PATH=MOVER,
               RUNNER_CONFIG=str(vols.runner_conf))
    env.pop("AWS_ACCESS_KEY_ID", None)
    return subprocess.Popen([ITEST, "backup", unique("bk"), ns, json.dumps({f"{ns}/data": "filesystem"})],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_copying(testenv, ns):
    """The name of ns's mover pod once the mover has started copying (its first progress line)."""
    deadline = time.time() + 120
    while time.time() < deadline:
        pods = [i for i in mover_pods(testenv, "source", ns) if i["kind"] == "Pod"]
        if pods and pods[0]["status"].get("phase") == "Running":
            pod = pods[0]["metadata"]["name"]
            log = kubectl(testenv, "source", "-n", ns, "logs", pod, check=False).stdout
            if '"phase":"volume"' in log:
                return pod
        time.sleep(0.3)
    pytest.fail("the mover pod never started copying")


def big_claim(testenv, ns, parts=6):
    """ns/data of the real local-path-provisioner, holding parts x 64 MiB of random data."""
    kubectl(testenv, "source", "create", "namespace", ns)
    kubectl(testenv, "source", "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": ns},
        "spec": {"storageClassName": "local-path", "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": f"{parts * 64 // 1024 + 1}Gi"}}}}))
    writer = real_pod(testenv, ns, "writer", ["sh", "-c", f"for i in $(seq {parts}); do head -c 67108864 /dev/urandom "
                                              "> /data/part$i.bin; done; echo written"],
                      volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                      mounts=[{"name": "data", "mountPath": "/data"}])
    run_pod(testenv, "source", writer, phase="Succeeded", timeout=300)
    kubectl(testenv, "source", "-n", ns, "delete", "pod", "writer")


def snapshot_manifests(vols):
    prefix = f"team-a/data/{vols.repo_id}/data/snapshots/"
    return sorted(o["Key"] for o in vols.s3.list_objects_v2(Bucket=vols.bucket, Prefix=prefix).get("Contents", []))


def test_backup_by_a_mover_pod_and_restore_into_the_other_cluster(vols, testenv, tmp_path):
    ns, target_ns = unique("podmove"), unique("podmoved")
    kubectl(testenv, "source", "create", "namespace", ns)
    kubectl(testenv, "source", "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": ns},
        "spec": {"storageClassName": "local-path", "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}}}))
    # the files are written in a real container on the real node, through the claim, which the
    # provisioner binds when this pod is scheduled
    writer = real_pod(testenv, ns, "writer", ["sh", "-c", WRITE],
                      volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                      mounts=[{"name": "data", "mountPath": "/data"}])
    run_pod(testenv, "source", writer, phase="Succeeded", timeout=180)
    src = pv_dir(testenv, "source", ns, "data")
    assert src.startswith(testenv["SOURCE_LOCAL_PATH_DIR"] + "/"), src
    assert kubectl(testenv, "source", "-n", ns, "logs", "writer").stdout == "written\n"
    kubectl(testenv, "source", "-n", ns, "delete", "pod", "writer", "--wait=true")
    before = walk(src)
    assert before["db/ibdata1"][2:4] == (999, 999) and before["www/uploads/video.bin"][5] == 3 << 20

    job = vols.new_job("backup")
    began = time.monotonic()
    res = vols.run("source", job, "backup", unique("bk"), ns, json.dumps({f"{ns}/data": "filesystem"}))
    backup_s = time.monotonic() - began
    [volume] = json.loads(res.stdout)
    assert volume["pvc"] == "data" and volume["method"] == "filesystem" and len(volume["snapshot_id"]) == 33, volume
    assert volume["storage_class"] == "local-path", volume
    assert volume["node"] == testenv["SOURCE_REAL_NODE"], volume
    assert volume["files"] == 4 and volume["bytes"] == sum(e[5] for e in before.values() if len(e) == 7), volume
    assert vols.job_row(job)[:3] == ("volumes", 1, 1)
    # the mover pod and its Secret are gone once the job is done
    assert mover_pods(testenv, "source", ns) == []
    # what reached MinIO is the mover's encrypted packs
    packs = vols.s3.list_objects_v2(Bucket=vols.bucket, Prefix=f"team-a/data/{vols.repo_id}/data/packs/")["Contents"]
    body = b"".join(vols.s3.get_object(Bucket=vols.bucket, Key=o["Key"])["Body"].read() for o in packs)
    assert b"Stowage on a real node" not in body

    # restore into the target cluster: another namespace, the target's StorageClass, its real node
    dst = real_claim(testenv, "target", target_ns, "data")
    restored = dict(volume, storage_class=testenv["TARGET_STORAGE_CLASS"])
    began = time.monotonic()
    rjob, _ = vols.restore("target", [restored], {ns: target_ns}, tmp_path)
    restore_s = time.monotonic() - began
    assert walk(dst) == before
    assert vols.job_row(rjob)[:3] == ("volumes", 1, 1)
    assert [a for _, _, a, _ in vols.items(rjob)] == ["created"]
    assert mover_pods(testenv, "target", target_ns) == []
    # and a pod on the target's real node reads the restored files through its claim
    reader = real_pod(testenv, target_ns, "reader", ["sh", "-c", "cat /data/latest; stat -c '%u:%g %a' /data/db/table.csv"],
                      volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                      mounts=[{"name": "data", "mountPath": "/data"}])
    run_pod(testenv, "target", reader, phase="Succeeded")
    assert kubectl(testenv, "target", "-n", target_ns, "logs", "reader").stdout == "Stowage on a real node\n999:999 640\n"
    print(f"mover pod: backup {backup_s:.1f} s, restore {restore_s:.1f} s of {volume['bytes']} bytes")
    for cluster, n in (("source", ns), ("target", target_ns)):
        kubectl(testenv, cluster, "delete", "namespace", n, "--wait=false")


def test_a_mover_pod_that_fails_names_the_claim_and_the_movers_words(vols, testenv, tmp_path):
    """A restore of a snapshot the repository lacks: the pod runs, the mover fails, and the
    job's error names the claim, the pod, its exit status and the mover's own last line."""
    ns = unique("podfail")
    real_claim(testenv, "source", ns, "data")
    bad = {"namespace": ns, "pvc": "data", "pv": f"{ns}-data", "method": "filesystem", "size": "1Gi",
           "storage_class": testenv["SOURCE_STORAGE_CLASS"], "snapshot_id": "20200101T000000Z-0000000000000000",
           "files": 1, "bytes": 1, "node": testenv["SOURCE_REAL_NODE"]}
    job, res = vols.restore("source", [bad], {}, tmp_path, check=False)
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"claim {ns}/data: data mover pod {ns}/stowage-mover-{job}-" in res.stderr, res.stderr
    assert "exited 1: stowage-mover[1]: error: snapshot 20200101T000000Z-0000000000000000: not found" \
        in res.stderr, res.stderr
    assert mover_pods(testenv, "source", ns) == []
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")


def test_a_mover_pod_killed_mid_backup_fails_the_job_in_words_and_the_next_backup_succeeds(vols, testenv, tmp_path):
    """Fault with a real pod: the mover pod is deleted while it copies; the job fails within a
    bounded time naming the claim and the pod, no snapshot of that run exists (a snapshot is
    its manifest, written last), and the next backup of the same claim succeeds."""
    ns = unique("podkill")
    # 1.5 GiB: a force-deleted pod's container is killed by its kubelet a moment after the API
    # object is gone, and the mover must still be copying then (384 MiB it finished first, and
    # wrote its snapshot after the job had failed)
    parts = 24
    big_claim(testenv, ns, parts)
    before = snapshot_manifests(vols)
    p = start_backup(vols, testenv, ns)
    try:
        pod = wait_copying(testenv, ns)
        killed = time.monotonic()
        kubectl(testenv, "source", "-n", ns, "delete", "pod", pod, "--grace-period=0", "--force", "--wait=false")
        out, err = p.communicate(timeout=180)
        took = time.monotonic() - killed
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1, out + err
    assert f"claim {ns}/data: data mover pod {ns}/{pod} was deleted before it ended" in err, err
    assert took < 60, took
    assert snapshot_manifests(vols) == before, "a killed backup left a snapshot behind"
    assert mover_pods(testenv, "source", ns) == []
    # the next backup of the claim succeeds and is restorable
    res = vols.run("source", vols.new_job("backup"), "backup", unique("bk"), ns, json.dumps({f"{ns}/data": "filesystem"}))
    [volume] = json.loads(res.stdout)
    assert volume["files"] == parts and volume["bytes"] == parts * (64 << 20), volume
    assert len(snapshot_manifests(vols)) == len(before) + 1
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")
