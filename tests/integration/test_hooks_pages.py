"""The hook library pages (src/web/page_hooks.c) on the real stack, with the test environment's
source cluster for dry runs: versions kept, Check pointing at line and column, a dry run that
lists the writes and changes nothing in the cluster (checked with kubectl), viewers read-only,
tenants apart, every change audited."""
import html
import json
import re

from conftest import Client, unique
from fixtures_testenv import kubectl

SCRIPT_V1 = 'log("version one", job.phase)'
SCRIPT_V2 = 'log("version two")'
DRY_SCRIPT = """
local cm = k8s.get("v1", "ConfigMap", "kube-root-ca.crt")
log("read", cm.metadata.name)
k8s.create({apiVersion = "v1", kind = "ConfigMap", metadata = {name = "dry-made"}, data = {k = params.value}})
k8s.scale("Deployment", "web", 4)
k8s.delete("v1", "ConfigMap", "kube-root-ca.crt")
"""


def new_hook(c, name, source, description=""):
    return c.post("/hooks", {"name": name, "description": description, "source": source})


def hook_id(resp):
    assert resp.status_code == 303, resp.text[:800]
    return int(re.search(r"/hooks/(\d+)$", resp.headers["Location"]).group(1))


def test_create_edit_keeps_versions(admin):
    hid = hook_id(new_hook(admin, "greet", SCRIPT_V1, "says hello"))
    r = admin.post(f"/hooks/{hid}", {"name": "greet", "description": "says hello", "source": SCRIPT_V2})
    assert r.status_code == 303
    assert "the current version is 2" in admin.get(f"/hooks/{hid}").text
    view = admin.json(f"/hooks/{hid}").json()
    assert view["fields"]["source"]["value"] == SCRIPT_V2
    assert [v["version"] for v in view["versions"]] == [2, 1]
    assert [v["current"] for v in view["versions"]] == [True, False]
    old = admin.json(f"/hooks/{hid}?version=1").json()
    assert old["fields"]["source"]["value"] == SCRIPT_V1 and old["old_version"] is True
    # Saving the same script again makes no new version.
    admin.post(f"/hooks/{hid}", {"name": "greet", "description": "renamed", "source": SCRIPT_V2})
    assert len(admin.json(f"/hooks/{hid}").json()["versions"]) == 2
    listed = admin.json("/hooks").json()["hooks"]
    assert [(h["name"], h["version"], h["description"]) for h in listed] == [("greet", 2, "renamed")]
    actions = admin.json("/audit").text
    assert "hook.create" in actions and "hook.update" in actions
    r = admin.post(f"/hooks/{hid}/delete", {})
    assert r.status_code == 303 and admin.json("/hooks").json()["hooks"] == []
    assert admin.get(f"/hooks/{hid}").status_code == 404
    assert "hook.delete" in admin.json("/audit").text


def test_check_shows_line_and_column(admin):
    bad = "local x = 1\nlocal y = = 2\n"
    r = admin.post("/hooks/check", {"name": "broken", "source": bad})
    assert r.status_code == 422
    assert "Script: line 2, column 11: unexpected symbol near '='" in html.unescape(r.text), r.text
    r = admin.post("/hooks/check", {"name": "fine", "source": SCRIPT_V1})
    assert r.status_code == 200 and "Syntax OK" in r.text
    # Saving a script that does not compile is refused with the same words, and stores nothing.
    r = new_hook(admin, "broken", bad)
    assert r.status_code == 422 and "line 2, column 11" in r.text
    assert admin.json("/hooks").json()["hooks"] == []


def test_check_compiles_only_what_the_form_accepts(admin):
    """Check compiles in a web worker's request: a script over the form's 256 KiB is refused
    unread (it used to be compiled whole, up to the 2 MiB of a request body, whose compile a
    crafted script makes last 47 s), and a crafted one inside the limit stops at the check's time."""
    big = "x = 1\n" * 50000  # 300 KB of valid Lua
    r = admin.post("/hooks/check", {"name": "big", "source": big})
    assert r.status_code == 422 and "Syntax OK" not in r.text
    assert "Script" in html.unescape(r.text) and "262144" in r.text, r.text[-2000:]
    slow = "".join(f"local function f{f}() local " + ",".join(f"a{a}" for a in range(128)) + "\n"
                   for f in range(128))
    slow += "q=q " * ((250000 - len(slow)) // 4) + " end" * 128
    r = admin.post("/hooks/check", {"name": "slow", "source": slow})
    assert r.status_code == 422 and "took more than 250 ms to compile" in r.text, r.text[-2000:]


def test_dry_run_lists_writes_and_changes_nothing(admin, testenv):
    with open(testenv["SOURCE_CA_FILE"]) as f:
        ca = f.read()
    r = admin.post("/clusters", {"name": "src", "api_url": testenv["SOURCE_API_URL"],
                                 "token": testenv["SOURCE_ADMIN_TOKEN"], "ca_pem": ca})
    assert r.status_code == 303, r.text[:500]
    cid = [c for c in admin.json("/clusters").json()["clusters"] if c["name"] == "src"][0]["id"]
    ns = unique("dry-")
    kubectl(testenv, "source", "create", "namespace", ns)
    kubectl(testenv, "source", "-n", ns, "create", "deployment", "web", "--image=busybox", "--replicas=1")
    hid = hook_id(new_hook(admin, "writer", DRY_SCRIPT))
    r = admin.post(f"/hooks/{hid}/dry-run", {"cluster_id": str(cid), "namespace": ns, "phase": "post-restore",
                                             "params": json.dumps({"value": "v"})})
    assert r.status_code == 200, r.text[:800]
    text = r.text
    assert "Completed in" in text, text
    assert "read\tkube-root-ca.crt" in text
    assert re.search(r"<td>create</td><td>ConfigMap</td><td>" + ns + r"</td><td>dry-made</td>", text)
    assert re.search(r"<td>scale</td><td>Deployment</td><td>" + ns + r"</td><td>web</td><td><code>replicas: 4</code>", text)
    assert re.search(r"<td>delete</td><td>ConfigMap</td><td>" + ns + r"</td><td>kube-root-ca.crt</td>", text)
    # Nothing changed in the cluster.
    assert kubectl(testenv, "source", "-n", ns, "get", "configmap", "dry-made", check=False).returncode != 0
    assert kubectl(testenv, "source", "-n", ns, "get", "configmap", "kube-root-ca.crt").returncode == 0
    replicas = kubectl(testenv, "source", "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}").stdout
    assert replicas == "1"
    # Another namespace than the chosen one is refused.
    other = admin.post(f"/hooks/{hid}", {"name": "writer",
                                         "source": 'k8s.get("v1", "ConfigMap", "x", {namespace = "kube-system"})'})
    assert other.status_code == 303
    r = admin.post(f"/hooks/{hid}/dry-run", {"cluster_id": str(cid), "namespace": ns, "phase": "pre-backup"})
    assert "outside this hook&#39;s scope" in r.text or "outside this hook's scope" in r.text, r.text[:2000]


def test_a_name_taken_is_said_on_the_form(admin):
    """The failed insert aborts the request's transaction; the form, read again in a fresh one,
    says why (it answered 500 when its lists were read in the aborted one)."""
    first = hook_id(new_hook(admin, "taken", SCRIPT_V1))
    for r in (new_hook(admin, "taken", SCRIPT_V2),
              admin.post(f"/hooks/{hook_id(new_hook(admin, 'other', SCRIPT_V1))}", {"name": "taken", "source": SCRIPT_V2})):
        assert r.status_code == 422 and "Name: a hook of that name already exists." in html.unescape(r.text), \
            (r.status_code, r.text[:300])
    assert admin.json(f"/hooks/{first}").json()["fields"]["source"]["value"] == SCRIPT_V1


def test_viewer_cannot_edit(stack, admin):
    hid = hook_id(new_hook(admin, "guarded", SCRIPT_V1))
    email = unique("v") + "@x.test"
    v = admin.invite(email, "viewer", "viewer password", name="V")
    assert v.json(f"/hooks/{hid}").json()["fields"]["source"]["value"] == SCRIPT_V1
    assert v.post(f"/hooks/{hid}", {"name": "guarded", "source": SCRIPT_V2}).status_code == 403
    assert new_hook(v, "mine", SCRIPT_V1).status_code == 403
    assert v.post(f"/hooks/{hid}/delete", {}).status_code == 403
    assert v.post(f"/hooks/{hid}/dry-run", {"cluster_id": "1", "namespace": "x", "phase": "pre-backup"}).status_code == 403
    assert admin.json(f"/hooks/{hid}").json()["fields"]["source"]["value"] == SCRIPT_V1


def test_tenants_cannot_read_each_others_hooks(stack, admin):
    hid = hook_id(new_hook(admin, "secretive", 'log("ours")'))
    other = Client(stack)
    other.signup(unique("Other Org "), unique("o") + "@x.test")
    assert other.get(f"/hooks/{hid}").status_code == 404
    assert other.get(f"/hooks/{hid}?version=1").status_code == 404
    assert other.post(f"/hooks/{hid}", {"name": "stolen", "source": "log(1)"}).status_code == 404
    assert other.post(f"/hooks/{hid}/delete", {}).status_code == 404
    assert other.json("/hooks").json()["hooks"] == []
    # The same name is free in the other organisation.
    assert new_hook(other, "secretive", 'log("theirs")\n').status_code == 303
    assert admin.json(f"/hooks/{hid}").json()["fields"]["source"]["value"] == 'log("ours")'
