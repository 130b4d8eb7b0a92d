/* Validation of five-field cron expressions (see cron_check.h). */
#include "cron_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	int lo, hi;
} cron_fields[5] = {
	{ "minute", 0, 59 }, { "hour", 0, 23 }, { "day of month", 1, 31 }, { "month", 1, 12 }, { "day of week", 0, 7 },
};

#define BLANKS " \t"

/* A number of at most 3 digits at *p, advancing *p. */
static int read_number(const char **p, int *out)
{
	int n = 0, digits = 0;

	while (**p >= '0' && **p <= '9' && digits < 4) {
		n = n * 10 + (**p - '0');
		(*p)++;
		digits++;
	}
	if (digits == 0 || digits > 3)
		return -1;
	*out = n;
	return 0;
}

/* One item of a list: "*", "n" or "a-b", then optionally "/step". */
static int check_item(int f, const char *item, char *err, size_t errlen)
{
	const char *p = item;
	int lo = cron_fields[f].lo, hi = cron_fields[f].hi, a = lo, b = hi, step;

	if (*p == '*') {
		p++;
	} else {
		if (read_number(&p, &a) < 0)
			goto bad;
		b = a;
		if (*p == '-') {
			p++;
			if (read_number(&p, &b) < 0)
				goto bad;
		}
		if (a < lo || a > hi || b < lo || b > hi) {
			snprintf(err, errlen, "%s: %s is out of range %d-%d", cron_fields[f].name, item, lo, hi);
			return -1;
		}
		if (a > b) {
			snprintf(err, errlen, "%s: the range %s ends before it starts", cron_fields[f].name, item);
			return -1;
		}
	}
	if (*p == '/') {
		p++;
		if (read_number(&p, &step) < 0 || step < 1 || step > hi) {
			snprintf(err, errlen, "%s: in %s the step must be a number from 1 to %d", cron_fields[f].name, item, hi);
			return -1;
		}
	}
	if (*p == '\0')
		return 0;
bad:
	snprintf(err, errlen, "%s: \"%s\" is not *, a number, a range a-b or a step */n", cron_fields[f].name, item);
	return -1;
}

static int check_field(int f, const char *field, size_t len, char *err, size_t errlen)
{
	char buf[130];
	char *save = NULL, *item;

	if (len >= sizeof buf) {
		snprintf(err, errlen, "%s: too long", cron_fields[f].name);
		return -1;
	}
	memcpy(buf, field, len);
	buf[len] = '\0';
	if (buf[0] == ',' || buf[len - 1] == ',' || strstr(buf, ",,")) {
		snprintf(err, errlen, "%s: \"%s\" has an empty list item", cron_fields[f].name, buf);
		return -1;
	}
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save))
		if (check_item(f, item, err, errlen) < 0)
			return -1;
	return 0;
}

int cron_check(const char *expr, char *err, size_t errlen)
{
	const char *p = expr;
	int n = 0;

	while (*(p += strspn(p, BLANKS))) {
		size_t len = strcspn(p, BLANKS);
		if (n < 5 && check_field(n, p, len, err, errlen) < 0)
			return -1;
		n++;
		p += len;
	}
	if (n != 5) {
		snprintf(err, errlen, "needs 5 fields (minute hour day-of-month month day-of-week), got %d", n);
		return -1;
	}
	return 0;
}

void cron_normalise(const char *expr, struct strbuf *out)
{
	const char *p = expr;
	int n = 0;

	while (*(p += strspn(p, BLANKS))) {
		size_t len = strcspn(p, BLANKS);
		if (n++)
			strbuf_addch(out, ' ');
		strbuf_add(out, p, len);
		p += len;
	}
}
