/* One request to the Stowage API: the token as a bearer, JSON asked for, TLS verified, no
 * redirect followed (a 303 says where the change went), the reply capped. */
#include "cli.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REPLY_MAX_BYTES (64u << 20)

struct sink {
	struct strbuf *body;
	int overflow;
};

static size_t write_body(char *data, size_t size, size_t n, void *userdata)
{
	struct sink *s = userdata;

	if (s->body->len + size * n > REPLY_MAX_BYTES) {
		s->overflow = 1;
		return 0;
	}
	strbuf_add(s->body, data, size * n);
	return size * n;
}

void cli_reply_free(struct cli_reply *reply)
{
	strbuf_release(&reply->body);
	free(reply->content_type);
	reply->content_type = NULL;
}

int cli_request(const struct cli_config *c, const char *method, const char *path, const cJSON *body,
		struct cli_reply *reply, char *err, size_t errlen)
{
	CURL *curl = curl_easy_init();
	struct curl_slist *headers = NULL;
	struct strbuf url = STRBUF_INIT, auth = STRBUF_INIT;
	struct sink sink = { &reply->body, 0 };
	char *json = NULL, *ctype = NULL;
	CURLcode rc;
	int ret = -1;

	memset(reply, 0, sizeof *reply);
	if (!curl) {
		snprintf(err, errlen, "libcurl could not start");
		return -1;
	}
	strbuf_addf(&url, "%s%s", c->url, path);
	strbuf_addf(&auth, "Authorization: Bearer %s", c->token);
	headers = curl_slist_append(headers, auth.buf);
	headers = curl_slist_append(headers, "Accept: application/json");
	curl_easy_setopt(curl, CURLOPT_URL, url.buf);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 15L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 300L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "stowage-cli");
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
	if (strcmp(method, "POST") == 0) {
		json = body ? cJSON_PrintUnformatted(body) : NULL;
		headers = curl_slist_append(headers, "Content-Type: application/json");
		curl_easy_setopt(curl, CURLOPT_POST, 1L);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json ? json : "{}");
	}
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	rc = curl_easy_perform(curl);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s %s: %s", method, url.buf,
			 sink.overflow ? "the reply is larger than 64 MiB" : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply->status);
	curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ctype);
	reply->content_type = xstrdup(ctype ? ctype : "");
	ret = 0;
out:
	memset(auth.buf, 0, auth.len);
	strbuf_release(&auth);
	strbuf_release(&url);
	curl_slist_free_all(headers);
	free(json);
	curl_easy_cleanup(curl);
	return ret;
}
