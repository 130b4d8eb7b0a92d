/* stowage-metrics' request parsing: what a scraper sends, and what it must refuse. */
#include "metrics_http.h"
#include "check.h"

#include <string.h>

static int parse(const char *req, char *path, int *head)
{
	return metrics_request_parse(req, strlen(req), path, 64, head);
}

static void test_get_and_head(void)
{
	char path[64];
	int head;

	CHECK_INTEQ(parse("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", path, &head), 200);
	CHECK_STREQ(path, "/metrics");
	CHECK_INTEQ(head, 0);
	CHECK_INTEQ(parse("HEAD /metrics?x=1 HTTP/1.0\n\n", path, &head), 200);
	CHECK_STREQ(path, "/metrics");
	CHECK_INTEQ(head, 1);
}

static void test_incomplete_waits(void)
{
	char path[64];
	int head;

	CHECK_INTEQ(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n", path, &head), 0);
	CHECK_INTEQ(parse("", path, &head), 0);
}

static void test_refusals(void)
{
	char path[64], big[METRICS_REQUEST_MAX + 10];
	int head;

	CHECK_INTEQ(parse("POST /metrics HTTP/1.1\r\n\r\n", path, &head), 405);
	CHECK_INTEQ(parse("GET metrics HTTP/1.1\r\n\r\n", path, &head), 400);
	CHECK_INTEQ(parse("GET /metrics HTTP/2.0\r\n\r\n", path, &head), 400);
	CHECK_INTEQ(parse("GET /met\x01rics HTTP/1.1\r\n\r\n", path, &head), 400);
	CHECK_INTEQ(parse("GET /metrics\r\n\r\n", path, &head), 400);
	CHECK_INTEQ(parse("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n", path, &head), 414);
	memset(big, 'a', sizeof big);
	CHECK_INTEQ(metrics_request_parse(big, sizeof big, path, sizeof path, &head), 431);
}

int main(void)
{
	RUN(test_get_and_head);
	RUN(test_incomplete_waits);
	RUN(test_refusals);
	return check_done();
}
