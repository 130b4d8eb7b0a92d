/* The next five run times of a schedule, so the backup wizard can explain a cron expression or
 * preset while the user types (static/schedule.js asks this as JSON). */
#include "web.h"
#include "cron.h"
#include "time_zone.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PREVIEW_RUNS 5

/* The cron expression of the query's schedule, or -1 with err naming the field. */
int schedule_expression(const char *kind, const char *cron, const char *at, const char *weekday,
			char *out, size_t outlen, char *err, size_t errlen)
{
	struct cron_spec spec;

	if (!kind || strcmp(kind, "cron") == 0) {
		if (!cron || !*cron) {
			snprintf(err, errlen, "Cron expression: required");
			return -1;
		}
		char why[256];
		if (cron_parse(cron, &spec, why, sizeof why) < 0) {
			snprintf(err, errlen, "Cron expression: %s", why);
			return -1;
		}
		snprintf(out, outlen, "%s", cron);
		return 0;
	}
	if (cron_preset(kind, at, weekday && *weekday ? atoi(weekday) : 0, out, outlen, err, errlen) < 0)
		return -1;
	return 0;
}

void page_schedule_preview(struct request *r)
{
	const char *tz = kv_get(&r->query, "tz");
	char expr[128], err[256] = "";
	cJSON *view = cJSON_CreateObject(), *runs;
	struct cron_spec spec;

	if (!tz || !*tz)
		tz = "UTC";
	cJSON_AddStringToObject(view, "title", "Schedule");
	if (!cron_valid_time_zone(tz)) {
		snprintf(err, sizeof err, "Time zone: \"%s\" is not a known time zone (Europe/Paris, Asia/Shanghai, UTC)", tz);
	} else if (schedule_expression(kv_get(&r->query, "kind"), kv_get(&r->query, "cron"), kv_get(&r->query, "at"),
				       kv_get(&r->query, "weekday"), expr, sizeof expr, err, sizeof err) == 0) {
		cron_parse(expr, &spec, err, sizeof err);
		cJSON_AddStringToObject(view, "cron", expr);
		cJSON_AddStringToObject(view, "time_zone", tz);
		runs = cJSON_AddArrayToObject(view, "next_runs");
		struct time_zone *zone = time_zone_load(tz, err, sizeof err);
		time_t t = time(NULL);
		for (int i = 0; zone && i < PREVIEW_RUNS; i++) {
			char local[64], abbr[16];
			size_t n;
			struct tm tm;
			t = cron_next(&spec, tz, t);
			if (t < 0)
				break;
			time_zone_local(zone, t, &tm, NULL, abbr);
			n = strftime(local, sizeof local, "%a %Y-%m-%d %H:%M ", &tm);
			snprintf(local + n, sizeof local - n, "%s", abbr);
			cJSON_AddItemToArray(runs, cJSON_CreateString(local));
		}
		time_zone_free(zone);
		if (cJSON_GetArraySize(runs) == 0)
			snprintf(err, sizeof err, "Cron expression: never runs (no such date within five years)");
	}
	if (*err) {
		cJSON_AddStringToObject(view, "error", err);
		respond_page(r, 422, "schedule_preview", view);
		return;
	}
	respond_page(r, 200, "schedule_preview", view);
}
