/* When and how long to wait before retrying an HTTP request: one policy for the Kubernetes
 * and S3 clients. Exponential backoff with full jitter, capped per wait and in total, and a
 * server's Retry-After honoured within the total budget. */
#ifndef STOWAGE_HTTP_RETRY_H
#define STOWAGE_HTTP_RETRY_H

#include <time.h>

struct http_retry_policy {
	int max_attempts;	/* including the first one */
	long base_ms;		/* first backoff ceiling; doubles each attempt */
	long max_delay_ms;	/* no backoff wait is longer (a Retry-After may be) */
	long max_total_ms;	/* no retry starts after this much time spent */
};

/* 5 attempts, 200 ms doubling to at most 10 s, 60 s in all. */
extern const struct http_retry_policy http_retry_default;

/* 1 when a reply with this status is worth retrying: 429 and every 5xx but 501 and 505. */
int http_retry_status(long http_status);
/* 1 when this libcurl error is worth retrying: a reset or dropped connection or a timeout,
 * and only for an idempotent request (the server may have acted on the first one). */
int http_retry_curl(int curl_code, int idempotent);
/* Milliseconds a Retry-After value asks for ("120" or an HTTP date), or -1 when absent or
 * malformed. A date in the past gives 0. */
long http_retry_after_ms(const char *value, time_t now);
/* How long to wait before attempt number `attempt` (2 for the first retry), given
 * retry_after_ms (-1 when the server named none) and the time already spent; -1 means give
 * up. `random` is any 32-bit random value (jitter). */
long http_retry_delay_ms(const struct http_retry_policy *p, int attempt, long retry_after_ms,
			 long elapsed_ms, unsigned random);
/* Monotonic milliseconds, and a sleep of ms milliseconds. */
long http_retry_now_ms(void);
void http_retry_sleep_ms(long ms);
/* A 32-bit random value for jitter (not for secrets). */
unsigned http_retry_random(void);

#endif
