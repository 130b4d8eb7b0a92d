#include "lua_convert.h"
#include "check.h"
#include "strbuf.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>

/* A plain state with json and yaml: conversion does not depend on the sandbox. */
static lua_State *new_state(void)
{
	lua_State *L = luaL_newstate();

	luaL_openlibs(L);
	lua_convert_open(L);
	return L;
}

/* Evaluates expr and converts its value; returns the rc of lua_convert_to_cjson. */
static int convert_expr(lua_State *L, const char *expr, size_t budget, cJSON **out, char *err,
			size_t errlen)
{
	char code[512];
	int rc;

	snprintf(code, sizeof code, "return %s", expr);
	if (luaL_dostring(L, code) != LUA_OK) {
		snprintf(err, errlen, "%s", lua_tostring(L, -1));
		lua_pop(L, 1);
		return -99;
	}
	rc = lua_convert_to_cjson(L, -1, budget, out, err, errlen);
	lua_pop(L, 1);
	return rc;
}

static void check_encodes(lua_State *L, const char *expr, const char *want)
{
	char err[300] = "";
	cJSON *v = NULL;
	char *text;

	CHECK_INTEQ(convert_expr(L, expr, SIZE_MAX, &v, err, sizeof err), 0);
	if (!v) {
		printf("# %s: %s\n", expr, err);
		check_case_failed = 1;
		return;
	}
	text = cJSON_PrintUnformatted(v);
	CHECK_STREQ(text, want);
	free(text);
	cJSON_Delete(v);
}

static void check_refused(lua_State *L, const char *expr, int want_rc, const char *want_err)
{
	char err[300] = "";
	cJSON *v = NULL;

	CHECK_INTEQ(convert_expr(L, expr, 4096, &v, err, sizeof err), want_rc);
	CHECK(v == NULL);
	CHECK_STREQ(err, want_err);
}

static void test_lua_convert_table_rules(void)
{
	lua_State *L = new_state();

	check_encodes(L, "{1, 'two', true, json.null}", "[1,\"two\",true,null]");
	check_encodes(L, "{}", "{}");
	check_encodes(L, "json.array()", "[]");
	check_encodes(L, "json.array({nil, 2})", "[null,2]");
	check_encodes(L, "{a = {b = {1.5}}}", "{\"a\":{\"b\":[1.5]}}");
	check_encodes(L, "-999999999999999", "-999999999999999");
	check_encodes(L, "nil", "null");
	lua_close(L);
}

static void test_lua_convert_refuses_with_path(void)
{
	lua_State *L = new_state();

	check_refused(L, "{a = {1, 2, print}}", -1, "a function value cannot be represented at $.a[3]");
	check_refused(L, "{x = 0/0}", -1, "NaN and infinity cannot be represented at $.x");
	check_refused(L, "{x = math.huge}", -1, "NaN and infinity cannot be represented at $.x");
	check_refused(L, "{1, 2, k = 3}", -1, "table mixes array and object keys at $");
	check_refused(L, "{[1] = 1, [3] = 3}", -1, "array has holes (keys are not 1..n) at $");
	check_refused(L, "{[1.5] = 1}", -1, "table key of type number (keys are strings, or 1..n for an array) at $");
	check_refused(L, "{s = 'a\\0b'}", -1, "string contains a NUL byte at $.s");
	check_refused(L, "{s = '\\xff'}", -1, "string is not valid UTF-8 at $.s");
	check_refused(L, "{s = '\\xed\\xa0\\x80'}", -1, "string is not valid UTF-8 at $.s");
	check_refused(L, "{n = 1 << 60}", -1, "integer 1152921504606846976 is beyond 10^15, which JSON numbers here cannot hold exactly at $.n");
	check_refused(L, "(function() local t = {} t.self = {t} return t end)()", -1, "table contains itself at $.self[1]");
	check_refused(L, "string.rep('x', 5000)", -2, "data exceeds the memory left (4096 bytes)");
	lua_close(L);
}

static void test_lua_convert_depth_bounded(void)
{
	lua_State *L = new_state();
	char err[300] = "";
	cJSON *v = NULL;
	struct strbuf deep = STRBUF_INIT;

	CHECK_INTEQ(convert_expr(L, "(function() local t = {} for i = 1, 100 do t = {t} end return t end)()",
				 SIZE_MAX, &v, err, sizeof err), -1);
	CHECK(strstr(err, "nesting deeper than 64 levels") != NULL);
	for (int i = 0; i < 100; i++)
		strbuf_addch(&deep, '[');
	for (int i = 0; i < 100; i++)
		strbuf_addch(&deep, ']');
	lua_pushlstring(L, deep.buf, deep.len);
	lua_setglobal(L, "deep");
	CHECK(luaL_dostring(L, "return json.decode(deep)") != LUA_OK);
	CHECK(strstr(lua_tostring(L, -1), "data nests deeper than 64 levels") != NULL);
	strbuf_release(&deep);
	lua_close(L);
}

static void test_lua_convert_push_round_trip(void)
{
	lua_State *L = new_state();
	const char *json = "{\"name\":\"db\",\"size\":12.5,\"count\":3,\"tags\":[],\"meta\":{},\"on\":false,\"gone\":null,"
			   "\"list\":[{\"a\":1},[2,3]]}";
	cJSON *in = cJSON_Parse(json), *out = NULL;
	char err[300] = "";

	lua_convert_push_cjson(L, in);
	lua_setglobal(L, "v");
	CHECK_INTEQ(luaL_dostring(L, "assert(math.type(v.count) == 'integer' and v.gone == json.null)"), LUA_OK);
	lua_getglobal(L, "v");
	CHECK_INTEQ(lua_convert_to_cjson(L, -1, SIZE_MAX, &out, err, sizeof err), 0);
	CHECK(out && cJSON_Compare(in, out, 1));
	cJSON_Delete(in);
	cJSON_Delete(out);
	lua_close(L);
}

int main(void)
{
	RUN(test_lua_convert_table_rules);
	RUN(test_lua_convert_refuses_with_path);
	RUN(test_lua_convert_depth_bounded);
	RUN(test_lua_convert_push_round_trip);
	return check_done();
}
