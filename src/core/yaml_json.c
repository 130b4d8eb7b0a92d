#include "yaml_json.h"
#include "strbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* What one cJSON node costs, malloc overhead included. */
#define YAML_JSON_NODE_COST (sizeof(cJSON) + 32)
#define YAML_JSON_MAX_EXACT 9007199254740992.0	/* 2^53: doubles hold every integer up to it */

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
	cJSON *stack[YAML_JSON_MAX_DEPTH];
	char *keys[YAML_JSON_MAX_DEPTH];	/* pending mapping key per level */
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
		if (b->used + YAML_JSON_NODE_COST + ev->data.scalar.length > b->budget)
			return -2;
		b->used += YAML_JSON_NODE_COST + ev->data.scalar.length;
		item = yaml_scalar(b, ev);
		return item ? build_attach(b, ev, item) : -1;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (b->depth >= YAML_JSON_MAX_DEPTH)
			return build_fail(b, ev, "nesting deeper than 64 levels");
		if (b->used + YAML_JSON_NODE_COST > b->budget)
			return -2;
		b->used += YAML_JSON_NODE_COST;
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

int yaml_json_parse(const char *text, size_t len, size_t budget, cJSON **out, char *err,
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
	for (int d = 0; d < YAML_JSON_MAX_DEPTH; d++)
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
	if (d == floor(d) && fabs(d) <= YAML_JSON_MAX_EXACT) {
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

	if (depth > YAML_JSON_MAX_DEPTH)
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

int yaml_json_print(const cJSON *v, size_t limit, char **out, char *err, size_t errlen)
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
