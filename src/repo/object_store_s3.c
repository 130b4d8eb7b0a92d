/* A repository in an S3 bucket (AWS or S3-compatible), adapting s3_client to the object store
 * interface. URL: s3://bucket[/prefix][?endpoint=URL&region=R&path_style=1]. Credentials come
 * from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, never from the URL or
 * the command line, where other users could read them. An s3_client is one connection and not
 * safe to share, so each call borrows one from a pool that grows to the number of threads. */
#include "object_store.h"
#include "s3_client.h"
#include "sigv4.h"
#include "strbuf.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

struct s3_store {
	struct object_store base;
	struct s3_conf conf;
	char *prefix;			/* "" or "dir/" */
	pthread_mutex_t mu;
	struct s3_client **idle;
	size_t nidle, cap;
};

static struct s3_client *borrow(struct s3_store *ss, char *err, size_t errlen)
{
	struct s3_client *c = NULL;

	pthread_mutex_lock(&ss->mu);
	if (ss->nidle)
		c = ss->idle[--ss->nidle];
	pthread_mutex_unlock(&ss->mu);
	return c ? c : s3_client_new(&ss->conf, NULL, err, errlen);
}

static void give_back(struct s3_store *ss, struct s3_client *c)
{
	pthread_mutex_lock(&ss->mu);
	if (ss->nidle == ss->cap) {
		ss->cap = ss->cap ? ss->cap * 2 : 8;
		ss->idle = xrealloc(ss->idle, ss->cap * sizeof *ss->idle);
	}
	ss->idle[ss->nidle++] = c;
	pthread_mutex_unlock(&ss->mu);
}

static char *full_key(struct s3_store *ss, const char *key)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "%s%s", ss->prefix, key);
	return strbuf_take(&sb);
}

static int not_found(const struct s3_error *e)
{
	return e->http_status == 404 || strcmp(e->code, "NoSuchKey") == 0;
}

/* A client for one object's request and the object's full key (free it); NULL with err when
 * the key is not valid or no client is to be had. */
static struct s3_client *borrow_for(struct s3_store *ss, const char *key, char **full, char *err, size_t errlen)
{
	struct s3_client *c;

	if (!object_key_valid(key)) {
		snprintf(err, errlen, "object key \"%s\": not a valid key", key);
		return NULL;
	}
	if (!(c = borrow(ss, err, errlen)))
		return NULL;
	*full = full_key(ss, key);
	return c;
}

static int fail(const char *verb, const char *key, const struct s3_error *e, char *err, size_t errlen)
{
	char words[600];

	s3_error_describe(e, words, sizeof words);
	snprintf(err, errlen, "%s %s: %s", verb, key, words);
	return -1;
}

static int s3s_put(struct object_store *os, const char *key, const void *data, size_t len,
		   const uint8_t *sha256, char *err, size_t errlen)
{
	struct s3_store *ss = (struct s3_store *)os;
	struct s3_error e = { 0 };
	struct s3_client *c;
	char *k, hex[65];
	int rc;

	if (!(c = borrow_for(ss, key, &k, err, errlen)))
		return -1;
	if (sha256)
		sigv4_hex(sha256, 32, hex);
	rc = s3_put_mem_hashed(c, k, data, len, sha256 ? hex : NULL, &e);
	give_back(ss, c);
	if (rc < 0)
		fail("put", key, &e, err, errlen);
	free(k);
	return rc < 0 ? -1 : 0;
}

/* The most a read of a whole object keeps. The largest object a repository writes is a pack
 * (16 MiB and one blob past it) or its index (48 bytes a blob, ~33 MiB at worst); the endpoint is
 * the tenant's, and one that sends more or never ends must fail the read, not grow the mover. */
#define S3_STORE_WHOLE_MAX (64u << 20)

struct bounded_sink {
	struct strbuf *out;
	size_t left;		/* what may still come */
	int over;
};

/* Stops the transfer at the first byte past the bound, not after it has all been kept. */
static int append_bounded(const void *data, size_t len, void *ud)
{
	struct bounded_sink *s = ud;

	if (len > s->left) {
		s->over = 1;
		return 1;
	}
	strbuf_add(s->out, data, len);
	s->left -= len;
	return 0;
}

static int s3s_get(struct object_store *os, const char *key, uint64_t offset, uint64_t len,
		   struct strbuf *out, char *err, size_t errlen)
{
	struct s3_store *ss = (struct s3_store *)os;
	struct s3_error e = { 0 };
	struct s3_client *c;
	size_t start = out->len;
	struct bounded_sink sink = { out, len ? len : S3_STORE_WHOLE_MAX, 0 };
	char *k;
	int rc;

	if (!(c = borrow_for(ss, key, &k, err, errlen)))
		return -1;
	if (len)	/* one allocation, not a copy at every doubling */
		strbuf_grow(out, len);
	rc = s3_get_stream(c, k, (int64_t)offset, len ? (int64_t)len : -1, append_bounded, &sink, &e);
	give_back(ss, c);
	free(k);
	if (rc < 0) {
		out->len = start;
		if (sink.over && len) {
			snprintf(err, errlen, "object %s: the endpoint sent more than the %llu bytes asked for",
				 key, (unsigned long long)len);
			return -1;
		}
		if (sink.over) {
			snprintf(err, errlen, "object %s: larger than %u MiB, more than a repository writes",
				 key, S3_STORE_WHOLE_MAX >> 20);
			return -1;
		}
		if (not_found(&e)) {
			snprintf(err, errlen, "object %s: not found", key);
			return OBJECT_STORE_NOT_FOUND;
		}
		return fail("get", key, &e, err, errlen);
	}
	if (len && out->len - start != len) {
		out->len = start;
		snprintf(err, errlen, "object %s: range %llu+%llu is outside the object",
			 key, (unsigned long long)offset, (unsigned long long)len);
		return -1;
	}
	strbuf_grow(out, 0);
	return 0;
}

static int s3s_head(struct object_store *os, const char *key, struct object_info *info,
		    char *err, size_t errlen)
{
	struct s3_store *ss = (struct s3_store *)os;
	struct s3_error e = { 0 };
	struct s3_client *c;
	int64_t size = 0;
	char etag[128], *k;
	int rc;

	if (!(c = borrow_for(ss, key, &k, err, errlen)))
		return -1;
	rc = s3_head(c, k, &size, etag, sizeof etag, &e);
	give_back(ss, c);
	free(k);
	if (rc < 0)
		return not_found(&e) ? 0 : fail("head", key, &e, err, errlen);
	if (info) {
		info->size = (uint64_t)size;
		info->mtime = 0;	/* HEAD's date is not parsed: only listings carry times we use */
	}
	return 1;
}

/* "2026-11-25T12:57:32.000Z" */
static time_t parse_iso8601(const char *s)
{
	struct tm tm = { 0 };

	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			 &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return timegm(&tm);
}

struct list_ctx {
	const char *prefix;	/* the store's, stripped from every key */
	size_t strip;
	object_store_list_cb cb;
	void *arg;
	int rc;
};

static int list_one(const struct s3_object_info *obj, void *ud)
{
	struct list_ctx *lc = ud;
	struct object_info info = { (uint64_t)obj->size, parse_iso8601(obj->last_modified) };

	/* the endpoint is the tenant's: a key outside our prefix is not one of ours, whatever
	 * it lists */
	if (strncmp(obj->key, lc->prefix, lc->strip) != 0 || !obj->key[lc->strip] ||
	    !object_key_valid(obj->key + lc->strip))
		return 0;
	lc->rc = lc->cb(obj->key + lc->strip, &info, lc->arg);
	return lc->rc;
}

static int s3s_list(struct object_store *os, const char *prefix, object_store_list_cb cb, void *arg,
		    char *err, size_t errlen)
{
	struct s3_store *ss = (struct s3_store *)os;
	struct list_ctx lc = { ss->prefix, strlen(ss->prefix), cb, arg, 0 };
	struct s3_error e = { 0 };
	struct s3_client *c;
	char *k;
	int rc;

	if (!(c = borrow(ss, err, errlen)))
		return -1;
	k = full_key(ss, prefix);
	rc = s3_list(c, k, 1000, list_one, &lc, &e);
	give_back(ss, c);
	free(k);
	if (lc.rc)
		return lc.rc;
	return rc < 0 ? fail("list", prefix, &e, err, errlen) : 0;
}

static int s3s_del(struct object_store *os, const char *key, char *err, size_t errlen)
{
	struct s3_store *ss = (struct s3_store *)os;
	struct s3_error e = { 0 };
	struct s3_client *c;
	char *k;
	int rc;

	if (!(c = borrow_for(ss, key, &k, err, errlen)))
		return -1;
	rc = s3_delete(c, k, &e);
	give_back(ss, c);
	free(k);
	return rc < 0 ? fail("delete", key, &e, err, errlen) : 0;
}

static void conf_free(struct s3_conf *conf)
{
	free(conf->endpoint);
	free(conf->region);
	free(conf->resolve);
	free(conf->bucket);
	free(conf->access_key);
	if (conf->secret_key) {
		OPENSSL_cleanse(conf->secret_key, strlen(conf->secret_key));
		free(conf->secret_key);
	}
}

static void s3s_close(struct object_store *os)
{
	struct s3_store *ss = (struct s3_store *)os;

	for (size_t i = 0; i < ss->nidle; i++)
		s3_client_free(ss->idle[i]);
	free(ss->idle);
	conf_free(&ss->conf);
	free(ss->prefix);
	pthread_mutex_destroy(&ss->mu);
	free(ss);
}

static const struct object_store_ops s3_ops = {
	s3s_put, s3s_get, s3s_head, s3s_list, s3s_del, s3s_close,
};

static int bucket_valid(const char *b, size_t n)
{
	if (n < 3 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '.' || b[i] == '-'))
			return 0;
	return 1;
}

/* endpoint=, region=, resolve=, path_style=, deadline_s=: nothing else, nothing twice. */
static int parse_query(struct s3_conf *conf, char *q, const char *url, char *err, size_t errlen)
{
	char *save = NULL;

	for (char *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '='), **slot = NULL;

		if (eq)
			*eq++ = '\0';
		if (eq && strcmp(kv, "endpoint") == 0)
			slot = &conf->endpoint;
		else if (eq && strcmp(kv, "region") == 0)
			slot = &conf->region;
		else if (eq && strcmp(kv, "resolve") == 0)
			slot = &conf->resolve;	/* the runner's pin: the endpoint's host is not resolved again */
		else if (eq && strcmp(kv, "path_style") == 0 && (strcmp(eq, "0") == 0 || strcmp(eq, "1") == 0)) {
			conf->path_style = eq[0] == '1';
			continue;
		} else if (eq && strcmp(kv, "deadline_s") == 0 && !conf->op_timeout_ms) {
			char *end;
			long v = strtol(eq, &end, 10);

			if (*eq >= '1' && *eq <= '9' && !*end && v <= 86400) {
				conf->op_timeout_ms = v * 1000;	/* total deadline of one request */
				continue;
			}
		}
		if (!slot || *slot || !*eq) {
			snprintf(err, errlen, "repository URL %s: unknown, repeated or empty parameter \"%s\" (endpoint, region, resolve, path_style=0|1, deadline_s=1..86400)", url, kv);
			return -1;
		}
		*slot = xstrdup(eq);
	}
	return 0;
}

struct object_store *object_store_s3_open(const char *url, char *err, size_t errlen)
{
	struct s3_store *ss;
	const char *rest = url + 5, *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
	size_t blen = strcspn(rest, "/?");
	char *path, *q;

	if (strncmp(url, "s3://", 5) != 0 || !bucket_valid(rest, blen)) {
		snprintf(err, errlen, "repository URL %s: expected s3://bucket[/prefix] with a bucket of 3 to 63 of [a-z0-9.-]", url);
		return NULL;
	}
	if (!ak || !*ak || !sk || !*sk) {
		snprintf(err, errlen, "repository URL %s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment", url);
		return NULL;
	}
	ss = xcalloc(1, sizeof *ss);
	ss->base.ops = &s3_ops;
	pthread_mutex_init(&ss->mu, NULL);
	ss->conf.bucket = xstrndup(rest, blen);
	ss->conf.access_key = xstrdup(ak);
	ss->conf.secret_key = xstrdup(sk);
	rest += blen;
	path = xstrndup(rest, strcspn(rest, "?"));
	q = strchr(rest, '?') ? xstrdup(strchr(rest, '?') + 1) : NULL;
	{
		const char *p = path[0] == '/' ? path + 1 : path;
		size_t n = strlen(p);
		struct strbuf sb = STRBUF_INIT;

		while (n && p[n - 1] == '/')
			n--;
		strbuf_add(&sb, p, n);
		if (n && !object_key_valid(sb.buf)) {
			snprintf(err, errlen, "repository URL %s: prefix \"%s\" is not [A-Za-z0-9._-] segments", url, sb.buf);
			strbuf_release(&sb);
			goto fail;
		}
		if (n)
			strbuf_addch(&sb, '/');
		ss->prefix = strbuf_take(&sb);
	}
	if (q && parse_query(&ss->conf, q, url, err, errlen) < 0)
		goto fail;
	free(path);
	free(q);
	/* one client now, so a wrong endpoint fails here rather than at the first put */
	{
		struct s3_client *c = s3_client_new(&ss->conf, NULL, err, errlen);
		if (!c) {
			s3s_close(&ss->base);
			return NULL;
		}
		give_back(ss, c);
	}
	return &ss->base;
fail:
	free(path);
	free(q);
	s3s_close(&ss->base);
	return NULL;
}
