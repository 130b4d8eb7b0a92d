/* Backup plans (manual 4.1, 4.2): the list with a "Backup" button, and the five-step wizard that
 * creates or edits a plan: (1) name, cluster, repository, schedule and retention; (2) the
 * namespaces, listed live from the cluster; (3) the claims found there; (4) the copy method of
 * each claim; (5) pre-backup hooks. Finishing checks the plan against the cluster and the
 * repository and says exactly what is missing before anything is saved. */
#include "web.h"
#include "label_selector.h"
#include "audit.h"
#include "cron.h"
#include "db.h"
#include "form.h"
#include "json.h"
#include "names.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLAN_MAX_NAMESPACES 100
#define LIVE_LIST_LIMIT "500"

static const char *const schedule_choices[] = { "manual", "hourly", "daily", "weekly", "cron", NULL };
/* In cron's order: day of week 0 is Sunday. */
static const char *const weekday_choices[] = { "sunday", "monday", "tuesday", "wednesday", "thursday",
					       "friday", "saturday", NULL };

static const struct form_field step1_fields[] = {
	{ .name = "name", .label = "Name", .kind = FORM_NAME, .required = 1 },
	{ .name = "cluster_id", .label = "Cluster", .kind = FORM_INT, .required = 1, .min = 1, .max = LONG_MAX },
	{ .name = "repository_id", .label = "Repository", .kind = FORM_INT, .required = 1, .min = 1, .max = LONG_MAX },
	{ .name = "schedule_kind", .label = "Policy", .kind = FORM_CHOICE, .required = 1, .choices = schedule_choices },
	{ .name = "at_time", .label = "Time", .kind = FORM_TEXT, .max_len = 5 },
	{ .name = "weekday", .label = "Day", .kind = FORM_CHOICE, .choices = weekday_choices },
	{ .name = "cron", .label = "Cron expression", .kind = FORM_TEXT, .max_len = 128 },
	{ .name = "time_zone", .label = "Time zone", .kind = FORM_TEXT, .max_len = 64 },
	{ .name = "retention_days", .label = "Retention (days)", .kind = FORM_INT, .required = 1, .min = 1, .max = 3650 },
	{ .name = "notify_emails", .label = "Mail on failure", .kind = FORM_TEXT, .max_len = 1000 },
};
enum { S1_NAME, S1_CLUSTER, S1_REPO, S1_KIND, S1_TIME, S1_WEEKDAY, S1_CRON, S1_TZ, S1_RETENTION, S1_NOTIFY };

static const struct form_field step2_fields[] = {
	{ .name = "namespaces", .label = "Namespaces", .kind = FORM_TEXTAREA, .max_len = 6400 },
	{ .name = "label_selector", .label = "Label selector", .kind = FORM_TEXT, .max_len = 1024 },
	{ .name = "include_resources", .label = "Resource types to include", .kind = FORM_TEXT, .max_len = 4096 },
	{ .name = "exclude_resources", .label = "Resource types to exclude", .kind = FORM_TEXT, .max_len = 4096 },
	{ .name = "whole_cluster", .label = "Whole cluster", .kind = FORM_BOOL },
};
enum { S2_NAMESPACES, S2_SELECTOR, S2_INCLUDE, S2_EXCLUDE, S2_WHOLE };
#define PLAN_MAX_RESOURCE_PATTERNS 50

static const struct form_field step4_fields[] = {
	{ .name = "volume_methods", .label = "Copy methods", .kind = FORM_TEXTAREA, .max_len = 65536 },
};

static const struct form_field step5_fields[] = {
	{ .name = "library_hooks", .label = "Library hooks", .kind = FORM_TEXT, .max_len = 1024 },
	{ .name = "hook_script", .label = "Pre-backup hook (Lua)", .kind = FORM_TEXTAREA, .max_len = 65536 },
};

static void step1_check(struct request *r, const struct wizard *w, struct form_values *v);
static void hooks_step_check(struct request *r, const struct wizard *w, struct form_values *v);
static void step2_check(struct request *r, const struct wizard *w, struct form_values *v);
static void step4_check(struct request *r, const struct wizard *w, struct form_values *v);

static const struct wizard_step plan_steps[] = {
	{ "Plan", step1_fields, sizeof step1_fields / sizeof step1_fields[0], step1_check },
	{ "Namespaces", step2_fields, sizeof step2_fields / sizeof step2_fields[0], step2_check },
	{ "Volumes", NULL, 0, NULL },
	{ "Copy method", step4_fields, 1, step4_check },
	{ "Hooks", step5_fields, 2, hooks_step_check },
};
#define PLAN_STEPS (sizeof plan_steps / sizeof plan_steps[0])

static void replace_value(struct form_values *v, int i, char *value)
{
	free(v->value[i]);
	v->value[i] = value;
}

/* "HH:MM" (or "H:MM") into hour and minute. */
static int parse_time(const char *s, int *hour, int *minute)
{
	int h, m, n = 0;

	if (!s || sscanf(s, "%2d:%2d%n", &h, &m, &n) != 2 || s[n] != '\0' || strchr(s, ' ') || strchr(s, '+') || strchr(s, '-'))
		return -1;
	if (h < 0 || h > 23 || m < 0 || m > 59)
		return -1;
	*hour = h;
	*minute = m;
	return 0;
}

static int weekday_index(const char *name)
{
	for (int i = 0; name && weekday_choices[i]; i++)
		if (strcmp(weekday_choices[i], name) == 0)
			return i;
	return -1;
}

static void step1_check(struct request *r, const struct wizard *w, struct form_values *v)
{
	const char *kind = v->value[S1_KIND];
	int h, m;
	char err[300];

	(void)w;
	if (!db_exists(r->db, "SELECT 1 FROM clusters WHERE id = $1", 1, (const char *const[]){ v->value[S1_CLUSTER] }))
		form_fail(v, step1_fields, "cluster_id", "Cluster: choose one of your clusters");
	if (!db_exists(r->db, "SELECT 1 FROM repositories WHERE id = $1", 1, (const char *const[]){ v->value[S1_REPO] }))
		form_fail(v, step1_fields, "repository_id", "Repository: choose one of your repositories");
	if ((strcmp(kind, "daily") == 0 || strcmp(kind, "weekly") == 0) && parse_time(v->value[S1_TIME], &h, &m) < 0)
		form_fail(v, step1_fields, "at_time", "Time: a time of day as HH:MM, from 00:00 to 23:59");
	if (strcmp(kind, "weekly") == 0 && !v->value[S1_WEEKDAY])
		form_fail(v, step1_fields, "weekday", "Day: choose the day of the week");
	if (strcmp(kind, "cron") == 0) {
		struct cron_spec spec;
		if (!v->value[S1_CRON])
			form_fail(v, step1_fields, "cron", "Cron expression: required for a cron schedule (five fields: minute hour day month weekday)");
		else if (cron_parse(v->value[S1_CRON], &spec, err, sizeof err) < 0)
			form_fail(v, step1_fields, "cron", "Cron expression: %s", err);
	}
	if (!v->value[S1_TZ])
		v->value[S1_TZ] = xstrdup("UTC");
	else if (!cron_valid_time_zone(v->value[S1_TZ]))
		form_fail(v, step1_fields, "time_zone", "Time zone: not a known IANA time zone (Europe/Paris, UTC)");
	if (notify_emails_check(v->value[S1_NOTIFY], err, sizeof err) < 0)
		form_fail(v, step1_fields, "notify_emails", "Mail on failure: %s", err);
}

static int in_lines(const char *lines, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = lines; p && *p; p += strcspn(p, "\n"), p += *p == '\n')
		if (strncmp(p, word, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return 1;
	return 0;
}

/* Namespaces separated by newlines, commas or blanks become one per line, without repeats. */
/* "deployments.apps, *.example.com, secrets": resource[.group] patterns with shell wildcards, kept
 * one a line. */
static void resource_patterns_check(struct form_values *v, int field, const char *label)
{
	struct strbuf out = STRBUF_INIT;
	const char *p = v->value[field] ? v->value[field] : "";
	int count = 0;

	while (*p) {
		size_t len;
		p += strspn(p, ", \t\r\n");
		len = strcspn(p, ", \t\r\n");
		if (!len)
			break;
		if (len > 253 || strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789.-*?") < len)
			form_fail(v, step2_fields, step2_fields[field].name, "%s: \"%.*s\" is not a resource[.group] pattern (deployments.apps, *.example.com, "
				   "secrets)", label, (int)(len > 64 ? 64 : len), p);
		else if (++count <= PLAN_MAX_RESOURCE_PATTERNS)
			strbuf_addf(&out, "%s%.*s", out.len ? "\n" : "", (int)len, p);
		p += len;
	}
	if (count > PLAN_MAX_RESOURCE_PATTERNS)
		form_fail(v, step2_fields, step2_fields[field].name, "%s: at most %d patterns", label, PLAN_MAX_RESOURCE_PATTERNS);
	replace_value(v, field, strbuf_take(&out) ?: xstrdup(""));
}

static void step2_check(struct request *r, const struct wizard *w, struct form_values *v)
{
	struct strbuf out = STRBUF_INIT;
	const char *p = v->value[S2_NAMESPACES] ? v->value[S2_NAMESPACES] : "", *sel = v->value[S2_SELECTOR];
	int count = 0;

	(void)r;
	(void)w;
	while (*p) {
		size_t len;
		p += strspn(p, ", \t\r\n");
		len = strcspn(p, ", \t\r\n");
		if (!len)
			break;
		char *ns = xstrndup(p, len);
		p += len;
		if (!dns_name_valid(ns, len, 63, 0)) {
			form_fail(v, step2_fields, "namespaces", "Namespaces: \"%.63s\" is not a namespace name", ns);
			free(ns);
			continue;
		}
		if (!in_lines(out.buf, ns)) {
			strbuf_addf(&out, "%s%s", count ? "\n" : "", ns);
			count++;
		}
		free(ns);
	}
	if (count > PLAN_MAX_NAMESPACES)
		form_fail(v, step2_fields, "namespaces", "Namespaces: at most %d in one plan", PLAN_MAX_NAMESPACES);
	/* a whole-cluster plan backs up every namespace; those chosen are the system ones to add */
	if (count == 0 && !(v->value[S2_WHOLE] && strcmp(v->value[S2_WHOLE], "true") == 0))
		form_fail(v, step2_fields, "namespaces", "Namespaces: choose at least one, or the whole cluster");
	replace_value(v, S2_NAMESPACES, strbuf_take(&out));
	/* the API server's own grammar, so that a saved plan's selector is never refused at backup time;
	 * the plan keeps it without blanks, as it is sent */
	if (sel && *sel) {
		char err[512], *canonical = NULL;
		if (label_selector_check(sel, &canonical, err, sizeof err) < 0)
			form_fail(v, step2_fields, "label_selector", "%s", err);
		else
			replace_value(v, S2_SELECTOR, canonical);
	}
	resource_patterns_check(v, S2_INCLUDE, "Resource types to include");
	resource_patterns_check(v, S2_EXCLUDE, "Resource types to exclude");
}

/* Lines "namespace/claim=filesystem|snapshot". */
static void step4_check(struct request *r, const struct wizard *w, struct form_values *v)
{
	const char *p = v->value[0];

	(void)r;
	(void)w;
	while (p && *p) {
		size_t len = strcspn(p, "\n");
		char *line = xstrndup(p, len);
		char *slash = strchr(line, '/'), *eq = strchr(line, '=');
		p += len + (p[len] == '\n');
		if (!*line) {
			free(line);
			continue;
		}
		if (!slash || !eq || eq < slash || !dns_name_valid(line, (size_t)(slash - line), 63, 0) ||
		    !dns_name_valid(slash + 1, (size_t)(eq - slash - 1), 253, 1) ||
		    (strcmp(eq + 1, "filesystem") != 0 && strcmp(eq + 1, "snapshot") != 0 && strcmp(eq + 1, "snapshot+move") != 0))
			form_fail(v, step4_fields, "volume_methods", "Copy methods: \"%.100s\" is not namespace/claim=filesystem, snapshot or snapshot+move",
				   line);
		free(line);
	}
}

/* The effective cron expression of a validated step 1 ("" when on demand). */
static char *schedule_cron(const struct wizard *w)
{
	const char *kind = wizard_value(w, 1, "schedule_kind");
	char out[160] = "", err[160];

	if (strcmp(kind, "cron") == 0)
		return xstrdup(wizard_value(w, 1, "cron"));
	if (strcmp(kind, "manual") != 0 &&
	    cron_preset(kind, strcmp(kind, "hourly") == 0 ? "0" : wizard_value(w, 1, "at_time"),
			weekday_index(wizard_value(w, 1, "weekday")), out, sizeof out, err, sizeof err) < 0)
		out[0] = '\0';	/* step 1 validated the time and the day */
	return xstrdup(out);
}

/* Words for a stored schedule: "Daily at 02:30 (Europe/Paris)". */
static void describe_schedule(const char *kind, const char *cron, const char *tz, char *out, size_t outlen)
{
	int m = 0, h = 0, d = 0;

	if (strcmp(kind, "manual") == 0)
		snprintf(out, outlen, "On demand");
	else if (strcmp(kind, "hourly") == 0)
		snprintf(out, outlen, "Hourly (%s)", tz);
	else if (strcmp(kind, "daily") == 0 && sscanf(cron, "%d %d", &m, &h) == 2)
		snprintf(out, outlen, "Daily at %02d:%02d (%s)", h, m, tz);
	else if (strcmp(kind, "weekly") == 0 && sscanf(cron, "%d %d * * %d", &m, &h, &d) == 3 && d >= 0 && d < 7)
		snprintf(out, outlen, "Weekly on %c%s at %02d:%02d (%s)", weekday_choices[d][0] - 32, weekday_choices[d] + 1, h, m, tz);
	else
		snprintf(out, outlen, "Cron %s (%s)", cron, tz);
}

/* Joins repeated "namespaces" fields and the "method:<ns>/<claim>" selects of step 4 into the
 * one field each step declares; "q" (the namespace filter) is not part of the plan. */
static void plan_input(const struct kv_list *in, struct kv_list *out)
{
	struct strbuf ns = STRBUF_INIT, methods = STRBUF_INIT;
	int have_ns = 0, have_methods = 0;

	for (size_t k = 0; k < in->count; k++) {
		const struct kv *kv = &in->items[k];
		if (strcmp(kv->key, "q") == 0 || strcmp(kv->key, "step") == 0)
			continue;
		if (strcmp(kv->key, "namespaces") == 0) {
			strbuf_addf(&ns, "%s%s", have_ns ? "\n" : "", kv->value);
			have_ns = 1;
		} else if (strncmp(kv->key, "method:", 7) == 0) {
			strbuf_addf(&methods, "%s%s=%s", have_methods ? "\n" : "", kv->key + 7, kv->value);
			have_methods = 1;
		}
	}
	for (size_t k = 0; k < in->count; k++) {
		const struct kv *kv = &in->items[k];
		if (strcmp(kv->key, "q") == 0 || strcmp(kv->key, "step") == 0 || strcmp(kv->key, "namespaces") == 0 ||
		    strncmp(kv->key, "method:", 7) == 0 || (have_methods && strcmp(kv->key, "volume_methods") == 0))
			continue;
		kv_add(out, kv->key, kv->value, kv->value_len);
	}
	if (have_ns)
		kv_add(out, "namespaces", ns.buf, ns.len);
	if (have_methods)
		kv_add(out, "volume_methods", methods.buf, methods.len);
	strbuf_release(&ns);
	strbuf_release(&methods);
}

/* The step asked for in ?step= (1 when absent or not a step). */
static size_t requested_step(const struct request *r)
{
	const char *s = kv_get(&r->query, "step");

	if (!s || strlen(s) != 1 || s[0] < '1' || s[0] > '0' + (int)PLAN_STEPS)
		return 1;
	return (size_t)(s[0] - '0');
}

/* ---- live reads of the cluster ---- */

static int cluster_id_of(const struct wizard *w)
{
	const char *id = wizard_value(w, 1, "cluster_id");
	return id ? atoi(id) : 0;
}

/* The cluster's namespaces as [{name, checked}], filtered by q; selected ones hidden by the
 * filter go to kept. 1 when shown, 0 while a runner reads them (pending), -1 with err. */
static int live_namespaces(struct request *r, const struct wizard *w, const char *q, cJSON *shown, cJSON *kept,
			   struct runner_answer *pending, char *err, size_t errlen)
{
	const char *selected = wizard_value(w, 2, "namespaces");
	cJSON *reads = cJSON_CreateArray(), *item;
	const cJSON *list;
	int rc;

	cJSON_AddItemToArray(reads, web_read_new("namespaces", cluster_id_of(w)));
	rc = web_cluster_reads(r, reads, WEB_READS_FRESH, pending, err, errlen);
	cJSON_Delete(reads);
	if (!selected)
		selected = w->v[1].input[S2_NAMESPACES];
	if (rc <= 0) {
		/* the choice so far travels on while the runner reads */
		for (const char *p = selected; p && *p; p += strcspn(p, "\n"), p += *p == '\n') {
			char *ns = xstrndup(p, strcspn(p, "\n"));
			cJSON_AddItemToArray(kept, cJSON_CreateString(ns));
			free(ns);
		}
		return rc;
	}
	list = web_read_result(pending, 0, err, errlen);
	if (!list) {
		runner_answer_free(pending);
		return -1;
	}
	cJSON_ArrayForEach(item, list) {
		const char *name = cJSON_GetStringValue(item);
		int checked;
		if (!name)
			continue;
		checked = in_lines(selected, name);
		if (q && *q && !strstr(name, q)) {
			if (checked)
				cJSON_AddItemToArray(kept, cJSON_CreateString(name));
			continue;
		}
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", name);
		cJSON_AddBoolToObject(o, "checked", checked);
		cJSON_AddItemToArray(shown, o);
	}
	runner_answer_free(pending);
	return 1;
}

/* The method chosen for ns/claim in the lines of step 4, "filesystem" by default. */
static const char *method_of(const char *lines, const char *ns, const char *claim)
{
	static const char *const methods[] = { "snapshot", "snapshot+move" };
	struct strbuf key = STRBUF_INIT;
	const char *method = "filesystem";

	for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
		strbuf_reset(&key);
		strbuf_addf(&key, "%s/%s=%s", ns, claim, methods[i]);
		if (in_lines(lines, key.buf))
			method = methods[i];
	}
	strbuf_release(&key);
	return method;
}

/* The claims of the chosen namespaces (matching the label selector) as
 * [{namespace, name, storage_class, capacity, phase, volume, snapshot}]. A namespace that does
 * not exist is an error on step 2. 1 when listed, 0 while a runner reads (pending), -1 with err. */
static int live_claims(struct request *r, struct wizard *w, cJSON *out, struct runner_answer *pending,
		       char *err, size_t errlen)
{
	const char *nss = wizard_value(w, 2, "namespaces"), *sel = wizard_value(w, 2, "label_selector");
	const char *methods = wizard_value(w, 4, "volume_methods");
	cJSON *reads = cJSON_CreateArray(), *names = cJSON_CreateArray();
	int rc, i = 0;

	for (const char *p = nss; p && *p; p += strcspn(p, "\n"), p += *p == '\n') {
		char *ns = xstrndup(p, strcspn(p, "\n"));
		cJSON *read = web_read_new("claims", cluster_id_of(w));
		cJSON_AddStringToObject(read, "namespace", ns);
		cJSON_AddStringToObject(read, "label_selector", sel ? sel : "");
		cJSON_AddItemToArray(reads, read);
		cJSON_AddItemToArray(names, cJSON_CreateString(ns));
		free(ns);
	}
	rc = web_cluster_reads(r, reads, WEB_READS_FRESH, pending, err, errlen);
	cJSON_Delete(reads);
	if (rc <= 0) {
		cJSON_Delete(names);
		return rc;
	}
	const cJSON *nsname;
	cJSON_ArrayForEach(nsname, names) {
		const char *ns = nsname->valuestring;
		const cJSON *data = web_read_result(pending, i++, err, errlen), *item;
		if (!data) {
			rc = -1;
			break;
		}
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(data, "exists"))) {
			snprintf(err, errlen, "Namespaces: %s does not exist in the cluster", ns);
			wizard_error(w, 2, "namespaces", err);
			rc = -1;
			break;
		}
		cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(data, "claims")) {
			cJSON *o = cJSON_CreateObject();
			const char *name = json_str(item, "name");
			cJSON_AddStringToObject(o, "namespace", ns);
			cJSON_AddStringToObject(o, "name", name);
			cJSON_AddStringToObject(o, "storage_class", json_str(item, "storage_class"));
			cJSON_AddStringToObject(o, "capacity", json_str(item, "capacity"));
			cJSON_AddStringToObject(o, "phase", json_str(item, "phase"));
			cJSON_AddStringToObject(o, "volume", json_str(item, "volume"));
			cJSON_AddBoolToObject(o, "snapshot", strcmp(method_of(methods, ns, name), "snapshot") == 0);
			cJSON_AddBoolToObject(o, "snapshot_move", strcmp(method_of(methods, ns, name), "snapshot+move") == 0);
			cJSON_AddItemToArray(out, o);
		}
	}
	cJSON_Delete(names);
	runner_answer_free(pending);
	return rc;
}

/* ---- rendering ---- */

/* The choices of a select; the only one there is comes chosen, as there is nothing to choose. */
static void add_options(struct request *r, cJSON *view, const char *key, const char *sql, const char *selected)
{
	char err[256];
	PGresult *res = db_exec(r->db, sql, 0, NULL, err, sizeof err);
	cJSON *list = cJSON_AddArrayToObject(view, key);
	int only = res && PQntuples(res) == 1 && (!selected || !*selected);

	for (int i = 0; res && i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", PQgetvalue(res, i, 0));
		cJSON_AddStringToObject(o, "name", PQgetvalue(res, i, 1));
		cJSON_AddBoolToObject(o, "selected", only || (selected && strcmp(selected, PQgetvalue(res, i, 0)) == 0));
		cJSON_AddItemToArray(list, o);
	}
	PQclear(res);
}

static void set_schedule_flags(cJSON *view, const struct wizard *w)
{
	const char *kind = w->v[0].value[S1_KIND] ? w->v[0].value[S1_KIND] : w->v[0].input[S1_KIND];
	char key[32];

	snprintf(key, sizeof key, "kind_%s", kind && *kind ? kind : "manual");
	if (strlen(key) < 16)
		cJSON_AddBoolToObject(view, key, 1);
}

/* Shows step `shown` of the wizard with what it needs from the database and the cluster. */
static void plan_wizard_respond(struct request *r, struct wizard *w, size_t shown, int with_errors, long long id,
				cJSON *checks, struct runner_answer *checking)
{
	char base[64], err[600];
	const char *q = kv_get(&r->query, "q");
	cJSON *view, *claims = NULL;
	struct runner_answer pending = { 0 };
	int read = 1;

	if (!q)
		q = kv_get(&r->form, "q");
	if (shown == 3 || shown == 4) {
		claims = cJSON_CreateArray();
		read = live_claims(r, w, claims, &pending, err, sizeof err);
		if (read < 0) {
			if (w->v[1].errors) {
				shown = 2;
				with_errors = 1;
			}
		} else {
			err[0] = '\0';
		}
	}
	view = wizard_view(w, shown, with_errors);
	web_hooks_add_library(r, view);
	if (claims) {
		cJSON_AddItemToObject(view, "claims", claims);
		if (err[0] && shown != 2 && read < 0)
			cJSON_AddStringToObject(view, "live_error", err);
	}
	if (shown == 1) {
		add_options(r, view, "clusters", "SELECT id, name FROM clusters ORDER BY name", wizard_value(w, 1, "cluster_id"));
		add_options(r, view, "repositories", "SELECT id, name FROM repositories ORDER BY name",
			    wizard_value(w, 1, "repository_id"));
		set_schedule_flags(view, w);
	} else if (shown == 2) {
		cJSON *shown_ns = cJSON_AddArrayToObject(view, "namespace_list");
		cJSON *kept = cJSON_AddArrayToObject(view, "namespaces_kept");
		read = live_namespaces(r, w, q, shown_ns, kept, &pending, err, sizeof err);
		if (read < 0)
			cJSON_AddStringToObject(view, "live_error", err);
		if (q)
			cJSON_AddStringToObject(view, "q", q);
	}
	if (id)
		snprintf(base, sizeof base, "/backup-plans/%lld/edit", id);
	else
		snprintf(base, sizeof base, "/backup-plans/new");
	cJSON_AddStringToObject(view, "action_base", base);
	if (shown == PLAN_STEPS)
		snprintf(base, sizeof base, id ? "/backup-plans/%lld" : "/backup-plans", id);
	else
		snprintf(base + strlen(base), sizeof base - strlen(base), "?step=%zu", shown + 1);
	cJSON_AddStringToObject(view, "next_action", base);
	if (id)
		cJSON_AddNumberToObject(view, "id", (double)id);
	if (checks)
		cJSON_AddItemToObject(view, "checks", checks);
	if (read == 0) {
		/* the page asks again with the same input once the runner has read the cluster */
		char again[80];
		snprintf(again, sizeof again, "%s?step=%zu", cJSON_GetStringValue(cJSON_GetObjectItem(view, "action_base")), shown);
		if (shown == 4 && wizard_value(w, 4, "volume_methods")) {
			cJSON *h = cJSON_CreateObject();
			cJSON_AddStringToObject(h, "name", "volume_methods");
			cJSON_AddStringToObject(h, "value", wizard_value(w, 4, "volume_methods"));
			cJSON_AddItemToArray(cJSON_GetObjectItem(view, "hidden"), h);
		}
		web_request_view(view, &pending, "Reading the cluster: a runner lists what it holds…", again);
		runner_answer_free(&pending);
	} else if (checking) {
		web_request_view(view, checking, "Checking the plan: a runner reads the cluster…",
				 cJSON_GetStringValue(cJSON_GetObjectItem(view, "next_action")));
	}
	cJSON_AddStringToObject(view, "title", id ? "Edit backup plan" : "New backup plan");
	cJSON_AddBoolToObject(view, "nav_backup_plans", 1);
	if (with_errors)
		respond_form_errors(r, "backup_plan_wizard", view);
	else
		respond_page(r, 200, "backup_plan_wizard", view);
}

static void plan_wizard_step(struct request *r, const struct kv_list *raw, long long id)
{
	struct kv_list input = { 0 };
	struct wizard w;
	size_t want = requested_step(r), shown;

	plan_input(raw, &input);
	shown = wizard_run(r, &w, plan_steps, PLAN_STEPS, &input, want);
	plan_wizard_respond(r, &w, shown, shown != want, id, NULL, NULL);
	wizard_free(&w);
	kv_list_free(&input);
}

void page_backup_plan_new(struct request *r)
{
	if (kv_count(&r->query, "step") == 0 || r->query.count == 1) {
		/* a fresh wizard: defaults, no errors */
		struct kv_list input = { 0 };
		struct wizard w;
		kv_add(&input, "schedule_kind", "manual", 6);
		kv_add(&input, "retention_days", "30", 2);
		kv_add(&input, "time_zone", "UTC", 3);
		wizard_run(r, &w, plan_steps, PLAN_STEPS, &input, 1);
		plan_wizard_respond(r, &w, 1, 0, 0, NULL, NULL);
		wizard_free(&w);
		kv_list_free(&input);
		return;
	}
	plan_wizard_step(r, &r->query, 0);
}

void page_backup_plan_wizard_post(struct request *r)
{
	plan_wizard_step(r, &r->form, 0);
}

/* ---- finishing: checks, then save ---- */

/* The VolumeSnapshotClass a snapshot plan needs, as the runner found it (read snapshot_classes):
 * labelled velero.io/csi-volumesnapshot-class=true, served at snapshot.storage.k8s.io v1 (or
 * v1beta1), deletionPolicy Retain. */
static void check_snapshot_class(const cJSON *data, const char *why, cJSON *checks)
{
	const char *served = json_str(data, "served"), *retained = json_str(data, "retained");
	const char *other = json_str(data, "other");

	if (!data)
		wizard_check(checks, 0, "Volume snapshots: cannot list VolumeSnapshotClasses: %s", why);
	else if (!*served)
		wizard_check(checks, 0, "Volume snapshots: the cluster does not serve the CSI snapshot API (snapshot.storage.k8s.io); "
			  "install the snapshot CRDs and controller, or choose filesystem copy");
	else if (*retained)
		wizard_check(checks, 1, "Volume snapshots: VolumeSnapshotClass %s (%s, deletionPolicy Retain)", retained, served);
	else if (*other)
		wizard_check(checks, 0, "Volume snapshots: VolumeSnapshotClass %s has deletionPolicy %s; set it to Retain",
			  other, json_str(data, "other_policy"));
	else
		wizard_check(checks, 0, "Volume snapshots: no VolumeSnapshotClass is labelled "
			  "velero.io/csi-volumesnapshot-class=true; label the class of your CSI driver");
}

/* Checks the plan against the cluster (read by a runner) and the repository. Returns the number
 * of failures, or -1 while the runner reads (pending filled). */
static int plan_checks(struct request *r, const struct wizard *w, cJSON *checks, struct runner_answer *pending)
{
	char err[600];
	const char *params[] = { wizard_value(w, 1, "repository_id") };
	const char *methods = wizard_value(w, 4, "volume_methods");
	int snapshots = methods && strstr(methods, "=snapshot");
	cJSON *reads = cJSON_CreateArray(), *item;
	const cJSON *data;
	PGresult *res;
	int failed = 0, i = 1, rc;

	cJSON_AddItemToArray(reads, web_read_new("version", cluster_id_of(w)));
	for (const char *p = wizard_value(w, 2, "namespaces"); p && *p; p += strcspn(p, "\n"), p += *p == '\n') {
		char *ns = xstrndup(p, strcspn(p, "\n"));
		cJSON *read = web_read_new("namespace", cluster_id_of(w));
		cJSON_AddStringToObject(read, "name", ns);
		cJSON_AddItemToArray(reads, read);
		free(ns);
	}
	if (snapshots)
		cJSON_AddItemToArray(reads, web_read_new("snapshot_classes", cluster_id_of(w)));
	rc = web_cluster_reads(r, reads, WEB_READS_FRESH, pending, err, sizeof err);
	cJSON_Delete(reads);
	if (rc == 0)
		return -1;
	if (rc < 0) {
		wizard_check(checks, 0, "Cluster: cannot be asked: %s", err);
		return 1;
	}
	int reachable = (data = web_read_result(pending, 0, err, sizeof err)) != NULL;
	if (!reachable)
		wizard_check(checks, 0, "Cluster: not reachable: %s", err);
	else
		wizard_check(checks, 1, "Cluster: reachable, Kubernetes %s", json_str(data, "version"));
	res = db_exec(r->db, "SELECT name, status, status_message FROM repositories WHERE id = $1", 1, params, err, sizeof err);
	if (res && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 1), "connected") == 0)
		wizard_check(checks, 1, "Repository %s: connected", PQgetvalue(res, 0, 0));
	else if (res && PQntuples(res) == 1)
		wizard_check(checks, 0, "Repository %s: its last test failed (%s); test it again on its page",
			  PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 2));
	else
		wizard_check(checks, 0, "Repository: not found");
	PQclear(res);
	for (const char *p = wizard_value(w, 2, "namespaces"); reachable && p && *p; p += strcspn(p, "\n"), p += *p == '\n') {
		char *ns = xstrndup(p, strcspn(p, "\n"));
		data = web_read_result(pending, i++, err, sizeof err);
		if (data && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(data, "exists")))
			wizard_check(checks, 1, "Namespace %s: present", ns);
		else if (data)
			wizard_check(checks, 0, "Namespace %s: does not exist in the cluster", ns);
		else
			wizard_check(checks, 0, "Namespace %s: %s", ns, err);
		free(ns);
	}
	if (reachable && snapshots) {
		data = web_read_result(pending, i, err, sizeof err);
		check_snapshot_class(data, err, checks);
	}
	runner_answer_free(pending);
	cJSON_ArrayForEach(item, checks)
		failed += !cJSON_IsTrue(cJSON_GetObjectItem(item, "ok"));
	return failed;
}

static char *volume_methods_json(const char *lines)
{
	cJSON *o = cJSON_CreateObject();
	char *s;

	for (const char *p = lines; p && *p; p += strcspn(p, "\n"), p += *p == '\n') {
		char *line = xstrndup(p, strcspn(p, "\n"));
		char *eq = strchr(line, '=');
		if (eq) {
			*eq = '\0';
			cJSON_DeleteItemFromObject(o, line);
			cJSON_AddStringToObject(o, line, eq + 1);
		}
		free(line);
	}
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static void hooks_step_check(struct request *r, const struct wizard *w, struct form_values *v)
{
	(void)w;
	web_hooks_check(r, v, step5_fields);
}

static long long plan_save(struct request *r, const struct wizard *w, long long id, char *err, size_t errlen)
{
	char sid[24];
	char *cron = schedule_cron(w), *methods = volume_methods_json(wizard_value(w, 4, "volume_methods"));
	char *hooks = web_hooks_json(r, wizard_value(w, 5, "library_hooks"), wizard_value(w, 5, "hook_script"), NULL);
	const char *sel = wizard_value(w, 2, "label_selector");
	const char *include = wizard_value(w, 2, "include_resources"), *exclude = wizard_value(w, 2, "exclude_resources");
	const char *whole = wizard_value(w, 2, "whole_cluster");
	long long saved = 0;
	PGresult *res;

	snprintf(sid, sizeof sid, "%lld", id);
	const char *params[] = { wizard_value(w, 1, "name"), wizard_value(w, 1, "cluster_id"),
				 wizard_value(w, 1, "repository_id"), wizard_value(w, 2, "namespaces"), sel ? sel : "",
				 wizard_value(w, 1, "schedule_kind"), cron, wizard_value(w, 1, "time_zone"),
				 wizard_value(w, 1, "retention_days"), methods, hooks, include ? include : "",
				 exclude ? exclude : "", whole && strcmp(whole, "true") == 0 ? "true" : "false", sid };
	res = db_exec(r->db, id ?
		"UPDATE backup_plans SET name = $1, cluster_id = $2, repository_id = $3, namespaces = coalesce(string_to_array(nullif($4, ''), E'\\n'), '{}'), "
		"label_selector = $5, schedule_kind = $6, schedule_cron = $7, time_zone = $8, retention_days = $9, "
		"volume_methods = $10::jsonb, hooks = $11::jsonb, include_resources = coalesce(string_to_array(nullif($12, ''), E'\\n'), '{}'), "
		"exclude_resources = coalesce(string_to_array(nullif($13, ''), E'\\n'), '{}'), whole_cluster = $14, "
		"next_run_at = NULL, updated_at = now() WHERE id = $15 RETURNING id" :
		"INSERT INTO backup_plans (name, cluster_id, repository_id, namespaces, label_selector, schedule_kind, "
		"schedule_cron, time_zone, retention_days, volume_methods, hooks, include_resources, exclude_resources, whole_cluster) "
		"VALUES ($1, $2, $3, coalesce(string_to_array(nullif($4, ''), E'\\n'), '{}'), $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, "
		"coalesce(string_to_array(nullif($12, ''), E'\\n'), '{}'), coalesce(string_to_array(nullif($13, ''), E'\\n'), '{}'), $14) "
		"RETURNING id",
		id ? 15 : 14, params, err, errlen);
	if (res && PQntuples(res) == 1)
		saved = atoll(PQgetvalue(res, 0, 0));
	else if (res)
		snprintf(err, errlen, "There is no such backup plan.");
	PQclear(res);
	if (saved && notify_plan_emails_save(r, "backup_plan_id", saved, wizard_value(w, 1, "notify_emails"), err, errlen) < 0)
		saved = 0;
	free(cron);
	free(methods);
	free(hooks);
	return saved;
}

static void plan_finish(struct request *r, long long id)
{
	struct kv_list input = { 0 };
	struct wizard w;
	char err[600], loc[64], msg[300];
	size_t shown;
	cJSON *checks;

	plan_input(&r->form, &input);
	shown = wizard_run(r, &w, plan_steps, PLAN_STEPS, &input, PLAN_STEPS + 1);
	kv_list_free(&input);
	if (shown <= PLAN_STEPS) {
		plan_wizard_respond(r, &w, shown, 1, id, NULL, NULL);
		goto out;
	}
	checks = cJSON_CreateArray();
	struct runner_answer checking = { 0 };
	int failed = plan_checks(r, &w, checks, &checking);
	if (failed < 0) {
		cJSON_Delete(checks);
		plan_wizard_respond(r, &w, PLAN_STEPS, 0, id, NULL, &checking);
		runner_answer_free(&checking);
		goto out;
	}
	if (failed) {
		plan_wizard_respond(r, &w, PLAN_STEPS, 1, id, checks, NULL);
		goto out;
	}
	long long saved = plan_save(r, &w, id, err, sizeof err);
	if (!saved) {
		if (strcmp(db_last_sqlstate(), "23505") == 0) {
			wizard_error(&w, 1, "name", "Name: a backup plan of that name already exists");
			cJSON_Delete(checks);
			if (web_transaction_restart(r) == 0)	/* the form's lists are read again */
				plan_wizard_respond(r, &w, 1, 1, id, NULL, NULL);
		} else {
			cJSON_Delete(checks);
			if (strstr(err, "no such"))
				respond_error(r, 404, err);
			else
				respond_db_error(r, err);
		}
		goto out;
	}
	cJSON *detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "namespaces", wizard_value(&w, 2, "namespaces"));
	cJSON_AddStringToObject(detail, "schedule", wizard_value(&w, 1, "schedule_kind"));
	cJSON_AddItemToObject(detail, "checks", checks);
	int rc = audit_record(r->db, id ? "backup_plan.update" : "backup_plan.create", wizard_value(&w, 1, "name"),
			      detail, err, sizeof err);
	cJSON_Delete(detail);
	if (rc < 0) {
		respond_db_error(r, err);
		goto out;
	}
	snprintf(msg, sizeof msg, "Backup plan %s saved: cluster reachable, repository connected, namespaces present%s.",
		 wizard_value(&w, 1, "name"),
		 strstr(wizard_value(&w, 4, "volume_methods") ? wizard_value(&w, 4, "volume_methods") : "", "=snapshot") ?
		 ", snapshot class found" : "");
	response_flash(r, msg);
	snprintf(loc, sizeof loc, "/backup-plans/%lld/jobs", saved);
	respond_redirect(r, loc);
out:
	wizard_free(&w);
}

void page_backup_plan_create(struct request *r)
{
	plan_finish(r, 0);
}

void page_backup_plan_update(struct request *r)
{
	long long id = request_param_id(r, "id");

	if (!id) {
		respond_error(r, 404, "There is no such backup plan.");
		return;
	}
	plan_finish(r, id);
}

/* The plan as wizard input, for editing. */
static int plan_load_input(struct request *r, long long id, struct kv_list *input)
{
	char sid[24], err[256];
	const char *params[] = { sid };
	PGresult *res;
	int m = 0, h = 0, d = 0;

	snprintf(sid, sizeof sid, "%lld", id);
	res = db_exec(r->db, "SELECT name, cluster_id, repository_id, array_to_string(namespaces, E'\\n'), label_selector, "
		      "schedule_kind, schedule_cron, time_zone, retention_days, "
		      "coalesce((SELECT string_agg(key || '=' || value, E'\\n' ORDER BY key) FROM jsonb_each_text(volume_methods)), ''), "
		      "coalesce((SELECT e ->> 'inline' FROM jsonb_array_elements(hooks) e WHERE e ? 'inline' LIMIT 1), ''), "
		      "coalesce((SELECT string_agg(k.name, ', ' ORDER BY e.n) FROM jsonb_array_elements(hooks) WITH ORDINALITY e(v, n) "
		      "  JOIN hooks k ON k.id = (e.v ->> 'hook_id')::bigint), ''), "
		      "array_to_string(include_resources, ', '), array_to_string(exclude_resources, ', '), "
		      "CASE WHEN whole_cluster THEN 'true' ELSE '' END FROM backup_plans WHERE id = $1", 1, params, err, sizeof err);
	if (!res || PQntuples(res) != 1) {
		PQclear(res);
		return -1;
	}
	static const char *const keys[] = { "name", "cluster_id", "repository_id", "namespaces", "label_selector",
					    "schedule_kind", NULL, "time_zone", "retention_days", "volume_methods", "hook_script",
					    "library_hooks", "include_resources", "exclude_resources", "whole_cluster" };
	for (int i = 0; i < (int)(sizeof keys / sizeof *keys); i++)
		if (keys[i] && *PQgetvalue(res, 0, i))
			kv_add(input, keys[i], PQgetvalue(res, 0, i), strlen(PQgetvalue(res, 0, i)));
	const char *kind = PQgetvalue(res, 0, 5), *cron = PQgetvalue(res, 0, 6);
	if (strcmp(kind, "cron") == 0)
		kv_add(input, "cron", cron, strlen(cron));
	if (sscanf(cron, "%d %d * * %d", &m, &h, &d) >= 2 && (strcmp(kind, "daily") == 0 || strcmp(kind, "weekly") == 0)) {
		char t[8];
		snprintf(t, sizeof t, "%02d:%02d", h % 24, m % 60);
		kv_add(input, "at_time", t, strlen(t));
		if (strcmp(kind, "weekly") == 0 && d >= 0 && d < 7)
			kv_add(input, "weekday", weekday_choices[d], strlen(weekday_choices[d]));
	}
	PQclear(res);
	char emails[1100];
	if (notify_plan_emails_load(r, "backup_plan_id", id, emails, sizeof emails) < 0)
		return -1;
	if (*emails)
		kv_add(input, "notify_emails", emails, strlen(emails));
	return 0;
}

void page_backup_plan_edit(struct request *r)
{
	long long id = request_param_id(r, "id");
	struct kv_list input = { 0 };
	struct wizard w;

	if (!id || plan_load_input(r, id, &input) < 0) {
		kv_list_free(&input);
		respond_error(r, 404, "There is no such backup plan.");
		return;
	}
	wizard_run(r, &w, plan_steps, PLAN_STEPS, &input, 1);
	plan_wizard_respond(r, &w, 1, 0, id, NULL, NULL);
	wizard_free(&w);
	kv_list_free(&input);
}

void page_backup_plan_edit_step(struct request *r)
{
	long long id = request_param_id(r, "id");
	PGresult *res = web_row(r, "SELECT 1 FROM backup_plans WHERE id = $1", id, "backup plan");

	if (!res)
		return;
	PQclear(res);
	plan_wizard_step(r, &r->form, id);
}

/* ---- the list, running and deleting ---- */

void page_backup_plans(struct request *r)
{
	char err[512], sched[200];
	cJSON *o;
	PGresult *res = db_exec(r->db,
		"SELECT p.id, p.name, c.name AS cluster, rp.name AS repository, array_to_string(p.namespaces, ', ') AS namespaces, "
		"p.whole_cluster, p.schedule_kind, p.schedule_cron, p.time_zone, p.retention_days, coalesce(j.state, '') AS last_job_state, "
		"coalesce(j.id, 0) AS last_job_id "
		"FROM backup_plans p JOIN clusters c ON c.id = p.cluster_id JOIN repositories rp ON rp.id = p.repository_id "
		"LEFT JOIN LATERAL (SELECT id, state FROM jobs WHERE backup_plan_id = p.id ORDER BY queued_at DESC, id DESC LIMIT 1) j ON true "
		"ORDER BY p.name", 0, NULL, err, sizeof err);
	cJSON *view, *list;

	if (!res) {
		respond_db_error(r, err);
		return;
	}
	view = cJSON_CreateObject();
	cJSON_AddStringToObject(view, "title", "Backup plans");
	cJSON_AddBoolToObject(view, "nav_backup_plans", 1);
	list = db_rows_json(res);
	cJSON_AddItemToObject(view, "plans", list);
	cJSON_ArrayForEach(o, list) {
		describe_schedule(json_str(o, "schedule_kind"), json_str(o, "schedule_cron"), json_str(o, "time_zone"),
				  sched, sizeof sched);
		cJSON_AddStringToObject(o, "schedule", sched);
	}
	PQclear(res);
	respond_page(r, 200, "backup_plans", view);
}

/* "Backup": without confirm=yes, the confirmation page; with it, a queued job. */
void page_backup_plan_run(struct request *r)
{
	long long id = request_param_id(r, "id");
	const char *confirm = kv_get(&r->form, "confirm");
	PGresult *res = web_row(r, "SELECT p.name, array_to_string(p.namespaces, ', '), c.name, p.cluster_id FROM backup_plans p "
				"JOIN clusters c ON c.id = p.cluster_id WHERE p.id = $1", id, "backup plan");

	if (!res)
		return;
	if (!confirm || strcmp(confirm, "yes") != 0) {
		cJSON *view = cJSON_CreateObject();
		cJSON_AddStringToObject(view, "title", "Run a backup");
		cJSON_AddBoolToObject(view, "nav_backup_plans", 1);
		cJSON_AddNumberToObject(view, "id", (double)id);
		cJSON_AddStringToObject(view, "name", PQgetvalue(res, 0, 0));
		cJSON_AddStringToObject(view, "namespaces", PQgetvalue(res, 0, 1));
		cJSON_AddStringToObject(view, "cluster", PQgetvalue(res, 0, 2));
		PQclear(res);
		respond_page(r, 200, "backup_plan_confirm", view);
		return;
	}
	struct web_job q = {
		.spec = { .kind = "backup", .backup_plan_id = id, .cluster_id = atoll(PQgetvalue(res, 0, 3)) },
		.audit_action = "backup_plan.run", .audit_name = PQgetvalue(res, 0, 0), .flash = "Backup queued.",
	};
	web_job_queue(r, &q);
	PQclear(res);
}

void page_backup_plan_delete(struct request *r)
{
	static const struct delete_action a = {
		"DELETE FROM backup_plans WHERE id = $1 RETURNING name", "backup_plan.delete", "There is no such backup plan.",
		"This backup plan is still in use.", "Backup plan %s deleted; its backups and jobs were kept.", "/backup-plans",
	};

	respond_delete(r, &a);
}
