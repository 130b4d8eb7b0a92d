/* The command-line client's pieces that need no server: its config file, and what it prints
 * of a server's answers. */
#include "cli.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_config_parse(void)
{
	struct cli_config c = { 0 };
	char err[256];
	const char *text = "# comment\n\n url = https://s.example \ntoken= stw_abc\r\n";

	CHECK_INTEQ(cli_config_parse(text, strlen(text), &c, err, sizeof err), 0);
	CHECK_STREQ(c.url, "https://s.example");
	CHECK_STREQ(c.token, "stw_abc");
	cli_config_free(&c);
	CHECK_INTEQ(cli_config_parse("colour = blue\n", 14, &c, err, sizeof err), -1);
	CHECK(strstr(err, "line 1: unknown key") != NULL);
	CHECK_INTEQ(cli_config_parse("url\n", 4, &c, err, sizeof err), -1);
	CHECK(strstr(err, "line 1") != NULL);
	cli_config_free(&c);
	CHECK_INTEQ(cli_config_parse("url = a\0b\n", 10, &c, err, sizeof err), -1);
	cli_config_free(&c);
}

static void test_config_saved_owner_only_and_refused_when_readable(void)
{
	char dir[] = "/tmp/stowage-cli-test-XXXXXX", path[256], err[256];
	struct cli_config c = { xstrdup("https://s.example"), xstrdup("stw_secret") }, back = { 0 };
	struct stat st;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/nested/stowage/config", dir);
	CHECK_INTEQ(cli_config_save(path, &c, err, sizeof err), 0);
	CHECK_INTEQ(stat(path, &st), 0);
	CHECK_INTEQ(st.st_mode & 0777, 0600);
	CHECK_INTEQ(cli_config_load(path, &back, err, sizeof err), 0);
	CHECK_STREQ(back.token, "stw_secret");
	cli_config_free(&back);
	CHECK_INTEQ(chmod(path, 0644), 0);
	CHECK_INTEQ(cli_config_load(path, &back, err, sizeof err), -1);
	CHECK(strstr(err, "0600") != NULL);
	cli_config_free(&back);
	unlink(path);
	/* a missing file is not an error: not logged in yet */
	CHECK_INTEQ(cli_config_load(path, &back, err, sizeof err), 0);
	CHECK(back.url == NULL && back.token == NULL);
	cli_config_free(&c);
	snprintf(path, sizeof path, "rm -rf %s", dir);
	CHECK_INTEQ(system(path), 0);
}

static void test_terminal_escaping(void)
{
	struct strbuf out = STRBUF_INIT;

	cli_escape_terminal(&out, "ok\x1b[2Jname\nforged\x7f\xc2\x9b" "1m\xff caf\xc3\xa9", 100);
	CHECK_STREQ(out.buf, "ok\\x1b[2Jname\\nforged\\x7f\\xc2\\x9b1m\\xff caf\xc3\xa9");
	strbuf_reset(&out);
	cli_escape_terminal(&out, "abcdefgh", 3);
	CHECK_STREQ(out.buf, "abc…");
	strbuf_release(&out);
}

static void test_cells(void)
{
	cJSON *item = cJSON_Parse("{\"id\": 42, \"pct\": 37.5, \"ok\": true, \"name\": \"a\\u001b]0;x\", \"big\": 1e300}");
	char *s;

	CHECK_STREQ(s = cli_cell_text(item, "id"), "42");
	free(s);
	CHECK_STREQ(s = cli_cell_text(item, "pct"), "37.5");
	free(s);
	CHECK_STREQ(s = cli_cell_text(item, "ok"), "true");
	free(s);
	CHECK_STREQ(s = cli_cell_text(item, "name"), "a\\x1b]0;x");
	free(s);
	CHECK_STREQ(s = cli_cell_text(item, "missing"), "");
	free(s);
	CHECK_STREQ(s = cli_cell_text(item, "big"), "1e+300");
	free(s);
	cJSON_Delete(item);
}

static void test_table_aligns_columns(void)
{
	static const struct cli_column cols[] = { { "ID", "id" }, { "NAME", "name" }, { "STATE", "state" } };
	cJSON *items = cJSON_Parse("[{\"id\": 1, \"name\": \"nightly\", \"state\": \"succeeded\"}, 7,"
				   " {\"id\": 10, \"name\": \"é\", \"state\": \"failed\"}]");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cli_table_print(f, items, cols, 3);
	fclose(f);
	CHECK_STREQ(buf, "ID   NAME      STATE\n"
			 "1    nightly   succeeded\n"
			 "10   é         failed\n");
	free(buf);
	cJSON_Delete(items);
}

int main(void)
{
	RUN(test_config_parse);
	RUN(test_config_saved_owner_only_and_refused_when_readable);
	RUN(test_terminal_escaping);
	RUN(test_cells);
	RUN(test_table_aligns_columns);
	return check_done();
}
