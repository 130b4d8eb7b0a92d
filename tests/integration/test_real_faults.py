"""Faults with real pods (issue 12): the real node's kubelet stopped while a mover pod copies.

The container goes on running under containerd, but nothing reports on it any more: the pod's
status stays the last one the kubelet sent and a deletion is never confirmed. The controller
manager marks the node NotReady once its lease is older than the node monitor's grace period
(50 s) and its pods not Ready; the runner then reads the node and fails the claim in words
instead of waiting for its 24-hour pod limit (src/runner/mover_pod.c). The kubelet is started
again with its own command line, kills what the runner deleted meanwhile, and the next backup
of the claim succeeds. (The mover pod deleted mid-backup: test_mover_pod.py.)

Run: cd tests/integration && STOWAGE_BUILD=../../build/asan /usr/bin/python3 -m pytest test_real_faults.py
"""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import unique
from fixtures_testenv import kubectl
from test_mover_pod import (big_claim, mover_image, mover_pods, snapshot_manifests, start_backup,  # noqa: F401
                            vols, wait_copying)
from test_real_node import needs_real_nodes  # noqa: F401 (autouse fixture)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Kubelet:
    """The source cluster's real kubelet, found among the environment's pids by its command line."""

    def __init__(self, testenv, cluster="source"):
        self.testenv, self.cluster = testenv, cluster
        self.root = testenv["TESTENV_ROOT"]
        node = testenv[cluster.upper() + "_REAL_NODE"]
        with open(os.path.join(self.root, "pids")) as f:
            for pid in (int(line) for line in f if line.strip()):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as c:
                        argv = [a.decode() for a in c.read().split(b"\0") if a]
                    with open(f"/proc/{pid}/environ", "rb") as e:
                        environ = dict(v.decode().split("=", 1) for v in e.read().split(b"\0") if b"=" in v)
                except OSError:
                    continue
                if os.path.basename(argv[0]) == "kubelet" and f"--hostname-override={node}" in argv:
                    self.pid, self.argv, self.environ = pid, argv, environ
                    return
        pytest.fail(f"no running kubelet of {node} in {self.root}/pids")

    def stop(self):
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.time() + 30
        while time.time() < deadline and alive(self.pid):
            time.sleep(0.2)
        assert not alive(self.pid), "the kubelet did not stop"

    def start(self):
        """The same command line, log and working directory; its pid joins ROOT/pids for stop."""
        log = open(os.path.join(self.root, "logs", f"{self.cluster}-kubelet.log"), "ab")
        proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.environ,
                                start_new_session=True, cwd=self.root)
        log.close()
        with open(os.path.join(self.root, "pids"), "a") as f:
            f.write(f"{proc.pid}\n")
        self.pid = proc.pid
        kubectl(self.testenv, self.cluster, "wait", "--for=condition=Ready",
                f"node/{self.testenv[self.cluster.upper() + '_REAL_NODE']}", "--timeout=180s")


def test_kubelet_stopped_mid_backup_fails_the_job_in_words_and_the_next_backup_succeeds(vols, testenv):
    ns = unique("kubeletstop")
    big_claim(testenv, ns, parts=8)
    node = testenv["SOURCE_REAL_NODE"]
    before = snapshot_manifests(vols)
    kubelet = Kubelet(testenv)
    p = start_backup(vols, testenv, ns)
    restarted = False
    try:
        pod = wait_copying(testenv, ns)
        kubelet.stop()
        stopped = time.monotonic()
        out, err = p.communicate(timeout=300)
        took = time.monotonic() - stopped
        kubelet.start()
        restarted = True
    finally:
        if p.poll() is None:
            p.kill()
        if not restarted:
            kubelet.start()
    assert p.returncode == 1, out + err
    assert json.loads(out) == [], out    # no volume: the job recorded nothing of this claim
    assert f"claim {ns}/data: data mover pod {ns}/{pod}: its node {node} is not ready (Ready Unknown: " \
        "Kubelet stopped posting node status.); nothing of this run is offered for restore" in err, err
    # bounded by the node monitor's grace period (50 s) and the runner's poll, not the pod's 24 h
    assert took < 150, took
    # the mover may have ended its copy while nobody watched: then its snapshot is whole (the
    # manifest is written last) but belongs to no backup; never more than that one
    assert len(snapshot_manifests(vols)) - len(before) in (0, 1)
    # the kubelet back: it ends the pod the runner deleted, and the next backup succeeds
    deadline = time.time() + 120
    while time.time() < deadline and mover_pods(testenv, "source", ns):
        time.sleep(1)
    assert mover_pods(testenv, "source", ns) == []
    res = vols.run("source", vols.new_job("backup"), "backup", unique("bk"), ns, json.dumps({f"{ns}/data": "filesystem"}))
    [volume] = json.loads(res.stdout)
    assert volume["files"] == 8 and volume["bytes"] == 8 * (64 << 20) and volume["node"] == node, volume
    print(f"kubelet stopped: the job failed after {took:.1f} s")
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")
