"""stowage-mover end to end: a volume with a 1 GiB sparse file, odd names and many small files
is backed up, the process is killed halfway through a backup, the next backup succeeds, prune
removes what the killed one left, and restores come back identical; the same round trip runs
against the test environment's MinIO through s3://.

Run: cd tests/integration && /usr/bin/python3 -m pytest -p fixtures_testenv test_mover_volume.py
(the file:// tests need no environment: `-k file`)."""

import hashlib
import json
import os
import signal
import stat
import subprocess
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOVER = os.path.join(os.environ.get("STOWAGE_BUILD", REPO), "stowage-mover")
GIB = 1 << 30
MIB = 1 << 20


def mover(*args, env=None, check=True):
    if not os.access(MOVER, os.X_OK):
        pytest.fail(f"{MOVER} is not built: run `make` first")
    res = subprocess.run([MOVER, *args], capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, **(env or {})))
    if check and res.returncode != 0:
        pytest.fail(f"stowage-mover {args[0]} exited {res.returncode}: {res.stderr.strip()}")
    return res


def last_json(res):
    return json.loads(res.stdout.strip().splitlines()[-1])


def walk(root):
    """Everything a restore must bring back, entry by entry, in one dict."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames) + ["."]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            entry = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                     st.st_mtime_ns)
            if stat.S_ISLNK(st.st_mode):
                entry += (os.readlink(path),)
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    for block in iter(lambda: f.read(MIB), b""):
                        h.update(block)
                entry += (st.st_size, h.hexdigest())
            if rel != "." or name == ".":
                out[rel] = entry
    return out


def make_volume(root):
    os.makedirs(root)
    for d in range(20):  # 10,000 small files, as the issue asks
        os.makedirs(os.path.join(root, f"d{d}"))
        for f in range(500):
            with open(os.path.join(root, f"d{d}", f"f{f}"), "wb") as fh:
                fh.write(os.urandom((d * 500 + f) * 13 % 3000))
    for name in ["space name", "new\nline", "\u00fcnicode \u6587\u4ef6", "-dash"]:
        with open(os.path.join(root, name), "w") as fh:
            fh.write(name)
    os.symlink("space name", os.path.join(root, "link"))
    os.chmod(os.path.join(root, "-dash"), 0o600)
    os.utime(os.path.join(root, "d3"), ns=(1600000000123456789, 1600000000123456789))
    # 1 GiB, mostly hole: 64 MiB of data at the start, 16 MiB in the middle
    big = os.path.join(root, "disk.img")
    with open(big, "wb") as fh:
        fh.truncate(GIB)
        fh.write(os.urandom(64 * MIB))
        fh.seek(GIB // 2)
        fh.write(os.urandom(16 * MIB))


@pytest.fixture
def keyfile(tmp_path):
    path = tmp_path / "master.key"
    path.write_text(os.urandom(32).hex() + "\n")
    path.chmod(0o600)
    return str(path)


def common(url, keyfile):
    return ["--repo", url, "--repo-id", "itest", "--key-file", keyfile]


def count_files(path):
    """Objects only: a writer's hidden temporary files are not objects."""
    return sum(len([f for f in files if not f.startswith(".")]) for _, _, files in os.walk(path))


def test_file_repo_kill_resume_prune_restore(tmp_path, keyfile):
    src, repo = str(tmp_path / "src"), str(tmp_path / "repo")
    make_volume(src)
    args = common(f"file://{repo}", keyfile)

    # kill -9 once the first pack is in the repository
    proc = subprocess.Popen([MOVER, "backup", *args, "--source", src, "--tag", "volume=ns/pvc"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    packs = os.path.join(repo, "itest", "data", "packs")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and count_files(packs) == 0:
        time.sleep(0.01)
    assert proc.poll() is None, "backup ended before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    assert last_json_or_none(mover("snapshots", *args)) is None, "a killed backup left a snapshot"

    first = last_json(mover("backup", *args, "--source", src, "--tag", "volume=ns/pvc"))
    assert first["files"] == 10005 and first["bytes"] > GIB
    assert first["bytes_read"] < 100 * MIB, "the holes were read"

    again = last_json(mover("backup", *args, "--source", src, "--tag", "volume=ns/pvc"))
    assert again["parent"] == first["snapshot_id"]
    assert again["files_unchanged"] == again["files"]
    assert again["bytes_written"] * 100 < first["bytes_written"]

    # the killed backup's lock is fresh for an hour; --lock-stale 0 declares it dead
    pruned = last_json(mover("prune", *args, "--keep", again["snapshot_id"], "--grace", "0",
                             "--lock-stale", "0"))
    assert pruned["snapshots_deleted"] == 1
    assert count_files(os.path.join(repo, "itest", "data", "packs")) == \
        count_files(os.path.join(repo, "itest", "data", "index"))
    assert last_json(mover("check", *args, "--read-data"))["problems"] == 0

    target = str(tmp_path / "restored")
    mover("restore", *args, "--snapshot", again["snapshot_id"], "--target", target)
    assert walk(target) == walk(src)
    assert os.stat(os.path.join(target, "disk.img")).st_blocks * 512 < 200 * MIB

    # a flipped byte in a data pack: check says so and exits 3
    some_pack = next(os.path.join(d, f) for d, _, fs in os.walk(packs) for f in fs
                     if os.path.getsize(os.path.join(d, f)) > 8 * MIB)
    with open(some_pack, "r+b") as fh:
        fh.seek(4 * MIB)
        b = fh.read(1)
        fh.seek(4 * MIB)
        fh.write(bytes([b[0] ^ 1]))
    res = mover("check", *args, "--read-data", check=False)
    assert res.returncode == 3
    assert "authentication failed" in res.stdout


def last_json_or_none(res):
    lines = res.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


def test_usage_errors_name_the_option(keyfile, tmp_path):
    res = mover("backup", *common(f"file://{tmp_path}/r", keyfile), "--tag", "bad key=v", check=False)
    assert res.returncode == 2 and "tag key" in res.stderr
    res = mover("restore", *common(f"file://{tmp_path}/r", keyfile), "--snapshot", "nope",
                "--target", str(tmp_path / "t"), check=False)
    assert res.returncode == 1 and "not a snapshot id" in res.stderr
    res = mover("check", "--repo", "ftp://x", "--repo-id", "a", "--key-file", keyfile, check=False)
    assert res.returncode == 1 and "unsupported scheme" in res.stderr


def test_s3_repo_round_trip(testenv, tmp_path, keyfile):
    import urllib.parse
    src = str(tmp_path / "src")
    make_volume(src)
    bucket = f"mover-{os.getpid()}-{int(time.time())}"
    query = urllib.parse.urlencode({"endpoint": testenv["S3_ENDPOINT"],
                                    "region": testenv["S3_REGION"], "path_style": "1"}, safe=":/")
    env = {"AWS_ACCESS_KEY_ID": testenv["S3_ACCESS_KEY"],
           "AWS_SECRET_ACCESS_KEY": testenv["S3_SECRET_KEY"]}
    create_bucket(testenv, bucket)
    args = common(f"s3://{bucket}/team-a?{query}", keyfile)

    first = last_json(mover("backup", *args, "--source", src, env=env))
    again = last_json(mover("backup", *args, "--source", src, env=env))
    assert again["bytes_written"] * 100 < first["bytes_written"]
    assert last_json(mover("check", *args, "--read-data", env=env))["problems"] == 0
    target = str(tmp_path / "restored")
    mover("restore", *args, "--snapshot", first["snapshot_id"], "--target", target, env=env)
    assert walk(target) == walk(src)
    res = mover("snapshots", *args, env=dict(env, AWS_SECRET_ACCESS_KEY="wrong"), check=False)
    assert res.returncode == 1 and "wrong" not in res.stderr + res.stdout

    # one byte flipped in the biggest data pack in MinIO: check and restore fail, naming a file
    import boto3
    s3 = boto3.client("s3", endpoint_url=testenv["S3_ENDPOINT"], region_name=testenv["S3_REGION"],
                      aws_access_key_id=testenv["S3_ACCESS_KEY"], aws_secret_access_key=testenv["S3_SECRET_KEY"])
    packs = [o for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="team-a/")
             for o in page.get("Contents", []) if "/packs/" in o["Key"]]
    victim = max(packs, key=lambda o: o["Size"])["Key"]
    data = bytearray(s3.get_object(Bucket=bucket, Key=victim)["Body"].read())
    data[len(data) // 2] ^= 0x01
    s3.put_object(Bucket=bucket, Key=victim, Body=bytes(data))
    res = mover("check", *args, "--read-data", env=env, check=False)
    assert res.returncode == 3, res.stdout + res.stderr
    broken = mover("restore", *args, "--snapshot", first["snapshot_id"], "--target", str(tmp_path / "broken"),
                   env=env, check=False)
    assert broken.returncode != 0
    names = [os.path.basename(p) for p in walk(src) if os.path.basename(p)]
    assert any(n in broken.stderr for n in names), broken.stderr


def create_bucket(testenv, bucket):
    """A bucket of our own, made with curl's SigV4 support: the mover never creates buckets."""
    res = subprocess.run(["curl", "-sf", "-X", "PUT", "--aws-sigv4",
                          f"aws:amz:{testenv['S3_REGION']}:s3",
                          "--user", f"{testenv['S3_ACCESS_KEY']}:{testenv['S3_SECRET_KEY']}",
                          f"{testenv['S3_ENDPOINT']}/{bucket}"], capture_output=True, text=True)
    assert res.returncode == 0, f"creating bucket {bucket}: {res.stderr}"


def test_s3_repo_uses_the_pinned_address_and_no_proxy(testenv, tmp_path, keyfile):
    """The runner hands the mover the addresses it checked (resolve=host:port:addr): the mover
    connects there and never resolves the endpoint's host again, and no proxy from its
    environment carries the request (the proxy here would refuse the connection)."""
    import urllib.parse
    port = urllib.parse.urlsplit(testenv["S3_ENDPOINT"]).port
    host = "stowage-minio.invalid"		# .invalid never resolves: only the pin can reach MinIO
    bucket = f"mover-pin-{os.getpid()}-{int(time.time())}"
    create_bucket(testenv, bucket)
    env = {"AWS_ACCESS_KEY_ID": testenv["S3_ACCESS_KEY"], "AWS_SECRET_ACCESS_KEY": testenv["S3_SECRET_KEY"],
           "http_proxy": "http://127.0.0.1:1", "HTTP_PROXY": "http://127.0.0.1:1",
           "https_proxy": "http://127.0.0.1:1", "ALL_PROXY": "http://127.0.0.1:1", "NO_PROXY": ""}
    base = f"s3://{bucket}/team-a?endpoint=http://{host}:{port}&region={testenv['S3_REGION']}&path_style=1"
    src = str(tmp_path / "src")
    os.makedirs(src)
    with open(os.path.join(src, "f"), "wb") as f:
        f.write(b"pinned" * 1000)
    pinned = common(f"{base}&resolve={host}:{port}:127.0.0.1", keyfile)
    done = last_json(mover("backup", *pinned, "--source", src, env=env))
    assert done["files"] == 1, done
    res = mover("snapshots", *common(base, keyfile), env=env, check=False)
    assert res.returncode == 1 and host in res.stderr, res.stderr
