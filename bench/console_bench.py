#!/usr/bin/python3
"""Console throughput: wrk (Debian's) against the console's pages and, as the named peer, against
nginx serving a static file, in the same run, through the same nginx, with the stack's shipped
defaults (scripts/stack: its worker count, its nginx configuration).

    bench/console_bench.py [--seconds 10] [--connections 16] [--threads 2] [--build build/release]

Rows: a signed-in list page (/clusters with 20 clusters) as HTML and as JSON, the page of a
running job as JSON and its progress (the job's row alone: what job.js polls every second), the
sign-in page (no session), the sign-in page with a
session (answered 303 after the request's one round trip to PostgreSQL and nothing else: the
floor under every signed-in page), a path no route has (the worker's 404, which asks PostgreSQL
nothing: the cost of the FastCGI hop alone), and a static file.
Prints requests/s, p50 and p99 latency and each row's ratio to nginx's static file, and, with
perf (Debian's linux-perf), the CPU time per request of the stack's web workers, their
PostgreSQL backends and nginx's workers, and their context switches per request (each round trip
between them costs some), from perf stat while wrk runs: on a shared machine throughput is noise,
CPU per request much less so (docs/performance.md). Starts its own
PostgreSQL, workers and nginx on free loopback ports (scripts/stack) and stops them."""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))

import psycopg2  # noqa: E402

import conftest  # noqa: E402
from benchlib import stack_processes  # noqa: E402


def wrk(url, seconds, connections, threads, headers=(), processes=None, answered_404=False):
    """requests/s, p50 and p99 in ms, and {group: CPU µs per request, "switches": context switches
    per request of all the groups} when processes are given. Error answers end the bench, except
    where the row asks for a 404 (answered_404)."""
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for h in headers:
        args += ["-H", h]
    stats = {}
    for group, pids in (processes or {}).items():
        fd, path = tempfile.mkstemp(prefix=f"console-bench-{group}-")
        os.close(fd)
        stats[group] = (path, subprocess.Popen(["perf", "stat", "-x,", "-e", "task-clock,context-switches", "-o", path,
                                                "-p", ",".join(pids), "--", "sleep", str(seconds)]))
    out = subprocess.run(args + [url], check=True, capture_output=True, text=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    cpu = {}
    for group, (path, proc) in stats.items():
        proc.wait()
        with open(path) as f:
            text = f.read()
        counted = re.search(r"^([\d.]+),msec,task-clock", text, re.M)  # else "<not counted>": idle
        switches = re.search(r"^(\d+),,context-switches", text, re.M)
        ms = float(counted.group(1)) if counted else 0.0
        os.unlink(path)
        cpu[group] = ms * 1000 / requests
        cpu["switches"] = cpu.get("switches", 0.0) + (int(switches.group(1)) if switches else 0) / requests
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        lat[pct] = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors and not answered_404:
        sys.exit(f"console_bench: {url}: {errors.group(1)} answers were errors:\n{out}")
    return rps, lat["50"], lat["99"], cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", default=os.path.join(TOP, "build", "release"))
    args = ap.parse_args()
    conftest.BUILD = os.path.abspath(args.build)
    root = tempfile.mkdtemp(prefix="console-bench-")
    os.chmod(root, 0o755)
    stack = conftest.Stack(root)
    stack.start()
    try:
        client = conftest.Client(stack)
        client.signup("Bench Org", "bench@example.test")
        cookie = "; ".join(f"{c.name}={c.value}" for c in client.http.cookies)
        conn = psycopg2.connect(stack.pg_dsn_owner)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM stowage.orgs WHERE name = 'Bench Org'")
            org = cur.fetchone()[0]
            for i in range(20):
                cur.execute("INSERT INTO stowage.clusters (org_id, name, api_url, token_enc, key_id, status) "
                            "VALUES (%s, %s, %s, '\\x00', 'bench', 'connected')",
                            (org, f"cluster-{i:02d}", f"https://k8s-{i}.example.com:6443"))
            # a running job that no runner holds: its heartbeat is in the future, so nobody reaps it
            cur.execute("INSERT INTO stowage.jobs (org_id, kind, state, runner_id, heartbeat_at, phase, percent, "
                        "items_done, items_total, bytes_done, bytes_total) VALUES (%s, 'backup', 'running', 'bench', "
                        "now() + interval '1 day', 'volumes', 42, 420, 1000, 123456789, 300000000) RETURNING id",
                        (org,))
            job = cur.fetchone()[0]
            # what it has recorded so far, as a runner records it: its 420 objects and a log
            cur.execute("INSERT INTO stowage.job_items (org_id, job_id, resource, namespace, name, action) "
                        "SELECT %s, %s, 'configmaps', 'shop', 'cm-' || g, 'backed_up' FROM generate_series(1, 420) g",
                        (org, job))
            cur.execute("INSERT INTO stowage.job_logs (org_id, job_id, level, message) "
                        "SELECT %s, %s, 'info', 'backed up configmaps/shop/cm-' || g FROM generate_series(1, 200) g",
                        (org, job))
        conn.close()
        auth = [f"Cookie: {cookie}"]
        json_accept = ["Accept: application/json"]
        processes = stack_processes(stack) if shutil.which("perf") else None
        rows = []
        for name, path, headers in [
            ("nginx: static file (peer)", "/static/stowage.css", []),
            ("worker, no PostgreSQL: 404", "/no-such-page", []),
            ("/signin, no session", "/signin", []),
            ("/signin signed in: 303, session only", "/signin", auth),
            ("/clusters, 20 rows, HTML", "/clusters", auth),
            ("/clusters, 20 rows, JSON", "/clusters", auth + json_accept),
            ("/jobs/ID of a running job, JSON", f"/jobs/{job}", auth + json_accept),
            ("/jobs/ID/progress: what job.js polls", f"/jobs/{job}/progress", auth),
        ]:
            rows.append((name,) + wrk(stack.url + path, args.seconds, args.connections, args.threads, headers,
                                      processes, answered_404=path == "/no-such-page"))
        static = rows[0][1]
        print(f"\nconsole pages through nginx, {args.connections} connections, {args.threads} wrk threads, "
              f"{args.seconds} s each, {os.cpu_count()} cores, same run:")
        cpu_head = "   CPU µs/request: web     pg  nginx  switches/request" if processes else ""
        print(f"{'':36s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'vs static':>10s}{cpu_head}")
        for name, rps, p50, p99, cpu in rows:
            cpu_cols = "".join(f" {cpu[g]:6.0f}" for g in ("web", "pg", "nginx")) + f" {cpu['switches']:17.1f}" if cpu else ""
            print(f"{name:36s} {rps:9.0f} {p50:8.2f} {p99:8.2f} {rps / static:9.3f}x{' ' * 16 if cpu else ''}{cpu_cols}")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
