"""An organisation with one of everything the JSON API shows, for the API document's test and the
command-line client's: the source and target clusters and a MinIO repository added through the
console, a namespace with a ConfigMap, a backup plan, one finished backup, a restore plan, a
migration plan, a hook, and API tokens of each role."""
import json
import re
import time

import requests

from conftest import unique
from fixtures_testenv import kubectl
from test_backup_job import Tenant


def create_token(c, name, role, days=None):
    """An API token made on the /tokens page by the signed-in admin c; its secret (shown once)."""
    data = {"name": name, "role": role}
    if days is not None:
        data["expires_in_days"] = str(days)
    r = c.post("/tokens", data)
    assert r.status_code == 201, f"{r.status_code} {r.text[:500]}"
    m = re.search(r'<code id="new-token">(stw_[A-Za-z0-9_-]{43})</code>', r.text)
    assert m, r.text[:1000]
    return m.group(1)


class World:
    def __init__(self, stack, testenv):
        self.stack = stack
        self.testenv = testenv
        self.tenant = Tenant(stack, testenv)
        self.client = self.tenant.client
        self.admin_token = create_token(self.client, unique("world-admin-"), "admin")
        self.operator_token = create_token(self.client, unique("world-op-"), "operator")
        self.viewer_token = create_token(self.client, unique("world-view-"), "viewer")
        with open(testenv["TARGET_CA_FILE"]) as f:
            ca = f.read()
        r = self.client.post("/clusters", {"name": "target", "api_url": testenv["TARGET_API_URL"],
                                           "token": testenv["TARGET_ADMIN_TOKEN"], "ca_pem": ca})
        assert r.status_code == 303, r.text[:500]
        # the save was a runner request (the web worker connects to no cluster): the newest one
        self.request_id = self.tenant.sql_one("SELECT max(id) FROM stowage.runner_requests WHERE org_id = %s",
                                              (self.tenant.org_id,))[0]
        clusters = {c["name"]: c["id"] for c in self.client.json("/clusters").json()["clusters"]}
        self.source_id, self.target_id = clusters["source"], clusters["target"]
        self.namespace = unique("auto-")
        kubectl(testenv, "source", "create", "namespace", self.namespace)
        kubectl(testenv, "source", "-n", self.namespace, "create", "configmap", "settings",
                "--from-literal=colour=blue")
        self.plan = unique("nightly-")
        self.plan_id = self.tenant.sql_one(
            "INSERT INTO stowage.backup_plans (org_id, name, cluster_id, repository_id, namespaces) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (self.tenant.org_id, self.plan, self.source_id, self.tenant.repository_id, [self.namespace]))[0]
        r = self.bearer("POST", f"/backup-plans/{self.plan_id}/backup", json={"confirm": "yes"})
        assert r.status_code == 303, r.text[:500]
        self.job_id = int(r.json()["redirect"].rsplit("/", 1)[1])
        job = self.tenant.wait_job(self.job_id)
        assert job["state"] == "succeeded", job
        self.backup_id = job["backup_id"]
        self.restore_plan = unique("restore-")
        self.restore_plan_id = self.tenant.sql_one(
            "INSERT INTO stowage.restore_plans (org_id, name, target_cluster_id, backup_plan_id, backup_id, "
            "namespace_map) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (self.tenant.org_id, self.restore_plan, self.target_id, self.plan_id, self.backup_id,
             json.dumps({self.namespace: self.namespace + "-restored"})))[0]
        self.migration = unique("move-")
        self.migration_id = self.tenant.sql_one(
            "INSERT INTO stowage.migration_plans (org_id, name, source_cluster_id, target_cluster_id, repository_id, "
            "namespaces, keep_source_running) VALUES (%s, %s, %s, %s, %s, %s, true) RETURNING id",
            (self.tenant.org_id, self.migration, self.source_id, self.target_id, self.tenant.repository_id,
             [self.namespace]))[0]
        self.hook = unique("hook-")
        r = self.bearer("POST", "/hooks", json={"name": self.hook, "source": "function run(ctx) log('hi') end\n"})
        assert r.status_code == 303, r.text[:500]
        self.hook_id = [h for h in self.client.json("/hooks").json()["hooks"] if h["name"] == self.hook][0]["id"]

    def bearer(self, method, path, token=None, **kw):
        headers = dict(kw.pop("headers", {}))
        headers["Authorization"] = f"Bearer {token or self.admin_token}"
        return requests.request(method, self.stack.url + path, headers=headers, allow_redirects=False,
                                timeout=60, **kw)

    def wait_job(self, job_id, timeout=300):
        return self.tenant.wait_job(job_id, timeout)
