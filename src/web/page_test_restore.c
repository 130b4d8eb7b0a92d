/* Test restores (docs/jobs.md): the Test restore button of a backup's page, the test restores
 * listed there with each check's result, and a backup plan's test restore settings (where, which
 * check hooks, when). The runner does the work (src/runner/job_test_restore.c). */
#include "web.h"
#include "audit.h"
#include "cron.h"
#include "db.h"
#include "form.h"
#include "json.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The organisation's clusters for a select, the one of id chosen marked. */
static cJSON *cluster_options(struct request *r, long long chosen)
{
	char err[256], id[24];
	const char *params[] = { id };
	PGresult *res;
	cJSON *list;

	snprintf(id, sizeof id, "%lld", chosen);
	res = db_exec(r->db, "SELECT id, name, id = $1::bigint AS selected FROM clusters ORDER BY name", 1, params, err,
		      sizeof err);
	list = res ? db_rows_json(res) : cJSON_CreateArray();
	PQclear(res);
	return list;
}

/* A cluster id of the form's field: one of the organisation's clusters, or 0 after form_fail. */
static long long cluster_field(struct request *r, struct form_values *v, const struct form_field *fields)
{
	const char *s = form_value(v, fields, "cluster_id");
	const char *params[] = { s };
	char err[256];
	long long id = 0;
	PGresult *res;

	if (form_error(v, fields, "cluster_id") || !s || !*s)
		return 0;
	res = db_exec(r->db, "SELECT id FROM clusters WHERE id = $1::bigint", 1, params, err, sizeof err);
	if (res && PQntuples(res) == 1)
		id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (!id)
		form_fail(v, fields, "cluster_id", "Cluster: no such cluster in your organisation");
	return id;
}

/* ---- the backup's page ---- */

int test_restore_backup_view(struct request *r, cJSON *view, const char *backup_id, char *err, size_t errlen)
{
	const char *params[] = { backup_id };
	PGresult *res = db_exec(r->db,
		"SELECT j.id, j.state, coalesce(c.name, '') AS cluster, j.trigger, "
		"to_char(j.queued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS queued_at, "
		"(j.result->'test_restore'->>'passed')::boolean AS passed, "
		"(j.result->'test_restore'->>'duration_ms')::bigint AS duration_ms, "
		"coalesce(j.result->'test_restore'->>'error', j.error) AS error, "
		"coalesce(j.result->'test_restore'->'checks', '[]')::text AS checks "
		"FROM jobs j LEFT JOIN clusters c ON c.id = j.cluster_id "
		"WHERE j.backup_id = $1 AND j.kind = 'test_restore' ORDER BY j.id DESC LIMIT 20", 1, params, err, errlen);
	cJSON *list, *t;

	if (!res)
		return -1;
	list = db_rows_json(res);
	PQclear(res);
	cJSON_ArrayForEach(t, list) {
		cJSON *checks = cJSON_Parse(json_str(t, "checks")), *c;
		if (!cJSON_IsArray(checks)) {
			cJSON_Delete(checks);
			checks = cJSON_CreateArray();
		}
		cJSON_ArrayForEach(c, checks) {
			cJSON *log = cJSON_GetObjectItemCaseSensitive(c, "log");
			if (cJSON_IsArray(log)) {	/* the last lines, one text */
				struct strbuf text = STRBUF_INIT;
				const cJSON *line;
				cJSON_ArrayForEach(line, log)
					if (cJSON_IsString(line))
						strbuf_addf(&text, "%s\n", line->valuestring);
				cJSON_ReplaceItemInObjectCaseSensitive(c, "log", cJSON_CreateString(text.buf ? text.buf : ""));
				strbuf_release(&text);
			}
		}
		cJSON_ReplaceItemInObjectCaseSensitive(t, "checks", checks);
		cJSON_AddBoolToObject(t, "finished", cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(t, "passed")));
	}
	cJSON_AddItemToObject(view, "test_restores", list);
	cJSON_AddItemToObject(view, "test_restore_clusters", cluster_options(r, 0));
	return 0;
}

static const struct form_field run_fields[] = {
	{ .name = "cluster_id", .label = "Cluster", .kind = FORM_INT, .required = 1, .min = 1, .max = 0x7fffffffffffffffL },
};

/* POST /backups/:id/test-restore: a test_restore job of this backup into the chosen cluster,
 * with its plan's check hooks. */
void page_backup_test_restore(struct request *r)
{
	long long id = request_param_id(r, "id");
	struct form_values v;
	PGresult *res = web_row(r, "SELECT name, state IN ('completed', 'partially_failed'), coalesce(plan_id, 0) "
				"FROM backups WHERE id = $1", id, "backup");

	if (!res)
		return;
	if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
		PQclear(res);
		respond_error(r, 409, "Only a finished backup can be test-restored.");
		return;
	}
	form_validate(run_fields, 1, &r->form, &v);
	long long cluster = cluster_field(r, &v, run_fields);
	if (v.errors) {
		respond_error(r, 422, form_first_error(&v));
		form_values_free(&v);
		PQclear(res);
		return;
	}
	struct web_job q = {
		.spec = { .kind = "test_restore", .backup_id = id, .backup_plan_id = atoll(PQgetvalue(res, 0, 2)),
			  .cluster_id = cluster },
		.audit_action = "backup.test_restore", .audit_name = PQgetvalue(res, 0, 0),
		.flash = "Test restore queued: the backup is restored into a temporary namespace, checked, and removed.",
	};
	web_job_queue(r, &q);
	form_values_free(&v);
	PQclear(res);
}

/* ---- a backup plan's settings ---- */

int test_restore_plan_view(struct request *r, cJSON *plan, const char *plan_id, char *err, size_t errlen)
{
	const char *params[] = { plan_id };
	PGresult *res = db_exec(r->db,
		"SELECT test_restore_cron AS cron, coalesce(test_restore_cluster_id, 0) AS cluster_id, "
		"test_restore_hooks::text AS hooks, "
		"coalesce(to_char(test_restore_next_run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), '') AS next_run_at "
		"FROM backup_plans WHERE id = $1", 1, params, err, errlen);
	cJSON *t;

	if (!res)
		return -1;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return 0;
	}
	t = db_row_json(res, 0);
	PQclear(res);
	cJSON *hooks = cJSON_Parse(json_str(t, "hooks"));
	cJSON_ReplaceItemInObjectCaseSensitive(t, "hooks", cJSON_IsArray(hooks) ? hooks : cJSON_CreateArray());
	if (!cJSON_IsArray(hooks))
		cJSON_Delete(hooks);
	cJSON_AddItemToObject(t, "clusters", cluster_options(r, (long long)json_num(t, "cluster_id")));
	cJSON_AddItemToObject(plan, "test_restore", t);
	return 0;
}

static const struct form_field plan_fields[] = {
	{ .name = "cluster_id", .label = "Cluster", .kind = FORM_INT, .required = 1, .min = 1, .max = 0x7fffffffffffffffL },
	{ .name = "schedule", .label = "Schedule", .kind = FORM_TEXT, .max_len = 128 },
	{ .name = "library_hooks", .label = "Library hooks", .kind = FORM_TEXT, .max_len = 1024 },
	{ .name = "hook_script", .label = "Check script", .kind = FORM_TEXTAREA, .max_len = 65536 },
};
enum { T_CLUSTER, T_SCHEDULE, T_LIBRARY, T_SCRIPT, T_N };

/* POST /backup-plans/:id/test-restore: where the plan's test restores go, their check hooks and
 * their schedule (a cron expression in the plan's time zone; empty: on demand only). */
void page_backup_plan_test_restore_save(struct request *r)
{
	long long id = request_param_id(r, "id");
	char sid[24], err[512], loc[64], cluster_s[24];
	struct form_values v;
	struct cron_spec spec;
	PGresult *res = web_row(r, "SELECT name FROM backup_plans WHERE id = $1", id, "backup plan");

	if (!res)
		return;
	snprintf(sid, sizeof sid, "%lld", id);
	char *name = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	form_validate(plan_fields, T_N, &r->form, &v);
	long long cluster = cluster_field(r, &v, plan_fields);
	const char *cron = v.value[T_SCHEDULE] ? v.value[T_SCHEDULE] : "";
	if (*cron && !form_error(&v, plan_fields, "schedule") && cron_parse(cron, &spec, err, sizeof err) < 0)
		form_fail(&v, plan_fields, "schedule", "Schedule: %s", err);
	web_hooks_check(r, &v, plan_fields);
	if (v.errors) {
		respond_error(r, 422, form_first_error(&v));
		goto out;
	}
	char *hooks = web_hooks_json(r, v.value[T_LIBRARY], v.value[T_SCRIPT], NULL);
	snprintf(cluster_s, sizeof cluster_s, "%lld", cluster);
	const char *upd[] = { sid, cron, cluster_s, hooks };
	int rc = db_run(r->db, "UPDATE backup_plans SET test_restore_cron = $2, test_restore_cluster_id = $3::bigint, "
			"test_restore_hooks = $4::jsonb, test_restore_next_run_at = NULL, updated_at = now() WHERE id = $1",
			4, upd, err, sizeof err);
	free(hooks);
	if (rc == 0) {
		cJSON *detail = cJSON_CreateObject();
		cJSON_AddStringToObject(detail, "schedule", cron);
		cJSON_AddNumberToObject(detail, "cluster_id", (double)cluster);
		rc = audit_record(r->db, "backup_plan.test_restore", name, detail, err, sizeof err);
		cJSON_Delete(detail);
	}
	if (rc < 0) {
		respond_db_error(r, err);
		goto out;
	}
	response_flash(r, *cron ? "Test restores scheduled." : "Test restore settings saved (on demand only).");
	snprintf(loc, sizeof loc, "/backup-plans/%lld/jobs", id);
	respond_redirect(r, loc);
out:
	form_values_free(&v);
	free(name);
}
