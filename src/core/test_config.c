#include "config.h"
#include "check.h"

static void test_config_parses_keys_and_comments(void)
{
	struct config cfg;
	char err[256] = "";
	long n = 0;

	CHECK_INTEQ(config_parse(&cfg, "# demo\n database_url = dbname=x host=/tmp \n\nweb_workers=4\n", "t", err, sizeof err), 0);
	CHECK_STREQ(config_get(&cfg, "database_url", NULL), "dbname=x host=/tmp");
	CHECK_INTEQ(config_get_int(&cfg, "web_workers", 2, 1, 64, &n, err, sizeof err), 0);
	CHECK_INTEQ(n, 4);
	CHECK_STREQ(config_get(&cfg, "static_dir", "def"), "def");
	config_free(&cfg);
}

static void test_config_rejects_unknown_repeated_and_malformed(void)
{
	struct config cfg;
	char err[256] = "";

	CHECK_INTEQ(config_parse(&cfg, "databse_url = x\n", "f.conf", err, sizeof err), -1);
	CHECK_STREQ(err, "f.conf:1: unknown key \"databse_url\"");
	CHECK_INTEQ(config_parse(&cfg, "web_workers=1\nweb_workers=2\n", "f.conf", err, sizeof err), -1);
	CHECK_STREQ(err, "f.conf:2: key \"web_workers\" given twice");
	CHECK_INTEQ(config_parse(&cfg, "\nno equals sign\n", "f.conf", err, sizeof err), -1);
	CHECK_STREQ(err, "f.conf:2: expected \"key = value\"");
}

static void test_config_int_range(void)
{
	struct config cfg;
	char err[256] = "";
	long n = 0;

	CHECK_INTEQ(config_parse(&cfg, "web_workers = 999\n", "t", err, sizeof err), 0);
	CHECK_INTEQ(config_get_int(&cfg, "web_workers", 2, 1, 64, &n, err, sizeof err), -1);
	CHECK_STREQ(err, "web_workers: \"999\" is not a whole number from 1 to 64");
	config_free(&cfg);
}

int main(void)
{
	RUN(test_config_parses_keys_and_comments);
	RUN(test_config_rejects_unknown_repeated_and_malformed);
	RUN(test_config_int_range);
	return check_done();
}
