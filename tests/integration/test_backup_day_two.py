"""The rest of the backup catalog against the real servers (issue 15): a backup's objects read
as YAML by a runner (the web reads no bucket), a Secret's values masked, even in kubectl's
last-applied annotation; Download: the archive decrypted by a runner into a day-long database
row the web serves, compared with the cluster's objects and the bucket's own archive, refused in
words past download_max_bytes and to another organisation; files and chunks per volume."""
import base64
import io
import json
import tarfile
import time

import pytest

from conftest import Client, unique
from fixtures_testenv import kubectl
from test_backup_job import FIXTURE_NS, Tenant, fixture_app, read_archive  # noqa: F401

SECRET_VALUE = "s3cr3t-day-two"


@pytest.fixture(scope="module")
def tenant(stack, testenv):
    return Tenant(stack, testenv, prefix="daytwo")


@pytest.fixture(scope="module")
def other(stack):
    c = Client(stack)
    c.signup(unique("Other Org "), unique("other") + "@example.test")
    return c


@pytest.fixture(scope="module")
def shop(tenant, testenv):
    """A namespace with a ConfigMap and a Secret applied client-side (so kubectl's
    last-applied annotation holds the Secret's value too), backed up."""
    ns = unique("shop-")
    kubectl(testenv, "source", "create", "namespace", ns)
    kubectl(testenv, "source", "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns},
         "data": {"colour": "blue", "size": "42"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": ns},
         "stringData": {"token": SECRET_VALUE}, "data": {"other": base64.b64encode(b"an0ther").decode()}}]}))
    plan, job_id = tenant.queue_backup([ns])
    job = tenant.wait_job(job_id)
    assert job["state"] == "succeeded", job["error"]
    return {"ns": ns, "backup_id": job["backup_id"], "name": tenant.backup_row(job["backup_id"])["name"]}


def read_object(client, backup_id, type_, obj, timeout=120):
    """GET /backups/:id/object until the runner has answered; the answered view."""
    path = f"/backups/{backup_id}/object?type={type_}&object={obj}"
    deadline = time.time() + timeout
    while True:
        r = client.json(path)
        assert r.status_code == 200, r.text[:300]
        view = r.json()
        if "live_pending" not in view:
            return view
        # the page follows the request as the other runner-request pages do
        rid = view["request"]["id"]
        assert client.json(f"/requests/{rid}/state").status_code == 200
        assert time.time() < deadline, view
        time.sleep(0.3)


def test_an_object_as_yaml_read_by_a_runner(tenant, shop, other):
    c, bid, ns = tenant.client, shop["backup_id"], shop["ns"]
    first = c.json(f"/backups/{bid}/object?type=v1/ConfigMap&object={ns}/settings").json()
    # the web asked a runner: a request row, answered by the runner, not read by the web
    assert "live_pending" in first or "yaml" in first, first
    view = read_object(c, bid, "v1/ConfigMap", f"{ns}/settings")
    assert "colour: blue" in view["yaml"] and f"namespace: {ns}" in view["yaml"] and not view["secret_masked"]
    assert "size: \"42\"" in view["yaml"] or "size: '42'" in view["yaml"], view["yaml"]
    kind, state = tenant.sql_one("SELECT kind, state FROM stowage.runner_requests WHERE org_id = %s "
                                 "AND params->>'object' = %s", (tenant.org_id, f"{ns}/settings"))
    assert (kind, state) == ("backup_object", "answered")
    # the same object again within the answer's freshness: no new request
    read_object(c, bid, "v1/ConfigMap", f"{ns}/settings")
    assert tenant.sql_one("SELECT count(*) FROM stowage.runner_requests WHERE org_id = %s AND params->>'object' = %s",
                          (tenant.org_id, f"{ns}/settings"))[0] == 1
    # the HTML page shows it too, and the backup's page links every object to it
    assert "colour: blue" in c.get(f"/backups/{bid}/object?type=v1/ConfigMap&object={ns}/settings").text
    types = {t["type"]: t for t in c.json(f"/backups/{bid}").json()["resources"]}
    assert {"name": f"{ns}/settings", "link": f"/backups/{bid}/object?type=v1%2FConfigMap&object={ns}%2Fsettings"} \
        in types["v1/ConfigMap"]["objects"]


def test_a_secrets_values_never_leave_the_runner(tenant, shop):
    c, bid, ns = tenant.client, shop["backup_id"], shop["ns"]
    view = read_object(c, bid, "v1/Secret", f"{ns}/token")
    text = view["yaml"]
    assert view["secret_masked"], view
    assert "token: '********'" in text or 'token: "********"' in text, text
    assert "other:" in text  # every key kept
    # neither the value, nor its base64, nor kubectl's copy of the manifest in the annotation
    for leak in (SECRET_VALUE, base64.b64encode(SECRET_VALUE.encode()).decode(), "an0ther",
                 base64.b64encode(b"an0ther").decode()):
        assert leak not in text
        assert leak not in json.dumps(tenant.sql("SELECT result FROM stowage.runner_requests WHERE org_id = %s",
                                                 (tenant.org_id,)))
    assert "last-applied-configuration: '********'" in text or 'last-applied-configuration: "********"' in text, text


def test_object_reads_are_validated_and_isolated(tenant, shop, other):
    c, bid, ns = tenant.client, shop["backup_id"], shop["ns"]
    for query, words in (("type=v1/ConfigMap", "Object"), (f"object={ns}/settings", "Type"),
                         (f"type=v1/Config%0AMap&object={ns}/settings", "Type:"),
                         (f"type=v1/ConfigMap&object={ns}/a/b", "Object:"),
                         ("type=../../x&object=a", "Type:")):
        r = c.json(f"/backups/{bid}/object?{query}")
        assert r.status_code == 422 and words in r.json()["error"]["message"], (query, r.text[:300])
    # only objects of the backup's own resource list are asked for
    asked = tenant.sql_one("SELECT count(*) FROM stowage.runner_requests WHERE org_id = %s", (tenant.org_id,))[0]
    r = c.json(f"/backups/{bid}/object?type=v1/ConfigMap&object=kube-system/coredns")
    assert r.status_code == 404 and "no such object" in r.json()["error"]["message"]
    assert tenant.sql_one("SELECT count(*) FROM stowage.runner_requests WHERE org_id = %s", (tenant.org_id,))[0] == asked
    # another organisation: no such backup, and no request asked in its name
    r = other.json(f"/backups/{bid}/object?type=v1/Secret&object={ns}/token")
    assert r.status_code == 404


def download(client, backup_id, timeout=120):
    r = client.post(f"/backups/{backup_id}/download", {})
    assert r.status_code == 303 and r.headers["Location"].startswith("/jobs/"), r.text[:300]
    job_id = int(r.headers["Location"].rsplit("/", 1)[1])
    deadline = time.time() + timeout
    while (job := client.json(f"/jobs/{job_id}").json()["job"])["state"] in ("queued", "running"):
        assert time.time() < deadline
        time.sleep(0.3)
    return job_id, job


def test_download_the_archive_decrypted(tenant, testenv, shop, other):
    c, bid, ns, name = tenant.client, shop["backup_id"], shop["ns"], shop["name"]
    job_id, job = download(c, bid)
    assert job["state"] == "succeeded", job
    assert job["archive_link"] == f"/jobs/{job_id}/archive.tar.gz"
    r = c.get(job["archive_link"])
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/gzip"
    assert f'filename="{name}.tar.gz"' in r.headers["Content-Disposition"]
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    # the plain Velero layout, the same bytes as the bucket's archive opened by hand
    assert files == read_archive(testenv, tenant, name)
    assert files["metadata/version"].strip() in (b"1", b"1.1.0")
    settings = json.loads(files[f"resources/configmaps/namespaces/{ns}/settings.json"])
    live = json.loads(kubectl(testenv, "source", "get", "configmap", "settings", "-n", ns, "-o", "json").stdout)
    assert settings["data"] == live["data"] and settings["metadata"]["uid"] == live["metadata"]["uid"]
    token = json.loads(files[f"resources/secrets/namespaces/{ns}/token.json"])
    assert base64.b64decode(token["data"]["token"]).decode() == SECRET_VALUE  # decrypted: the operator's own copy
    # kept a day, in the database, where the web serves it from
    assert tenant.sql_one("SELECT length(data), expires_at > now() + interval '23 hours' FROM stowage.job_bundles "
                          "WHERE job_id = %s", (job_id,)) == (len(r.content), True)
    # another organisation can neither download it nor ask for one
    assert other.get(job["archive_link"]).status_code == 404
    assert other.post(f"/backups/{bid}/download", {}).status_code == 404
    # an expired archive is gone in words
    tenant.sql("UPDATE stowage.job_bundles SET expires_at = now() - interval '1 second' WHERE job_id = %s", (job_id,))
    r = c.json(job["archive_link"])
    assert r.status_code == 404 and "expired" in r.json()["error"]["message"]


def test_download_past_its_limit_fails_in_words(tenant, stack, shop):
    with open(stack.conf) as f:
        conf = f.read()
    try:
        with open(stack.conf, "w") as f:
            f.write(conf + "download_max_bytes = 1000\n")
        job_id, job = download(tenant.client, shop["backup_id"])
    finally:
        with open(stack.conf, "w") as f:
            f.write(conf)
    assert job["state"] == "failed"
    assert "more than the 1000 bytes allowed here" in job["error"] and "download_max_bytes" in job["error"], job["error"]
    assert "archive_link" not in job
    assert tenant.client.json(f"/jobs/{job_id}/archive.tar.gz").status_code == 404
    assert tenant.sql_one("SELECT count(*) FROM stowage.job_bundles WHERE job_id = %s", (job_id,))[0] == 0


def test_files_and_chunks_per_volume(tenant, fixture_app):  # noqa: F811
    def backup():
        _, job_id = tenant.queue_backup([fixture_app])
        job = tenant.wait_job(job_id)
        assert job["state"] == "succeeded", job["error"]
        return job["backup_id"], {v["pvc"]: v for v in tenant.sql_one(
            "SELECT volumes FROM stowage.backups WHERE id = %s", (job["backup_id"],))[0]}

    first_id, first = backup()
    assert sorted(first) == ["data-mysql-0", "data-mysql-1", "wordpress-data"]
    for pvc, v in first.items():
        # chunks: the files' data; chunks_new: what the repository lacked (the directory tree too)
        assert v["files"] > 0 and v["chunks"] >= 1 and v["chunks_new"] >= 1, (pvc, v)
    # the same data again: the same chunks, none of them new
    _, second = backup()
    for pvc, v in second.items():
        assert (v["files"], v["chunks"], v["chunks_new"]) == (first[pvc]["files"], first[pvc]["chunks"], 0), (pvc, v)
    page = tenant.client.json(f"/backups/{first_id}").json()
    shown = {v["pvc"]: v for v in page["volume_list"]}
    assert all(shown[p]["chunks"] == str(first[p]["chunks"]) and shown[p]["files"] == str(first[p]["files"])
               for p in first)
