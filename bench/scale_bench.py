#!/usr/bin/python3
"""A 100,000-object namespace: backup and restore through the runner, with peak memory and the
console's latency while the objects are recorded.

    bench/scale_bench.py [--objects 100000] [--threads 16] [--build build/release] [--skip-restore]
                         [--index-objects 1000 20000 100000] [--restore-parallelism P --restore-rate R]

Starts a test environment (kwok nodes only: STOWAGE_TESTENV_REAL_NODES=0) and a Stowage stack of
its own on free loopback ports, and stops both at the end. Fills namespace "scale" of the source
cluster through its API server (parallel POSTs, never etcd directly) with N objects: a fifth
each ConfigMaps, Secrets, Services (headless, no selector), Deployments of 0 replicas and
custom resources of a CRD made here (plus what the controllers derive: a ReplicaSet per
Deployment). Then it runs a backup job of the namespace and a restore job of that backup into
the target cluster, and prints for each: objects, seconds, objects/s; the peak RSS (VmHWM of
/proc/<pid>/status) of the runner and of the largest web worker; and the latency of the job's
page and of the backup's page (HTML, an authenticated session through nginx), sampled while the
job records its objects. The headline rows run with the shipped defaults (restore_parallelism 8
in flight, no fixed rate, backing off when the API server pushes back; --skip-restore leaves the
restore out); --restore-parallelism/--restore-rate change them, and the rows say so.
--index-objects restores uploaded archives of those sizes with a selection that matches nothing:
the runner reads and indexes every object and creates none, so its peak is the restore's index.
The fill reports the CPU seconds each server of the source cluster spent per 1,000 objects.
Figures only: nothing here is asserted against a time."""
import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import boto3
import requests

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import conftest  # noqa: E402
from fixtures_testenv import kubectl, read_env  # noqa: E402
from benchlib import children, set_settings  # noqa: E402
from test_clusters_repositories import add_cluster, add_repo  # noqa: E402
from test_restore_job import Restorer, archive  # noqa: E402

NS = "scale"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.bench.stowage.test"},
    "spec": {"group": "bench.stowage.test", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


def objects(n):
    """(collection path, body) of n objects, a fifth of each kind."""
    for i in range(n):
        name = f"o-{i:06d}"
        meta = {"name": name, "namespace": NS, "labels": {"app": f"a{i % 50}", "bench": "scale"}}
        kind = i % 5
        if kind == 0:
            yield f"/api/v1/namespaces/{NS}/configmaps", {
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                "data": {"config.yaml": f"key: {i}\n" + "line: value\n" * 20}}
        elif kind == 1:
            yield f"/api/v1/namespaces/{NS}/secrets", {
                "apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
                "stringData": {"password": f"secret-{i}"}}
        elif kind == 2:
            yield f"/api/v1/namespaces/{NS}/services", {
                "apiVersion": "v1", "kind": "Service", "metadata": meta,
                "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}
        elif kind == 3:
            yield f"/apis/apps/v1/namespaces/{NS}/deployments", {
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
        else:
            yield f"/apis/bench.stowage.test/v1/namespaces/{NS}/widgets", {
                "apiVersion": "bench.stowage.test/v1", "kind": "Widget", "metadata": meta,
                "spec": {"size": i, "colour": "blue", "parts": [f"p{j}" for j in range(5)]}}


def fill(env, n, threads):
    """Creates the CRD, the namespace and n objects through the source API server, threads POSTs
    at a time (one keep-alive session each). Returns seconds."""
    kubectl(env, "source", "apply", "-f", "-", stdin=json.dumps(CRD))
    kubectl(env, "source", "wait", "--for=condition=Established", "crd/widgets.bench.stowage.test")
    kubectl(env, "source", "create", "namespace", NS)
    base, local = env["SOURCE_API_URL"], threading.local()

    def post(item):
        path, body = item
        if not hasattr(local, "s"):
            local.s = requests.Session()
            local.s.trust_env = False  # REQUESTS_CA_BUNDLE would replace the cluster's CA
            local.s.headers["Authorization"] = "Bearer " + env["SOURCE_ADMIN_TOKEN"]
        for attempt in range(20):
            r = local.s.post(base + path, json=body, timeout=120, verify=env["SOURCE_CA_FILE"])
            if r.status_code in (201, 409):
                return
            if r.status_code in (429, 500, 503, 504):
                time.sleep(0.2 * (attempt + 1))
                continue
            raise SystemExit(f"POST {path}: {r.status_code} {r.text[:300]}")
        raise SystemExit(f"POST {path}: still refused")

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for done, _ in enumerate(pool.map(post, objects(n), chunksize=64), 1):
            if done % 10000 == 0:
                print(f"  created {done} of {n} ({done / (time.monotonic() - t0):.0f}/s)", flush=True)
    return time.monotonic() - t0


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def processes(stack):
    """{"runner": [pids], "web": [pids]}: the runners, and the web master's workers (below the
    unshare wrapper, which execs it)."""
    run = os.path.join(stack.root, "run")
    runners = [int(open(os.path.join(run, f)).read()) for f in os.listdir(run)
               if f.startswith("runner-") and f.endswith(".pid")]
    workers = children(os.path.join(run, "web.pid")) or [open(os.path.join(run, "web.pid")).read().strip()]
    return {"runner": runners, "web": workers}


def peak_mib(pids):
    return max((status_kib(p, "VmHWM") for p in pids), default=0) / 1024


def peak_reset(procs):
    """Starts each process's VmHWM again from its current RSS (proc(5), clear_refs "5")."""
    for pids in procs.values():
        for p in pids:
            try:
                with open(f"/proc/{p}/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                pass


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def testenv_servers(env_root, cluster):
    """{name: pid} of the test environment's servers of one cluster (etcd, kube-apiserver, ...)."""
    found = {}
    with open(os.path.join(env_root, "pids")) as f:
        for pid in f.read().split():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as c:
                    args = c.read().split(b"\0")
            except OSError:
                continue
            if any(f"/{cluster}/".encode() in a or a.endswith(f"/{cluster}".encode()) or a == cluster.encode()
                   for a in args[1:]):
                found[os.path.basename(args[0].decode())] = pid
    return found


def load():
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


class Sampler(threading.Thread):
    """GETs pages with a signed-in session every 0.5 s until stopped; the latencies per page."""

    def __init__(self, client, pages):
        super().__init__(daemon=True)
        self.client, self.pages = client, pages
        self.times = {p: [] for p in pages}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for p in list(self.pages):
                t0 = time.monotonic()
                r = self.client.http.get(self.client.stack.url + p, timeout=60)
                if r.status_code == 200:
                    self.times[p].append((time.monotonic() - t0) * 1000)
            self.stop.wait(0.5)

    def summary(self, page):
        t = sorted(self.times[page])
        if not t:
            return "no sample"
        return (f"{len(t)} samples, p50 {statistics.median(t):.0f} ms, p99 {t[max(0, int(len(t) * 0.99) - 1)]:.0f} ms, "
                f"max {t[-1]:.0f} ms")


def measured(stack, restorer, job_id, pages, timeout):
    """Waits for job_id's end, sampling its page (and, with "backup" in pages, its backup's page
    once it has one); (seconds, job items, backup id, sampler)."""
    sampler = Sampler(restorer.client, [f"/jobs/{job_id}"])
    sampler.start()
    backup_page, deadline = None, time.time() + timeout
    while True:
        state, error, backup_id, items, secs = restorer.one(
            "SELECT state, error, backup_id, items_recorded, "
            "extract(epoch FROM coalesce(finished_at, now()) - started_at) FROM stowage.jobs j WHERE id = %s", (job_id,))
        if backup_id and "backup" in pages and not backup_page:
            backup_page = f"/backups/{backup_id}"
            sampler.times[backup_page] = []
            sampler.pages.append(backup_page)
        if state not in ("queued", "running"):
            break
        if time.time() > deadline:
            raise SystemExit(f"job {job_id} still {state} after {timeout} s")
        time.sleep(1)
    if backup_page:  # the finished backup's page too, with its whole resource list recorded
        for _ in range(10):
            t0 = time.monotonic()
            restorer.client.http.get(stack.url + backup_page, timeout=60)
            sampler.times[backup_page].append((time.monotonic() - t0) * 1000)
    sampler.stop.set()
    sampler.join()
    if state != "succeeded":
        print(f"job {job_id} {state}: {(error or '')[:500]}")
        for row in restorer.all("SELECT api_group, resource, namespace, name, message FROM stowage.job_items "
                                "WHERE job_id = %s AND action = 'failed' LIMIT 10", (job_id,)):
            print("  failed:", *row)
        for row in restorer.all("SELECT message FROM stowage.job_logs WHERE job_id = %s AND level = 'error' LIMIT 10",
                                (job_id,)):
            print("  error:", row[0][:300])
        if state not in ("partially_failed",):
            raise SystemExit(1)
    return float(secs), items, backup_id, sampler


def index_run(restorer, procs, n):
    """A restore of an uploaded archive of n objects that chooses none of them: the runner's peak
    while it reads and indexes them (MiB), and the job's seconds."""
    objs = {}
    for path, body in objects(n):
        gr = path.rsplit("/", 1)[1]
        gr += "." + path.split("/")[2] if path.startswith("/apis/") else ""
        objs[(gr, NS, body["metadata"]["name"])] = body
    backup_id = restorer.upload_backup(f"index-{n}", archive(objs))
    peak_reset(procs)
    t0 = time.monotonic()
    state, error, result, _ = restorer.restore(backup_id, "target", namespace_map={NS: f"index-{n}"}, timeout=3600,
                                               selection=json.dumps({"label_selector": "bench=none"}))
    assert state == "succeeded", (state, error)
    return peak_mib(procs["runner"]), time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=100000)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--restore-parallelism", type=int, help="not the shipped default: the rows say so")
    ap.add_argument("--restore-rate", type=int, help="restore_rate_limit, not the shipped default: the rows say so")
    ap.add_argument("--skip-restore", action="store_true")
    ap.add_argument("--index-objects", type=int, nargs="*", default=[])
    ap.add_argument("--build", default=os.path.join(TOP, "build", "release"))
    args = ap.parse_args()
    conftest.BUILD = os.path.abspath(args.build)

    root = tempfile.mkdtemp(prefix="scale-bench-")
    os.chmod(root, 0o755)  # PostgreSQL runs as another user and must reach its directory
    env_root = os.path.join(root, "testenv")
    subprocess.run([os.path.join(TOP, "scripts", "testenv", "start"), env_root], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, STOWAGE_TESTENV_REAL_NODES="0"))
    stack_root = os.path.join(root, "stack")
    os.makedirs(stack_root, mode=0o755)
    # the namespace has no claims, but the volumes phase needs a mover configured (as in the tests)
    os.environ.setdefault("STOWAGE_MOVER_LOCAL_ROOT", root)
    stack = conftest.Stack(stack_root)
    try:
        env = read_env(os.path.join(env_root, "env"))
        stack.start()
        settings = "shipped defaults"
        if args.restore_parallelism or args.restore_rate:
            set_settings(stack.conf, args.restore_parallelism, args.restore_rate)
            settings = (f"NOT the defaults: restore_parallelism {args.restore_parallelism or 'default'}, "
                        f"restore_rate_limit {args.restore_rate or 'default (none)'}")
        client = conftest.Client(stack)
        client.signup("Scale Org", "scale@example.test")
        boto3.client("s3", endpoint_url=env["S3_ENDPOINT"], region_name=env["S3_REGION"],
                     aws_access_key_id=env["S3_ACCESS_KEY"],
                     aws_secret_access_key=env["S3_SECRET_KEY"]).create_bucket(Bucket="scale")
        restorer = Restorer(stack, client, env, "scale", add_cluster, add_repo)
        procs = processes(stack)
        print(f"filling namespace {NS} with {args.objects} objects, {args.threads} parallel creates ({load()})", flush=True)
        servers = testenv_servers(env_root, "source")
        cpu0, own0 = {k: cpu_seconds(p) for k, p in servers.items()}, os.times()
        secs = fill(env, args.objects, args.threads)
        own = (os.times().user - own0.user) + (os.times().system - own0.system)
        print(f"created {args.objects} objects in {secs:.1f} s ({args.objects / secs:.0f}/s, {load()}); CPU s per 1,000: "
              + ", ".join(f"{k} {(cpu_seconds(p) - cpu0[k]) * 1000 / args.objects:.1f}" for k, p in sorted(servers.items()))
              + f", this client {own * 1000 / args.objects:.1f}", flush=True)
        idle = {k: peak_mib(v) for k, v in processes(stack).items()}

        plan = restorer.one("INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces) "
                            "VALUES (%s, 'scale', %s, %s, %s) RETURNING id",
                            (restorer.org, restorer.cluster["source"], restorer.repo, [NS]))[0]
        job = restorer.one("INSERT INTO stowage.jobs (org_id, kind, backup_plan_id, cluster_id) "
                           "VALUES (%s, 'backup', %s, %s) RETURNING id", (restorer.org, plan, restorer.cluster["source"]))[0]
        b_secs, b_items, backup_id, b_pages = measured(stack, restorer, job, ["backup"], 3600)
        b_rss = {k: peak_mib(v) for k, v in procs.items()}
        b_load = load()
        count, size = restorer.one("SELECT resource_count, bytes FROM stowage.backups WHERE id = %s", (backup_id,))

        r_pages = None
        if not args.skip_restore:
            restore_job = {}
            peak_reset(procs)

            def restore():
                restore_job["r"] = restorer.restore(backup_id, "target", timeout=7200)
            t = threading.Thread(target=restore, daemon=True)
            t.start()
            time.sleep(2)
            rjob = restorer.one("SELECT max(id) FROM stowage.jobs WHERE kind = 'restore'")[0]
            r_secs, r_items, _, r_pages = measured(stack, restorer, rjob, [], 7200)
            t.join()
            state, error, result, items = restore_job["r"]
            created = sum(1 for a, _ in items.values() if a == "created")
            r_rss = {k: peak_mib(v) for k, v in procs.items()}
            r_load = load()
        index = [(n, *index_run(restorer, procs, n)) for n in args.index_objects]

        print(f"\n{args.objects} objects created (plus ReplicaSets the controller derives), one run, "
              f"build {conftest.BUILD}, {settings}:")
        print(f"{'':10s} {'objects':>8s} {'job s':>8s} {'objects/s':>10s} {'runner MiB':>11s} {'web MiB':>8s}")
        print(f"{'idle':10s} {'':>8s} {'':>8s} {'':>10s} {idle['runner']:11.0f} {idle['web']:8.0f}")
        print(f"{'backup':10s} {count:8d} {b_secs:8.1f} {count / b_secs:10.0f} {b_rss['runner']:11.0f} {b_rss['web']:8.0f}"
              f"   ({size / 2**20:.1f} MiB in the repository, {b_items} job items, {b_load})")
        if r_pages:
            print(f"{'restore':10s} {created:8d} {r_secs:8.1f} {created / r_secs:10.0f} {r_rss['runner']:11.0f} "
                  f"{r_rss['web']:8.0f}   ({state}; create phase {result.get('create', {}).get('objects_per_second', 0)} "
                  f"objects/s, {r_items} job items, {r_load})")
        print("peak RSS: VmHWM of the runner and of the largest web worker (reset before the restore)")
        for n, mib, secs in index:
            print(f"restore index of {n:6d} objects (read and indexed, none chosen): runner peak {mib:.0f} MiB, {secs:.1f} s")
        for p in b_pages.times:
            print(f"during the backup  GET {p}: {b_pages.summary(p)}")
        for p in (r_pages.times if r_pages else []):
            print(f"during the restore GET {p}: {r_pages.summary(p)}")
    finally:
        stack.stop()
        subprocess.run([os.path.join(TOP, "scripts", "testenv", "stop"), env_root], check=False,
                       stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
