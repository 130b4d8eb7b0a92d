/* Restore plans (manual 5.1-5.3, 6.1): the list with "Activate", and the wizard: (1) name, target
 * cluster (the same or another), namespace mapping, StorageClass mapping and what to do with
 * objects that already exist; (2) the backup plan; (3) one of its completed backups; (4)
 * post-restore hooks. Finishing checks the target and the mapped classes before saving. */
#include "web.h"
#include "audit.h"
#include "db.h"
#include "form.h"
#include "label_selector.h"
#include "resource_modifier.h"
#include "names.h"
#include "restore_picker.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const policy_choices[] = { "skip", "update", NULL };

static const struct form_field step1_fields[] = {
	{ .name = "name", .label = "Name", .kind = FORM_NAME, .required = 1 },
	{ .name = "target_cluster_id", .label = "Target cluster", .kind = FORM_INT, .required = 1, .min = 1, .max = LONG_MAX },
	{ .name = "namespace_map", .label = "Namespace mapping", .kind = FORM_TEXTAREA, .max_len = 8192 },
	{ .name = "storage_class_map", .label = "StorageClass mapping", .kind = FORM_TEXTAREA, .max_len = 8192 },
	{ .name = "existing_policy", .label = "Existing objects", .kind = FORM_CHOICE, .required = 1, .choices = policy_choices },
	{ .name = "reattach_volumes", .label = "Reattach the original volumes", .kind = FORM_BOOL },
	{ .name = "restore_storage_classes", .label = "Create the backup's StorageClasses", .kind = FORM_BOOL },
	{ .name = "restore_completed_jobs", .label = "Recreate finished Jobs", .kind = FORM_BOOL },
	{ .name = "notify_emails", .label = "Mail on failure", .kind = FORM_TEXT, .max_len = 1000 },
};
enum { S1_NAME, S1_CLUSTER, S1_NSMAP, S1_SCMAP, S1_POLICY, S1_REATTACH, S1_CLASSES, S1_JOBS, S1_NOTIFY };

static const struct form_field step2_fields[] = {
	/* 0: the backups no plan owns any more (its plan was deleted) or never did (a migration's) */
	{ .name = "backup_plan_id", .label = "Backup plan", .kind = FORM_INT, .required = 1, .min = 0, .max = LONG_MAX },
};

static const struct form_field step3_fields[] = {
	{ .name = "backup_id", .label = "Backup", .kind = FORM_INT, .required = 1, .min = 1, .max = LONG_MAX },
	/* restore part of it (sql/013 restore_plans.selection); all empty: everything */
	{ .name = "include_types", .label = "Only these types", .kind = FORM_TEXT, .max_len = 2048 },
	{ .name = "exclude_types", .label = "Not these types", .kind = FORM_TEXT, .max_len = 2048 },
	{ .name = "label_selector", .label = "Label selector", .kind = FORM_TEXT, .max_len = 1024 },
	{ .name = "objects", .label = "Only these objects", .kind = FORM_TEXTAREA, .max_len = 65536 },
};
enum { S3_BACKUP, S3_INCLUDE, S3_EXCLUDE, S3_SELECTOR, S3_OBJECTS };

static const struct form_field step4_fields[] = {
	{ .name = "library_hooks", .label = "Library hooks", .kind = FORM_TEXT, .max_len = 1024 },
	{ .name = "hook_script", .label = "Post-restore hook (Lua)", .kind = FORM_TEXTAREA, .max_len = 65536 },
	{ .name = "resource_modifiers", .label = "Resource modifiers", .kind = FORM_TEXTAREA,
	  .max_len = RESOURCE_MODIFIERS_MAX_BYTES },
};
enum { S4_LIBRARY, S4_SCRIPT, S4_MODIFIERS };

static void step1_check(struct request *r, const struct wizard *w, struct form_values *v);
static void hooks_step_check(struct request *r, const struct wizard *w, struct form_values *v);
static void step2_check(struct request *r, const struct wizard *w, struct form_values *v);
static void step3_check(struct request *r, const struct wizard *w, struct form_values *v);

static const struct wizard_step restore_steps[] = {
	{ "Target", step1_fields, sizeof step1_fields / sizeof step1_fields[0], step1_check },
	{ "Backup plan", step2_fields, 1, step2_check },
	{ "Backup", step3_fields, sizeof step3_fields / sizeof step3_fields[0], step3_check },
	{ "Hooks", step4_fields, sizeof step4_fields / sizeof step4_fields[0], hooks_step_check },
};
#define RESTORE_STEPS (sizeof restore_steps / sizeof restore_steps[0])

/* The backups a restore may use: complete, or complete except for some objects. */
#define RESTORABLE "state IN ('completed', 'partially_failed')"

/* Lines "old:new" into a JSON object; NULL with the reason in err when a line is not that.
 * dots: names are DNS subdomains (storage classes) rather than labels (namespaces). */
static cJSON *parse_map(const char *lines, const char *label, int dots, char *err, size_t errlen)
{
	cJSON *map = cJSON_CreateObject();
	size_t max = dots ? 253 : 63;

	for (const char *p = lines ? lines : ""; *p; p += strcspn(p, "\n"), p += *p == '\n') {
		size_t len = strcspn(p, "\n");
		char *line = xstrndup(p, len), *colon = strchr(line, ':'), *from = line, *to;
		while (len && (line[len - 1] == ' ' || line[len - 1] == '\t'))
			line[--len] = '\0';
		from += strspn(from, " \t");
		if (!*from) {
			free(line);
			continue;
		}
		if (!colon) {
			snprintf(err, errlen, "%s: \"%.80s\" is not source:target", label, from);
			goto bad;
		}
		*colon = '\0';
		to = colon + 1 + strspn(colon + 1, " \t");
		for (char *e = colon; e > from && (e[-1] == ' ' || e[-1] == '\t');)
			*--e = '\0';
		if (!dns_name_valid(from, strlen(from), max, dots) || !dns_name_valid(to, strlen(to), max, dots)) {
			snprintf(err, errlen, "%s: \"%.60s:%.60s\" needs two %s names", label, from, to,
				 dots ? "lowercase resource" : "namespace");
			goto bad;
		}
		if (cJSON_GetObjectItem(map, from)) {
			snprintf(err, errlen, "%s: %s is mapped twice", label, from);
			goto bad;
		}
		cJSON_AddStringToObject(map, from, to);
		free(line);
		continue;
bad:
		free(line);
		cJSON_Delete(map);
		return NULL;
	}
	return map;
}

static void step1_check(struct request *r, const struct wizard *w, struct form_values *v)
{
	const char *params[] = { v->value[S1_CLUSTER] };
	char err[300];
	cJSON *map;

	(void)w;
	if (!db_exists(r->db, "SELECT 1 FROM clusters WHERE id = $1", 1, params))
		form_fail(v, step1_fields, "target_cluster_id", "Target cluster: choose one of your clusters");
	if (!(map = parse_map(v->value[S1_NSMAP], "Namespace mapping", 0, err, sizeof err)))
		form_fail(v, step1_fields, "namespace_map", "%s", err);
	cJSON_Delete(map);
	if (!(map = parse_map(v->value[S1_SCMAP], "StorageClass mapping", 1, err, sizeof err)))
		form_fail(v, step1_fields, "storage_class_map", "%s", err);
	cJSON_Delete(map);
	if (notify_emails_check(v->value[S1_NOTIFY], err, sizeof err) < 0)
		form_fail(v, step1_fields, "notify_emails", "Mail on failure: %s", err);
}

static void step2_check(struct request *r, const struct wizard *w, struct form_values *v)
{
	const char *params[] = { v->value[0] };

	(void)w;
	if (strcmp(v->value[0], "0") == 0 ?
	    !db_exists(r->db, "SELECT 1 FROM backups WHERE plan_id IS NULL AND " RESTORABLE " LIMIT 1", 0, NULL) :
	    !db_exists(r->db, "SELECT 1 FROM backup_plans WHERE id = $1", 1, params))
		form_fail(v, step2_fields, "backup_plan_id", "Backup plan: choose one of your backup plans");
}

/* resource[.group]: plural resource names and API group names, lowercase */
static int valid_type(const char *t, size_t len)
{
	return dns_name_valid(t, len, 253, 1);
}

/* "a, b c" into a JSON array of types; NULL after failing field i. */
static cJSON *type_list(const char *text, const char *label, struct form_values *v, int i)
{
	cJSON *list = cJSON_CreateArray();

	for (const char *p = text ? text : ""; *p;) {
		p += strspn(p, " ,\t");
		size_t n = strcspn(p, " ,\t");
		if (!n)
			break;
		if (!valid_type(p, n) || cJSON_GetArraySize(list) >= 100) {
			form_fail(v, step3_fields, step3_fields[i].name, "%s: \"%.*s\" is not a resource type such as configmaps or deployments.apps", label,
				   (int)(n > 80 ? 80 : n), p);
			cJSON_Delete(list);
			return NULL;
		}
		char *t = xstrndup(p, n);
		cJSON_AddItemToArray(list, cJSON_CreateString(t));
		free(t);
		p += n;
	}
	return list;
}

/* The restore's selection from step 3's fields, or NULL after failing the field that is wrong. */
static cJSON *restore_selection(const char *include, const char *exclude, const char *selector, const char *objects,
				struct form_values *v, char *err, size_t errlen)
{
	cJSON *sel = cJSON_CreateObject(), *list;
	char *canonical = NULL;

	if (!(list = type_list(include, "Only these types", v, S3_INCLUDE)))
		goto bad;
	cJSON_AddItemToObject(sel, "include_types", list);
	if (!(list = type_list(exclude, "Not these types", v, S3_EXCLUDE)))
		goto bad;
	cJSON_AddItemToObject(sel, "exclude_types", list);
	if (label_selector_check(selector ? selector : "", &canonical, err, errlen) < 0) {
		form_fail(v, step3_fields, "label_selector", "Label selector: %s", err);
		goto bad;
	}
	cJSON_AddStringToObject(sel, "label_selector", canonical);
	free(canonical);
	list = cJSON_AddArrayToObject(sel, "objects");
	for (const char *p = objects ? objects : ""; *p; p += strcspn(p, "\n"), p += *p == '\n') {
		size_t n = strcspn(p, "\n");
		char *line = xstrndup(p, n), *a = line + strspn(line, " \t"), *s1, *s2;
		for (size_t k = strlen(a); k && (a[k - 1] == ' ' || a[k - 1] == '\t' || a[k - 1] == '\r');)
			a[--k] = '\0';
		if (!*a) {
			free(line);
			continue;
		}
		s1 = strchr(a, '/');
		s2 = s1 ? strchr(s1 + 1, '/') : NULL;
		if (!s1 || !s2 || !valid_type(a, (size_t)(s1 - a)) ||
		    (s2 > s1 + 1 && !dns_name_valid(s1 + 1, (size_t)(s2 - s1 - 1), 63, 0)) ||
		    !dns_name_valid(s2 + 1, strlen(s2 + 1), 253, 1) || cJSON_GetArraySize(list) >= 1000) {
			form_fail(v, step3_fields, "objects", "Only these objects: \"%.80s\" is not type/namespace/name, such as "
				   "configmaps/shop/settings (cluster-scoped: type//name)", a);
			free(line);
			goto bad;
		}
		cJSON_AddItemToArray(list, cJSON_CreateString(a));
		free(line);
	}
	return sel;
bad:
	cJSON_Delete(sel);
	return NULL;
}

static void step3_check(struct request *r, const struct wizard *w, struct form_values *v)
{
	const char *plan = wizard_value(w, 2, "backup_plan_id");
	const char *params[] = { v->value[0], plan ? plan : "0" };

	if (!db_exists(r->db, "SELECT 1 FROM backups WHERE id = $1 AND plan_id IS NOT DISTINCT FROM nullif($2::bigint, 0) AND "
			RESTORABLE, 2, params))
		form_fail(v, step3_fields, "backup_id", "Backup: choose a completed backup of the chosen plan");
	char err[400];
	cJSON *sel = restore_selection(v->value[S3_INCLUDE], v->value[S3_EXCLUDE], v->value[S3_SELECTOR],
				       v->value[S3_OBJECTS], v, err, sizeof err);
	char missing[300];
	if (sel && restore_objects_missing(r, v->value[0], cJSON_GetObjectItemCaseSensitive(sel, "objects"), missing,
					   sizeof missing, err, sizeof err) == 1)
		form_fail(v, step3_fields, "objects", "Only these objects: %s is not in this backup", missing);
	cJSON_Delete(sel);
}

static size_t requested_step(const struct request *r)
{
	const char *s = kv_get(&r->query, "step");

	if (!s || strlen(s) != 1 || s[0] < '1' || s[0] > '0' + (int)RESTORE_STEPS)
		return 1;
	return (size_t)(s[0] - '0');
}

/* ---- rendering ---- */

static void add_rows(struct request *r, cJSON *view, const char *key, const char *sql, int n, const char *const *params,
		     const char *const *cols, const char *selected)
{
	char err[256];
	PGresult *res = db_exec(r->db, sql, n, params, err, sizeof err);
	cJSON *list = cJSON_AddArrayToObject(view, key);

	for (int i = 0; res && i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject();
		for (int c = 0; cols[c]; c++)
			cJSON_AddStringToObject(o, cols[c], PQgetvalue(res, i, c));
		cJSON_AddBoolToObject(o, "selected", selected && strcmp(selected, PQgetvalue(res, i, 0)) == 0);
		cJSON_AddItemToArray(list, o);
	}
	PQclear(res);
}

/* Step 3's object picker (its textarea keeps the chosen objects the page does not show) and
 * step 4's modifiers preview (asked with ?preview=1). raw: the posted or queried fields. */
static void restore_objects_view(struct request *r, struct wizard *w, size_t shown, cJSON *view, const char *base,
				 const struct kv_list *raw)
{
	char action[120];
	const char *filter = raw ? kv_get(raw, "object_filter") : NULL, *page = raw ? kv_get(raw, "object_page") : NULL;

	if (shown == 3) {
		snprintf(action, sizeof action, "%s?step=3", base);
		char *rest = restore_picker_add(r, view, wizard_value(w, 3, "backup_id"), wizard_value(w, 3, "objects"),
						filter ? filter : kv_get(&r->query, "object_filter"),
						page ? page : kv_get(&r->query, "object_page"), action);
		cJSON *field = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(view, "fields"), "objects");
		if (field)
			cJSON_ReplaceItemInObjectCaseSensitive(field, "value", cJSON_CreateString(rest));
		free(rest);
	} else if (shown == 4) {
		snprintf(action, sizeof action, "%s?step=4&preview=1", base);
		cJSON_AddStringToObject(view, "preview_action", action);
		const char *want = kv_get(&r->query, "preview");
		if (want && strcmp(want, "1") == 0)
			restore_preview_add(r, view, wizard_value(w, 3, "backup_id"), wizard_value(w, 3, "objects"),
					    wizard_value(w, 4, "resource_modifiers"), action);
	}
}

static void restore_wizard_respond(struct request *r, struct wizard *w, size_t shown, int with_errors, cJSON *checks,
				   const struct runner_answer *checking, long long id, const struct kv_list *raw)
{
	static const char *const option_cols[] = { "id", "name", NULL };
	static const char *const plan_cols[] = { "id", "name", "cluster", "namespaces", NULL };
	static const char *const backup_cols[] = { "id", "name", "time", "namespaces", "size", "objects", "state", NULL };
	cJSON *view = wizard_view(w, shown, with_errors);
	web_hooks_add_library(r, view);
	char next[80], base[64];

	if (shown == 1) {
		add_rows(r, view, "clusters", "SELECT id, name FROM clusters ORDER BY name", 0, NULL, option_cols,
			 wizard_value(w, 1, "target_cluster_id"));
	} else if (shown == 2) {
		add_rows(r, view, "plans", "SELECT id, name, cluster, namespaces FROM ("
			 "SELECT p.id, p.name, c.name AS cluster, array_to_string(p.namespaces, ', ') AS namespaces FROM backup_plans p "
			 "JOIN clusters c ON c.id = p.cluster_id UNION ALL "
			 "SELECT 0, '(backups without a plan)', string_agg(DISTINCT cluster_name, ', '), "
			 "string_agg(DISTINCT array_to_string(namespaces, ', '), '; ') FROM backups "
			 "WHERE plan_id IS NULL AND " RESTORABLE " HAVING count(*) > 0) u ORDER BY id = 0, name", 0, NULL, plan_cols,
			 wizard_value(w, 2, "backup_plan_id"));
	} else if (shown == 3) {
		const char *plan = wizard_value(w, 2, "backup_plan_id");
		const char *params[] = { plan ? plan : "0" };
		add_rows(r, view, "backups", "SELECT id, name, to_char(coalesce(completed_at, started_at) AT TIME ZONE 'UTC', "
			 "'YYYY-MM-DD HH24:MI'), array_to_string(namespaces, ', '), pg_size_pretty(bytes), resource_count, state "
			 "FROM backups WHERE plan_id IS NOT DISTINCT FROM nullif($1::bigint, 0) AND " RESTORABLE
			 " ORDER BY started_at DESC LIMIT 200",
			 1, params, backup_cols, wizard_value(w, 3, "backup_id"));
	}
	/* editing: the same steps under /restore-plans/:id/edit, saved by POST /restore-plans/:id */
	if (id)
		snprintf(base, sizeof base, "/restore-plans/%lld/edit", id);
	else
		snprintf(base, sizeof base, "/restore-plans/new");
	cJSON_AddStringToObject(view, "action_base", base);
	if (!checking)
		restore_objects_view(r, w, shown, view, base, raw);
	if (shown == RESTORE_STEPS && id)
		snprintf(next, sizeof next, "/restore-plans/%lld", id);
	else if (shown == RESTORE_STEPS)
		snprintf(next, sizeof next, "/restore-plans");
	else
		snprintf(next, sizeof next, "%s?step=%zu", base, shown + 1);
	if (id)
		cJSON_AddNumberToObject(view, "id", (double)id);
	cJSON_AddStringToObject(view, "next_action", next);
	if (checks)
		cJSON_AddItemToObject(view, "checks", checks);
	if (checking)
		web_request_view(view, checking, "Checking the plan: a runner reads the target cluster…", next);
	cJSON_AddStringToObject(view, "title", id ? "Edit restore plan" : "New restore plan");
	cJSON_AddBoolToObject(view, "nav_restore_plans", 1);
	if (with_errors)
		respond_form_errors(r, "restore_plan_wizard", view);
	else
		respond_page(r, 200, "restore_plan_wizard", view);
}

/* The wizard's fields of a post or query: the picker's boxes and lines merged into `objects`. */
static void restore_input(const struct kv_list *in, struct kv_list *out)
{
	for (size_t k = 0; k < in->count; k++)
		if (strcmp(in->items[k].key, "step") != 0 && strcmp(in->items[k].key, "preview") != 0 &&
		    !restore_objects_key(in->items[k].key))
			kv_add(out, in->items[k].key, in->items[k].value, in->items[k].value_len);
	restore_objects_input(in, out);
}

static void restore_wizard_step(struct request *r, const struct kv_list *raw, long long id)
{
	struct kv_list input = { 0 };
	struct wizard w;
	size_t want = requested_step(r), shown;

	restore_input(raw, &input);
	if (input.count == 0)
		kv_add(&input, "existing_policy", "skip", 4);
	shown = wizard_run(r, &w, restore_steps, RESTORE_STEPS, &input, want);
	restore_wizard_respond(r, &w, shown, shown != want, NULL, NULL, id, raw);
	wizard_free(&w);
	kv_list_free(&input);
}

void page_restore_plan_new(struct request *r)
{
	restore_wizard_step(r, &r->query, 0);
}

void page_restore_plan_wizard_post(struct request *r)
{
	restore_wizard_step(r, &r->form, 0);
}

/* ---- finishing ---- */

/* The target is reachable and has every StorageClass the mapping names, as a runner read it.
 * Returns the failures, or -1 while the runner reads (pending filled). */
static int restore_checks(struct request *r, const struct wizard *w, const cJSON *scmap, cJSON *checks,
			  struct runner_answer *pending)
{
	long long cid = atoll(wizard_value(w, 1, "target_cluster_id"));
	cJSON *reads = cJSON_CreateArray();
	const cJSON *item, *data;
	char err[600];
	int failed = 0, i = 1, rc;

	cJSON_AddItemToArray(reads, web_read_new("version", cid));
	cJSON_ArrayForEach(item, scmap) {
		cJSON *read = web_read_new("storage_class", cid);
		cJSON_AddStringToObject(read, "name", item->valuestring);
		cJSON_AddItemToArray(reads, read);
	}
	rc = web_cluster_reads(r, reads, WEB_READS_FRESH, pending, err, sizeof err);
	cJSON_Delete(reads);
	if (rc == 0)
		return -1;
	if (rc < 0 || !(data = web_read_result(pending, 0, err, sizeof err))) {
		wizard_check(checks, 0, "Target cluster: not reachable: %s", err);
		runner_answer_free(pending);
		return 1;
	}
	wizard_check(checks, 1, "Target cluster: reachable, Kubernetes %s",
		  cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "version")));
	cJSON_ArrayForEach(item, scmap) {
		data = web_read_result(pending, i++, err, sizeof err);
		if (data && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(data, "exists"))) {
			wizard_check(checks, 1, "StorageClass %s (for %s): present in the target", item->valuestring, item->string);
		} else if (data) {
			wizard_check(checks, 0, "StorageClass %s (for %s): does not exist in the target cluster",
				  item->valuestring, item->string);
			failed++;
		} else {
			wizard_check(checks, 0, "StorageClass %s: %s", item->valuestring, err);
			failed++;
		}
	}
	runner_answer_free(pending);
	return failed;
}

static char *json_text(cJSON *v)
{
	char *s = cJSON_PrintUnformatted(v);
	cJSON_Delete(v);
	return s;
}

static void hooks_step_check(struct request *r, const struct wizard *w, struct form_values *v)
{
	const char *rules = v->value[S4_MODIFIERS] ? v->value[S4_MODIFIERS] : "";
	struct resource_modifiers *m;
	char err[400];

	(void)w;
	web_hooks_check(r, v, step4_fields);
	if (!(m = resource_modifiers_parse(rules, strlen(rules), err, sizeof err)))
		form_fail(v, step4_fields, "resource_modifiers", "Resource modifiers: %s", err);
	resource_modifiers_free(m);
}

/* The restore plan id's live job, if any: a plan is not changed under a running restore. */
static long long plan_live_job(struct request *r, long long id)
{
	char sid[24], err[256];
	const char *params[] = { sid };
	PGresult *res;
	long long job = 0;

	snprintf(sid, sizeof sid, "%lld", id);
	res = db_exec(r->db, "SELECT id FROM jobs WHERE restore_plan_id = $1 AND state IN ('queued', 'running') "
		      "ORDER BY id LIMIT 1", 1, params, err, sizeof err);
	if (res && PQntuples(res) == 1)
		job = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	return job;
}

/* Create (id 0) or update plan id: every step validated again, the target checked by a runner. */
static void restore_plan_finish(struct request *r, long long id)
{
	struct kv_list input = { 0 };
	struct wizard w;
	char err[600], loc[64], msg[300];
	size_t shown;
	cJSON *checks, *scmap;

	restore_input(&r->form, &input);
	shown = wizard_run(r, &w, restore_steps, RESTORE_STEPS, &input, RESTORE_STEPS + 1);
	kv_list_free(&input);
	if (shown <= RESTORE_STEPS) {
		restore_wizard_respond(r, &w, shown, 1, NULL, NULL, id, NULL);
		goto out;
	}
	scmap = parse_map(wizard_value(&w, 1, "storage_class_map"), "StorageClass mapping", 1, err, sizeof err);
	checks = cJSON_CreateArray();
	struct runner_answer checking = { 0 };
	int failed = restore_checks(r, &w, scmap, checks, &checking);
	if (failed < 0) {
		cJSON_Delete(scmap);
		cJSON_Delete(checks);
		restore_wizard_respond(r, &w, RESTORE_STEPS, 0, NULL, &checking, id, NULL);
		runner_answer_free(&checking);
		goto out;
	}
	if (failed) {
		cJSON_Delete(scmap);
		restore_wizard_respond(r, &w, RESTORE_STEPS, 1, checks, NULL, id, NULL);
		goto out;
	}
	char sid[24];
	char *nsmap = json_text(parse_map(wizard_value(&w, 1, "namespace_map"), "", 0, err, sizeof err));
	char *scjson = json_text(scmap), *hooks = web_hooks_json(r, wizard_value(&w, 4, "library_hooks"), wizard_value(&w, 4, "hook_script"), NULL);
	struct form_values scratch = { 0 };
	char *errs[8] = { 0 };
	scratch.error = errs;
	char *selection = json_text(restore_selection(wizard_value(&w, 3, "include_types"), wizard_value(&w, 3, "exclude_types"),
						     wizard_value(&w, 3, "label_selector"), wizard_value(&w, 3, "objects"),
						     &scratch, err, sizeof err));
	for (int e = 0; e < 8; e++)
		free(errs[e]);
	const char *params[] = { wizard_value(&w, 1, "name"), wizard_value(&w, 2, "backup_plan_id"),
				 wizard_value(&w, 3, "backup_id"), wizard_value(&w, 1, "target_cluster_id"), nsmap, scjson,
				 wizard_value(&w, 1, "existing_policy"), hooks, wizard_value(&w, 1, "reattach_volumes"),
				 wizard_value(&w, 1, "restore_storage_classes"), wizard_value(&w, 1, "restore_completed_jobs"),
				 wizard_value(&w, 4, "resource_modifiers"), selection ? selection : "{}", sid };
	snprintf(sid, sizeof sid, "%lld", id);
	PGresult *res = db_exec(r->db, id ?
				"UPDATE restore_plans SET name = $1, backup_plan_id = nullif($2::bigint, 0), backup_id = $3, "
				"target_cluster_id = $4, namespace_map = $5::jsonb, storage_class_map = $6::jsonb, existing_policy = $7, "
				"hooks = $8::jsonb, reattach_volumes = $9::boolean, restore_storage_classes = $10::boolean, "
				"restore_completed_jobs = $11::boolean, resource_modifiers = coalesce($12, ''), selection = $13::jsonb "
				"WHERE id = $14 RETURNING id" :
				"INSERT INTO restore_plans (name, backup_plan_id, backup_id, target_cluster_id, "
				"namespace_map, storage_class_map, existing_policy, hooks, reattach_volumes, restore_storage_classes, "
				"restore_completed_jobs, resource_modifiers, selection) VALUES ($1, nullif($2::bigint, 0), $3, $4, "
				"$5::jsonb, $6::jsonb, $7, $8::jsonb, $9::boolean, $10::boolean, $11::boolean, coalesce($12, ''), "
				"$13::jsonb) RETURNING id", id ? 14 : 13, params, err, sizeof err);
	free(selection);
	free(nsmap);
	free(scjson);
	free(hooks);
	if (!res) {
		cJSON_Delete(checks);
		if (strcmp(db_last_sqlstate(), "23505") == 0) {
			wizard_error(&w, 1, "name", "Name: a restore plan of that name already exists");
			if (web_transaction_restart(r) == 0)	/* the form's lists are read again */
				restore_wizard_respond(r, &w, 1, 1, NULL, NULL, id, NULL);
		} else {
			respond_db_error(r, err);
		}
		goto out;
	}
	if (PQntuples(res) != 1) {	/* deleted meanwhile */
		PQclear(res);
		cJSON_Delete(checks);
		respond_error(r, 404, "There is no such restore plan.");
		goto out;
	}
	long long saved = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (notify_plan_emails_save(r, "restore_plan_id", saved, wizard_value(&w, 1, "notify_emails"), err, sizeof err) < 0) {
		cJSON_Delete(checks);
		respond_db_error(r, err);
		goto out;
	}
	cJSON *detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "backup_id", wizard_value(&w, 3, "backup_id"));
	cJSON_AddItemToObject(detail, "checks", checks);
	int rc = audit_record(r->db, id ? "restore_plan.update" : "restore_plan.create", wizard_value(&w, 1, "name"),
			      detail, err, sizeof err);
	cJSON_Delete(detail);
	if (rc < 0) {
		respond_db_error(r, err);
		goto out;
	}
	snprintf(msg, sizeof msg, "Restore plan %s saved: the target cluster is reachable and has the mapped storage classes.",
		 wizard_value(&w, 1, "name"));
	response_flash(r, msg);
	snprintf(loc, sizeof loc, "/restore-plans/%lld/jobs", saved);
	respond_redirect(r, loc);
out:
	wizard_free(&w);
}

void page_restore_plan_create(struct request *r)
{
	restore_plan_finish(r, 0);
}

/* The plan as the wizard's input: what the create form would have held. 0, or -1 when none. */
static int restore_plan_input(struct request *r, long long id, struct kv_list *input)
{
	char sid[24], err[256];
	const char *params[] = { sid };
	PGresult *res;

	snprintf(sid, sizeof sid, "%lld", id);
	res = db_exec(r->db, "SELECT name, target_cluster_id, "
		      "coalesce((SELECT string_agg(key || ':' || value, E'\n' ORDER BY key) FROM jsonb_each_text(namespace_map)), ''), "
		      "coalesce((SELECT string_agg(key || ':' || value, E'\n' ORDER BY key) FROM jsonb_each_text(storage_class_map)), ''), "
		      "existing_policy, CASE WHEN reattach_volumes THEN 'on' ELSE '' END, "
		      "CASE WHEN restore_storage_classes THEN 'on' ELSE '' END, CASE WHEN restore_completed_jobs THEN 'on' ELSE '' END, "
		      "coalesce(backup_plan_id, 0), coalesce(backup_id::text, ''), "
		      "coalesce((SELECT string_agg(t, ', ') FROM jsonb_array_elements_text(selection->'include_types') t), ''), "
		      "coalesce((SELECT string_agg(t, ', ') FROM jsonb_array_elements_text(selection->'exclude_types') t), ''), "
		      "coalesce(selection->>'label_selector', ''), "
		      "coalesce((SELECT string_agg(t, E'\n') FROM jsonb_array_elements_text(selection->'objects') t), ''), "
		      "coalesce((SELECT string_agg(k.name, ', ' ORDER BY e.n) FROM jsonb_array_elements(hooks) WITH ORDINALITY e(v, n) "
		      "  JOIN hooks k ON k.id = (e.v ->> 'hook_id')::bigint), ''), "
		      "coalesce((SELECT e ->> 'inline' FROM jsonb_array_elements(hooks) e WHERE e ? 'inline' LIMIT 1), ''), "
		      "resource_modifiers FROM restore_plans WHERE id = $1", 1, params, err, sizeof err);
	if (!res || PQntuples(res) != 1) {
		PQclear(res);
		return -1;
	}
	static const char *const keys[] = { "name", "target_cluster_id", "namespace_map", "storage_class_map",
					    "existing_policy", "reattach_volumes", "restore_storage_classes",
					    "restore_completed_jobs", "backup_plan_id", "backup_id", "include_types",
					    "exclude_types", "label_selector", "objects", "library_hooks", "hook_script",
					    "resource_modifiers" };
	for (int i = 0; i < (int)(sizeof keys / sizeof *keys); i++)
		if (*PQgetvalue(res, 0, i))
			kv_add(input, keys[i], PQgetvalue(res, 0, i), strlen(PQgetvalue(res, 0, i)));
	PQclear(res);
	char emails[1024];
	if (notify_plan_emails_load(r, "restore_plan_id", id, emails, sizeof emails) == 0 && *emails)
		kv_add(input, "notify_emails", emails, strlen(emails));
	return 0;
}

static int refuse_running(struct request *r, long long id)
{
	long long job = plan_live_job(r, id);
	char msg[300];

	if (!job)
		return 0;
	snprintf(msg, sizeof msg, "This restore plan has a job queued or running (job #%lld): it cannot be edited until "
		 "that job ends (or is cancelled).", job);
	respond_error(r, 409, msg);
	return 1;
}

static int restore_plan_exists(struct request *r, long long id)
{
	PGresult *res = web_row(r, "SELECT 1 FROM restore_plans WHERE id = $1", id, "restore plan");
	int found = res != NULL;

	PQclear(res);
	return found;
}

/* GET /restore-plans/:id/edit: the wizard with the plan's values. */
void page_restore_plan_edit(struct request *r)
{
	long long id = request_param_id(r, "id");
	struct kv_list input = { 0 };
	struct wizard w;

	if (!id || restore_plan_input(r, id, &input) < 0) {
		kv_list_free(&input);
		respond_error(r, 404, "There is no such restore plan.");
		return;
	}
	if (refuse_running(r, id)) {
		kv_list_free(&input);
		return;
	}
	wizard_run(r, &w, restore_steps, RESTORE_STEPS, &input, 1);
	restore_wizard_respond(r, &w, 1, 0, NULL, NULL, id, NULL);
	wizard_free(&w);
	kv_list_free(&input);
}

void page_restore_plan_edit_step(struct request *r)
{
	long long id = request_param_id(r, "id");

	if (!restore_plan_exists(r, id) || refuse_running(r, id))
		return;
	restore_wizard_step(r, &r->form, id);
}

/* POST /restore-plans/:id: the edited plan, validated as a new one, with its audit entry. */
void page_restore_plan_update(struct request *r)
{
	long long id = request_param_id(r, "id");

	if (!restore_plan_exists(r, id) || refuse_running(r, id))
		return;
	restore_plan_finish(r, id);
}

/* ---- the list, activating and deleting ---- */

void page_restore_plans(struct request *r)
{
	char err[512];
	PGresult *res = db_exec(r->db,
		"SELECT p.id, p.name, c.name AS target, coalesce(bp.name, '') AS backup_plan, "
		"coalesce(to_char(b.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), '') AS backup_time, p.existing_policy, "
		"coalesce(j.state, '') AS last_job_state, coalesce(j.id, 0) AS last_job_id, p.backup_id IS NOT NULL AS has_backup "
		"FROM restore_plans p JOIN clusters c ON c.id = p.target_cluster_id "
		"LEFT JOIN backup_plans bp ON bp.id = p.backup_plan_id LEFT JOIN backups b ON b.id = p.backup_id "
		"LEFT JOIN LATERAL (SELECT id, state FROM jobs WHERE restore_plan_id = p.id ORDER BY queued_at DESC, id DESC LIMIT 1) j ON true "
		"ORDER BY p.name", 0, NULL, err, sizeof err);
	cJSON *view;

	if (!res) {
		respond_db_error(r, err);
		return;
	}
	view = cJSON_CreateObject();
	cJSON_AddStringToObject(view, "title", "Restore plans");
	cJSON_AddBoolToObject(view, "nav_restore_plans", 1);
	cJSON_AddItemToObject(view, "plans", db_rows_json(res));
	PQclear(res);
	respond_page(r, 200, "restore_plans", view);
}

/* "Activate": without confirm=yes, the confirmation page; with it, a queued restore job. */
void page_restore_plan_activate(struct request *r)
{
	long long id = request_param_id(r, "id");
	const char *confirm = kv_get(&r->form, "confirm");
	PGresult *res = web_row(r, "SELECT p.name, c.name, coalesce(b.name, ''), coalesce(b." RESTORABLE ", false), "
				"coalesce(to_char(b.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), ''), "
				"coalesce(array_to_string(b.namespaces, ', '), ''), "
				"coalesce((SELECT string_agg(key || ' → ' || value, ', ') FROM jsonb_each_text(p.namespace_map)), ''), "
				"coalesce((SELECT string_agg(key || ' → ' || value, ', ') FROM jsonb_each_text(p.storage_class_map)), ''), "
				"CASE WHEN p.reattach_volumes THEN 'yes' ELSE '' END, p.backup_id, p.target_cluster_id "
				"FROM restore_plans p JOIN clusters c ON c.id = p.target_cluster_id "
				"LEFT JOIN backups b ON b.id = p.backup_id WHERE p.id = $1", id, "restore plan");

	if (!res)
		return;
	if (strcmp(PQgetvalue(res, 0, 3), "t") != 0) {
		PQclear(res);
		respond_error(r, 409, "The plan's backup is gone or not complete; create a restore plan from another backup.");
		return;
	}
	if (!confirm || strcmp(confirm, "yes") != 0) {
		static const char *const keys[] = { "name", "target", "backup", NULL, "backup_time", "namespaces", "namespace_map",
						    "storage_class_map", "reattach_volumes" };
		cJSON *view = cJSON_CreateObject();
		cJSON_AddStringToObject(view, "title", "Activate a restore");
		cJSON_AddBoolToObject(view, "nav_restore_plans", 1);
		cJSON_AddNumberToObject(view, "id", (double)id);
		for (int c = 0; c < 9; c++)
			if (keys[c])
				cJSON_AddStringToObject(view, keys[c], PQgetvalue(res, 0, c));
		PQclear(res);
		respond_page(r, 200, "restore_plan_confirm", view);
		return;
	}
	struct web_job q = {
		.spec = { .kind = "restore", .restore_plan_id = id, .backup_id = atoll(PQgetvalue(res, 0, 9)),
			  .cluster_id = atoll(PQgetvalue(res, 0, 10)) },
		.audit_action = "restore_plan.activate", .audit_name = PQgetvalue(res, 0, 0), .flash = "Restore queued.",
	};
	web_job_queue(r, &q);
	PQclear(res);
}

void page_restore_plan_delete(struct request *r)
{
	static const struct delete_action a = {
		"DELETE FROM restore_plans WHERE id = $1 RETURNING name", "restore_plan.delete", "There is no such restore plan.",
		"This restore plan is still in use.", "Restore plan %s deleted; its jobs were kept.", "/restore-plans",
	};

	respond_delete(r, &a);
}
