#!/usr/bin/python3
"""Backup and restore speed against the named peers in the same run: kubectl and Velero.

For N in 1,000 and 10,000 (or BENCH_SIZES="1000,10000"): fills a namespace of the source
cluster with N objects (a quarter each ConfigMaps, Secrets, Services and Deployments of 0
replicas, plus what controllers derive from them), then measures

  - a Stowage backup job of that namespace: from the runner's claim to the job's end, read
    from jobs.started_at/finished_at (listing, archive, upload to MinIO, job items);
  - kubectl get <every namespaced type with list, events left out> -n NS -o json, the same
    reads a backup makes, written to /dev/null;
  - (best of BENCH_RUNS (3) each) then a Stowage restore job of that backup into the target
    cluster, with the shipped defaults (BENCH_PARALLELISM=N sets restore_parallelism, and the
    rows say so);
  - Velero (velero_peer.py; BENCH_VELERO=0 leaves it out): `velero backup create --wait` of the
    namespace, and `velero restore create --wait` of that backup into the target cluster, with
    a velero server per cluster and the backup in the same MinIO;

and prints objects/s of each and the peer's seconds over Stowage's.

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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conftest import Client, Stack, free_port  # noqa: E402
from fixtures_testenv import SCRIPTS, kubectl, read_env  # noqa: E402
from benchlib import set_settings  # noqa: E402
from test_backup_job import s3_client  # noqa: E402
from test_clusters_repositories import add_cluster, add_repo  # noqa: E402
from test_restore_job import Restorer  # noqa: E402
from velero_peer import Velero  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "1000,10000").split(",")]
PARALLELISM = int(os.environ["BENCH_PARALLELISM"]) if os.environ.get("BENCH_PARALLELISM") else None
VELERO = os.environ.get("BENCH_VELERO", "1") != "0"
VELERO_VERSION = read_env(os.path.join(SCRIPTS, "versions.env"))["VELERO_VERSION"]


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


def time_backup(restorer, ns):
    """A Stowage backup job of ns: (seconds from the runner's claim to the job's end, objects, bytes, backup id)."""
    plan = restorer.one("INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces) "
                        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                        (restorer.org, f"bench-{time.time_ns()}", restorer.cluster["source"], restorer.repo, [ns]))[0]
    job = restorer.one("INSERT INTO stowage.jobs (org_id, kind, backup_plan_id, cluster_id) VALUES (%s, 'backup', %s, %s) "
                       "RETURNING id", (restorer.org, plan, restorer.cluster["source"]))[0]
    deadline = time.time() + 1800
    while (state := restorer.one("SELECT state FROM stowage.jobs WHERE id = %s", (job,))[0]) in ("queued", "running"):
        if time.time() > deadline:
            raise SystemExit(f"backup job {job} still {state}")
        time.sleep(0.2)
    seconds, count, size, backup_id, error = restorer.one(
        "SELECT extract(epoch FROM j.finished_at - j.started_at), b.resource_count, b.bytes, b.id, j.error "
        "FROM stowage.jobs j JOIN stowage.backups b ON b.id = j.backup_id WHERE j.id = %s", (job,))
    if state != "succeeded":
        raise SystemExit(f"backup job {job} {state}: {error}")
    return float(seconds), count, size, backup_id


def time_restore(restorer, backup_id, ns, into):
    """A Stowage restore job of backup_id into namespace into of the target cluster: (seconds
    from the runner's claim to the job's end, objects created)."""
    state, error, _, items = restorer.restore(backup_id, "target", namespace_map={ns: into}, timeout=3600)
    if state != "succeeded":
        raise SystemExit(f"restore {state}: {error}")
    seconds = restorer.one("SELECT extract(epoch FROM finished_at - started_at) FROM stowage.jobs "
                           "WHERE kind = 'restore' ORDER BY id DESC LIMIT 1")[0]
    return float(seconds), sum(1 for a, _ in items.values() if a == "created")


def main():
    root = tempfile.mkdtemp(prefix="stowage-bench-")
    env_root, stack_root = os.path.join(root, "env"), os.path.join(root, "stack")
    os.makedirs(stack_root)
    os.chmod(root, 0o755)
    os.chmod(stack_root, 0o755)
    subprocess.run([os.path.join(SCRIPTS, "start"), env_root], check=True, stdout=subprocess.DEVNULL)
    # the namespace has no claims, but the volumes phase needs a mover configured (as in the tests)
    os.environ.setdefault("STOWAGE_MOVER_LOCAL_ROOT", root)
    stack = Stack(stack_root)
    velero = None
    try:
        env = read_env(os.path.join(env_root, "env"))
        stack.start()
        set_settings(stack.conf, parallelism=PARALLELISM)  # read by each restore job; None: shipped defaults
        client = Client(stack)
        client.signup("Bench Org", "bench@example.test")
        s3_client(env).create_bucket(Bucket="bench")
        restorer = Restorer(stack, client, env, "bench", add_cluster, add_repo)
        if VELERO:
            velero = Velero(env, os.path.join(root, "velero"), free_port)
        rows = []
        for n in SIZES:
            ns = f"bench-{n}"
            fill(env, ns, n)
            types = namespaced_types(env)
            settle(env, ns, types)
            backups, gets = [], []
            for _ in range(RUNS):  # interleaved, so that both see the same cluster
                backups.append(time_backup(restorer, ns))
                gets.append(time_kubectl(env, ns, types))
            b_s, b_count, b_bytes, backup_id = min(backups, key=lambda r: r[0])
            k_s, k_count = min(gets, key=lambda r: r[0])
            r_s, r_count = time_restore(restorer, backup_id, ns, f"{ns}-stowage")
            row = {"n": n, "backup": (b_s, b_count), "bytes": b_bytes, "kubectl": (k_s, k_count), "restore": (r_s, r_count)}
            if velero:
                velero.start("source")
                row["velero_backup"] = velero.backup(f"{ns}-b", ns)[:2]
                velero.stop("source")
                velero.start("target")
                row["velero_restore"] = velero.restore(f"{ns}-r", f"{ns}-b")[:2]
                velero.stop("target")
            rows.append(row)
        print(f"\n{'N':>6} {'what':28s} {'objects':>8} {'seconds':>8} {'obj/s':>8} {'Stowage vs peer':>16}")
        for row in rows:
            def line(what, secs_items, ratio=""):
                secs, items = secs_items
                print(f"{row['n']:>6} {what:28s} {items:>8} {secs:>8.2f} {items / secs:>8.0f} {ratio:>16}")
            line("stowage backup", row["backup"])
            line("kubectl get -o json", row["kubectl"], f"{row['kubectl'][0] / row['backup'][0]:.2f}x")
            if "velero_backup" in row:
                line(f"velero {VELERO_VERSION} backup", row["velero_backup"],
                     f"{row['velero_backup'][0] / row['backup'][0]:.2f}x")
            line("stowage restore" + (f" (parallelism {PARALLELISM})" if PARALLELISM else ""), row["restore"])
            if "velero_restore" in row:
                line(f"velero {VELERO_VERSION} restore", row["velero_restore"],
                     f"{row['velero_restore'][0] / row['restore'][0]:.2f}x")
        print("Stowage: jobs from the runner's claim to the end (backup: list, tar.gz, upload to MinIO, job items, "
              f"best of {RUNS}; restore: download, create "
              f"{f'with restore_parallelism = {PARALLELISM}' if PARALLELISM else 'with the shipped defaults'}, job items); kubectl: get every "
              "namespaced type -o json; velero: `velero backup|restore create --wait` wall time against its local "
              "servers (defaults: client QPS 20, burst 30), one run; ratio: peer seconds / Stowage seconds")
    finally:
        if velero:
            velero.stop()
        stack.stop()
        subprocess.run([os.path.join(SCRIPTS, "stop"), env_root], check=False, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
