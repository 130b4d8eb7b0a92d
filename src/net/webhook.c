#include "webhook.h"
#include "net_allow.h"
#include "hex.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

void webhook_sign(const char *secret, const char *timestamp, const char *body, size_t len,
		  char out[WEBHOOK_SIGNATURE_LEN + 1])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
	OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0), OSSL_PARAM_construct_end() };
	size_t n = 0;

	if (!ctx || !EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)timestamp, strlen(timestamp)) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)".", 1) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)body, len) ||
	    !EVP_MAC_final(ctx, mac, &n, sizeof mac) || n != 32)
		memset(mac, 0, sizeof mac);	/* unreachable short of a broken OpenSSL; never verifies */
	memcpy(out, "sha256=", 7);
	hex_encode(mac, 32, out + 7);
	OPENSSL_cleanse(mac, sizeof mac);
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(m);
}

/* The reply is not ours to read: only its status counts. */
static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void)ptr;
	(void)userdata;
	return size * nmemb;
}

long webhook_post(const struct net_allow *allow, const char *url, const char *secret, const char *body, long now,
		  long timeout_ms, char *err, size_t errlen)
{
	char pin[NET_ALLOW_RESOLVE_MAX], why[512], ts[32], sig[WEBHOOK_SIGNATURE_LEN + 1], header[160];
	char curl_err[CURL_ERROR_SIZE] = "";
	struct curl_slist *headers = NULL, *resolve = NULL;
	long status = -1;
	CURL *h;

	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
		snprintf(err, errlen, "the webhook URL must start with https:// or http://");
		return -1;
	}
	if (net_allow_check_url(allow, url, pin, sizeof pin, why, sizeof why) < 0) {
		snprintf(err, errlen, "the webhook URL is refused: %s", why);
		return -1;
	}
	if (!(h = curl_easy_init())) {
		snprintf(err, errlen, "libcurl could not start");
		return -1;
	}
	snprintf(ts, sizeof ts, "%ld", now);
	webhook_sign(secret, ts, body, strlen(body), sig);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "User-Agent: Stowage-Webhook/1");
	snprintf(header, sizeof header, "X-Stowage-Timestamp: %s", ts);
	headers = curl_slist_append(headers, header);
	snprintf(header, sizeof header, "X-Stowage-Signature: %s", sig);
	headers = curl_slist_append(headers, header);
	if (*pin)
		resolve = curl_slist_append(NULL, pin);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	net_allow_pin(h, resolve, NULL);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
	CURLcode cc = curl_easy_perform(h);
	if (cc != CURLE_OK)
		snprintf(err, errlen, "no answer from the webhook URL: %s", curl_err[0] ? curl_err : curl_easy_strerror(cc));
	else
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_OK && (status < 200 || status > 299))
		snprintf(err, errlen, "the webhook URL answered HTTP %ld", status);
	OPENSSL_cleanse(sig, sizeof sig);
	curl_slist_free_all(headers);
	curl_slist_free_all(resolve);
	curl_easy_cleanup(h);
	return status;
}
