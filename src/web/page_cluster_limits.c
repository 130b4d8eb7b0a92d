/* A cluster's limits (issue 16): the data mover's bandwidth by time window, the time zone the
 * windows are read in, and how many jobs run against the cluster at once. The rules are typed
 * one a line (rate_window.h) and stored one a row (sql/025); the runner reads them for each
 * mover run. */
#include "web.h"
#include "audit.h"
#include "cron.h"
#include "db.h"
#include "form.h"
#include "rate_window.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct form_field limit_fields[] = {
	{ .name = "time_zone", .label = "Time zone", .kind = FORM_TEXT, .required = 1, .max_len = 64 },
	{ .name = "concurrency", .label = "Jobs at once", .kind = FORM_TEXT, .max_len = 8 },
	{ .name = "bandwidth", .label = "Bandwidth windows", .kind = FORM_TEXTAREA, .max_len = 8192 },
};
#define LIMIT_N (sizeof limit_fields / sizeof limit_fields[0])

static const char *const direction_names[] = { "", "upload", "download", "both" };

/* The page's view: the cluster's name and the form; rules[] as stored (for JSON readers). */
static void limits_respond(struct request *r, int status, long long id, const char *name, cJSON *view)
{
	char loc[64];

	snprintf(loc, sizeof loc, "/clusters/%lld", id);
	cJSON_AddNumberToObject(view, "id", (double)id);
	cJSON_AddStringToObject(view, "cluster", name);
	cJSON_AddStringToObject(view, "cluster_url", loc);
	cJSON_AddStringToObject(view, "title", "Limits");
	cJSON_AddBoolToObject(view, "nav_clusters", 1);
	if (status == 200)
		respond_page(r, 200, "cluster_limits", view);
	else
		respond_form_errors(r, "cluster_limits", view);
}

/* The cluster's name, or NULL after answering 404. */
static char *cluster_name(struct request *r, long long id, char **time_zone, char **concurrency)
{
	PGresult *res = web_row(r, "SELECT name, time_zone, coalesce(concurrency::text, '') FROM clusters WHERE id = $1",
				id, "cluster");
	char *name;

	if (!res)
		return NULL;
	name = xstrdup(PQgetvalue(res, 0, 0));
	*time_zone = xstrdup(PQgetvalue(res, 0, 1));
	*concurrency = xstrdup(PQgetvalue(res, 0, 2));
	PQclear(res);
	return name;
}

void page_cluster_limits(struct request *r)
{
	long long id = request_param_id(r, "id");
	char sid[24], err[512], *tz = NULL, *conc = NULL, *name = cluster_name(r, id, &tz, &conc);
	const char *params[] = { sid };
	struct strbuf text = STRBUF_INIT;
	PGresult *res;
	cJSON *view, *fields, *rules;

	if (!name)
		return;
	snprintf(sid, sizeof sid, "%lld", id);
	res = db_exec(r->db, "SELECT direction, bytes_per_second, days, start_minute, end_minute "
		      "FROM cluster_bandwidth_rules WHERE cluster_id = $1 ORDER BY position", 1, params, err, sizeof err);
	if (!res) {
		respond_db_error(r, err);
		goto out;
	}
	view = cJSON_CreateObject();
	rules = cJSON_AddArrayToObject(view, "rules");
	for (int i = 0; i < PQntuples(res); i++) {
		const char *dir = PQgetvalue(res, i, 0);
		struct rate_rule rule = {
			.directions = strcmp(dir, "upload") == 0 ? RATE_UPLOAD : strcmp(dir, "download") == 0 ? RATE_DOWNLOAD : RATE_BOTH,
			.bytes_per_second = strtoull(PQgetvalue(res, i, 1), NULL, 10),
			.days = (unsigned)atoi(PQgetvalue(res, i, 2)),
			.start_min = atoi(PQgetvalue(res, i, 3)), .end_min = atoi(PQgetvalue(res, i, 4)),
		};
		char line[128], rate[32], days[64], hhmm[24];
		cJSON *o = cJSON_CreateObject();

		rate_rule_format(&rule, line, sizeof line);
		strbuf_addf(&text, "%s\n", line);
		rate_format(rule.bytes_per_second, rate, sizeof rate);
		rate_days_format(rule.days, days, sizeof days);
		cJSON_AddStringToObject(o, "direction", dir);
		cJSON_AddStringToObject(o, "rate", rate);
		cJSON_AddNumberToObject(o, "bytes_per_second", (double)rule.bytes_per_second);
		cJSON_AddStringToObject(o, "days", days);
		snprintf(hhmm, sizeof hhmm, "%02d:%02d", rule.start_min / 60, rule.start_min % 60);
		cJSON_AddStringToObject(o, "start", hhmm);
		snprintf(hhmm, sizeof hhmm, "%02d:%02d", rule.end_min / 60, rule.end_min % 60);
		cJSON_AddStringToObject(o, "end", hhmm);
		cJSON_AddItemToArray(rules, o);
	}
	PQclear(res);
	fields = cJSON_AddObjectToObject(view, "fields");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, "time_zone"), "value", tz);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, "concurrency"), "value", conc);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, "bandwidth"), "value", text.len ? text.buf : "");
	limits_respond(r, 200, id, name, view);
out:
	strbuf_release(&text);
	free(name);
	free(tz);
	free(conc);
}

void page_cluster_limits_save(struct request *r)
{
	long long id = request_param_id(r, "id");
	char sid[24], err[512], *tz = NULL, *conc = NULL, *name = cluster_name(r, id, &tz, &conc);
	struct rate_rule rules[RATE_RULES_MAX];
	size_t n = 0;
	struct form_values v;
	long concurrency = 0;

	if (!name)
		return;
	free(tz);
	free(conc);
	form_validate(limit_fields, LIMIT_N, &r->form, &v);
	const char *zone = form_value(&v, limit_fields, "time_zone");
	if (zone && !cron_valid_time_zone(zone))
		form_fail(&v, limit_fields, "time_zone", "Time zone: \"%.64s\" is not a known IANA time zone (Europe/Paris, UTC)", zone);
	const char *c = form_value(&v, limit_fields, "concurrency");
	if (c && *c) {
		char *end;

		concurrency = strtol(c, &end, 10);
		if (*end || concurrency < 1 || concurrency > 64)
			form_fail(&v, limit_fields, "concurrency",
				  "Jobs at once: a whole number from 1 to 64, or empty for the runners' default");
	}
	const char *text = form_value(&v, limit_fields, "bandwidth");
	if (text && rate_rules_parse(text, rules, RATE_RULES_MAX, &n, err, sizeof err) < 0)
		form_fail(&v, limit_fields, "bandwidth", "Bandwidth windows: %s", err);
	if (v.errors) {
		limits_respond(r, 422, id, name, form_view(&v, limit_fields));
		goto out;
	}
	snprintf(sid, sizeof sid, "%lld", id);
	{
		char cstr[24];
		const char *params[] = { sid, zone, c && *c ? (snprintf(cstr, sizeof cstr, "%ld", concurrency), cstr) : NULL };
		PGresult *res = db_exec(r->db, "UPDATE clusters SET time_zone = $2, concurrency = $3::integer, updated_at = now() "
					"WHERE id = $1", 3, params, err, sizeof err);
		if (!res) {
			respond_db_error(r, err);
			goto out;
		}
		PQclear(res);
		res = db_exec(r->db, "DELETE FROM cluster_bandwidth_rules WHERE cluster_id = $1", 1, params, err, sizeof err);
		if (!res) {
			respond_db_error(r, err);
			goto out;
		}
		PQclear(res);
	}
	cJSON *detail = cJSON_CreateObject(), *lines = cJSON_AddArrayToObject(detail, "bandwidth");
	for (size_t i = 0; i < n; i++) {
		char pos[24], bps[24], days[16], start[16], end[16], line[128];
		const char *params[] = { sid, pos, direction_names[rules[i].directions], bps, days, start, end };
		PGresult *res;

		snprintf(pos, sizeof pos, "%zu", i + 1);
		snprintf(bps, sizeof bps, "%llu", (unsigned long long)rules[i].bytes_per_second);
		snprintf(days, sizeof days, "%u", rules[i].days);
		snprintf(start, sizeof start, "%d", rules[i].start_min);
		snprintf(end, sizeof end, "%d", rules[i].end_min);
		res = db_exec(r->db, "INSERT INTO cluster_bandwidth_rules (cluster_id, position, direction, bytes_per_second, "
			      "days, start_minute, end_minute) VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, params, err, sizeof err);
		if (!res) {
			cJSON_Delete(detail);
			respond_db_error(r, err);
			goto out;
		}
		PQclear(res);
		rate_rule_format(&rules[i], line, sizeof line);
		cJSON_AddItemToArray(lines, cJSON_CreateString(line));
	}
	cJSON_AddStringToObject(detail, "time_zone", zone);
	if (concurrency)
		cJSON_AddNumberToObject(detail, "concurrency", (double)concurrency);
	else
		cJSON_AddNullToObject(detail, "concurrency");
	int rc = audit_record(r->db, "cluster.limits", name, detail, err, sizeof err);
	cJSON_Delete(detail);
	if (rc < 0) {
		respond_db_error(r, err);
		goto out;
	}
	char loc[64], msg[256];
	snprintf(loc, sizeof loc, "/clusters/%lld/limits", id);
	snprintf(msg, sizeof msg, "Limits of cluster %s saved: %zu bandwidth window%s. A mover already running keeps "
		 "the windows it started with.", name, n, n == 1 ? "" : "s");
	response_flash(r, msg);
	respond_redirect(r, loc);
out:
	form_values_free(&v);
	free(name);
}
