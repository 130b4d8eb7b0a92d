#include "http_retry.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

const struct http_retry_policy http_retry_default = {
	.max_attempts = 5,
	.base_ms = 200,
	.max_delay_ms = 10000,
	.max_total_ms = 60000,
};

int http_retry_status(long http_status)
{
	if (http_status == 429)
		return 1;
	/* 501 Not Implemented and 505 HTTP Version Not Supported will not change. */
	return http_status >= 500 && http_status <= 599 && http_status != 501 && http_status != 505;
}

int http_retry_curl(int curl_code, int idempotent)
{
	if (!idempotent)
		return 0;
	switch (curl_code) {
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

long http_retry_after_ms(const char *value, time_t now)
{
	struct tm tm;
	const char *end;
	char *num_end;
	long secs;

	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	if (*value >= '0' && *value <= '9') {
		errno = 0;
		secs = strtol(value, &num_end, 10);
		while (*num_end == ' ' || *num_end == '\t' || *num_end == '\r' || *num_end == '\n')
			num_end++;
		if (errno || *num_end || secs > 86400)
			return -1;
		return secs * 1000;
	}
	/* IMF-fixdate, the only date form senders may generate: "Sun, 06 Nov 1994 08:49:37 GMT". */
	memset(&tm, 0, sizeof tm);
	end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end || (*end && strspn(end, " \t\r\n") != strlen(end)))
		return -1;
	secs = (long)(timegm(&tm) - now);
	if (secs < 0)
		return 0;
	return secs > 86400 ? -1 : secs * 1000;
}

long http_retry_delay_ms(const struct http_retry_policy *p, int attempt, long retry_after_ms,
			 long elapsed_ms, unsigned random)
{
	long ceiling = p->base_ms, delay;

	if (attempt > p->max_attempts || elapsed_ms >= p->max_total_ms)
		return -1;
	for (int i = 2; i < attempt && ceiling < p->max_delay_ms; i++)
		ceiling *= 2;
	if (ceiling > p->max_delay_ms)
		ceiling = p->max_delay_ms;
	/* Full jitter: anywhere in [ceiling/2, ceiling], so that clients that failed together do
	 * not come back together, yet each waits a little. */
	delay = ceiling / 2 + (long)(random % (unsigned long)(ceiling / 2 + 1));
	/* A server's Retry-After wins over our guess, even past max_delay_ms, but never past
	 * the total budget: then we give up rather than wait less than asked. */
	if (retry_after_ms > delay)
		delay = retry_after_ms;
	if (elapsed_ms + delay > p->max_total_ms)
		return -1;
	return delay;
}

long http_retry_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void http_retry_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

unsigned http_retry_random(void)
{
	unsigned r = 0;

	if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
		r = (unsigned)http_retry_now_ms();
	return r;
}
