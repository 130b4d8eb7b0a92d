/* Jobs (manual 4.3, 5.3): each plan's list of jobs, and the job page with its progress, phases,
 * counts, per-object results and log; the log as a text download; cancel. A queued job says how
 * many jobs on its cluster are ahead of it instead of looking stuck.
 *
 * What the runner writes into jobs.result and this page shows (docs/jobs.md):
 *   "phases": [{"name", "state", "started_at", "finished_at", "duration_ms"[, "objects"][, "error"]}, ...]
 *   "counts": {"deployments.apps": 3, "persistentvolumeclaims": 2, ...}      objects per type */
#include "web.h"
#include "strbuf.h"
#include "audit.h"
#include "db.h"
#include "form.h"
#include "json.h"

#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define JOB_ITEMS_SHOWN 200
#define JOB_ITEMS_PAGES_MAX 5000	/* JOB_ITEMS_MAX (runner/job.h) / JOB_ITEMS_SHOWN */
#define JOB_LOG_LINES_SHOWN 500
#define PLAN_JOBS_SHOWN 100

/* The columns job_json reads. */
#define JOB_COLUMNS \
	"j.id, j.kind, j.state, j.phase, j.percent, j.items_done, j.items_total, j.items_failed, j.bytes_done, " \
	"j.bytes_total, coalesce(to_char(j.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '') AS started_at, " \
	"coalesce(to_char(j.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '') AS finished_at, " \
	"floor(extract(epoch FROM coalesce(j.finished_at, now()) - j.started_at))::bigint AS seconds, " \
	"CASE WHEN j.state = 'queued' THEN (SELECT count(*) FROM jobs q WHERE q.cluster_id = j.cluster_id AND q.id <> j.id " \
	"AND (q.state = 'running' OR (q.state = 'queued' AND (q.queued_at, q.id) < (j.queued_at, j.id)))) END AS queue_ahead, " \
	"j.error, j.cancel_requested, j.trigger, to_char(j.queued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS queued_at, " \
	"coalesce(j.backup_plan_id, 0) AS backup_plan_id, coalesce(j.restore_plan_id, 0) AS restore_plan_id, " \
	"coalesce(j.backup_id, 0) AS backup_id"

static void human_bytes(double b, char *out, size_t outlen)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	int u = 0;

	while (b >= 1024 && u < 5) {
		b /= 1024;
		u++;
	}
	snprintf(out, outlen, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

static void human_duration(double s, char *out, size_t outlen)
{
	long t = (long)s;

	if (t >= 3600)
		snprintf(out, outlen, "%ld h %ld min", t / 3600, t % 3600 / 60);
	else if (t >= 60)
		snprintf(out, outlen, "%ld min %ld s", t / 60, t % 60);
	else if (s < 10 && s != (double)t)
		snprintf(out, outlen, "%.1f s", s);
	else
		snprintf(out, outlen, "%ld s", t);
}

static int job_active(const char *state)
{
	return strcmp(state, "queued") == 0 || strcmp(state, "running") == 0;
}

/* Row i of a query of JOB_COLUMNS (and any further named columns) as the pages show a job. */
static cJSON *job_json(const PGresult *res, int i)
{
	cJSON *o = db_row_json(res, i), *seconds, *ahead;
	const char *state = json_str(o, "state"), *kind = json_str(o, "kind");
	long long id = (long long)json_num(o, "id"), plan = (long long)json_num(o, "backup_plan_id"),
		  backup = (long long)json_num(o, "backup_id");
	char buf[64], key[32];

	snprintf(key, sizeof key, "state_%s", state);
	cJSON_AddBoolToObject(o, key, 1);
	cJSON_AddBoolToObject(o, "active", job_active(state));
	human_bytes(json_num(o, "bytes_done"), buf, sizeof buf);
	cJSON_AddStringToObject(o, "bytes_done_text", buf);
	human_bytes(json_num(o, "bytes_total"), buf, sizeof buf);
	cJSON_AddStringToObject(o, "bytes_total_text", buf);
	seconds = cJSON_DetachItemFromObject(o, "seconds");
	if (cJSON_IsNumber(seconds)) {
		human_duration(seconds->valuedouble, buf, sizeof buf);
		cJSON_AddStringToObject(o, "duration", buf);
	}
	cJSON_Delete(seconds);
	ahead = cJSON_GetObjectItem(o, "queue_ahead");
	if (cJSON_IsNumber(ahead))
		cJSON_AddNumberToObject(o, "queue_position", ahead->valuedouble + 1);
	else
		cJSON_DeleteItemFromObject(o, "queue_ahead");
	cJSON_AddBoolToObject(o, "can_cancel", job_active(state) && !cJSON_IsTrue(cJSON_GetObjectItem(o, "cancel_requested")));
	if (strcmp(kind, "download") == 0 && strcmp(state, "succeeded") == 0) {
		char link[64];
		snprintf(link, sizeof link, "/jobs/%lld/archive.tar.gz", id);
		cJSON_AddStringToObject(o, "archive_link", link);
	}
	/* a backup job that left a restorable backup offers to restore it: the restore wizard with
	 * its backup plan and backup chosen */
	if (strcmp(kind, "backup") == 0 && backup > 0 && plan > 0 &&
	    (strcmp(state, "succeeded") == 0 || strcmp(state, "partially_failed") == 0)) {
		char link[160];
		snprintf(link, sizeof link, "/restore-plans/new?existing_policy=skip&backup_plan_id=%lld&backup_id=%lld",
			 plan, backup);
		cJSON_AddStringToObject(o, "restore_link", link);
	}
	return o;
}

/* ---- a plan's jobs ---- */

static void plan_jobs(struct request *r, int restore)
{
	long long id = request_param_id(r, "id");
	char sid[24], err[512];
	const char *params[] = { sid };
	PGresult *plan, *res;
	cJSON *view, *list;

	snprintf(sid, sizeof sid, "%lld", id);
	plan = !id ? NULL : db_exec(r->db, restore ?
		"SELECT p.name, c.name, coalesce(bp.name, ''), coalesce(to_char(b.started_at AT TIME ZONE 'UTC', "
		"'YYYY-MM-DD HH24:MI'), ''), coalesce(array_to_string(b.namespaces, ', '), ''), p.backup_id IS NOT NULL "
		"FROM restore_plans p JOIN clusters c ON c.id = p.target_cluster_id "
		"LEFT JOIN backup_plans bp ON bp.id = p.backup_plan_id LEFT JOIN backups b ON b.id = p.backup_id WHERE p.id = $1" :
		"SELECT p.name, c.name, rp.name, array_to_string(p.namespaces, ', '), p.schedule_kind, true "
		"FROM backup_plans p JOIN clusters c ON c.id = p.cluster_id JOIN repositories rp ON rp.id = p.repository_id "
		"WHERE p.id = $1", 1, params, err, sizeof err);
	if (!plan || PQntuples(plan) != 1) {
		PQclear(plan);
		respond_error(r, 404, restore ? "There is no such restore plan." : "There is no such backup plan.");
		return;
	}
	res = db_exec(r->db, restore ?
		"SELECT " JOB_COLUMNS " FROM jobs j WHERE j.restore_plan_id = $1 ORDER BY j.queued_at DESC, j.id DESC LIMIT 100" :
		"SELECT " JOB_COLUMNS " FROM jobs j WHERE j.backup_plan_id = $1 ORDER BY j.queued_at DESC, j.id DESC LIMIT 100",
		1, params, err, sizeof err);
	if (!res) {
		PQclear(plan);
		respond_db_error(r, err);
		return;
	}
	view = cJSON_CreateObject();
	cJSON *p = cJSON_AddObjectToObject(view, "plan");
	cJSON_AddNumberToObject(p, "id", (double)id);
	cJSON_AddStringToObject(p, "name", PQgetvalue(plan, 0, 0));
	cJSON_AddStringToObject(p, "cluster", PQgetvalue(plan, 0, 1));
	if (restore) {
		cJSON_AddStringToObject(p, "backup_plan", PQgetvalue(plan, 0, 2));
		cJSON_AddStringToObject(p, "backup_time", PQgetvalue(plan, 0, 3));
		cJSON_AddStringToObject(p, "backup_namespaces", PQgetvalue(plan, 0, 4));
		cJSON_AddBoolToObject(p, "has_backup", strcmp(PQgetvalue(plan, 0, 5), "t") == 0);
	} else {
		cJSON_AddStringToObject(p, "repository", PQgetvalue(plan, 0, 2));
		cJSON_AddStringToObject(p, "namespaces", PQgetvalue(plan, 0, 3));
		cJSON_AddStringToObject(p, "schedule_kind", PQgetvalue(plan, 0, 4));
	}
	PQclear(plan);
	if (!restore && test_restore_plan_view(r, p, sid, err, sizeof err) < 0) {
		PQclear(res);
		cJSON_Delete(view);
		respond_db_error(r, err);
		return;
	}
	list = cJSON_AddArrayToObject(view, "jobs");
	for (int i = 0; i < PQntuples(res) && i < PLAN_JOBS_SHOWN; i++)
		cJSON_AddItemToArray(list, job_json(res, i));
	PQclear(res);
	cJSON_AddStringToObject(view, "title", restore ? "Restore jobs" : "Backup jobs");
	cJSON_AddBoolToObject(view, restore ? "nav_restore_plans" : "nav_backup_plans", 1);
	respond_page(r, 200, restore ? "restore_plan_jobs" : "backup_plan_jobs", view);
}

void page_backup_plan_jobs(struct request *r)
{
	plan_jobs(r, 0);
}

void page_restore_plan_jobs(struct request *r)
{
	plan_jobs(r, 1);
}

/* ---- one job ---- */

/* The job row of the route's :id (with the result counts sql/028 keeps, for add_items), or NULL
 * after answering 404. */
static PGresult *job_load(struct request *r, char *sid, size_t sidlen)
{
	long long id = request_param_id(r, "id");
	const char *params[] = { sid };
	char err[512];
	PGresult *res;

	snprintf(sid, sidlen, "%lld", id);
	res = id ? db_exec(r->db, "SELECT " JOB_COLUMNS ", j.result, coalesce(bp.name, '') AS backup_plan, "
			   "coalesce(rp.name, '') AS restore_plan, j.items_recorded, j.items_recorded_failed FROM jobs j "
			   "LEFT JOIN backup_plans bp ON bp.id = j.backup_plan_id "
			   "LEFT JOIN restore_plans rp ON rp.id = j.restore_plan_id WHERE j.id = $1",
			   1, params, err, sizeof err) : NULL;
	if (!res || PQntuples(res) != 1) {
		PQclear(res);
		respond_error(r, 404, "There is no such job.");
		return NULL;
	}
	return res;
}

/* result.phases and result.counts as the page lists them. */
static void add_result(cJSON *job, const char *result_json)
{
	cJSON *result = cJSON_Parse(result_json), *item;
	cJSON *phases = cJSON_AddArrayToObject(job, "phases"), *counts = cJSON_AddArrayToObject(job, "counts");
	char buf[64];

	cJSON_ArrayForEach(item, cJSON_GetObjectItem(result, "phases")) {
		const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(item, "name"));
		const char *state = cJSON_GetStringValue(cJSON_GetObjectItem(item, "state"));
		const cJSON *ms = cJSON_GetObjectItem(item, "duration_ms"), *objects = cJSON_GetObjectItem(item, "objects");
		const char *error = cJSON_GetStringValue(cJSON_GetObjectItem(item, "error"));
		cJSON *p;
		if (!name)
			continue;
		p = cJSON_CreateObject();
		cJSON_AddStringToObject(p, "name", name);
		cJSON_AddStringToObject(p, "state", state ? state : "");
		if (cJSON_IsNumber(ms)) {
			human_duration(ms->valuedouble / 1000, buf, sizeof buf);
			cJSON_AddStringToObject(p, "duration", buf);
			cJSON_AddNumberToObject(p, "duration_ms", ms->valuedouble);
		}
		if (cJSON_IsNumber(objects))
			cJSON_AddNumberToObject(p, "objects", objects->valuedouble);
		if (error)
			cJSON_AddStringToObject(p, "error", error);
		cJSON_AddItemToArray(phases, p);
	}
	cJSON_ArrayForEach(item, cJSON_GetObjectItem(result, "counts")) {
		cJSON *c;
		if (!cJSON_IsNumber(item))
			continue;
		c = cJSON_CreateObject();
		cJSON_AddStringToObject(c, "type", item->string);
		cJSON_AddNumberToObject(c, "count", item->valuedouble);
		cJSON_AddItemToArray(counts, c);
	}
	/* each hook's outcome, duration and last log lines */
	cJSON *hooks = cJSON_AddArrayToObject(job, "hooks");
	cJSON_ArrayForEach(item, cJSON_GetObjectItem(result, "hooks")) {
		const cJSON *ms = cJSON_GetObjectItem(item, "duration_ms"), *line;
		cJSON *h = cJSON_CreateObject();
		struct strbuf log = STRBUF_INIT;
		cJSON_AddStringToObject(h, "name", cJSON_GetStringValue(cJSON_GetObjectItem(item, "name")) ?: "");
		cJSON_AddStringToObject(h, "phase", cJSON_GetStringValue(cJSON_GetObjectItem(item, "phase")) ?: "");
		cJSON_AddStringToObject(h, "namespace", cJSON_GetStringValue(cJSON_GetObjectItem(item, "namespace")) ?: "");
		const cJSON *attempts = cJSON_GetObjectItem(item, "attempts");
		if (cJSON_IsNumber(attempts) && attempts->valuedouble > 1)
			cJSON_AddNumberToObject(h, "attempts", attempts->valuedouble);
		cJSON_AddStringToObject(h, "state", cJSON_GetStringValue(cJSON_GetObjectItem(item, "state")) ?: "");
		cJSON_AddStringToObject(h, "error", cJSON_GetStringValue(cJSON_GetObjectItem(item, "error")) ?: "");
		if (cJSON_IsNumber(ms)) {
			human_duration(ms->valuedouble / 1000, buf, sizeof buf);
			cJSON_AddStringToObject(h, "duration", buf);
		}
		cJSON_ArrayForEach(line, cJSON_GetObjectItem(item, "log"))
			if (cJSON_IsString(line))
				strbuf_addf(&log, "%s\n", line->valuestring);
		cJSON_AddStringToObject(h, "log", log.buf ? log.buf : "");
		strbuf_release(&log);
		cJSON_AddItemToArray(hooks, h);
	}
	/* what a migration's pre-check found in the target */
	cJSON *conflicts = cJSON_AddArrayToObject(job, "conflicts");
	cJSON_ArrayForEach(item, cJSON_GetObjectItem(result, "conflicts"))
		if (cJSON_IsString(item))
			cJSON_AddItemToArray(conflicts, cJSON_CreateString(item->valuestring));
	/* a migration's mode, its downtime (source stopping -> target ready) and what its restore wrote */
	const char *mode = cJSON_GetStringValue(cJSON_GetObjectItem(result, "mode"));
	const cJSON *downtime = cJSON_GetObjectItem(result, "downtime_ms");
	const cJSON *written = cJSON_GetObjectItem(cJSON_GetObjectItem(result, "volumes"), "bytes_written");
	if (mode && (!strcmp(mode, "full") || !strcmp(mode, "pre-copy") || !strcmp(mode, "cutover") || !strcmp(mode, "test")))
		cJSON_AddStringToObject(job, "migration_mode", mode);
	if (cJSON_IsNumber(downtime) && downtime->valuedouble >= 0) {
		human_duration(downtime->valuedouble / 1000, buf, sizeof buf);
		cJSON_AddStringToObject(job, "downtime", buf);
		cJSON_AddNumberToObject(job, "downtime_ms", downtime->valuedouble);
	}
	if (cJSON_IsNumber(written) && written->valuedouble >= 0) {
		human_bytes(written->valuedouble, buf, sizeof buf);
		cJSON_AddStringToObject(job, "volume_bytes_written_text", buf);
		cJSON_AddNumberToObject(job, "volume_bytes_written", written->valuedouble);
	}
	cJSON_AddBoolToObject(job, "has_hooks", cJSON_GetArraySize(hooks) > 0);
	cJSON_AddBoolToObject(job, "has_conflicts", cJSON_GetArraySize(conflicts) > 0);
	cJSON_AddBoolToObject(job, "has_phases", cJSON_GetArraySize(phases) > 0);
	cJSON_AddBoolToObject(job, "has_counts", cJSON_GetArraySize(counts) > 0);
	cJSON_Delete(result);
}

static const struct form_field items_fields[] = {
	{ .name = "items_page", .label = "Results page", .kind = FORM_INT, .min = 1, .max = JOB_ITEMS_PAGES_MAX },
	{ .name = "items_after_failed", .label = "Results after", .kind = FORM_INT, .min = 1, .max = LONG_MAX },
	{ .name = "items_after", .label = "Results after", .kind = FORM_INT, .min = 1, .max = LONG_MAX },
};

/* Up to limit rows of one kind of result (failed or not) after job_items id after, skipping
 * offset: an index scan of sql/026's indexes from the cursor, however many objects the job
 * records. The Next link carries the cursor (offset 0); only a page asked for by number alone
 * (Previous, a typed URL) counts its way there. */
static PGresult *items_rows(struct request *r, const char *sid, int failed, long after, long offset, long limit,
			    char *err, size_t errlen)
{
	char aft[24], off[24], lim[24];
	const char *params[] = { sid, aft, off, lim };

	snprintf(aft, sizeof aft, "%ld", after);
	snprintf(off, sizeof off, "%ld", offset);
	snprintf(lim, sizeof lim, "%ld", limit);
	return db_exec(r->db, failed ?
		"SELECT id AS item_id, resource || CASE WHEN api_group <> '' THEN '.' || api_group ELSE '' END AS type, "
		"namespace, name, action, true AS failed, message FROM job_items WHERE job_id = $1 AND action = 'failed' "
		"AND id > $2::bigint ORDER BY id LIMIT $4::bigint OFFSET $3::bigint" :
		"SELECT id AS item_id, resource || CASE WHEN api_group <> '' THEN '.' || api_group ELSE '' END AS type, "
		"namespace, name, action, false AS failed, message FROM job_items WHERE job_id = $1 AND action <> 'failed' "
		"AND id > $2::bigint ORDER BY id LIMIT $4::bigint OFFSET $3::bigint", 4, params, err, errlen);
}

/* The per-object results, JOB_ITEMS_SHOWN a page, failures first; ?items_page=N pages on, with
 * the cursor of the page before (items_after_failed or items_after: the last id it showed).
 * total and failed are the job row's counts (sql/028), not a count of the items.
 * -2 (err says why) for a malformed parameter. */
static int add_items(struct request *r, cJSON *view, const char *sid, long total, long failed, char *err, size_t errlen)
{
	struct form_values v;
	PGresult *res;
	cJSON *items;
	long page, offset, shown = 0, after_failed, after;
	long long last_id = 0;
	int cursor, last_failed = 0;
	char link[160];

	form_validate(items_fields, 3, &r->query, &v);
	if (v.errors) {
		snprintf(err, errlen, "%s", form_first_error(&v));
		form_values_free(&v);
		return -2;
	}
	page = v.value[0] ? atol(v.value[0]) : 1;
	after_failed = v.value[1] ? atol(v.value[1]) : 0;
	after = v.value[2] ? atol(v.value[2]) : 0;
	cursor = after_failed || after;
	form_values_free(&v);
	items = cJSON_AddArrayToObject(view, "items");
	offset = (page - 1) * JOB_ITEMS_SHOWN;
	for (int f = 1; f >= 0 && shown < JOB_ITEMS_SHOWN; f--) {
		long from = cursor ? 0 : f ? offset : offset > failed ? offset - failed : 0;
		cJSON *rows, *o;

		if (f && (cursor ? after != 0 : offset >= failed))
			continue;
		res = items_rows(r, sid, f, f ? after_failed : after, from, JOB_ITEMS_SHOWN - shown, err, errlen);
		if (!res)
			return -1;
		rows = db_rows_json(res);
		shown += PQntuples(res);
		PQclear(res);
		while ((o = cJSON_DetachItemFromArray(rows, 0))) {
			last_id = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "item_id"));
			last_failed = f;
			cJSON_DeleteItemFromObject(o, "item_id");
			cJSON_AddItemToArray(items, o);
		}
		cJSON_Delete(rows);
	}
	cJSON_AddNumberToObject(view, "items_count", (double)total);
	cJSON_AddNumberToObject(view, "items_failed_count", (double)failed);
	cJSON_AddBoolToObject(view, "items_capped", total > JOB_ITEMS_SHOWN);
	cJSON_AddNumberToObject(view, "items_shown", (double)shown);
	cJSON_AddNumberToObject(view, "items_from", (double)(shown ? offset + 1 : 0));
	cJSON_AddNumberToObject(view, "items_to", (double)(offset + shown));
	if (page > 1) {
		snprintf(link, sizeof link, "/jobs/%s?items_page=%ld#job-items", sid, page - 1);
		cJSON_AddStringToObject(view, "items_prev_link", link);
	}
	if (last_id && offset + shown < total && page < JOB_ITEMS_PAGES_MAX) {
		snprintf(link, sizeof link, "/jobs/%s?%s=%lld&items_page=%ld#job-items", sid,
			 last_failed ? "items_after_failed" : "items_after", last_id, page + 1);
		cJSON_AddStringToObject(view, "items_next_link", link);
	}
	return 0;
}

static int add_log(struct request *r, cJSON *view, const char *sid, char *err, size_t errlen)
{
	const char *params[] = { sid };
	PGresult *res = db_exec(r->db,
		"SELECT at, level, message, total FROM (SELECT id, to_char(at AT TIME ZONE 'UTC', 'HH24:MI:SS.MS') AS at, level, "
		"message, count(*) OVER () AS total FROM job_logs WHERE job_id = $1 ORDER BY id DESC LIMIT 500) last ORDER BY id",
		1, params, err, errlen);
	cJSON *lines, *o;
	double total = 0;

	if (!res)
		return -1;
	lines = db_rows_json(res);
	PQclear(res);
	cJSON_AddItemToObject(view, "log", lines);
	cJSON_ArrayForEach(o, lines) {
		total = json_num(o, "total");
		cJSON_DeleteItemFromObject(o, "total");
	}
	cJSON_AddNumberToObject(view, "log_count", total);
	cJSON_AddBoolToObject(view, "log_capped", total > JOB_LOG_LINES_SHOWN);
	return 0;
}

/* A cancelled restore says what it created (by uid), and offers to remove exactly that: an
 * undo_restore job, whose own page lists what it deleted and what it left alone. */
static int add_undo(struct request *r, cJSON *view, cJSON *job, const char *sid, char *err, size_t errlen)
{
	const char *params[] = { sid };
	PGresult *res;

	if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(job, "kind")), "restore") != 0 ||
	    strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(job, "state")), "cancelled") != 0)
		return 0;
	res = db_exec(r->db, "SELECT (SELECT count(*) FROM job_items WHERE job_id = $1 AND action = 'created' AND uid <> ''), "
		      "(SELECT id FROM jobs WHERE kind = 'undo_restore' AND (result->>'undo_of')::bigint = $1::bigint "
		      "ORDER BY id DESC LIMIT 1), (SELECT state FROM jobs WHERE kind = 'undo_restore' "
		      "AND (result->>'undo_of')::bigint = $1::bigint ORDER BY id DESC LIMIT 1)", 1, params, err, errlen);
	if (!res)
		return -1;
	cJSON *u = cJSON_AddObjectToObject(view, "undo");
	long created = atol(PQgetvalue(res, 0, 0));
	const char *undo_state = PQgetisnull(res, 0, 2) ? "" : PQgetvalue(res, 0, 2);
	cJSON_AddNumberToObject(u, "created", (double)created);
	cJSON_AddNumberToObject(u, "job_id", atof(PQgetvalue(res, 0, 1)));
	cJSON_AddStringToObject(u, "job_state", undo_state);
	cJSON_AddBoolToObject(u, "can_undo", created > 0 && strcmp(undo_state, "queued") != 0 &&
			      strcmp(undo_state, "running") != 0 && strcmp(undo_state, "succeeded") != 0);
	PQclear(res);
	return 0;
}

/* POST /jobs/:id/undo: "remove what this restore created" for a cancelled restore. */
void page_job_undo(struct request *r)
{
	char sid[24], input[64], loc[64];
	PGresult *job = job_load(r, sid, sizeof sid);

	if (!job)
		return;
	cJSON *row = db_row_json(job, 0);
	int cancelled_restore = strcmp(json_str(row, "kind"), "restore") == 0 && strcmp(json_str(row, "state"), "cancelled") == 0;
	long long plan = (long long)json_num(row, "restore_plan_id"), cluster = 0;
	cJSON_Delete(row);
	PQclear(job);
	if (!cancelled_restore) {
		respond_error(r, 409, "Only a cancelled restore can be undone.");
		return;
	}
	const char *params[] = { sid };
	char err[256];
	PGresult *res = db_exec(r->db, "SELECT coalesce(cluster_id, 0) FROM jobs WHERE id = $1", 1, params, err, sizeof err);
	if (res && PQntuples(res) == 1)
		cluster = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	snprintf(input, sizeof input, "{\"undo_of\": %s}", sid);
	snprintf(loc, sizeof loc, "/jobs/%s", sid);
	struct web_job q = {
		.spec = { .kind = "undo_restore", .cluster_id = cluster, .restore_plan_id = plan, .input = input },
		.audit_action = "restore.undo", .audit_name = sid,
		.flash = "Removing what the restore created: only objects it created, still with the uid it recorded.",
		.already = "This restore is already being undone.", .already_location = loc,
	};
	web_job_queue(r, &q);
}

void page_job(struct request *r)
{
	char sid[24], err[512];
	PGresult *res = job_load(r, sid, sizeof sid);
	cJSON *view, *job, *result;

	if (!res)
		return;
	long total = atol(PQgetvalue(res, 0, PQfnumber(res, "items_recorded")));
	long failed = atol(PQgetvalue(res, 0, PQfnumber(res, "items_recorded_failed")));

	view = cJSON_CreateObject();
	job = job_json(res, 0);
	cJSON_DeleteItemFromObject(job, "items_recorded");
	cJSON_DeleteItemFromObject(job, "items_recorded_failed");
	result = cJSON_DetachItemFromObject(job, "result");
	add_result(job, cJSON_GetStringValue(result));
	cJSON_Delete(result);
	cJSON_AddItemToObject(view, "job", job);
	PQclear(res);
	int rc = add_items(r, view, sid, total, failed, err, sizeof err);
	if (rc < 0 || add_log(r, view, sid, err, sizeof err) < 0 || add_undo(r, view, job, sid, err, sizeof err) < 0) {
		cJSON_Delete(view);
		if (rc == -2)
			respond_error(r, 422, err);
		else
			respond_db_error(r, err);
		return;
	}
	snprintf(err, sizeof err, "Job %s", sid);
	cJSON_AddStringToObject(view, "title", err);
	cJSON_AddBoolToObject(view, cJSON_GetObjectItem(job, "restore_plan_id")->valuedouble > 0 ? "nav_restore_plans" :
			      "nav_backup_plans", 1);
	respond_page(r, 200, "job", view);
}

/* GET /jobs/:id/progress: the job row alone, always JSON, for what follows a running job (job.js
 * every second, the command line's wait): not its results, log and undo, which the job page reads
 * and a poll would read again every second for nothing. */
void page_job_progress(struct request *r)
{
	char sid[24];
	PGresult *res;
	cJSON *view, *job;

	r->wants_json = 1;
	if (!(res = job_load(r, sid, sizeof sid)))
		return;
	job = job_json(res, 0);
	PQclear(res);
	cJSON_DeleteItemFromObject(job, "result");
	cJSON_DeleteItemFromObject(job, "items_recorded");
	cJSON_DeleteItemFromObject(job, "items_recorded_failed");
	view = cJSON_CreateObject();
	cJSON_AddItemToObject(view, "job", job);
	respond_page(r, 200, "job", view);
}

void page_job_log(struct request *r)
{
	char sid[24], err[512], filename[48];
	const char *params[] = { sid };
	PGresult *job = job_load(r, sid, sizeof sid), *res;
	struct strbuf text = STRBUF_INIT;

	if (!job)
		return;
	PQclear(job);
	res = db_exec(r->db, "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS \"UTC\"'), level, message "
		      "FROM job_logs WHERE job_id = $1 ORDER BY id", 1, params, err, sizeof err);
	if (!res) {
		respond_db_error(r, err);
		return;
	}
	for (int i = 0; i < PQntuples(res); i++)
		strbuf_addf(&text, "%s %-7s %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
	PQclear(res);
	snprintf(filename, sizeof filename, "job-%s-log.txt", sid);
	respond_text(r, filename, text.buf ? text.buf : "", text.len);
	strbuf_release(&text);
}

/* Queued: cancelled at once. Running: the runner is asked and stops at its next check. */
void page_job_cancel(struct request *r)
{
	char sid[24], err[512], loc[64];
	const char *params[] = { sid };
	PGresult *job = job_load(r, sid, sizeof sid), *res;

	if (!job)
		return;
	PQclear(job);
	res = db_exec(r->db, "UPDATE jobs SET cancel_requested = true, "
		      "finished_at = CASE WHEN state = 'queued' THEN now() ELSE finished_at END, "
		      "state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END "
		      "WHERE id = $1 AND state IN ('queued', 'running') RETURNING state", 1, params, err, sizeof err);
	if (!res) {
		respond_db_error(r, err);
		return;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		response_flash(r, "The job had already finished; nothing to cancel.");
	} else {
		int at_once = strcmp(PQgetvalue(res, 0, 0), "cancelled") == 0;
		PQclear(res);
		cJSON *detail = cJSON_CreateObject();
		cJSON_AddBoolToObject(detail, "was_queued", at_once);
		int rc = audit_record(r->db, "job.cancel", sid, detail, err, sizeof err);
		cJSON_Delete(detail);
		if (rc < 0) {
			respond_db_error(r, err);
			return;
		}
		response_flash(r, at_once ? "Job cancelled before it started." :
			       "Cancel requested: the runner stops the job at its next step.");
	}
	snprintf(loc, sizeof loc, "/jobs/%s", sid);
	respond_redirect(r, loc);
}

/* ---- the organisation's jobs, newest first (what `stowage jobs` lists) ---- */

static const char *const job_kinds[] = { "backup", "restore", "migrate", NULL };
static const char *const job_states[] = { "queued", "running", "succeeded", "partially_failed", "failed", "cancelled", NULL };

/* The query parameter name when it is one of allowed (or absent: ""), else NULL. */
static const char *query_choice(struct request *r, const char *name, const char *const *allowed)
{
	const char *v = kv_get(&r->query, name);

	if (!v || !*v)
		return "";
	for (int i = 0; allowed[i]; i++)
		if (strcmp(v, allowed[i]) == 0)
			return v;
	return NULL;
}

void page_jobs(struct request *r)
{
	const char *kind = query_choice(r, "kind", job_kinds), *state = query_choice(r, "state", job_states);
	char err[512];
	PGresult *res;
	cJSON *view, *list;

	if (!kind || !state) {
		respond_error(r, 400, !kind ? "kind: choose backup, restore or migrate." :
			      "state: choose queued, running, succeeded, partially_failed, failed or cancelled.");
		return;
	}
	const char *params[] = { kind, state };
	res = db_exec(r->db, "SELECT " JOB_COLUMNS ", coalesce(bp.name, rp.name, mp.name, '') AS plan FROM jobs j "
		      "LEFT JOIN backup_plans bp ON bp.id = j.backup_plan_id "
		      "LEFT JOIN restore_plans rp ON rp.id = j.restore_plan_id "
		      "LEFT JOIN migration_plans mp ON mp.id = j.migration_plan_id "
		      "WHERE ($1 = '' OR j.kind = $1) AND ($2 = '' OR j.state = $2) "
		      "ORDER BY j.queued_at DESC, j.id DESC LIMIT 100", 2, params, err, sizeof err);
	if (!res) {
		respond_db_error(r, err);
		return;
	}
	view = cJSON_CreateObject();
	list = cJSON_AddArrayToObject(view, "jobs");
	for (int i = 0; i < PQntuples(res); i++)
		cJSON_AddItemToArray(list, job_json(res, i));
	PQclear(res);
	cJSON_AddStringToObject(view, "title", "Jobs");
	cJSON_AddBoolToObject(view, "nav_jobs", 1);
	respond_page(r, 200, "jobs", view);
}
