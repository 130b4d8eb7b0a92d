/* Migration plans (manual 7.1-7.3): name, source and target clusters, repository, namespaces,
 * the claims found and a target StorageClass for each; a pre-check that lists every conflict in
 * the target; "Migrate" (confirmed) queues the job. Step 2 reads both clusters live. */
#include "web.h"
#include "audit.h"
#include "db.h"
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
};
#define MIGRATION_N (sizeof migration_fields / sizeof migration_fields[0])
enum { M_NAME, M_SOURCE, M_TARGET, M_REPO, M_NAMESPACES, M_KEEP, M_LIBRARY_HOOKS, M_HOOK_SCRIPT, M_NOTIFY };

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
		{ "sources", "SELECT id, name FROM clusters ORDER BY name", M_SOURCE },
		{ "targets", "SELECT id, name FROM clusters ORDER BY name", M_TARGET },
		{ "repositories", "SELECT id, name FROM repositories ORDER BY name", M_REPO },
	};
	char err[512];

	for (size_t l = 0; l < 3; l++) {
		PGresult *res = db_exec(r->db, lists[l].sql, 0, NULL, err, sizeof err);
		if (!res) {
			respond_db_error(r, err);
			return -1;
		}
		cJSON *arr = cJSON_AddArrayToObject(view, lists[l].key);
		const char *chosen = v && v->value[lists[l].field] ? v->value[lists[l].field] : "";
		for (int i = 0; i < PQntuples(res); i++) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "id", PQgetvalue(res, i, 0));
			cJSON_AddStringToObject(o, "name", PQgetvalue(res, i, 1));
			cJSON_AddBoolToObject(o, "selected", strcmp(chosen, PQgetvalue(res, i, 0)) == 0);
			cJSON_AddItemToArray(arr, o);
		}
		PQclear(res);
	}
	return 0;
}

static void form_respond(struct request *r, int status, const char *page, cJSON *view, const struct form_values *v)
{
	int step2 = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(view, "step2"));
	cJSON *steps = cJSON_AddArrayToObject(view, "steps");

	wizard_step_add(steps, "Clusters and namespaces", !step2);
	wizard_step_add(steps, "Claims and StorageClasses", step2);
	cJSON_AddStringToObject(view, "title", "New migration");
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
		"SELECT m.id, m.name, s.name, t.name, array_to_string(m.namespaces, ', '), m.keep_source_running, "
		"coalesce((SELECT j.state FROM jobs j WHERE j.migration_plan_id = m.id ORDER BY j.queued_at DESC LIMIT 1), '') "
		"FROM migration_plans m JOIN clusters s ON s.id = m.source_cluster_id JOIN clusters t ON t.id = m.target_cluster_id "
		"ORDER BY m.name", 0, NULL, err, sizeof err);
	cJSON *view, *list;

	if (!res) {
		respond_db_error(r, err);
		return;
	}
	view = cJSON_CreateObject();
	cJSON_AddStringToObject(view, "title", "Migrations");
	cJSON_AddBoolToObject(view, "nav_migrations", 1);
	list = cJSON_AddArrayToObject(view, "migrations");
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "id", strtod(PQgetvalue(res, i, 0), NULL));
		cJSON_AddStringToObject(o, "name", PQgetvalue(res, i, 1));
		cJSON_AddStringToObject(o, "source", PQgetvalue(res, i, 2));
		cJSON_AddStringToObject(o, "target", PQgetvalue(res, i, 3));
		cJSON_AddStringToObject(o, "namespaces", PQgetvalue(res, i, 4));
		cJSON_AddBoolToObject(o, "keep_source_running", strcmp(PQgetvalue(res, i, 5), "t") == 0);
		cJSON_AddStringToObject(o, "last_state", PQgetvalue(res, i, 6));
		cJSON_AddItemToArray(list, o);
	}
	PQclear(res);
	respond_page(r, 200, "migrations", view);
}

void page_migration_new(struct request *r)
{
	form_respond(r, 200, "migration_form", cJSON_CreateObject(), NULL);
}

/* Step 1 posted: validated, then step 2 lists the claims with a class for each. */
void page_migration_step(struct request *r)
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
		form_respond(r, 422, "migration_form", form_view(&v, migration_fields), &v);
		goto out;
	}
	view = form_view(&v, migration_fields);
	struct runner_answer pending = { 0 };
	int read = add_claims(r, view, &v, chosen, &pending, err, sizeof err);
	if (read == 0) {
		web_request_view(view, &pending, "Reading both clusters: a runner lists the claims and StorageClasses…",
				 "/migrations/new");
		runner_answer_free(&pending);
		form_respond(r, 200, "migration_form", view, &v);
		goto out;
	}
	cJSON_AddBoolToObject(view, "step2", 1);
	if (read < 0) {
		cJSON_DeleteItemFromObjectCaseSensitive(view, "step2");
		cJSON_AddStringToObject(view, "form_error", err);
		form_respond(r, 422, "migration_form", view, &v);
		goto out;
	}
	form_respond(r, 200, "migration_form", view, &v);
out:
	cJSON_Delete(chosen);
	form_values_free(&v);
}

void page_migration_create(struct request *r)
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
		form_respond(r, 422, "migration_form", view, &v);
		goto out;
	}
	ns_list = parse_namespaces(v.value[M_NAMESPACES]);
	char *ns_json = cJSON_PrintUnformatted(ns_list), *cls_json = cJSON_PrintUnformatted(classes);
	/* the hooks run in the target once the application is there (manual 7.4: fix its URLs) */
	char *hooks_json = web_hooks_json(r, v.value[M_LIBRARY_HOOKS], v.value[M_HOOK_SCRIPT], "post-restore");
	const char *params[] = { v.value[M_NAME], v.value[M_SOURCE], v.value[M_TARGET], v.value[M_REPO], ns_json,
				 cls_json, strcmp(v.value[M_KEEP], "true") == 0 ? "true" : "false", hooks_json };
	PGresult *res = db_exec(r->db, "INSERT INTO migration_plans (name, source_cluster_id, target_cluster_id, repository_id, "
				"namespaces, storage_classes, keep_source_running, hooks) VALUES ($1, $2, $3, $4, "
				"ARRAY(SELECT jsonb_array_elements_text($5::jsonb)), $6::jsonb, $7, $8::jsonb) RETURNING id",
				8, params, err, sizeof err);
	free(ns_json);
	free(cls_json);
	free(hooks_json);
	if (!res) {
		if (strcmp(db_last_sqlstate(), "23505") == 0) {
			cJSON *view = form_view(&v, migration_fields);
			cJSON_AddStringToObject(view, "form_error", "Name: a migration of that name already exists.");
			form_respond(r, 422, "migration_form", view, &v);
		} else {
			respond_db_error(r, err);
		}
		goto out;
	}
	snprintf(loc, sizeof loc, "/migrations/%s", PQgetvalue(res, 0, 0));
	long long id = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (notify_plan_emails_save(r, "migration_plan_id", id, v.value[M_NOTIFY], err, sizeof err) < 0 ||
	    audit_record(r->db, "migration.create", v.value[M_NAME], classes, err, sizeof err) < 0) {
		respond_db_error(r, err);
		goto out;
	}
	response_flash(r, "Migration plan saved. Run the pre-check, then Migrate.");
	respond_redirect(r, loc);
out:
	cJSON_Delete(classes);
	cJSON_Delete(ns_list);
	form_values_free(&v);
}

/* The plan's row for its page and actions; NULL after answering 404. */
static PGresult *plan_row(struct request *r, char *sid, size_t sidlen)
{
	long long id = request_param_id(r, "id");
	char err[512];
	const char *params[] = { sid };
	PGresult *res;

	snprintf(sid, sidlen, "%lld", id);
	res = id ? db_exec(r->db, "SELECT m.name, m.source_cluster_id, m.target_cluster_id, s.name, t.name, "
			   "array_to_json(m.namespaces)::text, m.storage_classes::text, m.keep_source_running, p.name "
			   "FROM migration_plans m JOIN clusters s ON s.id = m.source_cluster_id "
			   "JOIN clusters t ON t.id = m.target_cluster_id JOIN repositories p ON p.id = m.repository_id "
			   "WHERE m.id = $1", 1, params, err, sizeof err) : NULL;
	if (!res || PQntuples(res) != 1) {
		PQclear(res);
		respond_error(r, 404, "There is no such migration plan.");
		return NULL;
	}
	return res;
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
	jobs = db_exec(r->db, "SELECT id, state, percent, to_char(queued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), error "
		       "FROM jobs WHERE migration_plan_id = $1 ORDER BY queued_at DESC LIMIT 50", 1, params, err, sizeof err);
	cJSON *list = cJSON_AddArrayToObject(view, "jobs");
	for (int i = 0; jobs && i < PQntuples(jobs); i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "id", strtod(PQgetvalue(jobs, i, 0), NULL));
		cJSON_AddStringToObject(o, "state", PQgetvalue(jobs, i, 1));
		cJSON_AddNumberToObject(o, "percent", strtod(PQgetvalue(jobs, i, 2), NULL));
		cJSON_AddStringToObject(o, "queued", PQgetvalue(jobs, i, 3));
		cJSON_AddStringToObject(o, "error", PQgetvalue(jobs, i, 4));
		cJSON_AddItemToArray(list, o);
	}
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

void page_migration_run(struct request *r)
{
	char sid[24], err[600];
	PGresult *plan = plan_row(r, sid, sizeof sid);
	cJSON *view, *conflicts;

	if (!plan)
		return;
	view = cJSON_CreateObject();
	conflicts = cJSON_AddArrayToObject(view, "conflicts");
	if (!kv_get(&r->form, "confirm") || strcmp(kv_get(&r->form, "confirm"), "on") != 0) {
		cJSON_AddStringToObject(view, "form_error", "Confirm the migration: tick the box that says what will happen.");
		plan_page(r, plan, sid, view, 422);
		PQclear(plan);
		return;
	}
	struct runner_answer pending = { 0 };
	int rc = run_precheck(r, plan, 5, conflicts, &pending, err, sizeof err);
	if (rc == 0) {
		char again[64];
		snprintf(again, sizeof again, "/migrations/%s/migrate", sid);
		web_request_view(view, &pending, "Pre-check before migrating: a runner reads both clusters…", again);
		cJSON_AddBoolToObject(view, "pending_confirm", 1);
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
	struct web_job q = {
		.spec = { .kind = "migrate", .trigger = "migration", .migration_plan_id = atoll(sid),
			  .cluster_id = atoll(PQgetvalue(plan, 0, 1)) },
		.audit_action = "migration.run", .audit_name = PQgetvalue(plan, 0, 0), .flash = "Migration started.",
	};
	web_job_queue(r, &q);
	PQclear(plan);
}

void page_migration_delete(struct request *r)
{
	static const struct delete_action a = {
		"DELETE FROM migration_plans WHERE id = $1 RETURNING name", "migration.delete", "There is no such migration plan.",
		"This migration plan is still in use.", "Migration plan %s deleted; its jobs were kept.", "/migrations",
	};

	respond_delete(r, &a);
}
