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
#include "json.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STOWAGE_STR_(x) #x
#define STOWAGE_STR(x) STOWAGE_STR_(x)

#define BACKUPS_PAGE_SIZE 50
#define NAMES_SHOWN_PER_TYPE 500	/* as many as sql/028 keeps in backups.resource_summary */
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

/* The columns backup_json reads. */
#define BACKUP_COLUMNS \
	"b.id, b.name, coalesce(c.name, nullif(b.cluster_name, ''), '(deleted cluster)') AS cluster, " \
	"array_to_string(b.namespaces, ', ') AS namespaces, coalesce(p.name, b.plan_name) AS plan, coalesce(p.id, 0) AS plan_id, " \
	"to_char(b.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS started_at, " \
	"floor(extract(epoch FROM b.completed_at - b.started_at))::bigint AS seconds, b.state, " \
	"b.resource_count AS objects, jsonb_array_length(b.volumes) AS volumes, " \
	"pg_size_pretty(" BACKUP_TOTAL_BYTES ") AS bytes_total_text, pg_size_pretty(b.bytes_new) AS bytes_new_text, " \
	"coalesce(to_char(b.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), '') AS expires_at, " \
	"b.delete_error, " BACKUP_TOTAL_BYTES " AS bytes_total, b.bytes_new, b.verify_state, b.verify_message, " \
	"coalesce(to_char(b.verified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), '') AS verified_at, b.repository_id"

static int restorable(const char *state)
{
	return strcmp(state, "completed") == 0 || strcmp(state, "partially_failed") == 0;
}

/* Row i of a query of BACKUP_COLUMNS (and any further named columns) as the pages show a backup. */
static cJSON *backup_json(const PGresult *res, int i)
{
	cJSON *o = db_row_json(res, i), *seconds;
	const char *state = json_str(o, "state");
	long long id = (long long)json_num(o, "id"), plan = (long long)json_num(o, "plan_id");
	char buf[200];

	cJSON_AddBoolToObject(o, "plan_deleted", plan == 0 && *json_str(o, "plan"));
	seconds = cJSON_DetachItemFromObject(o, "seconds");
	if (cJSON_IsNumber(seconds)) {
		long s = (long)seconds->valuedouble;
		if (s >= 60)
			snprintf(buf, sizeof buf, "%ld min %ld s", s / 60, s % 60);
		else
			snprintf(buf, sizeof buf, "%ld s", s);
		cJSON_AddStringToObject(o, "duration", buf);
	}
	cJSON_Delete(seconds);
	snprintf(buf, sizeof buf, "state_%s", state);
	cJSON_AddBoolToObject(o, buf, 1);
	cJSON_AddBoolToObject(o, "restorable", restorable(state));
	cJSON_AddBoolToObject(o, "damaged", strcmp(json_str(o, "verify_state"), "damaged") == 0);
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
	PGresult *res = db_exec(r->db, "SELECT id::text AS id, name FROM clusters ORDER BY name", 0, NULL, err, sizeof err);
	cJSON *list = res ? db_rows_json(res) : cJSON_CreateArray(), *o;
	const char *chosen = v->value[F_CLUSTER];

	PQclear(res);
	cJSON_AddItemToObject(view, "clusters", list);
	cJSON_ArrayForEach(o, list)
		cJSON_AddBoolToObject(o, "selected", chosen && strcmp(chosen, json_str(o, "id")) == 0);
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
	res = db_exec(r->db, "SELECT " BACKUP_COLUMNS ", count(*) OVER () AS total FROM backups b "
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
	long total = 0;
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *b = backup_json(res, i);
		total = (long)json_num(b, "total");
		cJSON_DeleteItemFromObject(b, "total");
		cJSON_AddItemToArray(list, b);
	}
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

/* The backup of the route's :id as backup_json shows it (with its repository and completion
 * time), or NULL after answering 404. */
static cJSON *backup_load(struct request *r, char *sid, size_t sidlen)
{
	long long id = request_param_id(r, "id");
	PGresult *res = web_row(r, "SELECT " BACKUP_COLUMNS ", coalesce(rp.name, '') AS repository, "
				"coalesce(to_char(b.completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '') AS completed_at "
				"FROM backups b LEFT JOIN clusters c ON c.id = b.cluster_id "
				"LEFT JOIN backup_plans p ON p.id = b.plan_id LEFT JOIN repositories rp ON rp.id = b.repository_id "
				"WHERE b.id = $1", id, "backup");
	cJSON *b;

	snprintf(sid, sidlen, "%lld", id);
	if (!res)
		return NULL;
	b = backup_json(res, 0);
	PQclear(res);
	return b;
}

static void object_link(struct strbuf *out, const char *sid, const char *type, const char *object);

/* The resource list by type: [{type, count, names: [...], objects: [{name, link}]}], from the
 * summary made when the list was written (sql/028: its first 500 names a type, sorted). */
static int add_resources(struct request *r, cJSON *view, const char *sid, char *err, size_t errlen)
{
	const char *params[] = { sid };
	PGresult *res = db_exec(r->db,
		"SELECT t.key, (t.value->>'count')::bigint, "
		"(SELECT string_agg(n, E'\\n' ORDER BY n) FROM (SELECT jsonb_array_elements_text(t.value->'names') AS n "
		"  LIMIT " STOWAGE_STR(NAMES_SHOWN_PER_TYPE) ") s) "
		"FROM backups b, jsonb_each(b.resource_summary) t WHERE b.id = $1 ORDER BY t.key", 1, params, err, errlen);
	cJSON *types;

	if (!res)
		return -1;
	types = cJSON_AddArrayToObject(view, "resources");
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject(), *names = cJSON_AddArrayToObject(o, "names");
		cJSON *links = cJSON_AddArrayToObject(o, "objects");
		const char *all = PQgetvalue(res, i, 2), *type = PQgetvalue(res, i, 0);
		cJSON_AddStringToObject(o, "type", type);
		cJSON_AddNumberToObject(o, "count", atof(PQgetvalue(res, i, 1)));
		for (const char *p = all; *p; p += strcspn(p, "\n"), p += *p == '\n') {
			char *name = xstrndup(p, strcspn(p, "\n"));
			struct strbuf link = STRBUF_INIT;
			cJSON *one = cJSON_CreateObject();
			cJSON_AddItemToArray(names, cJSON_CreateString(name));
			object_link(&link, sid, type, name);
			cJSON_AddStringToObject(one, "name", name);
			cJSON_AddStringToObject(one, "link", link.buf);
			cJSON_AddItemToArray(links, one);
			strbuf_release(&link);
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
		"SELECT id, kind, state, to_char(queued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS queued_at, error FROM jobs "
		"WHERE backup_id = $1 ORDER BY jobs.queued_at, id LIMIT 100", 1, params, err, errlen);
	cJSON *list, *o;
	long long writer = 0;

	if (!res)
		return -1;
	list = db_rows_json(res);
	cJSON_AddItemToObject(view, "jobs", list);
	cJSON_ArrayForEach(o, list) {
		const char *kind = json_str(o, "kind");
		if (!writer && (strcmp(kind, "backup") == 0 || strcmp(kind, "migrate") == 0))
			writer = (long long)json_num(o, "id");
	}
	PQclear(res);
	cJSON_AddNumberToObject(view, "writer_job_id", (double)writer);
	if (!writer)
		return 0;
	char wid[24];
	const char *wparams[] = { wid };
	snprintf(wid, sizeof wid, "%lld", writer);
	res = db_exec(r->db, "SELECT at, level, message FROM (SELECT id, to_char(at AT TIME ZONE 'UTC', 'HH24:MI:SS') AS at, "
		      "level, message FROM job_logs WHERE job_id = $1 ORDER BY id DESC LIMIT " STOWAGE_STR(LOG_LINES_SHOWN) ") l "
		      "ORDER BY id", 1, wparams, err, errlen);
	if (!res)
		return -1;
	cJSON_AddItemToObject(view, "log", db_rows_json(res));
	PQclear(res);
	return 0;
}

void page_backup(struct request *r)
{
	char sid[24], err[512];
	cJSON *view, *b = backup_load(r, sid, sizeof sid);

	if (!b)
		return;
	view = cJSON_CreateObject();
	cJSON_AddItemToObject(view, "backup", b);
	snprintf(err, sizeof err, "Backup %s", json_str(b, "name"));
	cJSON_AddStringToObject(view, "title", err);
	if (add_resources(r, view, sid, err, sizeof err) < 0 || add_volumes_and_hooks(r, view, sid, err, sizeof err) < 0 ||
	    add_jobs_and_log(r, view, sid, err, sizeof err) < 0 || test_restore_backup_view(r, view, sid, err, sizeof err) < 0) {
		cJSON_Delete(view);
		respond_db_error(r, err);
		return;
	}
	cJSON_AddBoolToObject(view, "nav_backups", 1);
	respond_page(r, 200, "backup", view);
}

/* ---- one object of the backup, as YAML: a runner reads the archive (the web reads no bucket) ---- */

/* An answer stays good this long: the archive does not change, only its backup's life does. */
#define OBJECT_ANSWER_FRESH 600

static const struct form_field object_fields[] = {
	{ .name = "type", .label = "Type", .kind = FORM_TEXT, .required = 1, .max_len = 300 },
	{ .name = "object", .label = "Object", .kind = FORM_TEXT, .required = 1, .max_len = 320 },
};
enum { O_TYPE, O_OBJECT };

/* The resource list's spelling: "<group>/<version>/<Kind>" and "ns/name" (or "name"). */
static int object_words_valid(const char *s, int slashes_max)
{
	int slashes = 0;

	if (!*s || *s == '/' || s[strlen(s) - 1] == '/')
		return 0;
	for (const char *p = s; *p; p++) {
		if (*p == '/' && (++slashes > slashes_max || p[1] == '/'))
			return 0;
		if (*p == '.' && (p == s || p[-1] == '/'))	/* no segment starts with a dot: no ".." */
			return 0;
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:/", *p))
			return 0;
	}
	return 1;
}

static void object_link(struct strbuf *out, const char *sid, const char *type, const char *object)
{
	strbuf_addf(out, "/backups/%s/object?type=", sid);
	url_escape(out, type, strlen(type));
	strbuf_addstr(out, "&object=");
	url_escape(out, object, strlen(object));
}

static cJSON *object_view(const char *sid, const char *name, const char *type, const char *object)
{
	cJSON *view = cJSON_CreateObject();
	char title[800];

	snprintf(title, sizeof title, "%s %s", type, object);
	cJSON_AddStringToObject(view, "title", title);
	cJSON_AddStringToObject(view, "backup_id", sid);
	cJSON_AddStringToObject(view, "backup_name", name);
	cJSON_AddStringToObject(view, "type", type);
	cJSON_AddStringToObject(view, "object", object);
	cJSON_AddBoolToObject(view, "nav_backups", 1);
	return view;
}

/* GET /backups/:id/object?type=apps/v1/Deployment&object=shop/web: the object as YAML, a
 * Secret's values masked by the runner. Only objects of the backup's resource list are asked. */
void page_backup_object(struct request *r)
{
	char sid[24], err[512];
	struct form_values v;
	struct runner_answer a;
	PGresult *res;
	cJSON *b = backup_load(r, sid, sizeof sid);

	if (!b)
		return;
	char *name = xstrdup(json_str(b, "name"));
	int finished = restorable(json_str(b, "state"));
	cJSON_Delete(b);
	form_validate(object_fields, 2, &r->query, &v);
	if (!v.errors && !object_words_valid(v.value[O_TYPE], 2))
		form_fail(&v, object_fields, "type", "Type: a type of the backup's resource list, such as apps/v1/Deployment");
	if (!v.errors && !object_words_valid(v.value[O_OBJECT], 1))
		form_fail(&v, object_fields, "object", "Object: namespace/name, or the name of a cluster-scoped object");
	if (v.errors) {
		respond_error(r, 422, form_first_error(&v));
		form_values_free(&v);
		free(name);
		return;
	}
	cJSON *view = object_view(sid, name, v.value[O_TYPE], v.value[O_OBJECT]);
	free(name);
	const char *params[] = { sid, v.value[O_TYPE], v.value[O_OBJECT] };
	res = db_exec(r->db, "SELECT coalesce(resource_list->$2 ? $3, false) FROM backups WHERE id = $1", 3, params, err,
		      sizeof err);
	if (!res || PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0 || !finished) {
		PQclear(res);
		cJSON_Delete(view);
		form_values_free(&v);
		respond_error(r, res ? 404 : 500, finished ? "This backup's resource list has no such object." :
			      "Only a finished backup's objects can be read.");
		return;
	}
	PQclear(res);
	cJSON *ask = cJSON_CreateObject();
	cJSON_AddNumberToObject(ask, "backup_id", (double)atoll(sid));
	cJSON_AddStringToObject(ask, "type", v.value[O_TYPE]);
	cJSON_AddStringToObject(ask, "object", v.value[O_OBJECT]);
	form_values_free(&v);
	int rc = web_request_reuse(r, "backup_object", ask, OBJECT_ANSWER_FRESH, &a, err, sizeof err);
	cJSON_Delete(ask);
	if (rc < 0) {
		cJSON_Delete(view);
		web_request_refused(r, a.id, err);
		return;
	}
	if (rc == 0)
		web_request_view(view, &a, "Reading the object: a runner reads the backup's archive…", NULL);
	else if (a.error[0])
		cJSON_AddStringToObject(view, "error", a.error);
	else {
		cJSON_AddStringToObject(view, "yaml", json_str(a.result, "yaml"));
		cJSON_AddBoolToObject(view, "secret_masked", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a.result, "secret_masked")));
	}
	runner_answer_free(&a);
	respond_page(r, 200, "backup_object", view);
}

/* GET /requests/:id for an object read (the refresh link without JavaScript): back to its page. */
void backup_object_answered(struct request *r, const struct runner_answer *a)
{
	const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a->params, "type"));
	const char *object = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a->params, "object"));
	struct strbuf link = STRBUF_INIT;
	char sid[24];

	snprintf(sid, sizeof sid, "%lld", (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(a->params, "backup_id")));
	object_link(&link, sid, type ? type : "", object ? object : "");
	respond_redirect(r, link.buf);
	strbuf_release(&link);
}

/* Delete: the backup is 'deleting' from this transaction on (never offered for restore again)
 * and the runner's delete_backup job removes what it owns, then its row. Pressing Delete on a
 * backup whose deletion failed queues the job again: it resumes where the last one stopped. */
void page_backup_delete(struct request *r)
{
	char sid[24], err[512], loc[64], flash[400], already[300];
	cJSON *b = backup_load(r, sid, sizeof sid);
	struct web_job q = { .audit_action = "backup.delete", .flash = flash, .already = already,
			     .already_location = loc };

	if (!b)
		return;
	int marked = job_backup_deleting(r->db, atoll(sid), 1, &q.spec, err, sizeof err);
	if (marked <= 0) {
		cJSON_Delete(b);
		if (marked < 0)
			respond_db_error(r, err);
		else
			respond_error(r, 409, "This backup is still being written: cancel its job first, or wait for its end.");
		return;
	}
	q.audit_name = json_str(b, "name");
	snprintf(flash, sizeof flash, "Deleting backup %s: it is no longer offered for restore, and its objects, "
		 "snapshots and volume data are being removed.", q.audit_name);
	snprintf(already, sizeof already, "Backup %s is already being deleted.", q.audit_name);
	snprintf(loc, sizeof loc, "/backups/%s", sid);
	web_job_queue(r, &q);
	cJSON_Delete(b);
}

/* Download: a download job of the runner reads and opens the archive and leaves it in the
 * database for a day (GET /jobs/:id/archive.tar.gz); its page links it once it is there. */
void page_backup_download(struct request *r)
{
	char sid[24];
	cJSON *b = backup_load(r, sid, sizeof sid);

	if (!b)
		return;
	if (!restorable(json_str(b, "state"))) {
		cJSON_Delete(b);
		respond_error(r, 409, "Only a finished backup can be downloaded.");
		return;
	}
	struct web_job q = {
		.spec = { .kind = "download", .backup_id = atoll(sid), .repository_id = (long long)json_num(b, "repository_id") },
		.audit_action = "backup.download", .audit_name = json_str(b, "name"),
		.flash = "Preparing the download: a runner reads and decrypts the archive; the link appears on this page.",
	};
	web_job_queue(r, &q);
	cJSON_Delete(b);
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
	cJSON *b = backup_load(r, sid, sizeof sid);

	if (!b)
		return;
	if (!restorable(json_str(b, "state"))) {
		cJSON_Delete(b);
		respond_error(r, 409, "Only a finished backup can be verified.");
		return;
	}
	if (form_validate(verify_fields, 1, &r->form, &v) > 0) {
		char msg[300];
		snprintf(msg, sizeof msg, "%s", form_first_error(&v));
		form_values_free(&v);
		cJSON_Delete(b);
		respond_error(r, 422, msg);
		return;
	}
	struct web_job q = {
		.spec = { .kind = "verify", .backup_id = atoll(sid), .repository_id = (long long)json_num(b, "repository_id"),
			  .input = v.value[0] && strcmp(v.value[0], "true") == 0 ? "{\"read_data\":true}" :
										 "{\"read_data\":false}" },
		.audit_action = "backup.verify", .audit_name = json_str(b, "name"), .flash = "Verification queued.",
	};
	web_job_queue(r, &q);
	form_values_free(&v);
	cJSON_Delete(b);
}

/* ---- Sync: the bucket's backups into the catalog (the runner reads the bucket) ---- */

void page_repository_sync(struct request *r)
{
	long long id = request_param_id(r, "id");
	char loc[64];
	PGresult *res = web_row(r, "SELECT name FROM repositories WHERE id = $1", id, "repository");

	if (!res)
		return;
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
