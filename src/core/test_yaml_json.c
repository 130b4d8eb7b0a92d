#include "yaml_json.h"
#include "check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static cJSON *parse_yaml(const char *text, char *err, size_t errlen, int *rc)
{
	cJSON *v = NULL;

	*rc = yaml_json_parse(text, strlen(text), SIZE_MAX, &v, err, errlen);
	return v;
}

static void test_yaml_json_core_schema(void)
{
	char err[300] = "", *text;
	int rc;
	cJSON *v = parse_yaml("a: 1\nb: -1.5e3\nc: true\nd: ~\ne: '1'\nf: 0x1F\ng: yes\nh:\n2: two\ni: [x, \"null\"]\n",
			      err, sizeof err, &rc);

	CHECK_INTEQ(rc, 0);
	text = cJSON_PrintUnformatted(v);
	CHECK_STREQ(text, "{\"a\":1,\"b\":-1500,\"c\":true,\"d\":null,\"e\":\"1\",\"f\":31,\"g\":\"yes\",\"h\":null,"
			  "\"2\":\"two\",\"i\":[\"x\",\"null\"]}");
	free(text);
	cJSON_Delete(v);
}

static void test_yaml_json_refusals(void)
{
	char err[300] = "";
	int rc;
	cJSON *v = NULL;
	const char *big = "[a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p]";

	CHECK(parse_yaml("a: &x [1]\nb: *x\n", err, sizeof err, &rc) == NULL);
	CHECK_STREQ(err, "line 2 column 4: aliases are not allowed");
	CHECK(parse_yaml("a: 1\n---\nb: 2\n", err, sizeof err, &rc) == NULL);
	CHECK_STREQ(err, "line 2 column 1: more than one document");
	CHECK(parse_yaml("x: .inf\n", err, sizeof err, &rc) == NULL);
	CHECK_STREQ(err, "line 1 column 4: .inf and .nan cannot be represented");
	CHECK(parse_yaml("? [a]\n: 1\n", err, sizeof err, &rc) == NULL);
	CHECK_STREQ(err, "line 1 column 3: mapping keys must be scalars");
	CHECK(parse_yaml("a: [1\n", err, sizeof err, &rc) == NULL);
	CHECK_INTEQ(rc, -1);
	CHECK(strstr(err, "line 2 column 1:") != NULL);
	CHECK_INTEQ(yaml_json_parse(big, strlen(big), 1000, &v, err, sizeof err), -2);
	CHECK(v == NULL);
}

static void test_yaml_json_print_round_trip(void)
{
	cJSON *in = cJSON_Parse("{\"s\":\"true\",\"n\":\"12\",\"e\":\"\",\"colon\":\"a: b\",\"num\":0.1,"
				"\"big\":1e300,\"list\":[1,[],{}],\"nul\":null,\"utf\":\"h\\u00e9\"}");
	cJSON *back = NULL;
	char *text = NULL, err[300] = "";
	int rc;

	CHECK_INTEQ(yaml_json_print(in, SIZE_MAX, &text, err, sizeof err), 0);
	CHECK(text && strstr(text, "s: \"true\"\n") != NULL);
	CHECK(text && strstr(text, "utf: h\xc3\xa9\n") != NULL);
	back = parse_yaml(text ? text : "", err, sizeof err, &rc);
	CHECK_INTEQ(rc, 0);
	CHECK(back && cJSON_Compare(in, back, 1));
	free(text);
	CHECK_INTEQ(yaml_json_print(in, 16, &text, err, sizeof err), -2);
	CHECK(text == NULL);
	cJSON_Delete(back);
	cJSON_Delete(in);
}

int main(void)
{
	RUN(test_yaml_json_core_schema);
	RUN(test_yaml_json_refusals);
	RUN(test_yaml_json_print_round_trip);
	return check_done();
}
