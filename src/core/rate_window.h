/* Bandwidth limits by time window: the rules a cluster's "Limits" form holds, and the schedule
 * of rates the runner computes from them for a data mover run.
 *
 * A rule is one line: DIRECTION RATE DAYS START-END, for example
 *     both 10MB/s mon-fri 08:00-20:00
 *     upload 2MiB/s sat,sun 22:00-06:00
 * DIRECTION is upload, download or both; RATE a number with B, KB, MB, GB (powers of 1000) or
 * KiB, MiB, GiB (powers of 1024), "/s" optional; DAYS "daily" or day names and ranges (mon-fri,
 * sat,sun); START-END local times in the cluster's time zone, END up to 24:00, an END before
 * START runs past midnight into the next day (the window belongs to the day it starts on).
 * Outside every window the rate is unlimited; where windows overlap the lowest rate holds.
 *
 * The schedule is the rate of one direction as UTC instants: "T:BYTES_PER_SECOND,..." (0 is
 * unlimited), each step holding until the next. The runner computes it in the cluster's time
 * zone and hands it to the mover, which needs neither the rules, nor the time zone files, nor
 * the database: it looks up the rate against its own clock as it goes, so a running mover
 * follows a window that starts or ends. */
#ifndef STOWAGE_RATE_WINDOW_H
#define STOWAGE_RATE_WINDOW_H

#include "time_zone.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define RATE_RULES_MAX 32
#define RATE_MIN 1000ULL			/* 1 KB/s */
#define RATE_MAX 100000000000ULL		/* 100 GB/s */
#define RATE_SCHEDULE_STEPS_MAX 8192

enum { RATE_UPLOAD = 1, RATE_DOWNLOAD = 2, RATE_BOTH = 3 };

struct rate_rule {
	int directions;			/* RATE_UPLOAD, RATE_DOWNLOAD or RATE_BOTH */
	uint64_t bytes_per_second;
	unsigned days;			/* bit 0 Monday ... bit 6 Sunday */
	int start_min, end_min;		/* minutes after local midnight: 0..1439 and 0..1440 */
};

/* "10MB/s" -> 10000000. -1 with err saying why. */
int rate_parse(const char *s, uint64_t *bytes_per_second, char *err, size_t errlen);
/* 10000000 -> "10MB/s", 2097152 -> "2MiB/s": the shortest exact form. */
void rate_format(uint64_t bytes_per_second, char *out, size_t len);

int rate_rule_parse(const char *line, struct rate_rule *r, char *err, size_t errlen);
/* The canonical line of a rule (parses back to the same rule). */
void rate_rule_format(const struct rate_rule *r, char *out, size_t len);
/* One rule per line, blank lines skipped; err names the line: "line 2: rate: ...". */
int rate_rules_parse(const char *text, struct rate_rule *rules, size_t max, size_t *n, char *err, size_t errlen);
/* "mon-fri" for days 0x1f. */
void rate_days_format(unsigned days, char *out, size_t len);

struct rate_step {
	time_t from;
	uint64_t bytes_per_second;	/* 0: unlimited */
};

struct rate_schedule {
	struct rate_step *steps;
	size_t n;
};

/* The rate of one direction (RATE_UPLOAD or RATE_DOWNLOAD) from `from` to `until`, the rules
 * read in zone z: the first step is at `from`, the last holds after `until`. A local time a
 * change of offset skips is read as time_zone_instant does (02:30 on a spring-forward night is
 * 03:30); one that happens twice is its first instant. */
void rate_schedule_build(const struct rate_rule *rules, size_t n, int direction, const struct time_zone *z,
			 time_t from, time_t until, struct rate_schedule *out);
/* 1 when the schedule never limits (then no limiter is needed at all). */
int rate_schedule_unlimited(const struct rate_schedule *s);
char *rate_schedule_format(const struct rate_schedule *s);
int rate_schedule_parse(const char *text, struct rate_schedule *out, char *err, size_t errlen);
/* The rate at t: 0 (unlimited) before the first step. */
uint64_t rate_schedule_at(const struct rate_schedule *s, time_t t);
void rate_schedule_free(struct rate_schedule *s);

#endif
