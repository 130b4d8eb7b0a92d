#include "oidc_fetch.h"
#include "strbuf.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

struct reply {
	struct strbuf body;
	int too_long;
};

static size_t on_data(char *data, size_t size, size_t n, void *ud)
{
	struct reply *r = ud;

	if (r->body.len + size * n > OIDC_REPLY_MAX) {
		r->too_long = 1;
		return 0;
	}
	strbuf_add(&r->body, data, size * n);
	return size * n;
}

int oidc_url_check(const char *url, char *err, size_t errlen)
{
	size_t len = url ? strlen(url) : 0;
	const char *host;

	if (len == 0 || len > 2048) {
		snprintf(err, errlen, "is empty or longer than 2048 characters");
		return -1;
	}
	if (strncmp(url, "https://", 8) == 0)
		host = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		host = url + 7;
	else {
		snprintf(err, errlen, "must start with https:// (or http://)");
		return -1;
	}
	for (const unsigned char *p = (const unsigned char *)url; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == '#' || *p == '\\') {
			snprintf(err, errlen, "holds a space, a control character, a '#' or a '\\'");
			return -1;
		}
	size_t hlen = strcspn(host, "/?");
	if (hlen == 0 || memchr(host, '@', hlen)) {
		snprintf(err, errlen, "has no host, or user info before it");
		return -1;
	}
	return 0;
}

cJSON *oidc_fetch_json(const struct net_allow *allow, const char *url, const char *form, const char *authorization,
		       long *status, char *err, size_t errlen)
{
	char pin[NET_ALLOW_RESOLVE_MAX], why[256];
	struct curl_slist *resolve = NULL, *headers = NULL;
	struct reply r = { STRBUF_INIT, 0 };
	struct strbuf auth = STRBUF_INIT;
	cJSON *json = NULL;
	CURL *h;
	CURLcode rc;

	*status = 0;
	if (oidc_url_check(url, why, sizeof why) < 0) {
		snprintf(err, errlen, "%.200s: the URL %s", url ? url : "", why);
		return NULL;
	}
	if (net_allow_check_url(allow, url, pin, sizeof pin, err, errlen) < 0)
		return NULL;
	if (!(h = curl_easy_init())) {
		snprintf(err, errlen, "no HTTP client");
		return NULL;
	}
	if (*pin)
		resolve = curl_slist_append(NULL, pin);
	headers = curl_slist_append(NULL, "Accept: application/json");
	if (authorization) {
		strbuf_addf(&auth, "Authorization: %s", authorization);
		headers = curl_slist_append(headers, auth.buf);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	net_allow_pin(h, resolve, NULL);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)OIDC_FETCH_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)OIDC_FETCH_TIMEOUT_MS / 2);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "stowage-runner");
	if (form)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	if (r.too_long)
		snprintf(err, errlen, "%.200s: the reply is longer than %d bytes", url, OIDC_REPLY_MAX);
	else if (rc != CURLE_OK)
		snprintf(err, errlen, "%.200s: %s", url, curl_easy_strerror(rc));
	else if (!(json = cJSON_ParseWithLength(r.body.buf ? r.body.buf : "", r.body.len)) || !cJSON_IsObject(json)) {
		cJSON_Delete(json);
		json = NULL;
		snprintf(err, errlen, "%.200s: HTTP %ld, and the reply is not a JSON object", url, *status);
	}
	if (auth.buf)
		OPENSSL_cleanse(auth.buf, auth.len);
	strbuf_release(&auth);
	strbuf_release(&r.body);
	curl_slist_free_all(headers);
	curl_slist_free_all(resolve);
	curl_easy_cleanup(h);
	return json;
}

char *oidc_basic_auth(const char *client_id, const char *client_secret)
{
	struct strbuf pair = STRBUF_INIT;
	char *out;
	int n;

	char *id = curl_easy_escape(NULL, client_id, 0), *secret = curl_easy_escape(NULL, client_secret, 0);

	if (!id || !secret) {
		curl_free(id);
		curl_free(secret);
		return NULL;
	}
	strbuf_addf(&pair, "%s:%s", id, secret);
	OPENSSL_cleanse(secret, strlen(secret));
	curl_free(id);
	curl_free(secret);
	out = malloc(6 + pair.len * 4 / 3 + 8);
	if (out) {
		memcpy(out, "Basic ", 6);
		n = EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)pair.buf, (int)pair.len);
		out[6 + n] = '\0';
	}
	OPENSSL_cleanse(pair.buf, pair.len);
	strbuf_release(&pair);
	return out;
}
