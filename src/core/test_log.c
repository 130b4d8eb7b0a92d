#include "log.h"
#include "check.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void test_escape_controls(void)
{
	char out[256];

	CHECK_INTEQ((int)log_escape("plain words", out, sizeof out), 11);
	CHECK_STREQ(out, "plain words");
	log_escape("a\nstowage-runner[1]: error: forged", out, sizeof out);
	CHECK_STREQ(out, "a\\nstowage-runner[1]: error: forged");
	log_escape("\r\t\x1b[31mred\x7f\x01", out, sizeof out);
	CHECK_STREQ(out, "\\r\\t\\x1b[31mred\\x7f\\x01");
	/* U+009B (CSI) as UTF-8 is escaped, U+00E9 and U+2028's neighbours are text */
	log_escape("\xc2\x9b" "2J caf\xc3\xa9", out, sizeof out);
	CHECK_STREQ(out, "\\xc2\\x9b2J caf\xc3\xa9");
}

static void test_escape_is_cut_on_a_boundary(void)
{
	char out[6];

	CHECK_INTEQ((int)log_escape("ab\x1b" "cd", out, sizeof out), 2);
	CHECK_STREQ(out, "ab");
	CHECK_INTEQ((int)log_escape("abcdefgh", out, sizeof out), 5);
	CHECK_STREQ(out, "abcde");
}

/* What reaches stderr: one line, whatever the argument held. */
static void test_log_line_is_one_line(void)
{
	FILE *tmp = tmpfile();
	int saved = dup(2);
	char buf[512] = "";
	size_t n;

	CHECK(tmp != NULL);
	fflush(stderr);
	dup2(fileno(tmp), 2);
	log_set_program("test");
	log_warn("cluster said %s", "no\nstowage-runner[1]: info: job 7 succeeded\x1b]0;pwned\x07");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	n = fread(buf, 1, sizeof buf - 1, tmp);
	buf[n] = '\0';
	fclose(tmp);
	CHECK(strchr(buf, '\n') == buf + n - 1);
	CHECK(strstr(buf, ": warning: cluster said no\\nstowage-runner[1]: info: job 7 succeeded\\x1b]0;pwned\\x07\n") != NULL);
}

int main(void)
{
	RUN(test_escape_controls);
	RUN(test_escape_is_cut_on_a_boundary);
	RUN(test_log_line_is_one_line);
	return check_done();
}
