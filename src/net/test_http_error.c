/* libcurl failures in a user's words: the host and port from the URL the user gave, never the
 * address a name resolved to (which may be this deployment's own network). */
#include "http_error.h"
#include "check.h"

#include <curl/curl.h>

static void words(int code, const char *url, const char *detail, long timeout_ms, char *out, size_t n)
{
	http_error_curl_words(code, url, detail, timeout_ms, out, n);
}

static void test_each_failure_in_words(void)
{
	char out[256];

	words(CURLE_COULDNT_RESOLVE_HOST, "https://api.example.com:6443/api", "", 0, out, sizeof out);
	CHECK_STREQ(out, "cannot resolve host api.example.com");
	words(CURLE_COULDNT_CONNECT, "https://api.example.com:6443/api",
	      "Failed to connect to api.example.com port 6443 after 3 ms: Couldn't connect to server", 0, out, sizeof out);
	CHECK_STREQ(out, "connection refused to api.example.com:6443");
	CHECK(strstr(out, "3 ms") == NULL);
	words(CURLE_COULDNT_CONNECT, "https://s3.example.com/bucket", "", 0, out, sizeof out);
	CHECK_STREQ(out, "connection refused to s3.example.com:443");
	words(CURLE_OPERATION_TIMEDOUT, "https://s3.example.com/bucket", "Operation timed out after 5001 ms", 5000,
	      out, sizeof out);
	CHECK_STREQ(out, "timed out after 5 s talking to s3.example.com");
	words(CURLE_PEER_FAILED_VERIFICATION, "https://x.example", "SSL certificate problem: self-signed certificate",
	      0, out, sizeof out);
	CHECK_STREQ(out, "TLS verification failed: SSL certificate problem: self-signed certificate");
	words(CURLE_SSL_CONNECT_ERROR, "https://x.example", "wrong version number", 0, out, sizeof out);
	CHECK_STREQ(out, "TLS handshake with x.example failed: wrong version number");
	words(CURLE_RECV_ERROR, "http://x.example:9000/", "Connection reset by peer", 0, out, sizeof out);
	CHECK_STREQ(out, "connection to x.example dropped: Connection reset by peer");
	/* no URL, no detail: libcurl's own sentence */
	words(CURLE_TOO_MANY_REDIRECTS, NULL, NULL, 0, out, sizeof out);
	CHECK_STREQ(out, curl_easy_strerror(CURLE_TOO_MANY_REDIRECTS));
	/* a small buffer is cut, not overrun */
	char small[8];
	words(CURLE_COULDNT_RESOLVE_HOST, "https://api.example.com/", "", 0, small, sizeof small);
	CHECK_STREQ(small, "cannot ");
}

static void test_tls_failures_are_told_apart(void)
{
	CHECK(http_error_is_tls(CURLE_PEER_FAILED_VERIFICATION));
	CHECK(http_error_is_tls(CURLE_SSL_CONNECT_ERROR));
	CHECK(!http_error_is_tls(CURLE_COULDNT_CONNECT));
	CHECK(!http_error_is_tls(CURLE_OPERATION_TIMEDOUT));
}

int main(void)
{
	RUN(test_each_failure_in_words);
	RUN(test_tls_failures_are_told_apart);
	return check_done();
}
