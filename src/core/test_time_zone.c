/* time_zone against glibc's own reading of the same files (localtime_r/mktime under TZ, which
 * the test alone may switch), for zones of every shape, from 1900 to 2200. */
#include "time_zone.h"
#include "check.h"

#include <stdint.h>
#include <stdlib.h>

static const char *const zones[] = {
	"UTC", "Europe/Paris", "Europe/London", "Europe/Dublin" /* negative DST */, "America/New_York",
	"America/St_Johns" /* -03:30 */, "America/Sao_Paulo" /* DST abolished */, "Australia/Sydney" /* south */,
	"Australia/Lord_Howe" /* 30-minute DST */, "Asia/Kolkata", "Asia/Kathmandu" /* +05:45 */,
	"Pacific/Chatham", "Pacific/Kiritimati" /* +14 */, "Africa/Casablanca", "America/Santiago",
	"Asia/Shanghai", "Pacific/Apia" /* skipped a whole day */,
};

static void use_tz(const char *name)
{
	setenv("TZ", name, 1);
	tzset();
}

/* A reproducible spread of instants: xorshift over 1900..2200. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static time_t some_instant(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (time_t)(-2208988800LL + (int64_t)(rng % 9467280000ULL));	/* 1900-01-01 + 300 years */
}

static void test_local_time_matches_glibc(void)
{
	for (size_t i = 0; i < sizeof zones / sizeof *zones; i++) {
		char err[200], abbr[16];
		struct time_zone *z = time_zone_load(zones[i], err, sizeof err);
		int bad = 0;
		CHECK(z != NULL);
		if (!z) {
			printf("# %s: %s\n", zones[i], err);
			continue;
		}
		use_tz(zones[i]);
		for (int n = 0; n < 20000 && bad < 3; n++) {
			time_t t = some_instant();
			struct tm got, want;
			long off;
			time_zone_local(z, t, &got, &off, abbr);
			localtime_r(&t, &want);
			if (got.tm_year != want.tm_year || got.tm_mon != want.tm_mon || got.tm_mday != want.tm_mday ||
			    got.tm_hour != want.tm_hour || got.tm_min != want.tm_min || got.tm_sec != want.tm_sec ||
			    got.tm_wday != want.tm_wday || got.tm_isdst != want.tm_isdst || off != want.tm_gmtoff ||
			    strcmp(abbr, want.tm_zone) != 0) {
				printf("# %s at %lld: got %04d-%02d-%02d %02d:%02d:%02d %+ld %s dst %d, glibc %04d-%02d-%02d "
				       "%02d:%02d:%02d %+ld %s dst %d\n", zones[i], (long long)t, got.tm_year + 1900,
				       got.tm_mon + 1, got.tm_mday, got.tm_hour, got.tm_min, got.tm_sec, off, abbr,
				       got.tm_isdst, want.tm_year + 1900, want.tm_mon + 1, want.tm_mday, want.tm_hour,
				       want.tm_min, want.tm_sec, want.tm_gmtoff, want.tm_zone, want.tm_isdst);
				bad++;
			}
		}
		CHECK(bad == 0);
		time_zone_free(z);
	}
	unsetenv("TZ");
	tzset();
}

/* Each instant's own local time maps back to it, unless that local time happens twice and the
 * instant is its second occurrence (then to the first, an offset change earlier). */
static void test_instant_of_local_time_round_trips(void)
{
	for (size_t i = 0; i < sizeof zones / sizeof *zones; i++) {
		char err[200];
		struct time_zone *z = time_zone_load(zones[i], err, sizeof err);
		int bad = 0;
		if (!z)
			continue;
		for (int n = 0; n < 20000 && bad < 3; n++) {
			time_t t = some_instant(), back;
			struct tm local;
			long off, off_back;
			time_zone_local(z, t, &local, &off, NULL);
			back = time_zone_instant(z, &local);
			if (back != t) {
				struct tm again;
				time_zone_local(z, back, &again, &off_back, NULL);
				if (back > t || again.tm_hour != local.tm_hour || again.tm_min != local.tm_min ||
				    again.tm_mday != local.tm_mday) {
					printf("# %s: %lld came back as %lld\n", zones[i], (long long)t, (long long)back);
					bad++;
				}
			}
		}
		CHECK(bad == 0);
		time_zone_free(z);
	}
}

static time_t at(const struct time_zone *z, int y, int mon, int d, int h, int min)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d, .tm_hour = h, .tm_min = min };
	return time_zone_instant(z, &tm);
}

static void test_gaps_overlaps_and_normalising(void)
{
	char err[200];
	struct time_zone *paris = time_zone_load("Europe/Paris", err, sizeof err);
	struct time_zone *sydney = time_zone_load("Australia/Sydney", err, sizeof err);

	/* 2027-03-28 02:30 does not exist in Paris: read as 01:30 UTC (03:30 CEST) */
	CHECK_INTEQ(at(paris, 2027, 3, 28, 2, 30), 1806197400);
	/* 2027-10-31 02:30 happens twice: the first, 00:30 UTC */
	CHECK_INTEQ(at(paris, 2027, 10, 31, 2, 30), 1824942600);
	/* month 13 day 32 is 2028-02-01 */
	CHECK_INTEQ(at(paris, 2027, 13, 32, 0, 0), at(paris, 2028, 2, 1, 0, 0));
	/* the footer's rule, far beyond the file's transitions: summer time in Sydney's January 2150 */
	struct tm tm;
	long off;
	char abbr[16];
	time_zone_local(sydney, at(sydney, 2150, 1, 15, 12, 0), &tm, &off, abbr);
	CHECK_INTEQ(off, 11 * 3600);
	CHECK_STREQ(abbr, "AEDT");
	CHECK_INTEQ(tm.tm_hour, 12);
	time_zone_free(paris);
	time_zone_free(sydney);
}

static void test_names_are_checked(void)
{
	char err[200] = "";

	CHECK(time_zone_load("../../etc/passwd", err, sizeof err) == NULL);
	CHECK_STREQ(err, "\"../../etc/passwd\" is not a time zone name (Europe/Paris, Asia/Shanghai, UTC)");
	CHECK(time_zone_load("/etc/localtime", err, sizeof err) == NULL);
	CHECK(time_zone_load("Mars/Olympus_Mons", err, sizeof err) == NULL);
	CHECK_STREQ(err, "\"Mars/Olympus_Mons\" is not a known time zone (Europe/Paris, Asia/Shanghai, UTC)");
	CHECK(time_zone_load("zone.tab", err, sizeof err) == NULL);	/* a file, not TZif */
	CHECK(time_zone_load("", err, sizeof err) == NULL);
}

int main(void)
{
	RUN(test_local_time_matches_glibc);
	RUN(test_instant_of_local_time_round_trips);
	RUN(test_gaps_overlaps_and_normalising);
	RUN(test_names_are_checked);
	return check_done();
}
