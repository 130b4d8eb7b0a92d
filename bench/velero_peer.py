"""Velero, the named peer of the metadata benchmarks: `velero server` run as local processes (one
per test cluster, as a user runs one per cluster) with a BackupStorageLocation in the test
MinIO, and the velero CLI to back up and restore a namespace, timed.

The binaries come from scripts/testenv/build-velero (velero VELERO_VERSION and
velero-plugin-for-aws, from the Go module proxy). Velero runs with its defaults (client QPS 20,
burst 30, as `velero install` leaves them): the peer as users get it."""
import json
import os
import subprocess
import sys
import time

import boto3

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def build():
    """The bin directory with velero and velero-plugin-for-aws (built once, then cached)."""
    res = subprocess.run([os.path.join(TOP, "scripts", "testenv", "build-velero")], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"build-velero failed:\n{res.stderr[-3000:]}")
    return res.stdout.strip().splitlines()[-1]


class Velero:
    """A velero server per cluster of env ("source", "target"), sharing one bucket."""

    def __init__(self, env, root, free_port, bucket="velero"):
        self.env, self.root, self.bucket = env, root, bucket
        self.bin = build()
        self.velero = os.path.join(self.bin, "velero")
        self.plugins = os.path.join(root, "plugins")
        os.makedirs(self.plugins, exist_ok=True)
        link = os.path.join(self.plugins, "velero-plugin-for-aws")
        if not os.path.exists(link):
            os.symlink(os.path.join(self.bin, "velero-plugin-for-aws"), link)
        self.creds = os.path.join(root, "credentials")
        with open(self.creds, "w") as f:
            f.write(f"[default]\naws_access_key_id={env['S3_ACCESS_KEY']}\naws_secret_access_key={env['S3_SECRET_KEY']}\n")
        boto3.client("s3", endpoint_url=env["S3_ENDPOINT"], region_name=env["S3_REGION"],
                     aws_access_key_id=env["S3_ACCESS_KEY"],
                     aws_secret_access_key=env["S3_SECRET_KEY"]).create_bucket(Bucket=bucket)
        self.free_port = free_port
        self.servers = {}

    def kubeconfig(self, cluster):
        return self.env[cluster.upper() + "_KUBECONFIG"]

    def run(self, cluster, *args, timeout=7200):
        res = subprocess.run([self.velero, f"--kubeconfig={self.kubeconfig(cluster)}", "--namespace=velero", *args],
                             capture_output=True, text=True, timeout=timeout,
                             env=dict(os.environ, HOME=self.root))
        if res.returncode != 0:
            raise SystemExit(f"velero {' '.join(args)}: exit {res.returncode}\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
        return res.stdout

    def kubectl(self, cluster, *args, stdin=None):
        res = subprocess.run([self.env["KUBECTL"], f"--kubeconfig={self.kubeconfig(cluster)}", *args],
                             capture_output=True, text=True, input=stdin, timeout=600)
        if res.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)}: {res.stderr[-2000:]}")
        return res.stdout

    def start(self, cluster):
        """Velero's CRDs, its namespace and the BackupStorageLocation in cluster, then its server."""
        crds = subprocess.run([self.velero, "install", "--crds-only", "--dry-run", "-o", "yaml"],
                              capture_output=True, text=True, check=True, env=dict(os.environ, HOME=self.root)).stdout
        self.kubectl(cluster, "apply", "--server-side", "-f", "-", stdin=crds)
        self.kubectl(cluster, "wait", "--for=condition=Established", "--timeout=120s",
                     "crd/backupstoragelocations.velero.io", "crd/backups.velero.io", "crd/restores.velero.io")
        self.kubectl(cluster, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace",
                                                                     "metadata": {"name": "velero"}}))
        self.kubectl(cluster, "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
            "metadata": {"name": "default", "namespace": "velero"},
            "spec": {"provider": "aws", "default": True, "objectStorage": {"bucket": self.bucket},
                     "config": {"region": self.env["S3_REGION"], "s3ForcePathStyle": "true",
                                "s3Url": self.env["S3_ENDPOINT"]}}}))
        # the restore controller reads its own Deployment (for the restore helper's image): one
        # of 0 replicas stands for the server that runs here as a local process
        self.kubectl(cluster, "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "velero", "namespace": "velero"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "velero"}},
                     "template": {"metadata": {"labels": {"app": "velero"}},
                                  "spec": {"containers": [{"name": "velero", "image": "velero/velero:v1.17.2"}]}}}}))
        log = open(os.path.join(self.root, f"velero-{cluster}.log"), "w")
        self.servers[cluster] = subprocess.Popen(
            [self.velero, "server", f"--kubeconfig={self.kubeconfig(cluster)}", "--namespace=velero",
             f"--plugin-dir={self.plugins}", f"--metrics-address=127.0.0.1:{self.free_port()}",
             f"--profiler-address=127.0.0.1:{self.free_port()}", "--backup-sync-period=2s",
             "--store-validation-frequency=2s", "--log-level=info"],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, HOME=self.root, VELERO_NAMESPACE="velero",
                                                          AWS_SHARED_CREDENTIALS_FILE=self.creds))
        deadline = time.time() + 180
        while time.time() < deadline:
            phase = self.kubectl(cluster, "get", "-n", "velero", "backupstoragelocation", "default",
                                 "-o", "jsonpath={.status.phase}")
            if phase == "Available":
                return
            if self.servers[cluster].poll() is not None:
                break
            time.sleep(1)
        raise SystemExit(f"velero server of {cluster} never made its storage location Available; see "
                         f"{os.path.join(self.root, f'velero-{cluster}.log')}")

    def stop(self, cluster=None):
        """Stops the server of cluster, or every one. One runs at a time: velero v1.17's manager
        binds its controller-runtime metrics to :8080 whatever --metrics-address says, so a
        second server on the same machine fails to start."""
        for name in [cluster] if cluster else list(self.servers):
            p = self.servers.pop(name)
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def status(self, cluster, kind, name):
        return json.loads(self.kubectl(cluster, "get", "-n", "velero", kind, name, "-o", "json"))["status"]

    def backup(self, name, namespace):
        """Backs up namespace from the source cluster; (wall seconds, items, phase)."""
        t0 = time.monotonic()
        self.run("source", "backup", "create", name, f"--include-namespaces={namespace}", "--snapshot-volumes=false",
                 "--wait")
        secs = time.monotonic() - t0
        st = self.status("source", "backups.velero.io", name)
        return secs, st.get("progress", {}).get("itemsBackedUp", 0), st.get("phase")

    def restore(self, name, backup, timeout=7200):
        """Restores backup into the target cluster (once its server has synced the backup from the
        bucket); (wall seconds, items restored, phase)."""
        deadline = time.time() + 300
        while subprocess.run([self.env["KUBECTL"], f"--kubeconfig={self.kubeconfig('target')}", "get", "-n", "velero",
                              "backups.velero.io", backup], capture_output=True).returncode != 0:
            if time.time() > deadline:
                raise SystemExit(f"the target's velero server never synced backup {backup}")
            time.sleep(1)
        t0 = time.monotonic()
        self.run("target", "restore", "create", name, f"--from-backup={backup}", "--wait", timeout=timeout)
        secs = time.monotonic() - t0
        st = self.status("target", "restores.velero.io", name)
        if st.get("phase") != "Completed":
            print(f"velero restore {name}: {json.dumps(st)}", file=sys.stderr)
            print(self.run("target", "restore", "logs", name)[-4000:], file=sys.stderr)
        return secs, st.get("progress", {}).get("itemsRestored", 0), st.get("phase")
