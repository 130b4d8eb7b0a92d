#include "lua_convert.h"
#include "lua_sandbox.h"
#include "strbuf.h"

#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

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

/* ---- YAML -> cJSON ------------------------------------------------------------------- */

/* YAML 1.2 core schema numbers. 1 with *out set, 0 when s is not a number, -1 for inf/nan. */
static int yaml_plain_number(const char *s, size_t len, double *out)
{
	static const char *const special[] = { ".inf", ".Inf", ".INF", ".nan", ".NaN", ".NAN" };
	const char *p = s, *end = s + len;
	char buf[64];
	int digits = 0;

	if (len == 0 || len >= sizeof buf)
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
		if (strcmp(buf + (buf[0] == '+' || buf[0] == '-'), special[i]) == 0)
			return -1;
	}
	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
		char *stop;
		unsigned long long u = strtoull(buf + 2, &stop, s[1] == 'x' ? 16 : 8);

		if (*stop || buf[2] == '-' || buf[2] == '+' || buf[2] == ' ')
			return 0;
		*out = (double)u;
		return 1;
	}
	if (p < end && (*p == '-' || *p == '+'))
		p++;
	while (p < end && *p >= '0' && *p <= '9')
		p++, digits++;
	if (p < end && *p == '.') {
		p++;
		while (p < end && *p >= '0' && *p <= '9')
			p++, digits++;
	}
	if (digits == 0)
		return 0;
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '-' || *p == '+'))
			p++;
		if (p == end)
			return 0;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p != end)
		return 0;
	*out = strtod(buf, NULL);
	return isfinite(*out) ? 1 : -1;
}

static int yaml_plain_is(const char *s, const char *const *words)
{
	for (; *words; words++)
		if (strcmp(s, *words) == 0)
			return 1;
	return 0;
}

static const char *const yaml_nulls[] = { "", "~", "null", "Null", "NULL", NULL };
static const char *const yaml_trues[] = { "true", "True", "TRUE", NULL };
static const char *const yaml_falses[] = { "false", "False", "FALSE", NULL };

/* Whether a plain scalar with this text would be read back as something other than a string. */
static int yaml_plain_is_typed(const char *s, size_t len)
{
	double d;

	return yaml_plain_is(s, yaml_nulls) || yaml_plain_is(s, yaml_trues) ||
	       yaml_plain_is(s, yaml_falses) || yaml_plain_number(s, len, &d) != 0;
}

struct yaml_build {
	cJSON *stack[LUA_CONVERT_MAX_DEPTH];
	char *keys[LUA_CONVERT_MAX_DEPTH];	/* pending mapping key per level */
	int depth;
	cJSON *root;
	size_t budget, used;
	char *err;
	size_t errlen;
};

static int build_fail(struct yaml_build *b, const yaml_event_t *ev, const char *reason)
{
	snprintf(b->err, b->errlen, "line %zu column %zu: %s", ev->start_mark.line + 1,
		 ev->start_mark.column + 1, reason);
	return -1;
}

static cJSON *yaml_scalar(struct yaml_build *b, const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;
	double d;
	int num;

	if (memchr(s, '\0', len)) {
		build_fail(b, ev, "string contains a NUL byte");
		return NULL;
	}
	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || (tag && strcmp(tag, YAML_STR_TAG) == 0))
		return cJSON_CreateString(s);
	if (yaml_plain_is(s, yaml_nulls))
		return cJSON_CreateNull();
	if (yaml_plain_is(s, yaml_trues) || yaml_plain_is(s, yaml_falses))
		return cJSON_CreateBool(yaml_plain_is(s, yaml_trues));
	num = yaml_plain_number(s, len, &d);
	if (num < 0) {
		build_fail(b, ev, ".inf and .nan cannot be represented");
		return NULL;
	}
	return num ? cJSON_CreateNumber(d) : cJSON_CreateString(s);
}

/* Places item (owned) under the open container, as a key when a mapping awaits one. */
static int build_attach(struct yaml_build *b, const yaml_event_t *ev, cJSON *item)
{
	cJSON *top;
	int d = b->depth - 1;

	if (b->depth == 0) {
		b->root = item;
		return 0;
	}
	top = b->stack[d];
	if (cJSON_IsArray(top)) {
		cJSON_AddItemToArray(top, item);
		return 0;
	}
	if (!b->keys[d]) {
		if (!cJSON_IsString(item) && !cJSON_IsNumber(item) && !cJSON_IsBool(item) && !cJSON_IsNull(item)) {
			cJSON_Delete(item);
			return build_fail(b, ev, "mapping keys must be scalars");
		}
		b->keys[d] = xstrdup(cJSON_IsString(item) ? item->valuestring : (const char *)ev->data.scalar.value);
		cJSON_Delete(item);
		return 0;
	}
	cJSON_AddItemToObject(top, b->keys[d], item);
	free(b->keys[d]);
	b->keys[d] = NULL;
	return 0;
}

static int build_event(struct yaml_build *b, const yaml_event_t *ev)
{
	cJSON *item;

	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		return build_fail(b, ev, "aliases are not allowed");
	case YAML_DOCUMENT_START_EVENT:
		if (b->root)
			return build_fail(b, ev, "more than one document");
		return 0;
	case YAML_SCALAR_EVENT:
		if (b->used + CONVERT_NODE_COST + ev->data.scalar.length > b->budget)
			return -2;
		b->used += CONVERT_NODE_COST + ev->data.scalar.length;
		item = yaml_scalar(b, ev);
		return item ? build_attach(b, ev, item) : -1;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (b->depth >= LUA_CONVERT_MAX_DEPTH)
			return build_fail(b, ev, "nesting deeper than 64 levels");
		if (b->used + CONVERT_NODE_COST > b->budget)
			return -2;
		b->used += CONVERT_NODE_COST;
		item = ev->type == YAML_SEQUENCE_START_EVENT ? cJSON_CreateArray() : cJSON_CreateObject();
		if (build_attach(b, ev, item))
			return -1;
		b->stack[b->depth++] = item;
		return 0;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		b->depth--;
		return 0;
	default:
		return 0;
	}
}

int lua_convert_yaml_parse(const char *text, size_t len, size_t budget, cJSON **out, char *err,
			   size_t errlen)
{
	struct yaml_build b = { .budget = budget, .err = err, .errlen = errlen };
	yaml_parser_t parser;
	yaml_event_t ev;
	int rc = 0, done = 0;

	*out = NULL;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (rc == 0 && !done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			snprintf(err, errlen, "line %zu column %zu: %s", parser.problem_mark.line + 1,
				 parser.problem_mark.column + 1, parser.problem ? parser.problem : "invalid YAML");
			rc = -1;
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		rc = build_event(&b, &ev);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	if (rc == -2)
		snprintf(err, errlen, "data exceeds the memory left (%zu bytes)", budget);
	for (int d = 0; d < LUA_CONVERT_MAX_DEPTH; d++)
		free(b.keys[d]);
	/* The containers are all reachable from the root, even when parsing stopped half-way. */
	if (rc) {
		cJSON_Delete(b.root);
		return rc;
	}
	*out = b.root ? b.root : cJSON_CreateNull();
	return 0;
}

/* ---- cJSON -> YAML ------------------------------------------------------------------- */

struct yaml_sink {
	struct strbuf sb;
	size_t limit;
	int over;
};

static int yaml_sink_write(void *data, unsigned char *buf, size_t size)
{
	struct yaml_sink *sink = data;

	if (size > sink->limit - sink->sb.len) {
		sink->over = 1;
		return 0;
	}
	strbuf_add(&sink->sb, buf, size);
	return 1;
}

/* The shortest text that reads back as the same double. */
static void format_number(double d, char *buf, size_t len)
{
	if (d == floor(d) && fabs(d) <= CONVERT_MAX_EXACT) {
		snprintf(buf, len, "%.0f", d);
		return;
	}
	snprintf(buf, len, "%.15g", d);
	if (strtod(buf, NULL) != d)
		snprintf(buf, len, "%.17g", d);
}

static int emit_scalar(yaml_emitter_t *e, const char *s, int quote)
{
	yaml_event_t ev;

	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (const yaml_char_t *)s, (int)strlen(s), 1, 1,
					  quote ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE))
		return 0;
	return yaml_emitter_emit(e, &ev);
}

static int emit_string(yaml_emitter_t *e, const char *s)
{
	return emit_scalar(e, s, yaml_plain_is_typed(s, strlen(s)));
}

static int emit_node(yaml_emitter_t *e, const cJSON *v, int depth)
{
	yaml_event_t ev;
	char num[64];
	int mapping = cJSON_IsObject(v);

	if (depth > LUA_CONVERT_MAX_DEPTH)
		return 0;
	if (cJSON_IsNumber(v)) {
		if (!isfinite(v->valuedouble))
			return 0;
		format_number(v->valuedouble, num, sizeof num);
		return emit_scalar(e, num, 0);
	}
	if (cJSON_IsString(v))
		return emit_string(e, v->valuestring);
	if (cJSON_IsBool(v))
		return emit_scalar(e, cJSON_IsTrue(v) ? "true" : "false", 0);
	if (!mapping && !cJSON_IsArray(v))
		return emit_scalar(e, "null", 0);
	if (mapping ? !yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_ANY_MAPPING_STYLE)
		    : !yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_ANY_SEQUENCE_STYLE))
		return 0;
	if (!yaml_emitter_emit(e, &ev))
		return 0;
	for (const cJSON *c = v->child; c; c = c->next)
		if ((mapping && !emit_string(e, c->string)) || !emit_node(e, c, depth + 1))
			return 0;
	if (mapping)
		yaml_mapping_end_event_initialize(&ev);
	else
		yaml_sequence_end_event_initialize(&ev);
	return yaml_emitter_emit(e, &ev);
}

static int emit_document(yaml_emitter_t *e, const cJSON *v)
{
	yaml_event_t ev;

	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	if (!yaml_emitter_emit(e, &ev))
		return 0;
	yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
	if (!yaml_emitter_emit(e, &ev) || !emit_node(e, v, 0))
		return 0;
	yaml_document_end_event_initialize(&ev, 1);
	if (!yaml_emitter_emit(e, &ev))
		return 0;
	yaml_stream_end_event_initialize(&ev);
	return yaml_emitter_emit(e, &ev) && yaml_emitter_flush(e);
}

int lua_convert_yaml_print(const cJSON *v, size_t limit, char **out, char *err, size_t errlen)
{
	struct yaml_sink sink = { STRBUF_INIT, limit, 0 };
	yaml_emitter_t e;
	int ok;

	*out = NULL;
	yaml_emitter_initialize(&e);
	yaml_emitter_set_output(&e, yaml_sink_write, &sink);
	yaml_emitter_set_unicode(&e, 1);
	yaml_emitter_set_width(&e, -1);
	ok = emit_document(&e, v);
	if (!ok)
		snprintf(err, errlen, "%s", sink.over ? "text exceeds the memory left"
				      : e.problem ? e.problem : "value cannot be written as YAML");
	yaml_emitter_delete(&e);
	if (!ok) {
		strbuf_release(&sink.sb);
		return sink.over ? -2 : -1;
	}
	*out = strbuf_take(&sink.sb);
	return 0;
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
		rc = lua_convert_yaml_print(g->tree, lua_sandbox_remaining_memory(L), &g->text, err, sizeof err);
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
	rc = lua_convert_yaml_parse(s, len, lua_sandbox_remaining_memory(L), &g->tree, err, sizeof err);
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
