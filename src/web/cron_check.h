/* Five-field cron expressions as plans store them: minute hour day-of-month month day-of-week,
 * each field "*", a number, a range "a-b", a list "a,b-c", with an optional step "/n". */
#ifndef STOWAGE_CRON_CHECK_H
#define STOWAGE_CRON_CHECK_H

#include <stddef.h>

#include "strbuf.h"

/* 0 when expr is valid, else -1 with the field and the reason in err ("hour: 25 is out of
 * range 0-23"). */
int cron_check(const char *expr, char *err, size_t errlen);
/* The fields of a valid expr separated by single spaces. */
void cron_normalise(const char *expr, struct strbuf *out);

#endif
