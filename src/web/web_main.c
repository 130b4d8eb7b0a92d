/* stowage-web: the FastCGI workers behind nginx.
 *
 *   stowage-web -c stowage.conf
 *
 * The parent opens the unix socket, loads the templates, forks web_workers children that each
 * hold one database connection and answer requests, restarts a child that dies, and on SIGTERM
 * or SIGINT stops them all: an idle child exits at once, a busy one after its request. */
#include "web.h"
#include "config.h"
#include "db.h"
#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 64
#define WEB_TCACHE_COUNT "4096"		/* freed blocks of one size a worker keeps for reuse */

static volatile sig_atomic_t stopping;
static volatile sig_atomic_t in_request;

static void child_on_term(int sig)
{
	(void)sig;
	if (!in_request)
		_exit(0);
	stopping = 1;
}

static void parent_on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static double seconds_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void answer_request(FCGX_Request *fcgi, const struct web_context *ctx, PGconn *db)
{
	struct request r;
	struct timespec start;
	char err[512] = "";
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &start);
	rc = request_read(&r, fcgi, ctx, err, sizeof err);

	r.db = db;
	if (rc < 0)
		respond_error(&r, -rc, err);
	else
		web_dispatch(&r);
	respond_send(&r);
	http_metrics_record(ctx->metrics, r.route_index, r.status, seconds_since(&start));
	request_free(&r);
}

/* Reads what is left of nginx's request (its stdin up to the end record): 0 when all of it was
 * read, so that closing the connection loses nothing nginx sent. */
static int input_drain(FCGX_Request *fcgi)
{
	char trash[4096];
	size_t total = 0;
	int n;

	while ((n = FCGX_GetStr(trash, (int)sizeof trash, fcgi->in)) > 0)
		if ((total += (size_t)n) > 4 * 1024 * 1024)
			return -1;
	return FCGX_GetError(fcgi->in) == 0 ? 0 : -1;
}

static void worker_loop(int sock, const struct web_context *ctx)
{
	struct sigaction sa = { 0 };
	FCGX_Request fcgi;
	char err[512];
	PGconn *db;

	sa.sa_handler = child_on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	db = db_connect(ctx->database_url, "stowage-web", err, sizeof err);
	if (!db)
		log_fatal("%s", err);
	db_prepare_statements(db);
	FCGX_InitRequest(&fcgi, sock, 0);
	while (!stopping) {
		if (FCGX_Accept_r(&fcgi) < 0)
			break;
		in_request = 1;
		answer_request(&fcgi, ctx, db);
		/* With nothing of the request left unread, the connection is closed at once (detached:
		 * no lingering close). libfcgi's own close shuts down the sending side and then waits
		 * until nginx has read the answer and closed its end: one more sleep and wake-up of the
		 * worker per request, before it may accept the next (docs/performance.md). */
		if (input_drain(&fcgi) == 0)
			FCGX_Detach(&fcgi);
		FCGX_Finish_r(&fcgi);
		in_request = 0;
	}
	PQfinish(db);
	exit(0);
}

static pid_t spawn_worker(int sock, const struct web_context *ctx)
{
	pid_t pid = fork();

	if (pid < 0)
		log_error("fork: %s", strerror(errno));
	if (pid == 0)
		worker_loop(sock, ctx);
	return pid;
}

/* A page frees hundreds of blocks of one size (cJSON nodes and strings); glibc keeps only 7 per
 * size for quick reuse (its tcache) and sends the rest through its bins, whose sorting and
 * consolidation were about 30% of a worker's user time per /clusters (docs/performance.md). The
 * count is a tunable that glibc reads when a program starts, so the server sets it and starts
 * itself again, once, keeping any tunables it was given (and an operator's own count as it is).
 * If that fails it goes on as it is. */
static void exec_with_malloc_tunables(char **argv)
{
	static const char want[] = "glibc.malloc.tcache_count=" WEB_TCACHE_COUNT;
	const char *have = getenv("GLIBC_TUNABLES");
	char value[1024];

	if (have && strstr(have, "glibc.malloc.tcache_count="))
		return;
	if (snprintf(value, sizeof value, "%s%s%s", want, have && *have ? ":" : "", have ? have : "") >= (int)sizeof value)
		return;
	if (setenv("GLIBC_TUNABLES", value, 1) < 0)
		return;
	execv("/proc/self/exe", argv);
	log_error("starting again with %s: %s; going on without", want, strerror(errno));
}

static void usage(void)
{
	fprintf(stderr, "usage: stowage-web -c config\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *config_path = NULL;
	struct web_context ctx = { 0 };
	struct config cfg;
	struct sigaction sa = { 0 };
	pid_t workers[MAX_WORKERS] = { 0 };
	long nworkers;
	char err[512];
	int c, sock;

	log_set_program("stowage-web");
	exec_with_malloc_tunables(argv);
	while ((c = getopt(argc, argv, "c:")) != -1) {
		if (c != 'c')
			usage();
		config_path = optarg;
	}
	if (!config_path || optind != argc)
		usage();
	if (config_load(&cfg, config_path, err, sizeof err) < 0)
		log_fatal("%s", err);
	if (config_get_int(&cfg, "web_workers", 4, 1, MAX_WORKERS, &nworkers, err, sizeof err) < 0)
		log_fatal("%s: %s", config_path, err);
	ctx.database_url = config_get(&cfg, "database_url", NULL);
	if (!ctx.database_url)
		log_fatal("%s: database_url is not set", config_path);
	const char *socket_path = config_get(&cfg, "fcgi_socket", NULL);
	if (!socket_path)
		log_fatal("%s: fcgi_socket is not set", config_path);
	ctx.cookie_secure = strcmp(config_get(&cfg, "cookie_secure", "no"), "yes") == 0;
	ctx.max_body = 2 * 1024 * 1024;
	if (config_get_int(&cfg, "rate_limit_per_address", 5, 1, 1000000, &ctx.rate_per_address, err, sizeof err) < 0 ||
	    config_get_int(&cfg, "rate_limit_per_client", 30, 1, 1000000, &ctx.rate_per_client, err, sizeof err) < 0 ||
	    config_get_int(&cfg, "rate_limit_per_org", 120, 1, 1000000, &ctx.rate_per_org, err, sizeof err) < 0)
		log_fatal("%s: %s", config_path, err);
	static char site_url[512];
	snprintf(site_url, sizeof site_url, "%s", config_get(&cfg, "site_url", ""));
	for (size_t n = strlen(site_url); n > 0 && site_url[n - 1] == '/'; n--)
		site_url[n - 1] = '\0';
	ctx.site_url = site_url;
	if (strncmp(site_url, "http://", 7) != 0 && strncmp(site_url, "https://", 8) != 0)
		log_fatal("%s: site_url must be the console's address, like https://stowage.example.com "
			  "(mailed links start with it)", config_path);
	if (net_allow_parse(config_get(&cfg, "allowed_networks", ""), &ctx.allowed_networks, err, sizeof err) < 0 ||
	    net_allow_opt_in(&ctx.allowed_networks, config_get(&cfg, "allowed_private_networks", ""), err, sizeof err) < 0)
		log_fatal("%s: allowed_networks or allowed_private_networks: %s", config_path, err);
	ctx.mail.smtp_url = config_get(&cfg, "smtp_url", NULL);
	ctx.mail.from = config_get(&cfg, "mail_from", "stowage@localhost");
	ctx.mail.user = config_get(&cfg, "smtp_user", NULL);
	ctx.mail.password = config_get(&cfg, "smtp_password", NULL);
	if (!ctx.mail.smtp_url || !*ctx.mail.smtp_url)
		log_info("no smtp_url in %s: mails (with their confirmation, invitation and reset links) are "
			 "written to this log instead of being sent", config_path);
	/* The web seals what is typed into a form and opens nothing: with sealing_key_file it holds
	 * only the public sealing key, never the master key. */
	const char *sealing_file = config_get(&cfg, "sealing_key_file", NULL);
	const char *key_file = config_get(&cfg, "master_key_file", NULL);
	if (sealing_file) {
		if (secret_keyring_load_sealing(sealing_file, &ctx.keyring, err, sizeof err) < 0)
			log_fatal("%s", err);
	} else {
		if (!key_file)
			log_fatal("%s: sealing_key_file (or master_key_file) is not set", config_path);
		if (secret_keyring_load(key_file, &ctx.keyring, err, sizeof err) < 0)
			log_fatal("%s", err);
		log_warn("no sealing_key_file in %s: the web workers hold the master key, which they only need "
			 "to seal; give them `stowage-keys sealing-key %s` as sealing_key_file instead",
			 config_path, key_file);
	}
	ctx.templates = template_set_open(config_get(&cfg, "templates_dir", "templates"), err, sizeof err);
	if (!ctx.templates)
		log_fatal("templates: %s", err);

	/* Request counters for the operator's stowage-metrics, mapped before the workers fork. */
	const char *metrics_file = config_get(&cfg, "web_metrics_file", NULL);
	if (metrics_file && *metrics_file) {
		const char *methods[HTTP_METRICS_MAX_ROUTES], *patterns[HTTP_METRICS_MAX_ROUTES];
		for (size_t i = 0; i < web_routes_count && i < HTTP_METRICS_MAX_ROUTES; i++) {
			methods[i] = web_routes[i].method;
			patterns[i] = web_routes[i].pattern;
		}
		ctx.metrics = http_metrics_create(metrics_file, methods, patterns, web_routes_count, err, sizeof err);
		if (!ctx.metrics)
			log_fatal("web_metrics_file: %s", err);
	}

	if (FCGX_Init() != 0)
		log_fatal("FCGX_Init failed");
	unlink(socket_path);
	mode_t old_umask = umask(0117); /* never, even for a moment, open to others */
	sock = FCGX_OpenSocket(socket_path, 128);
	umask(old_umask);
	if (sock < 0)
		log_fatal("cannot listen on %s", socket_path);
	/* Only nginx may talk to the workers: the socket is 0660 and its group is the one nginx's
	 * workers run in (its directory, 0750 in that group, is set up by whoever installs us). */
	const char *group = config_get(&cfg, "fcgi_socket_group", NULL);
	if (group && *group) {
		struct group *gr = getgrnam(group);
		if (!gr)
			log_fatal("%s: fcgi_socket_group: there is no group %s", config_path, group);
		if (chown(socket_path, (uid_t)-1, gr->gr_gid) < 0)
			log_fatal("fcgi_socket_group: cannot give %s to group %s: %s", socket_path, group, strerror(errno));
	}
	if (chmod(socket_path, 0660) < 0)
		log_fatal("cannot make %s 0660: %s", socket_path, strerror(errno));

	sa.sa_handler = parent_on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	for (long i = 0; i < nworkers; i++)
		workers[i] = spawn_worker(sock, &ctx);
	log_info("listening on %s with %ld workers", socket_path, nworkers);

	while (!stopping) {
		int status;
		pid_t pid = waitpid(-1, &status, 0);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (long i = 0; i < nworkers; i++) {
			if (workers[i] != pid)
				continue;
			if (!stopping) {
				log_warn("worker %ld exited (status %d); starting another", (long)pid, status);
				workers[i] = spawn_worker(sock, &ctx);
			} else {
				workers[i] = 0;
			}
		}
	}
	for (long i = 0; i < nworkers; i++)
		if (workers[i] > 0)
			kill(workers[i], SIGTERM);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	unlink(socket_path);
	template_set_free(ctx.templates);
	config_free(&cfg);
	log_info("stopped");
	return 0;
}
