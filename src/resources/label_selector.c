#include "label_selector.h"

#include <cjson/cJSON.h>
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tok { T_END, T_WORD, T_EQ, T_NE, T_NOT, T_OPEN, T_CLOSE, T_COMMA, T_LT, T_GT };

struct lexer {
	const char *p;
	const char *start;	/* where the current token begins */
	enum tok tok;
	char word[512];
	int too_long;
};

static int blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int special(char c)
{
	return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '<' || c == '>';
}

static void next(struct lexer *l)
{
	size_t n = 0;

	while (blank(*l->p))
		l->p++;
	l->start = l->p;
	l->too_long = 0;
	l->word[0] = '\0';
	switch (*l->p) {
	case '\0': l->tok = T_END; return;
	case '(': l->tok = T_OPEN; l->p++; return;
	case ')': l->tok = T_CLOSE; l->p++; return;
	case ',': l->tok = T_COMMA; l->p++; return;
	case '<': l->tok = T_LT; l->p++; return;
	case '>': l->tok = T_GT; l->p++; return;
	case '=': l->tok = T_EQ; l->p += l->p[1] == '=' ? 2 : 1; return;
	case '!':
		if (l->p[1] == '=') {
			l->tok = T_NE;
			l->p += 2;
		} else {
			l->tok = T_NOT;
			l->p++;
		}
		return;
	}
	l->tok = T_WORD;
	while (*l->p && !blank(*l->p) && !special(*l->p)) {
		if (n + 1 < sizeof l->word)
			l->word[n++] = *l->p;
		else
			l->too_long = 1;
		l->p++;
	}
	l->word[n] = '\0';
}

static int alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A label name or value: 1..63 of [A-Za-z0-9-_.], alphanumeric at both ends. */
static int name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 63 || !alnum(s[0]) || !alnum(s[n - 1]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return 0;
	return 1;
}

/* A DNS subdomain: lowercase labels of [a-z0-9-], alphanumeric at both ends, dot-separated. */
static int prefix_ok(const char *s, size_t n)
{
	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int edge = i == 0 || i == n - 1 || s[i - 1] == '.' || s[i + 1] == '.';
		if (c == '.' ? edge : (c >= 'A' && c <= 'Z') || (!alnum(c) && (c != '-' || edge)))
			return 0;
	}
	return 1;
}

#define NAME_RULE "at most 63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit"

static int key_check(const struct lexer *l, char *err, size_t errlen)
{
	const char *k = l->word, *slash = strchr(k, '/');

	if (l->too_long || strlen(k) > 317) {
		snprintf(err, errlen, "Label selector: the key \"%.40s...\" is too long", k);
		return -1;
	}
	if (slash && (strchr(slash + 1, '/') || !prefix_ok(k, (size_t)(slash - k)))) {
		snprintf(err, errlen, "Label selector: the key \"%.300s\" has a bad prefix: a key is name or prefix/name, "
			 "the prefix a DNS subdomain such as example.com (lowercase letters, digits, '-' and '.')", k);
		return -1;
	}
	if (!name_ok(slash ? slash + 1 : k, strlen(slash ? slash + 1 : k))) {
		snprintf(err, errlen, "Label selector: the key \"%.300s\" is not a label key: its name has " NAME_RULE, k);
		return -1;
	}
	return 0;
}

static int value_check(const struct lexer *l, const char *key, char *err, size_t errlen)
{
	if (l->too_long || !name_ok(l->word, strlen(l->word))) {
		snprintf(err, errlen, "Label selector: the value \"%.100s\" of key %.300s is not a label value: a value has "
			 NAME_RULE, l->word, key);
		return -1;
	}
	return 0;
}

static int expected(const struct lexer *l, const char *what, char *err, size_t errlen)
{
	if (l->tok == T_END)
		snprintf(err, errlen, "Label selector: %s expected, not the end", what);
	else
		snprintf(err, errlen, "Label selector: %s expected before \"%.60s\"", what, l->start);
	return -1;
}

static int requirement(struct lexer *l, struct strbuf *out, char *err, size_t errlen)
{
	char key[512];

	if (l->tok == T_NOT) {
		next(l);
		if (l->tok != T_WORD)
			return expected(l, "a label key after '!'", err, errlen);
		if (key_check(l, err, errlen) < 0)
			return -1;
		strbuf_addf(out, "!%s", l->word);
		next(l);
		return 0;
	}
	if (l->tok != T_WORD)
		return expected(l, "a label key", err, errlen);
	if (key_check(l, err, errlen) < 0)
		return -1;
	snprintf(key, sizeof key, "%s", l->word);
	strbuf_addstr(out, key);
	next(l);
	switch (l->tok) {
	case T_END:
	case T_COMMA:
		return 0;	/* the key exists */
	case T_EQ:
	case T_NE:
		strbuf_addstr(out, l->tok == T_EQ ? "=" : "!=");
		next(l);
		if (l->tok == T_END || l->tok == T_COMMA)
			return 0;	/* the empty value */
		if (l->tok != T_WORD) {
			snprintf(err, errlen, "Label selector: the value \"%.*s\" of key %.300s is not a label value: a value "
				 "has " NAME_RULE, (int)(strcspn(l->start, ",") > 100 ? 100 : strcspn(l->start, ",")), l->start, key);
			return -1;
		}
		if (value_check(l, key, err, errlen) < 0)
			return -1;
		strbuf_addstr(out, l->word);
		next(l);
		return 0;
	case T_LT:
	case T_GT: {
		char *end;
		strbuf_addstr(out, l->tok == T_LT ? "<" : ">");
		next(l);
		if (l->tok != T_WORD || (strtol(l->word, &end, 10), *end) || !l->word[0])
			return expected(l, "a whole number after '<' or '>'", err, errlen);
		strbuf_addstr(out, l->word);
		next(l);
		return 0;
	}
	case T_WORD:
		if (strcmp(l->word, "in") != 0 && strcmp(l->word, "notin") != 0) {
			snprintf(err, errlen, "Label selector: after the key %.300s comes =, ==, !=, in, notin, ',' or the end, "
				 "not \"%.60s\" (a label key has no blanks)", key, l->word);
			return -1;
		}
		strbuf_addf(out, " %s (", l->word);
		next(l);
		if (l->tok != T_OPEN)
			return expected(l, "'(' after in or notin", err, errlen);
		for (int n = 0;; n++) {
			next(l);
			if (l->tok != T_WORD)
				return expected(l, "a label value in the parentheses", err, errlen);
			if (value_check(l, key, err, errlen) < 0)
				return -1;
			strbuf_addf(out, "%s%s", n ? "," : "", l->word);
			next(l);
			if (l->tok == T_CLOSE)
				break;
			if (l->tok != T_COMMA)
				return expected(l, "',' or ')'", err, errlen);
		}
		strbuf_addstr(out, ")");
		next(l);
		return 0;
	default:
		return expected(l, "=, ==, !=, in, notin, ',' or the end after the key", err, errlen);
	}
}

int label_selector_check(const char *sel, char **canonical, char *err, size_t errlen)
{
	struct lexer l = { .p = sel ? sel : "" };
	struct strbuf out = STRBUF_INIT;

	if (canonical)
		*canonical = NULL;
	next(&l);
	while (l.tok != T_END) {
		if (requirement(&l, &out, err, errlen) < 0) {
			strbuf_release(&out);
			return -1;
		}
		if (l.tok == T_COMMA) {
			strbuf_addstr(&out, ",");
			next(&l);
			if (l.tok == T_END) {
				snprintf(err, errlen, "Label selector: a requirement expected after the last ','");
				strbuf_release(&out);
				return -1;
			}
		} else if (l.tok != T_END) {
			expected(&l, "',' between requirements", err, errlen);
			strbuf_release(&out);
			return -1;
		}
	}
	if (canonical)
		*canonical = out.buf ? strbuf_take(&out) : xstrdup("");
	strbuf_release(&out);
	return 0;
}

/* ---- matching ---- */

static const char *label_of(const cJSON *labels, const char *key, size_t keylen)
{
	const cJSON *l;

	cJSON_ArrayForEach(l, labels)
		if (cJSON_IsString(l) && l->string && strlen(l->string) == keylen && memcmp(l->string, key, keylen) == 0)
			return l->valuestring;
	return NULL;
}

static int value_in(const char *value, const char *list, size_t len)
{
	size_t vlen = strlen(value);

	for (const char *p = list, *end = list + len; p <= end;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);
		if (n == vlen && memcmp(p, value, n) == 0)
			return 1;
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

/* One requirement of a canonical selector (label_selector_check's form). */
static int requirement_matches(const char *r, size_t len, const cJSON *labels)
{
	const char *sp = memchr(r, ' ', len), *op;

	if (len && r[0] == '!')
		return !label_of(labels, r + 1, len - 1);
	if (sp) {	/* key in (a,b) / key notin (a,b) */
		int notin = len - (size_t)(sp - r) > 7 && strncmp(sp, " notin (", 8) == 0;
		const char *open = memchr(sp, '(', len - (size_t)(sp - r));
		const char *v = label_of(labels, r, (size_t)(sp - r));
		if (!open || r[len - 1] != ')')
			return 0;
		int in = v && value_in(v, open + 1, (size_t)(r + len - 1 - (open + 1)));
		return notin ? !in : in;
	}
	if ((op = memchr(r, '!', len)) && op + 1 < r + len && op[1] == '=') {
		const char *v = label_of(labels, r, (size_t)(op - r));
		size_t vlen = len - (size_t)(op + 2 - r);
		return !v || strlen(v) != vlen || memcmp(v, op + 2, vlen) != 0;
	}
	if ((op = memchr(r, '=', len))) {
		const char *v = label_of(labels, r, (size_t)(op - r));
		size_t vlen = len - (size_t)(op + 1 - r);
		return v && strlen(v) == vlen && memcmp(v, op + 1, vlen) == 0;
	}
	if ((op = memchr(r, '<', len)) || (op = memchr(r, '>', len))) {
		const char *v = label_of(labels, r, (size_t)(op - r));
		char *end, num[32];
		size_t nlen = len - (size_t)(op + 1 - r);
		if (!v || nlen >= sizeof num)
			return 0;
		memcpy(num, op + 1, nlen);
		num[nlen] = '\0';
		long long have = strtoll(v, &end, 10), want = strtoll(num, NULL, 10);
		if (!*v || *end)
			return 0;
		return *op == '<' ? have < want : have > want;
	}
	return label_of(labels, r, len) != NULL;
}

int label_selector_match(const char *sel, const cJSON *labels)
{
	char *canonical = NULL, err[256];
	int match = 1, depth = 0;

	if (label_selector_check(sel, &canonical, err, sizeof err) < 0)
		return -1;
	for (const char *p = canonical, *start = canonical; match; p++) {
		if (*p == '(')
			depth++;
		else if (*p == ')')
			depth--;
		if ((*p == ',' && depth == 0) || *p == '\0') {
			if (p > start)
				match = requirement_matches(start, (size_t)(p - start), labels);
			if (!*p)
				break;
			start = p + 1;
		}
	}
	free(canonical);
	return match;
}
