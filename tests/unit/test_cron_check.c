/* cron_check: what a plan's cron field accepts, and the words of its refusals. */
#include "../../src/web/cron_check.h"
#include "check.h"

#include <stdlib.h>

static int valid(const char *expr)
{
	char err[200];
	return cron_check(expr, err, sizeof err) == 0;
}

static const char *why(const char *expr)
{
	static char err[200];
	err[0] = '\0';
	return cron_check(expr, err, sizeof err) == 0 ? "(valid)" : err;
}

static void test_accepts(void)
{
	CHECK(valid("* * * * *"));
	CHECK(valid("0 2 * * *"));
	CHECK(valid("*/15 0-6,22-23 1,15 */2 1-5"));
	CHECK(valid("59 23 31 12 7"));
	CHECK(valid("  5\t4 * *   0  "));
	CHECK(valid("0-59/5 * * * *"));
}

static void test_refuses_in_words(void)
{
	CHECK_STREQ(why("* * * *"), "needs 5 fields (minute hour day-of-month month day-of-week), got 4");
	CHECK_STREQ(why("* * * * * *"), "needs 5 fields (minute hour day-of-month month day-of-week), got 6");
	CHECK_STREQ(why(""), "needs 5 fields (minute hour day-of-month month day-of-week), got 0");
	CHECK_STREQ(why("0 25 * * *"), "hour: 25 is out of range 0-23");
	CHECK_STREQ(why("60 * * * *"), "minute: 60 is out of range 0-59");
	CHECK_STREQ(why("* * 0 * *"), "day of month: 0 is out of range 1-31");
	CHECK_STREQ(why("* * * 13 *"), "month: 13 is out of range 1-12");
	CHECK_STREQ(why("* * * * 8"), "day of week: 8 is out of range 0-7");
	CHECK_STREQ(why("* 5-3 * * *"), "hour: the range 5-3 ends before it starts");
	CHECK_STREQ(why("*/0 * * * *"), "minute: in */0 the step must be a number from 1 to 59");
	CHECK_STREQ(why("1,,2 * * * *"), "minute: \"1,,2\" has an empty list item");
	CHECK_STREQ(why("@daily * * * *"), "minute: \"@daily\" is not *, a number, a range a-b or a step */n");
	CHECK_STREQ(why("* * * jan *"), "month: \"jan\" is not *, a number, a range a-b or a step */n");
	CHECK_STREQ(why("-1 * * * *"), "minute: \"-1\" is not *, a number, a range a-b or a step */n");
	CHECK_STREQ(why("99999 * * * *"), "minute: \"99999\" is not *, a number, a range a-b or a step */n");
}

static void test_normalise(void)
{
	struct strbuf sb = STRBUF_INIT;
	cron_normalise("  5\t4 *  * 0 ", &sb);
	CHECK_STREQ(sb.buf, "5 4 * * 0");
	strbuf_release(&sb);
}

int main(void)
{
	RUN(test_accepts);
	RUN(test_refuses_in_words);
	RUN(test_normalise);
	return check_done();
}
