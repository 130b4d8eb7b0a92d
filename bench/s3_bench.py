#!/usr/bin/python3
"""Object storage throughput: Stowage's S3 client (src/s3/s3_client.c, through bench/s3_bench)
against boto3's transfer manager (the named peer, Debian's python3-boto3, default TransferConfig:
10 threads, 8 MiB parts), in the same run against the same MinIO on loopback, data on disk.

    bench/s3_bench.py [--big-mib 1024] [--small 10000] [--small-bytes 4096] [--threads 8]
                      [--build build/release]

Rows: one large object uploaded from a file and downloaded into a file (Stowage with its shipped
defaults: 4 upload threads, 4 download threads, 8 MiB parts); --small objects put and got with
--threads clients on each side. Each measurement runs twice, alternating which side goes first;
the better of the two is printed. Starts its own MinIO (from scripts/testenv/build) on a free
loopback port and stops it at the end."""
import argparse
import concurrent.futures
import filecmp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
from boto3.s3.transfer import TransferConfig

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_minio(root):
    bindir = subprocess.run([os.path.join(TOP, "scripts", "testenv", "build")], check=True, capture_output=True,
                            text=True).stdout.strip().splitlines()[-1]
    port = free_port()
    env = dict(os.environ, MINIO_ROOT_USER="bench", MINIO_ROOT_PASSWORD=os.urandom(12).hex(), MINIO_BROWSER="off",
               MINIO_UPDATE="off", HOME=root)
    proc = subprocess.Popen([os.path.join(bindir, "minio"), "server", "--quiet", "--address", f"127.0.0.1:{port}",
                             "--console-address", f"127.0.0.1:{free_port()}", os.path.join(root, "data")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(url + "/minio/health/ready", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        sys.exit("s3_bench: MinIO did not start")
    return proc, {"S3_ENDPOINT": url, "S3_REGION": "us-east-1", "S3_ACCESS_KEY": "bench",
                  "S3_SECRET_KEY": env["MINIO_ROOT_PASSWORD"], "BUCKET": "bench"}


def stowage(build, env, *args):
    res = subprocess.run([os.path.join(build, "bench", "s3_bench"), *map(str, args)], env=dict(os.environ, **env),
                         capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"s3_bench {' '.join(map(str, args))}: {res.stderr.strip()}")
    return float(res.stdout.strip().splitlines()[-1])


def timed(fn):
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--small", type=int, default=10000)
    ap.add_argument("--small-bytes", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--build", default=os.path.join(TOP, "build", "release"))
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    root = tempfile.mkdtemp(prefix="s3-bench-", dir="/var/tmp")	# on disk, not tmpfs
    proc, env = start_minio(root)
    try:
        s3 = boto3.client("s3", endpoint_url=env["S3_ENDPOINT"], region_name=env["S3_REGION"],
                          aws_access_key_id=env["S3_ACCESS_KEY"], aws_secret_access_key=env["S3_SECRET_KEY"])
        s3.create_bucket(Bucket="bench")
        src = os.path.join(root, "big.bin")
        with open(src, "wb") as f:
            for _ in range(args.big_mib):
                f.write(os.urandom(1 << 20))
        big = args.big_mib << 20
        tc = TransferConfig()
        payload = b"x" * args.small_bytes

        def boto_put_many(prefix):
            with concurrent.futures.ThreadPoolExecutor(args.threads) as ex:
                list(ex.map(lambda i: s3.put_object(Bucket="bench", Key=f"{prefix}/{i:06d}", Body=payload),
                            range(args.small)))

        def boto_get_many(prefix):
            with concurrent.futures.ThreadPoolExecutor(args.threads) as ex:
                list(ex.map(lambda i: s3.get_object(Bucket="bench", Key=f"{prefix}/{i:06d}")["Body"].read(),
                            range(args.small)))

        rows = []
        for name, ours, peer, nbytes in [
            (f"upload one {args.big_mib} MiB object",
             lambda r: stowage(build, env, "put-file", f"stowage-big-{r}", src),
             lambda r: timed(lambda: s3.upload_file(src, "bench", f"boto-big-{r}", Config=tc)), big),
            (f"download one {args.big_mib} MiB object",
             lambda r: stowage(build, env, "get-file", f"stowage-big-{r}", os.path.join(root, "down-s")),
             lambda r: timed(lambda: s3.download_file("bench", f"boto-big-{r}", os.path.join(root, "down-b"),
                                                      Config=tc)), big),
            (f"put {args.small} objects of {args.small_bytes} B, {args.threads} clients",
             lambda r: stowage(build, env, "put-many", f"stowage-small-{r}", args.small, args.small_bytes,
                               args.threads),
             lambda r: timed(lambda: boto_put_many(f"boto-small-{r}")), args.small * args.small_bytes),
            (f"get {args.small} objects of {args.small_bytes} B, {args.threads} clients",
             lambda r: stowage(build, env, "get-many", f"stowage-small-{r}", args.small, args.threads),
             lambda r: timed(lambda: boto_get_many(f"boto-small-{r}")), args.small * args.small_bytes),
        ]:
            a, b = [], []
            for r in range(2):	# alternate who goes first
                if r == 0:
                    a.append(ours(r))
                    b.append(peer(r))
                else:
                    b.append(peer(r))
                    a.append(ours(r))
            rows.append((name, min(a), min(b), nbytes))
        if not filecmp.cmp(src, os.path.join(root, "down-s"), shallow=False):
            sys.exit("s3_bench: the downloaded object differs from the uploaded file")

        print("\nS3 transfers against one MinIO on loopback (data on disk), same run, best of 2:")
        print(f"{'':52s} {'stowage s':>10s} {'MB/s':>8s} {'boto3 s':>9s} {'MB/s':>8s} {'ratio':>6s}")
        for name, a, b, nbytes in rows:
            print(f"{name:52s} {a:10.2f} {nbytes / a / 1e6:8.1f} {b:9.2f} {nbytes / b / 1e6:8.1f} {b / a:5.2f}x")
        print("(ratio: boto3's time over Stowage's; above 1 is Stowage faster)")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
