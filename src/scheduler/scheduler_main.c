/* stowage-scheduler: fires scheduled backups at their time, enforces retention, and takes back
 * the jobs of runners that stopped heart-beating.
 *
 *   stowage-scheduler -c stowage.conf [--once] [--now EPOCH]
 *
 * Several schedulers may run at once. A due plan is locked (FOR UPDATE) while one of them queues
 * its job and moves next_run_at past "now", and jobs are unique per (plan, due time): exactly one
 * job per due time however many fire it. After downtime a plan whose due time passed fires once,
 * not once per missed slot. --now replaces the clock (tests); --once does one round. It also
 * queues the organisations' daily and weekly protection reports (a runner sends them), and the
 * plans' scheduled test restores. */
#include "audit.h"
#include "config.h"
#include "cron.h"
#include "db.h"
#include "job_queue.h"
#include "log.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

struct scheduler {
	PGconn *db;
	long verify_interval_s;		/* 0: no scheduled verification */
	long verify_parts;
	long stale_after_s;
};

static void iso_time(time_t t, char *out, size_t n)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A plan's two schedules: its backups, and its test restores (sql/021) of its newest finished
 * backup into its test restore cluster. Each query answers name, cron, time zone, the due time,
 * the cluster and the backup (NULL for a backup job; NULL for a test restore while the plan has
 * no finished backup), with the plan's row locked. */
struct plan_schedule {
	const char *what, *job_kind, *due_sql, *plan_sql, *next_sql;
};
static const struct plan_schedule plan_schedules[] = {
	{ "backup", "backup", "SELECT plan_id, plan_org_id FROM scheduler_due_plans($1)",
	  "SELECT name, schedule_cron, time_zone, extract(epoch FROM next_run_at)::bigint, cluster_id, NULL::bigint "
	  "FROM backup_plans WHERE id = $1 AND schedule_kind <> 'manual' FOR UPDATE",
	  "UPDATE backup_plans SET next_run_at = $2 WHERE id = $1" },
	{ "test restore", "test_restore", "SELECT plan_id, plan_org_id FROM scheduler_due_test_restores($1)",
	  "SELECT p.name, p.test_restore_cron, p.time_zone, extract(epoch FROM p.test_restore_next_run_at)::bigint, "
	  "coalesce(p.test_restore_cluster_id, 0), (SELECT b.id FROM backups b WHERE b.plan_id = p.id "
	  "AND b.state IN ('completed', 'partially_failed') ORDER BY b.completed_at DESC NULLS LAST, b.id DESC LIMIT 1) "
	  "FROM backup_plans p WHERE p.id = $1 AND p.test_restore_cron <> '' FOR UPDATE OF p",
	  "UPDATE backup_plans SET test_restore_next_run_at = $2 WHERE id = $1" },
};

/* Queues the plan's job when due and sets its next run; all in one transaction of its tenant. */
static void fire_plan(struct scheduler *s, const struct plan_schedule *ps, const char *plan_id, long long org_id,
		      time_t now)
{
	char err[512], next_s[32];
	const char *params[] = { plan_id };
	struct cron_spec spec;
	PGresult *res;

	if (db_tenant_begin(s->db, org_id, 0, err, sizeof err) < 0) {
		log_error("plan %s: %s", plan_id, err);
		return;
	}
	res = db_exec(s->db, ps->plan_sql, 1, params, err, sizeof err);
	if (!res || PQntuples(res) != 1) {
		PQclear(res);
		db_rollback(s->db);
		return;
	}
	const char *name = PQgetvalue(res, 0, 0), *tz = PQgetvalue(res, 0, 2);
	if (cron_parse(PQgetvalue(res, 0, 1), &spec, err, sizeof err) < 0 || !cron_valid_time_zone(tz)) {
		log_error("plan %s (%s): %s schedule \"%s\" in %s cannot be used: %s", plan_id, name, ps->what,
			  PQgetvalue(res, 0, 1), tz, err);
		PQclear(res);
		db_rollback(s->db);
		return;
	}
	int has_due = !PQgetisnull(res, 0, 3);
	int needs_backup = strcmp(ps->job_kind, "test_restore") == 0;
	time_t due = has_due ? (time_t)strtoll(PQgetvalue(res, 0, 3), NULL, 10) : 0;
	time_t next = cron_next(&spec, tz, now);
	iso_time(next, next_s, sizeof next_s);
	if (has_due && due <= now && needs_backup && PQgetisnull(res, 0, 5)) {
		log_info("plan %s (%s): %s due, but the plan has no finished backup yet", plan_id, name, ps->what);
	} else if (has_due && due <= now) {
		char due_s[32];
		iso_time(due, due_s, sizeof due_s);
		struct job_spec job = { .kind = ps->job_kind, .trigger = "schedule", .backup_plan_id = atoll(plan_id),
					.cluster_id = atoll(PQgetvalue(res, 0, 4)), .backup_id = atoll(PQgetvalue(res, 0, 5)),
					.scheduled_for = due_s };
		long long id = job_enqueue(s->db, &job, err, sizeof err);
		if (id < 0) {
			log_error("plan %s (%s): %s", plan_id, name, err);
			PQclear(res);
			db_rollback(s->db);
			return;
		}
		if (id > 0)
			log_info("plan %s (%s) of organisation %lld: queued %s job %lld for its run due at %s%s; next run %s",
				 plan_id, name, org_id, ps->what, id, due_s,
				 now - due >= 120 ? " (late: missed while no scheduler ran, fired once)" : "", next_s);
	} else if (!has_due) {
		log_info("plan %s (%s): first %s at %s", plan_id, name, ps->what, next_s);
	}
	PQclear(res);
	const char *upd[] = { plan_id, next < 0 ? NULL : next_s };
	if (db_run(s->db, ps->next_sql, 2, upd, err, sizeof err) < 0 || db_commit(s->db, err, sizeof err) < 0) {
		log_error("plan %s: %s", plan_id, err);
		db_rollback(s->db);
	}
}

static void fire_due_plans(struct scheduler *s, time_t now)
{
	char err[512], now_s[32];
	const char *params[] = { now_s };

	iso_time(now, now_s, sizeof now_s);
	for (size_t k = 0; k < sizeof plan_schedules / sizeof plan_schedules[0]; k++) {
		const struct plan_schedule *ps = &plan_schedules[k];
		PGresult *res = db_exec(s->db, ps->due_sql, 1, params, err, sizeof err);
		if (!res) {
			log_error("due %ss: %s", ps->what, err);
			continue;
		}
		for (int i = 0; i < PQntuples(res) && !stopping; i++)
			fire_plan(s, ps, PQgetvalue(res, i, 0), strtoll(PQgetvalue(res, i, 1), NULL, 10), now);
		PQclear(res);
	}
}

/* Retention deletes the way the Delete button does (src/runner/job_catalog.c): the backup is
 * marked 'deleting' (committed: never offered again, even if this scheduler dies) and a
 * delete_backup job is queued for the runner, which removes its objects, volume data and
 * snapshots and then its row. A backup whose delete failed is queued again ten minutes later;
 * the partial unique index on live delete jobs keeps several schedulers from queuing twice. */
static void queue_backup_delete(struct scheduler *s, const char *backup_id, long long org_id)
{
	char err[512];
	struct job_spec job;
	long long id;

	if (db_tenant_begin(s->db, org_id, 0, err, sizeof err) < 0) {
		log_error("backup %s: %s", backup_id, err);
		return;
	}
	id = job_backup_deleting(s->db, atoll(backup_id), 0, &job, err, sizeof err);
	if (id > 0)
		id = job_enqueue(s->db, &job, err, sizeof err);
	if (id < 0 || db_commit(s->db, err, sizeof err) < 0) {
		db_rollback(s->db);
		log_error("backup %s: queueing its deletion: %s", backup_id, err);
	} else if (id > 0) {
		log_info("backup %s of organisation %lld: retention over, delete job %lld queued", backup_id, org_id, id);
	}
}

static void sweep_retention(struct scheduler *s, time_t now)
{
	char err[512], now_s[32];
	const char *params[] = { now_s };
	PGresult *res;

	iso_time(now, now_s, sizeof now_s);
	res = db_exec(s->db, "SELECT backup_id, backup_org_id FROM scheduler_backups_to_delete($1)", 1, params, err, sizeof err);
	if (!res) {
		log_error("expired backups: %s", err);
		return;
	}
	for (int i = 0; i < PQntuples(res) && !stopping; i++)
		queue_backup_delete(s, PQgetvalue(res, i, 0), strtoll(PQgetvalue(res, i, 1), NULL, 10));
	PQclear(res);
}

/* A repository whose deleted backups released volume data is pruned once nothing else uses it
 * (the mover's prune also takes the repository's lock, so a backup starting meanwhile is safe). */
static void queue_prunes(struct scheduler *s)
{
	char err[512];
	PGresult *res = db_exec(s->db, "SELECT repository_id, repository_org_id FROM scheduler_repositories_to_prune()",
				0, NULL, err, sizeof err);

	if (!res) {
		log_error("repositories to prune: %s", err);
		return;
	}
	for (int i = 0; i < PQntuples(res) && !stopping; i++) {
		const char *repo = PQgetvalue(res, i, 0);
		long long org_id = strtoll(PQgetvalue(res, i, 1), NULL, 10), id;
		struct job_spec job = { .kind = "prune", .trigger = "schedule", .repository_id = atoll(repo) };
		if (db_tenant_begin(s->db, org_id, 0, err, sizeof err) < 0) {
			log_error("repository %s: %s", repo, err);
			continue;
		}
		id = job_enqueue(s->db, &job, err, sizeof err);
		if (id < 0 || db_commit(s->db, err, sizeof err) < 0) {
			db_rollback(s->db);
			log_error("repository %s: queueing a prune: %s", repo, err);
		} else if (id > 0) {
			log_info("repository %s of organisation %lld: idle, prune job %lld queued", repo, org_id, id);
		}
	}
	PQclear(res);
}

/* Scheduled verification: each idle repository every verify_interval_days, reading the share
 * of its packs this period's number picks (all of them over verify_share_parts periods). */
static void queue_verifications(struct scheduler *s, time_t now)
{
	char err[512], now_s[32], interval[24], result[96];
	const char *params[] = { now_s, interval };
	PGresult *res;

	if (!s->verify_interval_s)
		return;
	iso_time(now, now_s, sizeof now_s);
	snprintf(interval, sizeof interval, "%ld", s->verify_interval_s);
	snprintf(result, sizeof result, "{\"read_data\":true,\"share_part\":%ld,\"share_parts\":%ld}",
		 (long)(now / s->verify_interval_s) % s->verify_parts, s->verify_parts);
	res = db_exec(s->db, "SELECT repository_id, repository_org_id FROM scheduler_repositories_to_verify($1, $2)",
		      2, params, err, sizeof err);
	if (!res) {
		log_error("repositories to verify: %s", err);
		return;
	}
	for (int i = 0; i < PQntuples(res) && !stopping; i++) {
		const char *jp[] = { PQgetvalue(res, i, 0), now_s };
		long long org_id = strtoll(PQgetvalue(res, i, 1), NULL, 10), id = -1;
		struct job_spec job = { .kind = "verify", .trigger = "schedule", .repository_id = atoll(jp[0]),
					.input = result };
		if (db_tenant_begin(s->db, org_id, 0, err, sizeof err) < 0) {
			log_error("repository %s: %s", jp[0], err);
			continue;
		}
		if (db_run(s->db, "UPDATE repositories SET verify_scheduled_at = $2::timestamptz WHERE id = $1", 2, jp, err,
			   sizeof err) == 0)
			id = job_enqueue(s->db, &job, err, sizeof err);
		if (id < 0 || db_commit(s->db, err, sizeof err) < 0) {
			db_rollback(s->db);
			log_error("repository %s: queueing its verification: %s", jp[0], err);
		} else if (id > 0) {
			log_info("repository %s of organisation %lld: scheduled verification, job %lld", jp[0], org_id, id);
		}
	}
	PQclear(res);
}

static void reap_stale_jobs(struct scheduler *s)
{
	char err[512], stale[24];
	const char *params[] = { stale };
	PGresult *res;

	snprintf(stale, sizeof stale, "%ld", s->stale_after_s);
	res = db_exec(s->db, "SELECT job_id FROM reap_stale_jobs($1)", 1, params, err, sizeof err);
	for (int i = 0; res && i < PQntuples(res); i++)
		log_warn("job %s failed: its runner stopped heart-beating", PQgetvalue(res, i, 0));
	if (!res)
		log_error("reaping stale jobs: %s", err);
	PQclear(res);
}

/* Daily and weekly protection reports whose hour has come: queued as deliveries (one per address
 * and webhook) that a runner sends; the settings row's update makes each one queued once. */
static void queue_reports(struct scheduler *s, time_t now)
{
	char err[512], now_s[32];
	const char *params[] = { now_s };
	PGresult *res;

	iso_time(now, now_s, sizeof now_s);
	res = db_exec(s->db, "SELECT org_id, deliveries FROM scheduler_notification_reports($1)", 1, params, err,
		      sizeof err);
	for (int i = 0; res && i < PQntuples(res); i++)
		log_info("organisation %s: protection report queued (%s deliveries)", PQgetvalue(res, i, 0),
			 PQgetvalue(res, i, 1));
	if (!res)
		log_error("protection reports: %s", err);
	PQclear(res);
}

static void usage(void)
{
	fprintf(stderr, "usage: stowage-scheduler -c config [--once] [--now EPOCH]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "once", no_argument, NULL, 'o' },
		{ "now", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct scheduler s = { 0 };
	struct config cfg;
	struct sigaction sa = { 0 };
	const char *config_path = NULL;
	time_t fixed_now = 0;
	long heartbeat_s;
	int once = 0, c;
	char err[512];

	log_set_program("stowage-scheduler");
	while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 'o': once = 1; break;
		case 'n': fixed_now = (time_t)strtoll(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (!config_path || optind != argc)
		usage();
	if (config_load(&cfg, config_path, err, sizeof err) < 0)
		log_fatal("%s", err);
	if (config_get_int(&cfg, "heartbeat_seconds", 5, 1, 300, &heartbeat_s, err, sizeof err) < 0)
		log_fatal("%s: %s", config_path, err);
	s.stale_after_s = heartbeat_s * 6;
	long days;
	if (config_get_int(&cfg, "verify_interval_days", 7, 0, 365, &days, err, sizeof err) < 0 ||
	    config_get_int(&cfg, "verify_share_parts", 4, 1, 256, &s.verify_parts, err, sizeof err) < 0)
		log_fatal("%s: %s", config_path, err);
	s.verify_interval_s = days * 86400;
	/* The scheduler reaches no tenant's server (retention queues the runner's delete jobs), so
	 * it loads no master key and needs no allowed networks. */
	const char *url = config_get(&cfg, "scheduler_database_url", NULL);
	if (!url)
		log_fatal("%s: scheduler_database_url (the scheduler's own database role) must be set", config_path);
	s.db = db_connect(url, "stowage-scheduler", err, sizeof err);
	if (!s.db)
		log_fatal("%s", err);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (!once)
		log_info("scheduler ready");
	while (!stopping) {
		time_t now = fixed_now ? fixed_now : time(NULL);
		if (db_ensure(s.db, err, sizeof err) == 0) {
			fire_due_plans(&s, now);
			sweep_retention(&s, now);
			queue_prunes(&s);
			queue_verifications(&s, now);
			reap_stale_jobs(&s);
			queue_reports(&s, now);
		} else {
			log_error("%s", err);
		}
		if (once)
			break;
		/* Wake at the start of the next minute: schedules have minute resolution. */
		unsigned wait = (unsigned)(60 - time(NULL) % 60);
		while (wait-- > 0 && !stopping)
			sleep(1);
	}
	PQfinish(s.db);
	config_free(&cfg);
	if (!once)
		log_info("scheduler stopped");
	return 0;
}
