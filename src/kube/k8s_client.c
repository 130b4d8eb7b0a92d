#include "k8s_client.h"
#include "http_error.h"
#include "http_retry.h"
#include "json_shape.h"
#include "strbuf.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What a (possibly hostile) API server may send, enforced while reading: the bytes of one
 * reply (inflated: gzip is undone before the count), how many JSON values it holds, how deep
 * its JSON nests, and how many pages one list may take. etcd keeps objects under 1.5 MiB. */
#define K8S_OBJECT_REPLY_MAX (8L << 20)	/* one object */
#define K8S_LIST_REPLY_MAX (128L << 20)	/* one list page, a log */
/* cJSON spends a 64-byte node (72 with malloc's header) on each value, however short: "0," is
 * 2 bytes, so a reply within the byte cap (and 1000 times smaller gzipped) could take 5 GB
 * parsed. Kubernetes' JSON spends 20 (a pod, managedFields and all) to 90 (a CRD's schema)
 * bytes a value, and a real page of 500 stays far below the byte cap (pods: 5-15 MiB), so one
 * value per 32 bytes of the cap (256 Ki an object, 4 Mi a list page, about 300 MB parsed) is
 * only ever reached by padding. */
#define K8S_BYTES_PER_VALUE 32
#define K8S_JSON_DEPTH_MAX 128
#define K8S_LIST_PAGES_MAX 2000		/* at the default 500 a page: a million objects */
#define K8S_STR_(x) #x
#define K8S_STR(x) K8S_STR_(x)
#define K8S_LIST_RESTARTS 3
#define K8S_ACCEPT_DISCOVERY \
	"application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList," \
	"application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"

struct k8s_client {
	char *api_url;		/* without a trailing slash */
	char *auth_header;	/* "Authorization: Bearer ..." */
	char *ca_pem;
	int insecure;
	long timeout_ms;
	long deadline_ms;	/* 0: none */
	int return_pushback;	/* k8s_client_return_pushback */
	struct curl_slist *resolve;
	CURL *curl;
};

struct k8s_reply {
	struct strbuf body;
	long status;
	char retry_after[64];
	int too_big;
	size_t cap;		/* bytes the body may have: K8S_OBJECT_REPLY_MAX or K8S_LIST_REPLY_MAX */
	int json;		/* count the nesting and the values of the body as it arrives */
	struct json_shape shape;
	int too_deep, too_many;
};

/* A server that pushes back (429) is waited out more patiently than a failing one: as many
 * attempts as client-go makes (10), each wait within K8S_RETRY_AFTER_MAX_MS, 2 minutes in all. */
static const struct http_retry_policy k8s_pushback_policy = {
	.max_attempts = 10,
	.base_ms = 200,
	.max_delay_ms = K8S_RETRY_AFTER_MAX_MS,
	.max_total_ms = 120000,
};

static void k8s_set_error(struct k8s_error *err, const char *reason, const char *message)
{
	memset(err, 0, sizeof *err);
	err->retry_after_ms = -1;
	snprintf(err->reason, sizeof err->reason, "%s", reason);
	snprintf(err->message, sizeof err->message, "%s", message);
}

struct k8s_client *k8s_client_new(const struct k8s_cluster_conf *conf, const struct net_allow *allow,
				  char *err, size_t errlen)
{
	struct k8s_client *c;
	struct strbuf sb = STRBUF_INIT;
	char pin[NET_ALLOW_RESOLVE_MAX];
	CURLU *u;
	char *scheme = NULL;
	size_t n;
	int bad_url;

	if (!conf->api_url || !*conf->api_url) {
		snprintf(err, errlen, "API server URL: required");
		return NULL;
	}
	u = curl_url();
	bad_url = curl_url_set(u, CURLUPART_URL, conf->api_url, 0) != CURLUE_OK ||
		  curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK || strcmp(scheme, "https") != 0;
	curl_free(scheme);
	curl_url_cleanup(u);
	if (bad_url) {
		snprintf(err, errlen, "API server URL: \"%.200s\" is not an https:// URL", conf->api_url);
		return NULL;
	}
	if (!conf->token || !*conf->token || strpbrk(conf->token, "\r\n")) {
		snprintf(err, errlen, "token: required, on one line");
		return NULL;
	}
	if (conf->timeout_ms < 0) {
		snprintf(err, errlen, "timeout: must not be negative");
		return NULL;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	c = xcalloc(1, sizeof *c);
	c->api_url = xstrdup(conf->api_url);
	n = strlen(c->api_url);
	while (n && c->api_url[n - 1] == '/')
		c->api_url[--n] = '\0';
	strbuf_addf(&sb, "Authorization: Bearer %s", conf->token);
	c->auth_header = strbuf_take(&sb);
	c->ca_pem = conf->ca_pem && *conf->ca_pem ? xstrdup(conf->ca_pem) : NULL;
	c->insecure = conf->insecure_skip_verify;
	c->timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms : 30000;
	if (allow) {
		if (net_allow_check_url(allow, c->api_url, pin, sizeof pin, err, errlen) < 0) {
			k8s_client_free(c);
			return NULL;
		}
		if (*pin)
			c->resolve = curl_slist_append(NULL, pin);
	}
	c->curl = curl_easy_init();
	return c;
}

void k8s_client_free(struct k8s_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->resolve);
	if (c->auth_header) {
		OPENSSL_cleanse(c->auth_header, strlen(c->auth_header));
		free(c->auth_header);
	}
	free(c->api_url);
	free(c->ca_pem);
	free(c);
}

void k8s_client_set_deadline(struct k8s_client *c, long deadline_ms)
{
	c->deadline_ms = deadline_ms;
}

long k8s_client_deadline(const struct k8s_client *c)
{
	return c->deadline_ms;
}

void k8s_client_return_pushback(struct k8s_client *c, int on)
{
	c->return_pushback = on;
}

int k8s_error_pushback(const struct k8s_error *err)
{
	return err->http_status == 429 || err->http_status == 503 || strcmp(err->reason, "TooManyRequests") == 0;
}

/* The timeout of the next request: the client's, cut short by the deadline. */
static long k8s_timeout(const struct k8s_client *c)
{
	long left = c->deadline_ms ? c->deadline_ms - http_retry_now_ms() : c->timeout_ms;

	return left < 1 ? 1 : left < c->timeout_ms ? left : c->timeout_ms;
}

static void k8s_setup_connection(const struct k8s_client *c, CURL *h)
{
	net_allow_pin(h, c->resolve, c->ca_pem);
	if (c->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
}

const char *k8s_client_raw_setup(struct k8s_client *c, void *h, const char **auth_header)
{
	k8s_setup_connection(c, h);
	*auth_header = c->auth_header;
	return c->api_url;
}

/* ---- paths ---- */

static void k8s_add_segment(struct strbuf *sb, const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);

	strbuf_addch(sb, '/');
	strbuf_addstr(sb, e);
	curl_free(e);
}

char *k8s_resource_path(const char *group, const char *version, const char *plural,
			const char *ns, const char *name)
{
	struct strbuf sb = STRBUF_INIT;

	if (group && *group) {
		strbuf_addstr(&sb, "/apis");
		k8s_add_segment(&sb, group);
	} else {
		strbuf_addstr(&sb, "/api");
	}
	k8s_add_segment(&sb, version);
	if (ns && *ns) {
		strbuf_addstr(&sb, "/namespaces");
		k8s_add_segment(&sb, ns);
	}
	k8s_add_segment(&sb, plural);
	if (name && *name)
		k8s_add_segment(&sb, name);
	return strbuf_take(&sb);
}

/* ---- one request ---- */

static size_t k8s_on_body(char *data, size_t size, size_t n, void *ud)
{
	struct k8s_reply *r = ud;
	size_t len = size * n;

	if (r->body.len + len > r->cap) {
		r->too_big = 1;
		return 0;
	}
	/* refused at the first piece that nests too deep or passes the values' cap, before it is
	 * parsed (curl hands a reply over in pieces of at most 16 KiB) */
	if (r->json) {
		json_shape_feed(&r->shape, data, len);
		r->too_many = r->shape.values > r->cap / K8S_BYTES_PER_VALUE;
		r->too_deep = r->shape.max_depth > K8S_JSON_DEPTH_MAX;
		if (r->too_many || r->too_deep)
			return 0;
	}
	strbuf_add(&r->body, data, len);
	return len;
}

static size_t k8s_on_header(char *data, size_t size, size_t n, void *ud)
{
	struct k8s_reply *r = ud;
	size_t len = size * n;

	if (len > 12 && strncasecmp(data, "retry-after:", 12) == 0) {
		size_t vlen = len - 12 < sizeof r->retry_after - 1 ? len - 12 : sizeof r->retry_after - 1;

		memcpy(r->retry_after, data + 12, vlen);
		r->retry_after[vlen] = '\0';
	}
	return len;
}

/* Fills err from a Status reply, or from the status line when the body is not a Status. */
static void k8s_error_from_reply(const struct k8s_reply *r, struct k8s_error *err)
{
	cJSON *st = r->body.len ? cJSON_ParseWithLength(r->body.buf, r->body.len) : NULL;
	const char *reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "reason"));
	const char *message = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "message"));

	long retry_after = http_retry_after_ms(r->retry_after, time(NULL));

	memset(err, 0, sizeof *err);
	err->http_status = r->status;
	err->retry_after_ms = retry_after > K8S_RETRY_AFTER_MAX_MS ? K8S_RETRY_AFTER_MAX_MS : retry_after;
	if (!reason || !*reason)
		reason = r->status == 401 ? "Unauthorized" : r->status == 403 ? "Forbidden" :
			 r->status == 404 ? "NotFound" : r->status == 409 ? "Conflict" :
			 r->status == 410 ? "Expired" : r->status == 429 ? "TooManyRequests" :
			 r->status >= 500 ? "InternalError" : "BadRequest";
	snprintf(err->reason, sizeof err->reason, "%s", reason);
	if (message)
		snprintf(err->message, sizeof err->message, "%s", message);
	else
		snprintf(err->message, sizeof err->message, "HTTP status %ld: %.200s", r->status,
			 r->body.buf ? r->body.buf : "");
	cJSON_Delete(st);
}

static struct curl_slist *k8s_headers(const struct k8s_client *c, const char *content_type,
				      const char *accept)
{
	struct curl_slist *h = curl_slist_append(NULL, c->auth_header);
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "Accept: %s", accept ? accept : "application/json");
	h = curl_slist_append(h, sb.buf);
	strbuf_reset(&sb);
	if (content_type) {
		strbuf_addf(&sb, "Content-Type: %s", content_type);
		h = curl_slist_append(h, sb.buf);
	}
	h = curl_slist_append(h, "Expect:");
	strbuf_release(&sb);
	return h;
}

static void k8s_setup(struct k8s_client *c, const char *method, const char *url, const char *body,
		      struct curl_slist *headers, struct k8s_reply *r, char *errbuf)
{
	CURL *h = c->curl;

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, k8s_timeout(c));
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, k8s_timeout(c));
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, k8s_on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, k8s_on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	k8s_setup_connection(c, h);
	if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? strlen(body) : 0));
	}
}

static int k8s_idempotent(const char *method)
{
	return strcmp(method, "GET") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "DELETE") == 0;
}

/* One request with retries; a 2xx body is left in reply->body. */
static int k8s_request(struct k8s_client *c, const char *method, const char *path_query,
		       const char *content_type, const char *body, const char *accept,
		       struct k8s_reply *r, struct k8s_error *err)
{
	struct strbuf url = STRBUF_INIT;
	char errbuf[CURL_ERROR_SIZE];
	long start = http_retry_now_ms();
	int rc = -1;

	memset(err, 0, sizeof *err);
	err->retry_after_ms = -1;
	strbuf_addf(&url, "%s%s", c->api_url, path_query);
	for (int attempt = 1;; attempt++) {
		struct curl_slist *headers = k8s_headers(c, content_type, accept);
		CURLcode cc;
		long delay, retry_after;
		const struct http_retry_policy *policy = &http_retry_default;

		if (c->deadline_ms && http_retry_now_ms() >= c->deadline_ms) {
			k8s_set_error(err, "Timeout", "no time left for the request");
			break;
		}
		strbuf_reset(&r->body);
		strbuf_addstr(&r->body, "");
		r->status = 0;
		r->retry_after[0] = '\0';
		r->too_big = r->too_deep = r->too_many = 0;
		memset(&r->shape, 0, sizeof r->shape);
		if (!r->cap)
			r->cap = K8S_OBJECT_REPLY_MAX;
		errbuf[0] = '\0';
		k8s_setup(c, method, url.buf, body, headers, r, errbuf);
		cc = curl_easy_perform(c->curl);
		curl_slist_free_all(headers);
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
		if (cc == CURLE_OK && r->status >= 200 && r->status <= 299) {
			rc = 0;
			break;
		}
		if (r->too_big || r->too_many) {
			const char *what = r->cap == (size_t)K8S_OBJECT_REPLY_MAX ? "one object" : "one list page";
			char words[128];

			if (r->too_big)
				snprintf(words, sizeof words, "the API server's reply is larger than %zu MiB (%s); "
					 "stopped reading", r->cap >> 20, what);
			else
				snprintf(words, sizeof words, "the API server's reply holds more than %zu JSON values "
					 "(%s); stopped reading", r->cap / K8S_BYTES_PER_VALUE, what);
			k8s_set_error(err, r->too_big ? "TooLarge" : "TooManyValues", words);
			break;
		}
		if (r->too_deep) {
			k8s_set_error(err, "TooDeep", "the API server's reply nests deeper than "
				      K8S_STR(K8S_JSON_DEPTH_MAX) " levels; stopped reading");
			break;
		}
		if (cc != CURLE_OK) {
			memset(err, 0, sizeof *err);
			err->retry_after_ms = -1;
			err->curl_code = cc;
			http_error_curl_words(cc, url.buf, errbuf, c->timeout_ms, err->message, sizeof err->message);
			if (!http_retry_curl(cc, k8s_idempotent(method)))
				break;
		} else {
			k8s_error_from_reply(r, err);
			if (!http_retry_status(r->status) || (c->return_pushback && k8s_error_pushback(err)))
				break;
		}
		retry_after = http_retry_after_ms(r->retry_after, time(NULL));
		if (r->status == 429) {	/* pushed back: wait, within a cap, however long it asks */
			policy = &k8s_pushback_policy;
			retry_after = err->retry_after_ms;
		}
		delay = http_retry_delay_ms(policy, attempt + 1, retry_after, http_retry_now_ms() - start,
					    http_retry_random());
		if (delay < 0 || (c->deadline_ms && http_retry_now_ms() + delay >= c->deadline_ms))
			break;
		http_retry_sleep_ms(delay);
	}
	/* curl may write the buffer until it is unset or the handle cleaned up; it is this frame's */
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
	strbuf_release(&url);
	return rc;
}

static int k8s_request_json(struct k8s_client *c, const char *method, const char *path_query,
			    const char *content_type, const char *body, const char *accept,
			    cJSON **out, struct k8s_error *err)
{
	const char *limit = strstr(path_query, "?limit=");
	struct k8s_reply r = { .body = STRBUF_INIT, .json = 1,
			       .cap = limit ? K8S_LIST_REPLY_MAX : K8S_OBJECT_REPLY_MAX };
	int rc = k8s_request(c, method, path_query, content_type, body, accept, &r, err);

	if (out)
		*out = NULL;
	if (rc == 0 && out) {
		*out = cJSON_ParseWithLength(r.body.buf, r.body.len);
		if (!*out) {
			k8s_set_error(err, "MalformedReply", "the API server's reply is not JSON");
			err->http_status = r.status;
			rc = -1;
		}
	}
	strbuf_release(&r.body);
	return rc;
}

/* ---- verbs ---- */

int k8s_get_text(struct k8s_client *c, const char *path, char **out, size_t *len, struct k8s_error *err)
{
	struct k8s_reply r = { .body = STRBUF_INIT, .cap = K8S_LIST_REPLY_MAX };

	*out = NULL;
	*len = 0;
	if (k8s_request(c, "GET", path, NULL, NULL, "*/*", &r, err) < 0) {
		strbuf_release(&r.body);
		return -1;
	}
	*len = r.body.len;
	*out = strbuf_take(&r.body);
	return 0;
}

int k8s_get(struct k8s_client *c, const char *path, cJSON **out, struct k8s_error *err)
{
	return k8s_request_json(c, "GET", path, NULL, NULL, NULL, out, err);
}

static int k8s_send_object(struct k8s_client *c, const char *method, const char *path,
			   const cJSON *obj, cJSON **out, struct k8s_error *err)
{
	char *body = cJSON_PrintUnformatted(obj);
	int rc;

	if (!body) {
		k8s_set_error(err, "Invalid", "the object cannot be serialised");
		return -1;
	}
	rc = k8s_request_json(c, method, path, "application/json", body, NULL, out, err);
	free(body);
	return rc;
}

int k8s_create(struct k8s_client *c, const char *collection_path, const cJSON *obj, cJSON **out,
	       struct k8s_error *err)
{
	return k8s_send_object(c, "POST", collection_path, obj, out, err);
}

int k8s_replace(struct k8s_client *c, const char *path, const cJSON *obj, cJSON **out,
		struct k8s_error *err)
{
	return k8s_send_object(c, "PUT", path, obj, out, err);
}

int k8s_patch(struct k8s_client *c, const char *path, enum k8s_patch_type type, const char *patch,
	      cJSON **out, struct k8s_error *err)
{
	const char *ct = type == K8S_PATCH_JSON ? "application/json-patch+json" : "application/merge-patch+json";

	return k8s_request_json(c, "PATCH", path, ct, patch, NULL, out, err);
}

int k8s_delete(struct k8s_client *c, const char *path, const char *propagation,
	       struct k8s_error *err)
{
	char body[128];

	if (propagation && strcmp(propagation, "Foreground") != 0 && strcmp(propagation, "Background") != 0 &&
	    strcmp(propagation, "Orphan") != 0) {
		k8s_set_error(err, "Invalid", "propagation policy must be Foreground, Background or Orphan");
		return -1;
	}
	if (!propagation)
		return k8s_request_json(c, "DELETE", path, NULL, NULL, NULL, NULL, err);
	snprintf(body, sizeof body, "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\",\"propagationPolicy\":\"%s\"}",
		 propagation);
	return k8s_request_json(c, "DELETE", path, "application/json", body, NULL, NULL, err);
}

int k8s_delete_uid(struct k8s_client *c, const char *path, const char *uid, struct k8s_error *err)
{
	cJSON *body = cJSON_CreateObject(), *pre;
	char *text;
	int rc;

	cJSON_AddStringToObject(body, "kind", "DeleteOptions");
	cJSON_AddStringToObject(body, "apiVersion", "v1");
	cJSON_AddStringToObject(body, "propagationPolicy", "Background");
	pre = cJSON_AddObjectToObject(body, "preconditions");
	cJSON_AddStringToObject(pre, "uid", uid);
	text = cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	rc = k8s_request_json(c, "DELETE", path, "application/json", text, NULL, NULL, err);
	free(text);
	return rc;
}

int k8s_version(struct k8s_client *c, char *out, size_t outlen, struct k8s_error *err)
{
	cJSON *v = NULL;
	const char *git;

	if (k8s_get(c, "/version", &v, err) < 0)
		return -1;
	git = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "gitVersion"));
	if (!git) {
		cJSON_Delete(v);
		k8s_set_error(err, "MalformedReply", "/version names no gitVersion");
		return -1;
	}
	snprintf(out, outlen, "%s", git);
	cJSON_Delete(v);
	return 0;
}

int k8s_wait(struct k8s_client *c, const char *path, k8s_condition_fn cond, void *ud,
	     long timeout_ms, struct k8s_error *err)
{
	long start = http_retry_now_ms(), delay = 100;

	for (;;) {
		cJSON *obj = NULL;
		int done;

		if (k8s_get(c, path, &obj, err) < 0 && err->http_status != 404)
			return -1;
		done = cond(obj, ud);
		cJSON_Delete(obj);
		if (done > 0)
			return 0;
		if (done < 0) {
			k8s_set_error(err, "Failed", "the condition reports failure");
			return -1;
		}
		if (http_retry_now_ms() - start + delay > timeout_ms) {
			char msg[128];

			snprintf(msg, sizeof msg, "condition on %.60s not met after %ld s", path, (timeout_ms + 999) / 1000);
			k8s_set_error(err, "Timeout", msg);
			return -1;
		}
		http_retry_sleep_ms(delay);
		delay = delay * 3 / 2 > 2000 ? 2000 : delay * 3 / 2;
	}
}

/* ---- listing ---- */

static void k8s_list_query(struct strbuf *q, const char *path, const char *selector, int limit,
			   const char *token)
{
	char *e;

	strbuf_reset(q);
	strbuf_addf(q, "%s?limit=%d", path, limit);
	if (selector && *selector) {
		e = curl_easy_escape(NULL, selector, 0);
		strbuf_addf(q, "&labelSelector=%s", e);
		curl_free(e);
	}
	if (token && *token) {
		e = curl_easy_escape(NULL, token, 0);
		strbuf_addf(q, "&continue=%s", e);
		curl_free(e);
	}
}

/* Hands each item of one page to fn; *token receives the next page's continue token. */
static int k8s_list_page(const struct k8s_resource_type *type, cJSON *page, k8s_object_fn fn, void *ud,
			 char **token, struct k8s_error *err)
{
	cJSON *items = cJSON_GetObjectItemCaseSensitive(page, "items"), *item;
	const char *next = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(page, "metadata"), "continue"));
	char api_version[340];

	if (!cJSON_IsArray(items)) {
		k8s_set_error(err, "MalformedReply", "a list reply has no items array");
		return -1;
	}
	if (*type->group)
		snprintf(api_version, sizeof api_version, "%s/%s", type->group, type->version);
	else
		snprintf(api_version, sizeof api_version, "%s", type->version);
	cJSON_ArrayForEach(item, items) {
		if (!cJSON_GetObjectItemCaseSensitive(item, "kind"))
			cJSON_AddStringToObject(item, "kind", type->kind);
		if (!cJSON_GetObjectItemCaseSensitive(item, "apiVersion"))
			cJSON_AddStringToObject(item, "apiVersion", api_version);
		if (fn(item, ud) != 0) {
			k8s_set_error(err, "Stopped", "listing stopped by the caller");
			return -1;
		}
	}
	*token = next && *next ? xstrdup(next) : NULL;
	return 0;
}

int k8s_list(struct k8s_client *c, const struct k8s_resource_type *type, const char *ns,
	     const char *label_selector, int page_size, k8s_object_fn fn, void *ud,
	     struct k8s_error *err)
{
	char *path = k8s_resource_path(type->group, type->version, type->plural,
				       type->namespaced ? ns : NULL, NULL);
	struct strbuf q = STRBUF_INIT;
	char *token = NULL;
	int rc = 0, restarts = 0, pages = 0;

	if (page_size < 1)
		page_size = 500;
	/* not do-while: the restart's continue must begin the list again, not test for a token */
	for (;;) {
		cJSON *page = NULL;
		char *next = NULL;

		if (++pages > K8S_LIST_PAGES_MAX) {
			k8s_set_error(err, "TooManyPages", "the API server's list did not end after "
				      K8S_STR(K8S_LIST_PAGES_MAX) " pages (its continue token never ran out); stopped");
			rc = -1;
			break;
		}

		k8s_list_query(&q, path, label_selector, page_size, token);
		rc = k8s_get(c, q.buf, &page, err);
		if (rc < 0 && err->http_status == 410 && token && restarts < K8S_LIST_RESTARTS) {
			/* The continue token expired (the snapshot was compacted): start over. */
			restarts++;
			free(token);
			token = NULL;
			if (fn(NULL, ud) != 0) {
				k8s_set_error(err, "Stopped", "listing stopped by the caller");
				break;
			}
			rc = 0;
			continue;
		}
		if (rc == 0)
			rc = k8s_list_page(type, page, fn, ud, &next, err);
		if (rc == 0 && next && token && strcmp(next, token) == 0) {
			k8s_set_error(err, "EndlessList", "the API server's list repeats its continue token; stopped");
			rc = -1;
		}
		cJSON_Delete(page);
		free(token);
		token = next;
		if (rc != 0 || !token)
			break;
	}
	free(token);
	free(path);
	strbuf_release(&q);
	return rc;
}

/* ---- words ---- */

void k8s_error_describe(const struct k8s_error *err, char *buf, size_t buflen)
{
	if (err->curl_code || (!err->http_status && !*err->reason)) {	/* a failure in words */
		snprintf(buf, buflen, "%s", err->message);
		return;
	}
	if (err->http_status == 401)
		snprintf(buf, buflen, "token rejected (401 Unauthorized)");
	else if (err->http_status == 403)
		snprintf(buf, buflen, "forbidden (403): %s", err->message);
	else
		snprintf(buf, buflen, "%s: %s", *err->reason ? err->reason : "Error", err->message);
}

/* ---- discovery ---- */

static unsigned k8s_verbs(const cJSON *verbs)
{
	static const struct { const char *name; unsigned bit; } map[] = {
		{ "get", K8S_VERB_GET }, { "list", K8S_VERB_LIST }, { "watch", K8S_VERB_WATCH },
		{ "create", K8S_VERB_CREATE }, { "update", K8S_VERB_UPDATE }, { "patch", K8S_VERB_PATCH },
		{ "delete", K8S_VERB_DELETE }, { "deletecollection", K8S_VERB_DELETECOLLECTION },
	};
	const cJSON *v;
	unsigned bits = 0;

	cJSON_ArrayForEach(v, verbs) {
		const char *s = cJSON_GetStringValue(v);

		for (size_t i = 0; s && i < sizeof map / sizeof map[0]; i++)
			if (strcmp(s, map[i].name) == 0)
				bits |= map[i].bit;
	}
	return bits;
}

static void k8s_list_add(struct k8s_resource_list *list, const char *group, const char *version,
			 const char *kind, const char *plural, int namespaced, unsigned verbs)
{
	struct k8s_resource_type *t;

	if (!plural || !*plural || strchr(plural, '/') || !kind || !version)
		return;
	list->items = xrealloc(list->items, (list->n + 1) * sizeof *list->items);
	t = &list->items[list->n++];
	memset(t, 0, sizeof *t);
	snprintf(t->group, sizeof t->group, "%s", group ? group : "");
	snprintf(t->version, sizeof t->version, "%s", version);
	snprintf(t->kind, sizeof t->kind, "%s", kind);
	snprintf(t->plural, sizeof t->plural, "%s", plural);
	t->namespaced = namespaced;
	t->verbs = verbs;
}

#define J(obj, name) cJSON_GetObjectItemCaseSensitive((obj), (name))

/* An APIGroupDiscoveryList: versions are listed in order of preference; a stale version (its
 * aggregated server is down) is passed over. */
static void k8s_discover_aggregated(const cJSON *doc, struct k8s_resource_list *list)
{
	const cJSON *group, *version, *res;

	cJSON_ArrayForEach(group, J(doc, "items")) {
		const char *gname = cJSON_GetStringValue(J(J(group, "metadata"), "name"));

		cJSON_ArrayForEach(version, J(group, "versions")) {
			const char *fresh = cJSON_GetStringValue(J(version, "freshness"));
			const char *vname = cJSON_GetStringValue(J(version, "version"));

			if (fresh && strcmp(fresh, "Stale") == 0)
				continue;
			cJSON_ArrayForEach(res, J(version, "resources")) {
				const char *scope = cJSON_GetStringValue(J(res, "scope"));

				k8s_list_add(list, gname, vname, cJSON_GetStringValue(J(J(res, "responseKind"), "kind")),
					     cJSON_GetStringValue(J(res, "resource")),
					     scope && strcmp(scope, "Namespaced") == 0, k8s_verbs(J(res, "verbs")));
			}
			break;
		}
	}
}

/* An APIResourceList of one group version (the older discovery). */
static void k8s_discover_resources(const cJSON *doc, const char *group, const char *version,
				   struct k8s_resource_list *list)
{
	const cJSON *res;

	cJSON_ArrayForEach(res, J(doc, "resources"))
		k8s_list_add(list, group, version, cJSON_GetStringValue(J(res, "kind")),
			     cJSON_GetStringValue(J(res, "name")), cJSON_IsTrue(J(res, "namespaced")),
			     k8s_verbs(J(res, "verbs")));
}

static int k8s_discover_legacy(struct k8s_client *c, const char *root, const cJSON *doc,
			       struct k8s_resource_list *list, struct k8s_error *err)
{
	const cJSON *group;
	cJSON *res = NULL;
	struct strbuf path = STRBUF_INIT;
	int rc = 0;

	if (strcmp(root, "/api") == 0) {
		const char *v = cJSON_GetStringValue(cJSON_GetArrayItem(J(doc, "versions"), 0));

		if (!v)
			return 0;
		strbuf_addf(&path, "/api/%s", v);
		rc = k8s_get(c, path.buf, &res, err);
		if (rc == 0)
			k8s_discover_resources(res, "", v, list);
		cJSON_Delete(res);
		strbuf_release(&path);
		return rc;
	}
	cJSON_ArrayForEach(group, J(doc, "groups")) {
		const cJSON *pref = J(group, "preferredVersion");
		const char *gv = cJSON_GetStringValue(J(pref, "groupVersion"));
		const char *v = cJSON_GetStringValue(J(pref, "version"));

		if (!gv || !v)
			continue;
		strbuf_reset(&path);
		strbuf_addf(&path, "/apis/%s", gv);
		res = NULL;
		/* A group whose aggregated server is down answers 503: leave it out, like kubectl. */
		if (k8s_get(c, path.buf, &res, err) == 0)
			k8s_discover_resources(res, cJSON_GetStringValue(J(group, "name")), v, list);
		else if (err->http_status != 503)
			rc = -1;
		cJSON_Delete(res);
		if (rc < 0)
			break;
	}
	strbuf_release(&path);
	return rc;
}

int k8s_discover(struct k8s_client *c, enum k8s_discovery_mode mode, struct k8s_resource_list *out,
		 struct k8s_error *err)
{
	const char *accept = mode == K8S_DISCOVERY_AUTO ? K8S_ACCEPT_DISCOVERY : NULL;

	static const char *const roots[] = { "/api", "/apis" };

	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < 2; i++) {
		cJSON *doc = NULL;
		const char *kind;
		int rc = k8s_request_json(c, "GET", roots[i], NULL, NULL, accept, &doc, err);

		if (rc == 0) {
			kind = cJSON_GetStringValue(J(doc, "kind"));
			if (kind && strcmp(kind, "APIGroupDiscoveryList") == 0) {
				k8s_discover_aggregated(doc, out);
				out->aggregated = 1;
			} else {
				rc = k8s_discover_legacy(c, roots[i], doc, out, err);
			}
		}
		cJSON_Delete(doc);
		if (rc < 0) {
			k8s_resource_list_free(out);
			return -1;
		}
	}
	return 0;
}

void k8s_resource_list_free(struct k8s_resource_list *list)
{
	free(list->items);
	memset(list, 0, sizeof *list);
}

const struct k8s_resource_type *k8s_resource_find(const struct k8s_resource_list *list,
						  const char *group, const char *plural)
{
	for (size_t i = 0; i < list->n; i++)
		if (strcmp(list->items[i].group, group ? group : "") == 0 && strcmp(list->items[i].plural, plural) == 0)
			return &list->items[i];
	return NULL;
}
