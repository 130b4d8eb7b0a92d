#include "lua_convert.h"
#include "lua_sandbox.h"
#include "strbuf.h"
#include "yaml_json.h"

#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* What one cJSON node costs outside the Lua heap, malloc overhead included. */
#define CONVERT_NODE_COST (sizeof(cJSON) + 32)
#define CONVERT_MAX_EXACT 9007199254740992.0	/* 2^53: doubles hold every integer up to it */
/* cJSON prints numbers with 15 significant digits when they compare equal within an epsilon,
 * so larger integers would come out rounded: refuse them instead. */
#define CONVERT_MAX_PRINTED 1e15

/* Registry keys (their addresses): the metatable marking arrays, and the guard's metatable. */
static const char convert_array_key;
static const char convert_guard_key;

/* ---- Lua -> cJSON -------------------------------------------------------------------- */

struct convert_walk {
	lua_State *L;
	size_t budget, used;
	char *err;
	size_t errlen;
	char path[256];
	const void *visiting[LUA_CONVERT_MAX_DEPTH];
	int depth;
	int over_budget;
};

static cJSON *walk_fail(struct convert_walk *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static cJSON *walk_fail(struct convert_walk *w, const char *fmt, ...)
{
	char reason[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	snprintf(w->err, w->errlen, "%s at %s", reason, w->path);
	return NULL;
}

static int walk_charge(struct convert_walk *w, size_t n)
{
	if (n > w->budget - w->used) {
		w->over_budget = 1;
		snprintf(w->err, w->errlen, "data exceeds the memory left (%zu bytes)", w->budget);
		return -1;
	}
	w->used += n;
	return 0;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned c = s[i];
		size_t n;
		unsigned long cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07, min = 0x10000;
		else
			return 0;
		if (len - i <= n)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

static int text_usable(struct convert_walk *w, const char *s, size_t len)
{
	if (memchr(s, '\0', len)) {
		walk_fail(w, "string contains a NUL byte");
		return 0;
	}
	if (!utf8_valid((const unsigned char *)s, len)) {
		walk_fail(w, "string is not valid UTF-8");
		return 0;
	}
	return 1;
}

static cJSON *walk_value(struct convert_walk *w, int idx);

static cJSON *walk_number(struct convert_walk *w, int idx)
{
	if (lua_isinteger(w->L, idx)) {
		lua_Integer i = lua_tointeger(w->L, idx);

		if ((double)i > CONVERT_MAX_PRINTED || (double)i < -CONVERT_MAX_PRINTED)
			return walk_fail(w, "integer %lld is beyond 10^15, which JSON numbers here cannot hold exactly",
					 (long long)i);
		return cJSON_CreateNumber((double)i);
	}
	if (!isfinite(lua_tonumber(w->L, idx)))
		return walk_fail(w, "NaN and infinity cannot be represented");
	return cJSON_CreateNumber(lua_tonumber(w->L, idx));
}

static cJSON *walk_string(struct convert_walk *w, int idx)
{
	size_t len;
	const char *s = lua_tolstring(w->L, idx, &len);

	if (!text_usable(w, s, len))
		return NULL;
	/* Twice the length: the text printed from the tree is charged here too. */
	if (walk_charge(w, CONVERT_NODE_COST + 2 * len + 2))
		return NULL;
	return cJSON_CreateString(s);
}

static int table_is_marked_array(lua_State *L, int idx)
{
	int marked;

	if (!lua_getmetatable(L, idx))
		return 0;
	lua_rawgetp(L, LUA_REGISTRYINDEX, &convert_array_key);
	marked = lua_rawequal(L, -1, -2);
	lua_pop(L, 2);
	return marked;
}

/* 1 (array of *n elements), 0 (object) or -1. */
static int walk_classify(struct convert_walk *w, int idx, lua_Integer *n)
{
	lua_State *L = w->L;
	lua_Integer count = 0, strings = 0, max = 0;

	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		count++;
		if (lua_type(L, -1) == LUA_TSTRING) {
			strings++;
		} else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
			if (lua_tointeger(L, -1) > max)
				max = lua_tointeger(L, -1);
		} else {
			const char *type = luaL_typename(L, -1);

			lua_pop(L, 1);
			walk_fail(w, "table key of type %s (keys are strings, or 1..n for an array)", type);
			return -1;
		}
	}
	if (strings == count)
		return 0;
	if (strings == 0 && max == count) {
		*n = count;
		return 1;
	}
	walk_fail(w, strings ? "table mixes array and object keys" : "array has holes (keys are not 1..n)");
	return -1;
}

static cJSON *walk_array(struct convert_walk *w, int idx, lua_Integer n)
{
	size_t mark = strlen(w->path);
	cJSON *out = cJSON_CreateArray();

	for (lua_Integer i = 1; out && i <= n; i++) {
		cJSON *item;

		snprintf(w->path + mark, sizeof w->path - mark, "[%lld]", (long long)i);
		lua_rawgeti(w->L, idx, i);
		item = walk_value(w, lua_gettop(w->L));
		lua_pop(w->L, 1);
		if (!item) {
			cJSON_Delete(out);
			return NULL;
		}
		cJSON_AddItemToArray(out, item);
	}
	w->path[mark] = '\0';
	return out;
}

static cJSON *walk_object(struct convert_walk *w, int idx)
{
	lua_State *L = w->L;
	size_t mark = strlen(w->path);
	cJSON *out = cJSON_CreateObject();

	lua_pushnil(L);
	while (out && lua_next(L, idx)) {
		size_t klen;
		const char *key = lua_tolstring(L, -2, &klen);
		cJSON *item = NULL;

		snprintf(w->path + mark, sizeof w->path - mark, ".%s", key);
		if (text_usable(w, key, klen) && walk_charge(w, klen + 1) == 0)
			item = walk_value(w, lua_gettop(L));
		lua_pop(L, 1);
		if (!item) {
			lua_pop(L, 1);
			cJSON_Delete(out);
			return NULL;
		}
		cJSON_AddItemToObject(out, key, item);
	}
	w->path[mark] = '\0';
	return out;
}

static cJSON *walk_table(struct convert_walk *w, int idx)
{
	const void *self = lua_topointer(w->L, idx);
	lua_Integer n = 0;
	int kind;
	cJSON *out;

	for (int i = 0; i < w->depth; i++)
		if (w->visiting[i] == self)
			return walk_fail(w, "table contains itself");
	if (w->depth >= LUA_CONVERT_MAX_DEPTH || !lua_checkstack(w->L, 4))
		return walk_fail(w, "nesting deeper than %d levels", LUA_CONVERT_MAX_DEPTH);
	if (table_is_marked_array(w->L, idx)) {
		kind = 1;
		n = (lua_Integer)lua_rawlen(w->L, idx);
	} else {
		kind = walk_classify(w, idx, &n);
	}
	if (kind < 0 || walk_charge(w, CONVERT_NODE_COST))
		return NULL;
	w->visiting[w->depth++] = self;
	out = kind ? walk_array(w, idx, n) : walk_object(w, idx);
	w->depth--;
	return out;
}

static cJSON *walk_value(struct convert_walk *w, int idx)
{
	cJSON *out = NULL;

	switch (lua_type(w->L, idx)) {
	case LUA_TSTRING:
		return walk_string(w, idx);
	case LUA_TTABLE:
		return walk_table(w, idx);
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(w->L, idx) != NULL)
			return walk_fail(w, "a userdata value cannot be represented");
		/* json.null */
		/* fall through */
	case LUA_TNIL:
		out = cJSON_CreateNull();
		break;
	case LUA_TBOOLEAN:
		out = cJSON_CreateBool(lua_toboolean(w->L, idx));
		break;
	case LUA_TNUMBER:
		out = walk_number(w, idx);
		break;
	default:
		return walk_fail(w, "a %s value cannot be represented", luaL_typename(w->L, idx));
	}
	if (out && walk_charge(w, CONVERT_NODE_COST + 32)) {
		cJSON_Delete(out);
		return NULL;
	}
	return out;
}

int lua_convert_to_cjson(lua_State *L, int idx, size_t budget, cJSON **out, char *err,
			 size_t errlen)
{
	struct convert_walk w = { .L = L, .budget = budget, .err = err, .errlen = errlen, .path = "$" };

	*out = walk_value(&w, lua_absindex(L, idx));
	if (*out)
		return 0;
	return w.over_budget ? -2 : -1;
}

/* ---- cJSON -> Lua -------------------------------------------------------------------- */

static void push_array_metatable(lua_State *L)
{
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &convert_array_key) == LUA_TTABLE)
		return;
	lua_pop(L, 1);
	lua_createtable(L, 0, 1);
	/* Protected: getmetatable(t) answers "json.array", and no script can alter the marker. */
	lua_pushliteral(L, "json.array");
	lua_setfield(L, -2, "__metatable");
	lua_pushvalue(L, -1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &convert_array_key);
}

static void push_cjson_at(lua_State *L, const cJSON *v, int depth)
{
	lua_Integer i = 1;

	if (depth > LUA_CONVERT_MAX_DEPTH)
		luaL_error(L, "data nests deeper than %d levels", LUA_CONVERT_MAX_DEPTH);
	luaL_checkstack(L, 4, "data nests too deeply");
	if (cJSON_IsBool(v)) {
		lua_pushboolean(L, cJSON_IsTrue(v));
	} else if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;

		if (d == floor(d) && fabs(d) <= CONVERT_MAX_EXACT)
			lua_pushinteger(L, (lua_Integer)d);
		else
			lua_pushnumber(L, d);
	} else if (cJSON_IsString(v)) {
		lua_pushstring(L, v->valuestring);
	} else if (cJSON_IsArray(v)) {
		lua_newtable(L);
		for (const cJSON *c = v->child; c; c = c->next) {
			push_cjson_at(L, c, depth + 1);
			lua_rawseti(L, -2, i++);
		}
		push_array_metatable(L);
		lua_setmetatable(L, -2);
	} else if (cJSON_IsObject(v)) {
		lua_newtable(L);
		for (const cJSON *c = v->child; c; c = c->next) {
			push_cjson_at(L, c, depth + 1);
			lua_setfield(L, -2, c->string);
		}
	} else {
		lua_pushlightuserdata(L, NULL);
	}
}

void lua_convert_push_cjson(lua_State *L, const cJSON *v)
{
	push_cjson_at(L, v, 0);
}


/* ---- json and yaml for scripts ------------------------------------------------------- */

/* C-side memory of one call, freed when the call returns or raises (a to-be-closed slot). */
struct convert_guard {
	cJSON *tree;
	char *text;
};

static int convert_guard_close(lua_State *L)
{
	struct convert_guard *g = lua_touserdata(L, 1);

	cJSON_Delete(g->tree);
	free(g->text);
	g->tree = NULL;
	g->text = NULL;
	return 0;
}

static struct convert_guard *convert_guard_push(lua_State *L)
{
	struct convert_guard *g = lua_newuserdatauv(L, sizeof *g, 0);

	g->tree = NULL;
	g->text = NULL;
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &convert_guard_key) != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_createtable(L, 0, 2);
		lua_pushcfunction(L, convert_guard_close);
		lua_setfield(L, -2, "__close");
		lua_pushcfunction(L, convert_guard_close);
		lua_setfield(L, -2, "__gc");
		lua_pushvalue(L, -1);
		lua_rawsetp(L, LUA_REGISTRYINDEX, &convert_guard_key);
	}
	lua_setmetatable(L, -2);
	lua_toclose(L, -1);
	return g;
}

static int convert_fail(lua_State *L, const char *fn, int rc, const char *err)
{
	if (rc == -2)
		return lua_sandbox_memory_error(L, 0);
	return luaL_error(L, "%s: %s", fn, err);
}

/* An upper bound of the cJSON tree of a JSON text: a node per separator or opener. */
static size_t json_tree_estimate(const char *s, size_t len)
{
	size_t nodes = 1;

	for (size_t i = 0; i < len; i++)
		if (s[i] == ',' || s[i] == ':' || s[i] == '[' || s[i] == '{')
			nodes++;
	return nodes * CONVERT_NODE_COST + len;
}

static int json_encode(lua_State *L)
{
	char err[300];
	struct convert_guard *g;
	int rc;

	luaL_checkany(L, 1);
	lua_settop(L, 1);
	lua_sandbox_check_limits(L);
	g = convert_guard_push(L);
	rc = lua_convert_to_cjson(L, 1, lua_sandbox_remaining_memory(L), &g->tree, err, sizeof err);
	if (rc)
		return convert_fail(L, "json.encode", rc, err);
	g->text = cJSON_PrintUnformatted(g->tree);
	if (!g->text)
		return luaL_error(L, "json.encode: out of memory");
	lua_pushstring(L, g->text);
	return 1;
}

static int json_decode(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len), *end = NULL;
	struct convert_guard *g;

	lua_settop(L, 1);
	lua_sandbox_check_limits(L);
	if (json_tree_estimate(s, len) > lua_sandbox_remaining_memory(L))
		return lua_sandbox_memory_error(L, json_tree_estimate(s, len));
	g = convert_guard_push(L);
	g->tree = cJSON_ParseWithLengthOpts(s, len, &end, 0);
	if (!g->tree)
		return luaL_error(L, "json.decode: invalid JSON at byte %d", end ? (int)(end - s) + 1 : 1);
	while (end < s + len && strchr(" \t\r\n", *end) && *end)
		end++;
	if (end < s + len)
		return luaL_error(L, "json.decode: unexpected text after the value at byte %d", (int)(end - s) + 1);
	lua_convert_push_cjson(L, g->tree);
	return 1;
}

static int json_array(lua_State *L)
{
	if (lua_isnoneornil(L, 1)) {
		lua_settop(L, 0);
		lua_newtable(L);
	}
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	if (table_is_marked_array(L, 1))
		return 1;
	if (lua_getmetatable(L, 1))
		return luaL_error(L, "json.array: the table already has a metatable");
	push_array_metatable(L);
	lua_setmetatable(L, 1);
	return 1;
}

static int yaml_encode(lua_State *L)
{
	char err[300];
	struct convert_guard *g;
	int rc;

	luaL_checkany(L, 1);
	lua_settop(L, 1);
	lua_sandbox_check_limits(L);
	g = convert_guard_push(L);
	rc = lua_convert_to_cjson(L, 1, lua_sandbox_remaining_memory(L), &g->tree, err, sizeof err);
	if (rc == 0)
		rc = yaml_json_print(g->tree, lua_sandbox_remaining_memory(L), &g->text, err, sizeof err);
	if (rc)
		return convert_fail(L, "yaml.encode", rc, err);
	lua_pushstring(L, g->text);
	return 1;
}

static int yaml_decode(lua_State *L)
{
	char err[300];
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	struct convert_guard *g;
	int rc;

	lua_settop(L, 1);
	lua_sandbox_check_limits(L);
	g = convert_guard_push(L);
	rc = yaml_json_parse(s, len, lua_sandbox_remaining_memory(L), &g->tree, err, sizeof err);
	if (rc)
		return convert_fail(L, "yaml.decode", rc, err);
	lua_convert_push_cjson(L, g->tree);
	return 1;
}

void lua_convert_open(lua_State *L)
{
	static const luaL_Reg json_fns[] = {
		{ "encode", json_encode }, { "decode", json_decode }, { "array", json_array }, { NULL, NULL },
	};
	static const luaL_Reg yaml_fns[] = {
		{ "encode", yaml_encode }, { "decode", yaml_decode }, { NULL, NULL },
	};

	luaL_newlib(L, json_fns);
	lua_pushlightuserdata(L, NULL);
	lua_setfield(L, -2, "null");
	lua_setglobal(L, "json");
	luaL_newlib(L, yaml_fns);
	lua_setglobal(L, "yaml");
}
