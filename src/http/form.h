/* Declared forms: a table of fields, each with a kind that validates and normalises its value.
 * A handler only ever reads validated values; errors come back per field, named by the label. */
#ifndef STOWAGE_FORM_H
#define STOWAGE_FORM_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "http_parse.h"

#define FORM_DEFAULT_MAX_LEN 256		/* characters, single-line kinds */
#define FORM_SECRET_MAX_LEN 8192
#define FORM_TEXTAREA_MAX_LEN (1u << 20)

enum form_kind {
	FORM_TEXT,
	FORM_NAME,	/* DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 */
	FORM_EMAIL,
	FORM_PASSWORD,	/* 10..256 bytes, not trimmed */
	FORM_INT,	/* whole number in [min, max] (both 0: any long) */
	FORM_BOOL,	/* checkbox: absent = false, "on"/"1"/"true" = true; value "true" or "false" */
	FORM_CHOICE,	/* one of choices */
	FORM_URL,	/* http(s)://host[:port][/path], no userinfo, no fragment */
	FORM_TEXTAREA,	/* multi-line text (CRLF becomes LF), may be empty unless required */
	FORM_SECRET,	/* like TEXT, never echoed back */
};

struct form_field {
	const char *name;
	const char *label;
	enum form_kind kind;
	int required;
	size_t max_len;			/* characters; 0 for the kind's default */
	long min, max;			/* FORM_INT bounds */
	const char *const *choices;	/* FORM_CHOICE, NULL-terminated */
};

struct form_values {
	size_t n;
	char **value;	/* per field: the normalised value, or NULL if absent or invalid */
	char **error;	/* per field, then [n] for the form: NULL or "Label: reason" */
	int errors;
	char **input;	/* per field: the trimmed input as sent, shown back in the form when invalid */
};

/* Validates input against fields[0..n). Keys beginning with '_' (CSRF token, buttons) are ignored;
 * an unknown key or a key given twice is a form-level error (error[n]). Text is trimmed (except
 * passwords) and must be valid UTF-8 without control characters (TEXTAREA allows \n \r \t).
 * Returns the number of errors. */
int form_validate(const struct form_field *fields, size_t n, const struct kv_list *input, struct form_values *out);
/* The validated value of field `name`, or NULL. */
const char *form_value(const struct form_values *v, const struct form_field *fields, const char *name);
/* Sets the error of field `name` ("Label: reason", printf-style) unless it has one already, and
 * counts it; name NULL (or a name not in fields) sets the form's own error. Checks beyond a
 * field's kind end here, so that no handler indexes the error array. */
void form_fail(struct form_values *v, const struct form_field *fields, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Field `name`'s error (NULL: the form's own), or NULL when it has none. */
const char *form_error(const struct form_values *v, const struct form_field *fields, const char *name);
/* The first error of the form, a field's in table order or else the form's own, or NULL: for an
 * answer of one sentence. */
const char *form_first_error(const struct form_values *v);
void form_values_free(struct form_values *v);
/* {"fields": {"name": {"value": "...", "error": "..."}}, "form_error": "..."} for the template that
 * shows the form again; BOOL fields add "checked", CHOICE fields "choices": [{"value", "selected"}].
 * PASSWORD and SECRET values are never put in it. */
cJSON *form_view(const struct form_values *v, const struct form_field *fields);

#endif
