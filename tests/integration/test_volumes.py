"""Persistent-volume data of jobs (src/runner/job_volumes.c, volume_snapshot_csi.c, mover_pod.c)
against the real stack's PostgreSQL, the test environment's two kube-apiservers and MinIO.

The backup and restore engines are other modules, so the functions are driven through
tests/integration/c/itest_volumes, which fills in a job of the real database as the runner
does; its progress and items land in the real jobs tables and are checked here.

Two test doubles play what cannot run without a kubelet, and say so:
- provisioner.Provisioner: a dynamic provisioner (binds Pending claims to new hostPath PVs);
- SnapshotControllerDouble below: the CSI snapshot controller and driver (copies the volume's
  directory, creates the VolumeSnapshotContent, marks the VolumeSnapshot readyToUse).
Everything Stowage does goes through the real API servers.

Run: cd tests/integration && STOWAGE_BUILD=../.. /usr/bin/python3 -m pytest test_volumes.py
"""

import hashlib
import json
import os
import shutil
import stat
import subprocess
import threading
import time

import boto3
import psycopg2
import pytest

from conftest import unique
from fixtures_testenv import kubectl
from provisioner import Provisioner

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("STOWAGE_BUILD", REPO)
ITEST = os.path.join(BUILD, "tests", "integration", "c", "itest_volumes")
MOVER = os.path.join(BUILD, "stowage-mover")
FIXTURE_APP = os.path.join(REPO, "scripts", "testenv", "fixture-app")
MIB = 1 << 20
CSI_DRIVER = "hostpath.csi.stowage.dev"


def walk(root):
    """Every entry under root: type, mode, owner, mtime, and size + SHA-256 of files."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            entry = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    entry += (st.st_size, hashlib.sha256(f.read()).hexdigest())
            elif stat.S_ISLNK(st.st_mode):
                entry += (os.readlink(path),)
            out[os.path.relpath(path, root)] = entry
    return out


def tree_bytes(root):
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(root) for f in fs
               if stat.S_ISREG(os.lstat(os.path.join(d, f)).st_mode))


class Volumes:
    """itest_volumes with one job of the real database, one repository in MinIO."""

    def __init__(self, stack, testenv, cur, org_id, bucket):
        self.stack, self.env, self.cur, self.org_id, self.bucket = stack, testenv, cur, org_id, bucket
        self.master_key = os.urandom(32).hex()
        self.repo_id = 7000 + os.getpid() % 1000
        self.cluster_id = 1     # the cluster the job's volumes are of (its bandwidth windows apply)

    def new_job(self, kind="backup"):
        self.cur.execute("INSERT INTO stowage.jobs (org_id, kind, state) VALUES (%s, %s, 'running') RETURNING id",
                         (self.org_id, kind))
        return self.cur.fetchone()[0]

    def run(self, cluster, job_id, *args, stdin=None, check=True, conf=None):
        if not os.access(ITEST, os.X_OK):
            pytest.fail(f"{ITEST} is not built: run `make check` first")
        c = cluster.upper()
        with open(self.env[c + "_CA_FILE"]):
            pass
        env = dict(os.environ, DATABASE_URL=self.stack.pg_dsn_app, ORG_ID=str(self.org_id), JOB_ID=str(job_id),
                   CLUSTER_ID=str(self.cluster_id), API_URL=self.env[c + "_API_URL"], CA_FILE=self.env[c + "_CA_FILE"],
                   TOKEN=self.env[c + "_ADMIN_TOKEN"], S3_ENDPOINT=self.env["S3_ENDPOINT"],
                   S3_REGION=self.env["S3_REGION"], S3_ACCESS_KEY=self.env["S3_ACCESS_KEY"],
                   S3_SECRET_KEY=self.env["S3_SECRET_KEY"], S3_BUCKET=self.bucket, REPO_ID=str(self.repo_id),
                   REPO_PREFIX="team-a/", MASTER_KEY_HEX=self.master_key, MOVER_PATH=MOVER,
                   RUNNER_CONFIG=str(conf or self.runner_conf))
        env.pop("AWS_ACCESS_KEY_ID", None)
        res = subprocess.run([ITEST, *args], env=env, capture_output=True, text=True, input=stdin, timeout=600)
        if check and res.returncode != 0:
            pytest.fail(f"itest_volumes {' '.join(args[:2])} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
        return res

    def backup(self, cluster, namespaces, methods=None, name=None):
        job = self.new_job("backup")
        res = self.run(cluster, job, "backup", name or unique("bk"), ",".join(namespaces), json.dumps(methods or {}))
        return job, json.loads(res.stdout), res

    def restore(self, cluster, volumes, ns_map, tmp_path, check=True):
        job = self.new_job("restore")
        path = tmp_path / f"volumes-{job}.json"
        path.write_text(json.dumps(volumes))
        return job, self.run(cluster, job, "restore", str(path), json.dumps(ns_map), check=check)

    def job_row(self, job):
        self.cur.execute("SELECT phase, items_done, items_total, bytes_done, bytes_total FROM stowage.jobs WHERE id = %s",
                         (job,))
        return self.cur.fetchone()

    def items(self, job):
        self.cur.execute("SELECT namespace, name, action, message FROM stowage.job_items WHERE job_id = %s "
                         "AND api_group = 'stowage.dev' AND resource = 'volumedata' ORDER BY name", (job,))
        return self.cur.fetchall()


@pytest.fixture(scope="module")
def vols(stack, testenv, tmp_path_factory):
    s3 = boto3.client("s3", endpoint_url=testenv["S3_ENDPOINT"], region_name=testenv["S3_REGION"],
                      aws_access_key_id=testenv["S3_ACCESS_KEY"], aws_secret_access_key=testenv["S3_SECRET_KEY"])
    bucket = unique("volumes-")
    s3.create_bucket(Bucket=bucket)
    conn = psycopg2.connect(stack.pg_dsn_owner)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("INSERT INTO stowage.orgs (name) VALUES (%s) RETURNING id", (unique("Volumes org "),))
    v = Volumes(stack, testenv, cur, cur.fetchone()[0], bucket)
    # single-tenant on purpose, below the test clusters' volume directories only
    v.runner_conf = tmp_path_factory.mktemp("runner") / "runner.conf"
    v.runner_conf.write_text("mover_launch = local\nmover_single_tenant = yes\n"
                             f"mover_local_root = {testenv['SOURCE_VOLUME_DIR']}, {testenv['TARGET_VOLUME_DIR']}\n")
    v.s3 = s3
    yield v
    conn.close()


def fixture_app(testenv, cluster, ns):
    c = cluster.upper()
    res = subprocess.run([FIXTURE_APP, testenv[c + "_KUBECONFIG"], ns, testenv[c + "_VOLUME_DIR"]],
                         capture_output=True, text=True, env=dict(os.environ, KUBECTL=testenv["KUBECTL"]), timeout=300)
    assert res.returncode == 0, f"fixture-app: {res.stderr}"


def pv_dir(testenv, cluster, ns, pvc):
    claim = json.loads(kubectl(testenv, cluster, "-n", ns, "get", "pvc", pvc, "-o", "json").stdout)
    pv = json.loads(kubectl(testenv, cluster, "get", "pv", claim["spec"]["volumeName"], "-o", "json").stdout)
    spec = pv["spec"]
    return (spec.get("hostPath") or spec.get("local") or {}).get("path") or spec["csi"]["volumeHandle"]


def create_claims(testenv, cluster, ns, volumes, storage_class):
    """What the restore engine does with a StorageClass mapping: the claims, in the new class."""
    kubectl(testenv, cluster, "create", "namespace", ns)
    for v in volumes:
        claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": v["pvc"], "namespace": ns},
                 "spec": {"storageClassName": storage_class, "accessModes": ["ReadWriteOnce"],
                          "resources": {"requests": {"storage": v["size"]}}}}
        kubectl(testenv, cluster, "apply", "-f", "-", stdin=json.dumps(claim))


def test_fixture_app_volumes_migrate_to_another_storage_class(vols, testenv, tmp_path):
    ns, target_ns = unique("shop"), unique("shop-moved")
    fixture_app(testenv, "source", ns)
    # something big enough for progress lines: 24 MiB of random data beside the fixture's files
    big = os.path.join(pv_dir(testenv, "source", ns, "wordpress-data"), "wp-content", "uploads", "video.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(24 * MIB))

    job, volumes, res = vols.backup("source", [ns])

    by_pvc = {v["pvc"]: v for v in volumes}
    assert sorted(by_pvc) == ["data-mysql-0", "data-mysql-1", "wordpress-data"], volumes
    for pvc, v in by_pvc.items():
        src = pv_dir(testenv, "source", ns, pvc)
        assert v["namespace"] == ns and v["method"] == "filesystem" and v["storage_class"] == testenv["SOURCE_STORAGE_CLASS"]
        assert v["pv"] == f"{ns}-{pvc}" and v["size"] in ("1Gi", "2Gi")
        assert len(v["snapshot_id"]) == 33 and v["bytes"] == tree_bytes(src), v
        assert v["files"] == sum(len(fs) for _, _, fs in os.walk(src)) and v["duration_ms"] >= 0
    total = sum(v["bytes"] for v in volumes)
    assert total > 24 * MIB
    # the job page: phase, every volume counted, bytes done = total; one item per claim
    assert vols.job_row(job) == ("volumes", 3, 3, total, total)
    assert [(n, a, m) for _, n, a, m in vols.items(job)] == [
        ("data-mysql-0", "backed_up", "filesystem"), ("data-mysql-1", "backed_up", "filesystem"),
        ("wordpress-data", "backed_up", "filesystem")]
    result = json.loads(res.stderr.split("result ", 1)[1])
    assert result["volumes"]["bytes"] == total and result["volumes"]["throughput_mb_s"] > 0
    # the data is in the repository's data/ prefix, under the repository's id, encrypted
    keys = [o["Key"] for o in vols.s3.list_objects_v2(Bucket=vols.bucket, Prefix=f"team-a/data/{vols.repo_id}/data/snapshots/")
            .get("Contents", [])]
    assert len(keys) == 3, keys
    body = b"".join(vols.s3.get_object(Bucket=vols.bucket, Key=o["Key"])["Body"].read()
                    for o in vols.s3.list_objects_v2(Bucket=vols.bucket, Prefix=f"team-a/data/{vols.repo_id}/data/packs/")["Contents"])
    assert b"Stowage fixture blog" not in body and b"mysql replica" not in body

    # a second backup of unchanged volumes stores nothing new
    _, again, _ = vols.backup("source", [ns])
    assert all(v["bytes_new"] == 0 for v in again), again

    # restore into the target cluster, another namespace, the target's StorageClass; the
    # provisioner double binds the new claims to fresh volumes
    with Provisioner(testenv, "target", [testenv["TARGET_STORAGE_CLASS"]], testenv["TARGET_VOLUME_DIR"]) as prov:
        create_claims(testenv, "target", target_ns, volumes, testenv["TARGET_STORAGE_CLASS"])
        rjob, _ = vols.restore("target", volumes, {ns: target_ns}, tmp_path)
    assert not prov.errors, prov.errors
    for pvc in by_pvc:
        src, dst = pv_dir(testenv, "source", ns, pvc), pv_dir(testenv, "target", target_ns, pvc)
        assert dst.startswith(testenv["TARGET_VOLUME_DIR"]) and src != dst
        assert walk(dst) == walk(src), pvc
    assert vols.job_row(rjob) == ("volumes", 3, 3, total, total)
    assert [a for _, _, a, _ in vols.items(rjob)] == ["created"] * 3


def test_a_failed_volume_names_the_claim_and_the_movers_reason(vols, testenv, tmp_path):
    ns = unique("broken")
    fixture_app(testenv, "source", ns)
    _, volumes, _ = vols.backup("source", [ns])
    bad = [dict(v) for v in volumes if v["pvc"] == "wordpress-data"]
    bad[0]["snapshot_id"] = "20200101T000000Z-0000000000000000"
    job, res = vols.restore("source", bad, {}, tmp_path, check=False)
    assert res.returncode == 1
    assert f"claim {ns}/wordpress-data: data mover exited" in res.stderr, res.stderr
    assert "20200101T000000Z-0000000000000000" in res.stderr, res.stderr
    [(_, name, action, message)] = vols.items(job)
    assert (name, action) == ("wordpress-data", "failed") and f"claim {ns}/wordpress-data" in message
    vols.cur.execute("SELECT count(*) FROM stowage.job_logs WHERE job_id = %s AND level = 'error' AND message LIKE %s",
                     (job, f"%{ns}/wordpress-data%"))
    assert vols.cur.fetchone()[0] >= 1
    # a method that does not exist is refused by name
    job, volumes, res = None, None, vols.run("source", vols.new_job(), "backup", unique("bk"), ns,
                                             json.dumps({f"{ns}/wordpress-data": "rsync"}), check=False)
    assert res.returncode == 1 and f'claim {ns}/wordpress-data: method "rsync"' in res.stderr, res.stderr


class SnapshotControllerDouble:
    """TEST DOUBLE of the CSI snapshot controller and driver (none can run here): for each new
    VolumeSnapshot of its namespace it copies the claim's volume directory (the CSI volume's
    volumeHandle is that directory) into snapshot_dir, creates the VolumeSnapshotContent with
    that copy as its snapshotHandle, and marks both ready, through the real API server."""

    def __init__(self, testenv, cluster, ns, snapshot_dir):
        self.env, self.cluster, self.ns, self.dir = testenv, cluster, ns, snapshot_dir
        self.stop = threading.Event()
        self.errors = []

    def k(self, *args, stdin=None):
        return kubectl(self.env, self.cluster, *args, stdin=stdin)

    def handle(self, snap):
        meta = snap["metadata"]
        claim = json.loads(self.k("-n", self.ns, "get", "pvc", snap["spec"]["source"]["persistentVolumeClaimName"],
                                  "-o", "json").stdout)
        pv = json.loads(self.k("get", "pv", claim["spec"]["volumeName"], "-o", "json").stdout)
        cls = json.loads(self.k("get", "volumesnapshotclass", snap["spec"]["volumeSnapshotClassName"], "-o", "json").stdout)
        copy = os.path.join(self.dir, meta["uid"])
        shutil.copytree(pv["spec"]["csi"]["volumeHandle"], copy, symlinks=True)
        content = f"snapcontent-{meta['uid']}"
        self.k("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
            "metadata": {"name": content},
            "spec": {"deletionPolicy": cls["deletionPolicy"], "driver": cls["driver"],
                     "volumeSnapshotClassName": cls["metadata"]["name"],
                     "source": {"volumeHandle": pv["spec"]["csi"]["volumeHandle"]},
                     "volumeSnapshotRef": {"name": meta["name"], "namespace": self.ns, "uid": meta["uid"]}}}))
        self.k("patch", "volumesnapshotcontent", content, "--subresource=status", "--type=merge", "-p",
               json.dumps({"status": {"snapshotHandle": copy, "readyToUse": True}}))
        self.k("-n", self.ns, "patch", "volumesnapshot", meta["name"], "--subresource=status", "--type=merge", "-p",
               json.dumps({"status": {"boundVolumeSnapshotContentName": content, "readyToUse": True,
                                      "restoreSize": pv["spec"]["capacity"]["storage"]}}))

    def loop(self):
        seen = set()
        while not self.stop.is_set():
            try:
                for s in json.loads(self.k("-n", self.ns, "get", "volumesnapshot", "-o", "json").stdout)["items"]:
                    if s["metadata"]["uid"] not in seen and not s.get("status", {}).get("readyToUse"):
                        seen.add(s["metadata"]["uid"])
                        self.handle(s)
            except Exception as e:  # reported by the test
                self.errors.append(repr(e))
            self.stop.wait(0.5)

    def __enter__(self):
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)


def csi_claim(testenv, ns, name, files):
    """A claim bound to a CSI volume of the snapshot class's driver, its files in a directory."""
    d = os.path.join(testenv["SOURCE_VOLUME_DIR"], f"{ns}-{name}")
    os.makedirs(os.path.join(d, "db"))
    for path, data in files.items():
        with open(os.path.join(d, path), "wb") as f:
            f.write(data)
    sc = testenv["SOURCE_STORAGE_CLASS"]
    kubectl(testenv, "source", "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{ns}-{name}"},
         "spec": {"storageClassName": sc, "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                  "persistentVolumeReclaimPolicy": "Retain", "csi": {"driver": CSI_DRIVER, "volumeHandle": d},
                  "claimRef": {"namespace": ns, "name": name}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": ns},
         "spec": {"storageClassName": sc, "accessModes": ["ReadWriteOnce"], "volumeName": f"{ns}-{name}",
                  "resources": {"requests": {"storage": "1Gi"}}}}]}))
    kubectl(testenv, "source", "-n", ns, "wait", "--for=jsonpath={.status.phase}=Bound", f"pvc/{name}", "--timeout=60s")
    return d


def test_volume_snapshot_round_trip_in_the_same_cluster(vols, testenv, tmp_path):
    ns = unique("snap")
    kubectl(testenv, "source", "create", "namespace", ns)
    files = {"db/table.ibd": os.urandom(300000), "db/log": b"redo log\n"}
    src = csi_claim(testenv, ns, "data", files)
    # the wizard's check: the test environment's labelled Retain class serves this driver
    assert vols.run("source", 0, "validate", CSI_DRIVER).stdout.strip() == "ok"
    res = vols.run("source", 0, "validate", "ebs.csi.aws.com", check=False)
    assert res.returncode == 1 and "none for the volume's CSI driver ebs.csi.aws.com" in res.stdout

    snapdir = tmp_path / "snapshots"
    snapdir.mkdir()
    with SnapshotControllerDouble(testenv, "source", ns, str(snapdir)) as ctl:
        job, volumes, _ = vols.backup("source", [ns], {f"{ns}/data": "snapshot"}, name="nightly")
    assert not ctl.errors, ctl.errors
    [v] = volumes
    vs = v["volume_snapshot"]
    assert v["method"] == "snapshot" and "snapshot_id" not in v
    assert vs["api_version"] == "snapshot.storage.k8s.io/v1" and vs["class"] == "stowage-snapclass"
    assert vs["name"] == "stowage-nightly-data" and vs["namespace"] == ns and vs["driver"] == CSI_DRIVER
    snap = json.loads(kubectl(testenv, "source", "-n", ns, "get", "volumesnapshot", vs["name"], "-o", "json").stdout)
    assert snap["spec"] == {"source": {"persistentVolumeClaimName": "data"}, "volumeSnapshotClassName": "stowage-snapclass"}
    assert vs["content"] == snap["status"]["boundVolumeSnapshotContentName"]
    assert walk(vs["handle"]) == walk(src)
    assert vols.items(job) == [(ns, "data", "backed_up", "snapshot")]

    # the restore engine's dataSource: only into the same cluster and namespace
    path = tmp_path / "volumes.json"
    path.write_text(json.dumps(volumes))
    ds = vols.run("source", 0, "datasource", str(path), "0", "1", ns).stdout.strip()
    assert json.loads(ds) == {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": vs["name"]}
    other = vols.run("source", 0, "datasource", str(path), "0", "0", ns, check=False).stdout
    assert "exists only in the cluster it was taken in" in other and "snapshot+move" in other
    other = vols.run("source", 0, "datasource", str(path), "0", "1", "elsewhere", check=False).stdout
    assert f"serves claims of namespace {ns} only, not elsewhere" in other

    # restore: the claim again, from the snapshot; the provisioner double plays the driver
    kubectl(testenv, "source", "-n", ns, "delete", "pvc", "data", "--wait=true")
    with open(os.path.join(src, "db", "log"), "wb") as f:
        f.write(b"changed after the snapshot\n")
    with Provisioner(testenv, "source", ["restored-from-snapshot"], testenv["SOURCE_VOLUME_DIR"]) as prov:
        kubectl(testenv, "source", "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": ns},
            "spec": {"storageClassName": "restored-from-snapshot", "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}, "dataSource": json.loads(ds)}}))
        rjob, _ = vols.restore("source", volumes, {}, tmp_path)
    assert not prov.errors, prov.errors
    restored = pv_dir(testenv, "source", ns, "data")
    with open(os.path.join(restored, "db", "log"), "rb") as f:
        assert f.read() == b"redo log\n"
    assert walk(restored) == walk(vs["handle"])
    assert vols.items(rjob) == [(ns, "data", "created", "snapshot")]


def test_snapshot_move_restores_into_another_cluster(vols, testenv, tmp_path):
    ns, target_ns = unique("snapmove"), unique("snapmoved")
    kubectl(testenv, "source", "create", "namespace", ns)
    src = csi_claim(testenv, ns, "data", {"db/table.ibd": os.urandom(500000), "db/log": b"redo\n"})
    snapdir = tmp_path / "snapshots"
    snapdir.mkdir()
    with SnapshotControllerDouble(testenv, "source", ns, str(snapdir)) as ctl, \
            Provisioner(testenv, "source", [testenv["SOURCE_STORAGE_CLASS"]], testenv["SOURCE_VOLUME_DIR"]) as prov:
        job, volumes, _ = vols.backup("source", [ns], {f"{ns}/data": "snapshot+move"})
    assert not ctl.errors and not prov.errors, (ctl.errors, prov.errors)
    [v] = volumes
    assert v["method"] == "snapshot+move" and v["volume_snapshot"]["name"] and len(v["snapshot_id"]) == 33
    assert v["bytes"] == tree_bytes(src)
    # the temporary claim restored from the snapshot is deleted (gone once the controller
    # removes its pvc-protection finalizer)
    deadline = time.time() + 60
    while True:
        claims = kubectl(testenv, "source", "-n", ns, "get", "pvc", "-o", "name").stdout.split()
        if claims == ["persistentvolumeclaim/data"] or time.time() > deadline:
            break
        time.sleep(1)
    assert claims == ["persistentvolumeclaim/data"], claims
    with Provisioner(testenv, "target", [testenv["TARGET_STORAGE_CLASS"]], testenv["TARGET_VOLUME_DIR"]):
        create_claims(testenv, "target", target_ns, volumes, testenv["TARGET_STORAGE_CLASS"])
        vols.restore("target", volumes, {ns: target_ns}, tmp_path)
    assert walk(pv_dir(testenv, "target", target_ns, "data")) == walk(src)


def test_retain_is_required_and_said_so(vols, testenv):
    name = unique("deleting-class")
    kubectl(testenv, "target", "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": name, "labels": {"velero.io/csi-volumesnapshot-class": "true"}},
        "driver": "delete.csi.stowage.dev", "deletionPolicy": "Delete"}))
    try:
        res = vols.run("target", 0, "validate", "delete.csi.stowage.dev", check=False)
        assert res.returncode == 1
        assert f"{name} (deletionPolicy Delete) must have deletionPolicy Retain" in res.stdout, res.stdout
    finally:
        kubectl(testenv, "target", "delete", "volumesnapshotclass", name)
    kubectl(testenv, "target", "label", "volumesnapshotclass", "stowage-snapclass", "velero.io/csi-volumesnapshot-class-")
    try:
        res = vols.run("target", 0, "validate", check=False)
        assert res.stdout.strip() == ("volume snapshot needs a VolumeSnapshotClass labelled "
                                      "velero.io/csi-volumesnapshot-class=true with deletionPolicy Retain in "
                                      "cluster itest: none found"), res.stdout
    finally:
        kubectl(testenv, "target", "label", "volumesnapshotclass", "stowage-snapclass",
                "velero.io/csi-volumesnapshot-class=true")


def test_mover_pod_and_secret_are_accepted_and_cleaned_up(vols, testenv):
    """kwok runs no container, so the pod never ends: this checks what the real API server
    accepted, that following it gives up in words, and that both objects are deleted."""
    ns = unique("podpath")
    fixture_app(testenv, "source", ns)
    node = json.loads(kubectl(testenv, "source", "-n", ns, "get", "pod", "-l", "app=wordpress", "-o", "json").stdout)[
        "items"][0]["spec"]["nodeName"]
    job = vols.new_job()
    p = subprocess.Popen([ITEST, "pod", ns, "wordpress-data", node], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=dict(
                             os.environ, DATABASE_URL=vols.stack.pg_dsn_app, ORG_ID=str(vols.org_id), JOB_ID=str(job),
                             CLUSTER_ID="1", API_URL=testenv["SOURCE_API_URL"], CA_FILE=testenv["SOURCE_CA_FILE"],
                             TOKEN=testenv["SOURCE_ADMIN_TOKEN"], S3_ACCESS_KEY="AKIDPOD", S3_SECRET_KEY="pod-secret",
                             MASTER_KEY_HEX=vols.master_key, MOVER_PATH=MOVER))
    first = p.stdout.readline().strip()
    assert first.startswith("created "), first + p.stderr.read()
    name = first.split()[1]
    pod = json.loads(kubectl(testenv, "source", "-n", ns, "get", "pod", name, "-o", "json").stdout)
    secret = json.loads(kubectl(testenv, "source", "-n", ns, "get", "secret", name, "-o", "json").stdout)
    out, err = p.communicate("go\n", timeout=120)

    spec = pod["spec"]
    [c] = spec["containers"]
    assert spec["nodeName"] == node and spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    vols_by_name = {v["name"]: v for v in spec["volumes"]}
    assert vols_by_name["data"]["persistentVolumeClaim"] == {"claimName": "wordpress-data", "readOnly": True}
    assert vols_by_name["mover-key"]["secret"]["secretName"] == name
    assert {m["name"]: (m["mountPath"], m.get("readOnly")) for m in c["volumeMounts"]} == {
        "data": ("/data", True), "mover-key": ("/var/run/stowage", True)}
    assert c["command"] == ["stowage-mover"] and c["args"][:1] == ["backup"]
    assert "--key-file" in c["args"] and c["args"][c["args"].index("--key-file") + 1] == "/var/run/stowage/mover.key"
    assert {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]} == {
        "AWS_ACCESS_KEY_ID": {"name": name, "key": "AWS_ACCESS_KEY_ID"},
        "AWS_SECRET_ACCESS_KEY": {"name": name, "key": "AWS_SECRET_ACCESS_KEY"}}
    sc = c["securityContext"]
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]}
    assert "pod-secret" not in json.dumps(pod)
    import base64
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["AWS_ACCESS_KEY_ID"] == "AKIDPOD" and data["AWS_SECRET_ACCESS_KEY"] == "pod-secret"
    assert len(data["mover.key"]) == 64 and secret["immutable"] is True

    assert p.returncode == 0, out + err
    assert f"follow failed: data mover pod {ns}/{name}: still Running after 3 s" in out, out
    assert "delete ok" in out, out
    deadline = time.time() + 60
    while time.time() < deadline:
        left = kubectl(testenv, "source", "-n", ns, "get", "pod,secret", "--field-selector", f"metadata.name={name}",
                       "-o", "name").stdout.split()
        if not left:
            break
        time.sleep(1)
    assert not left, f"still there after the mover pod was deleted: {left}"


def test_pod_launch_path_through_a_backup_job_and_its_cancel(vols, testenv, tmp_path):
    """mover_launch = pod: job_backup_volumes starts the mover pod with the local path's
    arguments re-pointed at the pod's mount and key file; cancelling the job stops following
    it and deletes the pod and the secret (kwok never ends the pod, so a cancel is the end)."""
    ns = unique("podjob")
    fixture_app(testenv, "source", ns)
    conf = tmp_path / "runner.conf"
    conf.write_text("mover_launch = pod\nmover_image = registry.example.test/stowage/mover:1\n")
    job = vols.new_job()
    env = dict(os.environ, DATABASE_URL=vols.stack.pg_dsn_app, ORG_ID=str(vols.org_id), JOB_ID=str(job),
               CLUSTER_ID="1", API_URL=testenv["SOURCE_API_URL"], CA_FILE=testenv["SOURCE_CA_FILE"],
               TOKEN=testenv["SOURCE_ADMIN_TOKEN"], S3_ENDPOINT=testenv["S3_ENDPOINT"], S3_REGION=testenv["S3_REGION"],
               S3_ACCESS_KEY=testenv["S3_ACCESS_KEY"], S3_SECRET_KEY=testenv["S3_SECRET_KEY"], S3_BUCKET=vols.bucket,
               REPO_ID=str(vols.repo_id), REPO_PREFIX="team-a/", MASTER_KEY_HEX=vols.master_key, MOVER_PATH=MOVER,
               RUNNER_CONFIG=str(conf))
    p = subprocess.Popen([ITEST, "backup", "bk", ns, json.dumps({f"{ns}/data-mysql-0": "filesystem"})],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, pods = time.time() + 60, []
        while time.time() < deadline and not pods:
            pods = json.loads(kubectl(testenv, "source", "-n", ns, "get", "pod", "-l",
                                      "app.kubernetes.io/component=data-mover", "-o", "json").stdout)["items"]
            time.sleep(0.5)
        assert pods, "no mover pod was created"
        [pod] = pods
        c = pod["spec"]["containers"][0]
        args = c["args"]
        assert c["image"] == "registry.example.test/stowage/mover:1"
        assert args[0] == "backup" and args[args.index("--source") + 1] == "/data"
        assert args[args.index("--key-file") + 1] == "/var/run/stowage/mover.key"
        assert args[args.index("--repo-id") + 1] == str(vols.repo_id)
        assert args[args.index("--repo") + 1] == (f"s3://{vols.bucket}/team-a/data?region={testenv['S3_REGION']}"
                                                  f"&endpoint={testenv['S3_ENDPOINT']}&path_style=1")
        tags = [args[i + 1] for i, a in enumerate(args) if a == "--tag"]
        assert tags == ["cluster=1", f"namespace={ns}", f"pvc={pod['metadata']['labels']['stowage.dev/pvc']}"]
        claim = pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
        assert claim == pod["metadata"]["labels"]["stowage.dev/pvc"]
        # the pod of a ReadWriteOnce claim goes where the claim's user runs
        user = json.loads(kubectl(testenv, "source", "-n", ns, "get", "pod", "-o", "json").stdout)["items"]
        nodes = {u["spec"].get("nodeName") for u in user
                 if any(v.get("persistentVolumeClaim", {}).get("claimName") == claim for v in u["spec"].get("volumes", []))}
        assert pod["spec"]["nodeName"] in nodes, (pod["spec"]["nodeName"], nodes)
        vols.cur.execute("UPDATE stowage.jobs SET cancel_requested = true WHERE id = %s", (job,))
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1, out + err
    assert "the job was cancelled" in err and f"claim {ns}/" in err, err
    left = kubectl(testenv, "source", "-n", ns, "get", "pod,secret", "-l", "app.kubernetes.io/component=data-mover",
                   "-o", "name").stdout.split()
    deadline = time.time() + 60
    while left and time.time() < deadline:
        time.sleep(1)
        left = kubectl(testenv, "source", "-n", ns, "get", "pod,secret", "-l",
                       "app.kubernetes.io/component=data-mover", "-o", "name").stdout.split()
    assert not left, left


# ---- the local launch path against a hostile cluster (issue 13) ----

def hostile_claim(testenv, cluster, ns, name, path):
    """A claim bound to a PV whose hostPath is whatever a hostile tenant's cluster says."""
    kubectl(testenv, cluster, "create", "namespace", ns, check=False)
    sc = testenv[cluster.upper() + "_STORAGE_CLASS"]
    kubectl(testenv, cluster, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{ns}-{name}"},
         "spec": {"storageClassName": sc, "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                  "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": path},
                  "claimRef": {"namespace": ns, "name": name}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": ns},
         "spec": {"storageClassName": sc, "accessModes": ["ReadWriteOnce"], "volumeName": f"{ns}-{name}",
                  "resources": {"requests": {"storage": "1Gi"}}}}]}))
    kubectl(testenv, cluster, "-n", ns, "wait", "--for=jsonpath={.status.phase}=Bound", f"pvc/{name}", "--timeout=60s")


def bucket_objects(vols):
    return sorted(o["Key"] for page in vols.s3.get_paginator("list_objects_v2").paginate(Bucket=vols.bucket)
                  for o in page.get("Contents", []))


def hostile_paths(vols, testenv):
    """Each a directory of the runner's machine a tenant must not reach, and the words why."""
    root = testenv["SOURCE_VOLUME_DIR"]
    ns_dir = os.path.join(root, unique("escape"))
    os.makedirs(ns_dir)
    os.symlink("/etc", os.path.join(ns_dir, "to-etc"))		# a symlink inside the root pointing out
    os.symlink(vols.stack.root, os.path.join(ns_dir, "to-stack"))
    return [("/", "it is not below mover_local_root"),
            (vols.stack.root, "it is not below mover_local_root"),	# the configuration and master.key
            (os.path.dirname(vols.runner_conf), "it is not below mover_local_root"),
            (os.path.join(ns_dir, "to-etc"), "a symlink lies on its way"),
            (os.path.join(ns_dir, "to-stack"), "a symlink lies on its way"),
            (root, "it is not below mover_local_root")]		# the root itself: every tenant's volumes


def test_backup_of_a_host_directory_outside_the_root_is_refused_in_words(vols, testenv):
    before = bucket_objects(vols)
    for i, (path, why) in enumerate(hostile_paths(vols, testenv)):
        ns = unique("hostile")
        hostile_claim(testenv, "source", ns, "data", path)
        job = vols.new_job()
        res = vols.run("source", job, "backup", unique("bk"), ns, json.dumps({}), check=False)
        assert res.returncode == 1, (path, res.stdout, res.stderr)
        words = f'claim {ns}/data: the directory "{path}" of PersistentVolume {ns}-data is refused: {why}'
        assert words in res.stderr and "nothing was copied" in res.stderr, (path, res.stderr)
        [(_, name, action, message)] = vols.items(job)
        assert (name, action) == ("data", "failed") and words in message, (path, message)
    assert bucket_objects(vols) == before, "a refused volume put something into the repository"


def test_restore_into_a_host_directory_outside_the_root_is_refused_in_words(vols, testenv, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("untouched")
    entry = {"pvc": "data", "method": "filesystem", "snapshot_id": "20200101T000000Z-0000000000000000",
             "bytes": 9, "files": 1, "size": "1Gi"}
    for path in ["/", str(victim), vols.stack.root]:
        ns = unique("hostile-restore")
        hostile_claim(testenv, "target", ns, "data", path)
        job, res = vols.restore("target", [dict(entry, namespace=ns)], {}, tmp_path, check=False)
        assert res.returncode == 1, res.stdout + res.stderr
        assert (f'claim {ns}/data: the directory "{path}" of PersistentVolume {ns}-data is refused: '
                "it is not below mover_local_root") in res.stderr, res.stderr
    assert os.listdir(victim) == ["keep"] and (victim / "keep").read_text() == "untouched"


def test_dot_dot_in_a_host_path_never_reaches_the_mover(vols, testenv):
    """A real API server already refuses ".." in hostPath.path; say so, so a cluster that does not
    (a hostile one, test_hostile_servers.py) is the only way it arrives."""
    ns = unique("dotdot")
    kubectl(testenv, "source", "create", "namespace", ns)
    res = kubectl(testenv, "source", "apply", "-f", "-", check=False, stdin=json.dumps(
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{ns}-data"},
         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                  "hostPath": {"path": testenv["SOURCE_VOLUME_DIR"] + "/../../../etc"}}}))
    if res.returncode == 0:
        kubectl(testenv, "source", "-n", ns, "apply", "-f", "-", stdin=json.dumps(
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": ns},
             "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": f"{ns}-data", "storageClassName": "",
                      "resources": {"requests": {"storage": "1Gi"}}}}))
        kubectl(testenv, "source", "-n", ns, "wait", "--for=jsonpath={.status.phase}=Bound", "pvc/data",
                "--timeout=60s")
        res = vols.run("source", vols.new_job(), "backup", unique("bk"), ns, json.dumps({}), check=False)
        assert res.returncode == 1 and '"." or ".." component' in res.stderr, res.stderr
    else:
        assert ".." in res.stderr, res.stderr


@pytest.mark.parametrize("conf, words", [
    (None, "the runner has no configuration file, so mover_launch is not set"),
    ("", "mover_launch is not set: set mover_launch = pod (with mover_image), or, for a single-tenant "
         "deployment only, mover_launch = local with mover_single_tenant = yes and mover_local_root"),
    ("mover_launch = local\n", "mover_launch = local is refused: it copies directories of the runner's own "
                               "machine that a tenant's cluster names, so it is for single-tenant deployments only"),
    ("mover_launch = local\nmover_single_tenant = yes\n", "mover_launch = local needs mover_local_root"),
])
def test_local_launch_must_be_configured_by_name(vols, testenv, tmp_path, conf, words):
    ns = unique("noconf")
    fixture_app(testenv, "source", ns)
    path = tmp_path / "runner.conf"
    if conf is not None:
        path.write_text(conf)
    job = vols.new_job()
    if conf is None:
        res = run_without_config(vols, job, ns)
    else:
        res = vols.run("source", job, "backup", unique("bk"), ns, json.dumps({}), check=False, conf=path)
    assert res.returncode == 1 and words in res.stderr, res.stderr


def run_without_config(vols, job, ns):
    env = dict(os.environ, DATABASE_URL=vols.stack.pg_dsn_app, ORG_ID=str(vols.org_id), JOB_ID=str(job),
               CLUSTER_ID="1", API_URL=vols.env["SOURCE_API_URL"], CA_FILE=vols.env["SOURCE_CA_FILE"],
               TOKEN=vols.env["SOURCE_ADMIN_TOKEN"], S3_ENDPOINT=vols.env["S3_ENDPOINT"],
               S3_REGION=vols.env["S3_REGION"], S3_ACCESS_KEY=vols.env["S3_ACCESS_KEY"],
               S3_SECRET_KEY=vols.env["S3_SECRET_KEY"], S3_BUCKET=vols.bucket, REPO_ID=str(vols.repo_id),
               REPO_PREFIX="team-a/", MASTER_KEY_HEX=vols.master_key, MOVER_PATH=MOVER)
    env.pop("RUNNER_CONFIG", None)
    return subprocess.run([ITEST, "backup", unique("bk"), ns, json.dumps({})], env=env, capture_output=True,
                          text=True, timeout=600)
