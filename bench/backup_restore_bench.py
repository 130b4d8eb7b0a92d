#!/usr/bin/python3
"""Backup (and, from the restore module, restore) speed against a named peer in the same run.

For N in 1,000 and 10,000 (or BENCH_SIZES="1000,10000"): fills a namespace of the source
cluster with N objects (a quarter each ConfigMaps, Secrets, Services and Deployments of 0
replicas, plus what controllers derive from them), then measures

  - a Stowage backup job of that namespace: from the runner's claim to the job's end, read
    from jobs.started_at/finished_at (listing, archive, upload to MinIO, job items);
  - kubectl get <every namespaced type with list, events left out> -n NS -o json, the same
    reads a backup makes, written to /dev/null;

best of BENCH_RUNS (3) each, and prints objects/s for both and their ratio.

Usage: bench/backup_restore_bench.py   (starts a test environment and a stack of its own in a
temporary directory, on the release build in build/release or $STOWAGE_BUILD; both are
stopped at the end)."""
import json
import os
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))

from conftest import Stack  # noqa: E402
from fixtures_testenv import SCRIPTS, kubectl, read_env  # noqa: E402
from test_backup_job import Tenant  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "1000,10000").split(",")]


def fill(env, ns, n):
    quarter = n // 4
    items = []
    for i in range(quarter):
        meta = {"name": f"o-{i:05d}", "namespace": ns, "labels": {"app": f"a{i % 50}"}}
        items.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                      "data": {"config.yaml": f"key: {i}\n" + "line: value\n" * 20}})
        items.append({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
                      "stringData": {"password": f"secret-{i}"}})
        items.append({"apiVersion": "v1", "kind": "Service", "metadata": meta,
                      "spec": {"selector": {"app": f"a{i % 50}"}, "ports": [{"port": 80}]}})
        items.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                      "spec": {"replicas": 0, "selector": {"matchLabels": {"app": f"a{i}"}},
                               "template": {"metadata": {"labels": {"app": f"a{i}"}},
                                            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    kubectl(env, "source", "create", "namespace", ns)
    for start in range(0, len(items), 2000):
        kubectl(env, "source", "apply", "--server-side", "-f", "-",
                stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items[start:start + 2000]}))


def namespaced_types(env):
    names = kubectl(env, "source", "api-resources", "--namespaced=true", "--verbs=list", "-o", "name").stdout.split()
    return [t for t in names if t != "events" and not t.endswith(".events.k8s.io") and not t.endswith(".metrics.k8s.io")]


def time_kubectl(env, ns, types):
    cmd = [env["KUBECTL"], f"--kubeconfig={env['SOURCE_KUBECONFIG']}", "get", ",".join(types), "-n", ns, "-o", "json"]
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    elapsed = time.monotonic() - t0
    return elapsed, len(json.loads(out)["items"])


def settle(env, ns, types):
    """Waits until the controllers stop deriving objects (replica sets, endpoints) in ns."""
    last = -1
    for _ in range(60):
        count = time_kubectl(env, ns, types)[1]
        if count == last:
            return
        last = count
        time.sleep(3)
    raise SystemExit(f"namespace {ns} never settled")


def time_backup(tenant, ns):
    _, job_id = tenant.queue_backup([ns])
    job = tenant.wait_job(job_id, timeout=1800)
    if job["state"] != "succeeded":
        raise SystemExit(f"backup job {job_id} {job['state']}: {job['error']}")
    seconds, count, size = tenant.sql_one(
        "SELECT extract(epoch FROM j.finished_at - j.started_at), b.resource_count, b.bytes "
        "FROM stowage.jobs j JOIN stowage.backups b ON b.id = j.backup_id WHERE j.id = %s", (job_id,))
    return float(seconds), count, size


def main():
    root = tempfile.mkdtemp(prefix="stowage-bench-")
    env_root, stack_root = os.path.join(root, "env"), os.path.join(root, "stack")
    os.makedirs(stack_root)
    os.chmod(root, 0o755)
    os.chmod(stack_root, 0o755)
    subprocess.run([os.path.join(SCRIPTS, "start"), env_root], check=True, stdout=subprocess.DEVNULL)
    stack = Stack(stack_root)
    try:
        env = read_env(os.path.join(env_root, "env"))
        stack.start()
        tenant = Tenant(stack, env, prefix="bench")
        print(f"{'N':>6} {'objects':>8} {'backup s':>9} {'obj/s':>8} {'MiB':>6} {'kubectl s':>10} {'objects':>8} {'obj/s':>8} "
              f"{'backup/kubectl':>15}")
        for n in SIZES:
            ns = f"bench-{n}"
            fill(env, ns, n)
            types = namespaced_types(env)
            settle(env, ns, types)
            backups, gets = [], []
            for _ in range(RUNS):  # interleaved, so that both see the same cluster
                backups.append(time_backup(tenant, ns))
                gets.append(time_kubectl(env, ns, types))
            best_backup = min(backups, key=lambda r: r[0])
            best_kubectl = min(gets, key=lambda r: r[0])
            b_s, b_count, b_bytes = best_backup
            k_s, k_count = best_kubectl
            print(f"{n:>6} {b_count:>8} {b_s:>9.2f} {b_count / b_s:>8.0f} {b_bytes / 2**20:>6.1f} {k_s:>10.2f} "
                  f"{k_count:>8} {k_count / k_s:>8.0f} {b_s / k_s:>14.2f}x", flush=True)
        print("backup: Stowage job (claim to end: list, tar.gz, upload to MinIO, job items); "
              "kubectl: get every namespaced type -o json; best of", RUNS)
        print("objects: the backup counts the Namespace object too; kubectl does not")
    finally:
        stack.stop()
        subprocess.run([os.path.join(SCRIPTS, "stop"), env_root], check=False, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
