#include "k8s_exec.h"
#include "http_error.h"
#include "http_retry.h"
#include "strbuf.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EXEC_HEADERS_MAX 16384
#define EXEC_STATUS_MAX 65536
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { CHANNEL_STDOUT = 1, CHANNEL_STDERR = 2, CHANNEL_ERROR = 3 };

/* ---- frames ---- */

size_t ws_frame_encode(int opcode, const void *payload, size_t len, const uint8_t mask[4], uint8_t *out)
{
	const uint8_t *p = payload;
	size_t n = 0;

	out[n++] = (uint8_t)(0x80 | (opcode & 0x0f));
	if (len < 126) {
		out[n++] = (uint8_t)(0x80 | len);
	} else if (len <= 0xffff) {
		out[n++] = 0x80 | 126;
		out[n++] = (uint8_t)(len >> 8);
		out[n++] = (uint8_t)len;
	} else {
		out[n++] = 0x80 | 127;
		for (int shift = 56; shift >= 0; shift -= 8)
			out[n++] = (uint8_t)((uint64_t)len >> shift);
	}
	memcpy(out + n, mask, 4);
	n += 4;
	for (size_t i = 0; i < len; i++)
		out[n + i] = p[i] ^ mask[i % 4];
	return n + len;
}

long ws_frame_decode(uint8_t *buf, size_t len, struct ws_frame *f, const char **why)
{
	size_t need = 2, plen;
	int masked;

	if (len < 2)
		return 0;
	if (buf[0] & 0x70) {
		*why = "reserved bits set in a WebSocket frame";
		return -1;
	}
	masked = buf[1] & 0x80;
	plen = buf[1] & 0x7f;
	if (plen == 126) {
		need += 2;
		if (len < need)
			return 0;
		plen = (size_t)buf[2] << 8 | buf[3];
	} else if (plen == 127) {
		uint64_t v = 0;

		need += 8;
		if (len < need)
			return 0;
		for (int i = 0; i < 8; i++)
			v = v << 8 | buf[2 + i];
		if (v > WS_MAX_PAYLOAD) {
			*why = "a WebSocket frame larger than 4 MiB";
			return -1;
		}
		plen = (size_t)v;
	}
	if (plen > WS_MAX_PAYLOAD) {
		*why = "a WebSocket frame larger than 4 MiB";
		return -1;
	}
	if (masked)
		need += 4;
	if (len < need + plen)
		return 0;
	f->fin = !!(buf[0] & 0x80);
	f->opcode = buf[0] & 0x0f;
	f->payload = buf + need;
	f->len = plen;
	if ((f->opcode & 0x08) && (plen > 125 || !f->fin)) {
		*why = "a fragmented or oversized WebSocket control frame";
		return -1;
	}
	if (masked)
		for (size_t i = 0; i < plen; i++)
			buf[need + i] ^= buf[need - 4 + i % 4];
	return (long)(need + plen);
}

/* ---- the final status ---- */

int k8s_exec_status_code(const char *json, size_t len, char *message, size_t msglen)
{
	cJSON *st = cJSON_ParseWithLength(json, len), *cause;
	const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "status"));
	const char *reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "reason"));
	const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "message"));
	int code = -1;

	snprintf(message, msglen, "%s", msg ? msg : st ? "the command failed without a message" :
		 "the command's status is not JSON");
	if (status && strcmp(status, "Success") == 0) {
		code = 0;
	} else if (reason && strcmp(reason, "InternalError") == 0 && msg) {
		/* A runtime that passes on Go's os/exec error instead of the ExitCode cause (kwok's
		 * local exec does): "...: exit status 3". */
		const char *tail = strstr(msg, "exit status ");
		char *end;
		long v;

		while (tail && strstr(tail + 1, "exit status "))
			tail = strstr(tail + 1, "exit status ");
		v = tail ? strtol(tail + 12, &end, 10) : -1;
		if (tail && end != tail + 12 && !*end && v >= 0 && v <= 255)
			code = (int)v;
	} else if (reason && strcmp(reason, "NonZeroExitCode") == 0) {
		cJSON_ArrayForEach(cause, cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(st, "details"), "causes")) {
			const char *r = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cause, "reason"));
			const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cause, "message"));
			char *end;
			long v;

			if (!r || strcmp(r, "ExitCode") != 0 || !m)
				continue;
			v = strtol(m, &end, 10);
			if (end != m && !*end && v >= 0 && v <= 255)
				code = (int)v;
		}
	}
	cJSON_Delete(st);
	return code;
}

/* ---- the connection ---- */

struct exec_conn {
	CURL *h;
	curl_socket_t fd;
	long deadline;
	struct k8s_error *err;
	char errbuf[CURL_ERROR_SIZE];	/* curl writes here on any failure of h: as long-lived as h */
};

static void exec_fail(struct exec_conn *x, const char *reason, const char *message)
{
	memset(x->err, 0, sizeof *x->err);
	snprintf(x->err->reason, sizeof x->err->reason, "%s", reason);
	snprintf(x->err->message, sizeof x->err->message, "%s", message);
}

static int exec_timeout(struct exec_conn *x)
{
	exec_fail(x, "Timeout", "the command did not finish within its time limit");
	return -1;
}

/* Waits until the socket is ready for events; -1 (with err) when the deadline passed. */
static int exec_wait(struct exec_conn *x, short events)
{
	for (;;) {
		long left = x->deadline - http_retry_now_ms();
		struct pollfd p = { .fd = x->fd, .events = events };
		int rc;

		if (left <= 0)
			return exec_timeout(x);
		rc = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
		if (rc > 0)
			return 0;
	}
}

static int exec_send(struct exec_conn *x, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		size_t sent = 0;
		CURLcode cc = curl_easy_send(x->h, p, len, &sent);

		if (cc == CURLE_AGAIN) {
			if (exec_wait(x, POLLOUT) < 0)
				return -1;
			continue;
		}
		if (cc != CURLE_OK) {
			exec_fail(x, "ConnectionLost", curl_easy_strerror(cc));
			return -1;
		}
		p += sent;
		len -= sent;
	}
	return 0;
}

/* Reads what is there (at least one byte); 0 at the end of the stream, -1 on failure. Every
 * loop reading the server comes here, so a server that never stops sending (empty frames,
 * pings, a header or body without end) meets the deadline too, not only a silent one. */
static long exec_recv(struct exec_conn *x, void *buf, size_t len)
{
	for (;;) {
		size_t got = 0;
		CURLcode cc;

		if (http_retry_now_ms() >= x->deadline)
			return exec_timeout(x);
		cc = curl_easy_recv(x->h, buf, len, &got);

		if (cc == CURLE_AGAIN) {
			if (exec_wait(x, POLLIN) < 0)
				return -1;
			continue;
		}
		if (cc != CURLE_OK) {
			exec_fail(x, "ConnectionLost", curl_easy_strerror(cc));
			return -1;
		}
		return (long)got;
	}
}

static int exec_connect(struct exec_conn *x, struct k8s_client *c, const char **api_url, const char **auth)
{
	long timeout = x->deadline - http_retry_now_ms();
	CURLcode cc;

	if (timeout <= 0) {
		exec_fail(x, "Timeout", "no time left to start the command");
		return -1;
	}
	x->h = curl_easy_init();
	*api_url = k8s_client_raw_setup(c, x->h, auth);
	curl_easy_setopt(x->h, CURLOPT_URL, *api_url);
	curl_easy_setopt(x->h, CURLOPT_CONNECT_ONLY, 1L);
	/* ALPN must not offer h2: the upgrade is HTTP/1.1's. */
	curl_easy_setopt(x->h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, timeout);
	cc = curl_easy_perform(x->h);
	if (cc != CURLE_OK) {
		memset(x->err, 0, sizeof *x->err);
		x->err->curl_code = cc;
		http_error_curl_words(cc, *api_url, x->errbuf, timeout, x->err->message, sizeof x->err->message);
		return -1;
	}
	if (curl_easy_getinfo(x->h, CURLINFO_ACTIVESOCKET, &x->fd) != CURLE_OK || x->fd == CURL_SOCKET_BAD) {
		exec_fail(x, "ConnectionLost", "no socket after connecting");
		return -1;
	}
	return 0;
}

/* The request line and headers of the upgrade. */
static void exec_request(struct strbuf *req, const char *api_url, const char *auth, const char *ns,
			 const char *pod, const char *container, const char *const *argv, size_t argc,
			 const char *key)
{
	char *path = k8s_resource_path("", "v1", "pods", ns, pod);
	const char *host = strstr(api_url, "://");

	host = host ? host + 3 : api_url;
	strbuf_addf(req, "GET %s/exec?stdout=true&stderr=true", path);
	for (size_t i = 0; i < argc; i++) {
		char *e = curl_easy_escape(NULL, argv[i], 0);

		strbuf_addf(req, "&command=%s", e);
		curl_free(e);
	}
	if (container && *container) {
		char *e = curl_easy_escape(NULL, container, 0);

		strbuf_addf(req, "&container=%s", e);
		curl_free(e);
	}
	strbuf_addf(req, " HTTP/1.1\r\nHost: %.*s\r\n%s\r\n", (int)strcspn(host, "/"), host, auth);
	strbuf_addf(req, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
		    "Sec-WebSocket-Key: %s\r\n"
		    "Sec-WebSocket-Protocol: v5.channel.k8s.io, v4.channel.k8s.io\r\n\r\n", key);
	free(path);
}

/* The value of header name in the header block hdr (NUL-terminated), copied into out. */
static int exec_header(const char *hdr, const char *name, char *out, size_t outlen)
{
	size_t n = strlen(name);

	for (const char *p = strstr(hdr, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
		const char *v = p + 2;
		size_t vlen;

		if (strncasecmp(v, name, n) != 0 || v[n] != ':')
			continue;
		v += n + 1;
		v += strspn(v, " \t");
		vlen = strcspn(v, "\r\n");
		while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
		snprintf(out, outlen, "%.*s", (int)vlen, v);
		return 0;
	}
	return -1;
}

/* A refused upgrade: the Status the API server answered with (the body may follow). */
static void exec_refused(struct exec_conn *x, struct strbuf *in, size_t hdr_len, int status)
{
	char buf[4096], cl[32];
	size_t want = EXEC_STATUS_MAX;
	cJSON *st;
	const char *reason, *message;

	if (exec_header(in->buf, "Content-Length", cl, sizeof cl) == 0 && strtoul(cl, NULL, 10) < want)
		want = strtoul(cl, NULL, 10);
	while (in->len - hdr_len < want) {
		long got = exec_recv(x, buf, sizeof buf);

		if (got <= 0)
			break;
		strbuf_add(in, buf, (size_t)got);
	}
	st = cJSON_ParseWithLength(in->buf + hdr_len, in->len - hdr_len);
	reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "reason"));
	message = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "message"));
	memset(x->err, 0, sizeof *x->err);
	x->err->http_status = status;
	snprintf(x->err->reason, sizeof x->err->reason, "%s", reason ? reason :
		 status == 401 ? "Unauthorized" : status == 403 ? "Forbidden" : status == 404 ? "NotFound" : "BadRequest");
	snprintf(x->err->message, sizeof x->err->message, "%s", message ? message : "the API server refused the exec request");
	cJSON_Delete(st);
}

/* Sends the upgrade and checks the answer; what followed the headers stays in in. */
static int exec_upgrade(struct exec_conn *x, struct strbuf *req, struct strbuf *in, const char *key)
{
	unsigned char digest[SHA_DIGEST_LENGTH];
	char want[64], got_accept[64], proto[64];
	struct strbuf k = STRBUF_INIT;
	char *end;
	size_t hdr_len;
	int status;

	if (exec_send(x, req->buf, req->len) < 0)
		return -1;
	while (!(end = strstr(in->buf ? in->buf : "", "\r\n\r\n"))) {
		char buf[4096];
		long got;

		if (in->len > EXEC_HEADERS_MAX) {
			exec_fail(x, "MalformedReply", "the API server's upgrade answer has headers over 16 KiB");
			return -1;
		}
		got = exec_recv(x, buf, sizeof buf);
		if (got < 0)
			return -1;
		if (got == 0) {
			exec_fail(x, "ConnectionLost", "the API server closed the connection before answering");
			return -1;
		}
		strbuf_add(in, buf, (size_t)got);
	}
	hdr_len = (size_t)(end - in->buf) + 4;
	if (sscanf(in->buf, "HTTP/1.%*d %d", &status) != 1) {
		exec_fail(x, "MalformedReply", "the API server's answer is not HTTP");
		return -1;
	}
	if (status != 101) {
		end[2] = '\0';	/* headers only, for exec_header */
		exec_refused(x, in, hdr_len, status);
		return -1;
	}
	strbuf_addf(&k, "%s%s", key, WS_GUID);
	SHA1((const unsigned char *)k.buf, k.len, digest);
	strbuf_release(&k);
	EVP_EncodeBlock((unsigned char *)want, digest, sizeof digest);
	end[2] = '\0';
	if (exec_header(in->buf, "Sec-WebSocket-Accept", got_accept, sizeof got_accept) < 0 ||
	    strcmp(got_accept, want) != 0) {
		exec_fail(x, "MalformedReply", "the API server's WebSocket accept key does not match ours");
		return -1;
	}
	if (exec_header(in->buf, "Sec-WebSocket-Protocol", proto, sizeof proto) < 0 ||
	    (strcmp(proto, "v4.channel.k8s.io") != 0 && strcmp(proto, "v5.channel.k8s.io") != 0)) {
		exec_fail(x, "MalformedReply", "the API server chose no exec protocol we speak (v4 or v5.channel.k8s.io)");
		return -1;
	}
	memmove(in->buf, in->buf + hdr_len, in->len - hdr_len);
	in->len -= hdr_len;
	in->buf[in->len] = '\0';
	return 0;
}

static void exec_append(char **buf, size_t *len, const uint8_t *data, size_t n, size_t max, int *truncated)
{
	size_t room = max - *len;

	if (n > room) {
		*truncated = 1;
		n = room;
	}
	if (!n)
		return;
	*buf = xrealloc(*buf, *len + n + 1);
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
}

static int exec_send_control(struct exec_conn *x, int opcode, const uint8_t *payload, size_t len)
{
	uint8_t frame[WS_MAX_HEADER + 125], mask[4];

	RAND_bytes(mask, sizeof mask);
	return exec_send(x, frame, ws_frame_encode(opcode, payload, len, mask, frame));
}

/* Reads frames until the server closes the stream; the status goes into status. */
static int exec_stream(struct exec_conn *x, struct strbuf *in, size_t output_max,
		       struct k8s_exec_result *out, struct strbuf *status)
{
	int channel = 0;
	size_t pos = 0;		/* frames before it are handled; the bytes are dropped before a read */

	for (;;) {
		struct ws_frame f;
		const char *why = NULL;
		long used = ws_frame_decode((uint8_t *)in->buf + pos, in->len - pos, &f, &why);
		const uint8_t *data;
		size_t n;

		if (used < 0) {
			exec_fail(x, "MalformedReply", why);
			return -1;
		}
		if (used == 0) {
			char buf[16384];
			long got;

			/* once per read, not per frame: a read of 16 KiB can hold 8192 empty frames */
			memmove(in->buf, in->buf + pos, in->len - pos);
			in->len -= pos;
			pos = 0;
			got = exec_recv(x, buf, sizeof buf);

			if (got < 0)
				return -1;
			if (got == 0)
				return 0;	/* closed without a close frame: what we have is all */
			strbuf_add(in, buf, (size_t)got);
			continue;
		}
		data = f.payload;
		n = f.len;
		if (f.opcode == WS_CLOSE) {
			/* the answer is whole: a server already gone cannot take our close, and that
			 * changes nothing of it */
			if (exec_send_control(x, WS_CLOSE, f.payload, f.len < 2 ? f.len : 2) < 0)
				memset(x->err, 0, sizeof *x->err);
			return 0;
		}
		if (f.opcode == WS_PING && exec_send_control(x, WS_PONG, f.payload, f.len) < 0)
			return -1;
		if (f.opcode == WS_BINARY || f.opcode == WS_TEXT) {
			channel = n ? data[0] : 0;
			data++;
			n = n ? n - 1 : 0;
		}
		if (f.opcode == WS_BINARY || f.opcode == WS_TEXT || f.opcode == WS_CONTINUATION) {
			if (channel == CHANNEL_STDOUT)
				exec_append(&out->out, &out->out_len, data, n, output_max, &out->truncated);
			else if (channel == CHANNEL_STDERR)
				exec_append(&out->err, &out->err_len, data, n, output_max, &out->truncated);
			else if (channel == CHANNEL_ERROR && status->len + n <= EXEC_STATUS_MAX)
				strbuf_add(status, data, n);
		}
		pos += (size_t)used;
	}
}

int k8s_exec(struct k8s_client *c, const char *ns, const char *pod, const char *container,
	     const char *const *argv, size_t argc, long timeout_ms, size_t output_max,
	     struct k8s_exec_result *out, struct k8s_error *err)
{
	struct exec_conn x = { .deadline = http_retry_now_ms() + timeout_ms, .err = err };
	long client_deadline = k8s_client_deadline(c);
	struct strbuf req = STRBUF_INIT, in = STRBUF_INIT, status = STRBUF_INIT;
	unsigned char nonce[16];
	char key[32], message[512];
	const char *api_url, *auth;
	int rc = -1;

	memset(out, 0, sizeof *out);
	memset(err, 0, sizeof *err);
	out->exit_code = -1;
	out->out = xstrdup("");
	out->err = xstrdup("");
	if (argc == 0) {
		exec_fail(&x, "Invalid", "exec needs a command");
		return -1;
	}
	/* within the client's deadline too: a hook's call ends with the hook's time */
	if (client_deadline && client_deadline < x.deadline)
		x.deadline = client_deadline;
	RAND_bytes(nonce, sizeof nonce);
	EVP_EncodeBlock((unsigned char *)key, nonce, sizeof nonce);
	if (exec_connect(&x, c, &api_url, &auth) == 0) {
		exec_request(&req, api_url, auth, ns, pod, container, argv, argc, key);
		strbuf_addstr(&in, "");
		if (exec_upgrade(&x, &req, &in, key) == 0 && exec_stream(&x, &in, output_max, out, &status) == 0)
			rc = 0;
	}
	if (req.buf)
		memset(req.buf, 0, req.len);	/* it holds the token */
	if (rc == 0) {
		out->exit_code = k8s_exec_status_code(status.buf ? status.buf : "", status.len, message, sizeof message);
		if (status.len == 0)
			snprintf(message, sizeof message, "the exec stream ended without the command's status");
		if (out->exit_code < 0) {
			exec_fail(&x, "ExecFailed", message);
			rc = -1;
		}
	}
	curl_easy_cleanup(x.h);
	strbuf_release(&req);
	strbuf_release(&in);
	strbuf_release(&status);
	return rc;
}

void k8s_exec_result_free(struct k8s_exec_result *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof *r);
}
