#include "s3_xml.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct s3_xml {
	const char *start, *p, *end;
	struct strbuf path;			/* "A/B/C" */
	size_t name_at[S3_XML_MAX_DEPTH];	/* where each level's name starts in path */
	struct strbuf text[S3_XML_MAX_DEPTH];
	int depth;
	int seen_root;
	char *err;
	size_t errlen;
};

static int s3_xml_fail(struct s3_xml *x, const char *what)
{
	snprintf(x->err, x->errlen, "malformed XML reply at byte %ld: %s", (long)(x->p - x->start), what);
	return -1;
}

static int s3_xml_starts(const struct s3_xml *x, const char *s)
{
	size_t n = strlen(s);

	return (size_t)(x->end - x->p) >= n && memcmp(x->p, s, n) == 0;
}

/* Moves past the next occurrence of s; -1 when there is none. */
static int s3_xml_skip_past(struct s3_xml *x, const char *s)
{
	size_t n = strlen(s);

	for (const char *q = x->p; (size_t)(x->end - q) >= n; q++)
		if (memcmp(q, s, n) == 0) {
			x->p = q + n;
			return 0;
		}
	return -1;
}

static int s3_xml_is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == ':' || (unsigned char)c >= 0x80;
}

static void s3_xml_add_utf8(struct strbuf *sb, unsigned long cp)
{
	if (cp < 0x80) {
		strbuf_addch(sb, (char)cp);
	} else if (cp < 0x800) {
		strbuf_addch(sb, (char)(0xc0 | (cp >> 6)));
		strbuf_addch(sb, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		strbuf_addch(sb, (char)(0xe0 | (cp >> 12)));
		strbuf_addch(sb, (char)(0x80 | ((cp >> 6) & 0x3f)));
		strbuf_addch(sb, (char)(0x80 | (cp & 0x3f)));
	} else {
		strbuf_addch(sb, (char)(0xf0 | (cp >> 18)));
		strbuf_addch(sb, (char)(0x80 | ((cp >> 12) & 0x3f)));
		strbuf_addch(sb, (char)(0x80 | ((cp >> 6) & 0x3f)));
		strbuf_addch(sb, (char)(0x80 | (cp & 0x3f)));
	}
}

static int s3_xml_entity(struct s3_xml *x, struct strbuf *sb)
{
	static const struct { const char *name; char c; } named[] = {
		{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&apos;", '\'' },
	};
	unsigned long cp = 0;
	int base = 10, digits = 0;

	for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
		if (s3_xml_starts(x, named[i].name)) {
			strbuf_addch(sb, named[i].c);
			x->p += strlen(named[i].name);
			return 0;
		}
	if (!s3_xml_starts(x, "&#"))
		return s3_xml_fail(x, "unknown entity");
	x->p += 2;
	if (x->p < x->end && *x->p == 'x') {
		base = 16;
		x->p++;
	}
	for (; x->p < x->end && *x->p != ';'; x->p++, digits++) {
		char c = *x->p;
		int v = c >= '0' && c <= '9' ? c - '0' : base == 16 && c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			base == 16 && c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

		if (v < 0 || digits > 8)
			return s3_xml_fail(x, "bad character reference");
		cp = cp * (unsigned long)base + (unsigned long)v;
	}
	if (x->p == x->end || digits == 0 || cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return s3_xml_fail(x, "bad character reference");
	x->p++;
	s3_xml_add_utf8(sb, cp);
	return 0;
}

static int s3_xml_text(struct s3_xml *x)
{
	struct strbuf *sb = x->depth ? &x->text[x->depth - 1] : NULL;

	while (x->p < x->end && *x->p != '<') {
		if (!sb) {
			if (*x->p != ' ' && *x->p != '\t' && *x->p != '\r' && *x->p != '\n')
				return s3_xml_fail(x, "text outside the root element");
			x->p++;
			continue;
		}
		if (sb->len >= S3_XML_MAX_TEXT)
			return s3_xml_fail(x, "element text too long");
		if (*x->p == '&') {
			if (s3_xml_entity(x, sb) < 0)
				return -1;
			continue;
		}
		strbuf_addch(sb, *x->p++);
	}
	return 0;
}

static int s3_xml_cdata(struct s3_xml *x)
{
	const char *start = x->p + 9;

	if (!x->depth)
		return s3_xml_fail(x, "CDATA outside the root element");
	x->p = start;
	if (s3_xml_skip_past(x, "]]>") < 0)
		return s3_xml_fail(x, "unterminated CDATA");
	if (x->text[x->depth - 1].len + (size_t)(x->p - 3 - start) > S3_XML_MAX_TEXT)
		return s3_xml_fail(x, "element text too long");
	strbuf_add(&x->text[x->depth - 1], start, (size_t)(x->p - 3 - start));
	return 0;
}

static int s3_xml_end_element(struct s3_xml *x, const char *name, size_t n, s3_xml_fn fn, void *ud)
{
	size_t at = x->name_at[x->depth - 1];
	struct strbuf *text = &x->text[x->depth - 1];
	int rc;

	if (x->path.len - at != n || memcmp(x->path.buf + at, name, n) != 0)
		return s3_xml_fail(x, "end tag does not match its start tag");
	rc = fn(x->path.buf, text->buf ? text->buf : "", ud);
	strbuf_reset(text);
	x->path.len = at ? at - 1 : 0;
	x->path.buf[x->path.len] = '\0';
	x->depth--;
	return rc;
}

static int s3_xml_start_element(struct s3_xml *x, const char *name, size_t n)
{
	if (x->depth == 0 && x->seen_root)
		return s3_xml_fail(x, "a second root element");
	if (x->depth == S3_XML_MAX_DEPTH)
		return s3_xml_fail(x, "elements nested too deeply");
	if (x->depth)
		strbuf_addch(&x->path, '/');
	x->name_at[x->depth] = x->path.len;
	strbuf_add(&x->path, name, n);
	x->depth++;
	x->seen_root = 1;
	return 0;
}

/* At '<' of a start or end tag. */
static int s3_xml_tag(struct s3_xml *x, s3_xml_fn fn, void *ud)
{
	int closing = s3_xml_starts(x, "</");
	const char *name;
	size_t n;
	char quote = 0;

	x->p += closing ? 2 : 1;
	name = x->p;
	while (x->p < x->end && s3_xml_is_name_char(*x->p))
		x->p++;
	n = (size_t)(x->p - name);
	if (n == 0 || n > 256)
		return s3_xml_fail(x, "bad element name");
	/* Attributes are skipped, quoted values included. */
	for (; x->p < x->end; x->p++) {
		if (quote) {
			if (*x->p == quote)
				quote = 0;
		} else if (*x->p == '"' || *x->p == '\'') {
			quote = *x->p;
		} else if (*x->p == '>' || *x->p == '<') {
			break;
		}
	}
	if (x->p == x->end || *x->p != '>')
		return s3_xml_fail(x, "unterminated tag");
	x->p++;
	if (closing) {
		if (!x->depth)
			return s3_xml_fail(x, "end tag without a start tag");
		return s3_xml_end_element(x, name, n, fn, ud);
	}
	if (s3_xml_start_element(x, name, n) < 0)
		return -1;
	if (x->p[-2] == '/')
		return s3_xml_end_element(x, name, n, fn, ud);
	return 0;
}

static int s3_xml_markup(struct s3_xml *x, s3_xml_fn fn, void *ud)
{
	if (s3_xml_starts(x, "<?"))
		return s3_xml_skip_past(x, "?>") < 0 ? s3_xml_fail(x, "unterminated declaration") : 0;
	if (s3_xml_starts(x, "<!--"))
		return s3_xml_skip_past(x, "-->") < 0 ? s3_xml_fail(x, "unterminated comment") : 0;
	if (s3_xml_starts(x, "<![CDATA["))
		return s3_xml_cdata(x);
	if (s3_xml_starts(x, "<!"))
		return s3_xml_fail(x, "document type declarations are not accepted");
	return s3_xml_tag(x, fn, ud);
}

int s3_xml_walk(const char *xml, size_t len, s3_xml_fn fn, void *ud, char *err, size_t errlen)
{
	struct s3_xml x = { .start = xml, .p = xml, .end = xml + len, .path = STRBUF_INIT, .err = err, .errlen = errlen };
	int rc = 0;

	strbuf_addstr(&x.path, "");
	while (rc == 0 && x.p < x.end) {
		rc = *x.p == '<' ? s3_xml_markup(&x, fn, ud) : s3_xml_text(&x);
	}
	if (rc == 0 && (x.depth || !x.seen_root))
		rc = s3_xml_fail(&x, x.depth ? "document ends inside an element" : "no root element");
	strbuf_release(&x.path);
	for (int i = 0; i < S3_XML_MAX_DEPTH; i++)
		strbuf_release(&x.text[i]);
	return rc;
}
