/* Migration plans (manual 7.1-7.3): name, source and target clusters, repository, namespaces,
 * the claims found and a target StorageClass for each; a pre-check that lists every conflict in
 * the target; "Migrate" (confirmed) queues the job. Step 2 reads both clusters live. */
#include "web.h"
#include "audit.h"
#include "db.h"
#include "json.h"
#include "form.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct form_field migration_fields[] = {
	{ .name = "name", .label = "Name", .kind = FORM_NAME, .required = 1 },
	{ .name = "source_cluster_id", .label = "Source cluster", .kind = FORM_INT, .required = 1, .min = 1, .max = 1L << 53 },
	{ .name = "target_cluster_id", .label = "Target cluster", .kind = FORM_INT, .required = 1, .min = 1, .max = 1L << 53 },
	{ .name = "repository_id", .label = "Repository", .kind = FORM_INT, .required = 1, .min = 1, .max = 1L << 53 },
	{ .name = "namespaces", .label = "Namespaces", .kind = FORM_TEXT, .required = 1, .max_len = 2048 },
	{ .name = "keep_source_running", .label = "Keep the source application running", .kind = FORM_BOOL },
	{ .name = "library_hooks", .label = "Library hooks", .kind = FORM_TEXT, .max_len = 1024 },
	{ .name = "hook_script", .label = "Post-migration hook (Lua)", .kind = FORM_TEXTAREA, .max_len = 65536 },
	{ .name = "notify_emails", .label = "Mail on failure", .kind = FORM_TEXT, .max_len = 1000 },
	{ .name = "ready_timeout_seconds", .label = "Readiness deadline", .kind = FORM_INT, .min = 10, .max = 3600 },
};
#define MIGRATION_N (sizeof migration_fields / sizeof migration_fields[0])
enum { M_NAME, M_SOURCE, M_TARGET, M_REPO, M_NAMESPACES, M_KEEP, M_LIBRARY_HOOKS, M_HOOK_SCRIPT, M_NOTIFY, M_READY };

#define CLASS_PREFIX "class:"

/* The form without its per-claim "class:<ns>/<pvc>" fields, and those apart as {"ns/pvc": class}. */
static void split_classes(const struct kv_list *in, struct kv_list *base, cJSON *classes)
{
	for (size_t i = 0; i < in->count; i++) {
		const struct kv *kv = &in->items[i];
		if (strncmp(kv->key, CLASS_PREFIX, strlen(CLASS_PREFIX)) == 0)
			cJSON_AddStringToObject(classes, kv->key + strlen(CLASS_PREFIX), kv->value);
		else
			kv_add(base, kv->key, kv->value, kv->value_len);
	}
}

/* "shop, blog" -> ["shop", "blog"]; NULL when a name is not a DNS label. */
static cJSON *parse_namespaces(const char *text)
{
	cJSON *list = cJSON_CreateArray();
	char *copy = xstrdup(text), *save = NULL;

	for (char *t = strtok_r(copy, ", \t\n", &save); t; t = strtok_r(NULL, ", \t\n", &save)) {
		size_t n = strlen(t);
		if (n > 63 || strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789-") != n || t[0] == '-' || t[n - 1] == '-') {
			cJSON_Delete(list);
			free(copy);
			return NULL;
		}
		cJSON_AddItemToArray(list, cJSON_CreateString(t));
	}
	free(copy);
	if (cJSON_GetArraySize(list) == 0) {
		cJSON_Delete(list);
		return NULL;
	}
	return list;
}

/* Select options of the tenant's clusters and repositories, marking the chosen ones. */
static int add_choices(struct request *r, cJSON *view, const struct form_values *v)
{
	static const struct { const char *key, *sql; int field; } lists[] = {
		{ "sources", "SELECT id::text AS id, name FROM clusters ORDER BY name", M_SOURCE },
		{ "targets", "SELECT id::text AS id, name FROM clusters ORDER BY name", M_TARGET },
		{ "repositories", "SELECT id::text AS id, name FROM repositories ORDER BY name", M_REPO },
	};
	char err[512];

	for (size_t l = 0; l < 3; l++) {
		PGresult *res = db_exec(r->db, lists[l].sql, 0, NULL, err, sizeof err);
		if (!res) {
			respond_db_error(r, err);
			return -1;
		}
		cJSON *arr = db_rows_json(res), *o;
		const char *chosen = v && v->value[lists[l].field] ? v->value[lists[l].field] : "";
		PQclear(res);
		cJSON_AddItemToObject(view, lists[l].key, arr);
		cJSON_ArrayForEach(o, arr)
			cJSON_AddBoolToObject(o, "selected", strcmp(chosen, json_str(o, "id")) == 0);
	}
	return 0;
}

/* The form's page. Editing (id): step 1 posts to /migrations/:id/edit and step 2 saves to
 * POST /migrations/:id; step 1 keeps the claims' classes chosen so far as hidden fields. */
static void form_respond(struct request *r, int status, const char *page, cJSON *view, const struct form_values *v,
			 long long id, const cJSON *chosen)
{
	int step2 = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(view, "step2"));
	char action[64];

	if (step2)
		snprintf(action, sizeof action, id ? "/migrations/%lld" : "/migrations", id);
	else
		snprintf(action, sizeof action, id ? "/migrations/%lld/edit" : "/migrations/new", id);
	cJSON_AddStringToObject(view, "form_action", action);
	if (id)
		cJSON_AddNumberToObject(view, "edit_id", (double)id);
	if (!step2 && chosen) {
		cJSON *kept = cJSON_AddArrayToObject(view, "kept_classes");
		const cJSON *c;
		cJSON_ArrayForEach(c, chosen) {
			cJSON *h = cJSON_CreateObject();
			char name[600];
			snprintf(name, sizeof name, CLASS_PREFIX "%s", c->string);
			cJSON_AddStringToObject(h, "name", name);
			cJSON_AddStringToObject(h, "value", cJSON_IsString(c) ? c->valuestring : "");
			cJSON_AddItemToArray(kept, h);
		}
	}
	cJSON *steps = cJSON_AddArrayToObject(view, "steps");
	wizard_step_add(steps, "Clusters and namespaces", !step2);
	wizard_step_add(steps, "Claims and StorageClasses", step2);
	cJSON_AddStringToObject(view, "title", id ? "Edit migration" : "New migration");
	cJSON_AddBoolToObject(view, "nav_migrations", 1);
	web_hooks_add_library(r, view);
	if (add_choices(r, view, v) < 0) {
		cJSON_Delete(view);
		return;
	}
	if (status == 200)
		respond_page(r, 200, page, view);
	else
		respond_form_errors(r, page, view);
}

/* Field checks beyond the kinds: distinct clusters of this tenant, a repository of this tenant. */
static void check_more(struct request *r, struct form_values *v)
{
	char err[512];

	if (v->value[M_NAMESPACES]) {
		cJSON *ns = parse_namespaces(v->value[M_NAMESPACES]);
		if (!ns)
			form_fail(v, migration_fields, "namespaces", "Namespaces: one or more namespace names, separated by commas");
		cJSON_Delete(ns);
	}
	if (v->value[M_SOURCE] && v->value[M_TARGET] && strcmp(v->value[M_SOURCE], v->value[M_TARGET]) == 0)
		form_fail(v, migration_fields, "target_cluster_id", "Target cluster: must differ from the source cluster");
	web_hooks_check(r, v, migration_fields);
	char why[300];
	if (notify_emails_check(v->value[M_NOTIFY], why, sizeof why) < 0)
		form_fail(v, migration_fields, "notify_emails", "Mail on failure: %s", why);
	for (int f = M_SOURCE; f <= M_REPO; f++) {
		if (!v->value[f])
			continue;
		const char *params[] = { v->value[f] };
		PGresult *res = db_exec(r->db, f == M_REPO ? "SELECT 1 FROM repositories WHERE id = $1"
							   : "SELECT 1 FROM clusters WHERE id = $1", 1, params, err, sizeof err);
		if (!res || PQntuples(res) != 1)
			form_fail(v, migration_fields, migration_fields[f].name, "%s: choose one of yours",
				  migration_fields[f].label);
		PQclear(res);
	}
}

/* Step 2's view: every claim of the namespaces in the source, the target's classes, as a runner
 * read them. 1, 0 while the runner reads (pending filled), or -1 with err in words (a cluster
 * unreachable, a namespace missing). */
static int add_claims(struct request *r, cJSON *view, const struct form_values *v, const cJSON *chosen,
		      struct runner_answer *pending, char *err, size_t errlen)
{
	long long source = strtoll(v->value[M_SOURCE], NULL, 10), target = strtoll(v->value[M_TARGET], NULL, 10);
	cJSON *ns_list = parse_namespaces(v->value[M_NAMESPACES]), *reads = cJSON_CreateArray();
	const cJSON *ns, *data, *item;
	char why[600];
	int rc, i = 1;

	cJSON_AddItemToArray(reads, web_read_new("storage_classes", target));
	cJSON_ArrayForEach(ns, ns_list) {
		cJSON *read = web_read_new("claims", source);
		cJSON_AddStringToObject(read, "namespace", ns->valuestring);
		cJSON_AddItemToArray(reads, read);
	}
	rc = web_cluster_reads(r, reads, WEB_READS_FRESH, pending, err, errlen);
	cJSON_Delete(reads);
	if (rc <= 0) {
		cJSON_Delete(ns_list);
		return rc;
	}
	const cJSON *classes = NULL;
	const char *default_class = "";
	if (!(data = web_read_result(pending, 0, why, sizeof why))) {
		snprintf(err, errlen, "Target cluster: cannot list its StorageClasses: %s", why);
		rc = -1;
		goto out;
	}
	classes = cJSON_GetObjectItemCaseSensitive(data, "classes");
	default_class = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "default"));
	cJSON_AddItemToObject(view, "target_classes", cJSON_Duplicate(classes, 1));
	cJSON *claims = cJSON_AddArrayToObject(view, "claims");
	cJSON_ArrayForEach(ns, ns_list) {
		if (!(data = web_read_result(pending, i++, why, sizeof why))) {
			snprintf(err, errlen, "Source cluster: cannot list the claims of %s: %s", ns->valuestring, why);
			rc = -1;
			goto out;
		}
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(data, "exists"))) {
			snprintf(err, errlen, "Namespaces: %s in the source cluster: does not exist", ns->valuestring);
			rc = -1;
			goto out;
		}
		cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(data, "claims")) {
			const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "name"));
			const char *cls = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "storage_class"));
			const char *size = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "requested"));
			char key[512];
			if (!name || !*name)
				continue;
			snprintf(key, sizeof key, "%s/%s", ns->valuestring, name);
			const cJSON *choice = cJSON_GetObjectItemCaseSensitive(chosen, key);
			const char *pick = cJSON_IsString(choice) ? choice->valuestring : default_class ? default_class : "";
			cJSON *o = cJSON_CreateObject(), *opts;
			const cJSON *c;
			cJSON_AddStringToObject(o, "key", key);
			cJSON_AddStringToObject(o, "class", cls ? cls : "");
			cJSON_AddStringToObject(o, "size", size ? size : "");
			cJSON_AddStringToObject(o, "choice", pick);
			/* each claim's choice as a select over the target's classes */
			opts = cJSON_AddArrayToObject(o, "options");
			cJSON_ArrayForEach(c, classes) {
				cJSON *opt = cJSON_CreateObject();
				cJSON_AddStringToObject(opt, "name", c->valuestring);
				cJSON_AddBoolToObject(opt, "selected", strcmp(c->valuestring, pick) == 0);
				cJSON_AddItemToArray(opts, opt);
			}
			cJSON_AddItemToArray(claims, o);
		}
	}
out:
	cJSON_Delete(ns_list);
	runner_answer_free(pending);
	return rc;
}

void page_migrations(struct request *r)
{
	char err[512];
	PGresult *res = db_exec(r->db,
		"SELECT m.id, m.name, s.name AS source, t.name AS target, array_to_string(m.namespaces, ', ') AS namespaces, "
		"m.keep_source_running, coalesce((SELECT j.state FROM jobs j WHERE j.migration_plan_id = m.id "
		"ORDER BY j.queued_at DESC LIMIT 1), '') AS last_state "
		"FROM migration_plans m JOIN clusters s ON s.id = m.source_cluster_id JOIN clusters t ON t.id = m.target_cluster_id "
		"ORDER BY m.name", 0, NULL, err, sizeof err);
	cJSON *view;

	if (!res) {
		respond_db_error(r, err);
		return;
	}
	view = cJSON_CreateObject();
	cJSON_AddStringToObject(view, "title", "Migrations");
	cJSON_AddBoolToObject(view, "nav_migrations", 1);
	cJSON_AddItemToObject(view, "migrations", db_rows_json(res));
	PQclear(res);
	respond_page(r, 200, "migrations", view);
}

void page_migration_new(struct request *r)
{
	form_respond(r, 200, "migration_form", cJSON_CreateObject(), NULL, 0, NULL);
}

/* Step 1 posted: validated, then step 2 lists the claims with a class for each. */
static void migration_step(struct request *r, long long id)
{
	struct kv_list base = { 0 };
	cJSON *chosen = cJSON_CreateObject();
	struct form_values v;
	char err[700];
	cJSON *view;

	split_classes(&r->form, &base, chosen);
	form_validate(migration_fields, MIGRATION_N, &base, &v);
	kv_list_free(&base);
	check_more(r, &v);
	if (v.errors) {
		form_respond(r, 422, "migration_form", form_view(&v, migration_fields), &v, id, chosen);
		goto out;
	}
	view = form_view(&v, migration_fields);
	struct runner_answer pending = { 0 };
	int read = add_claims(r, view, &v, chosen, &pending, err, sizeof err);
	if (read == 0) {
		char again[64];
		snprintf(again, sizeof again, id ? "/migrations/%lld/edit" : "/migrations/new", id);
		web_request_view(view, &pending, "Reading both clusters: a runner lists the claims and StorageClasses…", again);
		runner_answer_free(&pending);
		form_respond(r, 200, "migration_form", view, &v, id, chosen);
		goto out;
	}
	cJSON_AddBoolToObject(view, "step2", 1);
	if (read < 0) {
		cJSON_DeleteItemFromObjectCaseSensitive(view, "step2");
		cJSON_AddStringToObject(view, "form_error", err);
		form_respond(r, 422, "migration_form", view, &v, id, chosen);
		goto out;
	}
	form_respond(r, 200, "migration_form", view, &v, id, chosen);
out:
	cJSON_Delete(chosen);
	form_values_free(&v);
}

void page_migration_step(struct request *r)
{
	migration_step(r, 0);
}

/* Create (id 0) or update plan id, validated the same way. */
static void migration_save(struct request *r, long long id)
{
	struct kv_list base = { 0 };
	cJSON *classes = cJSON_CreateObject(), *ns_list = NULL;
	struct form_values v;
	char err[512], loc[64];
	const cJSON *c;

	split_classes(&r->form, &base, classes);
	form_validate(migration_fields, MIGRATION_N, &base, &v);
	kv_list_free(&base);
	check_more(r, &v);
	cJSON_ArrayForEach(c, classes) {
		size_t n = strlen(c->valuestring);
		if (n == 0 || n > 253 || strspn(c->valuestring, "abcdefghijklmnopqrstuvwxyz0123456789-.") != n)
			form_fail(&v, migration_fields, NULL,
				  "Target StorageClass: choose one of the target cluster's classes for every claim");
	}
	if (v.errors) {
		cJSON *view = form_view(&v, migration_fields);
		form_respond(r, 422, "migration_form", view, &v, id, classes);
		goto out;
	}
	ns_list = parse_namespaces(v.value[M_NAMESPACES]);
	char *ns_json = cJSON_PrintUnformatted(ns_list), *cls_json = cJSON_PrintUnformatted(classes);
	/* the hooks run in the target once the application is there (manual 7.4: fix its URLs) */
	char *hooks_json = web_hooks_json(r, v.value[M_LIBRARY_HOOKS], v.value[M_HOOK_SCRIPT], "post-restore");
	char sid[24];
	snprintf(sid, sizeof sid, "%lld", id);
	const char *params[] = { v.value[M_NAME], v.value[M_SOURCE], v.value[M_TARGET], v.value[M_REPO], ns_json,
				 cls_json, strcmp(v.value[M_KEEP], "true") == 0 ? "true" : "false", hooks_json,
				 v.value[M_READY] && *v.value[M_READY] ? v.value[M_READY] : "300", sid };
	PGresult *res = db_exec(r->db, id ?
				"UPDATE migration_plans SET name = $1, source_cluster_id = $2, target_cluster_id = $3, "
				"repository_id = $4, namespaces = ARRAY(SELECT jsonb_array_elements_text($5::jsonb)), "
				"storage_classes = $6::jsonb, keep_source_running = $7, hooks = $8::jsonb, "
				"ready_timeout_seconds = $9 WHERE id = $10 RETURNING id" :
				"INSERT INTO migration_plans (name, source_cluster_id, target_cluster_id, repository_id, "
				"namespaces, storage_classes, keep_source_running, hooks, ready_timeout_seconds) VALUES ($1, $2, $3, $4, "
				"ARRAY(SELECT jsonb_array_elements_text($5::jsonb)), $6::jsonb, $7, $8::jsonb, $9) RETURNING id",
				id ? 10 : 9, params, err, sizeof err);
	free(ns_json);
	free(cls_json);
	free(hooks_json);
	if (!res) {
		if (strcmp(db_last_sqlstate(), "23505") == 0) {
			cJSON *view = form_view(&v, migration_fields);
			cJSON_AddStringToObject(view, "form_error", "Name: a migration of that name already exists.");
			if (web_transaction_restart(r) == 0)	/* the form's lists are read again */
				form_respond(r, 422, "migration_form", view, &v, id, classes);
			else
				cJSON_Delete(view);
		} else {
			respond_db_error(r, err);
		}
		goto out;
	}
	if (PQntuples(res) != 1) {	/* deleted meanwhile */
		PQclear(res);
		respond_error(r, 404, "There is no such migration plan.");
		goto out;
	}
	snprintf(loc, sizeof loc, "/migrations/%s", PQgetvalue(res, 0, 0));
	long long saved = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (notify_plan_emails_save(r, "migration_plan_id", saved, v.value[M_NOTIFY], err, sizeof err) < 0 ||
	    audit_record(r->db, id ? "migration.update" : "migration.create", v.value[M_NAME], classes, err, sizeof err) < 0) {
		respond_db_error(r, err);
		goto out;
	}
	response_flash(r, id ? "Migration plan saved. Run the pre-check again, then Migrate." :
		       "Migration plan saved. Run the pre-check, then Migrate.");
	respond_redirect(r, loc);
out:
	cJSON_Delete(classes);
	cJSON_Delete(ns_list);
	form_values_free(&v);
}

void page_migration_create(struct request *r)
{
	migration_save(r, 0);
}

/* 404 when plan id is not the organisation's, 409 (in words) while a job of it is queued or
 * running; 1 when it may be edited. */
static int migration_editable(struct request *r, long long id)
{
	char msg[300];
	PGresult *res = web_row(r, "SELECT (SELECT j.id FROM jobs j WHERE j.migration_plan_id = m.id "
				"AND j.state IN ('queued', 'running') ORDER BY j.id LIMIT 1) FROM migration_plans m WHERE m.id = $1",
				id, "migration plan");

	if (!res)
		return 0;
	if (!PQgetisnull(res, 0, 0)) {
		snprintf(msg, sizeof msg, "This migration plan has a job queued or running (job #%s): it cannot be edited "
			 "until that job ends (or is cancelled).", PQgetvalue(res, 0, 0));
		PQclear(res);
		respond_error(r, 409, msg);
		return 0;
	}
	PQclear(res);
	return 1;
}

/* GET /migrations/:id/edit: step 1 with the plan's values (its classes kept for step 2). */
void page_migration_edit(struct request *r)
{
	long long id = request_param_id(r, "id");
	char sid[24], err[256];
	const char *params[] = { sid };
	struct kv_list input = { 0 };
	struct form_values v;
	PGresult *res;

	if (!migration_editable(r, id))
		return;
	snprintf(sid, sizeof sid, "%lld", id);
	res = db_exec(r->db, "SELECT name, source_cluster_id, target_cluster_id, repository_id, "
		      "array_to_string(namespaces, ', '), CASE WHEN keep_source_running THEN 'on' ELSE '' END, "
		      "coalesce((SELECT string_agg(k.name, ', ' ORDER BY e.n) FROM jsonb_array_elements(hooks) WITH ORDINALITY e(v, n) "
		      "  JOIN hooks k ON k.id = (e.v ->> 'hook_id')::bigint), ''), "
		      "coalesce((SELECT e ->> 'inline' FROM jsonb_array_elements(hooks) e WHERE e ? 'inline' LIMIT 1), ''), "
		      "storage_classes::text, ready_timeout_seconds FROM migration_plans WHERE id = $1", 1, params, err, sizeof err);
	if (!res || PQntuples(res) != 1) {
		PQclear(res);
		respond_db_error(r, err);
		return;
	}
	for (int f = 0; f < M_NOTIFY; f++)
		if (*PQgetvalue(res, 0, f))
			kv_add(&input, migration_fields[f].name, PQgetvalue(res, 0, f), strlen(PQgetvalue(res, 0, f)));
	cJSON *chosen = cJSON_Parse(PQgetvalue(res, 0, M_NOTIFY));
	kv_add(&input, "ready_timeout_seconds", PQgetvalue(res, 0, M_NOTIFY + 1), strlen(PQgetvalue(res, 0, M_NOTIFY + 1)));
	PQclear(res);
	char emails[1024];
	if (notify_plan_emails_load(r, "migration_plan_id", id, emails, sizeof emails) == 0 && *emails)
		kv_add(&input, "notify_emails", emails, strlen(emails));
	form_validate(migration_fields, MIGRATION_N, &input, &v);
	kv_list_free(&input);
	form_respond(r, 200, "migration_form", form_view(&v, migration_fields), &v, id, chosen);
	cJSON_Delete(chosen);
	form_values_free(&v);
}

void page_migration_edit_step(struct request *r)
{
	long long id = request_param_id(r, "id");

	if (migration_editable(r, id))
		migration_step(r, id);
}

/* POST /migrations/:id: the edited plan, validated as a new one, with its audit entry. */
void page_migration_update(struct request *r)
{
	long long id = request_param_id(r, "id");

	if (migration_editable(r, id))
		migration_save(r, id);
}

/* The plan's row for its page and actions; NULL after answering 404. */
static PGresult *plan_row(struct request *r, char *sid, size_t sidlen)
{
	long long id = request_param_id(r, "id");

	snprintf(sid, sidlen, "%lld", id);
	return web_row(r, "SELECT m.name, m.source_cluster_id, m.target_cluster_id, s.name, t.name, "
		       "array_to_json(m.namespaces)::text, m.storage_classes::text, m.keep_source_running, p.name, "
		       "m.ready_timeout_seconds "
		       "FROM migration_plans m JOIN clusters s ON s.id = m.source_cluster_id "
		       "JOIN clusters t ON t.id = m.target_cluster_id JOIN repositories p ON p.id = m.repository_id "
		       "WHERE m.id = $1", id, "migration plan");
}

/* The pre-check, run by a runner on both clusters: 1 with conflicts (an array) filled, 0 while
 * it runs (pending filled), -1 with err when a cluster cannot say. */
/* fresh_seconds: how old an answer may be (web_cluster_reads); a migration asks for a new one,
 * as the target may have changed since the last pre-check */
static int run_precheck(struct request *r, PGresult *plan, int fresh_seconds, cJSON *conflicts,
			struct runner_answer *pending, char *err, size_t errlen)
{
	cJSON *namespaces = cJSON_Parse(PQgetvalue(plan, 0, 5)), *classes = cJSON_Parse(PQgetvalue(plan, 0, 6));
	cJSON *reads = cJSON_CreateArray();
	const cJSON *ns, *data, *c;
	int rc, i = 0;

	cJSON_ArrayForEach(ns, namespaces) {
		cJSON *read = web_read_new("migration_precheck", strtoll(PQgetvalue(plan, 0, 1), NULL, 10));
		cJSON_AddNumberToObject(read, "target_cluster_id", strtod(PQgetvalue(plan, 0, 2), NULL));
		cJSON_AddStringToObject(read, "namespace", ns->valuestring);
		cJSON_AddItemToObject(read, "storage_classes", cJSON_Duplicate(classes, 1));
		cJSON_AddItemToArray(reads, read);
	}
	cJSON_Delete(namespaces);
	cJSON_Delete(classes);
	rc = web_cluster_reads(r, reads, fresh_seconds, pending, err, errlen);
	cJSON_Delete(reads);
	if (rc <= 0)
		return rc;
	int n = pending->error[0] ? 1 : cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(pending->result, "results"));
	for (i = 0; i < n; i++) {
		if (!(data = web_read_result(pending, i, err, errlen))) {
			rc = -1;
			break;
		}
		cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(data, "conflicts"))
			cJSON_AddItemToArray(conflicts, cJSON_Duplicate(c, 1));
	}
	runner_answer_free(pending);
	return rc;
}

static void plan_page(struct request *r, PGresult *plan, const char *sid, cJSON *view, int status)
{
	char err[512];
	const char *params[] = { sid };
	PGresult *jobs;

	cJSON_AddStringToObject(view, "title", PQgetvalue(plan, 0, 0));
	cJSON_AddBoolToObject(view, "nav_migrations", 1);
	cJSON_AddNumberToObject(view, "id", strtod(sid, NULL));
	cJSON_AddStringToObject(view, "name", PQgetvalue(plan, 0, 0));
	cJSON_AddStringToObject(view, "source", PQgetvalue(plan, 0, 3));
	cJSON_AddStringToObject(view, "target", PQgetvalue(plan, 0, 4));
	cJSON_AddStringToObject(view, "repository", PQgetvalue(plan, 0, 8));
	cJSON_AddItemToObject(view, "namespaces", cJSON_Parse(PQgetvalue(plan, 0, 5)));
	cJSON_AddBoolToObject(view, "keep_source_running", strcmp(PQgetvalue(plan, 0, 7), "t") == 0);
	cJSON_AddNumberToObject(view, "ready_timeout_seconds", strtod(PQgetvalue(plan, 0, 9), NULL));
	cJSON *claims = cJSON_AddArrayToObject(view, "claims"), *classes = cJSON_Parse(PQgetvalue(plan, 0, 6));
	const cJSON *c;
	cJSON_ArrayForEach(c, classes) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "claim", c->string);
		cJSON_AddStringToObject(o, "class", c->valuestring);
		cJSON_AddItemToArray(claims, o);
	}
	cJSON_Delete(classes);
	cJSON_AddBoolToObject(view, "has_claims", cJSON_GetArraySize(claims) > 0);
	cJSON_AddBoolToObject(view, "has_conflicts", cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(view, "conflicts")) > 0);
	jobs = db_exec(r->db, "SELECT id, state, percent, to_char(queued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS queued, "
		       "coalesce(result->>'mode', 'full') AS mode, CASE WHEN jsonb_typeof(result->'downtime_ms') = 'number' "
		       "THEN round((result->>'downtime_ms')::numeric / 1000, 1)::text ELSE '' END AS downtime_s, "
		       "error FROM jobs WHERE migration_plan_id = $1 ORDER BY queued_at DESC LIMIT 50", 1, params, err, sizeof err);
	cJSON_AddItemToObject(view, "jobs", jobs ? db_rows_json(jobs) : cJSON_CreateArray());
	PQclear(jobs);
	/* the last pre-copy that finished: when, and what it wrote into the target's claims */
	jobs = db_exec(r->db, "SELECT id, to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS finished, "
		       "CASE WHEN jsonb_typeof(result->'precopy'->'bytes_written') = 'number' "
		       "THEN (result->'precopy'->>'bytes_written')::numeric ELSE 0 END AS bytes_written, "
		       "CASE WHEN jsonb_typeof(result->'precopy'->'bytes') = 'number' "
		       "THEN (result->'precopy'->>'bytes')::numeric ELSE 0 END AS bytes "
		       "FROM jobs WHERE migration_plan_id = $1 AND kind = 'migrate' AND result->>'mode' = 'pre-copy' "
		       "AND state IN ('succeeded', 'partially_failed') ORDER BY finished_at DESC LIMIT 1", 1, params, err, sizeof err);
	if (jobs && PQntuples(jobs) == 1)
		cJSON_AddItemToObject(view, "last_precopy", db_row_json(jobs, 0));
	cJSON_AddBoolToObject(view, "has_precopy", jobs && PQntuples(jobs) == 1);
	PQclear(jobs);
	if (status == 200)
		respond_page(r, 200, "migration", view);
	else
		respond_form_errors(r, "migration", view);
	if (status != 200)
		r->status = status;
}

void page_migration(struct request *r)
{
	char sid[24];
	PGresult *plan = plan_row(r, sid, sizeof sid);

	if (!plan)
		return;
	plan_page(r, plan, sid, cJSON_CreateObject(), 200);
	PQclear(plan);
}

void page_migration_precheck(struct request *r)
{
	char sid[24], err[600];
	PGresult *plan = plan_row(r, sid, sizeof sid);
	cJSON *view, *conflicts;

	if (!plan)
		return;
	view = cJSON_CreateObject();
	conflicts = cJSON_AddArrayToObject(view, "conflicts");
	struct runner_answer pending = { 0 };
	int rc = run_precheck(r, plan, WEB_READS_FRESH, conflicts, &pending, err, sizeof err);
	if (rc == 0) {
		char again[64];
		snprintf(again, sizeof again, "/migrations/%s/precheck", sid);
		web_request_view(view, &pending, "Pre-check: a runner reads both clusters…", again);
		runner_answer_free(&pending);
		plan_page(r, plan, sid, view, 200);
		PQclear(plan);
		return;
	}
	if (rc < 0)
		cJSON_AddStringToObject(view, "form_error", err);
	else
		cJSON_AddBoolToObject(view, "precheck_clear", cJSON_GetArraySize(conflicts) == 0);
	cJSON_AddBoolToObject(view, "prechecked", 1);
	plan_page(r, plan, sid, view, 200);
	PQclear(plan);
}

/* The plan's runs (docs/migration.md): the job's input says which. */
struct migration_action {
	const char *mode, *path;
	int confirm;		/* the box that says what will happen must be ticked */
	int precheck;		/* the target is asked first, by a runner; conflicts refuse it here */
	const char *audit, *flash;
};

static const struct migration_action action_full = { "full", "migrate", 1, 1, "migration.run", "Migration started." };
static const struct migration_action action_precopy = { "pre-copy", "precopy", 0, 0, "migration.precopy",
	"Pre-copy started: the source keeps running." };
static const struct migration_action action_cutover = { "cutover", "cutover", 1, 0, "migration.cutover",
	"Cutover started: the source stops, only what changed since the pre-copy is copied." };
static const struct migration_action action_test = { "test", "test", 0, 1, "migration.test",
	"Test migration started: the source keeps running; what it restores is removed afterwards." };

static void migration_start(struct request *r, const struct migration_action *a)
{
	char sid[24], err[600], input[64];
	PGresult *plan = plan_row(r, sid, sizeof sid);
	cJSON *view, *conflicts;

	if (!plan)
		return;
	view = cJSON_CreateObject();
	conflicts = cJSON_AddArrayToObject(view, "conflicts");
	if (a->confirm && (!kv_get(&r->form, "confirm") || strcmp(kv_get(&r->form, "confirm"), "on") != 0)) {
		cJSON_AddStringToObject(view, "form_error", "Confirm the migration: tick the box that says what will happen.");
		plan_page(r, plan, sid, view, 422);
		PQclear(plan);
		return;
	}
	struct runner_answer pending = { 0 };
	int rc = a->precheck ? run_precheck(r, plan, 5, conflicts, &pending, err, sizeof err) : 1;
	if (rc == 0) {
		char again[64];
		snprintf(again, sizeof again, "/migrations/%s/%s", sid, a->path);
		web_request_view(view, &pending, "Pre-check before migrating: a runner reads both clusters…", again);
		cJSON_AddBoolToObject(view, "pending_confirm", a->confirm);
		runner_answer_free(&pending);
		plan_page(r, plan, sid, view, 200);
		PQclear(plan);
		return;
	}
	if (rc < 0 || cJSON_GetArraySize(conflicts) > 0) {
		cJSON_AddStringToObject(view, "form_error", cJSON_GetArraySize(conflicts) > 0 ?
					"Refused: the target cluster has conflicts; nothing was changed." : err);
		cJSON_AddBoolToObject(view, "prechecked", 1);
		plan_page(r, plan, sid, view, 409);
		PQclear(plan);
		return;
	}
	cJSON_Delete(view);
	snprintf(input, sizeof input, "{\"mode\":\"%s\"}", a->mode);
	struct web_job q = {
		.spec = { .kind = "migrate", .trigger = "migration", .migration_plan_id = atoll(sid),
			  .cluster_id = atoll(PQgetvalue(plan, 0, 1)), .input = input },
		.audit_action = a->audit, .audit_name = PQgetvalue(plan, 0, 0), .flash = a->flash,
	};
	web_job_queue(r, &q);
	PQclear(plan);
}

void page_migration_run(struct request *r)
{
	migration_start(r, &action_full);
}

void page_migration_precopy(struct request *r)
{
	migration_start(r, &action_precopy);
}

void page_migration_cutover(struct request *r)
{
	migration_start(r, &action_cutover);
}

void page_migration_test(struct request *r)
{
	migration_start(r, &action_test);
}

void page_migration_delete(struct request *r)
{
	static const struct delete_action a = {
		"DELETE FROM migration_plans WHERE id = $1 RETURNING name", "migration.delete", "There is no such migration plan.",
		"This migration plan is still in use.", "Migration plan %s deleted; its jobs were kept.", "/migrations",
	};

	respond_delete(r, &a);
}
