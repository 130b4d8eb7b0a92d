#include "template.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[256];

/* Renders one template against a JSON view; returns a malloc'd string or NULL (reason in err). */
static char *render1(const char *src, const char *json)
{
	const char *names[] = { "t" };
	const char *sources[] = { src };
	struct template_set *set = template_set_from_strings(names, sources, 1, err, sizeof err);
	cJSON *view = json ? cJSON_Parse(json) : NULL;
	char *out;

	if (!set)
		return NULL;
	out = template_render(set, "t", view, err, sizeof err);
	cJSON_Delete(view);
	template_set_free(set);
	return out;
}

#define CHECK_RENDER(src, json, want) do { \
	char *got_ = render1(src, json); \
	CHECK_STREQ(got_ ? got_ : err, want); \
	free(got_); \
} while (0)

#define CHECK_PARSE_ERROR(src, want) do { \
	const char *n_[] = { "page" }, *s_[] = { src }; \
	struct template_set *set_ = template_set_from_strings(n_, s_, 1, err, sizeof err); \
	CHECK(set_ == NULL); \
	CHECK_STREQ(set_ ? "(parsed)" : err, want); \
	template_set_free(set_); \
} while (0)

static void test_escapes_each_special_character_in_text(void)
{
	CHECK_RENDER("{{x}}", "{\"x\":\"<\"}", "&lt;");
	CHECK_RENDER("{{x}}", "{\"x\":\">\"}", "&gt;");
	CHECK_RENDER("{{x}}", "{\"x\":\"&\"}", "&amp;");
	CHECK_RENDER("{{x}}", "{\"x\":\"\\\"\"}", "&quot;");
	CHECK_RENDER("{{x}}", "{\"x\":\"'\"}", "&#39;");
	CHECK_RENDER("{{x}}", "{\"x\":\"`\"}", "&#96;");
	CHECK_RENDER("{{x}}", "{\"x\":\"=\"}", "&#61;");
	CHECK_RENDER("<p>{{x}}</p>", "{\"x\":\"a<script>alert(1)</script>b\"}",
		     "<p>a&lt;script&gt;alert(1)&lt;/script&gt;b</p>");
}

static void test_escapes_in_attributes(void)
{
	CHECK_RENDER("<a title=\"{{x}}\">", "{\"x\":\"\\\" onmouseover=alert(1) x=\\\"\"}",
		     "<a title=\"&quot; onmouseover&#61;alert(1) x&#61;&quot;\">");
	CHECK_RENDER("<a title='{{x}}'>", "{\"x\":\"' autofocus onfocus='x\"}",
		     "<a title='&#39; autofocus onfocus&#61;&#39;x'>");
}

static void test_url_context_escapes_everything_but_unreserved(void)
{
	CHECK_RENDER("<a href=\"/x?q={{%q}}\">", "{\"q\":\"a b&c=d/\\\"<>'`é~._-\"}",
		     "<a href=\"/x?q=a%20b%26c%3Dd%2F%22%3C%3E%27%60%C3%A9~._-\">");
	CHECK_RENDER("{{% n }}", "{\"n\":42}", "42");
}

static void test_raw_tag_is_unescaped(void)
{
	CHECK_RENDER("{{& html}}|{{html}}", "{\"html\":\"<b>x</b>\"}", "<b>x</b>|&lt;b&gt;x&lt;/b&gt;");
}

static void test_scalars_and_missing_keys(void)
{
	CHECK_RENDER("[{{missing}}][{{a.b.missing}}]", "{\"a\":{}}", "[][]");
	CHECK_RENDER("{{i}} {{neg}} {{f}} {{big}} {{t}} {{fa}} {{nul}} {{obj}} {{arr}}",
		     "{\"i\":42,\"neg\":-7,\"f\":1.5,\"big\":1e300,\"t\":true,\"fa\":false,\"nul\":null,"
		     "\"obj\":{\"a\":1},\"arr\":[1]}",
		     "42 -7 1.5 1.0000000000000001e+300 true false   ");
	CHECK_RENDER("{{n}}", "{\"n\":9007199254740991}", "9007199254740991");
	CHECK_RENDER("{{x}}", NULL, "");
	CHECK_RENDER("{{%missing}}", "{}", "");
}

static void test_sections_over_arrays_objects_and_scalars(void)
{
	CHECK_RENDER("{{#items}}<li>{{name}}</li>{{/items}}", "{\"items\":[{\"name\":\"a\"},{\"name\":\"<b>\"}]}",
		     "<li>a</li><li>&lt;b&gt;</li>");
	CHECK_RENDER("{{#items}}{{.}},{{/items}}", "{\"items\":[1,\"x\",true]}", "1,x,true,");
	CHECK_RENDER("{{#user}}{{name}}{{/user}}", "{\"user\":{\"name\":\"ann\"}}", "ann");
	CHECK_RENDER("{{#on}}yes{{/on}}{{#off}}no{{/off}}", "{\"on\":true,\"off\":false}", "yes");
	CHECK_RENDER("{{#s}}[{{.}}]{{/s}}{{#e}}no{{/e}}", "{\"s\":\"x\",\"e\":\"\"}", "[x]");
	CHECK_RENDER("{{#n}}[{{.}}]{{/n}}{{#z}}no{{/z}}", "{\"n\":3,\"z\":0}", "[3]");
	CHECK_RENDER("{{#a}}no{{/a}}{{#nul}}no{{/nul}}{{#missing}}no{{/missing}}", "{\"a\":[],\"nul\":null}", "");
	CHECK_RENDER("{{#o}}yes{{/o}}", "{\"o\":{}}", "yes");
}

static void test_inverted_sections(void)
{
	CHECK_RENDER("{{^a}}none{{/a}}", "{\"a\":[]}", "none");
	CHECK_RENDER("{{^a}}none{{/a}}", "{\"a\":[1]}", "");
	CHECK_RENDER("{{^missing}}m{{/missing}}{{^f}}f{{/f}}{{^z}}z{{/z}}{{^e}}e{{/e}}{{^t}}t{{/t}}",
		     "{\"f\":false,\"z\":0,\"e\":\"\",\"t\":true}", "mfze");
}

static void test_dotted_names_and_context_stack(void)
{
	CHECK_RENDER("{{a.b.c}}", "{\"a\":{\"b\":{\"c\":\"deep\"}}}", "deep");
	CHECK_RENDER("{{a.b.c}}", "{\"a\":{\"b\":\"notobj\"}}", "");
	/* Inner names shadow outer ones; missing inner names fall back to outer contexts. */
	CHECK_RENDER("{{#rows}}{{name}}@{{org}};{{/rows}}",
		     "{\"org\":\"acme\",\"rows\":[{\"name\":\"a\"},{\"name\":\"b\",\"org\":\"other\"}]}",
		     "a@acme;b@other;");
	/* A dotted name resolves its first part through the stack, the rest inside it only. */
	CHECK_RENDER("{{#rows}}{{a.x}}|{{/rows}}", "{\"a\":{\"x\":1},\"rows\":[{\"a\":{}},{}]}", "|1|");
	CHECK_RENDER("{{#a}}{{#b}}{{c}}{{/b}}{{/a}}", "{\"c\":\"root\",\"a\":{\"b\":{}}}", "root");
}

static void test_partials_and_layout(void)
{
	const char *names[] = { "layout", "page", "row", "nav" };
	const char *sources[] = {
		"<html>{{> nav}}<main>{{> @content}}</main></html>",
		"<h1>{{title}}</h1><ul>{{#rows}}{{> row}}{{/rows}}</ul>",
		"<li>{{name}}</li>",
		"<nav>{{user}}</nav>",
	};
	struct template_set *set = template_set_from_strings(names, sources, 4, err, sizeof err);
	cJSON *view = cJSON_Parse("{\"title\":\"T&C\",\"user\":\"<u>\",\"rows\":[{\"name\":\"a\"},{\"name\":\"b\"}]}");
	struct strbuf page = STRBUF_INIT;
	char *out;

	CHECK(set != NULL);
	if (!set)
		return;
	out = template_render(set, "page", view, err, sizeof err);
	CHECK_STREQ(out, "<h1>T&amp;C</h1><ul><li>a</li><li>b</li></ul>");
	free(out);
	strbuf_addstr(&page, "<!-- kept -->");
	CHECK_INTEQ(template_render_in_layout(set, "layout", "page", view, &page, err, sizeof err), 0);
	CHECK_STREQ(page.buf, "<!-- kept --><html><nav>&lt;u&gt;</nav><main><h1>T&amp;C</h1><ul><li>a</li><li>b</li></ul></main></html>");
	/* Outside a layout, @content is empty. */
	out = template_render(set, "layout", view, err, sizeof err);
	CHECK_STREQ(out, "<html><nav>&lt;u&gt;</nav><main></main></html>");
	free(out);
	CHECK(template_render(set, "nope", view, err, sizeof err) == NULL);
	CHECK_STREQ(err, "unknown template nope");
	CHECK_INTEQ(template_render_in_layout(set, "layout", "nope", view, &page, err, sizeof err), -1);
	CHECK_STREQ(err, "unknown template nope");
	CHECK_STREQ(page.buf, "<!-- kept --><html><nav>&lt;u&gt;</nav><main><h1>T&amp;C</h1><ul><li>a</li><li>b</li></ul></main></html>");
	strbuf_release(&page);
	cJSON_Delete(view);
	template_set_free(set);
}

/* The page is rendered straight into the layout's output: it sees the view as given, not the
 * section the layout has open around {{> @content}}, and that section is intact after it. A page
 * that fails half-way leaves the caller's buffer as it was. */
static void test_layout_page_sees_the_view_and_a_failed_page_leaves_nothing(void)
{
	const char *names[] = { "layout", "page", "loop" };
	const char *sources[] = {
		"{{#sec}}[{{> @content}}|{{x}}]{{/sec}}",
		"{{x}}{{#o}}{{x}}{{/o}}{{> @content}}",
		"deep{{> loop}}",
	};
	struct template_set *set = template_set_from_strings(names, sources, 3, err, sizeof err);
	cJSON *view = cJSON_Parse("{\"x\":\"root\",\"o\":{\"x\":\"o\"},\"sec\":{\"x\":\"inner\"}}");
	struct strbuf out = STRBUF_INIT;

	CHECK(set != NULL);
	if (!set)
		return;
	CHECK_INTEQ(template_render_in_layout(set, "layout", "page", view, &out, err, sizeof err), 0);
	CHECK_STREQ(out.buf, "[rooto|inner]");
	CHECK_INTEQ(template_render_in_layout(set, "layout", "loop", view, &out, err, sizeof err), -1);
	CHECK(strstr(err, "partial recursion deeper than 16") != NULL);
	CHECK_STREQ(out.buf, "[rooto|inner]");
	strbuf_release(&out);
	cJSON_Delete(view);
	template_set_free(set);
}

static void test_standalone_lines_are_removed(void)
{
	CHECK_RENDER("<ul>\n  {{#a}}\n  <li>{{.}}</li>\n  {{/a}}\n</ul>\n", "{\"a\":[1,2]}",
		     "<ul>\n  <li>1</li>\n  <li>2</li>\n</ul>\n");
	CHECK_RENDER("a\n{{! note }}\r\nb {{! inline }}c\n", NULL, "a\nb c\n");
	CHECK_RENDER("x {{#t}}\ny{{/t}}", "{\"t\":true}", "x \ny");
}

static void test_syntax_errors_have_line_numbers(void)
{
	CHECK_PARSE_ERROR("a\n{{#rows}}\nb\n", "page.html:2: section {{#rows}} is never closed");
	CHECK_PARSE_ERROR("a\n\n{{#a}}{{^b}}\n{{/a}}{{/b}}", "page.html:4: {{/a}} does not match {{^b}} opened on line 3");
	CHECK_PARSE_ERROR("x\n{{/a}}", "page.html:2: {{/a}} closes no open section");
	CHECK_PARSE_ERROR("{{{x}}}", "page.html:1: unknown tag kind '{'");
	CHECK_PARSE_ERROR("\n{{=<% %>=}}", "page.html:2: unknown tag kind '='");
	CHECK_PARSE_ERROR("ok\n{{ name", "page.html:2: tag {{ is never closed with }}");
	CHECK_PARSE_ERROR("{{a b}}", "page.html:1: invalid name \"a b\"");
	CHECK_PARSE_ERROR("{{a..b}}", "page.html:1: invalid name \"a..b\"");
	CHECK_PARSE_ERROR("{{}}", "page.html:1: empty tag {{}}");
	CHECK_PARSE_ERROR("\n\n{{> missing}}", "page.html:3: unknown partial \"missing\"");
}

static void test_nesting_and_recursion_are_bounded(void)
{
	const char *names[] = { "self", "a", "b" };
	const char *sources[] = { "x{{#more}}{{> self}}{{/more}}", "{{> b}}", "\n{{> a}}" };
	struct template_set *set = template_set_from_strings(names, sources, 3, err, sizeof err);
	cJSON *view = cJSON_Parse("{\"more\":true}");

	CHECK(set != NULL);
	if (!set)
		return;
	CHECK(template_render(set, "a", view, err, sizeof err) == NULL);
	CHECK_STREQ(err, "partial recursion deeper than 16 at a.html:1");
	/* Each level opens a section and a partial: the 32-deep nesting bound stops it first. */
	CHECK(template_render(set, "self", view, err, sizeof err) == NULL);
	CHECK_STREQ(err, "sections and partials nested deeper than 32 at self.html:1");
	cJSON_Delete(view);
	template_set_free(set);

	struct strbuf deep = STRBUF_INIT;
	for (int i = 0; i < 33; i++)
		strbuf_addstr(&deep, "{{#a}}");
	CHECK_PARSE_ERROR(deep.buf, "page.html:1: sections nested deeper than 32");
	strbuf_release(&deep);
}

static void test_work_and_output_are_bounded(void)
{
	/* Ten nested loops over the same 10-element array: 10^10 iterations without the step bound. */
	struct strbuf src = STRBUF_INIT;
	for (int i = 0; i < 10; i++)
		strbuf_addstr(&src, "{{#a}}");
	for (int i = 0; i < 10; i++)
		strbuf_addstr(&src, "{{/a}}");
	char *out = render1(src.buf, "{\"a\":[0,1,2,3,4,5,6,7,8,9]}");
	CHECK(out == NULL);
	CHECK_STREQ(err, "rendering takes more than 8388608 steps at t.html:1");
	free(out);
	strbuf_release(&src);

	/* 1 MiB string shown 17 times: 17 MiB. */
	cJSON *view = cJSON_CreateObject();
	char *big = malloc(1 << 20);
	memset(big, 'x', (1 << 20) - 1);
	big[(1 << 20) - 1] = '\0';
	cJSON_AddStringToObject(view, "s", big);
	free(big);
	const char *names[] = { "t" };
	const char *sources[] = { "{{s}}{{s}}{{s}}{{s}}{{s}}{{s}}{{s}}{{s}}{{s}}{{s}}{{s}}{{s}}{{s}}{{s}}{{s}}{{s}}{{s}}" };
	struct template_set *set = template_set_from_strings(names, sources, 1, err, sizeof err);
	CHECK(template_render(set, "t", view, err, sizeof err) == NULL);
	CHECK_STREQ(err, "output larger than 16 MiB at t.html:1");
	template_set_free(set);
	cJSON_Delete(view);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

static void test_open_loads_a_directory(void)
{
	char dir[] = "/tmp/test_template_XXXXXX";
	char path[512];
	struct template_set *set;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/hello.html", dir);
	write_file(path, "Hello {{who}}{{> footer}}");
	snprintf(path, sizeof path, "%s/footer.html", dir);
	write_file(path, "!");
	snprintf(path, sizeof path, "%s/notes.txt", dir);
	write_file(path, "{{#not a template");

	set = template_set_open(dir, err, sizeof err);
	CHECK(set != NULL);
	if (set) {
		cJSON *view = cJSON_Parse("{\"who\":\"<world>\"}");
		char *out = template_render(set, "hello", view, err, sizeof err);
		CHECK_STREQ(out, "Hello &lt;world&gt;!");
		free(out);
		cJSON_Delete(view);
		template_set_free(set);
	}

	snprintf(path, sizeof path, "%s/broken.html", dir);
	write_file(path, "line one\n{{#x}}\n");
	set = template_set_open(dir, err, sizeof err);
	CHECK(set == NULL);
	CHECK_STREQ(err, "broken.html:2: section {{#x}} is never closed");
	unlink(path);

	snprintf(path, sizeof path, "%s/hello.html", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/footer.html", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/notes.txt", dir);
	unlink(path);
	rmdir(dir);

	CHECK(template_set_open("/nonexistent/templates", err, sizeof err) == NULL);
	CHECK_STREQ(err, "/nonexistent/templates: No such file or directory");
}

static void test_escape_primitives(void)
{
	struct strbuf sb = STRBUF_INIT;

	html_escape(&sb, "a\0<", 3);
	CHECK_INTEQ(sb.len, 6);
	CHECK(memcmp(sb.buf, "a\0&lt;", 6) == 0);
	strbuf_reset(&sb);
	url_escape(&sb, "AZaz09-._~ /?#\xff", 15);
	CHECK_STREQ(sb.buf, "AZaz09-._~%20%2F%3F%23%FF");
	strbuf_release(&sb);
}

int main(void)
{
	RUN(test_escapes_each_special_character_in_text);
	RUN(test_escapes_in_attributes);
	RUN(test_url_context_escapes_everything_but_unreserved);
	RUN(test_raw_tag_is_unescaped);
	RUN(test_scalars_and_missing_keys);
	RUN(test_sections_over_arrays_objects_and_scalars);
	RUN(test_inverted_sections);
	RUN(test_dotted_names_and_context_stack);
	RUN(test_partials_and_layout);
	RUN(test_layout_page_sees_the_view_and_a_failed_page_leaves_nothing);
	RUN(test_standalone_lines_are_removed);
	RUN(test_syntax_errors_have_line_numbers);
	RUN(test_nesting_and_recursion_are_bounded);
	RUN(test_work_and_output_are_bounded);
	RUN(test_open_loads_a_directory);
	RUN(test_escape_primitives);
	return check_done();
}
