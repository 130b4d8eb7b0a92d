"""TEST DOUBLE of a dynamic volume provisioner, for the test environment's clusters.

A real provisioner (a CSI driver's external-provisioner, the local-path provisioner, ...)
needs a kubelet to run its helper pods, and the test clusters have none (kwok only pretends
that pods run). This double plays its part from the outside, through the real API server:
it polls the cluster (kubectl) for Pending PersistentVolumeClaims of the given
StorageClasses and, for each, creates a directory under the cluster's VOLUME_DIR and a
hostPath PersistentVolume pre-bound to the claim (claimRef), which the real
kube-controller-manager's binder then binds. With `snapshots` set it also honours a claim
whose dataSource is a VolumeSnapshot, the way a CSI driver restores one: it copies the
directory that the test's snapshot-controller double recorded as the snapshot's
snapshotHandle into the new volume.

Stowage never calls this: it only sees claims become Bound, as with any provisioner.
"""

import json
import os
import shutil
import subprocess
import threading
import time


class Provisioner:
    def __init__(self, env, cluster, classes, volume_dir, interval=0.5):
        self.env = env
        self.cluster = cluster
        self.classes = set(classes)
        self.volume_dir = volume_dir
        self.interval = interval
        self.provisioned = []          # (namespace, claim, pv name, directory)
        self._stop = threading.Event()
        self._thread = None
        self.errors = []

    def kubectl(self, *args, stdin=None):
        cmd = [self.env["KUBECTL"], f"--kubeconfig={self.env[self.cluster.upper() + '_KUBECONFIG']}", *args]
        res = subprocess.run(cmd, capture_output=True, text=True, input=stdin, timeout=60)
        if res.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout

    def _snapshot_dir(self, ns, name):
        snap = json.loads(self.kubectl("-n", ns, "get", "volumesnapshot", name, "-o", "json"))
        content = snap.get("status", {}).get("boundVolumeSnapshotContentName")
        if not content:
            return None
        c = json.loads(self.kubectl("get", "volumesnapshotcontent", content, "-o", "json"))
        return c.get("status", {}).get("snapshotHandle")

    def provision(self, claim):
        """One PV for one Pending claim: a directory and a hostPath PV bound to it by claimRef."""
        meta, spec = claim["metadata"], claim["spec"]
        ns, name = meta["namespace"], meta["name"]
        pv_name = f"pvc-{meta['uid']}"
        path = os.path.join(self.volume_dir, pv_name)
        source = spec.get("dataSource") or {}
        if source.get("kind") == "VolumeSnapshot":
            snap_dir = self._snapshot_dir(ns, source["name"])
            if not snap_dir:
                return  # not ready yet: a real driver waits too
            shutil.copytree(snap_dir, path, symlinks=True, dirs_exist_ok=True)
        else:
            os.makedirs(path, exist_ok=True)
        pv = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "labels": {"stowage.dev/test-double": "provisioner"}},
            "spec": {
                "storageClassName": spec.get("storageClassName"),
                "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": path, "type": "Directory"},
                "claimRef": {"namespace": ns, "name": name, "uid": meta["uid"]},
            },
        }
        self.kubectl("apply", "-f", "-", stdin=json.dumps(pv))
        self.provisioned.append((ns, name, pv_name, path))

    def once(self):
        claims = json.loads(self.kubectl("get", "pvc", "--all-namespaces", "-o", "json"))["items"]
        done = {(ns, n) for ns, n, _, _ in self.provisioned}
        for c in claims:
            meta = c["metadata"]
            if (c.get("status", {}).get("phase") == "Pending"
                    and c["spec"].get("storageClassName") in self.classes
                    and not c["spec"].get("volumeName")
                    and (meta["namespace"], meta["name"]) not in done):
                self.provision(c)

    def _loop(self):
        while not self._stop.is_set():
            try:
                self.once()
            except Exception as e:  # keep going; the test sees the errors
                self.errors.append(str(e))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)
