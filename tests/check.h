/* A small TAP test harness: one "ok"/"not ok" line per test case.
 *
 *   static void test_something(void) { CHECK(1 + 1 == 2); CHECK_STREQ(a, "x"); }
 *   int main(void) { RUN(test_something); return check_done(); }
 */
#ifndef STOWAGE_CHECK_H
#define STOWAGE_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_cases, check_case_failed, check_failed_cases;

#define CHECK(cond) do { \
	if (!(cond)) { \
		printf("# %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		check_case_failed = 1; \
	} \
} while (0)

#define CHECK_STREQ(got, want) do { \
	const char *check_g_ = (got), *check_w_ = (want); \
	if (!check_g_ || !check_w_ || strcmp(check_g_, check_w_) != 0) { \
		printf("# %s:%d: %s\n#   got:  \"%s\"\n#   want: \"%s\"\n", __FILE__, __LINE__, #got, \
		       check_g_ ? check_g_ : "(null)", check_w_ ? check_w_ : "(null)"); \
		check_case_failed = 1; \
	} \
} while (0)

#define CHECK_INTEQ(got, want) do { \
	long long check_g_ = (long long)(got), check_w_ = (long long)(want); \
	if (check_g_ != check_w_) { \
		printf("# %s:%d: %s is %lld, want %lld\n", __FILE__, __LINE__, #got, check_g_, check_w_); \
		check_case_failed = 1; \
	} \
} while (0)

#define RUN(fn) do { \
	check_case_failed = 0; \
	fn(); \
	check_cases++; \
	if (check_case_failed) \
		check_failed_cases++; \
	printf("%s %d - %s\n", check_case_failed ? "not ok" : "ok", check_cases, #fn); \
	fflush(stdout); \
} while (0)

static inline int check_done(void)
{
	printf("1..%d\n", check_cases);
	return check_failed_cases ? 1 : 0;
}

#endif
