"""pytest plugin: the real test environment of scripts/testenv/, once per session.

Use it with `pytest_plugins = ["fixtures_testenv"]` (or `-p fixtures_testenv`). The fixture
`testenv` builds (cached) and starts MinIO and the two Kubernetes clusters under a temporary
root, yields the parsed ROOT/env file as a dict, and stops them at the end of the session.
"""

import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(REPO, "scripts", "testenv")
CLUSTER_NAMES = ("source", "target")


def read_env(path):
    """Parse a KEY=value file as written by scripts/testenv/start."""
    values = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                values[key] = value
    return values


def kubectl(env, cluster, *args, check=True, token=None, stdin=None):
    """Run the environment's kubectl against cluster "source" or "target".

    With token, that bearer token replaces the admin token of the cluster's kubeconfig.
    Returns the CompletedProcess (text); with check, a failure fails the test and shows stderr.
    """
    if cluster not in CLUSTER_NAMES:
        raise ValueError(f"cluster {cluster!r}: must be one of {CLUSTER_NAMES}")
    cmd = [env["KUBECTL"], f"--kubeconfig={env[cluster.upper() + '_KUBECONFIG']}"]
    if token is not None:
        cmd.append(f"--token={token}")
    res = subprocess.run(cmd + list(args), capture_output=True, text=True, input=stdin,
                         timeout=180)
    if check and res.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)} on {cluster} failed: {res.stderr.strip()}")
    return res


def read_pids(root):
    with open(os.path.join(root, "pids")) as f:
        return [int(line) for line in f if line.strip()]


def running_in(pid, root):
    """Whether pid is a live process of the environment under root (its working directory)."""
    try:
        return os.readlink(f"/proc/{pid}/cwd") == root
    except OSError:
        return False


@pytest.fixture(scope="session")
def testenv(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("testenv"))
    res = subprocess.run([os.path.join(SCRIPTS, "start"), root], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0:
        pytest.fail(f"scripts/testenv/start failed (logs in {root}/logs):\n{res.stdout[-4000:]}")
    pids = read_pids(root)
    try:
        yield read_env(os.path.join(root, "env"))
    finally:
        subprocess.run([os.path.join(SCRIPTS, "stop"), root], check=True)
    left = [p for p in pids if running_in(p, root)]
    assert not left, f"scripts/testenv/stop left processes running: {left}"
