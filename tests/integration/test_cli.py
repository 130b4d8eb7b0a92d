"""The `stowage` command against the real stack: logs in with an API token made on the console,
lists what the organisation has, runs a backup and waits for it, restores it into the other
cluster, migrates, follows a job's log, checks a hook; a failed job, a viewer's token and a
wrong token exit non-zero."""
import json
import os
import pty
import re
import stat
import subprocess

import pytest

from automation_world import World
from conftest import BUILD, unique
from fixtures_testenv import kubectl

pytest_plugins = ["fixtures_testenv"]

STOWAGE = os.path.join(BUILD, "stowage")


@pytest.fixture(scope="module")
def world(stack, testenv):
    return World(stack, testenv)


@pytest.fixture
def home(tmp_path):
    return str(tmp_path)


def cli(home, *args, stdin=None, token=None, timeout=300):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "XDG_CONFIG_HOME": os.path.join(home, "cfg"),
           "STOWAGE_POLL_SECONDS": "0.3", "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "")}
    if token:
        env["STOWAGE_TOKEN"] = token
    return subprocess.run([STOWAGE, *args], input=stdin, capture_output=True, text=True, timeout=timeout, env=env)


def login(world, home, token=None):
    r = cli(home, "login", world.stack.url, stdin=(token or world.operator_token) + "\n")
    assert r.returncode == 0, r.stderr
    return r


def test_login_stores_the_token_owner_only_after_checking_it(world, home):
    r = login(world, home)
    path = os.path.join(home, "cfg", "stowage", "config")
    assert f"saved in {path}" in r.stdout and world.tenant.client is not None
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600 and stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    with open(path) as f:
        assert world.operator_token in f.read()
    # the token never travels on the command line unless asked, and a bad one is not stored
    other = os.path.join(home, "other")
    r = cli(other, "login", world.stack.url, stdin="stw_" + "x" * 43 + "\n")
    assert r.returncode == 1 and "refused the token" in r.stderr
    assert not os.path.exists(os.path.join(other, "cfg", "stowage", "config"))
    # a config others can read is refused, not used
    os.chmod(path, 0o644)
    r = cli(home, "clusters")
    assert r.returncode == 1 and "0600" in r.stderr
    os.chmod(path, 0o600)
    assert cli(home, "clusters").returncode == 0


def test_lists_as_tables_and_json(world, home):
    login(world, home)
    r = cli(home, "clusters")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "STATUS"]
    assert any(" source " in f" {line} " for line in lines) and any(" target " in f" {line} " for line in lines)
    r = cli(home, "clusters", "-o", "json")
    assert {c["name"] for c in json.loads(r.stdout)} == {"source", "target"}
    assert world.plan in cli(home, "plans").stdout
    assert "minio" in cli(home, "repositories").stdout
    backups = json.loads(cli(home, "backups", "--plan", world.plan, "-o", "json").stdout)
    assert [b["backup_id"] for b in backups] == [world.backup_id]
    jobs = cli(home, "jobs", "--kind", "backup")
    assert jobs.returncode == 0 and str(world.job_id) in jobs.stdout and world.plan in jobs.stdout
    assert cli(home, "jobs", "--state", "nonsense").returncode == 1
    assert cli(home, "clusters", "--wait").returncode == 2
    assert cli(home, "frobnicate").returncode == 2


def test_backup_run_waits_and_restore_create_and_migrate(world, home, testenv):
    login(world, home)
    r = cli(home, "backup", "run", world.plan, "--wait")
    assert r.returncode == 0, r.stderr
    assert "Waiting for it to finish" in r.stderr and "succeeded" in r.stderr
    job_id = int(r.stderr.split("job ", 1)[1].split()[0])
    assert world.tenant.job(job_id)["state"] == "succeeded"
    backup_id = world.tenant.job(job_id)["backup_id"]
    # without --wait: the job's id, as JSON
    r = cli(home, "backup", "run", str(world.plan_id), "-o", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["job_id"] > job_id
    world.wait_job(json.loads(r.stdout)["job_id"])
    # its log, whole
    r = cli(home, "job", "logs", str(job_id))
    assert r.returncode == 0 and world.plan in r.stdout and r.stdout.count("\n") >= 3
    r = cli(home, "job", "get", str(job_id), "-o", "json")
    assert json.loads(r.stdout)["job"]["state"] == "succeeded"
    # restore into the target cluster under another namespace
    target_ns = unique("cli-restored-")
    r = cli(home, "restore", "create", unique("cli-restore-"), "--from-backup", str(backup_id), "--target", "target",
            "--namespace-mappings", f"{world.namespace}:{target_ns}", "--wait")
    assert r.returncode == 0, r.stderr
    got = kubectl(testenv, "target", "-n", target_ns, "get", "configmap", "settings", "-o", "jsonpath={.data.colour}")
    assert got.stdout == "blue"
    # the migration plan: backup then restore into the target, the source left running
    r = cli(home, "migrate", world.migration, "--wait")
    assert r.returncode == 0, r.stderr
    got = kubectl(testenv, "target", "-n", world.namespace, "get", "configmap", "settings", "-o", "jsonpath={.data.colour}")
    assert got.stdout == "blue"
    # a second migration is refused by the pre-check: the namespace exists now. The console's
    # pre-check answers 409 when its reading of the target is newer than the first migration;
    # otherwise the runner's own pre-check, before anything is changed, fails the job in words
    r = cli(home, "migrate", world.migration, "--wait")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "HTTP 409" in r.stderr or "already exists" in r.stdout + r.stderr, r.stdout + r.stderr


def test_failed_job_exits_non_zero_and_follow_ends_with_the_job(world, home):
    login(world, home)
    plan = unique("failing-")
    world.tenant.sql_one(
        "INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces, hooks) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (world.tenant.org_id, plan, world.source_id, world.tenant.repository_id, [world.namespace],
         json.dumps([{"inline": "log('about to refuse')\nerror('database refused to quiesce')"}])))
    r = cli(home, "backup", "run", plan, "--wait")
    assert r.returncode == 1, r.stderr
    assert "failed" in r.stderr and "database refused to quiesce" in r.stderr and "stowage job logs" in r.stderr
    job_id = int(r.stderr.split("job ", 1)[1].split()[0])
    r = cli(home, "job", "logs", str(job_id), "--follow", timeout=60)
    assert r.returncode == 0 and "about to refuse" in r.stdout
    # follow a running job: it returns once the job ends, with the whole log
    r = cli(home, "backup", "run", world.plan, "-o", "json")
    job_id = json.loads(r.stdout)["job_id"]
    r = cli(home, "job", "logs", str(job_id), "--follow", timeout=300)
    assert r.returncode == 0 and world.tenant.job(job_id)["state"] == "succeeded"
    full = cli(home, "job", "logs", str(job_id)).stdout
    assert r.stdout == full


def test_hooks_check(world, home, tmp_path):
    login(world, home)
    good, bad = tmp_path / "good.lua", tmp_path / "bad.lua"
    good.write_text("function run(ctx)\n  log('fine')\nend\n")
    bad.write_text("function run(ctx)\n  log('fine'\nend\n")
    r = cli(home, "hooks", "check", str(good))
    assert r.returncode == 0 and "Syntax OK" in r.stdout
    r = cli(home, "hooks", "check", str(bad))
    assert r.returncode == 1 and "line 3" in r.stderr
    # the file is read here, within 1 MiB and as text, before anything is sent
    big, binary = tmp_path / "big.lua", tmp_path / "binary.lua"
    big.write_text("-" * (1024 * 1024 + 1))
    binary.write_bytes(b"log('a')\0")
    for path in (big, binary):
        r = cli(home, "hooks", "check", str(path))
        assert r.returncode == 1 and f"{path}: not a hook (larger than 1 MiB, or binary)" in r.stderr, r.stderr
    r = cli(home, "hooks", "check", str(tmp_path / "missing.lua"))
    assert r.returncode == 1 and "missing.lua: No such file or directory" in r.stderr, r.stderr


def test_viewer_token_cannot_run_and_wrong_token_is_refused(world, home):
    login(world, home, world.viewer_token)
    assert cli(home, "plans").returncode == 0
    r = cli(home, "backup", "run", world.plan)
    assert r.returncode == 1 and "Your role (viewer) does not allow this" in r.stderr and "HTTP 403" in r.stderr
    r = cli(home, "clusters", token="stw_" + "y" * 43)
    assert r.returncode == 1 and "HTTP 401" in r.stderr


def test_server_text_cannot_drive_the_terminal(world, home):
    login(world, home)
    evil = "evil\x1b[2J\x1b]0;owned\x07\u009b1m"
    job_id = world.tenant.sql_one(
        "INSERT INTO stowage.jobs (org_id, kind, backup_plan_id, cluster_id, state, phase, error, started_at, finished_at) "
        "VALUES (%s, 'backup', %s, %s, 'failed', %s, %s, now(), now()) RETURNING id",
        (world.tenant.org_id, world.plan_id, world.source_id, evil, evil))[0]
    for args in (("jobs",), ("job", "get", str(job_id))):
        r = cli(home, *args)
        assert "evil\\x1b[2J" in r.stdout, r.stdout
        assert not any(c in r.stdout for c in "\x1b\x07\u009b")


def test_wait_shows_progress_on_a_terminal(world, home):
    """On a terminal --wait rewrites one progress line (\\r, erase line) and ends with the outcome."""
    login(world, home)
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update({"HOME": home, "XDG_CONFIG_HOME": os.path.join(home, "cfg"), "STOWAGE_POLL_SECONDS": "0.1"})
        os.execv(STOWAGE, [STOWAGE, "backup", "run", world.plan, "--wait"])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert re.search(r"\r\x1b\[Kjob \d+ backup (queued|running)[^\r]* \d+% \(\d+/\d+ items", text), text
    assert text.rstrip().split("\r\x1b[K")[-1].startswith("Job ") and "succeeded" in text
