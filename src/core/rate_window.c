/* Bandwidth rules and rate schedules: see rate_window.h. */
#include "rate_window.h"
#include "strbuf.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const day_names[] = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" };

static const struct { const char *unit; uint64_t mult; } units[] = {
	{ "GiB", 1ULL << 30 }, { "MiB", 1ULL << 20 }, { "KiB", 1ULL << 10 },
	{ "GB", 1000000000ULL }, { "MB", 1000000ULL }, { "KB", 1000ULL }, { "kB", 1000ULL }, { "B", 1 },
};

int rate_parse(const char *s, uint64_t *bps, char *err, size_t errlen)
{
	char num[32], unit[16];
	size_t i = 0, u = 0;
	const char *p = s;
	uint64_t whole = 0, frac = 0, frac_div = 1, mult = 0;
	int digits = 0, dot = 0;

	while (*p == ' ')
		p++;
	for (; (isdigit((unsigned char)*p) || *p == '.') && i < sizeof num - 1; p++) {
		if (*p == '.') {
			if (dot++)
				break;
		} else if (!dot) {
			if (whole > 1000000000000ULL)
				goto bad;
			whole = whole * 10 + (uint64_t)(*p - '0');
			digits++;
		} else if (frac_div < 1000000) {
			frac = frac * 10 + (uint64_t)(*p - '0');
			frac_div *= 10;
		}
		num[i++] = *p;
	}
	num[i] = '\0';
	if (!digits)
		goto bad;
	while (*p == ' ')
		p++;
	for (; isalpha((unsigned char)*p) && u < sizeof unit - 1; p++)
		unit[u++] = *p;
	unit[u] = '\0';
	if (strcmp(p, "/s") != 0 && *p)
		goto bad;
	for (size_t k = 0; k < sizeof units / sizeof *units; k++)
		if (strcmp(unit, units[k].unit) == 0)
			mult = units[k].mult;
	if (!mult)
		goto bad;
	{
		long double v = ((long double)whole + (long double)frac / (long double)frac_div) * (long double)mult;

		if (v < (long double)RATE_MIN || v > (long double)RATE_MAX) {
			err_set(err, errlen, "\"%.40s\" is outside 1KB/s to 100GB/s", s);
			return -1;
		}
		*bps = (uint64_t)(v + 0.5L);
	}
	return 0;
bad:
	err_set(err, errlen, "\"%.40s\" is not a rate such as 10MB/s or 512KiB/s (units B, KB, MB, GB, KiB, MiB, GiB)", s);
	return -1;
}

void rate_format(uint64_t bps, char *out, size_t len)
{
	static const struct { const char *unit; uint64_t mult; } shown[] = {
		{ "GiB", 1ULL << 30 }, { "GB", 1000000000ULL }, { "MiB", 1ULL << 20 }, { "MB", 1000000ULL },
		{ "KiB", 1ULL << 10 }, { "KB", 1000ULL },
	};

	for (size_t k = 0; k < sizeof shown / sizeof *shown; k++)
		if (bps >= shown[k].mult && bps % shown[k].mult == 0) {
			snprintf(out, len, "%" PRIu64 "%s/s", bps / shown[k].mult, shown[k].unit);
			return;
		}
	snprintf(out, len, "%" PRIu64 "B/s", bps);
}

static int day_index(const char *s, size_t n)
{
	for (int d = 0; d < 7; d++)
		if (n == 3 && strncasecmp(s, day_names[d], 3) == 0)
			return d;
	return -1;
}

static int days_parse(const char *s, unsigned *days, char *err, size_t errlen)
{
	*days = 0;
	if (strcasecmp(s, "daily") == 0) {
		*days = 0x7f;
		return 0;
	}
	for (const char *p = s; *p;) {
		size_t n = strcspn(p, ",");
		const char *dash = memchr(p, '-', n);
		int a, b;

		if (dash) {
			a = day_index(p, (size_t)(dash - p));
			b = day_index(dash + 1, n - (size_t)(dash - p) - 1);
		} else {
			a = b = day_index(p, n);
		}
		if (a < 0 || b < 0) {
			err_set(err, errlen, "days: \"%.40s\" is not \"daily\" or day names and ranges such as mon-fri or sat,sun", s);
			return -1;
		}
		for (int d = a;; d = (d + 1) % 7) {	/* fri-mon wraps over the weekend */
			*days |= 1u << d;
			if (d == b)
				break;
		}
		p += n;
		if (*p == ',' && *++p == '\0') {
			err_set(err, errlen, "days: \"%.40s\" ends with a comma", s);
			return -1;
		}
	}
	return 0;
}

void rate_days_format(unsigned days, char *out, size_t len)
{
	struct strbuf sb = STRBUF_INIT;

	if ((days & 0x7f) == 0x7f) {
		snprintf(out, len, "daily");
		return;
	}
	for (int d = 0; d < 7; d++) {
		int e = d;

		if (!(days & (1u << d)))
			continue;
		while (e + 1 < 7 && (days & (1u << (e + 1))))
			e++;
		strbuf_addf(&sb, "%s%s", sb.len ? "," : "", day_names[d]);
		if (e > d)
			strbuf_addf(&sb, "%s%s", e > d + 1 ? "-" : ",", day_names[e]);
		d = e;
	}
	snprintf(out, len, "%s", sb.len ? sb.buf : "");
	strbuf_release(&sb);
}

/* "08:00" -> 480; "24:00" only when allow_24. */
static int minute_parse(const char *s, size_t n, int allow_24, int *out)
{
	if (n != 5 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != ':' ||
	    !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
		return -1;
	int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
	if (m > 59 || h > 24 || (h == 24 && (m || !allow_24)))
		return -1;
	*out = h * 60 + m;
	return 0;
}

int rate_rule_parse(const char *line, struct rate_rule *r, char *err, size_t errlen)
{
	char buf[256], *word[5], *save = NULL, *tok;
	int n = 0;
	const char *dash;

	if (strlen(line) >= sizeof buf) {
		err_set(err, errlen, "longer than %zu characters", sizeof buf - 1);
		return -1;
	}
	snprintf(buf, sizeof buf, "%s", line);
	for (tok = strtok_r(buf, " \t\r", &save); tok; tok = strtok_r(NULL, " \t\r", &save)) {
		if (n == 4) {
			err_set(err, errlen, "\"%.60s\": too many words; a rule is DIRECTION RATE DAYS START-END, "
				"for example \"both 10MB/s mon-fri 08:00-20:00\"", line);
			return -1;
		}
		word[n++] = tok;
	}
	if (n < 4) {
		err_set(err, errlen, "\"%.60s\": a rule is DIRECTION RATE DAYS START-END, for example "
			"\"both 10MB/s mon-fri 08:00-20:00\"", line);
		return -1;
	}
	if (strcasecmp(word[0], "upload") == 0)
		r->directions = RATE_UPLOAD;
	else if (strcasecmp(word[0], "download") == 0)
		r->directions = RATE_DOWNLOAD;
	else if (strcasecmp(word[0], "both") == 0)
		r->directions = RATE_BOTH;
	else {
		err_set(err, errlen, "direction: \"%.40s\" is not upload, download or both", word[0]);
		return -1;
	}
	if (rate_parse(word[1], &r->bytes_per_second, err, errlen) < 0) {
		char inner[200];

		snprintf(inner, sizeof inner, "%s", err);
		err_set(err, errlen, "rate: %s", inner);
		return -1;
	}
	if (days_parse(word[2], &r->days, err, errlen) < 0)
		return -1;
	dash = strchr(word[3], '-');
	if (!dash || minute_parse(word[3], (size_t)(dash - word[3]), 0, &r->start_min) < 0 ||
	    minute_parse(dash + 1, strlen(dash + 1), 1, &r->end_min) < 0) {
		err_set(err, errlen, "time: \"%.40s\" is not START-END in 24-hour local time such as 08:00-20:00 "
			"(END up to 24:00)", word[3]);
		return -1;
	}
	if (r->start_min == r->end_min) {
		err_set(err, errlen, "time: \"%.40s\" starts where it ends; for the whole day write 00:00-24:00", word[3]);
		return -1;
	}
	return 0;
}

void rate_rule_format(const struct rate_rule *r, char *out, size_t len)
{
	char rate[32], days[64];

	rate_format(r->bytes_per_second, rate, sizeof rate);
	rate_days_format(r->days, days, sizeof days);
	snprintf(out, len, "%s %s %s %02d:%02d-%02d:%02d",
		 r->directions == RATE_BOTH ? "both" : r->directions == RATE_UPLOAD ? "upload" : "download",
		 rate, days, r->start_min / 60, r->start_min % 60, r->end_min / 60, r->end_min % 60);
}

int rate_rules_parse(const char *text, struct rate_rule *rules, size_t max, size_t *n, char *err, size_t errlen)
{
	int line = 0;

	*n = 0;
	for (const char *p = text; p && *p;) {
		size_t len = strcspn(p, "\n");
		char one[300], inner[400];

		line++;
		if (len >= sizeof one) {
			err_set(err, errlen, "line %d: longer than 255 characters", line);
			return -1;
		}
		memcpy(one, p, len);
		one[len] = '\0';
		p += len + (p[len] == '\n');
		if (strspn(one, " \t\r") == len)
			continue;
		if (*n == max) {
			err_set(err, errlen, "line %d: at most %zu rules", line, max);
			return -1;
		}
		if (rate_rule_parse(one, &rules[*n], inner, sizeof inner) < 0) {
			err_set(err, errlen, "line %d: %s", line, inner);
			return -1;
		}
		(*n)++;
	}
	return 0;
}

/* ---- schedules ---- */

struct interval {
	time_t start, end;
	uint64_t bps;
};

static int time_cmp(const void *a, const void *b)
{
	time_t x = *(const time_t *)a, y = *(const time_t *)b;

	return x < y ? -1 : x > y;
}

/* The instant of local midnight + minutes on the day `day` days after base's date. */
static time_t local_instant(const struct time_zone *z, const struct tm *base, int day, int minutes)
{
	struct tm tm = *base;

	tm.tm_mday += day;
	tm.tm_hour = minutes / 60;
	tm.tm_min = minutes % 60;
	tm.tm_sec = 0;
	tm.tm_isdst = -1;
	return time_zone_instant(z, &tm);
}

void rate_schedule_build(const struct rate_rule *rules, size_t n, int direction, const struct time_zone *z,
			 time_t from, time_t until, struct rate_schedule *out)
{
	struct interval *iv = NULL;
	time_t *points;
	size_t niv = 0, cap = 0, np = 0;
	struct tm base;
	long off;
	char abbr[16];
	int days = (int)((until - from) / 86400) + 2;

	time_zone_local(z, from, &base, &off, abbr);
	/* from the day before (a window past midnight may still be open) to the day after until */
	for (int d = -1; d <= days; d++) {
		struct tm noon;
		time_t t = local_instant(z, &base, d, 12 * 60);

		time_zone_local(z, t, &noon, &off, abbr);
		unsigned bit = 1u << ((noon.tm_wday + 6) % 7);
		for (size_t i = 0; i < n; i++) {
			const struct rate_rule *r = &rules[i];
			if (!(r->directions & direction) || !(r->days & bit))
				continue;
			time_t s = local_instant(z, &base, d, r->start_min);
			time_t e = local_instant(z, &base, d + (r->end_min <= r->start_min), r->end_min);
			if (e <= s || e <= from || s >= until)
				continue;	/* a window inside a skipped hour does not happen */
			if (niv == cap) {
				cap = cap ? cap * 2 : 64;
				iv = xrealloc(iv, cap * sizeof *iv);
			}
			iv[niv++] = (struct interval){ s, e, r->bytes_per_second };
		}
	}
	points = xmalloc((2 * niv + 1) * sizeof *points);
	points[np++] = from;
	for (size_t i = 0; i < niv; i++) {
		if (iv[i].start > from && iv[i].start < until)
			points[np++] = iv[i].start;
		if (iv[i].end > from && iv[i].end < until)
			points[np++] = iv[i].end;
	}
	qsort(points, np, sizeof *points, time_cmp);
	out->steps = xmalloc(np * sizeof *out->steps);
	out->n = 0;
	for (size_t k = 0; k < np; k++) {
		uint64_t bps = 0;

		if (k && points[k] == points[k - 1])
			continue;
		for (size_t i = 0; i < niv; i++)
			if (iv[i].start <= points[k] && points[k] < iv[i].end && (!bps || iv[i].bps < bps))
				bps = iv[i].bps;
		if (out->n && out->steps[out->n - 1].bytes_per_second == bps)
			continue;
		out->steps[out->n++] = (struct rate_step){ points[k], bps };
	}
	free(points);
	free(iv);
}

int rate_schedule_unlimited(const struct rate_schedule *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->steps[i].bytes_per_second)
			return 0;
	return 1;
}

char *rate_schedule_format(const struct rate_schedule *s)
{
	struct strbuf sb = STRBUF_INIT;

	for (size_t i = 0; i < s->n; i++)
		strbuf_addf(&sb, "%s%lld:%" PRIu64, i ? "," : "", (long long)s->steps[i].from, s->steps[i].bytes_per_second);
	return strbuf_take(&sb);
}

int rate_schedule_parse(const char *text, struct rate_schedule *out, char *err, size_t errlen)
{
	const char *p = text;

	out->steps = NULL;
	out->n = 0;
	while (*p) {
		char *end;
		long long t;
		unsigned long long bps;

		if (out->n == RATE_SCHEDULE_STEPS_MAX) {
			err_set(err, errlen, "more than %d steps", RATE_SCHEDULE_STEPS_MAX);
			goto bad;
		}
		errno = 0;
		t = strtoll(p, &end, 10);
		if (errno || end == p || *end != ':' || !isdigit((unsigned char)end[1]))
			goto syntax;
		p = end + 1;
		bps = strtoull(p, &end, 10);
		if (errno || end == p || (bps && (bps < RATE_MIN || bps > RATE_MAX)))
			goto syntax;
		if (out->n && t <= (long long)out->steps[out->n - 1].from) {
			err_set(err, errlen, "step %zu: instants must increase", out->n + 1);
			goto bad;
		}
		out->steps = xrealloc(out->steps, (out->n + 1) * sizeof *out->steps);
		out->steps[out->n++] = (struct rate_step){ (time_t)t, bps };
		p = end;
		if (*p == ',' && p[1])
			p++;
		else if (*p)
			goto syntax;
	}
	return 0;
syntax:
	err_set(err, errlen, "step %zu: not INSTANT:BYTES_PER_SECOND (bytes 0 or 1000 to 100000000000)", out->n + 1);
bad:
	rate_schedule_free(out);
	return -1;
}

uint64_t rate_schedule_at(const struct rate_schedule *s, time_t t)
{
	size_t lo = 0, hi = s->n;

	/* the last step whose from <= t */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->steps[mid].from <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? s->steps[lo - 1].bytes_per_second : 0;
}

void rate_schedule_free(struct rate_schedule *s)
{
	free(s->steps);
	s->steps = NULL;
	s->n = 0;
}
