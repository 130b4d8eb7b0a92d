#!/usr/bin/python3
"""The data mover (stowage-mover, src/mover) against its peers in the same run, on the same data,
into the same MinIO: restic v0.18.1 and kopia v0.21.1 built from the Go module proxy
(bench/build-peers), and Debian's restic 0.14.

    bench/mover_bench.py [--small 20000] [--big-mib 1536] [--tree 200000] [--work /var/tmp]
                         [--pod-rows auto|0|1] [--tools stowage,restic-0.18,kopia-0.21,restic-0.14]
                         [--sets mixed,tree] [--rows first,unchanged,changed,restore]
                         [--build build/release]

--sets and --rows run a part (say --sets tree --rows first,unchanged,changed: kopia restores the
tree in about 10 minutes); the first backup always runs, the others need it.

Data sets: "mixed", one --big-mib MiB file of random data and --small files of 1-64 KiB (half
random, half text); "tree", --tree files of 512 B-8 KiB in 1,000 directories. Rows per data set:
first backup; unchanged re-backup (nothing changed; the bytes it added to the bucket are printed);
re-backup after a 1% change (1% of the small files appended to, 1% of the big file rewritten in
its middle); restore of the latest snapshot into an empty directory under --work (ext4 on this
machine's /var/tmp: the file system's costs of creating files included). Each tool runs as a user
gets it: the mover with the thread count the runner passes (2), restic and kopia with their
defaults (GOMAXPROCS = the cores; kopia does not compress by default, restic and the mover do).
Each tool keeps its caches under --work. MB/s is the data set's size over wall time; peak RSS is
the tool's maximum resident set (wait4's ru_maxrss). "vs best" is the fastest peer's time over the
mover's: above 1 the mover is faster. The peers issue 14 measures against are restic 0.18 and
kopia 0.21, so "vs best" counts only those; "vs 0.14" is the same ratio against Debian's restic
0.14, printed apart.

The pod rows (--pod-rows auto: as root): the same mover as an image in a pod on a real node of a
test environment started here (scripts/testenv/start), backing the mixed data set up into a
repository of its own and restoring it, the way mover_launch = pod runs it (hostPath volumes, the
key from a Secret, hostNetwork to reach this MinIO); timed from the pod's creation to Succeeded."""
import argparse
import filecmp
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from s3_bench import start_minio  # noqa: E402

MOVER_THREADS = "2"  # what the runner passes (src/runner/job_volumes.c MOVER_THREADS)
BEST_OF = ("restic-0.18", "kopia-0.21")  # the peers of issue 14; restic 0.14 is printed apart
ROWS = ("first", "unchanged", "1% changed", "restore")


def small_files(root, n, lo, hi, dirs):
    rnd = random.Random(42)
    words = [b"stowage", b"volume", b"backup", b"restore", b"cluster", b"kubernetes", b"chunk", b"pack"]
    for d in range(min(n, dirs)):
        os.makedirs(os.path.join(root, f"d{d:04d}"))
    for i in range(n):
        size = rnd.randint(lo, hi)
        data = os.urandom(size) if i % 2 else b" ".join(rnd.choice(words) for _ in range(size // 7))[:size]
        with open(os.path.join(root, f"d{i % dirs:04d}", f"f{i:07d}"), "wb") as f:
            f.write(data)


def make_data(root, kind, args):
    if kind == "mixed":
        os.makedirs(os.path.join(root, "big"))
        with open(os.path.join(root, "big", "disk.img"), "wb") as f:
            for _ in range(args.big_mib):
                f.write(os.urandom(1 << 20))
        small_files(os.path.join(root, "small"), args.small, 1024, 65536, 100)
    else:
        small_files(os.path.join(root, "tree"), args.tree, 512, 8192, 1000)


def files_of(root):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)


def change(root):
    """1% of the small files appended to; 1% of the big file (if any) rewritten in its middle."""
    for path in [p for p in files_of(root) if not p.endswith("disk.img")][::100]:
        with open(path, "ab") as f:
            f.write(b"changed\n")
    big = os.path.join(root, "big", "disk.img")
    if os.path.exists(big):
        size = os.path.getsize(big)
        with open(big, "r+b") as f:
            f.seek(size // 2)
            f.write(os.urandom(size // 100))


def size_of(root):
    return sum(os.path.getsize(p) for p in files_of(root))


def warm(root):
    for p in files_of(root):
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass


def same_tree(a, b):
    fa, fb = files_of(a), files_of(b)
    if [os.path.relpath(p, a) for p in fa] != [os.path.relpath(p, b) for p in fb]:
        return False
    return all(filecmp.cmp(x, y, shallow=False) for x, y in zip(fa, fb))


def timed(args, env, cwd=None):
    """(seconds, peak RSS in MiB, stdout) of one run; the RSS is the child's own, from wait4."""
    t0 = time.monotonic()
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = {}
    drains = [threading.Thread(target=lambda k, p: out.__setitem__(k, p.read()), args=(k, p))
              for k, p in (("out", proc.stdout), ("err", proc.stderr))]
    for t in drains:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - t0
    for t in drains:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"mover_bench: {os.path.basename(args[0])} {args[1]} failed ({proc.returncode}): "
                 f"{out['err'].decode(errors='replace')[-800:]}")
    return seconds, usage.ru_maxrss / 1024, out["out"].decode()


class Tool:
    """One program and its own repository (a bucket of the bench's MinIO)."""

    def __init__(self, name, binary, work, s3):
        self.name, self.binary = name, binary
        self.work = os.path.join(work, "tools", name)
        os.makedirs(self.work)
        self.bucket = name.replace(".", "-")
        self.s3 = s3
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID=s3["S3_ACCESS_KEY"], AWS_SECRET_ACCESS_KEY=s3["S3_SECRET_KEY"],
                        HOME=self.work, XDG_CACHE_HOME=os.path.join(self.work, "cache"))

    def stored(self, minio_root):
        return size_of(os.path.join(minio_root, "data", self.bucket))


class Mover(Tool):
    def init(self, prefix):
        self.key = os.path.join(self.work, "key")
        with open(self.key, "w") as f:
            f.write(os.urandom(32).hex())
        os.chmod(self.key, 0o600)
        self.repo = ["--repo", f"s3://{self.bucket}/{prefix}?endpoint={self.s3['S3_ENDPOINT']}&region=us-east-1"
                     "&path_style=1", "--repo-id", prefix, "--key-file", self.key]

    def backup(self, src):
        s, rss, out = timed([self.binary, "backup", *self.repo, "--source", src, "--threads", MOVER_THREADS], self.env)
        self.snapshot = json.loads(out.strip().splitlines()[-1])["snapshot_id"]
        return s, rss

    def restore(self, src, target):
        del src
        s, rss, _ = timed([self.binary, "restore", *self.repo, "--snapshot", self.snapshot, "--target", target,
                           "--threads", MOVER_THREADS], self.env)
        return s, rss, target


class Restic(Tool):
    def init(self, prefix):
        self.env.update(RESTIC_PASSWORD="bench-password",
                        RESTIC_REPOSITORY=f"s3:{self.s3['S3_ENDPOINT']}/{self.bucket}/{prefix}")
        timed([self.binary, "init", "--quiet"], self.env)

    def backup(self, src):
        s, rss, _ = timed([self.binary, "backup", "--quiet", src], self.env)
        return s, rss

    def restore(self, src, target):
        s, rss, _ = timed([self.binary, "restore", "latest", "--quiet", "--target", target], self.env)
        return s, rss, target + src


class Kopia(Tool):
    def init(self, prefix):
        self.env.update(KOPIA_PASSWORD="bench-password", KOPIA_CHECK_FOR_UPDATES="false")
        self.cfg = ["--config-file", os.path.join(self.work, f"{prefix}.config")]
        host = self.s3["S3_ENDPOINT"].removeprefix("http://")
        timed([self.binary, "repository", "create", "s3", *self.cfg, "--bucket", self.bucket, "--prefix", prefix + "/",
               "--endpoint", host, "--disable-tls", "--access-key", self.s3["S3_ACCESS_KEY"],
               "--secret-access-key", self.s3["S3_SECRET_KEY"], "--cache-directory",
               os.path.join(self.work, "cache", prefix)], self.env)

    def backup(self, src):
        s, rss, out = timed([self.binary, "snapshot", "create", *self.cfg, "--json", src], self.env)
        self.snapshot = json.loads(out)["id"]
        return s, rss

    def restore(self, src, target):
        del src
        s, rss, _ = timed([self.binary, "snapshot", "restore", *self.cfg, self.snapshot, target], self.env)
        return s, rss, target


def pod_rows(args, work, s3, data):
    """The mover in a pod on a real node: (first backup s, restore s) of data."""
    env_root = os.path.join(work, "env")
    log = open(os.path.join(work, "testenv.log"), "w")
    subprocess.run([os.path.join(TOP, "scripts", "testenv", "start"), env_root], check=True, stderr=log, stdout=log)
    try:
        envf = dict(line.split("=", 1) for line in open(os.path.join(env_root, "env")).read().splitlines()
                    if "=" in line)

        def k(*a, stdin=None):
            return subprocess.run([envf["KUBECTL"], f"--kubeconfig={envf['SOURCE_KUBECONFIG']}", "-n", "default", *a],
                                  input=stdin, check=True, capture_output=True, text=True).stdout
        image = "stowage.test/mover:bench"
        tar = os.path.join(work, "mover.tar")
        subprocess.run([os.path.join(TOP, "scripts", "testenv", "images", "oci-image"), "mover", tar, image,
                        args.mover], check=True, capture_output=True)
        subprocess.run([envf["CTR"], "--address", envf["SOURCE_CONTAINERD_SOCKET"], "--namespace", "k8s.io", "images",
                        "import", tar], check=True, capture_output=True)
        k("create", "secret", "generic", "bench-s3", f"--from-literal=AWS_ACCESS_KEY_ID={s3['S3_ACCESS_KEY']}",
          f"--from-literal=AWS_SECRET_ACCESS_KEY={s3['S3_SECRET_KEY']}")
        keyfile = os.path.join(work, "pod.key")
        with open(keyfile, "w") as f:
            f.write(os.urandom(32).hex())
        k("create", "secret", "generic", "bench-key", f"--from-file=mover.key={keyfile}")
        repo = ["--repo", f"s3://stowage-pod/bench-pod?endpoint={s3['S3_ENDPOINT']}&region=us-east-1&path_style=1",
                "--repo-id", "bench-pod", "--key-file", "/var/run/stowage/mover.key"]
        restore_dir = os.path.join(work, "restore-pod")
        times = {}
        for name, host, mover_args in (("backup", data, ["backup", *repo, "--source", "/data"]),
                                        ("restore", restore_dir, None)):
            if mover_args is None:
                mover_args = ["restore", *repo, "--snapshot", snapshot, "--target", "/data"]
            mover_args += ["--threads", MOVER_THREADS]
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"bench-{name}", "namespace": "default"},
                   "spec": {"hostNetwork": True, "restartPolicy": "Never",
                            "nodeSelector": {"stowage.dev/node": "real"},
                            "tolerations": [{"key": "stowage.dev/real-node", "operator": "Exists",
                                             "effect": "NoSchedule"}],
                            "containers": [{"name": "mover", "image": image, "imagePullPolicy": "Never",
                                            "command": ["stowage-mover"], "args": mover_args,
                                            "envFrom": [{"secretRef": {"name": "bench-s3"}}],
                                            "volumeMounts": [{"name": "data", "mountPath": "/data",
                                                              "readOnly": name == "backup"},
                                                             {"name": "key", "mountPath": "/var/run/stowage",
                                                              "readOnly": True}]}],
                            "volumes": [{"name": "data", "hostPath": {"path": host, "type": "DirectoryOrCreate"}},
                                        {"name": "key", "secret": {"secretName": "bench-key", "defaultMode": 256}}]}}
            t0 = time.monotonic()
            k("apply", "-f", "-", stdin=json.dumps(pod))
            while (phase := k("get", "pod", f"bench-{name}", "-o", "jsonpath={.status.phase}")) not in ("Succeeded",
                                                                                                         "Failed"):
                time.sleep(0.2)
            times[name] = time.monotonic() - t0
            logs = k("logs", f"bench-{name}")
            if phase == "Failed":
                sys.exit(f"mover_bench: the {name} pod failed: {logs[-800:]}")
            if name == "backup":
                snapshot = json.loads(logs.strip().splitlines()[-1])["snapshot_id"]
        if not same_tree(data, restore_dir):
            sys.exit("mover_bench: the pod's restore differs from the data set")
        return times["backup"], times["restore"]
    finally:
        subprocess.run([os.path.join(TOP, "scripts", "testenv", "stop"), env_root], stdout=log, stderr=log)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", type=int, default=20000)
    ap.add_argument("--big-mib", type=int, default=1536)
    ap.add_argument("--tree", type=int, default=200000)
    ap.add_argument("--work", default="/var/tmp")
    ap.add_argument("--pod-rows", default="auto", choices=("auto", "0", "1"))
    ap.add_argument("--tools", default="stowage,restic-0.18,kopia-0.21,restic-0.14")
    ap.add_argument("--sets", default="mixed,tree")
    ap.add_argument("--rows", default="first,unchanged,changed,restore")
    ap.add_argument("--build", default=os.environ.get("STOWAGE_BUILD", os.path.join(TOP, "build", "release")))
    args = ap.parse_args()
    args.mover = os.path.join(args.build, "stowage-mover")
    set_names = args.sets.split(",")
    row_names = dict(zip(("first", "unchanged", "changed", "restore"), ROWS))
    if any(n not in ("mixed", "tree") for n in set_names) or any(r not in row_names for r in args.rows.split(",")):
        sys.exit("mover_bench: --sets names only mixed, tree; --rows only first, unchanged, changed, restore")
    rows_run = [row_names[r] for r in row_names if r in args.rows.split(",") or r == "first"]
    if not os.access(args.mover, os.X_OK):
        sys.exit(f"mover_bench: no {args.mover}: scripts/build first")
    peers = subprocess.run([os.path.join(TOP, "bench", "build-peers")], check=True, capture_output=True,
                           text=True).stdout.strip().splitlines()[-1]
    kinds = {"stowage": (Mover, args.mover), "restic-0.18": (Restic, os.path.join(peers, "restic")),
             "kopia-0.21": (Kopia, os.path.join(peers, "kopia")), "restic-0.14": (Restic, shutil.which("restic"))}
    names = args.tools.split(",")
    if names[0] != "stowage" or any(n not in kinds or not kinds[n][1] for n in names):
        sys.exit(f"mover_bench: --tools must start with stowage and name only {', '.join(kinds)} (installed)")
    work = tempfile.mkdtemp(prefix="mover-bench.", dir=args.work)
    minio, s3 = start_minio(os.path.join(work, "minio"))
    try:
        tools = [kinds[n][0](n, kinds[n][1], work, s3) for n in names]
        for bucket in [t.bucket for t in tools] + ["stowage-pod"]:
            subprocess.run(["curl", "-sf", "-X", "PUT", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user",
                            f"{s3['S3_ACCESS_KEY']}:{s3['S3_SECRET_KEY']}", f"{s3['S3_ENDPOINT']}/{bucket}"],
                           check=True)
        sets = [(kind, words) for kind, words in
                (("mixed", f"one {args.big_mib} MiB random file and {args.small} files of 1-64 KiB"),
                 ("tree", f"{args.tree} files of 512 B-8 KiB in 1,000 directories")) if kind in set_names]
        pods = None
        print(f"stowage-mover against its peers, same run, same MinIO on loopback, {os.cpu_count()} cores; "
              f"restores onto {args.work} ({fs_type(args.work)})", flush=True)
        for kind, words in sets:
            data = os.path.join(work, "data", kind)
            print(f"{kind}: making {words}", file=sys.stderr)
            make_data(data, kind, args)
            size = size_of(data)
            warm(data)
            rows = {t.name: {} for t in tools}
            for t in tools:
                t.init(kind)
            for row in [r for r in rows_run if r != "restore"]:
                if row == "1% changed":
                    change(data)
                    warm(data)
                for t in tools:
                    before = t.stored(os.path.join(work, "minio"))
                    s, rss = t.backup(data)
                    rows[t.name][row] = (s, rss, t.stored(os.path.join(work, "minio")) - before)
                    print(f"{kind} {row} {t.name}: {s:.2f} s", file=sys.stderr)
            for t in tools if "restore" in rows_run else []:
                target = os.path.join(work, "restore", kind, t.name)
                os.makedirs(target)
                s, rss, where = t.restore(data, target)
                rows[t.name]["restore"] = (s, rss, 0)
                print(f"{kind} restore {t.name}: {s:.2f} s", file=sys.stderr)
                if not same_tree(data, where):
                    sys.exit(f"mover_bench: {t.name}'s restore of {kind} differs from the data set")
            print_table(kind, words, size, rows, tools, rows_run)
            if kind == "mixed" and (args.pod_rows == "1" or (args.pod_rows == "auto" and os.geteuid() == 0)):
                pods = (size, *pod_rows(args, work, s3, data))
            # Restored trees are deleted only now, once no restore of this set follows: on ext4
            # without a journal (/var/tmp here) a file created within seconds of many deletions
            # waits on the freed inodes (recently_deleted), so deleting one tool's tree right
            # before the next tool restores charged that tool for the previous one's files.
            shutil.rmtree(os.path.join(work, "restore", kind), ignore_errors=True)
            shutil.rmtree(data)
    finally:
        minio.kill()
        minio.wait()
        shutil.rmtree(work, ignore_errors=True)

    if pods:
        size, backup_s, restore_s = pods
        print(f"\nmover pod on a real node (mixed data set after the change, its own repository, pod creation to "
              f"Succeeded):\n  first backup {backup_s:.2f} s ({size / 1e6 / backup_s:.1f} MB/s), restore "
              f"{restore_s:.2f} s ({size / 1e6 / restore_s:.1f} MB/s)")


def print_table(kind, words, size, rows, tools, rows_run):
    print(f"\n{kind}: {words}, {size / 1048576:.0f} MiB")
    print(f"{'row':<12} {'tool':<12} {'seconds':>8} {'MB/s':>8} {'peak RSS MiB':>13} {'added MiB':>10} {'vs best':>8}"
          f" {'vs 0.14':>8}")
    for row in rows_run:
        mover = rows["stowage"][row][0]
        peers = [rows[t.name][row][0] for t in tools if t.name in BEST_OF]
        old = [rows[t.name][row][0] for t in tools if t.name == "restic-0.14"]
        for t in tools:
            s, rss, added = rows[t.name][row]
            ratio = f"{min(peers) / mover:7.2f}x" if t.name == "stowage" and peers else ""
            ratio_old = f"{old[0] / mover:7.2f}x" if t.name == "stowage" and old else ""
            added_s = f"{added / 1048576:10.2f}" if row != "restore" else f"{'':>10}"
            print(f"{row:<12} {t.name:<12} {s:8.2f} {size / 1e6 / s:8.1f} {rss:13.0f} {added_s} {ratio:>8} {ratio_old:>8}")
    sys.stdout.flush()


def fs_type(path):
    return subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", path], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
