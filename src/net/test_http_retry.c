#include "http_retry.h"
#include "check.h"

#include <curl/curl.h>

static const struct http_retry_policy policy = {
	.max_attempts = 6, .base_ms = 100, .max_delay_ms = 1000, .max_total_ms = 5000,
};

static void test_backoff_grows_within_jittered_bounds(void)
{
	/* Attempt n waits within [c/2, c] where c = base * 2^(n-2), capped at max_delay. */
	long want_ceiling[] = { 0, 0, 100, 200, 400, 800, 1000 };

	for (int attempt = 2; attempt <= 6; attempt++) {
		long c = want_ceiling[attempt];

		CHECK_INTEQ(http_retry_delay_ms(&policy, attempt, -1, 0, 0), c / 2);
		CHECK_INTEQ(http_retry_delay_ms(&policy, attempt, -1, 0, (unsigned)(c / 2)), c);
		for (unsigned r = 0; r < 5000; r += 37) {
			long d = http_retry_delay_ms(&policy, attempt, -1, 0, r * 2654435761u);

			CHECK(d >= c / 2 && d <= c);
		}
	}
}

static void test_gives_up_after_attempts_or_time(void)
{
	CHECK_INTEQ(http_retry_delay_ms(&policy, 7, -1, 0, 0), -1);
	CHECK_INTEQ(http_retry_delay_ms(&policy, 2, -1, 5000, 0), -1);
	/* The wait itself would cross the budget. */
	CHECK_INTEQ(http_retry_delay_ms(&policy, 6, -1, 4600, 0), -1);
	CHECK_INTEQ(http_retry_delay_ms(&policy, 6, -1, 4400, 0), 500);
}

static void test_retry_after_wins_but_within_budget(void)
{
	CHECK_INTEQ(http_retry_delay_ms(&policy, 2, 3000, 0, 0), 3000);
	CHECK_INTEQ(http_retry_delay_ms(&policy, 2, 3000, 2500, 0), -1);
	/* A shorter Retry-After than our backoff does not make us hammer. */
	CHECK_INTEQ(http_retry_delay_ms(&policy, 5, 10, 0, 0), 400);
}

static void test_retry_after_parsing(void)
{
	time_t now = 784111777;	/* Sun, 06 Nov 1994 08:49:37 GMT */

	CHECK_INTEQ(http_retry_after_ms("120", now), 120000);
	CHECK_INTEQ(http_retry_after_ms(" 0\r\n", now), 0);
	CHECK_INTEQ(http_retry_after_ms("Sun, 06 Nov 1994 08:49:47 GMT", now), 10000);
	CHECK_INTEQ(http_retry_after_ms("Sun, 06 Nov 1994 08:49:00 GMT", now), 0);
	CHECK_INTEQ(http_retry_after_ms("soon", now), -1);
	CHECK_INTEQ(http_retry_after_ms("12abc", now), -1);
	CHECK_INTEQ(http_retry_after_ms("-5", now), -1);
	CHECK_INTEQ(http_retry_after_ms("99999999999999999999", now), -1);
	CHECK_INTEQ(http_retry_after_ms(NULL, now), -1);
}

static void test_what_is_retryable(void)
{
	CHECK(http_retry_status(429));
	CHECK(http_retry_status(500));
	CHECK(http_retry_status(503));
	CHECK(!http_retry_status(501));
	CHECK(!http_retry_status(404));
	CHECK(!http_retry_status(409));
	CHECK(http_retry_curl(CURLE_RECV_ERROR, 1));
	CHECK(http_retry_curl(CURLE_OPERATION_TIMEDOUT, 1));
	CHECK(!http_retry_curl(CURLE_RECV_ERROR, 0));
	CHECK(!http_retry_curl(CURLE_COULDNT_CONNECT, 1));
	CHECK(!http_retry_curl(CURLE_PEER_FAILED_VERIFICATION, 1));
}

int main(void)
{
	RUN(test_backoff_grows_within_jittered_bounds);
	RUN(test_gives_up_after_attempts_or_time);
	RUN(test_retry_after_wins_but_within_budget);
	RUN(test_retry_after_parsing);
	RUN(test_what_is_retryable);
	return check_done();
}
