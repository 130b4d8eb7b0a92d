/* Bandwidth rules, their schedules in a time zone (DST nights included) and the token bucket
 * that follows a schedule, on a simulated clock. */
#include "rate_window.h"
#include "token_bucket.h"
#include "strbuf.h"
#include "check.h"

#include <stdlib.h>

static void test_rates(void)
{
	char err[256], out[32];
	uint64_t r;

	CHECK(rate_parse("10MB/s", &r, err, sizeof err) == 0 && r == 10000000);
	CHECK(rate_parse("10MiB/s", &r, err, sizeof err) == 0 && r == 10485760);
	CHECK(rate_parse("1.5GB", &r, err, sizeof err) == 0 && r == 1500000000);
	CHECK(rate_parse("512 KiB/s", &r, err, sizeof err) == 0 && r == 524288);
	CHECK(rate_parse("10", &r, err, sizeof err) < 0);		/* a unit is needed */
	CHECK(rate_parse("10Mb/s", &r, err, sizeof err) < 0);		/* bits are not a unit here */
	CHECK(rate_parse("10MB/h", &r, err, sizeof err) < 0);
	CHECK(rate_parse("-1MB/s", &r, err, sizeof err) < 0);
	CHECK(rate_parse("999B/s", &r, err, sizeof err) < 0);
	CHECK(strstr(err, "outside") != NULL);
	CHECK(rate_parse("101GB/s", &r, err, sizeof err) < 0);
	CHECK(rate_parse("99999999999999999999MB/s", &r, err, sizeof err) < 0);
	rate_format(10000000, out, sizeof out);
	CHECK_STREQ(out, "10MB/s");
	rate_format(2097152, out, sizeof out);
	CHECK_STREQ(out, "2MiB/s");
	rate_format(1234567, out, sizeof out);
	CHECK_STREQ(out, "1234567B/s");
}

static void test_rules(void)
{
	struct rate_rule r[RATE_RULES_MAX];
	char err[256], line[128];
	size_t n;

	CHECK(rate_rules_parse("both 10MB/s mon-fri 08:00-20:00\n\n upload 2MiB/s sat,sun 22:00-06:00\r\n",
			       r, RATE_RULES_MAX, &n, err, sizeof err) == 0);
	CHECK_INTEQ(n, 2);
	CHECK_INTEQ(r[0].directions, RATE_BOTH);
	CHECK_INTEQ(r[0].days, 0x1f);
	CHECK_INTEQ(r[0].start_min, 480);
	CHECK_INTEQ(r[0].end_min, 1200);
	CHECK_INTEQ(r[1].days, 0x60);
	rate_rule_format(&r[1], line, sizeof line);
	CHECK_STREQ(line, "upload 2MiB/s sat,sun 22:00-06:00");
	CHECK(rate_rule_parse("download 1GB/s fri-mon 00:00-24:00", &r[0], err, sizeof err) == 0);
	CHECK_INTEQ(r[0].days, 0x71);
	rate_rule_format(&r[0], line, sizeof line);
	CHECK_STREQ(line, "download 1GB/s mon,fri-sun 00:00-24:00");
	CHECK(rate_rule_parse("both 1MB/s mon,wed,thu,fri 01:00-02:00", &r[0], err, sizeof err) == 0);
	rate_rule_format(&r[0], line, sizeof line);
	CHECK_STREQ(line, "both 1MB/s mon,wed-fri 01:00-02:00");

	CHECK(rate_rules_parse("both 10MB/s daily 08:00-20:00\nsideways 1MB/s daily 08:00-09:00", r, RATE_RULES_MAX,
			       &n, err, sizeof err) < 0);
	CHECK_STREQ(err, "line 2: direction: \"sideways\" is not upload, download or both");
	CHECK(rate_rule_parse("both fast daily 08:00-20:00", &r[0], err, sizeof err) < 0);
	CHECK(strncmp(err, "rate: ", 6) == 0);
	CHECK(rate_rule_parse("both 1MB/s someday 08:00-20:00", &r[0], err, sizeof err) < 0);
	CHECK(strncmp(err, "days: ", 6) == 0);
	CHECK(rate_rule_parse("both 1MB/s mon, 08:00-20:00", &r[0], err, sizeof err) < 0);
	CHECK(rate_rule_parse("both 1MB/s daily 8:00-20:00", &r[0], err, sizeof err) < 0);
	CHECK(strncmp(err, "time: ", 6) == 0);
	CHECK(rate_rule_parse("both 1MB/s daily 24:00-08:00", &r[0], err, sizeof err) < 0);
	CHECK(rate_rule_parse("both 1MB/s daily 08:60-09:00", &r[0], err, sizeof err) < 0);
	CHECK(rate_rule_parse("both 1MB/s daily 08:00-08:00", &r[0], err, sizeof err) < 0);
	CHECK(rate_rule_parse("both 1MB/s daily 08:00-20:00 extra", &r[0], err, sizeof err) < 0);
	CHECK(rate_rule_parse("both 1MB/s daily", &r[0], err, sizeof err) < 0);
	{
		struct strbuf many = STRBUF_INIT;
		for (int i = 0; i <= RATE_RULES_MAX; i++)
			strbuf_addstr(&many, "both 1MB/s daily 08:00-09:00\n");
		CHECK(rate_rules_parse(many.buf, r, RATE_RULES_MAX, &n, err, sizeof err) < 0);
		CHECK(strstr(err, "at most 32 rules") != NULL);
		strbuf_release(&many);
	}
}

/* 2026-03-02 is a Monday. */
#define MON_2026_03_02 1772409600

static void test_schedule_utc(void)
{
	struct rate_rule r[4];
	struct rate_schedule s;
	char err[256];
	size_t n;
	struct time_zone *z = time_zone_load("UTC", err, sizeof err);

	CHECK(rate_rules_parse("both 10MB/s mon-fri 08:00-20:00\nupload 2MB/s daily 19:00-09:00\n"
			       "download 1MB/s sat 00:00-24:00", r, 4, &n, err, sizeof err) == 0);
	rate_schedule_build(r, n, RATE_UPLOAD, z, MON_2026_03_02, MON_2026_03_02 + 86400, &s);
	char *text = rate_schedule_format(&s);
	/* Sunday's 19:00-09:00 window is still open at Monday 00:00; the overlaps take the lower rate */
	CHECK_STREQ(text, "1772409600:2000000,1772442000:10000000,1772478000:2000000");
	free(text);
	CHECK_INTEQ(rate_schedule_at(&s, MON_2026_03_02 + 9 * 3600), 10000000);
	CHECK_INTEQ(rate_schedule_at(&s, MON_2026_03_02 - 1), 0);
	rate_schedule_free(&s);
	rate_schedule_build(r, n, RATE_DOWNLOAD, z, MON_2026_03_02, MON_2026_03_02 + 7 * 86400, &s);
	CHECK_INTEQ(rate_schedule_at(&s, MON_2026_03_02 + 7 * 3600), 0);	/* no window: unlimited */
	CHECK_INTEQ(rate_schedule_at(&s, MON_2026_03_02 + 8 * 3600), 10000000);
	CHECK_INTEQ(rate_schedule_at(&s, MON_2026_03_02 + 5 * 86400 + 12 * 3600), 1000000);	/* Saturday */
	CHECK_INTEQ(rate_schedule_at(&s, MON_2026_03_02 + 6 * 86400 + 12 * 3600), 0);		/* Sunday */
	CHECK(!rate_schedule_unlimited(&s));
	rate_schedule_free(&s);
	time_zone_free(z);
}

/* Europe/Paris: 2026-03-29 02:00 CET jumps to 03:00 CEST (01:00 UTC); 2026-10-25 03:00 CEST
 * falls back to 02:00 CET (01:00 UTC), so 02:00-03:00 happens twice. */
static void test_schedule_dst(void)
{
	struct rate_rule r[2];
	struct rate_schedule s;
	char err[256];
	size_t n;
	struct time_zone *z = time_zone_load("Europe/Paris", err, sizeof err);
	time_t spring = 1774742400;	/* 2026-03-29 00:00 UTC, a Sunday */
	time_t autumn = 1792886400;	/* 2026-10-25 00:00 UTC, a Sunday */

	CHECK(z != NULL);
	if (!z)
		return;
	/* a window inside the skipped hour does not happen; one that starts in it starts at 03:00
	 * CEST (the skipped 02:30 read with the offset before: 03:30) */
	CHECK(rate_rules_parse("both 1MB/s sun 02:00-03:00\nboth 2MB/s sun 02:30-04:00", r, 2, &n, err, sizeof err) == 0);
	rate_schedule_build(r, n, RATE_UPLOAD, z, spring - 86400, spring + 86400, &s);
	char *text = rate_schedule_format(&s);
	/* 03:30 CEST = 01:30 UTC, 04:00 CEST = 02:00 UTC */
	CHECK_STREQ(text, "1774656000:0,1774747800:2000000,1774749600:0");
	free(text);
	rate_schedule_free(&s);
	/* on the autumn night 02:00-03:00 begins at the first 02:00 (00:00 UTC) and ends at 03:00
	 * CET (02:00 UTC): two hours */
	CHECK(rate_rules_parse("both 1MB/s sun 02:00-03:00", r, 2, &n, err, sizeof err) == 0);
	rate_schedule_build(r, n, RATE_DOWNLOAD, z, autumn - 3600, autumn + 86400, &s);
	text = rate_schedule_format(&s);
	CHECK_STREQ(text, "1792882800:0,1792886400:1000000,1792893600:0");
	free(text);
	rate_schedule_free(&s);
	time_zone_free(z);
}

static void test_schedule_text(void)
{
	struct rate_schedule s;
	char err[256];

	CHECK(rate_schedule_parse("100:0,200:2000000,300:0", &s, err, sizeof err) == 0);
	CHECK_INTEQ(s.n, 3);
	CHECK_INTEQ(rate_schedule_at(&s, 250), 2000000);
	CHECK_INTEQ(rate_schedule_at(&s, 300), 0);
	rate_schedule_free(&s);
	CHECK(rate_schedule_parse("", &s, err, sizeof err) == 0 && s.n == 0);
	CHECK(rate_schedule_parse("200:0,100:0", &s, err, sizeof err) < 0);
	CHECK(rate_schedule_parse("100:5", &s, err, sizeof err) < 0);		/* below 1 KB/s */
	CHECK(rate_schedule_parse("100:1000,", &s, err, sizeof err) < 0);
	CHECK(rate_schedule_parse("100:-1000", &s, err, sizeof err) < 0);
	CHECK(rate_schedule_parse("100;1000", &s, err, sizeof err) < 0);
	CHECK(rate_schedule_parse("x:1000", &s, err, sizeof err) < 0);
}

/* A simulated clock: sleeping advances both clocks. */
struct fake_clock {
	double mono;
	time_t wall0;
	double slept;
};

static double fake_mono(void *ud) { return ((struct fake_clock *)ud)->mono; }
static time_t fake_wall(void *ud) { struct fake_clock *c = ud; return c->wall0 + (time_t)c->mono; }
static void fake_sleep(double s, void *ud) { struct fake_clock *c = ud; c->mono += s; c->slept += s; }

static void fake_bucket(struct token_bucket *b, const struct rate_schedule *s, struct fake_clock *c)
{
	token_bucket_init(b, s);
	b->mono = fake_mono;
	b->wall = fake_wall;
	b->sleep = fake_sleep;
	b->ud = c;
}

static uint64_t seen[8];
static int nseen;
static void note_rate(uint64_t bps, time_t at, void *ud) { (void)at; (void)ud; if (nseen < 8) seen[nseen++] = bps; }

static void test_token_bucket(void)
{
	struct rate_schedule s;
	struct token_bucket b;
	struct fake_clock c = { 0, 1000, 0 };
	char err[128];

	/* 2 MB/s from 1000 to 1005, unlimited from then on */
	CHECK(rate_schedule_parse("1000:2000000,1005:0", &s, err, sizeof err) == 0);
	fake_bucket(&b, &s, &c);
	b.on_rate = note_rate;
	token_bucket_take(&b, 4000000);				/* 2 s at 2 MB/s, less the burst */
	CHECK(c.mono >= 1.9 - 1e-9 && c.mono <= 2.0 + 1e-9);
	token_bucket_take(&b, 100000000);			/* 100 MB: 3 s at the limit, then free */
	CHECK(c.mono >= 4.9 && c.mono <= 5.2);
	double before = c.mono;
	token_bucket_take(&b, 1000000000);			/* unlimited: no wait at all */
	CHECK(c.mono == before);
	CHECK_INTEQ(nseen, 2);					/* told once of each rate */
	CHECK_INTEQ(seen[0], 2000000);
	CHECK_INTEQ(seen[1], 0);
	CHECK(b.waited > 4.5 && b.waited - c.slept < 1e-6 && c.slept - b.waited < 1e-6);
	token_bucket_destroy(&b);
	rate_schedule_free(&s);

	/* a window that starts mid-transfer slows what is left */
	CHECK(rate_schedule_parse("1000:0,1002:1000000", &s, err, sizeof err) == 0);
	c = (struct fake_clock){ 1.5, 1000, 0 };
	fake_bucket(&b, &s, &c);
	token_bucket_take(&b, 3000000);				/* unlimited at 1001.5: at once */
	CHECK(c.slept == 0);
	c.mono = 2.0;
	token_bucket_take(&b, 3000000);				/* 3 MB at 1 MB/s */
	CHECK(c.slept >= 2.9 - 1e-9 && c.slept <= 3.0 + 1e-9);
	/* a limit that rises mid-transfer: the rest goes faster */
	token_bucket_destroy(&b);
	rate_schedule_free(&s);
	CHECK(rate_schedule_parse("1000:1000000,1003:10000000", &s, err, sizeof err) == 0);
	c = (struct fake_clock){ 0, 1000, 0 };
	fake_bucket(&b, &s, &c);
	token_bucket_take(&b, 13000000);			/* 3 s for 3 MB, then 1 s for 10 MB */
	CHECK(c.mono >= 3.8 && c.mono <= 4.1);
	token_bucket_destroy(&b);
	rate_schedule_free(&s);
	/* no schedule at all: never waits, never reports */
	c = (struct fake_clock){ 0, 1000, 0 };
	fake_bucket(&b, &s, &c);
	b.on_rate = note_rate;
	nseen = 0;
	token_bucket_take(&b, 1000000000);
	CHECK(c.slept == 0 && nseen == 0);
	token_bucket_destroy(&b);
}

int main(void)
{
	RUN(test_rates);
	RUN(test_rules);
	RUN(test_schedule_utc);
	RUN(test_schedule_dst);
	RUN(test_schedule_text);
	RUN(test_token_bucket);
	return check_done();
}
