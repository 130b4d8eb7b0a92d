"""The README's first command, run as a person runs it: `scripts/demo` installs what is missing,
builds, starts Stowage, the test clusters and MinIO, and prints where they are; the console
printed there takes a sign-up to a signed-in page, the clusters and MinIO it names answer, and
`scripts/demo stop` ends all of it. Its state goes to a directory of this test's own
(STOWAGE_DEMO_DIR), so a demo someone is running in var/demo is left alone."""
import os
import re
import shutil
import socket
import subprocess
import types

import requests

from conftest import TOP, Client, free_port, unique

DEMO = os.path.join(TOP, "scripts", "demo")


def listening(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def processes_under(path):
    """The processes whose command line names path (the demo's servers all do)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if path.encode() in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def test_demo_starts_a_working_stowage_and_stops_it():
    state = os.path.join(TOP, "var", f"demo-test-{os.getpid()}")
    port = free_port()
    env = dict(os.environ, STOWAGE_DEMO_DIR=state, STOWAGE_PORT=str(port))
    env.pop("STOWAGE_SMTP_URL", None)
    os.makedirs(os.path.dirname(state), exist_ok=True)
    try:
        r = subprocess.run([DEMO], env=env, capture_output=True, text=True, timeout=2400)
        assert r.returncode == 0, f"scripts/demo exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        url = re.search(r"^Stowage is running: (http://127\.0\.0\.1:(\d+)/)$", r.stdout, re.M)
        assert url and int(url.group(2)) == port, r.stdout
        assert "Stop everything with: scripts/demo stop" in r.stdout

        # a person signs up and confirms with the link the web log holds (no SMTP server here)
        c = Client(types.SimpleNamespace(url=url.group(1).rstrip("/")))
        email = unique("demo") + "@x.test"
        page = c.post("/signup", {"org": unique("Demo Org "), "display_name": "D", "email": email,
                                  "password": "correct horse battery"})
        assert page.status_code == 200 and "Check your mail" in page.text, page.text[:500]
        with open(os.path.join(state, "stack", "logs", "web.log")) as f:
            link = re.search(r"mail to " + re.escape(email) + r" is only logged here: .*?http://[^/\s]+(/confirm/[A-Za-z0-9_-]+)",
                             f.read())
        assert link, "the confirmation link is not in the web log"
        assert c.follow(link.group(1)).status_code == 303
        clusters = c.get("/clusters")
        assert clusters.status_code == 200 and "Clusters" in clusters.text, clusters.text[:500]

        # what it prints for the clusters and the object storage answers there
        with open(os.path.join(state, "testenv", "env")) as f:
            testenv = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
        for name in ("SOURCE_API_URL", "TARGET_API_URL", "S3_ENDPOINT"):
            assert f"  {name}={testenv[name]}" in r.stdout, name
        for name in ("SOURCE", "TARGET"):
            ready = requests.get(testenv[f"{name}_API_URL"] + "/readyz", verify=testenv[f"{name}_CA_FILE"],
                                 headers={"Authorization": "Bearer " + testenv[f"{name}_ADMIN_TOKEN"]}, timeout=10)
            assert ready.status_code == 200 and ready.text == "ok", (name, ready.status_code, ready.text[:200])
        assert requests.get(testenv["S3_ENDPOINT"] + "/minio/health/live", timeout=10).status_code == 200
    finally:
        stop = subprocess.run([DEMO, "stop"], env=env, capture_output=True, text=True, timeout=600)
    assert stop.returncode == 0 and "stopped" in stop.stdout, stop.stderr
    assert not listening(port)
    assert processes_under(state) == []
    shutil.rmtree(state, ignore_errors=True)
