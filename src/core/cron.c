#include "cron.h"
#include "time_zone.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const month_names[] = { "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec" };
static const char *const day_names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };

struct cron_field {
	const char *label;
	int min, max;
	const char *const *names;	/* names[i] means min + i */
};

static const struct cron_field cron_fields[5] = {
	{ "minute", 0, 59, NULL },
	{ "hour", 0, 23, NULL },
	{ "day of month", 1, 31, NULL },
	{ "month", 1, 12, month_names },
	{ "day of week", 0, 7, day_names },	/* 7 is Sunday too */
};

/* A number or a name of the field; -1 when it is neither. */
static int parse_value(const struct cron_field *f, const char **p)
{
	const char *s = *p;

	if (isdigit((unsigned char)*s)) {
		long v = 0;
		while (isdigit((unsigned char)*s) && v < 1000)
			v = v * 10 + (*s++ - '0');
		*p = s;
		return (int)v;
	}
	if (f->names) {
		int count = f == &cron_fields[3] ? 12 : 7;
		for (int i = 0; i < count; i++) {
			if (strncasecmp(s, f->names[i], 3) == 0) {
				*p = s + 3;
				return f->min + i;
			}
		}
	}
	return -1;
}

static int parse_field(const struct cron_field *f, const char *text, uint64_t *bits, int *restricted,
		       char *err, size_t errlen)
{
	const char *p = text;

	*bits = 0;
	*restricted = strcmp(text, "*") != 0;
	for (;;) {
		int lo, hi, step = 1;
		if (*p == '*') {
			lo = f->min;
			hi = f->max == 7 ? 6 : f->max;
			p++;
		} else {
			lo = parse_value(f, &p);
			if (lo < 0)
				goto bad;
			hi = lo;
			if (*p == '-') {
				p++;
				hi = parse_value(f, &p);
				if (hi < 0)
					goto bad;
			}
		}
		if (*p == '/') {
			p++;
			if (!isdigit((unsigned char)*p))
				goto bad;
			step = atoi(p);
			while (isdigit((unsigned char)*p))
				p++;
			if (step < 1 || step > f->max) {
				snprintf(err, errlen, "%s: step %d is out of range", f->label, step);
				return -1;
			}
		}
		if (lo < f->min || hi > f->max || lo > hi) {
			snprintf(err, errlen, "%s: %d-%d is outside %d-%d", f->label, lo, hi, f->min, f->max);
			return -1;
		}
		for (int v = lo; v <= hi; v += step)
			*bits |= 1ULL << (f->max == 7 && v == 7 ? 0 : v);
		if (*p == '\0')
			return 0;
		if (*p != ',')
			goto bad;
		p++;
	}
bad:
	snprintf(err, errlen, "%s: \"%s\" is not a value, range, list or step", f->label, text);
	return -1;
}

int cron_parse(const char *expr, struct cron_spec *spec, char *err, size_t errlen)
{
	char copy[256], *field[6], *save = NULL;
	int n = 0, restricted;
	uint64_t bits;

	if (strlen(expr) >= sizeof copy) {
		snprintf(err, errlen, "the expression is longer than %zu characters", sizeof copy - 1);
		return -1;
	}
	strcpy(copy, expr);
	for (char *t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (n == 5) {
			n++;
			break;
		}
		field[n++] = t;
	}
	if (n != 5) {
		snprintf(err, errlen, "needs five fields (minute hour day-of-month month day-of-week), got %s",
			 n > 5 ? "more" : n == 0 ? "none" : "fewer");
		return -1;
	}
	memset(spec, 0, sizeof *spec);
	for (int i = 0; i < 5; i++) {
		if (parse_field(&cron_fields[i], field[i], &bits, &restricted, err, errlen) < 0)
			return -1;
		switch (i) {
		case 0: spec->minutes = bits; break;
		case 1: spec->hours = (uint32_t)bits; break;
		case 2: spec->days = (uint32_t)bits; spec->days_restricted = restricted; break;
		case 3: spec->months = (uint16_t)bits; break;
		case 4: spec->weekdays = (uint8_t)bits; spec->weekdays_restricted = restricted; break;
		}
	}
	return 0;
}

int cron_preset(const char *kind, const char *at, int weekday, char *out, size_t outlen, char *err, size_t errlen)
{
	int h = 0, m = 0;
	char tail;

	if (strcmp(kind, "hourly") == 0) {
		if (!at || !*at)
			at = "0";
		if (sscanf(at, "%d%c", &m, &tail) != 1 || m < 0 || m > 59) {
			snprintf(err, errlen, "minute past the hour: a number from 0 to 59");
			return -1;
		}
		snprintf(out, outlen, "%d * * * *", m);
		return 0;
	}
	if (!at || sscanf(at, "%d:%d%c", &h, &m, &tail) != 2 || h < 0 || h > 23 || m < 0 || m > 59) {
		snprintf(err, errlen, "time: HH:MM from 00:00 to 23:59");
		return -1;
	}
	if (strcmp(kind, "daily") == 0) {
		snprintf(out, outlen, "%d %d * * *", m, h);
		return 0;
	}
	if (strcmp(kind, "weekly") == 0) {
		if (weekday < 0 || weekday > 6) {
			snprintf(err, errlen, "day of week: 0 (Sunday) to 6 (Saturday)");
			return -1;
		}
		snprintf(out, outlen, "%d %d * * %d", m, h, weekday);
		return 0;
	}
	snprintf(err, errlen, "unknown schedule \"%s\"", kind);
	return -1;
}

int cron_valid_time_zone(const char *tz)
{
	char err[200];
	struct time_zone *z = time_zone_load(tz, err, sizeof err);

	time_zone_free(z);
	return z != NULL;
}

static int day_matches(const struct cron_spec *s, const struct tm *tm)
{
	int dom = (s->days >> tm->tm_mday) & 1, dow = (s->weekdays >> tm->tm_wday) & 1;

	if (!((s->months >> (tm->tm_mon + 1)) & 1))
		return 0;
	if (s->days_restricted && s->weekdays_restricted)
		return dom || dow;
	return dom && dow;
}

time_t cron_next(const struct cron_spec *spec, const char *tz, time_t after)
{
	char err[200];
	struct time_zone *z = time_zone_load(tz && *tz ? tz : "UTC", err, sizeof err);
	time_t start = after - after % 60 + 60, found = -1;
	struct tm day;

	if (!z)
		return -1;
	time_zone_local(z, start, &day, NULL, NULL);
	for (int i = 0; i < 5 * 366 && found < 0; i++) {
		struct tm d = day;
		d.tm_mday += i;
		d.tm_hour = 12;
		d.tm_min = d.tm_sec = 0;
		time_t noon = timegm(&d);	/* calendar arithmetic only: the date and weekday of day + i */
		gmtime_r(&noon, &d);
		if (!day_matches(spec, &d))
			continue;
		for (int h = 0; h < 24 && found < 0; h++) {
			if (!((spec->hours >> h) & 1))
				continue;
			for (int m = 0; m < 60; m++) {
				if (!((spec->minutes >> m) & 1))
					continue;
				struct tm t = d;
				t.tm_hour = h;
				t.tm_min = m;
				time_t ts = time_zone_instant(z, &t);
				if (ts >= start) {
					found = ts;
					break;
				}
			}
		}
	}
	time_zone_free(z);
	return found;
}
