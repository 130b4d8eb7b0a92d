#include "http_error.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

int http_error_is_tls(int curl_code)
{
	switch (curl_code) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		return 1;
	default:
		return 0;
	}
}

void http_error_curl_words(int curl_code, const char *url, const char *detail, long timeout_ms,
			   char *out, size_t outlen)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL;
	const char *why = detail && *detail ? detail : curl_easy_strerror((CURLcode)curl_code);

	if (url && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
		curl_url_get(u, CURLUPART_HOST, &host, 0);
		curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
	}
	switch (curl_code) {
	case CURLE_COULDNT_RESOLVE_HOST:
		snprintf(out, outlen, "cannot resolve host %s", host ? host : "(unknown)");
		break;
	case CURLE_COULDNT_CONNECT:
		if (strstr(why, "refused") || strstr(why, "Couldn't connect"))
			snprintf(out, outlen, "connection refused to %s:%s", host ? host : "?", port ? port : "?");
		else
			snprintf(out, outlen, "cannot connect to %s:%s: %s", host ? host : "?", port ? port : "?", why);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		snprintf(out, outlen, "timed out after %ld s talking to %s", (timeout_ms + 999) / 1000,
			 host ? host : "(unknown)");
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		snprintf(out, outlen, "TLS verification failed: %s", why);
		break;
	case CURLE_SSL_CONNECT_ERROR:
		snprintf(out, outlen, "TLS handshake with %s failed: %s", host ? host : "(unknown)", why);
		break;
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		snprintf(out, outlen, "the CA bundle cannot be used: %s", why);
		break;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		snprintf(out, outlen, "connection to %s dropped: %s", host ? host : "(unknown)", why);
		break;
	default:
		snprintf(out, outlen, "%s", why);
	}
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
}
