/* stowage-runner: claims queued jobs from PostgreSQL and executes them.
 *
 *   stowage-runner -c stowage.conf [-i runner-id] [--once]
 *
 * Woken by NOTIFY stowage_jobs when a job is queued, and polls every few seconds anyway. A
 * heartbeat thread keeps the claimed job alive in the database and takes back the jobs of
 * runners that stopped heart-beating (crashed, killed), so no job stays "running" forever.
 * SIGTERM: finish the current job, then exit; a second SIGTERM exits at once. */
#include "job.h"
#include "runner_requests.h"
#include "notify_deliver.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "strbuf.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	if (stopping)
		_exit(1);
	stopping = 1;
}

struct heartbeat {
	const char *database_url;
	const char *runner_id;
	long interval_s;
	long stale_after_s;
};

static void *heartbeat_loop(void *arg)
{
	const struct heartbeat *hb = arg;
	char err[512], stale[24];
	const char *beat[] = { hb->runner_id };
	const char *reap[] = { stale };
	PGconn *db = db_connect(hb->database_url, "stowage-runner-heartbeat", err, sizeof err);

	if (!db)
		log_fatal("heartbeat: %s", err);
	snprintf(stale, sizeof stale, "%ld", hb->stale_after_s);
	for (;;) {
		if (db_ensure(db, err, sizeof err) == 0) {
			PGresult *res;
			if (db_run(db, "SELECT runner_heartbeat($1)", 1, beat, err, sizeof err) < 0)
				log_error("heartbeat: %s", err);
			res = db_exec(db, "SELECT job_id FROM reap_stale_jobs($1)", 1, reap, err, sizeof err);
			for (int i = 0; res && i < PQntuples(res); i++)
				log_warn("job %s failed: its runner stopped heart-beating", PQgetvalue(res, i, 0));
			PQclear(res);
		}
		sleep((unsigned)hb->interval_s);
	}
	return NULL;
}

static int job_load(struct job *job, char *err, size_t errlen)
{
	char id[24];
	const char *params[] = { id };
	PGresult *res;

	snprintf(id, sizeof id, "%lld", job->id);
	res = job_query(job, "SELECT kind, coalesce(backup_plan_id, 0), coalesce(restore_plan_id, 0), "
			"coalesce(backup_id, 0), coalesce(cluster_id, 0), result::text, coalesce(migration_plan_id, 0) "
			"FROM jobs WHERE id = $1",
			1, params, err, errlen);
	if (!res)
		return -1;
	if (PQntuples(res) != 1) {
		PQclear(res);
		snprintf(err, errlen, "job %lld vanished", job->id);
		return -1;
	}
	snprintf(job->kind, sizeof job->kind, "%s", PQgetvalue(res, 0, 0));
	job->backup_plan_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	job->restore_plan_id = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	job->backup_id = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
	job->cluster_id = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
	job->migration_plan_id = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
	job->result = cJSON_Parse(PQgetvalue(res, 0, 5));
	if (!cJSON_IsObject(job->result)) {
		cJSON_Delete(job->result);
		job->result = cJSON_CreateObject();
	}
	PQclear(res);
	return 0;
}

/* A finished job's figures, one definition for every kind, the same on its page, in its JSON
 * and in its log: items are the results it lists (job_items), failed those that failed; data is
 * the backup's size it wrote or read, its archive plus its volumes' files (a migration's counts
 * once: it writes and reads the same backup). */
static void job_figures(struct job *job)
{
	char id[24], items[24], failed[24], bytes[24], err[512];
	const char *params[] = { id, items, failed, bytes };
	const cJSON *vol = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(job->result, "volumes"), "bytes");
	const cJSON *arc = cJSON_GetObjectItemCaseSensitive(job->result, "archive_bytes");
	long long archive = cJSON_IsNumber(arc) ? (long long)arc->valuedouble : 0;
	long long volumes = cJSON_IsNumber(vol) ? (long long)vol->valuedouble : 0;
	long n = 0, nfailed = 0;
	PGresult *res;

	snprintf(id, sizeof id, "%lld", job->id);
	res = job_query(job, "SELECT items_recorded, items_recorded_failed FROM jobs WHERE id = $1",
			1, params, err, sizeof err);
	if (!res || PQntuples(res) != 1) {	/* the counts sql/028's triggers keep */
		log_error("job %lld: counting its items: %s", job->id, res ? "the job is gone" : err);
		PQclear(res);
		return;
	}
	n = atol(PQgetvalue(res, 0, 0));
	nfailed = atol(PQgetvalue(res, 0, 1));
	PQclear(res);
	snprintf(items, sizeof items, "%ld", n);
	snprintf(failed, sizeof failed, "%ld", nfailed);
	snprintf(bytes, sizeof bytes, "%lld", archive + volumes);
	if (job_exec(job, "UPDATE jobs SET items_done = $2, items_total = $2, items_failed = $3, bytes_done = $4, "
		     "bytes_total = $4 WHERE id = $1", 4, params, err, sizeof err) < 0)
		log_error("job %lld: recording its figures: %s", job->id, err);
	cJSON *data = cJSON_CreateObject();
	cJSON_AddNumberToObject(data, "items", (double)n);
	cJSON_AddNumberToObject(data, "items_failed", (double)nfailed);
	cJSON_AddNumberToObject(data, "archive_bytes", (double)archive);
	cJSON_AddNumberToObject(data, "volume_bytes", (double)volumes);
	cJSON_AddNumberToObject(data, "bytes", (double)(archive + volumes));
	cJSON_DeleteItemFromObjectCaseSensitive(job->result, "data");
	cJSON_AddItemToObject(job->result, "data", data);
	job_log(job, "info", "%ld items (%ld failed); data %lld bytes: archive %lld + volume data %lld", n, nfailed,
		archive + volumes, archive, volumes);
}

static void job_finish(struct job *job, const char *state, const char *error)
{
	char id[24], err[512];
	char *result;
	const char *params[] = { id, state, error, NULL };

	job_progress_flush(job);
	job_figures(job);
	result = cJSON_PrintUnformatted(job->result);
	params[3] = result;
	snprintf(id, sizeof id, "%lld", job->id);
	if (job_exec(job, "UPDATE jobs SET state = $2, error = $3, result = $4::jsonb, finished_at = now(), "
		     "percent = CASE WHEN $2 IN ('succeeded', 'partially_failed') THEN 100 ELSE percent END "
		     "WHERE id = $1", 4, params, err, sizeof err) < 0)
		log_error("job %lld: cannot record its end: %s", job->id, err);
	/* Whatever happened, a backup this job was writing is complete only if the job said so. */
	if (job_exec(job, "UPDATE backups SET state = 'failed' WHERE id = (SELECT backup_id FROM jobs WHERE id = $1) "
		     "AND state = 'running'", 1, params, err, sizeof err) < 0)
		log_error("job %lld: %s", job->id, err);
	free(result);
}

/* Every kind of job this runner runs. */
struct job_kind {
	const char *kind;
	const char *(*run)(struct job *job, char *err, size_t errlen);
};
static const struct job_kind job_kinds[] = {
	{ "backup", job_backup_run },		{ "restore", job_restore_run },
	{ "migrate", job_migrate_run },		{ "delete_backup", job_delete_backup_run },
	{ "prune", job_prune_run },		{ "verify", job_verify_run },
	{ "sync", job_sync_run },		{ "diagnostics", job_diagnostics_run },
	{ "download", job_download_run },	{ "undo_restore", job_undo_restore_run },
	{ "test_restore", job_test_restore_run },
};

static const struct job_kind *job_kind_find(const char *kind)
{
	for (size_t i = 0; i < sizeof job_kinds / sizeof job_kinds[0]; i++)
		if (strcmp(job_kinds[i].kind, kind) == 0)
			return &job_kinds[i];
	return NULL;
}

/* result.phases for every kind (docs/jobs.md): a kind of one step gets the whole run as its one
 * phase; a failed run's error goes to the phase that failed. */
static void job_phases_close(struct job *job, const struct job_phase *whole, const char *state, const char *err)
{
	cJSON *phases = cJSON_GetObjectItemCaseSensitive(job->result, "phases");
	int ok = strcmp(state, "succeeded") == 0;

	if (!cJSON_IsArray(phases) || cJSON_GetArraySize(phases) == 0) {
		cJSON_DeleteItemFromObjectCaseSensitive(job->result, "phases");
		phases = cJSON_AddArrayToObject(job->result, "phases");
		job_phase_add(phases, whole, state, -1, ok ? NULL : err);
		return;
	}
	cJSON *last = cJSON_GetArrayItem(phases, cJSON_GetArraySize(phases) - 1);
	const char *last_state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "state"));
	if (!ok && err[0] && last_state && strcmp(last_state, "succeeded") != 0 &&
	    !cJSON_GetObjectItemCaseSensitive(last, "error"))
		cJSON_AddStringToObject(last, "error", err);
}

static void job_execute(const struct runner_context *ctx, PGconn *db, long long job_id, long long org_id)
{
	struct job job = { .ctx = ctx, .db = db, .id = job_id, .org_id = org_id };
	char err[1024] = "";
	const char *state;

	if (runner_org_networks(db, org_id, &ctx->allowed_networks, &job.allow, err, sizeof err) < 0 ||
	    job_load(&job, err, sizeof err) < 0) {
		log_error("job %lld: %s", job_id, err);
		job.result = cJSON_CreateObject();
		job_finish(&job, "failed", err);
		cJSON_Delete(job.result);
		return;
	}
	log_info("job %lld (%s) of organisation %lld started", job.id, job.kind, job.org_id);
	const struct job_kind *kind = job_kind_find(job.kind);
	struct job_phase whole = job_phase_start(job.kind);
	if (kind) {
		state = kind->run(&job, err, sizeof err);
	} else {
		snprintf(err, sizeof err, "this runner cannot run %s jobs", job.kind);
		state = "failed";
	}
	job_phases_close(&job, &whole, state, err);
	if (strcmp(state, "succeeded") != 0 && err[0])
		job_log(&job, strcmp(state, "partially_failed") == 0 ? "warning" : "error", "%s", err);
	job_finish(&job, state, strcmp(state, "succeeded") == 0 ? "" : err);
	log_info("job %lld %s", job.id, state);
	cJSON_Delete(job.result);
}

/* Claims one job and runs it; 1 when there was one. */
static int claim_and_run(const struct runner_context *ctx, PGconn *db, long cluster_limit, long org_limit)
{
	char err[512], limit[24], org[24];
	const char *params[] = { ctx->runner_id, limit, org };
	PGresult *res;
	long long job_id, org_id;

	snprintf(limit, sizeof limit, "%ld", cluster_limit);
	snprintf(org, sizeof org, "%ld", org_limit);
	if (db_ensure(db, err, sizeof err) < 0) {
		log_error("%s", err);
		return 0;
	}
	res = db_exec(db, "SELECT job_id, job_org_id FROM claim_job($1, $2, $3)", 3, params, err, sizeof err);
	if (!res) {
		log_error("claiming a job: %s", err);
		return 0;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	job_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	org_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	job_execute(ctx, db, job_id, org_id);
	return 1;
}

/* The connection that LISTENs for queued jobs. After the database restarts it is re-opened with
 * a backoff (1 s doubling to 30 s); until then the loop just polls every few seconds. */
struct listener {
	const char *database_url;
	PGconn *conn;
	int backoff_ms;
};

static int listener_open(struct listener *l)
{
	char err[512];

	l->conn = db_connect(l->database_url, "stowage-runner-listen", err, sizeof err);
	if (l->conn && db_run(l->conn, "LISTEN stowage_jobs", 0, NULL, err, sizeof err) < 0) {
		PQfinish(l->conn);
		l->conn = NULL;
	}
	if (!l->conn) {
		l->backoff_ms = l->backoff_ms ? (l->backoff_ms * 2 > 30000 ? 30000 : l->backoff_ms * 2) : 1000;
		log_warn("listening for jobs: %s; trying again in %d s", err, l->backoff_ms / 1000);
		return -1;
	}
	if (l->backoff_ms)
		log_info("listening for jobs again");
	l->backoff_ms = 0;
	return 0;
}

/* Waits for a NOTIFY, at most timeout_ms (or the backoff while the database is away): never
 * returns at once on a dead connection, so a database restart cannot make the loop spin. */
static void wait_for_work(struct listener *l, int timeout_ms)
{
	struct pollfd pfd = { .fd = -1, .events = POLLIN };
	PGnotify *n;

	if (!l->conn && listener_open(l) < 0) {
		poll(NULL, 0, l->backoff_ms > timeout_ms ? l->backoff_ms : timeout_ms);
		return;
	}
	pfd.fd = PQsocket(l->conn);
	if (poll(&pfd, 1, timeout_ms) > 0 && (!PQconsumeInput(l->conn) || PQstatus(l->conn) != CONNECTION_OK)) {
		log_warn("the listening connection to the database was lost");
		PQfinish(l->conn);
		l->conn = NULL;
		return;
	}
	while ((n = PQnotifies(l->conn)) != NULL)
		PQfreemem(n);
}

static void usage(void)
{
	fprintf(stderr, "usage: stowage-runner -c config [-i runner-id] [--once]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "id", required_argument, NULL, 'i' },
		{ "once", no_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	struct runner_context ctx = { 0 };
	struct heartbeat hb = { 0 };
	struct config cfg;
	struct sigaction sa = { 0 };
	char err[512], default_id[128], host[64];
	const char *runner_id = NULL;
	long cluster_limit, org_limit, heartbeat_s, lanes, org_request_limit;
	struct notify_sender notify = { 0 };
	int once = 0, c;
	pthread_t hb_thread;
	struct listener listen = { 0 };
	PGconn *db;

	log_set_program("stowage-runner");
	while ((c = getopt_long(argc, argv, "c:i:", opts, NULL)) != -1) {
		switch (c) {
		case 'c': ctx.config_path = optarg; break;
		case 'i': runner_id = optarg; break;
		case 'o': once = 1; break;
		default: usage();
		}
	}
	if (!ctx.config_path || optind != argc)
		usage();
	if (config_load(&cfg, ctx.config_path, err, sizeof err) < 0)
		log_fatal("%s", err);
	if (config_get_int(&cfg, "cluster_concurrency", 2, 1, 64, &cluster_limit, err, sizeof err) < 0 ||
	    config_get_int(&cfg, "org_concurrency", 4, 1, 1000, &org_limit, err, sizeof err) < 0 ||
	    config_get_int(&cfg, "heartbeat_seconds", 5, 1, 300, &heartbeat_s, err, sizeof err) < 0 ||
	    config_get_int(&cfg, "request_lanes", 2, 1, 32, &lanes, err, sizeof err) < 0 ||
	    config_get_int(&cfg, "org_request_concurrency", 2, 1, 100, &org_request_limit, err, sizeof err) < 0 ||
	    config_get_int(&cfg, "notification_retry_seconds", 60, 1, 3600, &notify.retry_s, err, sizeof err) < 0)
		log_fatal("%s: %s", ctx.config_path, err);
	const char *database_url = config_get(&cfg, "runner_database_url", NULL);
	const char *key_file = config_get(&cfg, "master_key_file", NULL);
	if (!database_url || !key_file)
		log_fatal("%s: runner_database_url (the runners' own database role) and master_key_file must be set",
			  ctx.config_path);
	if (master_key_load(key_file, ctx.master_key, err, sizeof err) < 0)
		log_fatal("%s", err);
	secret_keyring_from_master(ctx.master_key, &ctx.keyring);
	if (net_allow_parse(config_get(&cfg, "allowed_networks", ""), &ctx.allowed_networks, err, sizeof err) < 0)
		log_fatal("%s: allowed_networks: %s", ctx.config_path, err);
	if (net_allow_opt_in(&ctx.allowed_networks, config_get(&cfg, "allowed_private_networks", ""), err, sizeof err) < 0)
		log_fatal("%s: allowed_private_networks: %s", ctx.config_path, err);
	ctx.work_dir = config_get(&cfg, "work_dir", "/tmp");
	ctx.mover_path = config_get(&cfg, "mover_path", "stowage-mover");
	ctx.hook_path = config_get(&cfg, "hook_path", "stowage-hook");
	if (!runner_id) {
		gethostname(host, sizeof host);
		host[sizeof host - 1] = '\0';
		snprintf(default_id, sizeof default_id, "%s:%ld", host, (long)getpid());
		runner_id = default_id;
	}
	ctx.runner_id = runner_id;

	db = db_connect(database_url, "stowage-runner", err, sizeof err);
	if (!db)
		log_fatal("%s", err);
	listen.database_url = database_url;
	if (listener_open(&listen) < 0)
		log_fatal("cannot LISTEN for jobs");

	hb = (struct heartbeat){ database_url, runner_id, heartbeat_s, heartbeat_s * 6 };
	if (pthread_create(&hb_thread, NULL, heartbeat_loop, &hb) != 0)
		log_fatal("cannot start the heartbeat thread");
	pthread_detach(hb_thread);
	/* the fast lane: the web's probes, reads and dry runs never wait behind a job */
	struct runner_lane lane = { &ctx, database_url, org_request_limit };
	for (long i = 0; i < lanes; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, runner_lane_loop, &lane) != 0)
			log_fatal("cannot start a request lane");
		pthread_detach(t);
	}
	/* notifications: a job's end and the reports, mailed and POSTed; the web sends none */
	notify.ctx = &ctx;
	notify.database_url = database_url;
	notify.mail = (struct mail_conf){ config_get(&cfg, "smtp_url", ""), config_get(&cfg, "mail_from", "stowage@localhost"),
					  config_get(&cfg, "smtp_user", ""), config_get(&cfg, "smtp_password", "") };
	notify.site_url = config_get(&cfg, "site_url", "");
	pthread_t notify_thread;
	if (pthread_create(&notify_thread, NULL, notify_sender_loop, &notify) != 0)
		log_fatal("cannot start the notification sender");
	pthread_detach(notify_thread);

	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* A hook process that dies while we write to its pipe is an EPIPE for that hook, not a
	 * signal that ends the runner with every job and request it holds. */
	signal(SIGPIPE, SIG_IGN);
	log_info("runner %s ready (at most %ld jobs per cluster)", runner_id, cluster_limit);
	while (!stopping) {
		if (claim_and_run(&ctx, db, cluster_limit, org_limit))
			continue;
		if (once)
			break;
		wait_for_work(&listen, 3000);
	}
	PQfinish(listen.conn);
	PQfinish(db);
	OPENSSL_cleanse(ctx.master_key, sizeof ctx.master_key);
	config_free(&cfg);
	log_info("runner %s stopped", runner_id);
	return 0;
}
