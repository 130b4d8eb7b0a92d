#include "strbuf.h"
#include "check.h"

#include <stdlib.h>

static void test_strbuf_grows_and_formats(void)
{
	struct strbuf sb = STRBUF_INIT;

	for (int i = 0; i < 1000; i++)
		strbuf_addch(&sb, 'x');
	CHECK_INTEQ(sb.len, 1000);
	strbuf_reset(&sb);
	strbuf_addf(&sb, "%s=%d", "n", 42);
	CHECK_STREQ(sb.buf, "n=42");
	char *s = strbuf_take(&sb);
	CHECK_STREQ(s, "n=42");
	CHECK(sb.buf == NULL && sb.len == 0);
	free(s);
}

static void test_strbuf_take_of_empty_is_empty_string(void)
{
	struct strbuf sb = STRBUF_INIT;
	char *s = strbuf_take(&sb);

	CHECK_STREQ(s, "");
	free(s);
}

static void test_strbuf_binary_data(void)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_add(&sb, "a\0b", 3);
	CHECK_INTEQ(sb.len, 3);
	CHECK(sb.buf[1] == '\0' && sb.buf[2] == 'b' && sb.buf[3] == '\0');
	strbuf_release(&sb);
}

int main(void)
{
	RUN(test_strbuf_grows_and_formats);
	RUN(test_strbuf_take_of_empty_is_empty_string);
	RUN(test_strbuf_binary_data);
	return check_done();
}
