/* A libcurl failure in the words a user needs ("connection refused to 10.0.0.5:6443"), shared
 * by the Kubernetes and S3 clients. */
#ifndef STOWAGE_HTTP_ERROR_H
#define STOWAGE_HTTP_ERROR_H

#include <stddef.h>

/* url: the request's URL (host and port are named from it); detail: libcurl's error buffer;
 * timeout_ms: the timeout that applied, for "timed out after N s". */
void http_error_curl_words(int curl_code, const char *url, const char *detail, long timeout_ms,
			   char *out, size_t outlen);
/* 1 when curl_code is a TLS verification or handshake failure. */
int http_error_is_tls(int curl_code);

#endif
