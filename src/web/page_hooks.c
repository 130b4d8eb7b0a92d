/* The hook library (/hooks): a tenant's Lua hooks, every saved version kept. Check compiles a
 * script and points at the line and column of a syntax error; Dry run runs the current version
 * here, against a chosen cluster and namespace, with tight limits and writes recorded instead
 * of made, and shows its log and the writes it would have made. */
#include "web.h"
#include "audit.h"
#include "db.h"
#include "form.h"
#include "lua_sandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOOK_SOURCE_MAX 262144

static const struct form_field hook_fields[] = {
	{ .name = "name", .label = "Name", .kind = FORM_NAME, .required = 1 },
	{ .name = "description", .label = "Description", .kind = FORM_TEXT, .max_len = 1000 },
	{ .name = "source", .label = "Script", .kind = FORM_TEXTAREA, .required = 1, .max_len = HOOK_SOURCE_MAX },
};
#define HOOK_N (sizeof hook_fields / sizeof hook_fields[0])

static const char *const phases[] = { "pre-backup", "post-backup", "pre-restore", "post-restore", NULL };
static const struct form_field dry_fields[] = {
	{ .name = "cluster_id", .label = "Cluster", .kind = FORM_INT, .required = 1, .min = 1, .max = 0x7fffffff },
	{ .name = "namespace", .label = "Namespace", .kind = FORM_NAME, .required = 1 },
	{ .name = "phase", .label = "Phase", .kind = FORM_CHOICE, .required = 1, .choices = phases },
	{ .name = "params", .label = "Params", .kind = FORM_TEXTAREA, .max_len = 65536 },
};
#define DRY_N (sizeof dry_fields / sizeof dry_fields[0])

static void hook_not_found(struct request *r)
{
	respond_error(r, 404, "There is no such hook.");
}

/* The syntax check of source: NULL when it compiles, else "Script: line 3, column 7: ..." (free()). */
static char *hook_syntax_error(const char *source)
{
	char msg[400], out[600];
	int line, column;

	if (lua_sandbox_check_syntax("hook.lua", source, strlen(source), &line, &column, msg, sizeof msg) == 0)
		return NULL;
	if (column > 0)
		snprintf(out, sizeof out, "Script: line %d, column %d: %s", line, column, msg);
	else
		snprintf(out, sizeof out, "Script: line %d: %s", line, msg);
	return xstrdup(out);
}

/* Adds the clusters of the organisation (for the dry-run form) and the hook's versions. */
static int hook_view_add_lists(struct request *r, cJSON *view, long long id)
{
	char err[512], sid[24];
	const char *params[] = { sid };
	PGresult *res = db_exec(r->db, "SELECT id::text AS id, name FROM clusters ORDER BY name", 0, NULL, err, sizeof err);

	if (!res) {
		respond_db_error(r, err);
		return -1;
	}
	cJSON_AddItemToObject(view, "clusters", db_rows_json(res));
	PQclear(res);
	if (!id)
		return 0;
	snprintf(sid, sizeof sid, "%lld", id);
	res = db_exec(r->db, "SELECT v.version, to_char(v.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS created_at, "
		      "coalesce(u.display_name, '') AS created_by, v.version = h.current_version AS current "
		      "FROM hook_versions v JOIN hooks h ON h.id = v.hook_id LEFT JOIN users u ON u.id = v.created_by "
		      "WHERE v.hook_id = $1 ORDER BY v.version DESC", 1, params, err, sizeof err);
	if (!res) {
		respond_db_error(r, err);
		return -1;
	}
	cJSON_AddItemToObject(view, "versions", db_rows_json(res));
	PQclear(res);
	return 0;
}

static void hook_form_respond(struct request *r, int status, cJSON *view, long long id)
{
	cJSON_AddStringToObject(view, "title", id ? "Edit hook" : "New hook");
	cJSON_AddBoolToObject(view, "nav_hooks", 1);
	if (id)
		cJSON_AddNumberToObject(view, "id", (double)id);
	if (hook_view_add_lists(r, view, id) < 0) {
		cJSON_Delete(view);
		return;
	}
	if (status == 200)
		respond_page(r, 200, "hook_form", view);
	else
		respond_form_errors(r, "hook_form", view);
}

void page_hooks(struct request *r)
{
	char err[512];
	PGresult *res = db_exec(r->db,
		"SELECT id, name, description, current_version AS version, "
		"to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS updated "
		"FROM hooks ORDER BY name", 0, NULL, err, sizeof err);
	cJSON *view;

	if (!res) {
		respond_db_error(r, err);
		return;
	}
	view = cJSON_CreateObject();
	cJSON_AddStringToObject(view, "title", "Hooks");
	cJSON_AddBoolToObject(view, "nav_hooks", 1);
	cJSON_AddItemToObject(view, "hooks", db_rows_json(res));
	PQclear(res);
	respond_page(r, 200, "hooks", view);
}

void page_hook_new(struct request *r)
{
	cJSON *view = cJSON_CreateObject();

	cJSON_AddStringToObject(cJSON_AddObjectToObject(cJSON_AddObjectToObject(view, "fields"), "source"), "value",
				"-- on_failure = \"continue\"   -- uncomment to let the job go on when this hook fails\n"
				"log(\"hello from\", job.phase)\n");
	hook_form_respond(r, 200, view, 0);
}

/* Validates the hook form; with errors, answers with the form again and returns -1. */
static int hook_form_read(struct request *r, struct form_values *v, long long id)
{
	char *syntax;

	form_validate(hook_fields, HOOK_N, &r->form, v);
	if (!form_error(v, hook_fields, "source") && (syntax = hook_syntax_error(form_value(v, hook_fields, "source")))) {
		form_fail(v, hook_fields, "source", "%s", syntax);
		free(syntax);
	}
	if (!v->errors)
		return 0;
	hook_form_respond(r, 422, form_view(v, hook_fields), id);
	form_values_free(v);
	return -1;
}

static int hook_audit(struct request *r, const char *action, const char *name, int version)
{
	char err[512];
	cJSON *detail = cJSON_CreateObject();
	int rc;

	if (version)
		cJSON_AddNumberToObject(detail, "version", version);
	rc = audit_record(r->db, action, name, detail, err, sizeof err);
	cJSON_Delete(detail);
	if (rc < 0)
		respond_db_error(r, err);
	return rc;
}

static void hook_name_taken(struct request *r, struct form_values *v, long long id)
{
	cJSON *view = form_view(v, hook_fields);

	cJSON_AddStringToObject(view, "form_error", "Name: a hook of that name already exists.");
	hook_form_respond(r, 422, view, id);
}

void page_hook_create(struct request *r)
{
	struct form_values v;
	char err[512], loc[64];
	PGresult *res;

	if (hook_form_read(r, &v, 0) < 0)
		return;
	const char *params[] = { form_value(&v, hook_fields, "name"), form_value(&v, hook_fields, "description"),
				 form_value(&v, hook_fields, "source") };
	res = db_exec(r->db, "WITH h AS (INSERT INTO hooks (name, description) VALUES ($1, coalesce($2, '')) RETURNING id) "
		      "INSERT INTO hook_versions (hook_id, version, source) SELECT id, 1, $3 FROM h RETURNING hook_id",
		      3, params, err, sizeof err);
	if (!res) {
		if (strcmp(db_last_sqlstate(), "23505") != 0)
			respond_db_error(r, err);
		else if (web_transaction_restart(r) == 0)
			hook_name_taken(r, &v, 0);
		form_values_free(&v);
		return;
	}
	snprintf(loc, sizeof loc, "/hooks/%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	if (hook_audit(r, "hook.create", params[0], 1) == 0) {
		response_flash(r, "Hook saved as version 1.");
		respond_redirect(r, loc);
	}
	form_values_free(&v);
}

void page_hook_update(struct request *r)
{
	long long id = request_param_id(r, "id");
	struct form_values v;
	char err[512], sid[24], loc[64], msg[96];
	PGresult *res;

	if (!id) {
		hook_not_found(r);
		return;
	}
	if (hook_form_read(r, &v, id) < 0)
		return;
	snprintf(sid, sizeof sid, "%lld", id);
	const char *params[] = { sid, form_value(&v, hook_fields, "name"), form_value(&v, hook_fields, "description"),
				 form_value(&v, hook_fields, "source") };
	/* A new version only when the script changed; the name and description are not versioned. */
	res = db_exec(r->db,
		"WITH cur AS (SELECT h.current_version AS version, v.source FROM hooks h "
		"  JOIN hook_versions v ON v.hook_id = h.id AND v.version = h.current_version WHERE h.id = $1 FOR UPDATE OF h), "
		"nv AS (INSERT INTO hook_versions (hook_id, version, source) "
		"  SELECT $1, version + 1, $4 FROM cur WHERE source <> $4 RETURNING version) "
		"UPDATE hooks SET name = $2, description = coalesce($3, ''), updated_at = now(), "
		"  current_version = coalesce((SELECT version FROM nv), current_version) "
		"WHERE id = $1 AND EXISTS (SELECT 1 FROM cur) RETURNING current_version",
		4, params, err, sizeof err);
	if (!res) {
		if (strcmp(db_last_sqlstate(), "23505") != 0)
			respond_db_error(r, err);
		else if (web_transaction_restart(r) == 0)
			hook_name_taken(r, &v, id);
		form_values_free(&v);
		return;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		form_values_free(&v);
		hook_not_found(r);
		return;
	}
	int version = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (hook_audit(r, "hook.update", params[1], version) == 0) {
		snprintf(msg, sizeof msg, "Hook saved; the current version is %d.", version);
		response_flash(r, msg);
		snprintf(loc, sizeof loc, "/hooks/%lld", id);
		respond_redirect(r, loc);
	}
	form_values_free(&v);
}

/* The hook's row and the source of version (0: the current one); NULL after answering 404. */
static PGresult *hook_fetch(struct request *r, long long id, long version)
{
	char sid[24], sver[24], err[512];
	const char *params[] = { sid, sver };
	PGresult *res;

	snprintf(sid, sizeof sid, "%lld", id);
	snprintf(sver, sizeof sver, "%ld", version);
	res = id ? db_exec(r->db, "SELECT h.name, h.description, v.source, v.version, h.current_version FROM hooks h "
			   "JOIN hook_versions v ON v.hook_id = h.id "
			   "AND v.version = CASE WHEN $2::int = 0 THEN h.current_version ELSE $2::int END "
			   "WHERE h.id = $1", 2, params, err, sizeof err) : NULL;
	if (!res || PQntuples(res) != 1) {
		PQclear(res);
		hook_not_found(r);
		return NULL;
	}
	return res;
}

/* The edit form's view of a stored hook. */
static cJSON *hook_stored_view(PGresult *res)
{
	cJSON *view = cJSON_CreateObject(), *fields = cJSON_AddObjectToObject(view, "fields");
	const char *names[] = { "name", "description", "source" };

	for (int i = 0; i < 3; i++)
		cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, names[i]), "value", PQgetvalue(res, 0, i));
	cJSON_AddNumberToObject(view, "version", strtod(PQgetvalue(res, 0, 3), NULL));
	if (strcmp(PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4)) != 0)
		cJSON_AddBoolToObject(view, "old_version", 1);
	return view;
}

void page_hook_edit(struct request *r)
{
	long long id = request_param_id(r, "id");
	const char *ver = kv_get(&r->query, "version");
	PGresult *res = hook_fetch(r, id, ver ? strtol(ver, NULL, 10) : 0);

	if (!res)
		return;
	cJSON *view = hook_stored_view(res);
	PQclear(res);
	hook_form_respond(r, 200, view, id);
}

/* Compiles the submitted script and shows the form again with the outcome; nothing is saved. */
void page_hook_check(struct request *r)
{
	struct form_values v;
	const char *sid = kv_get(&r->form, "_hook_id");
	long long id = sid ? strtoll(sid, NULL, 10) : 0;
	cJSON *view;
	char *syntax;

	form_validate(hook_fields, HOOK_N, &r->form, &v);
	view = form_view(&v, hook_fields);
	/* only a script the form accepts is compiled (its size is what bounds the compile) */
	const char *refused = form_error(&v, hook_fields, "source");
	syntax = refused ? NULL : hook_syntax_error(form_value(&v, hook_fields, "source"));
	if (refused || syntax)
		cJSON_AddStringToObject(view, "check_error", refused ? refused : syntax);
	else
		cJSON_AddStringToObject(view, "check_ok", "Syntax OK: the script compiles.");
	hook_form_respond(r, refused || syntax ? 422 : 200, view, id > 0 ? id : 0);
	free(syntax);
	form_values_free(&v);
}

void page_hook_delete(struct request *r)
{
	char msg[128];
	PGresult *res = web_row(r, "DELETE FROM hooks WHERE id = $1 RETURNING name", request_param_id(r, "id"), "hook");

	if (!res)
		return;
	if (hook_audit(r, "hook.delete", PQgetvalue(res, 0, 0), 0) == 0) {
		snprintf(msg, sizeof msg, "Hook %s deleted.", PQgetvalue(res, 0, 0));
		response_flash(r, msg);
		respond_redirect(r, "/hooks");
	}
	PQclear(res);
}

/* ---- dry run: a runner runs it (src/runner/runner_requests.c); this page asks and shows ---- */

void page_hook_dry_run(struct request *r)
{
	long long id = request_param_id(r, "id");
	struct form_values v;
	PGresult *res = hook_fetch(r, id, 0);
	cJSON *view, *dv, *p, *params = NULL;

	if (!res)
		return;
	form_validate(dry_fields, DRY_N, &r->form, &v);
	const char *ptext = form_value(&v, dry_fields, "params");
	const char *why = form_first_error(&v);
	if (!why && ptext && *ptext && !cJSON_IsObject(params = cJSON_Parse(ptext)))
		why = "Params: must be a JSON object, e.g. {\"old_domain\": \"a.example\"}";
	if (why) {
		view = hook_stored_view(res);
		dv = form_view(&v, dry_fields);
		cJSON_AddItemToObject(view, "dry_fields", cJSON_DetachItemFromObject(dv, "fields"));
		cJSON_Delete(dv);
		cJSON_AddStringToObject(cJSON_AddObjectToObject(view, "dry_run"), "error", why);
		hook_form_respond(r, 200, view, id);
		goto out;
	}
	if (web_org_rate_limit(r) <= 0)
		goto out;
	p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "purpose", "hook_dry_run");
	cJSON_AddNumberToObject(p, "hook_id", (double)id);
	cJSON_AddNumberToObject(p, "cluster_id", atof(form_value(&v, dry_fields, "cluster_id")));
	cJSON_AddStringToObject(p, "namespace", form_value(&v, dry_fields, "namespace"));
	cJSON_AddStringToObject(p, "phase", form_value(&v, dry_fields, "phase"));
	cJSON_AddStringToObject(p, "params_text", ptext ? ptext : "");
	if (params) {
		cJSON_AddItemToObject(p, "params", params);
		params = NULL;
	}
	cJSON_AddStringToObject(p, "name", PQgetvalue(res, 0, 0));
	cJSON_AddStringToObject(p, "source", PQgetvalue(res, 0, 2));
	web_request_follow(r, "hook_dry_run", p);
out:
	cJSON_Delete(params);
	PQclear(res);
	form_values_free(&v);
}

/* The hook's page with the dry run's outcome: its log, its recorded writes, or why it failed. */
void hook_dry_run_answered(struct request *r, const struct runner_answer *a)
{
	long long id = (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(a->params, "hook_id"));
	PGresult *res = hook_fetch(r, id, 0);
	cJSON *view, *fields, *dry;
	char cid[24];
	static const char *const names[] = { "namespace", "phase" };

	if (!res)
		return;
	view = hook_stored_view(res);
	PQclear(res);
	fields = cJSON_AddObjectToObject(view, "dry_fields");
	snprintf(cid, sizeof cid, "%lld",
		 (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(a->params, "cluster_id")));
	cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, "cluster_id"), "value", cid);
	for (int i = 0; i < 2; i++)
		cJSON_AddItemToObject(cJSON_AddObjectToObject(fields, names[i]), "value",
				      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(a->params, names[i]), 1));
	cJSON_AddItemToObject(cJSON_AddObjectToObject(fields, "params"), "value",
			      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(a->params, "params_text"), 1));
	if (a->result) {
		dry = cJSON_Duplicate(a->result, 1);
		cJSON_AddBoolToObject(dry, "has_log", cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(dry, "log")) > 0);
	} else {
		dry = cJSON_CreateObject();
		cJSON_AddStringToObject(dry, "error", a->error);
	}
	cJSON_AddItemToObject(view, "dry_run", dry);
	cJSON *req = cJSON_AddObjectToObject(view, "request");
	cJSON_AddNumberToObject(req, "id", (double)a->id);
	cJSON_AddStringToObject(req, "state", a->state);
	hook_form_respond(r, 200, view, id);
}
