#include "s3_client.h"
#include "http_error.h"
#include "http_retry.h"
#include "s3_xml.h"
#include "sigv4.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S3_REPLY_MAX (8L << 20)		/* an XML reply (listing, error) larger than this is refused */
#define S3_KEY_MAX 1024
/* A hostile endpoint that trickles bytes defeats a low-speed limit alone: every request also
 * has a total deadline, and a listing a number of pages. */
#define S3_OPERATION_MAX_MS (15L * 60 * 1000)	/* one request, whatever it carries */
#define S3_LOW_SPEED_BYTES 1024L		/* per second, averaged over the client's timeout */
#define S3_LIST_PAGES_MAX 20000			/* at 1000 keys a page: twenty million objects */
#define S3_RECV_BUFFER (512L << 10)

struct s3_client {
	char *bucket, *region, *access_key, *secret_key, *ca_pem;
	char *endpoint;		/* as configured; "" = AWS */
	int path_style;
	char *origin;		/* "https://host[:port]" */
	char *host;		/* Host header: "host[:port]" */
	char *path_prefix;	/* "/bucket" (path style) or "" */
	long timeout_ms;
	long op_timeout_ms;		/* total deadline of one request */
	struct curl_slist *resolve;
	CURL *curl;
};

/* One request. Exactly one sink receives a 2xx body: mem (up to mem_cap), write, or the
 * reply buffer (XML). */
struct s3_req {
	const char *method;
	const char *key;			/* NULL: the bucket */
	const struct sigv4_pair *query;
	size_t nquery;
	const void *body;
	size_t body_len;
	const char *range;
	const char *if_match;			/* an ETag: the object must still be that one */
	struct strbuf *mem;
	size_t mem_cap;
	s3_write_fn write;
	void *write_ud;
	int check_md5;				/* compare a whole-object body with its ETag */
	const char *body_sha256;		/* the body's SHA-256 in hex, if the caller has it */
};

struct s3_resp {
	CURL *curl;
	const struct s3_req *req;
	long status;
	char etag[128];
	char sse[64];
	char last_modified[64];
	char retry_after[64];
	int64_t content_length;
	struct strbuf reply;			/* XML reply, or an error body */
	int64_t delivered;
	int too_big, stopped;
	EVP_MD_CTX *md5;
};

static void s3_set_error(struct s3_error *err, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Keeps err->bucket: the words of NoSuchBucket name it. */
static void s3_set_error(struct s3_error *err, const char *code, const char *fmt, ...)
{
	char bucket[sizeof err->bucket];
	va_list ap;

	memcpy(bucket, err->bucket, sizeof bucket);
	memset(err, 0, sizeof *err);
	memcpy(err->bucket, bucket, sizeof bucket);
	snprintf(err->code, sizeof err->code, "%s", code);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
}

static int s3_bucket_name_valid(const char *b)
{
	size_t n = b ? strlen(b) : 0;

	if (n < 3 || n > 63)
		return 0;
	for (const char *p = b; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
		      (*p >= 'A' && *p <= 'Z') || *p == '_'))
			return 0;
	return 1;
}

static int s3_conf_check(const struct s3_conf *conf, char *err, size_t errlen)
{
	if (!s3_bucket_name_valid(conf->bucket)) {
		snprintf(err, errlen, "bucket: must be 3 to 63 letters, digits, '.', '-' or '_'");
		return -1;
	}
	if (!conf->access_key || !*conf->access_key) {
		snprintf(err, errlen, "access key: required");
		return -1;
	}
	if (!conf->secret_key || !*conf->secret_key) {
		snprintf(err, errlen, "secret key: required");
		return -1;
	}
	if (conf->region && (!*conf->region || strlen(conf->region) > 64 ||
			     strspn(conf->region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(conf->region))) {
		snprintf(err, errlen, "region: must be lower-case letters, digits and '-', like eu-west-1");
		return -1;
	}
	if (conf->timeout_ms < 0) {
		snprintf(err, errlen, "timeout: must not be negative");
		return -1;
	}
	return 0;
}

/* Splits the endpoint into origin and Host header; virtual-hosted style prefixes the bucket. */
static int s3_client_endpoint(struct s3_client *c, const char *endpoint, int path_style,
			      char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	struct strbuf sb = STRBUF_INIT;
	int rc = -1;

	if (curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		snprintf(err, errlen, "endpoint: \"%.200s\" is not a URL like https://s3.example.com", endpoint);
		goto out;
	}
	if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
		snprintf(err, errlen, "endpoint: scheme must be https or http, not \"%s\"", scheme);
		goto out;
	}
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	if (path && strcmp(path, "/") != 0 && *path) {
		snprintf(err, errlen, "endpoint: must not have a path (\"%s\"); give the bucket separately", path);
		goto out;
	}
	curl_url_get(u, CURLUPART_PORT, &port, 0);
	if (!path_style)
		strbuf_addf(&sb, "%s.", c->bucket);
	strbuf_addf(&sb, "%s", host);
	if (port)
		strbuf_addf(&sb, ":%s", port);
	c->host = strbuf_take(&sb);
	strbuf_addf(&sb, "%s://%s", scheme, c->host);
	c->origin = strbuf_take(&sb);
	if (path_style)
		strbuf_addf(&sb, "/%s", c->bucket);
	else
		strbuf_addstr(&sb, "");
	c->path_prefix = strbuf_take(&sb);
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
	return rc;
}

struct s3_client *s3_client_new(const struct s3_conf *conf, const struct net_allow *allow,
				char *err, size_t errlen)
{
	struct s3_client *c;
	char *endpoint;
	char pin[NET_ALLOW_RESOLVE_MAX];

	if (s3_conf_check(conf, err, errlen) < 0)
		return NULL;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	c = xcalloc(1, sizeof *c);
	c->bucket = xstrdup(conf->bucket);
	c->region = xstrdup(conf->region ? conf->region : "us-east-1");
	c->access_key = xstrdup(conf->access_key);
	c->secret_key = xstrdup(conf->secret_key);
	c->ca_pem = conf->ca_pem ? xstrdup(conf->ca_pem) : NULL;
	c->timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms : 30000;
	c->op_timeout_ms = conf->op_timeout_ms > 0 ? conf->op_timeout_ms : S3_OPERATION_MAX_MS;
	c->endpoint = xstrdup(conf->endpoint ? conf->endpoint : "");
	c->path_style = conf->path_style;
	if (conf->endpoint && *conf->endpoint) {
		endpoint = xstrdup(conf->endpoint);
	} else {
		struct strbuf sb = STRBUF_INIT;

		strbuf_addf(&sb, "https://s3.%s.amazonaws.com", c->region);
		endpoint = strbuf_take(&sb);
	}
	if (s3_client_endpoint(c, endpoint, conf->path_style, err, errlen) < 0)
		goto fail;
	if (allow) {
		if (net_allow_check_url(allow, c->origin, pin, sizeof pin, err, errlen) < 0)
			goto fail;
		if (*pin)
			c->resolve = curl_slist_append(NULL, pin);
	} else if (conf->resolve && *conf->resolve) {
		c->resolve = curl_slist_append(NULL, conf->resolve);
	}
	c->curl = curl_easy_init();
	free(endpoint);
	return c;
fail:
	free(endpoint);
	s3_client_free(c);
	return NULL;
}

static void s3_free_secret(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

void s3_client_free(struct s3_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->resolve);
	free(c->bucket);
	free(c->region);
	free(c->access_key);
	s3_free_secret(c->secret_key);
	free(c->ca_pem);
	free(c->endpoint);
	free(c->origin);
	free(c->host);
	free(c->path_prefix);
	free(c);
}

void s3_client_conf(const struct s3_client *c, struct s3_conf *out)
{
	memset(out, 0, sizeof *out);
	out->endpoint = *c->endpoint ? c->endpoint : NULL;
	out->region = c->region;
	out->bucket = c->bucket;
	out->access_key = c->access_key;
	out->secret_key = c->secret_key;
	out->path_style = c->path_style;
	out->timeout_ms = c->timeout_ms;
	out->op_timeout_ms = c->op_timeout_ms;
	out->ca_pem = c->ca_pem;
	out->resolve = c->resolve ? c->resolve->data : NULL;
}

/* ---- one HTTP exchange ---- */

static size_t s3_on_header(char *data, size_t size, size_t n, void *ud)
{
	struct s3_resp *r = ud;
	size_t len = size * n, vlen;
	const char *colon = memchr(data, ':', len), *v;
	static const struct { const char *name; size_t off, cap; } want[] = {
		{ "etag", offsetof(struct s3_resp, etag), sizeof ((struct s3_resp *)0)->etag },
		{ "x-amz-server-side-encryption", offsetof(struct s3_resp, sse), sizeof ((struct s3_resp *)0)->sse },
		{ "last-modified", offsetof(struct s3_resp, last_modified), sizeof ((struct s3_resp *)0)->last_modified },
		{ "retry-after", offsetof(struct s3_resp, retry_after), sizeof ((struct s3_resp *)0)->retry_after },
	};

	if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		/* A new response (after a 100 Continue or a redirect): forget the previous one. */
		r->etag[0] = r->sse[0] = r->last_modified[0] = r->retry_after[0] = '\0';
		return len;
	}
	if (!colon)
		return len;
	v = colon + 1;
	while (v < data + len && (*v == ' ' || *v == '\t'))
		v++;
	vlen = (size_t)(data + len - v);
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
		vlen--;
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		if ((size_t)(colon - data) != strlen(want[i].name) || strncasecmp(data, want[i].name, strlen(want[i].name)))
			continue;
		if (vlen < want[i].cap) {
			memcpy((char *)r + want[i].off, v, vlen);
			((char *)r + want[i].off)[vlen] = '\0';
		}
	}
	return len;
}

static size_t s3_on_body(char *data, size_t size, size_t n, void *ud)
{
	struct s3_resp *r = ud;
	const struct s3_req *q = r->req;
	size_t len = size * n;
	long status = 0;

	curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299 || (!q->mem && !q->write)) {
		if (r->reply.len + len > (size_t)S3_REPLY_MAX) {
			r->too_big = 1;
			return 0;
		}
		strbuf_add(&r->reply, data, len);
		return len;
	}
	if (r->md5)
		EVP_DigestUpdate(r->md5, data, len);
	r->delivered += (int64_t)len;
	if (q->mem) {
		if (q->mem->len + len > q->mem_cap) {
			r->too_big = 1;
			return 0;
		}
		strbuf_add(q->mem, data, len);
		return len;
	}
	if (q->write(data, len, q->write_ud) != 0) {
		r->stopped = 1;
		return 0;
	}
	return len;
}

static void s3_url(const struct s3_client *c, const struct s3_req *q, struct strbuf *path, struct strbuf *url)
{
	strbuf_addstr(path, c->path_prefix);
	if (q->key || !*c->path_prefix)
		strbuf_addch(path, '/');
	if (q->key)
		strbuf_addstr(path, q->key);
	strbuf_addstr(url, c->origin);
	sigv4_uri_encode(url, path->buf, path->len, 1);
	for (size_t i = 0; i < q->nquery; i++) {
		const char *v = q->query[i].value;

		strbuf_addch(url, i ? '&' : '?');
		sigv4_uri_encode(url, q->query[i].name, strlen(q->query[i].name), 0);
		strbuf_addch(url, '=');
		if (v)
			sigv4_uri_encode(url, v, strlen(v), 0);
	}
}

/* Signs and builds the header list of one attempt. The payload is named by its SHA-256, which
 * the server checks against the bytes it receives (S3 and MinIO refuse a mismatch with
 * XAmzContentSHA256Mismatch): that is the end-to-end check of every upload, so no Content-MD5
 * is sent beside it (computing one cost more CPU than the SHA-256 and the copies together). */
static struct curl_slist *s3_headers(const struct s3_client *c, const struct s3_req *q, const char *path,
				     const char *payload_hash, struct s3_error *err)
{
	struct sigv4_pair h[5];
	size_t nh = 0;
	char date[17];
	struct sigv4_signature sig;
	struct curl_slist *list = NULL;
	struct strbuf line = STRBUF_INIT;

	sigv4_amz_date(time(NULL), date);
	h[nh++] = (struct sigv4_pair){ "host", c->host };
	h[nh++] = (struct sigv4_pair){ "x-amz-content-sha256", payload_hash };
	h[nh++] = (struct sigv4_pair){ "x-amz-date", date };
	if (q->range)
		h[nh++] = (struct sigv4_pair){ "range", q->range };
	if (q->if_match)
		h[nh++] = (struct sigv4_pair){ "if-match", q->if_match };
	struct sigv4_request sr = {
		.method = q->method, .path = path, .query = q->query, .nquery = q->nquery,
		.headers = h, .nheaders = nh, .payload_sha256 = payload_hash, .amz_date = date,
		.region = c->region, .service = "s3", .access_key = c->access_key, .secret_key = c->secret_key,
	};
	if (sigv4_sign(&sr, &sig) < 0) {
		s3_set_error(err, "Local", "%s", "cannot sign the request");
		return NULL;
	}
	for (size_t i = 0; i < nh; i++) {
		strbuf_reset(&line);
		strbuf_addf(&line, "%s: %s", h[i].name, h[i].value);
		list = curl_slist_append(list, line.buf);
	}
	strbuf_reset(&line);
	strbuf_addf(&line, "Authorization: %s", sig.authorization);
	list = curl_slist_append(list, line.buf);
	list = curl_slist_append(list, "Expect:");
	list = curl_slist_append(list, "Content-Type: application/octet-stream");
	strbuf_release(&line);
	sigv4_signature_free(&sig);
	return list;
}

static void s3_setup(const struct s3_client *c, CURL *h, const struct s3_req *q, const char *url,
		     struct curl_slist *headers, struct s3_resp *r, char *errbuf)
{
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->op_timeout_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, S3_LOW_SPEED_BYTES);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (c->timeout_ms + 999) / 1000);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, s3_on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s3_on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	net_allow_pin(h, c->resolve, c->ca_pem);
	if (q->range)	/* a part of a large object: fewer, larger reads than curl's 16 KiB */
		curl_easy_setopt(h, CURLOPT_BUFFERSIZE, S3_RECV_BUFFER);
	if (strcmp(q->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(q->method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body ? q->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
	}
}

struct s3_error_fields {
	struct s3_error *err;
	int is_error;
};

static int s3_error_field(const char *path, const char *text, void *ud)
{
	struct s3_error_fields *f = ud;

	if (strcmp(path, "Error/Code") == 0)
		snprintf(f->err->code, sizeof f->err->code, "%s", text);
	else if (strcmp(path, "Error/Message") == 0)
		snprintf(f->err->message, sizeof f->err->message, "%s", text);
	else if (strcmp(path, "Error") == 0)
		f->is_error = 1;
	return 0;
}

/* Fills err from an error reply; a reply without a body (HEAD) gets a code from its status. */
static void s3_error_from_reply(const struct s3_resp *r, struct s3_error *err)
{
	struct s3_error_fields f = { err, 0 };
	char xmlerr[128];

	s3_set_error(err, "", "%s", "");
	err->http_status = r->status;
	if (r->reply.len)
		s3_xml_walk(r->reply.buf, r->reply.len, s3_error_field, &f, xmlerr, sizeof xmlerr);
	if (*err->code)
		return;
	snprintf(err->code, sizeof err->code, "%s",
		 r->status == 404 ? "NotFound" : r->status == 403 ? "AccessDenied" :
		 r->status == 301 ? "PermanentRedirect" : r->status == 503 ? "SlowDown" : "HttpError");
	snprintf(err->message, sizeof err->message, "HTTP status %ld", r->status);
}

/* 0 when a 200 reply carries an <Error> (CompleteMultipartUpload may do that). */
static int s3_reply_is_error(const struct s3_resp *r, struct s3_error *err)
{
	struct s3_error_fields f = { err, 0 };
	char xmlerr[128];

	if (!r->reply.len || !strstr(r->reply.buf, "<Error>"))
		return 0;
	s3_xml_walk(r->reply.buf, r->reply.len, s3_error_field, &f, xmlerr, sizeof xmlerr);
	if (f.is_error)
		err->http_status = r->status;
	return f.is_error;
}

static int s3_retryable(const struct s3_resp *r, int curl_code, const struct s3_error *err)
{
	if (curl_code != CURLE_OK)
		return !r->stopped && !r->too_big && http_retry_curl(curl_code, 1);
	return http_retry_status(r->status) || strcmp(err->code, "SlowDown") == 0 ||
	       strcmp(err->code, "RequestTimeout") == 0 || strcmp(err->code, "InternalError") == 0;
}

static int s3_md5_matches_etag(struct s3_resp *r)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[33];
	const char *e = r->etag;
	size_t n = strlen(e);

	if (n >= 2 && e[0] == '"' && e[n - 1] == '"') {
		e++;
		n -= 2;
	}
	/* A multipart ETag ("...-3") or an SSE-KMS/SSE-C object's is not the MD5. */
	if (n != 32 || strspn(e, "0123456789abcdef") != 32 || (r->sse[0] && strcmp(r->sse, "AES256") != 0))
		return 1;
	EVP_DigestFinal_ex(r->md5, md, &mdlen);
	sigv4_hex(md, 16, hex);
	return memcmp(hex, e, 32) == 0;
}

/* Sends q on handle h until it succeeds, fails for good, or the retry budget is spent.
 * r->reply keeps the XML reply of a success. */
static int s3_perform(const struct s3_client *c, CURL *h, const struct s3_req *q, struct s3_resp *r,
		      struct s3_error *err)
{
	struct strbuf path = STRBUF_INIT, url = STRBUF_INIT;
	char payload_hash[65], errbuf[CURL_ERROR_SIZE];
	long start = http_retry_now_ms();
	int rc = -1;

	if (q->key && (!*q->key || strlen(q->key) > S3_KEY_MAX)) {
		s3_set_error(err, "InvalidKey", "object key must be 1 to 1024 bytes");
		return -1;
	}
	s3_url(c, q, &path, &url);
	if (q->body_sha256 && strlen(q->body_sha256) == 64)
		memcpy(payload_hash, q->body_sha256, 65);
	else
		sigv4_sha256_hex(q->body ? q->body : "", q->body_len, payload_hash);
	for (int attempt = 1;; attempt++) {
		struct curl_slist *headers = s3_headers(c, q, path.buf, payload_hash, err);
		CURLcode cc;
		long delay, attempt_start;

		if (!headers)
			break;
		strbuf_reset(&r->reply);
		if (q->mem)
			strbuf_reset(q->mem);
		r->curl = h;
		r->req = q;
		r->status = 0;
		r->delivered = 0;
		r->too_big = r->stopped = 0;
		if (q->check_md5) {
			if (!r->md5)
				r->md5 = EVP_MD_CTX_new();
			EVP_DigestInit_ex(r->md5, EVP_md5(), NULL);
		}
		errbuf[0] = '\0';
		s3_setup(c, h, q, url.buf, headers, r, errbuf);
		attempt_start = http_retry_now_ms();
		cc = curl_easy_perform(h);
		curl_slist_free_all(headers);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
		if (cc == CURLE_OK && r->status >= 200 && r->status <= 299) {
			if (!s3_reply_is_error(r, err)) {
				rc = 0;
				break;
			}
		} else if (r->too_big) {
			s3_set_error(err, "TooLarge", "%s is larger than allowed", q->key ? q->key : "the reply");
			break;
		} else if (r->stopped) {
			s3_set_error(err, "Stopped", "%s", "stopped by the caller");
			break;
		} else if (cc != CURLE_OK) {
			s3_set_error(err, "", "%s", "");
			err->curl_code = cc;
			http_error_curl_words(cc, url.buf, errbuf, c->timeout_ms, err->message, sizeof err->message);
			if (cc == CURLE_OPERATION_TIMEDOUT && http_retry_now_ms() - attempt_start >= c->op_timeout_ms - 50)
				snprintf(err->message, sizeof err->message, "the endpoint took longer than the %ld s "
					 "deadline of one request; stopped", (c->op_timeout_ms + 999) / 1000);
		} else {
			s3_error_from_reply(r, err);
		}
		/* A stream already handed to the caller cannot be taken back. */
		if (!s3_retryable(r, cc, err) || (q->write && r->delivered > 0))
			break;
		delay = http_retry_delay_ms(&http_retry_default, attempt + 1,
					    http_retry_after_ms(r->retry_after, time(NULL)),
					    http_retry_now_ms() - start, http_retry_random());
		if (delay < 0)
			break;
		http_retry_sleep_ms(delay);
	}
	/* curl may write the buffer until it is unset or the handle cleaned up; it is this frame's */
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	if (rc == 0 && q->check_md5 && !s3_md5_matches_etag(r)) {
		s3_set_error(err, "BadDigest", "%s: the data read does not match its ETag (MD5)", q->key);
		rc = -1;
	}
	strbuf_release(&path);
	strbuf_release(&url);
	return rc;
}

static int s3_do(struct s3_client *c, const struct s3_req *q, struct s3_resp *r, struct s3_error *err)
{
	int rc;

	memset(r, 0, sizeof *r);
	memset(err, 0, sizeof *err);
	snprintf(err->bucket, sizeof err->bucket, "%s", c->bucket);
	rc = s3_perform(c, c->curl, q, r, err);
	if (r->md5)
		EVP_MD_CTX_free(r->md5);
	r->md5 = NULL;
	return rc;
}

/* ---- operations ---- */

int s3_head(struct s3_client *c, const char *key, int64_t *size, char *etag, size_t etaglen,
	    struct s3_error *err)
{
	struct s3_req q = { .method = "HEAD", .key = key };
	struct s3_resp r;
	curl_off_t len = -1;
	int rc = s3_do(c, &q, &r, err);

	if (rc == 0) {
		curl_easy_getinfo(c->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
		if (size)
			*size = (int64_t)len;
		if (etag && etaglen)
			snprintf(etag, etaglen, "%s", r.etag);
	}
	strbuf_release(&r.reply);
	return rc;
}

int s3_get_mem(struct s3_client *c, const char *key, size_t cap, struct strbuf *out,
	       struct s3_error *err)
{
	struct s3_req q = { .method = "GET", .key = key, .mem = out, .mem_cap = cap, .check_md5 = 1 };
	struct s3_resp r;
	int rc = s3_do(c, &q, &r, err);

	strbuf_release(&r.reply);
	return rc;
}

/* A whole object larger than two parts is read as parallel ranged GETs, S3_DOWNLOAD_THREADS
 * at a time, each part into a buffer of its own and handed to the caller in order: memory is
 * bounded by threads * part size, a failed part is retried alone (a stream already handed on
 * cannot be), and every part names the ETag that HEAD saw, so an object replaced meanwhile
 * fails the read instead of mixing two versions. Its data is not checked against the ETag's
 * MD5 (that needs one stream): what Stowage reads this way is sealed (repo_seal.h), and the
 * seal authenticates every byte. */
#define S3_DOWNLOAD_PART (8L << 20)
#define S3_DOWNLOAD_THREADS 4

struct s3_download_slot {
	struct strbuf data;
	int64_t part;			/* which part the slot holds or fetches; -1 free */
	int ready;
};

struct s3_download {
	struct s3_client *c;
	const char *key;
	char etag[128];
	int64_t size, nparts;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int64_t next_fetch, next_deliver;
	struct s3_download_slot slots[S3_DOWNLOAD_THREADS];
	int failed;
	struct s3_error err;		/* the first failure */
};

static int s3_download_part(struct s3_download *d, CURL *h, struct s3_download_slot *slot, struct s3_error *err)
{
	int64_t from = slot->part * S3_DOWNLOAD_PART;
	int64_t len = d->size - from < S3_DOWNLOAD_PART ? d->size - from : S3_DOWNLOAD_PART;
	char range[64];
	struct s3_req q = { .method = "GET", .key = d->key, .range = range, .if_match = d->etag,
			    .mem = &slot->data, .mem_cap = (size_t)len };
	struct s3_resp r = { .reply = STRBUF_INIT };
	int rc;

	snprintf(range, sizeof range, "bytes=%lld-%lld", (long long)from, (long long)(from + len - 1));
	memset(err, 0, sizeof *err);
	snprintf(err->bucket, sizeof err->bucket, "%s", d->c->bucket);
	rc = s3_perform(d->c, h, &q, &r, err);
	if (rc < 0 && r.status == 412)
		s3_set_error(err, "PreconditionFailed", "%s was replaced while it was being read", d->key);
	else if (rc == 0 && slot->data.len != (size_t)len) {
		s3_set_error(err, "MalformedReply", "%s: bytes %lld-%lld: %zu bytes came instead of %lld", d->key,
			     (long long)from, (long long)(from + len - 1), slot->data.len, (long long)len);
		rc = -1;
	}
	strbuf_release(&r.reply);
	return rc;
}

static void *s3_download_worker(void *arg)
{
	struct s3_download *d = arg;
	CURL *h = curl_easy_init();

	pthread_mutex_lock(&d->mu);
	for (;;) {
		/* a part is fetched only when its slot has been handed on: at most one part per slot */
		while (!d->failed && d->next_fetch < d->nparts && d->next_fetch >= d->next_deliver + S3_DOWNLOAD_THREADS)
			pthread_cond_wait(&d->cv, &d->mu);
		if (d->failed || d->next_fetch >= d->nparts || !h)
			break;
		struct s3_download_slot *slot = &d->slots[d->next_fetch % S3_DOWNLOAD_THREADS];
		struct s3_error err;
		slot->part = d->next_fetch++;
		slot->ready = 0;
		pthread_mutex_unlock(&d->mu);
		int rc = s3_download_part(d, h, slot, &err);
		pthread_mutex_lock(&d->mu);
		if (rc < 0 && !d->failed) {
			d->failed = 1;
			d->err = err;
		}
		slot->ready = rc == 0;
		pthread_cond_broadcast(&d->cv);
	}
	if (!h && !d->failed) {
		d->failed = 1;
		s3_set_error(&d->err, "Local", "%s", "cannot make a connection handle");
	}
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	curl_easy_cleanup(h);
	return NULL;
}

static int s3_download_run(struct s3_download *d, s3_write_fn fn, void *ud, struct s3_error *err)
{
	pthread_t tid[S3_DOWNLOAD_THREADS];
	int nthreads = 0, rc = 0;

	for (int i = 0; i < S3_DOWNLOAD_THREADS; i++) {
		d->slots[i].data = (struct strbuf)STRBUF_INIT;
		d->slots[i].part = -1;
	}
	for (; nthreads < S3_DOWNLOAD_THREADS; nthreads++)
		if (pthread_create(&tid[nthreads], NULL, s3_download_worker, d) != 0)
			break;
	pthread_mutex_lock(&d->mu);
	if (nthreads == 0) {
		d->failed = 1;
		s3_set_error(&d->err, "Local", "%s", "cannot start download threads");
	}
	while (!d->failed && d->next_deliver < d->nparts) {
		struct s3_download_slot *slot = &d->slots[d->next_deliver % S3_DOWNLOAD_THREADS];
		if (slot->part != d->next_deliver || !slot->ready) {
			pthread_cond_wait(&d->cv, &d->mu);
			continue;
		}
		pthread_mutex_unlock(&d->mu);
		int stop = fn(slot->data.buf, slot->data.len, ud);
		pthread_mutex_lock(&d->mu);
		strbuf_reset(&slot->data);
		slot->ready = 0;
		slot->part = -1;
		if (stop && !d->failed) {
			d->failed = 1;
			s3_set_error(&d->err, "Stopped", "%s", "stopped by the caller");
		}
		d->next_deliver++;
		pthread_cond_broadcast(&d->cv);
	}
	pthread_mutex_unlock(&d->mu);
	for (int i = 0; i < nthreads; i++)
		pthread_join(tid[i], NULL);
	for (int i = 0; i < S3_DOWNLOAD_THREADS; i++)
		strbuf_release(&d->slots[i].data);
	if (d->failed) {
		*err = d->err;
		rc = -1;
	}
	return rc;
}

int s3_get_stream(struct s3_client *c, const char *key, int64_t offset, int64_t length,
		  s3_write_fn fn, void *ud, struct s3_error *err)
{
	struct s3_req q = { .method = "GET", .key = key, .write = fn, .write_ud = ud };
	struct s3_download d = { .c = c, .key = key };
	struct s3_resp r;
	char range[64];
	int rc;

	if (offset < 0 || length < -1 || length == 0) {
		memset(err, 0, sizeof *err);
		s3_set_error(err, "InvalidRange", "%s: offset must be >= 0 and length -1 or > 0", key);
		return -1;
	}
	if (offset > 0 || length > 0) {
		if (length > 0)
			snprintf(range, sizeof range, "bytes=%lld-%lld", (long long)offset,
				 (long long)(offset + length - 1));
		else
			snprintf(range, sizeof range, "bytes=%lld-", (long long)offset);
		q.range = range;
	} else {
		if (s3_head(c, key, &d.size, d.etag, sizeof d.etag, err) < 0)
			return -1;
		if (d.size > 2 * S3_DOWNLOAD_PART && d.etag[0]) {
			d.nparts = (d.size + S3_DOWNLOAD_PART - 1) / S3_DOWNLOAD_PART;
			pthread_mutex_init(&d.mu, NULL);
			pthread_cond_init(&d.cv, NULL);
			rc = s3_download_run(&d, fn, ud, err);
			pthread_mutex_destroy(&d.mu);
			pthread_cond_destroy(&d.cv);
			return rc;
		}
		q.check_md5 = 1;
	}
	rc = s3_do(c, &q, &r, err);
	strbuf_release(&r.reply);
	return rc;
}

int s3_put_mem(struct s3_client *c, const char *key, const void *data, size_t len,
	       struct s3_error *err)
{
	return s3_put_mem_hashed(c, key, data, len, NULL, err);
}

int s3_put_mem_hashed(struct s3_client *c, const char *key, const void *data, size_t len,
		      const char *sha256_hex, struct s3_error *err)
{
	struct s3_req q = { .method = "PUT", .key = key, .body = data ? data : "", .body_len = len,
			    .body_sha256 = sha256_hex };
	struct s3_resp r;
	int rc = s3_do(c, &q, &r, err);

	strbuf_release(&r.reply);
	return rc;
}

int s3_delete(struct s3_client *c, const char *key, struct s3_error *err)
{
	struct s3_req q = { .method = "DELETE", .key = key };
	struct s3_resp r;
	int rc = s3_do(c, &q, &r, err);

	strbuf_release(&r.reply);
	return rc;
}

int s3_create_bucket(struct s3_client *c, struct s3_error *err)
{
	struct strbuf body = STRBUF_INIT;
	struct s3_resp r;
	int rc;

	/* us-east-1 is the default location and must not be named. */
	if (strcmp(c->region, "us-east-1") != 0)
		strbuf_addf(&body, "<CreateBucketConfiguration><LocationConstraint>%s</LocationConstraint>"
			    "</CreateBucketConfiguration>", c->region);
	struct s3_req q = { .method = "PUT", .body = body.buf ? body.buf : "", .body_len = body.len };
	rc = s3_do(c, &q, &r, err);
	if (rc < 0 && strcmp(err->code, "BucketAlreadyOwnedByYou") == 0)
		rc = 0;
	strbuf_release(&r.reply);
	strbuf_release(&body);
	return rc;
}

/* ---- listing ---- */

struct s3_listing {
	s3_list_fn fn;
	void *ud;
	struct strbuf key, etag, modified;
	int64_t size;
	int truncated;
	char *next;
	const char *prefix;	/* the one asked for: every key must start with it */
	int outside;		/* stopped at a key that does not (in key) */
};

static int s3_listing_field(const char *path, const char *text, void *ud)
{
	struct s3_listing *l = ud;
	const char *f;

	if (strncmp(path, "ListBucketResult/", 17) != 0)
		return 0;
	f = path + 17;
	if (strcmp(f, "Contents/Key") == 0) {
		strbuf_reset(&l->key);
		strbuf_addstr(&l->key, text);
	} else if (strcmp(f, "Contents/ETag") == 0) {
		strbuf_reset(&l->etag);
		strbuf_addstr(&l->etag, text);
	} else if (strcmp(f, "Contents/LastModified") == 0) {
		strbuf_reset(&l->modified);
		strbuf_addstr(&l->modified, text);
	} else if (strcmp(f, "Contents/Size") == 0) {
		l->size = strtoll(text, NULL, 10);
	} else if (strcmp(f, "IsTruncated") == 0) {
		l->truncated = strcmp(text, "true") == 0;
	} else if (strcmp(f, "NextContinuationToken") == 0) {
		free(l->next);
		l->next = xstrdup(text);
	} else if (strcmp(f, "Contents") == 0) {
		/* The endpoint is the tenant's: an entry without a key, or with one outside the prefix,
		 * fails the listing rather than being skipped, since the server that sent it is broken or
		 * hostile and the rest of its answer is no better (callers cut the prefix off a key). */
		if (!l->key.len || strncmp(l->key.buf, l->prefix, strlen(l->prefix)) != 0) {
			l->outside = 1;
			return 1;
		}
		struct s3_object_info o = {
			l->key.buf ? l->key.buf : "", l->size, l->etag.buf ? l->etag.buf : "",
			l->modified.buf ? l->modified.buf : "",
		};
		int stop = l->fn(&o, l->ud) ? 1 : 0;

		strbuf_reset(&l->key);
		strbuf_reset(&l->etag);
		strbuf_reset(&l->modified);
		l->size = 0;
		return stop;
	}
	return 0;
}

int s3_list(struct s3_client *c, const char *prefix, int page_size, s3_list_fn fn, void *ud,
	    struct s3_error *err)
{
	struct s3_listing l = { .fn = fn, .ud = ud, .key = STRBUF_INIT, .etag = STRBUF_INIT, .modified = STRBUF_INIT,
				.prefix = prefix ? prefix : "" };
	char max_keys[16], xmlerr[160];
	int rc = 0, pages = 0;

	if (page_size < 1 || page_size > 1000) {
		memset(err, 0, sizeof *err);
		s3_set_error(err, "InvalidArgument", "page size must be 1 to 1000");
		return -1;
	}
	snprintf(max_keys, sizeof max_keys, "%d", page_size);
	do {
		struct sigv4_pair query[4] = {
			{ "list-type", "2" }, { "max-keys", max_keys }, { "prefix", prefix ? prefix : "" },
		};
		struct s3_req q = { .method = "GET", .query = query, .nquery = 3 };
		struct s3_resp r;
		char *token = l.next;
		int walk;

		if (++pages > S3_LIST_PAGES_MAX) {
			s3_set_error(err, "EndlessList", "listing did not end after %d pages; stopped", S3_LIST_PAGES_MAX);
			free(token);
			rc = -1;
			break;
		}
		if (token)
			query[q.nquery++] = (struct sigv4_pair){ "continuation-token", token };
		l.next = NULL;
		l.truncated = 0;
		rc = s3_do(c, &q, &r, err);
		if (rc == 0) {
			walk = s3_xml_walk(r.reply.buf ? r.reply.buf : "", r.reply.len, s3_listing_field, &l,
					   xmlerr, sizeof xmlerr);
			if (walk > 0 && l.outside && !l.key.len)
				s3_set_error(err, "MalformedReply", "listing of \"%s\" names an object without a key", l.prefix);
			else if (walk > 0 && l.outside)
				s3_set_error(err, "MalformedReply", "listing of \"%s\" names \"%.200s\", a key outside it",
					     l.prefix, l.key.buf);
			else if (walk > 0)
				s3_set_error(err, "Stopped", "%s", "listing stopped by the caller");
			else if (walk < 0)
				s3_set_error(err, "MalformedReply", "listing: %s", xmlerr);
			if (walk)
				rc = -1;
		}
		strbuf_release(&r.reply);
		if (rc == 0 && l.truncated && !l.next) {
			s3_set_error(err, "MalformedReply", "%s", "listing is truncated but names no continuation token");
			rc = -1;
		}
		if (rc == 0 && l.truncated && token && strcmp(l.next, token) == 0) {
			s3_set_error(err, "EndlessList", "%s", "listing repeats its continuation token; stopped");
			rc = -1;
		}
		free(token);
	} while (rc == 0 && l.truncated);
	free(l.next);
	strbuf_release(&l.key);
	strbuf_release(&l.etag);
	strbuf_release(&l.modified);
	return rc;
}

/* ---- multipart upload ---- */

struct s3_part {
	struct s3_part *next;
	int number;
	unsigned char *data;
	size_t len;
};

struct s3_multipart {
	struct s3_client *c;
	const char *key;
	char *upload_id;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct s3_part *head, *tail;
	int inflight;			/* queued or being sent */
	int closed;			/* no more parts will come */
	int failed;
	struct s3_error err;		/* the first failure */
	char (*etags)[80];		/* by part number - 1 */
	int nparts;
};

static void s3_part_free(struct s3_part *p)
{
	free(p->data);
	free(p);
}

static int s3_upload_id_field(const char *path, const char *text, void *ud)
{
	if (strcmp(path, "InitiateMultipartUploadResult/UploadId") == 0 && *text)
		*(char **)ud = xstrdup(text);
	return 0;
}

static int s3_multipart_begin(struct s3_multipart *m, struct s3_error *err)
{
	static const struct sigv4_pair query[] = { { "uploads", NULL } };
	struct s3_req q = { .method = "POST", .key = m->key, .query = query, .nquery = 1, .body = "" };
	struct s3_resp r;
	char xmlerr[160];
	int rc = s3_do(m->c, &q, &r, err);

	if (rc == 0)
		s3_xml_walk(r.reply.buf, r.reply.len, s3_upload_id_field, &m->upload_id, xmlerr, sizeof xmlerr);
	if (rc == 0 && !m->upload_id) {
		s3_set_error(err, "MalformedReply", "%s: starting a multipart upload returned no upload id", m->key);
		rc = -1;
	}
	strbuf_release(&r.reply);
	return rc;
}

static void s3_multipart_abort(struct s3_multipart *m)
{
	struct sigv4_pair query[] = { { "uploadId", m->upload_id } };
	struct s3_req q = { .method = "DELETE", .key = m->key, .query = query, .nquery = 1 };
	struct s3_resp r;
	struct s3_error ignored;

	s3_do(m->c, &q, &r, &ignored);
	strbuf_release(&r.reply);
}

static int s3_multipart_complete(struct s3_multipart *m, struct s3_error *err)
{
	struct sigv4_pair query[] = { { "uploadId", m->upload_id } };
	struct strbuf body = STRBUF_INIT;
	struct s3_resp r;
	int rc;

	strbuf_addstr(&body, "<CompleteMultipartUpload>");
	for (int i = 0; i < m->nparts; i++)
		strbuf_addf(&body, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", i + 1, m->etags[i]);
	strbuf_addstr(&body, "</CompleteMultipartUpload>");
	struct s3_req q = { .method = "POST", .key = m->key, .query = query, .nquery = 1,
			    .body = body.buf, .body_len = body.len };
	rc = s3_do(m->c, &q, &r, err);
	strbuf_release(&r.reply);
	strbuf_release(&body);
	return rc;
}

/* Sends one part on the worker's own handle; the ETag is kept for the completion. */
static int s3_multipart_send(struct s3_multipart *m, CURL *h, const struct s3_part *p, struct s3_error *err)
{
	char number[16];
	struct sigv4_pair query[] = { { "partNumber", number }, { "uploadId", m->upload_id } };
	struct s3_req q = { .method = "PUT", .key = m->key, .query = query, .nquery = 2,
			    .body = p->data, .body_len = p->len };
	struct s3_resp r = { .reply = STRBUF_INIT };
	int rc;

	snprintf(number, sizeof number, "%d", p->number);
	memset(err, 0, sizeof *err);
	snprintf(err->bucket, sizeof err->bucket, "%s", m->c->bucket);
	rc = s3_perform(m->c, h, &q, &r, err);
	if (rc == 0 && (!r.etag[0] || strlen(r.etag) >= sizeof m->etags[0] || strchr(r.etag, '<'))) {
		s3_set_error(err, "MalformedReply", "%s: a part upload returned no usable ETag", m->key);
		rc = -1;
	}
	if (rc == 0) {
		pthread_mutex_lock(&m->mu);
		snprintf(m->etags[p->number - 1], sizeof m->etags[0], "%s", r.etag);
		pthread_mutex_unlock(&m->mu);
	}
	strbuf_release(&r.reply);
	return rc;
}

static void *s3_multipart_worker(void *arg)
{
	struct s3_multipart *m = arg;
	CURL *h = curl_easy_init();

	for (;;) {
		struct s3_part *p;
		struct s3_error err;
		int rc;

		pthread_mutex_lock(&m->mu);
		while (!m->head && !m->closed && !m->failed)
			pthread_cond_wait(&m->cv, &m->mu);
		if (m->failed || !m->head) {
			pthread_mutex_unlock(&m->mu);
			break;
		}
		p = m->head;
		m->head = p->next;
		if (!m->head)
			m->tail = NULL;
		pthread_mutex_unlock(&m->mu);

		rc = s3_multipart_send(m, h, p, &err);
		s3_part_free(p);
		pthread_mutex_lock(&m->mu);
		m->inflight--;
		if (rc < 0 && !m->failed) {
			m->failed = 1;
			m->err = err;
		}
		pthread_cond_broadcast(&m->cv);
		pthread_mutex_unlock(&m->mu);
	}
	curl_easy_cleanup(h);
	return NULL;
}

/* Queues a part, waiting while `threads` parts are already queued or in flight: that is
 * the memory bound. -1 when an upload already failed (the part is dropped). */
static int s3_multipart_queue(struct s3_multipart *m, struct s3_part *p, int threads)
{
	pthread_mutex_lock(&m->mu);
	while (m->inflight >= threads && !m->failed)
		pthread_cond_wait(&m->cv, &m->mu);
	if (m->failed) {
		pthread_mutex_unlock(&m->mu);
		s3_part_free(p);
		return -1;
	}
	if (p->number > m->nparts) {
		m->etags = xrealloc(m->etags, (size_t)p->number * sizeof m->etags[0]);
		m->nparts = p->number;
	}
	m->etags[p->number - 1][0] = '\0';
	if (m->tail)
		m->tail->next = p;
	else
		m->head = p;
	m->tail = p;
	m->inflight++;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	return 0;
}

/* Reads until buf is full or the data ends: returns the count, or -1. */
static long s3_read_full(s3_read_fn fn, void *ud, unsigned char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		long n = fn(buf + got, len - got, ud);

		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (long)got;
}

static size_t s3_part_size(int64_t size_hint)
{
	int64_t size = S3_PART_SIZE_MIN;

	/* S3 allows 10000 parts; keep a margin for a hint that is a little short. */
	if (size_hint > 0 && size_hint / 9000 > size)
		size = size_hint / 9000 + 1;
	return (size_t)(size > S3_PART_SIZE_MAX ? S3_PART_SIZE_MAX : size);
}

/* Parts 2.. are read here while the workers send; part 1 is already in `first`. */
static int s3_multipart_run(struct s3_multipart *m, unsigned char *first, size_t part_size,
			    s3_read_fn fn, void *ud, struct s3_error *err)
{
	pthread_t tid[S3_UPLOAD_THREADS];
	struct s3_part *p = xcalloc(1, sizeof *p);
	int nthreads = 0, rc = 0, number = 1;

	p->number = number;
	p->data = first;
	p->len = part_size;
	for (; nthreads < S3_UPLOAD_THREADS; nthreads++)
		if (pthread_create(&tid[nthreads], NULL, s3_multipart_worker, m) != 0)
			break;
	if (nthreads == 0) {
		s3_part_free(p);
		s3_set_error(err, "Local", "%s", "cannot start upload threads");
		return -1;
	}
	while (p) {
		long n;

		if (s3_multipart_queue(m, p, nthreads) < 0)
			break;
		if (number == 10000) {
			s3_set_error(err, "TooLarge", "%s: more than 10000 parts", m->key);
			rc = -1;
			break;
		}
		p = xcalloc(1, sizeof *p);
		p->data = xmalloc(part_size);
		n = s3_read_full(fn, ud, p->data, part_size);
		if (n <= 0) {
			if (n < 0) {
				s3_set_error(err, "ReadError", "%s: reading the data to upload failed", m->key);
				rc = -1;
			}
			s3_part_free(p);
			break;
		}
		p->number = ++number;
		p->len = (size_t)n;
	}
	pthread_mutex_lock(&m->mu);
	m->closed = 1;
	if (rc < 0)
		m->failed = 1;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	for (int i = 0; i < nthreads; i++)
		pthread_join(tid[i], NULL);
	while (m->head) {
		struct s3_part *next = m->head->next;

		s3_part_free(m->head);
		m->head = next;
	}
	if (rc == 0 && m->failed) {
		*err = m->err;
		rc = -1;
	}
	return rc;
}

int s3_put_stream(struct s3_client *c, const char *key, s3_read_fn fn, void *ud,
		  int64_t size_hint, struct s3_error *err)
{
	size_t part_size = s3_part_size(size_hint);
	unsigned char *first = xmalloc(part_size);
	long n = s3_read_full(fn, ud, first, part_size);
	struct s3_multipart m = { .c = c, .key = key };
	int rc;

	memset(err, 0, sizeof *err);
	snprintf(err->bucket, sizeof err->bucket, "%s", c->bucket);
	if (n < 0) {
		free(first);
		s3_set_error(err, "ReadError", "%s: reading the data to upload failed", key);
		return -1;
	}
	if ((size_t)n < part_size) {
		rc = s3_put_mem(c, key, first, (size_t)n, err);
		free(first);
		return rc;
	}
	if (s3_multipart_begin(&m, err) < 0) {
		free(first);
		return -1;
	}
	pthread_mutex_init(&m.mu, NULL);
	pthread_cond_init(&m.cv, NULL);
	rc = s3_multipart_run(&m, first, part_size, fn, ud, err);
	if (rc == 0)
		rc = s3_multipart_complete(&m, err);
	if (rc < 0)
		s3_multipart_abort(&m);
	pthread_mutex_destroy(&m.mu);
	pthread_cond_destroy(&m.cv);
	free(m.etags);
	free(m.upload_id);
	return rc;
}

/* ---- probe and words ---- */

int s3_probe(const struct s3_conf *conf, const struct net_allow *allow, struct s3_error *err)
{
	char msg[256], key[64];
	unsigned char rnd[16], data[64];
	struct strbuf back = STRBUF_INIT;
	struct s3_client *c;
	int rc;

	memset(err, 0, sizeof *err);
	snprintf(err->bucket, sizeof err->bucket, "%s", conf->bucket ? conf->bucket : "");
	c = s3_client_new(conf, allow, msg, sizeof msg);
	if (!c) {
		s3_set_error(err, "InvalidConfiguration", "%s", msg);
		return -1;
	}
	RAND_bytes(rnd, sizeof rnd);
	RAND_bytes(data, sizeof data);
	memcpy(key, "stowage-probe/", 14);
	sigv4_hex(rnd, sizeof rnd, key + 14);
	rc = s3_put_mem(c, key, data, sizeof data, err);
	if (rc == 0)
		rc = s3_get_mem(c, key, sizeof data, &back, err);
	if (rc == 0 && (back.len != sizeof data || memcmp(back.buf, data, sizeof data) != 0)) {
		s3_set_error(err, "BadDigest", "%s: the probe object read back differs from what was written", key);
		rc = -1;
	}
	if (rc == 0)
		rc = s3_delete(c, key, err);
	else
		s3_delete(c, key, &(struct s3_error){ 0 });
	strbuf_release(&back);
	s3_client_free(c);
	return rc;
}

void s3_error_describe(const struct s3_error *err, char *buf, size_t buflen)
{
	const char *code = err->code;

	if (err->curl_code) {
		snprintf(buf, buflen, "endpoint unreachable: %s", err->message);
		return;
	}
	if (strcmp(code, "NoSuchBucket") == 0)
		snprintf(buf, buflen, "bucket %s does not exist", err->bucket);
	else if (strcmp(code, "AccessDenied") == 0)
		snprintf(buf, buflen, "access denied (check the key's permissions on bucket %s)", err->bucket);
	else if (strcmp(code, "SignatureDoesNotMatch") == 0)
		snprintf(buf, buflen, "signature does not match: check the secret key");
	else if (strcmp(code, "InvalidAccessKeyId") == 0)
		snprintf(buf, buflen, "the access key is not known to the server: check the access key");
	else if (strcmp(code, "NoSuchKey") == 0 || strcmp(code, "NotFound") == 0)
		snprintf(buf, buflen, "object not found in bucket %s", err->bucket);
	else if (strcmp(code, "AuthorizationHeaderMalformed") == 0 || strcmp(code, "PermanentRedirect") == 0)
		snprintf(buf, buflen, "wrong region for bucket %s: %s", err->bucket, err->message);
	else if (strcmp(code, "SlowDown") == 0)
		snprintf(buf, buflen, "the server asks to slow down (still refused after retries)");
	else if (!*code || strcmp(code, "Local") == 0 || err->http_status == 0)
		snprintf(buf, buflen, "%s", err->message);
	else
		snprintf(buf, buflen, "%s (HTTP %ld): %s", code, err->http_status, err->message);
}
