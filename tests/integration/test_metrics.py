"""The operator's /metrics: stowage-metrics on its own loopback port, reading the real database
as the stowage_metrics role and the real web workers' counters, after real backups (one whose
hook fails); scraped by a real Prometheus built from the Go module proxy, which also loads and
evaluates the alerting rules of docs/operations.md."""
import json
import os
import re
import socket
import subprocess
import tempfile
import time

import psycopg2
import pytest
import requests

from automation_world import World
from conftest import BUILD, TOP, free_port, unique

pytest_plugins = ["fixtures_testenv"]

SAMPLE_RE = re.compile(r'^([a-z_:]+)(?:\{(.*)\})? (\S+)$')


def parse(text):
    """[(name, {label: value}, value)] of a Prometheus text page; checks every line's syntax."""
    samples = []
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def value(samples, name, **labels):
    found = [v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in labels.items())]
    assert found, f"no sample {name} {labels}"
    return found[0]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture(scope="module")
def metrics(stack):
    port = free_port()
    log = open(os.path.join(stack.root, "logs", "metrics-test.log"), "ab")
    proc = subprocess.Popen([os.path.join(BUILD, "stowage-metrics"), "-c", stack.conf, "-l", f"127.0.0.1:{port}"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    wait_port(port)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    assert proc.wait(timeout=10) == 0
    log.close()


@pytest.fixture(scope="module")
def world(stack, testenv):
    w = World(stack, testenv)
    # a backup whose pre-backup hook fails: a failed job and a failed hook run
    plan = unique("hookfail-")
    plan_id = w.tenant.sql_one(
        "INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces, hooks) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (w.tenant.org_id, plan, w.source_id, w.tenant.repository_id, [w.namespace],
         json.dumps([{"inline": "error('database refused to quiesce')"}])))[0]
    r = w.bearer("POST", f"/backup-plans/{plan_id}/backup", json={"confirm": "yes"})
    assert r.status_code == 303, r.text
    assert w.wait_job(int(r.json()["redirect"].rsplit("/", 1)[1]))["state"] == "failed"
    # a job no runner takes (its cancel is asked for), queued two hours ago: the stuck-queue alarm
    w.stuck_job = w.tenant.sql_one(
        "INSERT INTO stowage.jobs (org_id, kind, backup_plan_id, cluster_id, cancel_requested, queued_at) "
        "VALUES (%s, 'backup', %s, %s, true, now() - interval '2 hours') RETURNING id",
        (w.tenant.org_id, plan_id, w.source_id))[0]
    yield w
    w.tenant.sql("DELETE FROM stowage.jobs WHERE id = %s", (w.stuck_job,))


def test_metrics_has_jobs_queue_runners_hooks_requests_and_no_tenant_names(stack, metrics, world):
    r = requests.get(metrics + "/metrics", timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = parse(r.text)
    assert value(samples, "stowage_database_up") == 1 and value(samples, "stowage_web_metrics_up") == 1
    assert value(samples, "stowage_jobs", kind="backup", state="succeeded") >= 1
    assert value(samples, "stowage_jobs", kind="backup", state="failed") >= 1
    assert value(samples, "stowage_jobs", kind="migrate", state="cancelled") >= 0  # every combination is there
    count = value(samples, "stowage_job_duration_seconds_count", kind="backup", state="succeeded")
    buckets = [v for n, l, v in samples if n == "stowage_job_duration_seconds_bucket"
               and l["kind"] == "backup" and l["state"] == "succeeded"]
    assert buckets == sorted(buckets) and buckets[-1] == count >= 1
    assert value(samples, "stowage_job_bytes_total", kind="backup") > 0
    assert value(samples, "stowage_job_objects_total", kind="backup") >= 2  # the namespace and its ConfigMap at least
    assert value(samples, "stowage_queue_depth") >= 1
    assert value(samples, "stowage_queue_oldest_age_seconds") >= 7000
    now = time.time()
    for runner in ("runner-1", "runner-2"):
        assert now - value(samples, "stowage_runner_last_heartbeat_timestamp_seconds", runner=runner) < 30
    assert value(samples, "stowage_hook_failures_total", phase="pre-backup") >= 1
    assert value(samples, "stowage_hook_duration_seconds_count", phase="pre-backup", state="failed") >= 1
    assert value(samples, "stowage_db_connections", role="stowage_app") >= 1
    assert value(samples, "stowage_http_requests_total", route="/backup-plans/:id/backup", method="POST", code="303") >= 2
    assert value(samples, "stowage_http_request_duration_seconds_count", route="/clusters", method="GET") >= 1
    # bounded labels: patterns, never paths; no organisation, plan, namespace or hook name
    routes = {l["route"] for n, l, v in samples if "route" in l}
    assert routes and all(not re.search(r"/\d", route) for route in routes), routes
    for secret in (world.tenant.client.json("/").json()["org"]["name"], world.plan, world.namespace, world.hook,
                   world.migration, world.restore_plan):
        assert secret not in r.text


def test_metrics_is_not_served_to_tenants_and_refuses_other_requests(stack, metrics):
    assert requests.get(stack.url + "/metrics", timeout=10).status_code == 404
    assert requests.get(metrics + "/", timeout=10).status_code == 404
    assert requests.post(metrics + "/metrics", data="x", timeout=10).status_code == 405
    with socket.create_connection(("127.0.0.1", int(metrics.rsplit(":", 1)[1])), timeout=10) as s:
        s.sendall(b"GET /metrics\x00 HTTP/1.1\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 ")
    # a client that sends nothing is dropped, and the next scrape is answered
    idle = socket.create_connection(("127.0.0.1", int(metrics.rsplit(":", 1)[1])), timeout=10)
    started = time.time()
    assert requests.get(metrics + "/metrics", timeout=30).status_code == 200
    assert time.time() - started < 10
    idle.close()


def test_metrics_role_reads_aggregates_only(stack):
    conn = psycopg2.connect(stack.pg_dsn_app.replace("user=stowage_app", "user=stowage_metrics"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM stowage.metrics_sample()")
        assert cur.fetchone()[0] > 50
        for table in ("jobs", "orgs", "backup_plans", "api_tokens", "runners", "audit_log"):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(f"SELECT 1 FROM stowage.{table} LIMIT 1")
    conn.close()


def alert_rules():
    with open(os.path.join(TOP, "docs", "operations.md")) as f:
        text = f.read()
    section = text[text.index("## Alerting rules"):]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def prometheus_bin():
    res = subprocess.run([os.path.join(TOP, "scripts", "testenv", "build-prometheus")], capture_output=True,
                         text=True, timeout=3600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout.strip().splitlines()[-1]


def test_real_prometheus_scrapes_and_evaluates_the_sample_alerts(stack, metrics, world, prometheus_bin):
    root = tempfile.mkdtemp(prefix="prometheus-")
    port = free_port()
    with open(os.path.join(root, "rules.yml"), "w") as f:
        f.write(alert_rules())
    with open(os.path.join(root, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "rule_files: [rules.yml]\n"
                "scrape_configs:\n  - job_name: stowage\n    static_configs:\n"
                f"      - targets: ['{metrics.split('//')[1]}']\n")
    log = open(os.path.join(root, "log"), "wb")
    proc = subprocess.Popen([prometheus_bin, f"--config.file={root}/prometheus.yml", f"--storage.tsdb.path={root}/data",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log, cwd=root)
    api = f"http://127.0.0.1:{port}/api/v1"

    def query(q):
        r = requests.get(api + "/query", params={"query": q}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["data"]["result"]

    try:
        wait_port(port, timeout=60)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                up = query('up{job="stowage"}')
                if up and up[0]["value"][1] == "1" and query('stowage_jobs{kind="backup",state="succeeded"}'):
                    break
            except (requests.RequestException, AssertionError):
                pass	# Prometheus answers 503 until its storage is ready
            time.sleep(0.5)
        assert query('up{job="stowage"}')[0]["value"][1] == "1"
        assert float(query('stowage_jobs{kind="backup",state="succeeded"}')[0]["value"][1]) >= 1
        assert query('stowage_http_requests_total{route="/backup-plans/:id/backup"}')
        assert float(query("stowage_queue_oldest_age_seconds")[0]["value"][1]) >= 7000
        # the sample rules load and evaluate; the stuck queue is noticed
        deadline = time.time() + 30
        while time.time() < deadline:
            groups = requests.get(api + "/rules", timeout=10).json()["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules):
                break
            time.sleep(0.5)
        assert len(rules) == 8 and all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
        # evaluations after the data arrived: the stuck queue is noticed, the live runners are not missed
        deadline = time.time() + 30
        while time.time() < deadline:
            alerts = {a["labels"]["alertname"]: a["state"]
                      for a in requests.get(api + "/alerts", timeout=10).json()["data"]["alerts"]}
            if "StowageQueueStuck" in alerts and "StowageNoRunner" not in alerts:
                break
            time.sleep(0.5)
        assert alerts.get("StowageQueueStuck") in ("pending", "firing"), alerts
        assert "StowageRunnerDown" not in alerts and "StowageNoRunner" not in alerts, alerts
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
