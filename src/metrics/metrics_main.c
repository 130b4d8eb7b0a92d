/* stowage-metrics: /metrics in Prometheus text format, for the deployment's operator.
 *
 *   stowage-metrics -c stowage.conf [-l 127.0.0.1:9464]
 *
 * It listens on its own address (metrics_listen), never behind the tenants' nginx server. Each
 * scrape reads aggregates from PostgreSQL through metrics_sample(), the one thing its role
 * (metrics_database_url, stowage_metrics) may call, so it sees no tenant's rows; and the web
 * workers' request counters from web_metrics_file on this host. It holds no key and talks to no
 * tenant's server. One connection at a time, each bounded in size and time. */
#include "config.h"
#include "db.h"
#include "http_metrics.h"
#include "log.h"
#include "metrics_http.h"
#include "strbuf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

/* The metric families of metrics_sample(), in the order they are written. */
struct family {
	const char *sample;	/* metric column of metrics_sample(); NULL: the family has several */
	const char *name;
	const char *type;
	const char *help;
	const char *label_a, *label_b;	/* label names of label_a and label_b, or NULL */
	const char *suffix;		/* appended to name for this sample */
	int family_index;		/* the family whose buffer a sample goes to */
};

static const struct family families[] = {
	{ "jobs", "stowage_jobs", "gauge", "Jobs by kind and state, every organisation together.", "kind", "state", "", 0 },
	{ "job_duration_bucket", "stowage_job_duration_seconds", "histogram",
	  "From start to end of finished jobs, by kind and final state.", "kind", "state", "_bucket", 1 },
	{ "job_duration_sum", NULL, NULL, NULL, "kind", "state", "_sum", 1 },
	{ "job_duration_count", NULL, NULL, NULL, "kind", "state", "_count", 1 },
	{ "job_bytes", "stowage_job_bytes_total", "counter", "Bytes moved by finished jobs.", "kind", NULL, "", 4 },
	{ "job_objects", "stowage_job_objects_total", "counter", "Objects (resources and files) handled by finished jobs.", "kind", NULL, "", 5 },
	{ "job_objects_failed", "stowage_job_objects_failed_total", "counter", "Objects that failed in finished jobs.", "kind", NULL, "", 6 },
	{ "queue_depth", "stowage_queue_depth", "gauge", "Queued jobs.", NULL, NULL, "", 7 },
	{ "queue_oldest_age", "stowage_queue_oldest_age_seconds", "gauge", "Age of the oldest queued job (0: none queued).", NULL, NULL, "", 8 },
	{ "runner_last_heartbeat", "stowage_runner_last_heartbeat_timestamp_seconds", "gauge",
	  "Each runner's last heartbeat, Unix seconds (runners seen within a day).", "runner", NULL, "", 9 },
	{ "hook_duration_bucket", "stowage_hook_duration_seconds", "histogram",
	  "Lua hook runs of finished jobs, by phase and outcome.", "phase", "state", "_bucket", 10 },
	{ "hook_duration_sum", NULL, NULL, NULL, "phase", "state", "_sum", 10 },
	{ "hook_duration_count", NULL, NULL, NULL, "phase", "state", "_count", 10 },
	{ "db_connections", "stowage_db_connections", "gauge", "Open PostgreSQL connections by Stowage role (the programs' pools).", "role", NULL, "", 13 },
};
#define NFAMILIES (sizeof families / sizeof families[0])

static const struct family *family_of(const char *sample)
{
	for (size_t i = 0; i < NFAMILIES; i++)
		if (strcmp(families[i].sample, sample) == 0)
			return &families[i];
	return NULL;
}

static void add_sample(struct strbuf *out, const struct family *f, const char *a, const char *b, const char *le,
		       const char *value)
{
	const char *name = families[f->family_index].name;
	int labels = 0;

	strbuf_addf(out, "%s%s", name, f->suffix);
	if (f->label_a) {
		strbuf_addf(out, "{%s=\"", f->label_a);
		prometheus_label_value(out, a);
		strbuf_addch(out, '"');
		labels = 1;
	}
	if (f->label_b) {
		strbuf_addf(out, ",%s=\"", f->label_b);
		prometheus_label_value(out, b);
		strbuf_addch(out, '"');
	}
	if (*le) {
		strbuf_addf(out, "%sle=\"", labels ? "," : "{");
		prometheus_label_value(out, le);
		strbuf_addch(out, '"');
		labels = 1;
	}
	strbuf_addf(out, "%s %s\n", labels ? "}" : "", value);
}

/* The database's part of a scrape; 0, or -1 with err (the scrape still answers, saying so). */
static int render_database(PGconn *db, struct strbuf *out, char *err, size_t errlen)
{
	struct strbuf parts[NFAMILIES], failures = STRBUF_INIT;
	PGresult *res;

	if (!db) {
		snprintf(err, errlen, "no database connection");
		return -1;
	}
	if (db_ensure(db, err, errlen) < 0)
		return -1;
	res = db_exec(db, "SELECT metric, label_a, label_b, le, value FROM metrics_sample()", 0, NULL, err, errlen);
	if (!res)
		return -1;
	for (size_t i = 0; i < NFAMILIES; i++)
		parts[i] = (struct strbuf)STRBUF_INIT;
	int m = PQfnumber(res, "metric"), a = PQfnumber(res, "label_a"), b = PQfnumber(res, "label_b"),
	    le = PQfnumber(res, "le"), v = PQfnumber(res, "value");
	for (int row = 0; row < PQntuples(res); row++) {
		const struct family *f = family_of(PQgetvalue(res, row, m));
		if (!f)
			continue;
		add_sample(&parts[f->family_index], f, PQgetvalue(res, row, a), PQgetvalue(res, row, b),
			   PQgetvalue(res, row, le), PQgetvalue(res, row, v));
		/* a failed hook is also counted on its own, for the simplest alert */
		if (strcmp(f->sample, "hook_duration_count") == 0 && strcmp(PQgetvalue(res, row, b), "failed") == 0) {
			strbuf_addstr(&failures, "stowage_hook_failures_total{phase=\"");
			prometheus_label_value(&failures, PQgetvalue(res, row, a));
			strbuf_addf(&failures, "\"} %s\n", PQgetvalue(res, row, v));
		}
	}
	PQclear(res);
	for (size_t i = 0; i < NFAMILIES; i++) {
		if (families[i].name)
			strbuf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", families[i].name, families[i].help,
				    families[i].name, families[i].type);
		if (parts[i].len)
			strbuf_add(out, parts[i].buf, parts[i].len);
		strbuf_release(&parts[i]);
	}
	strbuf_addstr(out, "# HELP stowage_hook_failures_total Lua hook runs that failed, by phase.\n"
			   "# TYPE stowage_hook_failures_total counter\n");
	strbuf_add(out, failures.buf ? failures.buf : "", failures.len);
	strbuf_release(&failures);
	return 0;
}

static void render(PGconn *db, const char *web_metrics_file, struct strbuf *out)
{
	char err[512];
	int db_up = render_database(db, out, err, sizeof err) == 0;

	if (!db_up)
		log_error("metrics from the database: %s", err);
	strbuf_addf(out, "# HELP stowage_database_up Whether this scrape could read the database.\n"
			 "# TYPE stowage_database_up gauge\nstowage_database_up %d\n", db_up);
	if (web_metrics_file && *web_metrics_file) {
		const struct http_metrics *m = http_metrics_open(web_metrics_file, err, sizeof err);
		if (m) {
			http_metrics_render(m, out);
			http_metrics_close(m);
		} else {
			log_error("web metrics: %s", err);
		}
		strbuf_addf(out, "# HELP stowage_web_metrics_up Whether this scrape could read the web workers' counters.\n"
				 "# TYPE stowage_web_metrics_up gauge\nstowage_web_metrics_up %d\n", m != NULL);
	}
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void answer(int fd, int status, const char *ctype, const struct strbuf *body, int head)
{
	struct strbuf out = STRBUF_INIT;
	const char *reason = status == 200 ? "OK" : status == 404 ? "Not Found" : status == 405 ? "Method Not Allowed" :
			     status == 414 ? "URI Too Long" : status == 431 ? "Request Header Fields Too Large" : "Bad Request";

	strbuf_addf(&out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n"
		    "Cache-Control: no-store\r\n\r\n", status, reason, ctype, body->len);
	if (!head)
		strbuf_add(&out, body->buf ? body->buf : "", body->len);
	write_all(fd, out.buf, out.len);
	strbuf_release(&out);
}

static void serve(int fd, PGconn *db, const char *web_metrics_file)
{
	struct timeval tv = { 5, 0 };
	char buf[METRICS_REQUEST_MAX], path[256];
	size_t len = 0;
	int status = 0, head = 0;
	struct strbuf body = STRBUF_INIT;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	while (!status) {
		ssize_t n = read(fd, buf + len, sizeof buf - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		len += (size_t)n;
		status = metrics_request_parse(buf, len, path, sizeof path, &head);
	}
	if (status == 200 && strcmp(path, "/metrics") != 0)
		status = 404;
	if (status == 200) {
		render(db, web_metrics_file, &body);
		answer(fd, 200, "text/plain; version=0.0.4; charset=utf-8", &body, head);
	} else {
		strbuf_addstr(&body, status == 404 ? "Only /metrics here.\n" : "Send GET /metrics.\n");
		answer(fd, status, "text/plain; charset=utf-8", &body, head);
	}
	strbuf_release(&body);
}

/* "host:port" ("[::1]:9464" for IPv6) to a listening socket, or -1 with err. */
static int listen_on(const char *addr, char *err, size_t errlen)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICHOST };
	struct addrinfo *ai;
	int fd, one = 1, rc;

	if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof host) {
		snprintf(err, errlen, "metrics_listen %s: not host:port", addr);
		return -1;
	}
	snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	if ((rc = getaddrinfo(host, colon + 1, &hints, &ai)) != 0) {
		snprintf(err, errlen, "metrics_listen %s: %s (an IP address and a port)", addr, gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0) {
		snprintf(err, errlen, "metrics_listen %s: %s", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static void usage(void)
{
	fprintf(stderr, "usage: stowage-metrics -c config [-l host:port]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *config_path = NULL, *listen_addr = NULL;
	struct config cfg;
	struct sigaction sa = { 0 };
	char err[512];
	int c, sock;
	PGconn *db;

	log_set_program("stowage-metrics");
	while ((c = getopt(argc, argv, "c:l:")) != -1) {
		if (c == 'c')
			config_path = optarg;
		else if (c == 'l')
			listen_addr = optarg;
		else
			usage();
	}
	if (!config_path || optind != argc)
		usage();
	if (config_load(&cfg, config_path, err, sizeof err) < 0)
		log_fatal("%s", err);
	if (!listen_addr)
		listen_addr = config_get(&cfg, "metrics_listen", "127.0.0.1:9464");
	const char *database_url = config_get(&cfg, "metrics_database_url", NULL);
	if (!database_url)
		log_fatal("%s: metrics_database_url is not set (the stowage_metrics role)", config_path);
	const char *web_metrics_file = config_get(&cfg, "web_metrics_file", NULL);
	if ((sock = listen_on(listen_addr, err, sizeof err)) < 0)
		log_fatal("%s", err);
	db = db_connect(database_url, "stowage-metrics", err, sizeof err);
	if (!db)
		log_error("%s (scrapes say stowage_database_up 0 until it answers)", err);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_info("serving /metrics on %s", listen_addr);
	while (!stopping) {
		int fd = accept4(sock, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR)
				log_error("accept: %s", strerror(errno));
			continue;
		}
		if (!db)
			db = db_connect(database_url, "stowage-metrics", err, sizeof err);
		serve(fd, db, web_metrics_file);
		close(fd);
	}
	close(sock);
	if (db)
		PQfinish(db);
	config_free(&cfg);
	log_info("stopped");
	return 0;
}
