#include "form.h"
#include "strbuf.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *format(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *s;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	s = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

static int is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static int valid_dns_label(const char *s, size_t len)
{
	if (len == 0 || len > 63 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1]))
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return 0;
	return 1;
}

/* A host name (letters, digits, '-' in dot-separated labels) or a dotted IPv4 address. */
static int valid_host(const char *s, size_t len)
{
	size_t start = 0;

	if (len == 0 || len > 253)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '.') {
			if (!is_alnum(s[i]) && s[i] != '-')
				return 0;
			continue;
		}
		size_t l = i - start;
		if (l == 0 || l > 63 || s[start] == '-' || s[i - 1] == '-')
			return 0;
		start = i + 1;
	}
	return 1;
}

/* An IPv6 literal's inside: hex digits, ':' and '.' (an embedded IPv4), with at least one ':'. */
static int valid_ipv6(const char *s, size_t len)
{
	if (len < 2 || len > 45 || !memchr(s, ':', len))
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!strchr("0123456789abcdefABCDEF:.", s[i]) || s[i] == '\0')
			return 0;
	return 1;
}

static int valid_email(const char *s)
{
	const char *at = strchr(s, '@');
	size_t local;

	if (!at || strchr(at + 1, '@') || strlen(s) > 254)
		return 0;
	local = (size_t)(at - s);
	if (local == 0 || local > 64 || s[0] == '.' || at[-1] == '.')
		return 0;
	for (size_t i = 0; i < local; i++) {
		if (!is_alnum(s[i]) && !strchr(".!#$%&'*+/=?^_`{|}~-", s[i]))
			return 0;
		if (s[i] == '.' && s[i + 1] == '.')
			return 0;
	}
	return strchr(at + 1, '.') && valid_host(at + 1, strlen(at + 1));
}

/* RFC 3986 characters allowed in a path and query (no '#', no blanks). */
static int is_path_char(char c)
{
	return is_alnum(c) || (c != '\0' && strchr("-._~!$&'()*+,;=:@/?%", c));
}

static int valid_url(const char *s)
{
	const char *host, *end, *p;

	if (strncasecmp(s, "http://", 7) == 0)
		host = s + 7;
	else if (strncasecmp(s, "https://", 8) == 0)
		host = s + 8;
	else
		return 0;
	end = host + strcspn(host, "/?#");
	if (memchr(host, '@', (size_t)(end - host)))
		return 0;	/* userinfo */
	if (*host == '[') {
		const char *close = memchr(host, ']', (size_t)(end - host));
		if (!close || !valid_ipv6(host + 1, (size_t)(close - host - 1)))
			return 0;
		p = close + 1;
	} else {
		p = host + strcspn(host, ":/?#");
		if (!valid_host(host, (size_t)(p - host)))
			return 0;
	}
	if (*p == ':') {
		char *num_end;
		long port;
		if (p[1] < '0' || p[1] > '9')
			return 0;
		errno = 0;
		port = strtol(p + 1, &num_end, 10);
		if (errno || port < 1 || port > 65535 || num_end != end)
			return 0;
		p = num_end;
	}
	if (p != end)
		return 0;
	for (; *p; p++)
		if (!is_path_char(*p))
			return 0;	/* includes '#': no fragment */
	return 1;
}

static size_t utf8_chars(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xc0) != 0x80;
	return n;
}

static size_t max_len_of(const struct form_field *f)
{
	if (f->max_len)
		return f->max_len;
	if (f->kind == FORM_TEXTAREA)
		return FORM_TEXTAREA_MAX_LEN;
	if (f->kind == FORM_SECRET)
		return FORM_SECRET_MAX_LEN;
	return FORM_DEFAULT_MAX_LEN;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Checks the bytes are text: UTF-8 without control characters (a textarea allows \t \r \n). */
static const char *text_problem(const struct form_field *f, const char *s, size_t len)
{
	if (!utf8_valid(s, len))
		return "not valid UTF-8 text";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (f->kind == FORM_TEXTAREA && (c == '\t' || c == '\r' || c == '\n'))
			continue;
		if (c < 0x20 || c == 0x7f)
			return "must not contain control characters";
	}
	return NULL;
}

static int parse_long(const char *s, long *out)
{
	char *end;

	if (!*s || !(*s == '-' || *s == '+' || (*s >= '0' && *s <= '9')))
		return -1;
	errno = 0;
	*out = strtol(s, &end, 10);
	return errno || *end || end == s ? -1 : 0;
}

static int bool_true(const char *s)
{
	return strcmp(s, "on") == 0 || strcmp(s, "1") == 0 || strcmp(s, "true") == 0;
}

/* Normalises the trimmed text s of one field into *value, or returns the error sentence. */
static char *field_check(const struct form_field *f, const char *s, char **value)
{
	size_t len = strlen(s);
	long n;

	*value = NULL;
	if (f->kind != FORM_NAME && f->kind != FORM_PASSWORD && utf8_chars(s, len) > max_len_of(f))
		return format("%s: at most %zu characters", f->label, max_len_of(f));
	switch (f->kind) {
	case FORM_NAME:
		if (!valid_dns_label(s, len))
			return format("%s: use lowercase letters, digits and '-', starting and ending with a "
				      "letter or digit (at most 63)", f->label);
		break;
	case FORM_EMAIL:
		if (!valid_email(s))
			return format("%s: not an email address", f->label);
		break;
	case FORM_PASSWORD:
		if (len < 10)
			return format("%s: use at least 10 characters", f->label);
		if (len > 256)
			return format("%s: use at most 256 characters", f->label);
		break;
	case FORM_INT: {
		long min = f->min, max = f->max;
		if (min == 0 && max == 0)
			min = LONG_MIN, max = LONG_MAX;
		if (parse_long(s, &n) < 0 || n < min || n > max)
			return format("%s: must be a whole number from %ld to %ld", f->label, min, max);
		*value = format("%ld", n);
		return NULL;
	}
	case FORM_BOOL:
		if (!bool_true(s))
			return format("%s: must be checked or left unchecked", f->label);
		*value = xstrdup("true");
		return NULL;
	case FORM_CHOICE: {
		size_t i = 0;
		while (f->choices && f->choices[i] && strcmp(f->choices[i], s) != 0)
			i++;
		if (!f->choices || !f->choices[i])
			return format("%s: choose one of the offered options", f->label);
		break;
	}
	case FORM_URL:
		if (!valid_url(s))
			return format("%s: must be an http:// or https:// URL", f->label);
		break;
	case FORM_TEXT:
	case FORM_TEXTAREA:
	case FORM_SECRET:
		break;
	}
	*value = xstrdup(s);
	return NULL;
}

/* Trims s[0..len) in place (not a password): blanks around text are never meant. */
static void field_trim(const struct form_field *f, const char **s, size_t *len)
{
	if (f->kind == FORM_PASSWORD)
		return;
	while (*len && is_blank(**s))
		(*s)++, (*len)--;
	while (*len && is_blank((*s)[*len - 1]))
		(*len)--;
}

/* A copy of checked text, with CRLF as LF in a textarea. */
static char *field_text(const struct form_field *f, const char *s, size_t len)
{
	struct strbuf sb = STRBUF_INIT;

	for (size_t i = 0; i < len; i++)
		if (!(f->kind == FORM_TEXTAREA && s[i] == '\r' && i + 1 < len && s[i + 1] == '\n'))
			strbuf_addch(&sb, s[i]);
	return strbuf_take(&sb);
}

static void form_own_error(struct form_values *out, char *msg)
{
	if (out->error[out->n]) {
		free(msg);
		return;
	}
	out->error[out->n] = msg;
	out->errors++;
}

static size_t field_index(const struct form_field *fields, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(fields[i].name, name) == 0)
			return i;
	return n;
}

/* Unknown and repeated keys: form-level errors. Returns, per field, its kv or NULL. */
static void match_input(const struct form_field *fields, size_t n, const struct kv_list *input,
			const struct kv **given, struct form_values *out)
{
	for (size_t k = 0; input && k < input->count; k++) {
		const struct kv *kv = &input->items[k];
		size_t i;

		if (kv->key[0] == '_')
			continue;
		i = field_index(fields, n, kv->key);
		if (i == n) {
			size_t klen = strlen(kv->key);
			int printable = klen <= 40 && utf8_valid(kv->key, klen);
			for (size_t j = 0; j < klen && printable; j++)
				printable = (unsigned char)kv->key[j] >= 0x20 && kv->key[j] != 0x7f;
			form_own_error(out, printable ? format("The form has an unexpected field \"%s\"", kv->key)
					: xstrdup("The form has an unexpected field"));
			continue;
		}
		if (given[i]) {
			form_own_error(out, format("%s: given more than once", fields[i].label));
			continue;
		}
		given[i] = kv;
	}
}

int form_validate(const struct form_field *fields, size_t n, const struct kv_list *input, struct form_values *out)
{
	const struct kv **given = xcalloc(n ? n : 1, sizeof *given);

	out->n = n;
	out->value = xcalloc(n ? n : 1, sizeof *out->value);
	out->input = xcalloc(n ? n : 1, sizeof *out->input);
	out->error = xcalloc(n + 1, sizeof *out->error);
	out->errors = 0;
	match_input(fields, n, input, given, out);
	for (size_t i = 0; i < n; i++) {
		const struct form_field *f = &fields[i];
		const char *text = given[i] ? given[i]->value : "", *problem;
		size_t len = given[i] ? given[i]->value_len : 0;

		field_trim(f, &text, &len);
		problem = text_problem(f, text, len);
		if (problem)
			out->error[i] = format("%s: %s", f->label, problem);
		else if ((out->input[i] = field_text(f, text, len))[0])
			out->error[i] = field_check(f, out->input[i], &out->value[i]);
		else if (f->kind == FORM_BOOL && !f->required)
			out->value[i] = xstrdup("false");
		else if (f->required)
			out->error[i] = format("%s: required", f->label);
		out->errors += out->error[i] != NULL;
	}
	free(given);
	return out->errors;
}

const char *form_value(const struct form_values *v, const struct form_field *fields, const char *name)
{
	size_t i = field_index(fields, v->n, name);

	return i < v->n ? v->value[i] : NULL;
}

void form_fail(struct form_values *v, const struct form_field *fields, const char *name, const char *fmt, ...)
{
	size_t i = name ? field_index(fields, v->n, name) : v->n;
	char msg[600];
	va_list ap;

	if (v->error[i])
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	v->error[i] = xstrdup(msg);
	v->errors++;
}

const char *form_error(const struct form_values *v, const struct form_field *fields, const char *name)
{
	return v->error[name ? field_index(fields, v->n, name) : v->n];
}

const char *form_first_error(const struct form_values *v)
{
	for (size_t i = 0; i <= v->n; i++)
		if (v->error[i])
			return v->error[i];
	return NULL;
}

void form_values_free(struct form_values *v)
{
	for (size_t i = 0; i < v->n; i++) {
		free(v->value[i]);
		free(v->input[i]);
		free(v->error[i]);
	}
	if (v->error)
		free(v->error[v->n]);
	free(v->value);
	free(v->input);
	free(v->error);
	memset(v, 0, sizeof *v);
}

static void add_choices(cJSON *field, const struct form_field *f, const char *selected)
{
	cJSON *list = cJSON_AddArrayToObject(field, "choices");

	for (size_t i = 0; f->choices && f->choices[i]; i++) {
		cJSON *c = cJSON_CreateObject();
		cJSON_AddStringToObject(c, "value", f->choices[i]);
		cJSON_AddBoolToObject(c, "selected", selected && strcmp(selected, f->choices[i]) == 0);
		cJSON_AddItemToArray(list, c);
	}
}

cJSON *form_view(const struct form_values *v, const struct form_field *fields)
{
	cJSON *view = cJSON_CreateObject();
	cJSON *all = cJSON_AddObjectToObject(view, "fields");

	for (size_t i = 0; i < v->n; i++) {
		const struct form_field *f = &fields[i];
		cJSON *field = cJSON_AddObjectToObject(all, f->name);
		const char *shown = v->value[i] ? v->value[i] : v->input[i];

		if (f->kind == FORM_PASSWORD || f->kind == FORM_SECRET)
			shown = NULL;
		if (f->kind == FORM_BOOL)
			cJSON_AddBoolToObject(field, "checked", v->value[i] && strcmp(v->value[i], "true") == 0);
		else if (shown)
			cJSON_AddStringToObject(field, "value", shown);
		if (f->kind == FORM_CHOICE)
			add_choices(field, f, v->value[i]);
		if (v->error[i])
			cJSON_AddStringToObject(field, "error", v->error[i]);
	}
	if (v->error[v->n])
		cJSON_AddStringToObject(view, "form_error", v->error[v->n]);
	return view;
}
