#!/usr/bin/python3
"""Object storage throughput: Stowage's S3 client (src/s3/s3_client.c, through bench/s3_bench)
against boto3's transfer manager (the named peer, Debian's python3-boto3, default TransferConfig:
10 threads, 8 MiB parts), in the same run against the same MinIO on loopback, data on disk.

    bench/s3_bench.py [--big-mib 1024] [--small 10000] [--small-bytes 4096] [--threads 8]
                      [--build build/release]

Rows: one large object uploaded from a file and downloaded into a file (Stowage with its shipped
defaults: 4 upload threads, 4 download threads, 8 MiB parts); --small objects put and got with
--threads clients on each side. Each measurement runs twice, alternating which side goes first;
the better of the two is printed. Beside the seconds, the CPU seconds each side cost, its own
and MinIO's together (the load average is printed too): on a machine busy with other work the
CPU is the steadier figure, and on 2 cores shared with MinIO it is what bounds the speed.
Starts its own MinIO (from scripts/testenv/build) on a free loopback port and stops it at the
end."""
import argparse
import concurrent.futures
import filecmp
import os
import resource
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


def cpu_seconds(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def server_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(server_pid, who, fn):
    """(seconds, CPU seconds of the client and the server together) of fn."""
    c0, s0 = cpu_seconds(who), server_cpu_seconds(server_pid)
    secs = fn()
    return secs, cpu_seconds(who) - c0 + server_cpu_seconds(server_pid) - s0


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

        rows = []	# the big objects are written over in the second round: the disk holds 5 copies, not 7
        for name, ours, peer, nbytes in [
            (f"upload one {args.big_mib} MiB object",
             lambda r: stowage(build, env, "put-file", "stowage-big", src),
             lambda r: timed(lambda: s3.upload_file(src, "bench", "boto-big", Config=tc)), big),
            (f"download one {args.big_mib} MiB object",
             lambda r: stowage(build, env, "get-file", "stowage-big", os.path.join(root, "down-s")),
             lambda r: timed(lambda: s3.download_file("bench", "boto-big", os.path.join(root, "down-b"),
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
                sides = [(a, resource.RUSAGE_CHILDREN, ours), (b, resource.RUSAGE_SELF, peer)]
                for out, who, fn in sides if r == 0 else reversed(sides):
                    out.append(measured(proc.pid, who, lambda: fn(r)))
            rows.append((name, tuple(map(min, zip(*a))), tuple(map(min, zip(*b))), nbytes))
        if not filecmp.cmp(src, os.path.join(root, "down-s"), shallow=False):
            sys.exit("s3_bench: the downloaded object differs from the uploaded file")

        print("\nS3 transfers against one MinIO on loopback (data on disk), same run, best of 2, "
              f"load average {os.getloadavg()[0]:.2f} at the end:")
        print(f"{'':52s} {'stowage s':>10s} {'MB/s':>8s} {'boto3 s':>9s} {'MB/s':>8s} {'ratio':>6s}"
              f" {'CPU s: stowage':>15s} {'boto3':>6s} {'ratio':>6s}")
        for name, (a, a_cpu), (b, b_cpu), nbytes in rows:
            print(f"{name:52s} {a:10.2f} {nbytes / a / 1e6:8.1f} {b:9.2f} {nbytes / b / 1e6:8.1f} {b / a:5.2f}x"
                  f" {a_cpu:15.2f} {b_cpu:6.2f} {b_cpu / a_cpu:5.2f}x")
        print("(ratio: boto3's over Stowage's; above 1 is Stowage faster or cheaper. CPU s: the client's and "
              "MinIO's together)")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
