#include "time_zone.h"
#include "strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ZONEINFO "/usr/share/zoneinfo/"
#define TZIF_MAX_BYTES (1 << 20)

struct zone_type {
	long utoff;		/* seconds east of UTC */
	int isdst;
	char abbr[16];
};

/* A footer rule's day: Jn (1-365, no Feb 29), n (0-365) or Mm.w.d; at `time` seconds local. */
struct zone_rule {
	char kind;
	int m, w, d;
	long time;
};

struct time_zone {
	size_t ntrans, ntypes;
	int64_t *trans;
	unsigned char *type_of;		/* per transition, an index into types */
	struct zone_type *types;
	int has_footer, footer_dst;
	struct zone_type std, dst;
	struct zone_rule start, end;
};

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static int is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* ---- the footer: a POSIX TZ string such as "CET-1CEST,M3.5.0,M10.5.0/3" ---- */

static const char *parse_abbr(const char *s, char *out)
{
	size_t n = 0;

	if (*s == '<') {
		for (s++; *s && *s != '>'; s++)
			if (n < 15)
				out[n++] = *s;
		if (*s != '>')
			return NULL;
		s++;
	} else {
		for (; (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'); s++)
			if (n < 15)
				out[n++] = *s;
	}
	out[n] = '\0';
	return n >= 3 ? s : NULL;
}

/* [+-]h[hh][:mm[:ss]] into seconds. */
static const char *parse_hms(const char *s, long *out)
{
	long sign = 1, h = 0, m = 0, sec = 0;
	int digits = 0;

	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	for (; *s >= '0' && *s <= '9' && digits < 3; s++, digits++)
		h = h * 10 + (*s - '0');
	if (!digits || h > 167)
		return NULL;
	if (*s == ':') {
		if (!(s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9'))
			return NULL;
		m = (s[1] - '0') * 10 + (s[2] - '0');
		s += 3;
		if (*s == ':') {
			if (!(s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9'))
				return NULL;
			sec = (s[1] - '0') * 10 + (s[2] - '0');
			s += 3;
		}
	}
	*out = sign * (h * 3600 + m * 60 + sec);
	return s;
}

static const char *parse_int(const char *s, int *out, int lo, int hi)
{
	long v = 0;
	int digits = 0;

	for (; *s >= '0' && *s <= '9' && digits < 4; s++, digits++)
		v = v * 10 + (*s - '0');
	if (!digits || v < lo || v > hi)
		return NULL;
	*out = (int)v;
	return s;
}

static const char *parse_rule(const char *s, struct zone_rule *r)
{
	r->time = 7200;
	if (*s == 'M') {
		r->kind = 'M';
		if (!(s = parse_int(s + 1, &r->m, 1, 12)) || *s != '.' || !(s = parse_int(s + 1, &r->w, 1, 5)) ||
		    *s != '.' || !(s = parse_int(s + 1, &r->d, 0, 6)))
			return NULL;
	} else if (*s == 'J') {
		r->kind = 'J';
		if (!(s = parse_int(s + 1, &r->d, 1, 365)))
			return NULL;
	} else {
		r->kind = 'N';
		if (!(s = parse_int(s, &r->d, 0, 365)))
			return NULL;
	}
	if (*s == '/')
		s = parse_hms(s + 1, &r->time);
	return s;
}

static int parse_footer(struct time_zone *z, const char *s)
{
	long off;

	if (!*s)
		return 0;	/* an empty footer: no rule after the last transition */
	if (!(s = parse_abbr(s, z->std.abbr)) || !(s = parse_hms(s, &off)))
		return -1;
	z->std.utoff = -off;
	if (*s) {
		if (!(s = parse_abbr(s, z->dst.abbr)))
			return -1;
		z->dst.utoff = z->std.utoff + 3600;
		z->dst.isdst = 1;
		if (*s && *s != ',') {
			if (!(s = parse_hms(s, &off)))
				return -1;
			z->dst.utoff = -off;
		}
		if (*s == ',') {
			if (!(s = parse_rule(s + 1, &z->start)) || *s != ',' || !(s = parse_rule(s + 1, &z->end)))
				return -1;
		} else {	/* as glibc: the United States' rule */
			z->start = (struct zone_rule){ 'M', 3, 2, 0, 7200 };
			z->end = (struct zone_rule){ 'M', 11, 1, 0, 7200 };
		}
		z->footer_dst = 1;
	}
	z->has_footer = 1;
	return *s ? -1 : 0;
}

/* The UTC instant at which rule r happens in year y, when the offset in effect before it is utoff. */
static int64_t rule_instant(const struct zone_rule *r, int64_t y, long utoff)
{
	int64_t day = days_from_civil(y, 1, 1);

	if (r->kind == 'J') {
		day += r->d - 1 + (is_leap(y) && r->d >= 60);
	} else if (r->kind == 'N') {
		day += r->d;
	} else {
		static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
		int64_t first = days_from_civil(y, r->m, 1);
		int len = mdays[r->m - 1] + (r->m == 2 && is_leap(y));
		int wday_first = (int)(((first + 4) % 7 + 7) % 7);
		day = first + (r->d - wday_first + 7) % 7 + (r->w - 1) * 7;
		while (day >= first + len)
			day -= 7;
	}
	return day * 86400 + r->time - utoff;
}

static const struct zone_type *footer_type(const struct time_zone *z, int64_t t)
{
	int64_t y, s, e;
	int m, d;

	if (!z->footer_dst)
		return &z->std;
	civil_from_days(floor_div(t + z->std.utoff, 86400), &y, &m, &d);
	s = rule_instant(&z->start, y, z->std.utoff);
	e = rule_instant(&z->end, y, z->dst.utoff);
	if (s < e)
		return s <= t && t < e ? &z->dst : &z->std;
	return e <= t && t < s ? &z->std : &z->dst;
}

static const struct zone_type *type_at(const struct time_zone *z, int64_t t)
{
	size_t lo = 0, hi = z->ntrans;

	if (z->ntrans == 0)
		return z->has_footer ? footer_type(z, t) : &z->types[0];
	if (t < z->trans[0])
		return &z->types[0];
	if (t >= z->trans[z->ntrans - 1] && z->has_footer)
		return footer_type(z, t);
	while (hi - lo > 1) {	/* trans[lo] <= t < trans[hi] */
		size_t mid = lo + (hi - lo) / 2;
		if (z->trans[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	return &z->types[z->type_of[lo]];
}

/* ---- the TZif file ---- */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_counts {
	uint32_t isut, isstd, leap, time, type, chars;
};

static int read_counts(const unsigned char *p, size_t len, size_t at, struct tzif_counts *c)
{
	if (at + 44 > len || memcmp(p + at, "TZif", 4) != 0)
		return -1;
	c->isut = be32(p + at + 20);
	c->isstd = be32(p + at + 24);
	c->leap = be32(p + at + 28);
	c->time = be32(p + at + 32);
	c->type = be32(p + at + 36);
	c->chars = be32(p + at + 40);
	return c->type >= 1 && c->type <= 256 && c->time <= TZIF_MAX_BYTES && c->chars <= TZIF_MAX_BYTES &&
		c->leap <= TZIF_MAX_BYTES && c->isut <= 256 && c->isstd <= 256 ? 0 : -1;
}

static size_t block_size(const struct tzif_counts *c, size_t timelen)
{
	return (size_t)c->time * timelen + c->time + (size_t)c->type * 6 + c->chars +
		(size_t)c->leap * (timelen + 4) + c->isstd + c->isut;
}

static int parse_tzif(struct time_zone *z, const unsigned char *p, size_t len, char *why, size_t whylen)
{
	struct tzif_counts c;
	size_t at = 0, timelen = 4, q;

	if (read_counts(p, len, 0, &c) < 0) {
		snprintf(why, whylen, "not a TZif file");
		return -1;
	}
	if (p[4] >= '2') {	/* skip the 32-bit block: the 64-bit one follows with its own header */
		at = 44 + block_size(&c, 4);
		if (at > len || read_counts(p, len, at, &c) < 0) {
			snprintf(why, whylen, "its 64-bit part is damaged");
			return -1;
		}
		timelen = 8;
	}
	q = at + 44;
	if (q + block_size(&c, timelen) > len) {
		snprintf(why, whylen, "it is shorter than its header says");
		return -1;
	}
	if (c.leap) {
		snprintf(why, whylen, "zones with leap seconds are not supported");
		return -1;
	}
	z->ntrans = c.time;
	z->ntypes = c.type;
	z->trans = xcalloc(c.time ? c.time : 1, sizeof *z->trans);
	z->type_of = xcalloc(c.time ? c.time : 1, 1);
	z->types = xcalloc(c.type, sizeof *z->types);
	for (size_t i = 0; i < c.time; i++, q += timelen) {
		z->trans[i] = timelen == 8 ? be64(p + q) : (int32_t)be32(p + q);
		if (i && z->trans[i] <= z->trans[i - 1]) {
			snprintf(why, whylen, "its transitions are out of order");
			return -1;
		}
	}
	for (size_t i = 0; i < c.time; i++, q++) {
		if (p[q] >= c.type) {
			snprintf(why, whylen, "a transition names a type it does not have");
			return -1;
		}
		z->type_of[i] = p[q];
	}
	const unsigned char *chars = p + q + (size_t)c.type * 6;
	for (size_t i = 0; i < c.type; i++, q += 6) {
		uint32_t ai = p[q + 5];
		z->types[i].utoff = (int32_t)be32(p + q);
		z->types[i].isdst = p[q + 4] != 0;
		if (ai >= c.chars || z->types[i].utoff <= -86400 || z->types[i].utoff >= 86400) {
			snprintf(why, whylen, "a local time type is out of range");
			return -1;
		}
		snprintf(z->types[i].abbr, sizeof z->types[i].abbr, "%.*s", (int)strnlen((const char *)chars + ai, c.chars - ai),
			 (const char *)chars + ai);
	}
	q += c.chars + c.isstd + c.isut;
	if (timelen == 8 && q < len) {	/* the footer: "\n" TZ string "\n" */
		const unsigned char *nl = q + 1 < len ? memchr(p + q + 1, '\n', len - q - 1) : NULL;
		char footer[128];
		if (p[q] != '\n' || !nl || (size_t)(nl - (p + q + 1)) >= sizeof footer) {
			snprintf(why, whylen, "its footer is damaged");
			return -1;
		}
		snprintf(footer, sizeof footer, "%.*s", (int)(nl - (p + q + 1)), (const char *)p + q + 1);
		if (parse_footer(z, footer) < 0) {
			snprintf(why, whylen, "its footer rule \"%.64s\" is not understood", footer);
			return -1;
		}
	}
	return 0;
}

static int valid_name(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && n <= 64 && name[0] != '/' && !strstr(name, "..") &&
		strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+-") == n;
}

struct time_zone *time_zone_load(const char *name, char *err, size_t errlen)
{
	struct time_zone *z = xcalloc(1, sizeof *z);
	unsigned char *buf = NULL;
	char path[128], why[160] = "";
	size_t len = 0;
	ssize_t got;
	int fd;

	if (strcmp(name, "UTC") == 0) {
		z->ntypes = 1;
		z->types = xcalloc(1, sizeof *z->types);
		strcpy(z->types[0].abbr, "UTC");
		return z;
	}
	if (!valid_name(name)) {
		snprintf(err, errlen, "\"%.64s\" is not a time zone name (Europe/Paris, Asia/Shanghai, UTC)", name);
		goto fail;
	}
	snprintf(path, sizeof path, ZONEINFO "%s", name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "\"%s\" is not a known time zone (Europe/Paris, Asia/Shanghai, UTC)", name);
		goto fail;
	}
	buf = xmalloc(TZIF_MAX_BYTES);
	while (len < TZIF_MAX_BYTES && (got = read(fd, buf + len, TZIF_MAX_BYTES - len)) != 0) {
		if (got < 0 && errno != EINTR)
			break;
		if (got > 0)
			len += (size_t)got;
	}
	close(fd);
	if (parse_tzif(z, buf, len, why, sizeof why) < 0) {
		snprintf(err, errlen, "time zone %s: %s", name, why);
		goto fail;
	}
	free(buf);
	return z;
fail:
	free(buf);
	time_zone_free(z);
	return NULL;
}

void time_zone_free(struct time_zone *z)
{
	if (!z)
		return;
	free(z->trans);
	free(z->type_of);
	free(z->types);
	free(z);
}

void time_zone_local(const struct time_zone *z, time_t t, struct tm *tm, long *utoff, char *abbr)
{
	const struct zone_type *ty = type_at(z, t);
	int64_t s = (int64_t)t + ty->utoff, days = floor_div(s, 86400), rem = s - days * 86400, y;
	int m, d;

	civil_from_days(days, &y, &m, &d);
	memset(tm, 0, sizeof *tm);
	tm->tm_year = (int)(y - 1900);
	tm->tm_mon = m - 1;
	tm->tm_mday = d;
	tm->tm_hour = (int)(rem / 3600);
	tm->tm_min = (int)(rem / 60 % 60);
	tm->tm_sec = (int)(rem % 60);
	tm->tm_wday = (int)(((days + 4) % 7 + 7) % 7);
	tm->tm_isdst = ty->isdst;
	if (utoff)
		*utoff = ty->utoff;
	if (abbr)
		snprintf(abbr, 16, "%s", ty->abbr);
}

time_t time_zone_instant(const struct time_zone *z, const struct tm *local)
{
	int64_t y = (int64_t)local->tm_year + 1900 + floor_div(local->tm_mon, 12);
	int mon = (int)(local->tm_mon - floor_div(local->tm_mon, 12) * 12);
	int64_t l = (days_from_civil(y, mon + 1, 1) + local->tm_mday - 1) * 86400 +
		(int64_t)local->tm_hour * 3600 + (int64_t)local->tm_min * 60 + local->tm_sec;
	long before = type_at(z, l - 86400)->utoff, after;

	if (type_at(z, l - before)->utoff == before)
		return (time_t)(l - before);	/* the usual case, and the first of a time that happens twice */
	after = type_at(z, l - before)->utoff;
	if (type_at(z, l - after)->utoff == after)
		return (time_t)(l - after);
	return (time_t)(l - before);		/* skipped: read with the offset before the change */
}
