/* Time zones read from the system's TZif files (RFC 8536), without the process-wide TZ.
 *
 * localtime()/mktime() work in the zone that the environment variable TZ names, so computing a
 * plan's schedule in its own zone meant setenv("TZ") around each call: a race in any process
 * with threads, and a surprise for any other code that formats a time meanwhile. A time_zone is
 * a value: load it once, ask it for the local time of an instant or the instant of a local
 * time. Times after a file's last transition follow its footer rule (the POSIX TZ string), so
 * "slim" files and years past 2037 come out right. */
#ifndef STOWAGE_TIME_ZONE_H
#define STOWAGE_TIME_ZONE_H

#include <stddef.h>
#include <time.h>

struct time_zone;

/* "UTC", or a name below /usr/share/zoneinfo ("Europe/Paris"). NULL with err naming why. */
struct time_zone *time_zone_load(const char *name, char *err, size_t errlen);
void time_zone_free(struct time_zone *z);

/* The local time of t in z (tm_isdst set; tm_yday unset), its UTC offset in seconds east and
 * its abbreviation ("CET", "+0530"), which abbr (at least 16 bytes) receives. */
void time_zone_local(const struct time_zone *z, time_t t, struct tm *tm, long *utoff, char *abbr);

/* The instant of a local time (fields normalised as by mktime: tm_mday 32 is next month's 1st).
 * A local time that happens twice is its first instant; one skipped by a change of offset is
 * read with the offset before the change (02:30 on a spring-forward night is 03:30). */
time_t time_zone_instant(const struct time_zone *z, const struct tm *local);

#endif
