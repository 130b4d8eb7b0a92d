#include "http_metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const int statuses[HTTP_METRICS_NSTATUS - 1] = {
	200, 201, 303, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 502, 503, 504,
};
static const double buckets[HTTP_METRICS_NBUCKETS] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };

struct http_metrics *http_metrics_create(const char *path, const char *const *methods,
					 const char *const *patterns, size_t n, char *err, size_t errlen)
{
	struct http_metrics *m;
	int fd;

	if (n > HTTP_METRICS_MAX_ROUTES) {
		snprintf(err, errlen, "%zu routes, more than the %d the metrics file holds", n, HTTP_METRICS_MAX_ROUTES);
		return NULL;
	}
	unlink(path);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0 || ftruncate(fd, sizeof *m) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
		return NULL;
	}
	memset(m, 0, sizeof *m);
	for (size_t i = 0; i < n; i++) {
		snprintf(m->routes[i].method, sizeof m->routes[i].method, "%s", methods[i]);
		snprintf(m->routes[i].pattern, sizeof m->routes[i].pattern, "%s", patterns[i]);
	}
	snprintf(m->routes[n].method, sizeof m->routes[n].method, "%s", "");
	snprintf(m->routes[n].pattern, sizeof m->routes[n].pattern, "%s", "(none)");
	m->nroutes = (uint32_t)n;
	m->started_at = (int64_t)time(NULL);
	m->size = sizeof *m;
	/* the magic last: a reader never sees a half-written header as valid */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(m->magic, "STOWMET1", 8);
	return m;
}

void http_metrics_record(struct http_metrics *m, int route, int status, double seconds)
{
	struct http_metrics_route *r;
	size_t s = HTTP_METRICS_NSTATUS - 1, b = 0;

	if (!m)
		return;
	r = &m->routes[route >= 0 && (uint32_t)route < m->nroutes ? (uint32_t)route : m->nroutes];
	for (size_t i = 0; i < HTTP_METRICS_NSTATUS - 1; i++)
		if (statuses[i] == status)
			s = i;
	while (b < HTTP_METRICS_NBUCKETS && seconds > buckets[b])
		b++;
	__atomic_fetch_add(&r->requests[s], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&r->latency[b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&r->latency_sum_us, (uint64_t)(seconds > 0 ? seconds * 1e6 : 0), __ATOMIC_RELAXED);
}

const struct http_metrics *http_metrics_open(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	const struct http_metrics *m;

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != (off_t)sizeof *m) {
		snprintf(err, errlen, "%s: not a metrics file of this build (size)", path);
		close(fd);
		return NULL;
	}
	m = mmap(NULL, sizeof *m, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
		return NULL;
	}
	if (memcmp(m->magic, "STOWMET1", 8) != 0 || m->size != sizeof *m || m->nroutes > HTTP_METRICS_MAX_ROUTES) {
		snprintf(err, errlen, "%s: not a metrics file of this build", path);
		munmap((void *)m, sizeof *m);
		return NULL;
	}
	return m;
}

void http_metrics_close(const struct http_metrics *m)
{
	if (m)
		munmap((void *)m, sizeof *m);
}

void prometheus_label_value(struct strbuf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			strbuf_addstr(out, "\\\\");
		else if (*s == '"')
			strbuf_addstr(out, "\\\"");
		else if (*s == '\n')
			strbuf_addstr(out, "\\n");
		else
			strbuf_addch(out, *s);
	}
}

/* A route's name from the file, NUL-terminated whatever the file holds. */
static void route_labels(struct strbuf *out, const struct http_metrics_route *r)
{
	char method[sizeof r->method + 1], pattern[sizeof r->pattern + 1];

	memcpy(method, r->method, sizeof r->method);
	method[sizeof r->method] = '\0';
	memcpy(pattern, r->pattern, sizeof r->pattern);
	pattern[sizeof r->pattern] = '\0';
	strbuf_addstr(out, "route=\"");
	prometheus_label_value(out, pattern);
	strbuf_addstr(out, "\",method=\"");
	prometheus_label_value(out, method);
	strbuf_addch(out, '"');
}

void http_metrics_render(const struct http_metrics *m, struct strbuf *out)
{
	strbuf_addstr(out, "# HELP stowage_http_requests_total Requests answered by the web workers, by route pattern, method and status.\n"
			   "# TYPE stowage_http_requests_total counter\n");
	for (uint32_t i = 0; i <= m->nroutes; i++) {
		const struct http_metrics_route *r = &m->routes[i];
		for (size_t s = 0; s < HTTP_METRICS_NSTATUS; s++) {
			uint64_t n = __atomic_load_n(&r->requests[s], __ATOMIC_RELAXED);
			if (!n)
				continue;
			strbuf_addstr(out, "stowage_http_requests_total{");
			route_labels(out, r);
			if (s < HTTP_METRICS_NSTATUS - 1)
				strbuf_addf(out, ",code=\"%d\"} %llu\n", statuses[s], (unsigned long long)n);
			else
				strbuf_addf(out, ",code=\"other\"} %llu\n", (unsigned long long)n);
		}
	}
	strbuf_addstr(out, "# HELP stowage_http_request_duration_seconds Time from reading a request to handing its answer to nginx.\n"
			   "# TYPE stowage_http_request_duration_seconds histogram\n");
	for (uint32_t i = 0; i <= m->nroutes; i++) {
		const struct http_metrics_route *r = &m->routes[i];
		uint64_t cumulative = 0, counts[HTTP_METRICS_NBUCKETS + 1];
		for (size_t b = 0; b <= HTTP_METRICS_NBUCKETS; b++) {
			counts[b] = __atomic_load_n(&r->latency[b], __ATOMIC_RELAXED);
			cumulative += counts[b];
		}
		if (!cumulative)
			continue;
		cumulative = 0;
		for (size_t b = 0; b <= HTTP_METRICS_NBUCKETS; b++) {
			cumulative += counts[b];
			strbuf_addstr(out, "stowage_http_request_duration_seconds_bucket{");
			route_labels(out, r);
			if (b < HTTP_METRICS_NBUCKETS)
				strbuf_addf(out, ",le=\"%g\"} %llu\n", buckets[b], (unsigned long long)cumulative);
			else
				strbuf_addf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
		}
		strbuf_addstr(out, "stowage_http_request_duration_seconds_sum{");
		route_labels(out, r);
		strbuf_addf(out, "} %.6f\n", (double)__atomic_load_n(&r->latency_sum_us, __ATOMIC_RELAXED) / 1e6);
		strbuf_addstr(out, "stowage_http_request_duration_seconds_count{");
		route_labels(out, r);
		strbuf_addf(out, "} %llu\n", (unsigned long long)cumulative);
	}
	strbuf_addf(out, "# HELP stowage_web_start_time_seconds When the web workers' counters began.\n"
			 "# TYPE stowage_web_start_time_seconds gauge\nstowage_web_start_time_seconds %lld\n",
		    (long long)m->started_at);
}
