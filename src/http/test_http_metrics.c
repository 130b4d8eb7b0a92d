/* The web workers' request counters: shared between processes, rendered as Prometheus text with
 * route patterns (never paths) as labels. */
#include "http_metrics.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_counts_from_forked_workers_render_as_prometheus(void)
{
	const char *methods[] = { "GET", "POST" }, *patterns[] = { "/clusters/:id", "/a\"b\\c" };
	char path[] = "/tmp/stowage-http-metrics-XXXXXX", err[256];
	int fd = mkstemp(path);
	struct http_metrics *m;
	const struct http_metrics *r;
	struct strbuf out = STRBUF_INIT;

	CHECK(fd >= 0);
	close(fd);
	m = http_metrics_create(path, methods, patterns, 2, err, sizeof err);
	CHECK(m != NULL);
	if (!m)
		return;
	for (int w = 0; w < 3; w++) {
		pid_t pid = fork();
		if (pid == 0) {
			for (int i = 0; i < 100; i++)
				http_metrics_record(m, 0, 200, 0.003);
			http_metrics_record(m, 1, 422, 0.3);
			http_metrics_record(m, -1, 404, 20);
			http_metrics_record(m, 0, 299, 0.02);
			_exit(0);
		}
	}
	while (wait(NULL) > 0)
		;
	r = http_metrics_open(path, err, sizeof err);
	CHECK(r != NULL);
	if (!r)
		return;
	http_metrics_render(r, &out);
	CHECK(strstr(out.buf, "stowage_http_requests_total{route=\"/clusters/:id\",method=\"GET\",code=\"200\"} 300\n") != NULL);
	CHECK(strstr(out.buf, "stowage_http_requests_total{route=\"/clusters/:id\",method=\"GET\",code=\"other\"} 3\n") != NULL);
	CHECK(strstr(out.buf, "route=\"/a\\\"b\\\\c\",method=\"POST\",code=\"422\"} 3\n") != NULL);
	CHECK(strstr(out.buf, "stowage_http_requests_total{route=\"(none)\",method=\"\",code=\"404\"} 3\n") != NULL);
	CHECK(strstr(out.buf, "stowage_http_request_duration_seconds_bucket{route=\"/clusters/:id\",method=\"GET\",le=\"0.005\"} 300\n") != NULL);
	CHECK(strstr(out.buf, "stowage_http_request_duration_seconds_bucket{route=\"/clusters/:id\",method=\"GET\",le=\"0.025\"} 303\n") != NULL);
	CHECK(strstr(out.buf, "stowage_http_request_duration_seconds_bucket{route=\"(none)\",method=\"\",le=\"10\"} 0\n") != NULL);
	CHECK(strstr(out.buf, "stowage_http_request_duration_seconds_bucket{route=\"(none)\",method=\"\",le=\"+Inf\"} 3\n") != NULL);
	CHECK(strstr(out.buf, "stowage_http_request_duration_seconds_count{route=\"/clusters/:id\",method=\"GET\"} 303\n") != NULL);
	CHECK(strstr(out.buf, "stowage_http_request_duration_seconds_sum{route=\"(none)\",method=\"\"} 60.000000\n") != NULL);
	strbuf_release(&out);
	http_metrics_close(r);
	munmap(m, sizeof *m);
	unlink(path);
}

static void test_refuses_what_is_not_a_metrics_file(void)
{
	char path[] = "/tmp/stowage-http-metrics-XXXXXX", err[256];
	int fd = mkstemp(path);

	CHECK(write(fd, "hello", 5) == 5);
	close(fd);
	CHECK(http_metrics_open(path, err, sizeof err) == NULL);
	CHECK(strstr(err, "not a metrics file") != NULL);
	unlink(path);
}

int main(void)
{
	RUN(test_counts_from_forked_workers_render_as_prometheus);
	RUN(test_refuses_what_is_not_a_metrics_file);
	return check_done();
}
