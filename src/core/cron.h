/* Five-field cron expressions and the schedule presets, evaluated in a plan's time zone.
 *
 *   minute hour day-of-month month day-of-week   (each: *, 5, 1-5, a step like 0-59/15, 1,15, mon-fri, jan)
 *
 * As in Vixie cron, when both day fields are restricted a day matches if either does. A local
 * time skipped by a daylight-saving change runs at the first minute after the gap; a local time
 * that happens twice runs once. */
#ifndef STOWAGE_CRON_H
#define STOWAGE_CRON_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct cron_spec {
	uint64_t minutes;	/* bit n: minute n */
	uint32_t hours;
	uint32_t days;		/* bit 1..31 */
	uint16_t months;	/* bit 1..12 */
	uint8_t weekdays;	/* bit 0..6, Sunday = 0 */
	int days_restricted;
	int weekdays_restricted;
};

int cron_parse(const char *expr, struct cron_spec *spec, char *err, size_t errlen);
/* The expression of a preset: kind "hourly" (minute from at, "MM"), "daily" (at "HH:MM") or
 * "weekly" (at "HH:MM" on weekday 0-6). out receives e.g. "30 2 * * 1". */
int cron_preset(const char *kind, const char *at, int weekday, char *out, size_t outlen, char *err, size_t errlen);
/* Whether tz names a time zone this machine knows ("UTC", "Europe/Paris", "Asia/Shanghai"). */
int cron_valid_time_zone(const char *tz);
/* The first time strictly after `after` that matches, in time zone tz; -1 when none within five
 * years (an expression like "0 0 30 2 *") or when tz is not a time zone. */
time_t cron_next(const struct cron_spec *spec, const char *tz, time_t after);

#endif
