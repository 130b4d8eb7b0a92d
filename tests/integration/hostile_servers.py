"""A hostile tenant's servers, as small programs on loopback: a Kubernetes API server and an
S3 endpoint that answer what an attacker would. They are not doubles of anything Stowage
trusts; they are the attack. Each is started by a test and stopped after it.

HostileAPIServer (HTTPS, its own self-signed certificate in cert_file): the namespace of a
claim list chooses the attack:
  giant    a list page that never stops growing (hundreds of MiB)
  deep     JSON nested a hundred thousand levels
  many     a list page of 5 Mi zeros, "0," each: 10 MiB inflated, 10 KiB gzipped on the wire
  endless  a list whose continue token is new on every page, forever
  repeat   a list whose continue token is always the same
  trickle  a reply that arrives one byte a second
  anything else: one claim "data" bound to PV "pv-<namespace>", whose hostPath is
  hostpaths[namespace] (e.g. "/", "<root>/../../etc").
An exec in any pod is upgraded to a WebSocket (v4.channel.k8s.io) and the pod's name chooses
what follows, for a minute (then the connection is closed, never with the command's status):
  frames   empty continuation frames, 2 bytes each: bytes that never make a message
  pings    empty pings, each asking for a pong
  reset    half a frame, then the connection reset (RST): the client's read fails
PushbackAPIServer (HTTPS): in front of a real API server (each request passed on as it came,
token and all), it refuses every create of a ConfigMap, and the first list_refusals lists of
ConfigMaps, with 429 Too Many Requests and a Retry-After taken in turn from retry_afters (a day,
1e9 seconds, garbage): a server that pushes back and asks to be left alone forever.
HostileS3Server (HTTP): the bucket chooses the attack:
  trickle  a listing that arrives 4 KiB a second, forever (over any low-speed limit)
  endless  a listing truncated forever with the same continuation token
  giant    a listing reply of hundreds of MiB
"""
import base64
import gzip
import hashlib
import http.client
import http.server
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.parse


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Base(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # headers and body leave in two writes: without this, Nagle and delayed ACKs make
        # every kept-alive request wait 40 ms
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype="application/json", encoding=None):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def stream(self, first, chunk, total, ctype="application/json", delay=0.0):
        """A reply with no length, written until total bytes or the client gives up."""
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        sent = 0
        try:
            self.wfile.write(first)
            while sent < total:
                self.wfile.write(chunk)
                self.wfile.flush()
                sent += len(chunk)
                if delay:
                    time.sleep(delay)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        self.server.streams_cut += 1


class _APIHandler(_Base):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        self.server.requests += 1
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/persistentvolumeclaims", url.path)
        if m:
            return self.claims(m.group(1), q)
        m = re.fullmatch(r"/api/v1/namespaces/[^/]+/pods/([^/]+)/exec", url.path)
        if m:
            return self.exec_flood(m.group(1))
        m = re.fullmatch(r"/api/v1/persistentvolumes/pv-([^/]+)", url.path)
        if m and m.group(1) in self.server.hostpaths:
            ns = m.group(1)
            return self.reply(200, json.dumps({
                "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"pv-{ns}"},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                         "hostPath": {"path": self.server.hostpaths[ns]},
                         "claimRef": {"namespace": ns, "name": "data"}},
                "status": {"phase": "Bound"}}))
        if url.path == "/version":
            return self.reply(200, json.dumps({"major": "1", "minor": "33", "gitVersion": "v1.33.0-hostile"}))
        if url.path == "/api/v1/namespaces":  # 10,000 whatever the limit asked (a padded page)
            huge = self.headers.get("Authorization", "").startswith("Bearer huge")  # 600 names of 20 KB
            items = [{"metadata": {"name": f"ns-{i:05d}" + ("x" * 20000 if huge else "")}}
                     for i in range(600 if huge else 10000)]
            return self.reply(200, json.dumps({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {},
                                               "items": items}))
        if re.fullmatch(r"/api/v1/namespaces/[^/]+/pods", url.path):
            return self.reply(200, json.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []}))
        self.reply(404, json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                    "reason": "NotFound", "code": 404, "message": "not here"}))

    def exec_flood(self, pod):
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.send_header("Sec-WebSocket-Protocol", "v4.channel.k8s.io")
        self.end_headers()
        self.close_connection = True
        if pod == "reset":
            self.wfile.write(b"\x82\x7e")
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.request.close()
            return
        chunk = (b"\x89\x00" if pod == "pings" else b"\x00\x00") * 8192
        end = time.monotonic() + 60
        try:
            while time.monotonic() < end:
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        self.server.streams_cut += 1

    def claims(self, ns, q):
        if ns == "giant":
            pad = json.dumps({"metadata": {"name": "x" * 200}}) + ","
            return self.stream(b'{"kind":"PersistentVolumeClaimList","items":[', pad.encode() * 4096, 600 << 20)
        if ns == "deep":
            return self.stream(b'{"kind":"PersistentVolumeClaimList","items":', b"[" * 65536, 100000)
        if ns == "many":
            body = b'{"kind":"PersistentVolumeClaimList","items":[' + b"0," * (5 << 20) + b"0]}"
            return self.reply(200, gzip.compress(body), encoding="gzip")
        if ns == "trickle":
            return self.stream(b'{"kind":"PersistentVolumeClaimList","items":[', b" ", 3600, delay=1.0)
        if ns in ("endless", "repeat"):
            n = int((q.get("continue") or ["t0"])[0][1:])
            token = "t1" if ns == "repeat" else f"t{n + 1}"
            return self.reply(200, json.dumps({"kind": "PersistentVolumeClaimList", "apiVersion": "v1",
                                               "metadata": {"continue": token}, "items": []}))
        claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": "data", "namespace": ns},
                 "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": f"pv-{ns}",
                          "resources": {"requests": {"storage": "1Gi"}}},
                 "status": {"phase": "Bound"}}
        self.reply(200, json.dumps({"kind": "PersistentVolumeClaimList", "apiVersion": "v1",
                                    "metadata": {}, "items": [claim]}))


class _PushbackHandler(_Base):
    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        configmaps = re.fullmatch(r"/api/v1/namespaces/[^/]+/configmaps", urllib.parse.urlsplit(self.path).path)
        with self.server.lock:
            refuse = configmaps and (self.command == "POST" or (self.command == "GET" and self.server.list_refusals > 0))
            if refuse:
                after = self.server.retry_afters[self.server.refused % len(self.server.retry_afters)]
                self.server.refused += 1
                if self.command == "GET":
                    self.server.list_refusals -= 1
        if refuse:
            data = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "TooManyRequests",
                               "code": 429, "message": "too many requests, please try again later"}).encode()
            self.send_response(429)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", after)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        conn = http.client.HTTPSConnection(self.server.upstream_host, self.server.upstream_port,
                                           context=self.server.upstream_ctx, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "accept-encoding")}
        conn.request(self.command, self.path, body=body, headers=headers)
        res = conn.getresponse()
        data = res.read()
        conn.close()
        self.send_response(res.status)
        for k, v in res.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length", "content-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward


class _S3Handler(_Base):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        bucket = url.path.strip("/").split("/")[0]
        self.server.requests += 1
        head = b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>' + bucket.encode() + b"</Name>"
        if bucket == "trickle":
            return self.stream(head, b"<!-- " + b"x" * 4096 + b" -->", 1 << 40, "application/xml", delay=1.0)
        if bucket == "giant":
            return self.stream(head, b"<Contents><Key>" + b"k" * 1000 + b"</Key></Contents>" * 1000,
                               600 << 20, "application/xml")
        if bucket == "endless":
            return self.reply(200, head + b"<IsTruncated>true</IsTruncated>"
                              b"<NextContinuationToken>same</NextContinuationToken></ListBucketResult>",
                              "application/xml")
        self.reply(404, b"<Error><Code>NoSuchBucket</Code><Message>no</Message></Error>", "application/xml")

    do_HEAD = do_GET


class _Running:
    def __init__(self, server):
        self.server = server
        server.requests = 0
        server.streams_cut = 0
        self.port = server.server_address[1]
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()

    def alive(self):
        """The server still answers a new connection."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5):
            return self.thread.is_alive()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _tls_server(tmpdir, stem, handler):
    """An HTTPS server on a free loopback port with a self-signed certificate: (server, cert file)."""
    cert_file, key = os.path.join(tmpdir, f"{stem}.crt"), os.path.join(tmpdir, f"{stem}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert_file, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    server = _Server(("127.0.0.1", 0), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    return server, cert_file


class HostileAPIServer(_Running):
    def __init__(self, tmpdir, hostpaths):
        server, self.cert_file = _tls_server(tmpdir, "hostile-api", _APIHandler)
        server.hostpaths = hostpaths
        super().__init__(server)
        self.url = f"https://127.0.0.1:{self.port}"


class PushbackAPIServer(_Running):
    def __init__(self, tmpdir, upstream_url, upstream_ca_file, retry_afters):
        server, self.cert_file = _tls_server(tmpdir, "pushback-api", _PushbackHandler)
        up = urllib.parse.urlsplit(upstream_url)
        server.upstream_host, server.upstream_port = up.hostname, up.port
        server.upstream_ctx = ssl.create_default_context(cafile=upstream_ca_file)
        server.retry_afters = retry_afters
        server.refused = 0
        server.list_refusals = 0
        server.lock = threading.Lock()
        super().__init__(server)
        self.url = f"https://127.0.0.1:{self.port}"


class HostileS3Server(_Running):
    def __init__(self):
        super().__init__(_Server(("127.0.0.1", 0), _S3Handler))
        self.url = f"http://127.0.0.1:{self.port}"
