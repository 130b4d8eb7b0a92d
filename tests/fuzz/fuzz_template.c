/* libFuzzer target: the input is a template, a NUL byte, then a JSON view. The template is loaded
 * beside a few partials (one recursive) and rendered alone and inside a layout. */
#include "template.h"
#include "strbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	const char *sep = memchr(buf, '\0', size);
	size_t tlen = sep ? (size_t)(sep - buf) : size;
	char *src = xstrndup(buf, tlen);
	char *json = sep ? xstrndup(sep + 1, size - tlen - 1) : xstrdup("{}");
	const char *names[] = { "t", "row", "tree", "layout" };
	const char *sources[] = {
		src,
		"<li title=\"{{name}}\">{{name}} <a href=\"/x?q={{%name}}\">{{.}}</a></li>\n",
		"{{#children}}<ul>{{> tree}}</ul>{{/children}}",
		"<html>\n  {{> @content}}\n{{! end }}\n</html>",
	};
	char err[256];
	struct template_set *set = template_set_from_strings(names, sources, 4, err, sizeof err);
	cJSON *view = cJSON_Parse(json);

	if (set) {
		char *out = template_render(set, "t", view, err, sizeof err);
		if (out && strlen(out) > TEMPLATE_MAX_OUTPUT)
			abort();
		free(out);
		struct strbuf page = STRBUF_INIT;
		strbuf_addstr(&page, "kept");
		/* a failed render leaves the buffer as it was */
		if (template_render_in_layout(set, "layout", "t", view, &page, err, sizeof err) < 0 &&
		    strcmp(page.buf, "kept") != 0)
			abort();
		strbuf_release(&page);
	}
	template_set_free(set);
	cJSON_Delete(view);
	free(src);
	free(json);
	return 0;
}
