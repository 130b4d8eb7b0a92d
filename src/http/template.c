#include "template.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TEMPLATE_MAX_NAME 128
#define PARTIAL_CONTENT ((size_t)-1)	/* {{> @content}}: the page inside a layout */

enum tnode_kind { T_TEXT, T_VAR, T_RAW, T_URL, T_SECTION, T_INVERTED, T_PARTIAL };

/* A template is a flat array of nodes; a section's children are the nodes up to its `end`. */
struct tnode {
	enum tnode_kind kind;
	int line;
	const char *text;	/* T_TEXT: points into the template source */
	size_t len;
	char *name;		/* every other kind */
	size_t end;		/* sections: index of the first node after the section */
	size_t partial;		/* T_PARTIAL: index in the set, or PARTIAL_CONTENT */
};

struct template {
	char *name;
	char *file;		/* "name.html", for messages */
	char *src;
	struct tnode *nodes;
	size_t count, cap;
};

struct template_set {
	struct template *items;
	size_t count;
};

/* ---- escaping ---- */

void html_escape(struct strbuf *out, const char *s, size_t len)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		const char *ent;

		switch (s[i]) {
		case '&': ent = "&amp;"; break;
		case '<': ent = "&lt;"; break;
		case '>': ent = "&gt;"; break;
		case '"': ent = "&quot;"; break;
		case '\'': ent = "&#39;"; break;
		case '`': ent = "&#96;"; break;
		case '=': ent = "&#61;"; break;
		default: continue;
		}
		strbuf_add(out, s + start, i - start);
		strbuf_addstr(out, ent);
		start = i + 1;
	}
	strbuf_add(out, s + start, len - start);
}

void url_escape(struct strbuf *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			strbuf_addch(out, (char)c);
			continue;
		}
		char enc[3] = { '%', hex[c >> 4], hex[c & 15] };
		strbuf_add(out, enc, 3);
	}
}

/* ---- parsing ---- */

static int is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '@' || c == '$';
}

/* "." or dot-separated non-empty segments of name characters. */
static int valid_var_name(const char *s, size_t len)
{
	if (len == 0 || len > TEMPLATE_MAX_NAME)
		return 0;
	if (len == 1 && s[0] == '.')
		return 1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (i == 0 || i + 1 == len || s[i + 1] == '.')
				return 0;
		} else if (!is_name_char(s[i])) {
			return 0;
		}
	}
	return 1;
}

static int valid_partial_name(const char *s, size_t len)
{
	if (len == 0 || len > TEMPLATE_MAX_NAME)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!is_name_char(s[i]) && s[i] != '.')
			return 0;
	return 1;
}

static struct tnode *add_node(struct template *t, enum tnode_kind kind, int line)
{
	if (t->count == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->nodes = xrealloc(t->nodes, t->cap * sizeof *t->nodes);
	}
	struct tnode *n = &t->nodes[t->count++];
	memset(n, 0, sizeof *n);
	n->kind = kind;
	n->line = line;
	return n;
}

static void add_text(struct template *t, size_t from, size_t to, int line)
{
	if (to <= from)
		return;
	struct tnode *n = add_node(t, T_TEXT, line);
	n->text = t->src + from;
	n->len = to - from;
}

static int count_lines(const char *s, size_t from, size_t to)
{
	int n = 0;

	for (size_t i = from; i < to; i++)
		n += s[i] == '\n';
	return n;
}

/* Mustache's "standalone" rule: a section, comment or partial tag alone on its line takes the
 * line's indentation and line ending with it. Returns 1 and sets the text end and resume point. */
static int standalone_span(const char *s, size_t tag_start, size_t tag_end, size_t *text_end, size_t *resume)
{
	size_t p = tag_start, q = tag_end;

	while (p > 0 && (s[p - 1] == ' ' || s[p - 1] == '\t'))
		p--;
	if (p > 0 && s[p - 1] != '\n')
		return 0;
	while (s[q] == ' ' || s[q] == '\t')
		q++;
	if (s[q] == '\r' && s[q + 1] == '\n')
		q += 2;
	else if (s[q] == '\n')
		q++;
	else if (s[q] != '\0')
		return 0;
	*text_end = p;
	*resume = q;
	return 1;
}

struct parse_state {
	struct template *t;
	size_t open[TEMPLATE_MAX_NESTING];	/* node indices of the open sections */
	size_t depth;
	char *err;
	size_t errlen;
};

static int parse_error(struct parse_state *ps, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int parse_error(struct parse_state *ps, int line, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	err_set(ps->err, ps->errlen, "%s:%d: %s", ps->t->file, line, msg);
	return -1;
}

/* Turns one tag (its sigil and trimmed name) into a node, or closes a section. */
static int parse_tag(struct parse_state *ps, char sigil, const char *name, size_t len, int line)
{
	struct template *t = ps->t;
	enum tnode_kind kind;

	switch (sigil) {
	case '!':
		return 0;
	case '#': kind = T_SECTION; break;
	case '^': kind = T_INVERTED; break;
	case '>': kind = T_PARTIAL; break;
	case '%': kind = T_URL; break;
	case '&': kind = T_RAW; break;
	case '/': {
		if (ps->depth == 0)
			return parse_error(ps, line, "{{/%.*s}} closes no open section", (int)len, name);
		struct tnode *open = &t->nodes[ps->open[ps->depth - 1]];
		if (strlen(open->name) != len || memcmp(open->name, name, len) != 0)
			return parse_error(ps, line, "{{/%.*s}} does not match {{%c%s}} opened on line %d",
					   (int)len, name, open->kind == T_SECTION ? '#' : '^', open->name, open->line);
		open->end = t->count;
		ps->depth--;
		return 0;
	}
	default: kind = T_VAR; break;
	}
	if (kind == T_PARTIAL ? !valid_partial_name(name, len) : !valid_var_name(name, len))
		return parse_error(ps, line, "invalid name \"%.*s\"", (int)(len > 40 ? 40 : len), name);
	if (kind == T_SECTION || kind == T_INVERTED) {
		if (ps->depth == TEMPLATE_MAX_NESTING)
			return parse_error(ps, line, "sections nested deeper than %d", TEMPLATE_MAX_NESTING);
		ps->open[ps->depth++] = t->count;
	}
	struct tnode *n = add_node(t, kind, line);
	n->name = xstrndup(name, len);
	return 0;
}

static int is_sigil(char c)
{
	return c == '#' || c == '^' || c == '/' || c == '>' || c == '!' || c == '%' || c == '&';
}

static int parse_template(struct template *t, char *err, size_t errlen)
{
	struct parse_state ps = { .t = t, .err = err, .errlen = errlen };
	const char *s = t->src;
	size_t pos = 0, counted = 0;
	int line = 1;

	for (;;) {
		const char *open = strstr(s + pos, "{{");
		if (!open) {
			add_text(t, pos, strlen(s), line);
			break;
		}
		size_t tag_start = (size_t)(open - s);
		line += count_lines(s, counted, tag_start);
		counted = tag_start;
		const char *close = strstr(open + 2, "}}");
		if (!close)
			return parse_error(&ps, line, "tag {{ is never closed with }}");
		size_t tag_end = (size_t)(close - s) + 2;

		const char *body = open + 2, *body_end = close;
		char sigil = 0;
		if (body == close) {
			return parse_error(&ps, line, "empty tag {{}}");
		} else if (is_sigil(*body)) {
			sigil = *body++;
		} else if (*body != '.' && *body != ' ' && !is_name_char(*body)) {
			return parse_error(&ps, line, "unknown tag kind '%c'", *body);
		}
		if (sigil != '!') {
			while (body < body_end && (*body == ' ' || *body == '\t'))
				body++;
			while (body_end > body && (body_end[-1] == ' ' || body_end[-1] == '\t'))
				body_end--;
		}

		size_t text_end = tag_start, resume = tag_end;
		if (sigil && sigil != '%' && sigil != '&')
			standalone_span(s, tag_start, tag_end, &text_end, &resume);
		add_text(t, pos, text_end, line);
		if (parse_tag(&ps, sigil, body, (size_t)(body_end - body), line) < 0)
			return -1;
		pos = resume;
	}
	if (ps.depth > 0) {
		struct tnode *n = &t->nodes[ps.open[ps.depth - 1]];
		return parse_error(&ps, n->line, "section {{%c%s}} is never closed",
				   n->kind == T_SECTION ? '#' : '^', n->name);
	}
	return 0;
}

static const struct template *set_find(const struct template_set *set, const char *name, size_t *index)
{
	for (size_t i = 0; i < set->count; i++) {
		if (strcmp(set->items[i].name, name) == 0) {
			if (index)
				*index = i;
			return &set->items[i];
		}
	}
	return NULL;
}

/* Every {{> x}} must name a template of the set, so a typo fails at start-up. */
static int resolve_partials(struct template_set *set, char *err, size_t errlen)
{
	for (size_t i = 0; i < set->count; i++) {
		struct template *t = &set->items[i];
		for (size_t j = 0; j < t->count; j++) {
			struct tnode *n = &t->nodes[j];
			if (n->kind != T_PARTIAL)
				continue;
			if (strcmp(n->name, "@content") == 0) {
				n->partial = PARTIAL_CONTENT;
				continue;
			}
			if (!set_find(set, n->name, &n->partial)) {
				err_set(err, errlen, "%s:%d: unknown partial \"%s\"", t->file, n->line, n->name);
				return -1;
			}
		}
	}
	return 0;
}

void template_set_free(struct template_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->count; i++) {
		struct template *t = &set->items[i];
		for (size_t j = 0; j < t->count; j++)
			free(t->nodes[j].name);
		free(t->nodes);
		free(t->name);
		free(t->file);
		free(t->src);
	}
	free(set->items);
	free(set);
}

/* Adds a template; takes ownership of src. */
static int set_add(struct template_set *set, const char *name, char *src, char *err, size_t errlen)
{
	if (set_find(set, name, NULL)) {
		free(src);
		err_set(err, errlen, "template %s given twice", name);
		return -1;
	}
	set->items = xrealloc(set->items, (set->count + 1) * sizeof *set->items);
	struct template *t = &set->items[set->count++];
	memset(t, 0, sizeof *t);
	t->name = xstrdup(name);
	t->file = xmalloc(strlen(name) + sizeof ".html");
	sprintf(t->file, "%s.html", name);
	t->src = src;
	return parse_template(t, err, errlen);
}

struct template_set *template_set_from_strings(const char *const *names, const char *const *sources,
					       size_t n, char *err, size_t errlen)
{
	struct template_set *set = xcalloc(1, sizeof *set);

	for (size_t i = 0; i < n; i++) {
		if (set_add(set, names[i], xstrdup(sources[i]), err, errlen) < 0) {
			template_set_free(set);
			return NULL;
		}
	}
	if (resolve_partials(set, err, errlen) < 0) {
		template_set_free(set);
		return NULL;
	}
	return set;
}

static char *read_file(const char *path, char *err, size_t errlen)
{
	struct strbuf sb = STRBUF_INIT;

	if (strbuf_read_file(&sb, path, SIZE_MAX) < 0) {
		err_set(err, errlen, "%s: %s", path, strerror(errno));
		strbuf_release(&sb);
		return NULL;
	}
	if (memchr(sb.buf, '\0', sb.len)) {
		err_set(err, errlen, "%s: contains a NUL byte", path);
		strbuf_release(&sb);
		return NULL;
	}
	return strbuf_take(&sb);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names (without .html) of the regular *.html files in dir, sorted. */
static char **list_templates(const char *dir, size_t *count, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;

	if (!d) {
		err_set(err, errlen, "%s: %s", dir, strerror(errno));
		return NULL;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		char path[4096];
		struct stat st;

		if (len <= 5 || strcmp(de->d_name + len - 5, ".html") != 0 || de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		names = xrealloc(names, (n + 1) * sizeof *names);
		names[n++] = xstrndup(de->d_name, len - 5);
	}
	closedir(d);
	if (names)
		qsort(names, n, sizeof *names, cmp_str);
	*count = n;
	return names ? names : xcalloc(1, sizeof *names);
}

struct template_set *template_set_open(const char *dir, char *err, size_t errlen)
{
	size_t n = 0;
	char **names = list_templates(dir, &n, err, errlen);
	struct template_set *set;

	if (!names)
		return NULL;
	set = xcalloc(1, sizeof *set);
	for (size_t i = 0; i < n && set; i++) {
		char path[4096];
		char *src;

		snprintf(path, sizeof path, "%s/%s.html", dir, names[i]);
		src = read_file(path, err, errlen);
		if (!src || set_add(set, names[i], src, err, errlen) < 0) {
			template_set_free(set);
			set = NULL;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (set && resolve_partials(set, err, errlen) < 0) {
		template_set_free(set);
		set = NULL;
	}
	return set;
}

/* ---- rendering ---- */

struct render {
	const struct template_set *set;
	struct strbuf *out;	/* appended to */
	size_t out_start;	/* out's length before this render: the output limit counts from there */
	const cJSON *stack[TEMPLATE_MAX_NESTING + 1];	/* the view, then one entry per open section */
	size_t depth;
	int nesting;		/* sections and partials open */
	int partials;		/* partials open */
	size_t steps;
	const struct template *page;	/* rendered where a layout says {{> @content}}; NULL: nothing */
	char *err;
	size_t errlen;
};

static int render_error(struct render *r, const struct template *t, const struct tnode *n, const char *what)
{
	err_set(r->err, r->errlen, "%s at %s:%d", what, t->file, n->line);
	return -1;
}

static int check_output(struct render *r, const struct template *t, const struct tnode *n)
{
	if (r->out->len - r->out_start <= TEMPLATE_MAX_OUTPUT)
		return 0;
	return render_error(r, t, n, "output larger than 16 MiB");
}

static const cJSON *object_get(const cJSON *obj, const char *key, size_t len)
{
	if (!cJSON_IsObject(obj))
		return NULL;
	for (const cJSON *c = obj->child; c; c = c->next)
		if (c->string && c->string[0] == key[0] && strncmp(c->string, key, len) == 0 && c->string[len] == '\0')
			return c;
	return NULL;
}

/* Mustache lookup: the first segment is searched from the innermost context outwards, the
 * others inside what it found. */
static const cJSON *lookup(const struct render *r, const char *name)
{
	const cJSON *v = NULL;
	const char *dot;
	size_t len;

	if (strcmp(name, ".") == 0)
		return r->stack[r->depth - 1];
	dot = strchr(name, '.');
	len = dot ? (size_t)(dot - name) : strlen(name);
	for (size_t i = r->depth; i-- > 0 && !v;)
		v = object_get(r->stack[i], name, len);
	while (v && dot) {
		name = dot + 1;
		dot = strchr(name, '.');
		len = dot ? (size_t)(dot - name) : strlen(name);
		v = object_get(v, name, len);
	}
	return v;
}

/* The text a variable tag shows: strings as they are, numbers, booleans; nothing otherwise. */
static const char *scalar_text(const cJSON *v, char *buf, size_t buflen)
{
	if (cJSON_IsString(v))
		return v->valuestring ? v->valuestring : "";
	if (cJSON_IsTrue(v))
		return "true";
	if (cJSON_IsFalse(v))
		return "false";
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		if (d > -9007199254740992.0 && d < 9007199254740992.0 && d == (double)(long long)d)
			snprintf(buf, buflen, "%lld", (long long)d);
		else
			snprintf(buf, buflen, "%.17g", d);
		return buf;
	}
	return "";
}

static int truthy(const cJSON *v)
{
	if (!v || cJSON_IsFalse(v) || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsArray(v))
		return v->child != NULL;
	if (cJSON_IsString(v) || cJSON_IsRaw(v))
		return v->valuestring && v->valuestring[0];
	if (cJSON_IsNumber(v))
		return v->valuedouble != 0;
	return 1;
}

static int render_range(struct render *r, const struct template *t, size_t from, size_t to);

static int render_pushed(struct render *r, const struct template *t, size_t i, const cJSON *ctx)
{
	const struct tnode *n = &t->nodes[i];
	int rc;

	if (++r->steps > TEMPLATE_MAX_STEPS)
		return render_error(r, t, n, "rendering takes more than 8388608 steps");
	if (r->nesting == TEMPLATE_MAX_NESTING)
		return render_error(r, t, n, "sections and partials nested deeper than 32");
	r->nesting++;
	r->stack[r->depth++] = ctx;
	rc = render_range(r, t, i + 1, n->end);
	r->depth--;
	r->nesting--;
	return rc;
}

static int render_section(struct render *r, const struct template *t, size_t i)
{
	const struct tnode *n = &t->nodes[i];
	const cJSON *v = lookup(r, n->name);

	if (n->kind == T_INVERTED)
		return truthy(v) ? 0 : render_range(r, t, i + 1, n->end);
	if (!truthy(v))
		return 0;
	if (!cJSON_IsArray(v))
		return render_pushed(r, t, i, v);
	for (const cJSON *item = v->child; item; item = item->next)
		if (render_pushed(r, t, i, item) < 0)
			return -1;
	return 0;
}

/* The page where the layout says {{> @content}}, straight into the same output: it sees the view
 * as it was given (not the layout's open sections) and has the nesting limits to itself. */
static int render_content(struct render *r)
{
	const struct template *page = r->page;
	const cJSON *stack[TEMPLATE_MAX_NESTING + 1];
	size_t depth = r->depth;
	int nesting = r->nesting, partials = r->partials, rc;

	if (!page)
		return 0;
	memcpy(stack, r->stack, depth * sizeof stack[0]);
	r->page = NULL;		/* a page's own {{> @content}} is empty */
	r->depth = 1;
	r->nesting = r->partials = 0;
	rc = render_range(r, page, 0, page->count);
	memcpy(r->stack, stack, depth * sizeof stack[0]);
	r->depth = depth;
	r->nesting = nesting;
	r->partials = partials;
	r->page = page;
	return rc;
}

static int render_partial(struct render *r, const struct template *t, const struct tnode *n)
{
	const struct template *p;
	int rc;

	if (n->partial == PARTIAL_CONTENT)
		return render_content(r);
	if (r->partials == TEMPLATE_MAX_PARTIAL_DEPTH)
		return render_error(r, t, n, "partial recursion deeper than 16");
	if (r->nesting == TEMPLATE_MAX_NESTING)
		return render_error(r, t, n, "sections and partials nested deeper than 32");
	p = &r->set->items[n->partial];
	r->partials++;
	r->nesting++;
	rc = render_range(r, p, 0, p->count);
	r->nesting--;
	r->partials--;
	return rc;
}

static int render_range(struct render *r, const struct template *t, size_t from, size_t to)
{
	char num[64];

	for (size_t i = from; i < to; i++) {
		const struct tnode *n = &t->nodes[i];
		const char *s;

		if (++r->steps > TEMPLATE_MAX_STEPS)
			return render_error(r, t, n, "rendering takes more than 8388608 steps");
		switch (n->kind) {
		case T_TEXT:
			strbuf_add(r->out, n->text, n->len);
			break;
		case T_VAR:
			s = scalar_text(lookup(r, n->name), num, sizeof num);
			html_escape(r->out, s, strlen(s));
			break;
		case T_URL:
			s = scalar_text(lookup(r, n->name), num, sizeof num);
			url_escape(r->out, s, strlen(s));
			break;
		case T_RAW:
			strbuf_addstr(r->out, scalar_text(lookup(r, n->name), num, sizeof num));
			break;
		case T_SECTION:
		case T_INVERTED:
			if (render_section(r, t, i) < 0)
				return -1;
			i = n->end - 1;
			break;
		case T_PARTIAL:
			if (render_partial(r, t, n) < 0)
				return -1;
			break;
		}
		if (check_output(r, t, n) < 0)
			return -1;
	}
	return 0;
}

static int render_into(const struct template_set *set, const char *name, const struct template *page,
		       const cJSON *view, struct strbuf *out, char *err, size_t errlen)
{
	struct render r = { .set = set, .out = out, .out_start = out->len, .depth = 1, .page = page,
			    .err = err, .errlen = errlen };
	const struct template *t = set_find(set, name, NULL);

	if (!t) {
		err_set(err, errlen, "unknown template %s", name);
		return -1;
	}
	r.stack[0] = view;
	return render_range(&r, t, 0, t->count);
}

char *template_render(const struct template_set *set, const char *name, const cJSON *view,
		      char *err, size_t errlen)
{
	struct strbuf out = STRBUF_INIT;

	if (render_into(set, name, NULL, view, &out, err, errlen) < 0) {
		strbuf_release(&out);
		return NULL;
	}
	return strbuf_take(&out);
}

int template_render_in_layout(const struct template_set *set, const char *layout, const char *page,
			      const cJSON *view, struct strbuf *out, char *err, size_t errlen)
{
	const struct template *p = set_find(set, page, NULL);
	size_t start = out->len;

	if (!p) {
		err_set(err, errlen, "unknown template %s", page);
		return -1;
	}
	if (render_into(set, layout, p, view, out, err, errlen) < 0) {
		if (out->buf)
			out->buf[out->len = start] = '\0';
		return -1;
	}
	return 0;
}
