"""Shared fixtures of the integration tests: a real Stowage (PostgreSQL, migrations, FastCGI
workers, nginx) started by scripts/stack on free loopback ports, and HTTP helpers that behave
like a browser form (CSRF token from the page, cookies)."""
import contextlib
import email
import email.policy
import html
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import psycopg2
import pytest
import requests

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("STOWAGE_BUILD", os.path.join(TOP, "build", "release"))

if os.path.exists(os.path.join(os.path.dirname(__file__), "fixtures_testenv.py")):
    pytest_plugins = ["fixtures_testenv"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """A real SMTP server on loopback (aiosmtpd) keeping every mail it receives, so that tests can
    follow the links Stowage mails, as the person would."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        self.messages = []  # (recipient, subject, text)
        self.cond = threading.Condition(threading.RLock())
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        self.url = f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = msg.get_body(("plain",)).get_content()
        with self.cond:
            for rcpt in envelope.rcpt_tos:
                self.messages.append((rcpt.lower(), str(msg["Subject"]), text, dict(msg.items())))
            self.cond.notify_all()
        return "250 OK"

    def stop(self):
        self.controller.stop()

    def links_to(self, address, path_prefix):
        """Every link starting with path_prefix ("/confirm/") mailed to address, as paths, in order."""
        pattern = re.compile(r"https?://[^/\s]+(" + re.escape(path_prefix) + r"[A-Za-z0-9_-]+)")
        with self.cond:
            return [m.group(1) for rcpt, _, text, _ in self.messages if rcpt == address.lower()
                    for m in pattern.finditer(text)]

    def wait_subject(self, address, subject, timeout=20):
        """The text of the first mail to address with that subject, waiting for it."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for rcpt, subj, text, _ in self.messages:
                    if rcpt == address.lower() and subj == subject:
                        return text
                left = deadline - time.time()
                assert left > 0, f"no mail '{subject}' to {address} within {timeout}s"
                self.cond.wait(left)

    def link(self, address, path_prefix, count=1, timeout=20):
        """The count-th path_prefix link mailed to address (1 = the first ever), waiting for it."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                found = self.links_to(address, path_prefix)
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.time()
                assert left > 0, f"no {path_prefix} link number {count} mailed to {address} within {timeout}s"
                self.cond.wait(left)


class Stack:
    def __init__(self, root, client_rate_limit=100000, smtp=True):
        self.root = root
        self.smtp = smtp  # False: no smtp_url, as in the demo (mails go to the web log)
        # Every test comes from 127.0.0.1: the per-client limit is raised unless a test lowers it.
        self.client_rate_limit = client_rate_limit
        self.http_port = free_port()
        self.pg_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.tls_port = free_port()  # the same nginx over TLS, with a self-signed certificate
        self.tls_url = f"https://127.0.0.1:{self.tls_port}"
        self.conf = os.path.join(root, "stowage.conf")
        self.pg_dsn_app = f"host={root}/pg port={self.pg_port} dbname=stowage user=stowage_app"
        self.pg_dsn_owner = f"host={root}/pg port={self.pg_port} dbname=stowage user=stowage_owner"

    def start(self, settings=None):
        """settings: STOWAGE_* variables of scripts/stack for this stack (None unsets one)."""
        self.mail = Mailbox()
        env = dict(os.environ, STOWAGE_TLS_PORT=str(self.tls_port), STOWAGE_SMTP_URL=self.mail.url if self.smtp else "",
                   STOWAGE_CLIENT_RATE_LIMIT=str(self.client_rate_limit), STOWAGE_PRUNE_GRACE_SECONDS="0")
        for k, v in (settings or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        subprocess.run([os.path.join(TOP, "scripts", "stack"), "start", self.root,
                        str(self.http_port), str(self.pg_port), BUILD], check=True, stdout=subprocess.DEVNULL, env=env)

    def stop(self):
        subprocess.run([os.path.join(TOP, "scripts", "stack"), "stop", self.root], check=False)
        self.mail.stop()

    def archive_tool(self, verb, repository_id, key, data):
        """stowage-archive export|import of one repository object (repo_seal.h), with this
        stack's master key: the way a person holding the key reads or writes one by hand."""
        res = subprocess.run([os.path.join(BUILD, "stowage-archive"), verb, "-k", os.path.join(self.root, "master.key"),
                              "-r", str(repository_id), key], input=data, capture_output=True, timeout=120)
        assert res.returncode == 0, res.stderr.decode(errors="replace")
        return res.stdout

    def rotate_key(self, new_key, conf=None):
        """stowage-keys rotate with this stack's configuration (or conf): every sealed value
        re-sealed under new_key, generated first when there is no such file. The process."""
        keys = os.path.join(BUILD, "stowage-keys")
        if not os.path.exists(new_key):
            subprocess.run([keys, "generate", new_key], check=True, capture_output=True)
        return subprocess.run([keys, "rotate", "-c", conf or self.conf, new_key], capture_output=True, text=True,
                              timeout=120)

    def rotate_key_back(self, new_key, conf_path):
        """After rotate_key(new_key): back to the stack's own master key, with a copy of its
        configuration (written to conf_path) that names new_key as the key in use."""
        with open(self.conf) as f:
            lines = f.readlines()
        old_key = [line.split("=", 1)[1].strip() for line in lines if line.startswith("master_key_file")][0]
        with open(conf_path, "w") as f:
            f.writelines(f"master_key_file = {new_key}\n" if line.startswith("master_key_file") else line
                         for line in lines)
        return self.rotate_key(old_key, conf=conf_path)

    def unopenable_sealed_value(self):
        """The first sealed value (a cluster's token, a repository's secret key, ...) that does not
        open with the stack's master key, as stowage-keys rotate names it; "" when all open. The
        rotation is the product's own pass over every sealed value: at the end of the session it
        re-seals them under a throw-away key (nothing runs on the stack after)."""
        res = self.rotate_key(os.path.join(self.root, "check-rotation.key"))
        if res.returncode == 0:
            return ""
        m = re.search(r"(\w+) (\d+): does not open", res.stderr)
        if not m:
            return res.stderr.strip()
        conn = psycopg2.connect(self.pg_dsn_owner)
        try:
            with conn, conn.cursor() as cur:
                key = "org_id" if m[1] == "org_sso" else "id"  # names from rotate's own list, not input
                cur.execute(f"SELECT o.name FROM stowage.{m[1]} t JOIN stowage.orgs o ON o.id = t.org_id "
                            f"WHERE t.{key} = %s", (int(m[2]),))
                org = cur.fetchone()
        finally:
            conn.close()
        return f"{m[1]} row {m[2]} of organisation {org[0] if org else '?'!r}"

    def sanitizer_reports(self):
        """Lines of AddressSanitizer/UBSan reports the servers wrote to their logs."""
        found = []
        logs = os.path.join(self.root, "logs")
        for name in os.listdir(logs):
            with open(os.path.join(logs, name), errors="replace") as f:
                for line in f:
                    if "AddressSanitizer" in line or "runtime error:" in line or "LeakSanitizer" in line:
                        found.append(f"{name}: {line.strip()}")
        return found


@contextlib.contextmanager
def own_stack(name, settings=None, **kw):
    """A second installation for the tests that need other settings than the shared stack's:
    settings as for Stack.start, kw as for Stack. Stopped afterwards, its logs checked for
    sanitizer reports, its directory removed."""
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
    root = tempfile.mkdtemp(prefix=f"stowage-stack-{name}-")
    os.chmod(root, 0o755)
    s = Stack(root, **kw)
    s.start(settings)
    try:
        yield s
    finally:
        s.stop()
        reports = s.sanitizer_reports()
        shutil.rmtree(root, ignore_errors=True)
    assert not reports, "sanitizer reports in server logs:\n" + "\n".join(reports)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
    # single-tenant on purpose: the runner moves the hostPath volumes of the test clusters, which
    # all lie below pytest's base directory (the stack's own directory, with its key, does not)
    os.environ["STOWAGE_MOVER_LOCAL_ROOT"] = str(tmp_path_factory.getbasetemp())
    root = tempfile.mkdtemp(prefix="stowage-stack-")
    os.chmod(root, 0o755)
    s = Stack(root)
    s.start()
    yield s
    unopenable = s.unopenable_sealed_value()
    s.stop()
    reports = s.sanitizer_reports()
    assert not reports, "sanitizer reports in server logs:\n" + "\n".join(reports)
    assert not unopenable, (f"a test left a sealed value in the shared stack that does not open ({unopenable}), "
                            "which stops a key rotation: seal real secrets (the console's forms) or remove the row")


CSRF_RE = re.compile(r'name="_csrf" value="([^"]+)"')
PENDING_RE = re.compile(r'id="live-pending"[^>]*data-request="(\d+)" data-resubmit="([^"]*)"')
REQUEST_PATH_RE = re.compile(r"^/requests/\d+$")


class Client:
    """A signed-in (or not) user of the console, speaking HTML forms like a browser would."""

    def __init__(self, stack):
        self.stack = stack
        self.http = requests.Session()

    def get(self, path, settle=True, **kw):
        kw.setdefault("allow_redirects", False)
        r = self.http.get(self.stack.url + path, **kw)
        return self.settle(r, path, None, kw) if settle else r

    def settle(self, r, path, data, kw, timeout=60):
        """The web worker connects to no tenant's server: a Test, a save, a dry run or a wizard
        step that needs the cluster asks a runner (runner_requests) and answers "reading the
        cluster…" until the runner has answered. This follows such a page the way live.js does
        in a browser: a request's page (303 to /requests/N) is asked again, a form's page is
        sent again, until the answer is there; that answer is returned."""
        deadline = time.time() + timeout
        self.waited = 0
        while True:
            loc = r.headers.get("Location", "") if r.status_code == 303 else ""
            pending = None
            if r.status_code == 200 and r.headers.get("Content-Type", "").startswith("application/json"):
                pending = r.json().get("live_pending")
                resubmit = pending.get("resubmit", "") if pending else ""
            elif r.status_code == 200:
                m = PENDING_RE.search(r.text)
                pending, resubmit = (m, html.unescape(m.group(2))) if m else (None, "")
            if REQUEST_PATH_RE.match(loc):
                path, data = loc, None
            elif not pending:
                return r
            else:
                self.waited += 1
                time.sleep(0.2)
                if resubmit:
                    path = resubmit
            assert time.time() < deadline, f"no runner answered {path} within {timeout} s: {r.text[:300]}"
            if data is None:
                r = self.http.get(self.stack.url + path, **kw)
            else:
                r = self.http.post(self.stack.url + path, data=data, **kw)

    def csrf(self):
        """The token a form on any page carries: the session's, or before sign-in the
        double-submit cookie's (the overview redirects to the sign-in form then)."""
        r = self.http.get(self.stack.url + "/")
        m = CSRF_RE.search(r.text)
        assert m, f"no CSRF token on {r.url}: {r.status_code} {r.text[:300]}"
        return m.group(1)

    def post(self, path, data, settle=True, **kw):
        data = dict(data)
        data.setdefault("_csrf", self.csrf())
        kw.setdefault("allow_redirects", False)
        r = self.http.post(self.stack.url + path, data=data, **kw)
        return self.settle(r, path, data, kw) if settle else r

    def json(self, path):
        return self.http.get(self.stack.url + path, headers={"Accept": "application/json"}, allow_redirects=False)

    def signup_unconfirmed(self, org, email, password="correct horse battery", name="Ann Admin"):
        """Sign-up only: the account waits for its address to be confirmed."""
        before = len(self.stack.mail.links_to(email, "/confirm/"))
        r = self.post("/signup", {"org": org, "display_name": name, "email": email, "password": password})
        assert r.status_code == 200 and "Check your mail" in r.text, f"sign-up failed: {r.status_code} {r.text[:500]}"
        return before + 1  # the number of the confirmation mail

    def follow(self, path):
        """Opens a mailed link and presses its one button (confirm, accept)."""
        page = self.get(path)
        assert page.status_code == 200, f"{path}: {page.status_code} {page.text[:300]}"
        return self.post(path, {"_csrf": CSRF_RE.search(page.text).group(1)})

    def signup(self, org, email, password="correct horse battery", name="Ann Admin"):
        """Signs up AND confirms the address through the link in the real mail: signed in after."""
        n = self.signup_unconfirmed(org, email, password, name)
        r = self.follow(self.stack.mail.link(email, "/confirm/", n))
        assert r.status_code == 303 and r.headers["Location"] == "/", f"confirmation failed: {r.status_code} {r.text[:500]}"
        return r

    def invite(self, email, role, password="correct horse battery", name="Ivy Invited"):
        """Invites email into this client's organisation; the invitee accepts through the mailed
        link with a new account (name, password). Returns the invitee's signed-in Client."""
        before = len(self.stack.mail.links_to(email, "/invitations/"))
        r = self.post("/members", {"email": email, "display_name": name, "role": role})
        assert r.status_code == 303, f"invitation failed: {r.status_code} {r.text[:500]}"
        link = self.stack.mail.link(email, "/invitations/", before + 1)
        invitee = Client(self.stack)
        page = invitee.get(link)
        assert page.status_code == 200, page.text[:300]
        r = invitee.post(link, {"_csrf": CSRF_RE.search(page.text).group(1), "display_name": name,
                                "password": password})
        assert r.status_code == 303, f"accepting failed: {r.status_code} {r.text[:500]}"
        invitee.email = email
        return invitee

    def signin(self, email, password="correct horse battery"):
        r = self.post("/signin", {"email": email, "password": password})
        assert r.status_code == 303, f"sign-in failed: {r.status_code} {r.text[:500]}"
        return r


def owner_query(s, sql, args=()):
    """sql as the database's owner (past row-level security), in a connection of its own: what the
    operator, or a test setting the scene, does. The rows, if it returns any."""
    conn = psycopg2.connect(s.pg_dsn_owner)
    conn.autocommit = True
    try:
        cur = conn.cursor()
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else []
    finally:
        conn.close()


_counter = [0]


def unique(prefix):
    _counter[0] += 1
    return f"{prefix}{int(time.time() * 1000) % 10**8}{_counter[0]}"


@pytest.fixture
def client(stack):
    return Client(stack)


@pytest.fixture
def admin(stack):
    """A freshly signed-up organisation's admin."""
    c = Client(stack)
    c.org = unique("Org ")
    c.email = unique("admin") + "@example.test"
    c.signup(c.org, c.email)
    return c


@pytest.fixture
def browser():
    """A headless Chromium for one test (tests/integration/browser.py), quit afterwards."""
    from browser import new_browser
    d = new_browser()
    yield d
    d.quit()
