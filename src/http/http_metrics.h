/* The web workers' request counters, for the operator's /metrics (stowage-metrics): a file the
 * web parent maps shared before it forks its workers, which add to it with atomic operations;
 * stowage-metrics maps it read-only on the same host. Labels are the route table's patterns
 * ("/clusters/:id"), methods and status codes: closed sets, never a tenant's names. */
#ifndef STOWAGE_HTTP_METRICS_H
#define STOWAGE_HTTP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

#define HTTP_METRICS_MAX_ROUTES 160
#define HTTP_METRICS_NSTATUS 18	/* the statuses we answer, and "other" */
#define HTTP_METRICS_NBUCKETS 11	/* latency upper bounds, +Inf aside */

struct http_metrics_route {
	char method[8];
	char pattern[56];
	uint64_t requests[HTTP_METRICS_NSTATUS];
	uint64_t latency[HTTP_METRICS_NBUCKETS + 1];	/* per bucket, not cumulative; the last: > 10 s */
	uint64_t latency_sum_us;
};

struct http_metrics {
	char magic[8];		/* "STOWMET1" */
	uint32_t size;		/* sizeof (struct http_metrics): a reader of another build refuses it */
	uint32_t nroutes;	/* routes[nroutes] counts requests that matched no route */
	int64_t started_at;	/* the web parent's start, Unix seconds */
	struct http_metrics_route routes[HTTP_METRICS_MAX_ROUTES + 1];
};

/* Creates (or replaces) the file at path, mode 0640, maps it shared and names its routes. NULL
 * with err. */
struct http_metrics *http_metrics_create(const char *path, const char *const *methods,
					 const char *const *patterns, size_t n, char *err, size_t errlen);
/* Counts one answered request: route is the route table's index, or -1 when none matched. */
void http_metrics_record(struct http_metrics *m, int route, int status, double seconds);
/* Maps the file at path read-only, after checking it is one. NULL with err. */
const struct http_metrics *http_metrics_open(const char *path, char *err, size_t errlen);
void http_metrics_close(const struct http_metrics *m);
/* Appends the counters in Prometheus text format: stowage_http_requests_total and the
 * stowage_http_request_duration_seconds histogram. */
void http_metrics_render(const struct http_metrics *m, struct strbuf *out);
/* Appends s as a Prometheus label value (backslash, double quote and newline escaped). */
void prometheus_label_value(struct strbuf *out, const char *s);

#endif
