#include "cron.h"
#include "check.h"

#include <stdlib.h>

/* 2026-11-25 10:07:30 UTC, a Wednesday */
#define T0 ((time_t)1795601250)

static time_t next(const char *expr, const char *tz, time_t after)
{
	struct cron_spec s;
	char err[200];

	if (cron_parse(expr, &s, err, sizeof err) < 0) {
		printf("# %s: %s\n", expr, err);
		return -2;
	}
	return cron_next(&s, tz, after);
}

static void fmt(time_t t, const char *tz, char *out, size_t n)
{
	struct tm tm;

	setenv("TZ", tz, 1);
	tzset();
	localtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%d %H:%M %a", &tm);
	unsetenv("TZ");
	tzset();
}

#define CHECK_NEXT(expr, tz, after, want) do { \
	char got_[64]; \
	fmt(next(expr, tz, after), tz, got_, sizeof got_); \
	CHECK_STREQ(got_, want); \
} while (0)

static void test_every_minute_and_steps(void)
{
	CHECK_NEXT("* * * * *", "UTC", T0, "2026-11-25 10:08 Wed");
	CHECK_NEXT("*/15 * * * *", "UTC", T0, "2026-11-25 10:15 Wed");
	CHECK_NEXT("0 */6 * * *", "UTC", T0, "2026-11-25 12:00 Wed");
	CHECK_NEXT("5,10 9-17 * * *", "UTC", T0, "2026-11-25 10:10 Wed");
	/* strictly after: a time that matches itself moves on */
	CHECK_NEXT("8 10 * * *", "UTC", T0 - 30 + 60, "2026-11-26 10:08 Thu");
}

static void test_days_names_and_either_day_rule(void)
{
	CHECK_NEXT("30 2 * * mon", "UTC", T0, "2026-11-30 02:30 Mon");
	CHECK_NEXT("0 0 1 jan *", "UTC", T0, "2027-01-01 00:00 Fri");
	CHECK_NEXT("0 0 * * 7", "UTC", T0, "2026-11-29 00:00 Sun");
	/* both day fields restricted: the 1st of the month OR a Friday */
	CHECK_NEXT("0 0 1 * fri", "UTC", T0, "2026-11-27 00:00 Fri");
	CHECK_NEXT("0 0 29 2 *", "UTC", T0, "2028-02-29 00:00 Tue");
	CHECK(next("0 0 30 2 *", "UTC", T0) == -1);
}

static void test_time_zones_and_daylight_saving(void)
{
	CHECK_NEXT("0 3 * * *", "Asia/Shanghai", T0, "2026-11-26 03:00 Thu");
	CHECK(next("0 3 * * *", "Asia/Shanghai", T0) == next("0 19 * * *", "UTC", T0));
	/* Europe/Paris springs forward on 2027-03-28 at 02:00: 02:30 does not exist that day */
	CHECK_NEXT("30 2 * * *", "Europe/Paris", (time_t)1806184800 /* 2027-03-27 22:00 UTC */, "2027-03-28 03:30 Sun");
	/* and falls back on 2027-10-31: 02:30 happens twice, it runs once */
	time_t first = next("30 2 * * *", "Europe/Paris", (time_t)1824933600 /* 2027-10-30 22:00 UTC */);
	time_t second = next("30 2 * * *", "Europe/Paris", first);
	CHECK(second - first > 23 * 3600);
}

static void test_errors_name_the_field(void)
{
	struct cron_spec s;
	char err[200] = "";

	CHECK_INTEQ(cron_parse("* * * *", &s, err, sizeof err), -1);
	CHECK(strstr(err, "five fields") != NULL);
	CHECK_INTEQ(cron_parse("60 * * * *", &s, err, sizeof err), -1);
	CHECK_STREQ(err, "minute: 60-60 is outside 0-59");
	CHECK_INTEQ(cron_parse("* * * foo *", &s, err, sizeof err), -1);
	CHECK_STREQ(err, "month: \"foo\" is not a value, range, list or step");
	CHECK_INTEQ(cron_parse("*/0 * * * *", &s, err, sizeof err), -1);
	CHECK_INTEQ(cron_parse("5-1 * * * *", &s, err, sizeof err), -1);
	CHECK_INTEQ(cron_parse("* * * * * *", &s, err, sizeof err), -1);
}

static void test_presets_and_zones(void)
{
	char out[64], err[200];

	CHECK_INTEQ(cron_preset("daily", "02:30", 0, out, sizeof out, err, sizeof err), 0);
	CHECK_STREQ(out, "30 2 * * *");
	CHECK_INTEQ(cron_preset("weekly", "23:05", 6, out, sizeof out, err, sizeof err), 0);
	CHECK_STREQ(out, "5 23 * * 6");
	CHECK_INTEQ(cron_preset("hourly", "15", 0, out, sizeof out, err, sizeof err), 0);
	CHECK_STREQ(out, "15 * * * *");
	CHECK_INTEQ(cron_preset("daily", "24:00", 0, out, sizeof out, err, sizeof err), -1);
	CHECK(cron_valid_time_zone("Europe/Paris"));
	CHECK(cron_valid_time_zone("UTC"));
	CHECK(!cron_valid_time_zone("Mars/Olympus"));
	CHECK(!cron_valid_time_zone("../../etc/passwd"));
}

int main(void)
{
	RUN(test_every_minute_and_steps);
	RUN(test_days_names_and_either_day_rule);
	RUN(test_time_zones_and_daylight_saving);
	RUN(test_errors_name_the_field);
	RUN(test_presets_and_zones);
	return check_done();
}
