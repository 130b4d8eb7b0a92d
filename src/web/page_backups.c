/* The backup catalog (issue 15): every backup of the organisation, whatever became of its plan,
 * with filters and pages; a backup's page (its objects by type, volumes, hooks, log) with
 * Restore and Delete. Everything shown comes from the database: the backup job wrote what its
 * page needs into the row (sql/013_backup_catalog.sql), because a web worker never reads a
 * tenant's bucket. Delete marks the backup 'deleting' (never offered for restore again) and
 * queues the runner's delete_backup job, the one path retention takes too. */
#include "web.h"
#include "audit.h"
#include "db.h"
#include "form.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STOWAGE_STR_(x) #x
#define STOWAGE_STR(x) STOWAGE_STR_(x)

#define BACKUPS_PAGE_SIZE 50
#define NAMES_SHOWN_PER_TYPE 500
#define LOG_LINES_SHOWN 200

static const char *const state_choices[] = { "running", "completed", "partially_failed", "failed", "deleting", NULL };

static const struct form_field filter_fields[] = {
	{ .name = "cluster", .label = "Cluster", .kind = FORM_INT, .min = 1, .max = LONG_MAX },
	{ .name = "namespace", .label = "Namespace", .kind = FORM_NAME },
	{ .name = "plan", .label = "Plan", .kind = FORM_NAME },
	{ .name = "state", .label = "State", .kind = FORM_CHOICE, .choices = state_choices },
	{ .name = "from", .label = "From", .kind = FORM_TEXT, .max_len = 10 },
	{ .name = "to", .label = "To", .kind = FORM_TEXT, .max_len = 10 },
	{ .name = "page", .label = "Page", .kind = FORM_INT, .min = 1, .max = 100000 },
};
#define FILTER_N (sizeof filter_fields / sizeof filter_fields[0])
enum { F_CLUSTER, F_NAMESPACE, F_PLAN, F_STATE, F_FROM, F_TO, F_PAGE };

/* A calendar date written YYYY-MM-DD, and a real one (no 2026-02-30). */
static int valid_date(const char *s)
{
	struct tm tm = { 0 };
	char back[16];
	const char *end;

	if (strlen(s) != 10 || !(end = strptime(s, "%Y-%m-%d", &tm)) || *end)
		return 0;
	tm.tm_isdst = -1;
	if (timegm(&tm) == (time_t)-1)
		return 0;
	strftime(back, sizeof back, "%Y-%m-%d", &tm);
	return strcmp(back, s) == 0;
}

/* Total bytes a backup keeps: its repository objects and its volumes' data. */
#define BACKUP_TOTAL_BYTES \
	"(b.bytes + coalesce((SELECT sum((v->>'bytes')::bigint) FROM jsonb_array_elements(b.volumes) v " \
	"WHERE jsonb_typeof(v->'bytes') = 'number'), 0))"

/* The columns backup_json reads, in its order. */
#define BACKUP_COLUMNS \
	"b.id, b.name, coalesce(c.name, nullif(b.cluster_name, ''), '(deleted cluster)'), " \
	"array_to_string(b.namespaces, ', '), coalesce(p.name, b.plan_name), coalesce(p.id, 0), " \
	"to_char(b.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), " \
	"coalesce(floor(extract(epoch FROM b.completed_at - b.started_at))::bigint::text, ''), b.state, " \
	"b.resource_count, jsonb_array_length(b.volumes), pg_size_pretty(" BACKUP_TOTAL_BYTES "), " \
	"pg_size_pretty(b.bytes_new), coalesce(to_char(b.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), ''), " \
	"b.delete_error, " BACKUP_TOTAL_BYTES ", b.bytes_new, b.verify_state, b.verify_message, " \
	"coalesce(to_char(b.verified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), ''), b.repository_id"
enum { B_ID, B_NAME, B_CLUSTER, B_NAMESPACES, B_PLAN, B_PLAN_ID, B_STARTED, B_SECONDS, B_STATE, B_OBJECTS,
       B_VOLUMES, B_TOTAL_TEXT, B_NEW_TEXT, B_EXPIRES, B_DELETE_ERROR, B_TOTAL, B_NEW, B_VERIFY_STATE,
       B_VERIFY_MESSAGE, B_VERIFIED_AT, B_REPO };

static int restorable(const char *state)
{
	return strcmp(state, "completed") == 0 || strcmp(state, "partially_failed") == 0;
}

static cJSON *backup_json(PGresult *res, int i)
{
	cJSON *o = cJSON_CreateObject();
	const char *state = PQgetvalue(res, i, B_STATE);
	long long id = atoll(PQgetvalue(res, i, B_ID)), plan = atoll(PQgetvalue(res, i, B_PLAN_ID));
	char buf[200];

	cJSON_AddNumberToObject(o, "id", (double)id);
	cJSON_AddStringToObject(o, "name", PQgetvalue(res, i, B_NAME));
	cJSON_AddStringToObject(o, "cluster", PQgetvalue(res, i, B_CLUSTER));
	cJSON_AddStringToObject(o, "namespaces", PQgetvalue(res, i, B_NAMESPACES));
	cJSON_AddStringToObject(o, "plan", PQgetvalue(res, i, B_PLAN));
	cJSON_AddNumberToObject(o, "plan_id", (double)plan);
	cJSON_AddBoolToObject(o, "plan_deleted", plan == 0 && *PQgetvalue(res, i, B_PLAN));
	cJSON_AddStringToObject(o, "started_at", PQgetvalue(res, i, B_STARTED));
	if (*PQgetvalue(res, i, B_SECONDS)) {
		long s = atol(PQgetvalue(res, i, B_SECONDS));
		if (s >= 60)
			snprintf(buf, sizeof buf, "%ld min %ld s", s / 60, s % 60);
		else
			snprintf(buf, sizeof buf, "%ld s", s);
		cJSON_AddStringToObject(o, "duration", buf);
	}
	cJSON_AddStringToObject(o, "state", state);
	snprintf(buf, sizeof buf, "state_%s", state);
	cJSON_AddBoolToObject(o, buf, 1);
	cJSON_AddBoolToObject(o, "restorable", restorable(state));
	cJSON_AddNumberToObject(o, "objects", atof(PQgetvalue(res, i, B_OBJECTS)));
	cJSON_AddNumberToObject(o, "volumes", atof(PQgetvalue(res, i, B_VOLUMES)));
	cJSON_AddStringToObject(o, "bytes_total_text", PQgetvalue(res, i, B_TOTAL_TEXT));
	cJSON_AddStringToObject(o, "bytes_new_text", PQgetvalue(res, i, B_NEW_TEXT));
	cJSON_AddNumberToObject(o, "bytes_total", atof(PQgetvalue(res, i, B_TOTAL)));
	cJSON_AddNumberToObject(o, "bytes_new", atof(PQgetvalue(res, i, B_NEW)));
	cJSON_AddStringToObject(o, "expires_at", PQgetvalue(res, i, B_EXPIRES));
	cJSON_AddStringToObject(o, "delete_error", PQgetvalue(res, i, B_DELETE_ERROR));
	cJSON_AddNumberToObject(o, "repository_id", atof(PQgetvalue(res, i, B_REPO)));
	cJSON_AddStringToObject(o, "verify_state", PQgetvalue(res, i, B_VERIFY_STATE));
	cJSON_AddBoolToObject(o, "damaged", strcmp(PQgetvalue(res, i, B_VERIFY_STATE), "damaged") == 0);
	cJSON_AddStringToObject(o, "verify_message", PQgetvalue(res, i, B_VERIFY_MESSAGE));
	cJSON_AddStringToObject(o, "verified_at", PQgetvalue(res, i, B_VERIFIED_AT));
	cJSON_AddBoolToObject(o, "can_delete", strcmp(state, "running") != 0);
	if (restorable(state)) {
		snprintf(buf, sizeof buf, "/restore-plans/new?existing_policy=skip&backup_plan_id=%lld&backup_id=%lld", plan, id);
		cJSON_AddStringToObject(o, "restore_link", buf);
	}
	return o;
}

/* ---- the list ---- */

static void add_filter_options(struct request *r, cJSON *view, const struct form_values *v)
{
	char err[256];
	PGresult *res = db_exec(r->db, "SELECT id, name FROM clusters ORDER BY name", 0, NULL, err, sizeof err);
	cJSON *list = cJSON_AddArrayToObject(view, "clusters");
	const char *chosen = v->value[F_CLUSTER];

	for (int i = 0; res && i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", PQgetvalue(res, i, 0));
		cJSON_AddStringToObject(o, "name", PQgetvalue(res, i, 1));
		cJSON_AddBoolToObject(o, "selected", chosen && strcmp(chosen, PQgetvalue(res, i, 0)) == 0);
		cJSON_AddItemToArray(list, o);
	}
	PQclear(res);
}

/* The query string of the filters (without page), for the paging links. */
static void filter_query(const struct form_values *v, struct strbuf *out)
{
	for (size_t f = 0; f < FILTER_N; f++) {
		if (f == F_PAGE || !v->value[f] || !*v->value[f])
			continue;
		strbuf_addf(out, "%s=", filter_fields[f].name);
		url_escape(out, v->value[f], strlen(v->value[f]));
		strbuf_addch(out, '&');
	}
}

void page_backups(struct request *r)
{
	struct form_values v;
	char err[512], offset[24];
	cJSON *view = cJSON_CreateObject(), *list;
	PGresult *res;
	long page;

	form_validate(filter_fields, FILTER_N, &r->query, &v);
	if (v.value[F_FROM] && *v.value[F_FROM] && !valid_date(v.value[F_FROM]))
		form_fail(&v, filter_fields, "from", "From: a date written YYYY-MM-DD, such as 2026-12-01");
	if (v.value[F_TO] && *v.value[F_TO] && !valid_date(v.value[F_TO]))
		form_fail(&v, filter_fields, "to", "To: a date written YYYY-MM-DD, such as 2026-12-31");
	cJSON_AddStringToObject(view, "title", "Backups");
	cJSON_AddBoolToObject(view, "nav_backups", 1);
	cJSON_AddItemToObject(view, "filter", form_view(&v, filter_fields));
	add_filter_options(r, view, &v);
	if (v.errors) {
		cJSON_AddArrayToObject(view, "backups");
		form_values_free(&v);
		respond_form_errors(r, "backups", view);
		return;
	}
	page = v.value[F_PAGE] ? atol(v.value[F_PAGE]) : 1;
	snprintf(offset, sizeof offset, "%ld", (page - 1) * BACKUPS_PAGE_SIZE);
	const char *params[] = { v.value[F_CLUSTER], v.value[F_NAMESPACE], v.value[F_PLAN], v.value[F_STATE],
				 v.value[F_FROM] && *v.value[F_FROM] ? v.value[F_FROM] : NULL,
				 v.value[F_TO] && *v.value[F_TO] ? v.value[F_TO] : NULL, offset };
	res = db_exec(r->db, "SELECT " BACKUP_COLUMNS ", count(*) OVER () FROM backups b "
		      "LEFT JOIN clusters c ON c.id = b.cluster_id LEFT JOIN backup_plans p ON p.id = b.plan_id "
		      "WHERE ($1::bigint IS NULL OR b.cluster_id = $1::bigint) "
		      "AND ($2::text IS NULL OR $2::text = ANY (b.namespaces)) "
		      "AND ($3::text IS NULL OR coalesce(p.name, b.plan_name) = $3::text) "
		      "AND ($4::text IS NULL OR b.state = $4::text) "
		      "AND ($5::date IS NULL OR b.started_at >= $5::date) "
		      "AND ($6::date IS NULL OR b.started_at < $6::date + 1) "
		      "ORDER BY b.started_at DESC, b.id DESC LIMIT " STOWAGE_STR(BACKUPS_PAGE_SIZE) " OFFSET $7::bigint",
		      7, params, err, sizeof err);
	if (!res) {
		form_values_free(&v);
		cJSON_Delete(view);
		respond_db_error(r, err);
		return;
	}
	list = cJSON_AddArrayToObject(view, "backups");
	for (int i = 0; i < PQntuples(res); i++)
		cJSON_AddItemToArray(list, backup_json(res, i));
	long total = PQntuples(res) ? atol(PQgetvalue(res, 0, B_REPO + 1)) : 0;
	PQclear(res);
	struct strbuf q = STRBUF_INIT;
	filter_query(&v, &q);
	cJSON_AddNumberToObject(view, "total", (double)total);
	cJSON_AddNumberToObject(view, "page", (double)page);
	cJSON_AddNumberToObject(view, "pages", (double)((total + BACKUPS_PAGE_SIZE - 1) / BACKUPS_PAGE_SIZE));
	char link[1200];
	if (page > 1) {
		snprintf(link, sizeof link, "/backups?%spage=%ld", q.buf ? q.buf : "", page - 1);
		cJSON_AddStringToObject(view, "prev_link", link);
	}
	if (page * BACKUPS_PAGE_SIZE < total) {
		snprintf(link, sizeof link, "/backups?%spage=%ld", q.buf ? q.buf : "", page + 1);
		cJSON_AddStringToObject(view, "next_link", link);
	}
	strbuf_release(&q);
	form_values_free(&v);
	respond_page(r, 200, "backups", view);
}

/* ---- one backup ---- */

static PGresult *backup_load(struct request *r, char *sid, size_t sidlen)
{
	long long id = request_param_id(r, "id");
	const char *params[] = { sid };
	char err[512];
	PGresult *res;

	snprintf(sid, sidlen, "%lld", id);
	res = id ? db_exec(r->db, "SELECT " BACKUP_COLUMNS ", coalesce(rp.name, ''), "
			   "coalesce(to_char(b.completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '') "
			   "FROM backups b LEFT JOIN clusters c ON c.id = b.cluster_id "
			   "LEFT JOIN backup_plans p ON p.id = b.plan_id LEFT JOIN repositories rp ON rp.id = b.repository_id "
			   "WHERE b.id = $1", 1, params, err, sizeof err) : NULL;
	if (!res || PQntuples(res) != 1) {
		PQclear(res);
		respond_error(r, 404, "There is no such backup.");
		return NULL;
	}
	return res;
}

/* The resource list by type: [{type, count, names: [...]}]. */
static int add_resources(struct request *r, cJSON *view, const char *sid, char *err, size_t errlen)
{
	const char *params[] = { sid };
	PGresult *res = db_exec(r->db,
		"SELECT t.key, jsonb_array_length(t.value), "
		"(SELECT string_agg(n, E'\\n' ORDER BY n) FROM (SELECT jsonb_array_elements_text(t.value) AS n "
		"  LIMIT " STOWAGE_STR(NAMES_SHOWN_PER_TYPE) ") s) "
		"FROM backups b, jsonb_each(b.resource_list) t WHERE b.id = $1 AND jsonb_typeof(t.value) = 'array' "
		"ORDER BY t.key", 1, params, err, errlen);
	cJSON *types;

	if (!res)
		return -1;
	types = cJSON_AddArrayToObject(view, "resources");
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject(), *names = cJSON_AddArrayToObject(o, "names");
		const char *all = PQgetvalue(res, i, 2);
		cJSON_AddStringToObject(o, "type", PQgetvalue(res, i, 0));
		cJSON_AddNumberToObject(o, "count", atof(PQgetvalue(res, i, 1)));
		for (const char *p = all; *p; p += strcspn(p, "\n"), p += *p == '\n') {
			char *name = xstrndup(p, strcspn(p, "\n"));
			cJSON_AddItemToArray(names, cJSON_CreateString(name));
			free(name);
		}
		cJSON_AddBoolToObject(o, "capped", atol(PQgetvalue(res, i, 1)) > NAMES_SHOWN_PER_TYPE);
		cJSON_AddItemToArray(types, o);
	}
	cJSON_AddBoolToObject(view, "has_resources", PQntuples(res) > 0);
	PQclear(res);
	return 0;
}

static int add_volumes_and_hooks(struct request *r, cJSON *view, const char *sid, char *err, size_t errlen)
{
	const char *params[] = { sid };
	PGresult *res = db_exec(r->db,
		"SELECT coalesce(v->>'namespace', ''), coalesce(v->>'pvc', ''), coalesce(v->>'method', ''), "
		"coalesce(v->>'size', ''), coalesce(v->>'storage_class', ''), coalesce(v->>'files', ''), "
		"CASE WHEN jsonb_typeof(v->'bytes') = 'number' THEN pg_size_pretty((v->>'bytes')::bigint) ELSE '' END, "
		"CASE WHEN jsonb_typeof(v->'bytes_new') = 'number' THEN pg_size_pretty((v->>'bytes_new')::bigint) ELSE '' END, "
		"coalesce(v->>'snapshot_id', ''), coalesce(v->'volume_snapshot'->>'name', ''), coalesce(v->>'chunks', '') "
		"FROM backups b, jsonb_array_elements(b.volumes) v WHERE b.id = $1", 1, params, err, errlen);
	static const char *const vcols[] = { "namespace", "pvc", "method", "size", "storage_class", "files", "bytes",
					     "bytes_new", "snapshot_id", "volume_snapshot", "chunks" };
	cJSON *list;

	if (!res)
		return -1;
	list = cJSON_AddArrayToObject(view, "volume_list");
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject();
		for (int c = 0; c < 11; c++)
			cJSON_AddStringToObject(o, vcols[c], PQgetvalue(res, i, c));
		cJSON_AddItemToArray(list, o);
	}
	cJSON_AddBoolToObject(view, "has_volumes", PQntuples(res) > 0);
	PQclear(res);
	res = db_exec(r->db, "SELECT coalesce(h->>'name', ''), coalesce(h->>'phase', ''), coalesce(h->>'state', ''), "
		      "coalesce(h->>'error', ''), coalesce(h->>'duration_ms', '') "
		      "FROM backups b, jsonb_array_elements(b.hooks) h WHERE b.id = $1", 1, params, err, errlen);
	static const char *const hcols[] = { "name", "phase", "state", "error", "duration_ms" };
	if (!res)
		return -1;
	list = cJSON_AddArrayToObject(view, "hooks");
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject();
		for (int c = 0; c < 5; c++)
			cJSON_AddStringToObject(o, hcols[c], PQgetvalue(res, i, c));
		cJSON_AddItemToArray(list, o);
	}
	cJSON_AddBoolToObject(view, "has_hooks", PQntuples(res) > 0);
	PQclear(res);
	return 0;
}

/* The jobs about this backup (the one that wrote it, restores, deletes) and the writer's log. */
static int add_jobs_and_log(struct request *r, cJSON *view, const char *sid, char *err, size_t errlen)
{
	const char *params[] = { sid };
	PGresult *res = db_exec(r->db,
		"SELECT id, kind, state, to_char(queued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), error FROM jobs "
		"WHERE backup_id = $1 ORDER BY queued_at, id LIMIT 100", 1, params, err, errlen);
	cJSON *list;
	long long writer = 0;

	if (!res)
		return -1;
	list = cJSON_AddArrayToObject(view, "jobs");
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject();
		const char *kind = PQgetvalue(res, i, 1);
		cJSON_AddNumberToObject(o, "id", atof(PQgetvalue(res, i, 0)));
		cJSON_AddStringToObject(o, "kind", kind);
		cJSON_AddStringToObject(o, "state", PQgetvalue(res, i, 2));
		cJSON_AddStringToObject(o, "queued_at", PQgetvalue(res, i, 3));
		cJSON_AddStringToObject(o, "error", PQgetvalue(res, i, 4));
		cJSON_AddItemToArray(list, o);
		if (!writer && (strcmp(kind, "backup") == 0 || strcmp(kind, "migrate") == 0))
			writer = atoll(PQgetvalue(res, i, 0));
	}
	PQclear(res);
	cJSON_AddNumberToObject(view, "writer_job_id", (double)writer);
	if (!writer)
		return 0;
	char wid[24];
	const char *wparams[] = { wid };
	snprintf(wid, sizeof wid, "%lld", writer);
	res = db_exec(r->db, "SELECT * FROM (SELECT id, to_char(at AT TIME ZONE 'UTC', 'HH24:MI:SS'), level, message "
		      "FROM job_logs WHERE job_id = $1 ORDER BY id DESC LIMIT " STOWAGE_STR(LOG_LINES_SHOWN) ") l ORDER BY id",
		      1, wparams, err, errlen);
	if (!res)
		return -1;
	list = cJSON_AddArrayToObject(view, "log");
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "at", PQgetvalue(res, i, 1));
		cJSON_AddStringToObject(o, "level", PQgetvalue(res, i, 2));
		cJSON_AddStringToObject(o, "message", PQgetvalue(res, i, 3));
		cJSON_AddItemToArray(list, o);
	}
	PQclear(res);
	return 0;
}

void page_backup(struct request *r)
{
	char sid[24], err[512];
	PGresult *res = backup_load(r, sid, sizeof sid);
	cJSON *view, *b;

	if (!res)
		return;
	view = cJSON_CreateObject();
	b = backup_json(res, 0);
	cJSON_AddStringToObject(b, "repository", PQgetvalue(res, 0, B_REPO + 1));
	cJSON_AddStringToObject(b, "completed_at", PQgetvalue(res, 0, B_REPO + 2));
	cJSON_AddItemToObject(view, "backup", b);
	snprintf(err, sizeof err, "Backup %s", PQgetvalue(res, 0, B_NAME));
	cJSON_AddStringToObject(view, "title", err);
	PQclear(res);
	if (add_resources(r, view, sid, err, sizeof err) < 0 || add_volumes_and_hooks(r, view, sid, err, sizeof err) < 0 ||
	    add_jobs_and_log(r, view, sid, err, sizeof err) < 0) {
		cJSON_Delete(view);
		respond_db_error(r, err);
		return;
	}
	cJSON_AddBoolToObject(view, "nav_backups", 1);
	respond_page(r, 200, "backup", view);
}

/* Delete: the backup is 'deleting' from this transaction on (never offered for restore again)
 * and the runner's delete_backup job removes what it owns, then its row. Pressing Delete on a
 * backup whose deletion failed queues the job again: it resumes where the last one stopped. */
void page_backup_delete(struct request *r)
{
	char sid[24], err[512], loc[64], flash[400], already[300];
	PGresult *res = backup_load(r, sid, sizeof sid);
	struct web_job q = { .audit_action = "backup.delete", .flash = flash, .already = already,
			     .already_location = loc };

	if (!res)
		return;
	int marked = job_backup_deleting(r->db, atoll(sid), 1, &q.spec, err, sizeof err);
	if (marked <= 0) {
		PQclear(res);
		if (marked < 0)
			respond_db_error(r, err);
		else
			respond_error(r, 409, "This backup is still being written: cancel its job first, or wait for its end.");
		return;
	}
	q.audit_name = PQgetvalue(res, 0, B_NAME);
	snprintf(flash, sizeof flash, "Deleting backup %s: it is no longer offered for restore, and its objects, "
		 "snapshots and volume data are being removed.", q.audit_name);
	snprintf(already, sizeof already, "Backup %s is already being deleted.", q.audit_name);
	snprintf(loc, sizeof loc, "/backups/%s", sid);
	web_job_queue(r, &q);
	PQclear(res);
}

/* ---- a repository's upkeep, for its page ---- */

void web_repository_upkeep(struct request *r, cJSON *view, const char *repository_id)
{
	const char *params[] = { repository_id };
	char err[512], ratio[32];
	PGresult *res = db_exec(r->db,
		"SELECT count(b.id) FILTER (WHERE b.state IN ('completed', 'partially_failed')), "
		"pg_size_pretty(coalesce(sum(b.bytes_new), 0)), coalesce(sum(" BACKUP_TOTAL_BYTES "), 0), "
		"coalesce(sum(b.bytes_new), 0), coalesce(to_char(r.last_prune_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), ''), "
		"pg_size_pretty(r.last_prune_bytes_freed), pg_size_pretty(r.bytes_freed_total), r.prune_wanted, "
		"r.last_prune_bytes_freed, r.bytes_freed_total, pg_size_pretty(coalesce(sum(" BACKUP_TOTAL_BYTES "), 0)), "
		"coalesce(to_char(r.last_sync_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), ''), r.last_sync_message, "
		"coalesce(to_char(r.last_verified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), ''), "
		"count(b.id) FILTER (WHERE b.verify_state = 'damaged'), r.last_verify_message "
		"FROM repositories r LEFT JOIN backups b ON b.repository_id = r.id WHERE r.id = $1 GROUP BY r.id",
		1, params, err, sizeof err);
	cJSON *u;

	if (!res || PQntuples(res) != 1) {
		PQclear(res);
		return;
	}
	u = cJSON_AddObjectToObject(view, "upkeep");
	double logical = atof(PQgetvalue(res, 0, 2)), stored = atof(PQgetvalue(res, 0, 3));
	cJSON_AddNumberToObject(u, "backups", atof(PQgetvalue(res, 0, 0)));
	cJSON_AddStringToObject(u, "stored_text", PQgetvalue(res, 0, 1));
	cJSON_AddStringToObject(u, "logical_text", PQgetvalue(res, 0, 10));
	cJSON_AddNumberToObject(u, "bytes_logical", logical);
	cJSON_AddNumberToObject(u, "bytes_stored", stored);
	snprintf(ratio, sizeof ratio, "%.2f", stored > 0 ? logical / stored : 1.0);
	cJSON_AddStringToObject(u, "dedup_ratio", ratio);
	cJSON_AddStringToObject(u, "last_prune_at", PQgetvalue(res, 0, 4));
	cJSON_AddStringToObject(u, "last_prune_freed_text", PQgetvalue(res, 0, 5));
	cJSON_AddStringToObject(u, "freed_total_text", PQgetvalue(res, 0, 6));
	cJSON_AddBoolToObject(u, "prune_wanted", strcmp(PQgetvalue(res, 0, 7), "t") == 0);
	cJSON_AddNumberToObject(u, "last_prune_bytes_freed", atof(PQgetvalue(res, 0, 8)));
	cJSON_AddNumberToObject(u, "bytes_freed_total", atof(PQgetvalue(res, 0, 9)));
	cJSON_AddStringToObject(u, "last_sync_at", PQgetvalue(res, 0, 11));
	cJSON_AddStringToObject(u, "last_sync_message", PQgetvalue(res, 0, 12));
	cJSON_AddStringToObject(u, "last_verified_at", PQgetvalue(res, 0, 13));
	cJSON_AddNumberToObject(u, "damaged", atof(PQgetvalue(res, 0, 14)));
	cJSON_AddStringToObject(u, "last_verify_message", PQgetvalue(res, 0, 15));
	PQclear(res);
}

/* Verify: a verify job of the runner (the web never reads the bucket). read_data asks it to
 * download and authenticate every pack, not only to find each chunk listed. */
static const struct form_field verify_fields[] = {
	{ .name = "read_data", .label = "Read all data", .kind = FORM_BOOL },
};

void page_backup_verify(struct request *r)
{
	char sid[24];
	struct form_values v;
	PGresult *res = backup_load(r, sid, sizeof sid);

	if (!res)
		return;
	if (!restorable(PQgetvalue(res, 0, B_STATE))) {
		PQclear(res);
		respond_error(r, 409, "Only a finished backup can be verified.");
		return;
	}
	if (form_validate(verify_fields, 1, &r->form, &v) > 0) {
		char msg[300];
		snprintf(msg, sizeof msg, "%s", form_first_error(&v));
		form_values_free(&v);
		PQclear(res);
		respond_error(r, 422, msg);
		return;
	}
	struct web_job q = {
		.spec = { .kind = "verify", .backup_id = atoll(sid), .repository_id = atoll(PQgetvalue(res, 0, B_REPO)),
			  .input = v.value[0] && strcmp(v.value[0], "true") == 0 ? "{\"read_data\":true}" :
										 "{\"read_data\":false}" },
		.audit_action = "backup.verify", .audit_name = PQgetvalue(res, 0, B_NAME), .flash = "Verification queued.",
	};
	web_job_queue(r, &q);
	form_values_free(&v);
	PQclear(res);
}

/* ---- Sync: the bucket's backups into the catalog (the runner reads the bucket) ---- */

void page_repository_sync(struct request *r)
{
	long long id = request_param_id(r, "id");
	char sid[24], err[512], loc[64];
	const char *params[] = { sid };
	PGresult *res;

	snprintf(sid, sizeof sid, "%lld", id);
	res = id ? db_exec(r->db, "SELECT name FROM repositories WHERE id = $1", 1, params, err, sizeof err) : NULL;
	if (!res || PQntuples(res) != 1) {
		PQclear(res);
		respond_error(r, 404, "There is no such repository.");
		return;
	}
	struct web_job q = {
		.spec = { .kind = "sync", .repository_id = id },
		.audit_action = "repository.sync", .audit_name = PQgetvalue(res, 0, 0),
		.flash = "Sync queued: the runner reads the bucket's backups into the catalog.",
		.already = "A sync of this repository is already queued or running.", .already_location = loc,
	};
	snprintf(loc, sizeof loc, "/repositories/%lld", id);
	web_job_queue(r, &q);
	PQclear(res);
}
