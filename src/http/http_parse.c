#include "http_parse.h"
#include "strbuf.h"
#include "hex.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- key/value lists ---- */

static struct kv *kv_append(struct kv_list *l, const char *key, size_t key_len, const char *value, size_t value_len)
{
	if (l->count == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->items = xrealloc(l->items, l->cap * sizeof *l->items);
	}
	struct kv *kv = &l->items[l->count++];
	kv->key = xstrndup(key, key_len);
	kv->value = xstrndup(value, value_len);
	kv->value_len = value_len;
	kv->filename = NULL;
	return kv;
}

void kv_add(struct kv_list *l, const char *key, const char *value, size_t value_len)
{
	kv_append(l, key, strlen(key), value, value_len);
}

/* Drops the items past count: undoes a parse that failed half-way. */
static void kv_truncate(struct kv_list *l, size_t count)
{
	while (l->count > count) {
		struct kv *kv = &l->items[--l->count];
		free(kv->key);
		free(kv->value);
		free(kv->filename);
	}
}

void kv_list_free(struct kv_list *l)
{
	kv_truncate(l, 0);
	free(l->items);
	l->items = NULL;
	l->cap = 0;
}

const char *kv_get(const struct kv_list *l, const char *key)
{
	for (size_t i = 0; i < l->count; i++)
		if (strcmp(l->items[i].key, key) == 0)
			return l->items[i].value;
	return NULL;
}

size_t kv_count(const struct kv_list *l, const char *key)
{
	size_t n = 0;

	for (size_t i = 0; i < l->count; i++)
		n += strcmp(l->items[i].key, key) == 0;
	return n;
}

/* ---- UTF-8 ---- */

int utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		unsigned long cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (len - i - 1 < n)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

/* ---- urlencoded ---- */

/* Decodes s[0..len) into out. NULL, or the reason with *bad set to its offset within s. */
static const char *url_decode(const char *s, size_t len, struct strbuf *out, size_t *bad)
{
	strbuf_reset(out);
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		*bad = i;
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi = i + 1 < len ? hex_digit((unsigned char)s[i + 1]) : -1;
			int lo = i + 2 < len ? hex_digit((unsigned char)s[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return "malformed %-escape";
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (c == '\0')
			return "NUL byte";
		strbuf_addch(out, c);
	}
	return NULL;
}

/* A key fit to quote in a message: short printable ASCII. */
static int key_printable(const char *key)
{
	size_t n = strlen(key);

	if (n > 40)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (key[i] < 0x20 || key[i] > 0x7e || key[i] == '"')
			return 0;
	return 1;
}

static int parse_pair(const char *pair, size_t len, size_t offset, struct kv_list *out,
		      struct strbuf *key, struct strbuf *value, char *err, size_t errlen)
{
	const char *eq = memchr(pair, '=', len);
	size_t klen = eq ? (size_t)(eq - pair) : len;
	const char *why;
	size_t bad;

	if (klen == 0) {
		err_set(err, errlen, "field at offset %zu has an empty name", offset);
		return -1;
	}
	if ((why = url_decode(pair, klen, key, &bad)) != NULL) {
		err_set(err, errlen, "field name at offset %zu: %s at offset %zu", offset, why, offset + bad);
		return -1;
	}
	if (key->len > HTTP_MAX_KEY) {
		err_set(err, errlen, "field name at offset %zu is longer than %d bytes", offset, HTTP_MAX_KEY);
		return -1;
	}
	if (!utf8_valid(key->buf, key->len)) {
		err_set(err, errlen, "field name at offset %zu is not valid UTF-8", offset);
		return -1;
	}
	char where[80];
	if (key_printable(key->buf))
		snprintf(where, sizeof where, "field \"%s\"", key->buf);
	else
		snprintf(where, sizeof where, "field at offset %zu", offset);
	size_t voff = klen + (eq ? 1 : 0);
	if ((why = url_decode(pair + voff, len - voff, value, &bad)) != NULL) {
		err_set(err, errlen, "%s: %s at offset %zu", where, why, offset + voff + bad);
		return -1;
	}
	if (!utf8_valid(value->buf, value->len)) {
		err_set(err, errlen, "%s: value is not valid UTF-8", where);
		return -1;
	}
	kv_append(out, key->buf, key->len, value->buf ? value->buf : "", value->len);
	return 0;
}

int http_parse_urlencoded(const char *buf, size_t len, size_t max_fields, struct kv_list *out,
			  char *err, size_t errlen)
{
	struct strbuf key = STRBUF_INIT, value = STRBUF_INIT;
	size_t start_count = out->count, fields = 0, pos = 0;
	int rc = 0;

	while (pos < len && rc == 0) {
		const char *amp = memchr(buf + pos, '&', len - pos);
		size_t end = amp ? (size_t)(amp - buf) : len;

		if (end > pos) {
			if (++fields > max_fields) {
				err_set(err, errlen, "more than %zu fields", max_fields);
				rc = -1;
			} else {
				rc = parse_pair(buf + pos, end - pos, pos, out, &key, &value, err, errlen);
			}
		}
		pos = end + 1;
	}
	strbuf_release(&key);
	strbuf_release(&value);
	if (rc)
		kv_truncate(out, start_count);
	return rc;
}

/* ---- cookies ---- */

/* RFC 6265 cookie-name is an RFC 7230 token. */
static int is_token_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("()<>@,;:\\\"/[]?={}", c);
}

static int is_cookie_octet(unsigned char c)
{
	return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
	       (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

static int all_chars(const char *s, size_t len, int (*ok)(unsigned char))
{
	for (size_t i = 0; i < len; i++)
		if (!ok((unsigned char)s[i]))
			return 0;
	return 1;
}

/* Adds one "name=value" pair if it is well-formed; junk is skipped. Returns 1 if added. */
static int cookie_pair(const char *s, size_t len, struct kv_list *out)
{
	while (len && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	const char *eq = memchr(s, '=', len);
	if (!eq || eq == s)
		return 0;
	size_t nlen = (size_t)(eq - s), vlen = len - nlen - 1;
	const char *v = eq + 1;
	if (nlen > HTTP_MAX_KEY || !all_chars(s, nlen, is_token_char))
		return 0;
	if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"')
		v++, vlen -= 2;
	if (!all_chars(v, vlen, is_cookie_octet))
		return 0;
	kv_append(out, s, nlen, v, vlen);
	return 1;
}

int http_parse_cookies(const char *header, struct kv_list *out, char *err, size_t errlen)
{
	size_t start_count = out->count, pairs = 0;

	if (!header)
		return 0;
	for (const char *p = header; *p;) {
		const char *semi = strchr(p, ';');
		size_t len = semi ? (size_t)(semi - p) : strlen(p);

		pairs += (size_t)cookie_pair(p, len, out);
		if (pairs > HTTP_MAX_COOKIES) {
			kv_truncate(out, start_count);
			err_set(err, errlen, "Cookie header has more than %d cookies", HTTP_MAX_COOKIES);
			return -1;
		}
		p += len + (semi ? 1 : 0);
	}
	return 0;
}

/* ---- Content-Type and Accept ---- */

/* Finds the media type in a header element: skips blanks, stops at ';' or ','. */
static const char *media_type_span(const char *s, size_t *len)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strcspn(s, ";,");
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	*len = n;
	return s;
}

int http_media_type_is(const char *content_type, const char *type)
{
	size_t len;
	const char *s;

	if (!content_type || !type)
		return 0;
	s = media_type_span(content_type, &len);
	return len == strlen(type) && strncasecmp(s, type, len) == 0;
}

int http_accepts_json(const char *accept)
{
	if (!accept)
		return 0;
	for (const char *p = accept; *p;) {
		if (http_media_type_is(p, "application/json"))
			return 1;
		if (http_media_type_is(p, "text/html"))
			return 0;
		const char *comma = strchr(p, ',');
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

/* ---- request path ---- */

int http_path_check(const char *path, char *err, size_t errlen)
{
	size_t len;

	if (!path || path[0] != '/') {
		err_set(err, errlen, "path must start with '/'");
		return -1;
	}
	len = strlen(path);
	if (len > HTTP_MAX_PATH) {
		err_set(err, errlen, "path is longer than %d bytes", HTTP_MAX_PATH);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)path[i];
		if (c < 0x20 || c == 0x7f) {
			err_set(err, errlen, "path has a control character at offset %zu", i);
			return -1;
		}
		if (c == '%') {
			err_set(err, errlen, "path has a '%%' at offset %zu", i);
			return -1;
		}
	}
	if (strstr(path, "..")) {
		err_set(err, errlen, "path contains \"..\"");
		return -1;
	}
	if (strstr(path, "//")) {
		err_set(err, errlen, "path contains \"//\"");
		return -1;
	}
	if (!utf8_valid(path, len)) {
		err_set(err, errlen, "path is not valid UTF-8");
		return -1;
	}
	return 0;
}

/* ---- multipart/form-data ---- */

/* RFC 2046 bchars. */
static int is_boundary_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c != 0 && strchr("'()+_,-./:=? ", c));
}

/* Reads `name=value` parameters after the first ';' of a header value. The value may be a token
 * or a quoted string (backslash escapes the next character). Returns the decoded value of the
 * parameter `want` (malloc'd), or NULL if absent or malformed; *malformed says which. */
static char *header_param(const char *s, size_t len, const char *want, int *malformed)
{
	size_t i = 0, wlen = strlen(want);

	*malformed = 0;
	while (i < len && s[i] != ';')
		i++;
	while (i < len) {
		i++;	/* the ';' */
		while (i < len && (s[i] == ' ' || s[i] == '\t'))
			i++;
		size_t name = i;
		while (i < len && s[i] != '=' && s[i] != ';')
			i++;
		size_t nlen = i;
		while (nlen > name && (s[nlen - 1] == ' ' || s[nlen - 1] == '\t'))
			nlen--;
		nlen -= name;
		if (i == len || s[i] == ';')
			continue;	/* a parameter without value: ignore */
		i++;
		while (i < len && (s[i] == ' ' || s[i] == '\t'))
			i++;
		struct strbuf v = STRBUF_INIT;
		if (i < len && s[i] == '"') {
			for (i++; i < len && s[i] != '"'; i++) {
				if (s[i] == '\\' && i + 1 < len)
					i++;
				strbuf_addch(&v, s[i]);
			}
			if (i == len) {
				strbuf_release(&v);
				*malformed = 1;
				return NULL;
			}
			i++;
			while (i < len && s[i] != ';')
				i++;
		} else {
			size_t start = i;
			while (i < len && s[i] != ';')
				i++;
			size_t end = i;
			while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
				end--;
			strbuf_add(&v, s + start, end - start);
		}
		if (nlen == wlen && strncasecmp(s + name, want, wlen) == 0)
			return strbuf_take(&v);
		strbuf_release(&v);
	}
	return NULL;
}

static int parse_boundary(const char *content_type, char *boundary, char *err, size_t errlen)
{
	int malformed;
	char *b;

	if (!http_media_type_is(content_type, "multipart/form-data")) {
		err_set(err, errlen, "Content-Type is not multipart/form-data");
		return -1;
	}
	b = header_param(content_type, strlen(content_type), "boundary", &malformed);
	if (!b || !*b) {
		free(b);
		err_set(err, errlen, "Content-Type has no boundary");
		return -1;
	}
	size_t len = strlen(b);
	if (len > HTTP_MAX_BOUNDARY) {
		free(b);
		err_set(err, errlen, "multipart boundary is longer than %d characters", HTTP_MAX_BOUNDARY);
		return -1;
	}
	if (!all_chars(b, len, is_boundary_char) || b[len - 1] == ' ') {
		free(b);
		err_set(err, errlen, "multipart boundary has invalid characters");
		return -1;
	}
	memcpy(boundary, b, len + 1);
	free(b);
	return 0;
}

/* A valid name or filename: UTF-8 without control characters. */
static int printable_utf8(const char *s)
{
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return 0;
	return utf8_valid(s, strlen(s));
}

/* The part headers s[0..len): finds Content-Disposition's name and filename. */
static int part_headers(const char *s, size_t len, size_t part, char **name, char **filename,
			char *err, size_t errlen)
{
	static const char cd[] = "content-disposition:";
	size_t pos = 0;
	int seen = 0;

	*name = *filename = NULL;
	while (pos < len) {
		const char *eol = memmem(s + pos, len - pos, "\r\n", 2);
		size_t end = eol ? (size_t)(eol - s) : len;
		const char *line = s + pos;
		size_t llen = end - pos;

		pos = end + 2;
		if (!memchr(line, ':', llen)) {
			err_set(err, errlen, "part %zu: malformed header line", part);
			return -1;
		}
		if (llen < sizeof cd - 1 || strncasecmp(line, cd, sizeof cd - 1) != 0)
			continue;
		if (seen++) {
			err_set(err, errlen, "part %zu: Content-Disposition given twice", part);
			return -1;
		}
		const char *v = line + sizeof cd - 1;
		size_t vlen = llen - (sizeof cd - 1);
		while (vlen && (*v == ' ' || *v == '\t'))
			v++, vlen--;
		if (vlen < 9 || strncasecmp(v, "form-data", 9) != 0 || (vlen > 9 && v[9] != ';' && v[9] != ' ')) {
			err_set(err, errlen, "part %zu: Content-Disposition is not form-data", part);
			return -1;
		}
		int bad_name, bad_file;
		*name = header_param(v, vlen, "name", &bad_name);
		*filename = header_param(v, vlen, "filename", &bad_file);
		if (bad_name || bad_file) {
			err_set(err, errlen, "part %zu: unterminated quoted string in Content-Disposition", part);
			return -1;
		}
	}
	if (!*name || !**name) {
		err_set(err, errlen, "part %zu has no name", part);
		return -1;
	}
	if (strlen(*name) > HTTP_MAX_KEY || !printable_utf8(*name)) {
		err_set(err, errlen, "part %zu: name is longer than %d bytes or not printable UTF-8", part, HTTP_MAX_KEY);
		return -1;
	}
	if (*filename && (strlen(*filename) > HTTP_MAX_FILENAME || !printable_utf8(*filename))) {
		err_set(err, errlen, "part %zu: filename is longer than %d bytes or not printable UTF-8", part, HTTP_MAX_FILENAME);
		return -1;
	}
	return 0;
}

/* A candidate delimiter "--boundary" at or after pos: at the very start, or after CRLF. Returns
 * the offset just past it, or (size_t)-1; *start is where its CRLF begins. */
static size_t find_delimiter(const char *buf, size_t len, size_t pos, const char *delim, size_t dlen, size_t *start)
{
	if (pos == 0 && len >= dlen && memcmp(buf, delim, dlen) == 0) {
		*start = 0;
		return dlen;
	}
	while (pos < len) {
		const char *crlf = memmem(buf + pos, len - pos, "\r\n", 2);
		if (!crlf)
			break;
		size_t at = (size_t)(crlf - buf);
		if (len - at - 2 >= dlen && memcmp(crlf + 2, delim, dlen) == 0) {
			*start = at;
			return at + 2 + dlen;
		}
		pos = at + 1;
	}
	return (size_t)-1;
}

/* The next real delimiter line: a candidate followed by "--" (the close delimiter) or by blanks
 * and CRLF. *after is the first byte after the line. 0, or -1 if there is none. */
static int next_delimiter(const char *buf, size_t len, size_t pos, const char *delim, size_t dlen,
			  size_t *start, size_t *after, int *closing)
{
	for (;;) {
		size_t at = find_delimiter(buf, len, pos, delim, dlen, start), p;

		if (at == (size_t)-1)
			return -1;
		if (len - at >= 2 && buf[at] == '-' && buf[at + 1] == '-') {
			*closing = 1;
			*after = at + 2;
			return 0;
		}
		for (p = at; p < len && (buf[p] == ' ' || buf[p] == '\t'); p++)
			;
		if (len - p >= 2 && buf[p] == '\r' && buf[p + 1] == '\n') {
			*closing = 0;
			*after = p + 2;
			return 0;
		}
		pos = at;
	}
}

/* The end of the header block that starts at hstart: sets *body to the first content byte. */
static int part_header_end(const char *buf, size_t len, size_t hstart, size_t part, size_t *hend, size_t *body,
			   char *err, size_t errlen)
{
	size_t window = len - hstart < HTTP_MAX_PART_HEADERS + 4 ? len - hstart : HTTP_MAX_PART_HEADERS + 4;
	const char *blank;

	if (window >= 2 && buf[hstart] == '\r' && buf[hstart + 1] == '\n') {
		*hend = hstart;
		*body = hstart + 2;
		return 0;
	}
	blank = memmem(buf + hstart, window, "\r\n\r\n", 4);
	if (!blank) {
		if (window == len - hstart)
			err_set(err, errlen, "part %zu: headers never end", part);
		else
			err_set(err, errlen, "part %zu: header block larger than 8 KiB", part);
		return -1;
	}
	*hend = (size_t)(blank - buf);
	*body = *hend + 4;
	return 0;
}

static int parse_parts(const char *buf, size_t len, const char *delim, size_t max_fields,
		       struct kv_list *out, char *err, size_t errlen)
{
	size_t dlen = strlen(delim), start, pos, hend, body;
	int closing;

	if (next_delimiter(buf, len, 0, delim, dlen, &start, &pos, &closing) < 0) {
		err_set(err, errlen, "multipart body has no boundary line");
		return -1;
	}
	for (size_t part = 1; !closing; part++) {
		char *name, *filename;

		if (part > max_fields) {
			err_set(err, errlen, "more than %zu parts", max_fields);
			return -1;
		}
		if (part_header_end(buf, len, pos, part, &hend, &body, err, errlen) < 0)
			return -1;
		if (part_headers(buf + pos, hend - pos, part, &name, &filename, err, errlen) < 0) {
			free(name);
			free(filename);
			return -1;
		}
		if (next_delimiter(buf, len, body, delim, dlen, &start, &pos, &closing) < 0) {
			err_set(err, errlen, "multipart body has no closing boundary");
			free(name);
			free(filename);
			return -1;
		}
		struct kv *kv = kv_append(out, name, strlen(name), buf + body, start - body);
		kv->filename = filename;
		free(name);
	}
	return 0;
}

int http_parse_multipart(const char *buf, size_t len, const char *content_type, size_t max_fields,
			 struct kv_list *out, char *err, size_t errlen)
{
	char boundary[HTTP_MAX_BOUNDARY + 1], delim[HTTP_MAX_BOUNDARY + 3];
	size_t start_count = out->count;

	if (parse_boundary(content_type, boundary, err, errlen) < 0)
		return -1;
	snprintf(delim, sizeof delim, "--%s", boundary);
	if (parse_parts(buf, len, delim, max_fields, out, err, errlen) < 0) {
		kv_truncate(out, start_count);
		return -1;
	}
	return 0;
}
