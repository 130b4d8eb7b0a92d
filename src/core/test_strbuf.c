#include "strbuf.h"
#include "check.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static void test_strbuf_read_file_appends_within_its_bound(void)
{
	char path[] = "/tmp/stowage-test-strbuf-XXXXXX";
	struct strbuf sb = STRBUF_INIT;
	static char data[20000];
	int fd = mkstemp(path);

	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (char)(i * 7);
	CHECK(fd >= 0 && write(fd, data, sizeof data) == (ssize_t)sizeof data);
	close(fd);
	strbuf_addstr(&sb, "kept");
	CHECK_INTEQ(strbuf_read_file(&sb, path, SIZE_MAX), 0);
	CHECK(sb.len == 4 + sizeof data && memcmp(sb.buf + 4, data, sizeof data) == 0 && !sb.buf[sb.len]);
	strbuf_reset(&sb);
	CHECK_INTEQ(strbuf_read_file(&sb, path, sizeof data), 0);
	CHECK(sb.len == sizeof data);
	/* one byte over the bound: refused, and what the buffer held before is all it holds */
	strbuf_reset(&sb);
	strbuf_addstr(&sb, "kept");
	CHECK_INTEQ(strbuf_read_file(&sb, path, sizeof data - 1), -1);
	CHECK_INTEQ(errno, EFBIG);
	CHECK_STREQ(sb.buf, "kept");
	unlink(path);
	CHECK_INTEQ(strbuf_read_file(&sb, path, SIZE_MAX), -1);
	CHECK_INTEQ(errno, ENOENT);
	CHECK_STREQ(sb.buf, "kept");
	strbuf_release(&sb);
}

int main(void)
{
	RUN(test_strbuf_read_file_appends_within_its_bound);
	RUN(test_strbuf_grows_and_formats);
	RUN(test_strbuf_take_of_empty_is_empty_string);
	RUN(test_strbuf_binary_data);
	return check_done();
}
