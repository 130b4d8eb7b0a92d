"""CSI volume snapshots through the real snapshot machinery (issue 12): the real
snapshot-controller (external-snapshotter v8) with its CRDs, the real csi-snapshotter and
external-provisioner sidecars, the real kubelet mounting the volumes into real pods on each
cluster's real node, and Stowage's runner driving them (src/runner/volume_snapshot_csi.c,
job_volumes.c, job_catalog.c).

The one TEST DOUBLE is the CSI driver, csi-double (scripts/testenv/csi-double, started with the
sidecars by scripts/testenv/start-csi): no CSI driver that implements snapshots can be had here
(the Go module proxy refuses the kubernetes-csi host-path driver, see docs/testenv.md). Its
volumes are directories on the real node, a snapshot a copy of one; its StorageClasses are
csi-double-fast-ssd in source and csi-double-standard-nfs in target.

- a backup plan with the snapshot method on a claim whose files a pod wrote; restore in the same
  cluster from that snapshot, a pod reads the same bytes; deleting the backup deletes the
  VolumeSnapshot, its content and the driver's snapshot;
- snapshot+move by mover pods: the snapshot, a temporary claim from it, its files into MinIO,
  restored into the other cluster under another namespace and StorageClass, read by a pod there.

Run: cd tests/integration && STOWAGE_BUILD=../../build/asan /usr/bin/python3 -m pytest test_csi_snapshot.py
"""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import unique
from fixtures_testenv import kubectl
from test_backup_job import Tenant
from test_mover_pod import mover_image, vols  # noqa: F401 (fixtures)
from test_real_node import needs_real_nodes, real_pod, run_pod  # noqa: F401 (autouse fixture)
from test_volumes import walk

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START_CSI = os.path.join(REPO, "scripts", "testenv", "start-csi")
DRIVER = "csi-double.stowage.test"
SNAPSHOT_CLASS = "csi-double-snapclass"
CLASS = {"source": "csi-double-fast-ssd", "target": "csi-double-standard-nfs"}

# written by a real container through the claim; what it prints is what readers must print
WRITE = """set -e
cd /data
mkdir -p www/uploads db
echo 'Stowage snapshot on a real node' > www/index.html
head -c 2097152 /dev/urandom > www/uploads/video.bin
printf 'rows\\n' > db/table.csv
chown 999:999 db db/table.csv
chmod 0640 db/table.csv
ln -s www/index.html latest
"""
READ = "cd /data && cat latest && sha256sum www/uploads/video.bin db/table.csv && stat -c '%u:%g %a' db/table.csv"


@pytest.fixture(scope="module")
def snapshots(testenv):
    """The snapshot machinery of both clusters, for this module only (other modules' tests
    play the snapshot controller themselves, test_volumes.py)."""
    res = subprocess.run([START_CSI, testenv["TESTENV_ROOT"]], capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, res.stderr[-4000:]
    pids = [int(p) for p in res.stdout.split()]
    yield
    # later modules count the labelled snapshot classes and the StorageClasses: take ours away
    for cluster in CLASS:
        kubectl(testenv, cluster, "delete", "--ignore-not-found", f"volumesnapshotclass/{SNAPSHOT_CLASS}",
                f"storageclass/{CLASS[cluster]}", f"csidriver/{DRIVER}")
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass


def volume_dir(testenv, cluster, ns, pvc):
    """The csi-double's directory of the claim's volume, on the real node."""
    claim = json.loads(kubectl(testenv, cluster, "-n", ns, "get", "pvc", pvc, "-o", "json").stdout)
    pv = json.loads(kubectl(testenv, cluster, "get", "pv", claim["spec"]["volumeName"], "-o", "json").stdout)
    assert pv["spec"]["csi"]["driver"] == DRIVER, pv["spec"]
    return os.path.join(testenv["TESTENV_ROOT"], cluster, "volumes", "csi-double", "volumes",
                        pv["spec"]["csi"]["volumeHandle"])


def snapshot_dir(testenv, cluster, handle):
    return os.path.join(testenv["TESTENV_ROOT"], cluster, "volumes", "csi-double", "snapshots", handle)


def claim(testenv, cluster, ns, name, data_source=None):
    spec = {"storageClassName": CLASS[cluster], "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}
    if data_source:
        spec["dataSource"] = data_source
    kubectl(testenv, cluster, "create", "namespace", ns, check=False)
    kubectl(testenv, cluster, "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": ns}, "spec": spec}))
    kubectl(testenv, cluster, "-n", ns, "wait", "--for=jsonpath={.status.phase}=Bound", f"pvc/{name}", "--timeout=120s")


def pod_on_claim(testenv, cluster, ns, name, script, pvc="data"):
    """Runs script in a real container on the real node with the claim at /data; its output."""
    pod = real_pod(testenv, ns, name, ["sh", "-c", script],
                   volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": pvc}}],
                   mounts=[{"name": "data", "mountPath": "/data"}])
    run_pod(testenv, cluster, pod, phase="Succeeded", timeout=180)
    out = kubectl(testenv, cluster, "-n", ns, "logs", name).stdout
    kubectl(testenv, cluster, "-n", ns, "delete", "pod", name, "--wait=true")
    return out


def gone(testenv, cluster, *args, timeout=120):
    """Waits until `kubectl get ARGS` finds nothing; whether it did."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if kubectl(testenv, cluster, "get", *args, check=False).returncode != 0:
            return True
        time.sleep(0.5)
    return False


def test_plan_snapshot_restores_in_place_and_delete_removes_it(stack, testenv, snapshots):
    ns = unique("csisnap")
    claim(testenv, "source", ns, "data")
    assert pod_on_claim(testenv, "source", ns, "writer", WRITE + "echo written") == "written\n"
    expected = pod_on_claim(testenv, "source", ns, "reader", READ)
    assert expected.startswith("Stowage snapshot on a real node\n") and expected.endswith("999:999 640\n"), expected
    src = volume_dir(testenv, "source", ns, "data")
    before = walk(src)

    # a backup plan with the snapshot method: the runner creates the VolumeSnapshot; the real
    # controller and sidecar have the driver cut it
    tenant = Tenant(stack, testenv, prefix="csisnap")
    _, job_id = tenant.queue_backup([ns], volume_methods={f"{ns}/data": "snapshot"})
    job = tenant.wait_job(job_id)
    assert job["state"] == "succeeded", job["error"]
    backup_id = job["backup_id"]
    [v] = tenant.sql_one("SELECT volumes FROM stowage.backups WHERE id = %s", (backup_id,))[0]
    vs = v["volume_snapshot"]
    assert v["method"] == "snapshot" and v["pvc"] == "data", v
    assert (vs["driver"], vs["class"], vs["namespace"]) == (DRIVER, SNAPSHOT_CLASS, ns), vs
    snap = json.loads(kubectl(testenv, "source", "-n", ns, "get", "volumesnapshot", vs["name"], "-o", "json").stdout)
    assert snap["status"]["readyToUse"] is True and snap["status"]["boundVolumeSnapshotContentName"] == vs["content"]
    content = json.loads(kubectl(testenv, "source", "get", "volumesnapshotcontent", vs["content"], "-o", "json").stdout)
    # made by the real snapshot-controller (its name, its annotation), cut by the real sidecar
    assert vs["content"] == "snapcontent-" + snap["metadata"]["uid"], vs
    assert content["status"]["snapshotHandle"] == vs["handle"] and content["spec"]["deletionPolicy"] == "Retain"
    assert walk(snapshot_dir(testenv, "source", vs["handle"])) == before

    # the data changes, the claim goes; the restore creates it again from the snapshot
    pod_on_claim(testenv, "source", ns, "spoiler", "echo spoilt > /data/www/index.html")
    kubectl(testenv, "source", "-n", ns, "delete", "pvc", "data", "--wait=true")
    plan = tenant.sql_one("INSERT INTO stowage.restore_plans (org_id, name, backup_id, target_cluster_id, existing_policy) "
                          "VALUES (%s, %s, %s, %s, 'skip') RETURNING id",
                          (tenant.org_id, unique("restore-"), backup_id, tenant.cluster_id))[0]
    rjob = tenant.sql_one("INSERT INTO stowage.jobs (org_id, kind, restore_plan_id, backup_id, cluster_id) "
                          "VALUES (%s, 'restore', %s, %s, %s) RETURNING id",
                          (tenant.org_id, plan, backup_id, tenant.cluster_id))[0]
    job = tenant.wait_job(rjob)
    assert job["state"] == "succeeded", job["error"]
    restored = json.loads(kubectl(testenv, "source", "-n", ns, "get", "pvc", "data", "-o", "json").stdout)
    assert restored["spec"]["dataSource"] == {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot",
                                              "name": vs["name"]}, restored["spec"]
    kubectl(testenv, "source", "-n", ns, "wait", "--for=jsonpath={.status.phase}=Bound", "pvc/data", "--timeout=120s")
    assert volume_dir(testenv, "source", ns, "data") != src
    assert pod_on_claim(testenv, "source", ns, "restored-reader", READ) == expected

    # deleting the backup deletes the VolumeSnapshot, its content and the driver's snapshot
    r = tenant.client.post(f"/backups/{backup_id}/delete", {})
    assert r.status_code == 303, r.text[:300]
    job = tenant.wait_job(int(r.headers["Location"].rsplit("/", 1)[1]))
    assert job["state"] == "succeeded", job["error"]
    assert gone(testenv, "source", "-n", ns, "volumesnapshot", vs["name"])
    assert gone(testenv, "source", "volumesnapshotcontent", vs["content"])
    assert not os.path.exists(snapshot_dir(testenv, "source", vs["handle"]))
    # the restored claim keeps its data: a volume of its own, not the snapshot
    assert pod_on_claim(testenv, "source", ns, "after-delete", READ) == expected
    # while the controller runs: its finalizers on the namespace's objects must go too
    kubectl(testenv, "source", "delete", "namespace", ns, "--timeout=120s")


def test_snapshot_move_restores_into_the_other_cluster_with_mapping(vols, testenv, snapshots, tmp_path):  # noqa: F811
    ns, target_ns = unique("csimove"), unique("csimoved")
    claim(testenv, "source", ns, "data")
    pod_on_claim(testenv, "source", ns, "writer", WRITE)
    expected = pod_on_claim(testenv, "source", ns, "reader", READ)
    before = walk(volume_dir(testenv, "source", ns, "data"))

    res = vols.run("source", vols.new_job("backup"), "backup", unique("bk"), ns, json.dumps({f"{ns}/data": "snapshot+move"}))
    [volume] = json.loads(res.stdout)
    vs = volume["volume_snapshot"]
    assert volume["method"] == "snapshot+move" and len(volume["snapshot_id"]) == 33, volume
    assert volume["storage_class"] == CLASS["source"] and vs["driver"] == DRIVER, volume
    assert volume["files"] == 3 and volume["bytes"] == sum(e[5] for e in before.values() if len(e) == 7), volume
    # the temporary claim from the snapshot and its volume are gone once the mover pod is done
    deadline = time.time() + 120
    while time.time() < deadline:
        claims = kubectl(testenv, "source", "-n", ns, "get", "pvc", "-o", "name").stdout.split()
        if claims == ["persistentvolumeclaim/data"]:
            break
        time.sleep(0.5)
    assert claims == ["persistentvolumeclaim/data"], claims

    # into the target cluster: another namespace, the target's class of the same driver
    claim(testenv, "target", target_ns, "data")
    restored = dict(volume, storage_class=CLASS["target"])
    rjob, _ = vols.restore("target", [restored], {ns: target_ns}, tmp_path)
    assert [a for _, _, a, _ in vols.items(rjob)] == ["created"]
    assert walk(volume_dir(testenv, "target", target_ns, "data")) == before
    assert pod_on_claim(testenv, "target", target_ns, "reader", READ) == expected
    for cluster, n in (("source", ns), ("target", target_ns)):
        kubectl(testenv, cluster, "delete", "namespace", n, "--timeout=120s")
