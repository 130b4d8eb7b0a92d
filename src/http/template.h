/* A mustache-like template engine that HTML-escapes by default, fed by cJSON.
 *
 * Tags: {{name}} escaped text, {{a.b}} dotted lookup, {{.}} the current item, {{#name}}..{{/name}}
 * section, {{^name}}..{{/name}} inverted section, {{> partial}}, {{! comment }}, {{%name}}
 * URL-component escaped, {{& name}} raw (the only unescaped output, so a grep finds them all).
 * Templates are parsed once at start-up; every syntax error and unknown partial fails there. */
#ifndef STOWAGE_TEMPLATE_H
#define STOWAGE_TEMPLATE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "strbuf.h"

#define TEMPLATE_MAX_NESTING 32			/* sections and partials open at once */
#define TEMPLATE_MAX_PARTIAL_DEPTH 16		/* partials open at once */
#define TEMPLATE_MAX_OUTPUT (16u << 20)		/* bytes one render may produce */
#define TEMPLATE_MAX_STEPS (8u << 20)		/* tags and texts one render may visit */

struct template_set;

/* Loads and parses every *.html under dir (one level; name = file name without .html).
 * NULL with "file.html:LINE: reason" in err on the first error. */
struct template_set *template_set_open(const char *dir, char *err, size_t errlen);
/* Same, from memory: names[i] -> sources[i]. */
struct template_set *template_set_from_strings(const char *const *names, const char *const *sources,
					       size_t n, char *err, size_t errlen);
void template_set_free(struct template_set *set);
/* Renders template `name` against `view` (NULL is an empty view). Returns a malloc'd string, or NULL
 * with the reason in err. */
char *template_render(const struct template_set *set, const char *name, const cJSON *view,
		      char *err, size_t errlen);
/* Renders `layout` with `page` where the layout says {{> @content}}, appending to out: 0, or -1 with
 * the reason in err and out as it was. */
int template_render_in_layout(const struct template_set *set, const char *layout, const char *page,
			      const cJSON *view, struct strbuf *out, char *err, size_t errlen);

/* Escapes & < > " ' ` = as entities: safe in text and in quoted attributes. */
void html_escape(struct strbuf *out, const char *s, size_t len);
/* Keeps RFC 3986 unreserved characters, writes every other byte as %XX. */
void url_escape(struct strbuf *out, const char *s, size_t len);

#endif
