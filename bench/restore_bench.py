#!/usr/bin/python3
"""Restore throughput: N ConfigMaps restored by Stowage's restore job with the shipped defaults
(the headline row: restore_parallelism 8 in flight, no fixed rate, backing off when the API
server pushes back), by the same job with one client (restore_parallelism = 1, the way Velero
restores: one object at a time) and with the former default restore_rate_limit = 50, and created by
`kubectl create -f` (the named peer: one client, one request per object), all in the same run
against the same real kube-apiserver of scripts/testenv.

    bench/restore_bench.py [--objects 1000] [--latency-ms 10] [--build build/release]

With --latency-ms, every client (the restore's and kubectl) reaches the API server through a
TCP relay that delays each chunk by that many milliseconds in each direction, as a cluster in
another region would; 0 measures loopback, where the API server, etcd, PostgreSQL and the runner
share the machine's cores and CPU, not latency, is the bound.

Starts its own test environment and Stowage stack on free loopback ports and stops them at the
end. Prints objects/s of each and the ratios. The create phase of a restore job includes
recording every object's result in PostgreSQL, as a real restore does."""
import argparse
import asyncio
import threading
import json
import os
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))

import boto3  # noqa: E402

import conftest  # noqa: E402
from benchlib import set_settings  # noqa: E402
from fixtures_testenv import kubectl, read_env  # noqa: E402
from test_clusters_repositories import add_cluster, add_repo  # noqa: E402
from test_restore_job import Restorer, archive  # noqa: E402


def start_relay(target_port, delay_s):
    """A TCP relay on a free loopback port to target_port, delaying each chunk by delay_s."""
    loop = asyncio.new_event_loop()
    port = conftest.free_port()

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                await asyncio.sleep(delay_s)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_r, client_w):
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    async def serve():
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True).start()
    time.sleep(0.3)
    return port


def configmaps(ns, n):
    return {("configmaps", ns, f"cm-{i:05d}"): {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": f"cm-{i:05d}", "namespace": ns, "labels": {"app": "bench", "index": str(i)}},
        "data": {"config.yaml": "x" * 512, "index": str(i)}} for i in range(n)}


def restore_run(restorer, backup_id, src_ns, dst_ns, n):
    t0 = time.time()
    state, error, result, items = restorer.restore(backup_id, "target", namespace_map={src_ns: dst_ns}, timeout=1800)
    wall = time.time() - t0
    created = sum(1 for a, _ in items.values() if a == "created")
    assert state == "succeeded" and created == n + 1, (state, error, created)
    return result["create"]["seconds"], wall


def kubectl_run(env, ns, objs, workdir, server):
    path = os.path.join(workdir, f"{ns}.json")
    items = []
    for o in objs.values():
        o = json.loads(json.dumps(o))
        o["metadata"]["namespace"] = ns
        items.append(o)
    with open(path, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)
    kubectl(env, "target", "create", "namespace", ns)
    t0 = time.time()
    res = subprocess.run([env["KUBECTL"], f"--kubeconfig={env['TARGET_KUBECONFIG']}", f"--server={server}",
                          "create", "-f", path],
                         capture_output=True, text=True, timeout=900)  # a stall behind the relay fails, not hangs
    secs = time.time() - t0
    assert res.returncode == 0, res.stderr[-2000:]
    return secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--latency-ms", type=float, default=0)
    ap.add_argument("--build", default=os.path.join(TOP, "build", "release"))
    args = ap.parse_args()
    n = args.objects
    conftest.BUILD = os.path.abspath(args.build)

    root = tempfile.mkdtemp(prefix="restore-bench-")
    os.chmod(root, 0o755)	# PostgreSQL runs as another user and must reach its directory
    env_root = os.path.join(root, "testenv")
    subprocess.run([os.path.join(TOP, "scripts", "testenv", "start"), env_root], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack_root = os.path.join(root, "stack")
    os.makedirs(stack_root, mode=0o755)
    stack = conftest.Stack(stack_root)
    try:
        env = read_env(os.path.join(env_root, "env"))
        if args.latency_ms > 0:
            api_port = int(env["TARGET_API_URL"].rsplit(":", 1)[1])
            env["TARGET_API_URL"] = f"https://127.0.0.1:{start_relay(api_port, args.latency_ms / 1000)}"
        stack.start()
        client = conftest.Client(stack)
        client.signup("Bench Org", "bench@example.test")
        s3 = boto3.client("s3", endpoint_url=env["S3_ENDPOINT"], region_name=env["S3_REGION"],
                          aws_access_key_id=env["S3_ACCESS_KEY"], aws_secret_access_key=env["S3_SECRET_KEY"])
        s3.create_bucket(Bucket="bench")
        restorer = Restorer(stack, client, env, "bench", add_cluster, add_repo)
        objs = configmaps("bench", n)
        backup_id = restorer.upload_backup("bench-configmaps", archive(objs))

        rows = []
        # a warm-up restore first, so that no measured run pays for the cluster's first writes
        set_settings(stack.conf)
        restore_run(restorer, backup_id, "bench", "bench-warmup", n)
        create, wall = restore_run(restorer, backup_id, "bench", "bench-defaults", n)
        rows.append(("stowage restore, shipped defaults", create, wall))
        set_settings(stack.conf, parallelism=1)
        create, wall = restore_run(restorer, backup_id, "bench", "bench-sequential", n)
        rows.append(("  restore_parallelism = 1 (sequential, as Velero)", create, wall))
        set_settings(stack.conf, rate=50)
        create, wall = restore_run(restorer, backup_id, "bench", "bench-limited", n)
        rows.append(("  restore_rate_limit = 50 (the former default)", create, wall))
        set_settings(stack.conf)
        secs = kubectl_run(env, "bench-kubectl", objs, root, env["TARGET_API_URL"])
        rows.append(("kubectl create -f (peer, sequential)", secs, secs))

        print(f"\nrestore of {n} ConfigMaps into a real kube-apiserver, {args.latency_ms:g} ms added each way, same run:")
        print(f"{'':55s} {'create s':>9s} {'objects/s':>10s} {'job wall s':>11s}")
        for name, create, wall in rows:
            print(f"{name:55s} {create:9.2f} {n / create:10.1f} {wall:11.2f}")
        par, seq, peer = rows[0][1], rows[1][1], rows[3][1]
        print(f"\nshipped defaults vs restore_parallelism = 1: {seq / par:.2f}x faster")
        print(f"shipped defaults vs kubectl create -f: {peer / par:.2f}x faster (goal 3x at 10 ms)")
        print(f"restore_rate_limit = 50: {n / rows[2][1]:.1f} objects/s against its 50 req/s cap")
    finally:
        stack.stop()
        subprocess.run([os.path.join(TOP, "scripts", "testenv", "stop"), env_root], check=False,
                       stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
