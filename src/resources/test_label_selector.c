/* label_selector_check: what the Kubernetes API server accepts, and what it refuses, in words. */
#include "check.h"
#include "label_selector.h"

#include <stdlib.h>
#include <string.h>

static void ok(const char *sel, const char *canonical)
{
	char err[512] = "", *out = NULL;

	CHECK(label_selector_check(sel, &out, err, sizeof err) == 0);
	if (!out)
		printf("# refused \"%s\": %s\n", sel, err);
	CHECK_STREQ(out ? out : "", canonical);
	free(out);
}

static void bad(const char *sel, const char *words)
{
	char err[512] = "", *out = NULL;

	CHECK(label_selector_check(sel, &out, err, sizeof err) < 0);
	CHECK(out == NULL);
	if (!strstr(err, words))
		printf("# \"%s\": \"%s\" does not say \"%s\"\n", sel, err, words);
	CHECK(strstr(err, words) != NULL);
	free(out);
}

static void test_accepted(void)
{
	ok("", "");
	ok("app=web", "app=web");
	ok("  app = web ,tier!=db", "app=web,tier!=db");		/* blanks between tokens, as kubectl allows */
	ok("app==web,!legacy,release", "app=web,!legacy,release");
	ok("env in (prod, staging),tier notin(cache)", "env in (prod,staging),tier notin (cache)");
	ok("app.kubernetes.io/name=wordpress", "app.kubernetes.io/name=wordpress");
	ok("example.com/Tier_1=A.b-c", "example.com/Tier_1=A.b-c");
	ok("app=", "app=");
	ok("replicas>2,age<10", "replicas>2,age<10");
}

static void test_refused(void)
{
	bad("app=<x>", "the value \"<x>\" of key app is not a label value");
	bad("app=a/b", "the value \"a/b\" of key app is not a label value");
	bad("app=-web", "the value \"-web\" of key app is not a label value");
	bad("-app=web", "the key \"-app\" is not a label key");
	bad("my app=web", "after the key my comes");
	bad("Example.com/app=x", "has a bad prefix");
	bad("a/b/c=x", "has a bad prefix");
	bad("app=web,", "a requirement expected after the last ','");
	bad("app in (a,b", "',' or ')' expected");
	bad("app in ()", "a label value in the parentheses expected");
	bad("app=x=y", "',' between requirements expected");
	bad("!", "a label key after '!' expected");
	bad("app>x", "a whole number after '<' or '>' expected");
	bad("app=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "is not a label value");	/* 64 */
}

static void test_match(void)
{
	cJSON *labels = cJSON_Parse("{\"app\":\"shop\",\"tier\":\"web\",\"rank\":\"7\",\"example.com/team\":\"a\"}");

	CHECK_INTEQ(label_selector_match("", labels), 1);
	CHECK_INTEQ(label_selector_match("app=shop", labels), 1);
	CHECK_INTEQ(label_selector_match("app==shop, tier = web", labels), 1);
	CHECK_INTEQ(label_selector_match("app=shop,tier=db", labels), 0);
	CHECK_INTEQ(label_selector_match("app!=shop", labels), 0);
	CHECK_INTEQ(label_selector_match("missing!=x", labels), 1);	/* != matches an absent label */
	CHECK_INTEQ(label_selector_match("tier in (db, web)", labels), 1);
	CHECK_INTEQ(label_selector_match("tier in (db,cache),app=shop", labels), 0);
	CHECK_INTEQ(label_selector_match("tier notin (db,cache)", labels), 1);
	CHECK_INTEQ(label_selector_match("missing notin (x)", labels), 1);
	CHECK_INTEQ(label_selector_match("app", labels), 1);
	CHECK_INTEQ(label_selector_match("!app", labels), 0);
	CHECK_INTEQ(label_selector_match("!missing", labels), 1);
	CHECK_INTEQ(label_selector_match("rank>5,rank<8", labels), 1);
	CHECK_INTEQ(label_selector_match("rank>7", labels), 0);
	CHECK_INTEQ(label_selector_match("tier>1", labels), 0);	/* not a number: no match */
	CHECK_INTEQ(label_selector_match("example.com/team=a", labels), 1);
	CHECK_INTEQ(label_selector_match("app=", labels), 0);
	CHECK_INTEQ(label_selector_match("app=shop", NULL), 0);
	CHECK_INTEQ(label_selector_match("!app", NULL), 1);
	CHECK_INTEQ(label_selector_match("app in ()", labels), -1);
	cJSON_Delete(labels);
}

int main(void)
{
	RUN(test_accepted);
	RUN(test_refused);
	RUN(test_match);
	return check_done();
}
