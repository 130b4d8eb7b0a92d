#include "job.h"
#include "db.h"
#include "log.h"
#include "cluster.h"
#include "repository.h"
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

PGresult *job_query(struct job *job, const char *sql, int nparams, const char *const *params,
		    char *err, size_t errlen)
{
	PGresult *res;

	if (db_ensure(job->db, err, errlen) < 0)
		return NULL;
	if (db_tenant_begin(job->db, job->org_id, 0, err, errlen) < 0)
		return NULL;
	res = db_exec(job->db, sql, nparams, params, err, errlen);
	if (!res) {
		db_rollback(job->db);
		return NULL;
	}
	if (db_commit(job->db, err, errlen) < 0) {
		PQclear(res);
		return NULL;
	}
	return res;
}

int job_exec(struct job *job, const char *sql, int nparams, const char *const *params,
	     char *err, size_t errlen)
{
	PGresult *res = job_query(job, sql, nparams, params, err, errlen);

	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

void job_log(struct job *job, const char *level, const char *fmt, ...)
{
	char msg[2048], err[512], id[24];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(id, sizeof id, "%lld", job->id);
	const char *params[] = { id, level, msg };
	if (job_exec(job, "INSERT INTO job_logs (job_id, level, message) VALUES ($1, $2, $3)", 3, params,
		     err, sizeof err) < 0)
		log_error("job %lld: cannot write its log: %s", job->id, err);
	log_info("job %lld: %s: %s", job->id, level, msg);
}

static long elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

void job_progress_flush(struct job *job)
{
	char id[24], done[24], total[24], failed[24], bdone[24], btotal[24], pct[24], err[512];
	long percent;

	if (job->bytes_total > 0)
		percent = (long)(job->bytes_done * 100 / job->bytes_total);
	else if (job->items_total > 0)
		percent = job->items_done * 100 / job->items_total;
	else
		percent = 0;
	if (percent > 99)
		percent = 99;	/* 100 only when the job has finished */
	snprintf(id, sizeof id, "%lld", job->id);
	snprintf(done, sizeof done, "%ld", job->items_done);
	snprintf(total, sizeof total, "%ld", job->items_total);
	snprintf(failed, sizeof failed, "%ld", job->items_failed);
	snprintf(bdone, sizeof bdone, "%lld", job->bytes_done);
	snprintf(btotal, sizeof btotal, "%lld", job->bytes_total);
	snprintf(pct, sizeof pct, "%ld", percent);
	const char *params[] = { id, job->phase, done, total, failed, bdone, btotal, pct };
	if (job_exec(job, "UPDATE jobs SET phase = $2, items_done = $3, items_total = $4, items_failed = $5, "
		     "bytes_done = $6, bytes_total = $7, percent = $8, heartbeat_at = now() WHERE id = $1",
		     8, params, err, sizeof err) < 0)
		log_error("job %lld: cannot write progress: %s", job->id, err);
	clock_gettime(CLOCK_MONOTONIC, &job->last_flush);
}

void job_progress(struct job *job, const char *phase, long items_done, long items_total,
		  long long bytes_done, long long bytes_total)
{
	int phase_changed = strcmp(job->phase, phase) != 0;

	snprintf(job->phase, sizeof job->phase, "%s", phase);
	job->items_done = items_done;
	job->items_total = items_total;
	job->bytes_done = bytes_done;
	job->bytes_total = bytes_total;
	if (phase_changed || elapsed_ms(&job->last_flush) >= 500)
		job_progress_flush(job);
}

int job_items_room(struct job *job, long n)
{
	if (job->items_recorded >= JOB_ITEMS_MAX)
		return 0;
	job->items_recorded += n;
	if (job->items_recorded >= JOB_ITEMS_MAX)
		job_log(job, "warning", "the job has recorded %ld objects one by one; further objects are "
			"counted but not listed", JOB_ITEMS_MAX);
	return 1;
}

int job_item(struct job *job, const char *action, const char *group, const char *resource,
	     const char *ns, const char *name, const char *message)
{
	return job_item_created(job, action, group, "", resource, ns, name, message, "");
}

int job_item_created(struct job *job, const char *action, const char *group, const char *version,
		     const char *resource, const char *ns, const char *name, const char *message, const char *uid)
{
	struct job_items_batch b = { job, NULL };

	job_items_batch_add(&b, action, group, version, resource, ns, name, message, uid);
	return job_items_batch_flush(&b);
}

void job_items_batch_add(struct job_items_batch *b, const char *action, const char *group, const char *version,
			 const char *resource, const char *ns, const char *name, const char *message, const char *uid)
{
	cJSON *row;

	if (strcmp(action, "failed") == 0)
		b->job->items_failed++;
	if (!b->rows)
		b->rows = cJSON_CreateArray();
	row = cJSON_CreateObject();
	cJSON_AddStringToObject(row, "g", group ? group : "");
	cJSON_AddStringToObject(row, "r", resource);
	cJSON_AddStringToObject(row, "ns", ns ? ns : "");
	cJSON_AddStringToObject(row, "n", name);
	cJSON_AddStringToObject(row, "a", action);
	cJSON_AddStringToObject(row, "m", message ? message : "");
	cJSON_AddStringToObject(row, "v", version ? version : "");
	cJSON_AddStringToObject(row, "u", uid ? uid : "");
	cJSON_AddItemToArray(b->rows, row);
	if (cJSON_GetArraySize(b->rows) >= JOB_ITEMS_BATCH)
		job_items_batch_flush(b);
}

int job_items_batch_flush(struct job_items_batch *b)
{
	char id[24], err[512];
	char *rows;
	int n = cJSON_GetArraySize(b->rows), rc = 0;

	if (n == 0 || !job_items_room(b->job, n)) {
		cJSON_Delete(b->rows);
		b->rows = NULL;
		return 0;
	}
	rows = cJSON_PrintUnformatted(b->rows);
	cJSON_Delete(b->rows);
	b->rows = NULL;
	snprintf(id, sizeof id, "%lld", b->job->id);
	const char *params[] = { id, rows };
	/* A resumed job may report an object again: the last word stands, counted once. */
	if (job_exec(b->job, "INSERT INTO job_items (job_id, api_group, resource, namespace, name, action, message, "
		     "api_version, uid) SELECT $1, g, r, ns, n, a, m, v, u FROM jsonb_to_recordset($2::jsonb) "
		     "AS x(g text, r text, ns text, n text, a text, m text, v text, u text) "
		     "ON CONFLICT (job_id, api_group, resource, namespace, name) "
		     "DO UPDATE SET action = EXCLUDED.action, message = EXCLUDED.message, api_version = EXCLUDED.api_version, "
		     "uid = EXCLUDED.uid", 2, params, err, sizeof err) < 0) {
		log_error("job %lld: cannot record %d objects' results: %s", b->job->id, n, err);
		rc = -1;
	}
	free(rows);
	return rc;
}

int job_cancel_requested(struct job *job)
{
	static struct timespec last;
	char id[24], err[512];
	const char *params[] = { id };
	PGresult *res;

	if (job->cancelled)
		return 1;
	if (last.tv_sec && elapsed_ms(&last) < 1000)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &last);
	snprintf(id, sizeof id, "%lld", job->id);
	res = job_query(job, "SELECT cancel_requested FROM jobs WHERE id = $1", 1, params, err, sizeof err);
	if (res && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0)
		job->cancelled = 1;
	PQclear(res);
	return job->cancelled;
}

struct k8s_client *job_cluster_client(struct job *job, long long cluster_id, char *name_out, size_t name_len,
				      char *err, size_t errlen)
{
	struct k8s_client *c;

	if (db_ensure(job->db, err, errlen) < 0 || db_tenant_begin(job->db, job->org_id, 0, err, errlen) < 0)
		return NULL;
	c = cluster_open(job->db, job->org_id, &job->ctx->keyring, &job->allow, cluster_id, 0,
			 name_out, name_len, err, errlen);
	db_rollback(job->db);	/* read only */
	return c;
}

int job_repository_open(struct job *job, long long repository_id, struct job_repository *repo,
			char *err, size_t errlen)
{
	struct repository r;
	int rc;

	memset(repo, 0, sizeof *repo);
	if (db_ensure(job->db, err, errlen) < 0 || db_tenant_begin(job->db, job->org_id, 0, err, errlen) < 0)
		return -1;
	rc = repository_open(job->db, job->org_id, &job->ctx->keyring, &job->allow,
			     repository_id, &r, err, errlen);
	db_rollback(job->db);	/* read only */
	if (rc < 0)
		return -1;
	repo->id = r.id;
	repo->s3 = r.s3;
	repo->prefix = r.prefix;
	repo->bucket = r.bucket;
	return 0;
}

void job_repository_close(struct job_repository *repo)
{
	s3_client_free(repo->s3);
	free(repo->prefix);
	free(repo->bucket);
	memset(repo, 0, sizeof *repo);
}

struct job_phase job_phase_start(const char *name)
{
	struct job_phase p = { .name = name, .started_at = time(NULL) };

	clock_gettime(CLOCK_MONOTONIC, &p.started);
	return p;
}

double job_phase_seconds(const struct job_phase *p)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - p->started.tv_sec) + (double)(now.tv_nsec - p->started.tv_nsec) / 1e9;
}

static void phase_time(time_t t, char *out, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void job_phase_add(cJSON *phases, const struct job_phase *p, const char *state, long objects, const char *error)
{
	cJSON *e = cJSON_CreateObject();
	struct timespec now;
	char started[32], finished[32];

	clock_gettime(CLOCK_MONOTONIC, &now);
	phase_time(p->started_at, started, sizeof started);
	phase_time(time(NULL), finished, sizeof finished);
	cJSON_AddStringToObject(e, "name", p->name);
	cJSON_AddStringToObject(e, "state", state);
	cJSON_AddStringToObject(e, "started_at", started);
	cJSON_AddStringToObject(e, "finished_at", finished);
	cJSON_AddNumberToObject(e, "duration_ms", (double)((now.tv_sec - p->started.tv_sec) * 1000 +
							   (now.tv_nsec - p->started.tv_nsec) / 1000000));
	if (objects >= 0)
		cJSON_AddNumberToObject(e, "objects", (double)objects);
	if (error && *error)
		cJSON_AddStringToObject(e, "error", error);
	cJSON_AddItemToArray(phases, e);
}
