#include "http_parse.h"
#include "strbuf.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

static char err[256];

static int parse_query(const char *q, size_t max_fields, struct kv_list *out)
{
	err[0] = '\0';
	return http_parse_urlencoded(q, strlen(q), max_fields, out, err, sizeof err);
}

static void test_urlencoded_decodes_percent_and_plus(void)
{
	struct kv_list l = { 0 };

	CHECK_INTEQ(parse_query("name=a+b%20c&q=%C3%A9t%c3%a9&empty=&flag&x=1%2B1%3D2", 10, &l), 0);
	CHECK_INTEQ(l.count, 5);
	CHECK_STREQ(kv_get(&l, "name"), "a b c");
	CHECK_STREQ(kv_get(&l, "q"), "été");
	CHECK_STREQ(kv_get(&l, "empty"), "");
	CHECK_STREQ(kv_get(&l, "flag"), "");
	CHECK_STREQ(kv_get(&l, "x"), "1+1=2");
	CHECK(kv_get(&l, "nope") == NULL);
	kv_list_free(&l);

	/* Keys are decoded too; empty segments between '&' are not fields. */
	CHECK_INTEQ(parse_query("a%5Bb%5D=1&&c=2&", 10, &l), 0);
	CHECK_INTEQ(l.count, 2);
	CHECK_STREQ(kv_get(&l, "a[b]"), "1");
	CHECK_STREQ(kv_get(&l, "c"), "2");
	kv_list_free(&l);
	CHECK_INTEQ(parse_query("", 10, &l), 0);
	CHECK_INTEQ(l.count, 0);
}

static void test_urlencoded_keeps_duplicates_in_order(void)
{
	struct kv_list l = { 0 };

	CHECK_INTEQ(parse_query("ns=a&other=x&ns=b&ns=c", 10, &l), 0);
	CHECK_INTEQ(kv_count(&l, "ns"), 3);
	CHECK_STREQ(kv_get(&l, "ns"), "a");
	CHECK_STREQ(l.items[0].value, "a");
	CHECK_STREQ(l.items[2].value, "b");
	CHECK_STREQ(l.items[3].value, "c");
	CHECK(l.items[0].filename == NULL);
	kv_list_free(&l);
}

static void test_urlencoded_rejects_bad_input(void)
{
	struct kv_list l = { 0 };

	CHECK_INTEQ(parse_query("a=1&b=%4", 10, &l), -1);
	CHECK_STREQ(err, "field \"b\": malformed %-escape at offset 6");
	CHECK_INTEQ(l.count, 0);	/* the good field before the error is undone */
	CHECK_INTEQ(parse_query("a=%zz", 10, &l), -1);
	CHECK_STREQ(err, "field \"a\": malformed %-escape at offset 2");
	CHECK_INTEQ(parse_query("a%g1=1", 10, &l), -1);
	CHECK_STREQ(err, "field name at offset 0: malformed %-escape at offset 1");
	CHECK_INTEQ(parse_query("a=x%00y", 10, &l), -1);
	CHECK_STREQ(err, "field \"a\": NUL byte at offset 3");
	CHECK_INTEQ(parse_query("a=%C3%28", 10, &l), -1);
	CHECK_STREQ(err, "field \"a\": value is not valid UTF-8");
	CHECK_INTEQ(parse_query("a=%ED%A0%80", 10, &l), -1);	/* a UTF-16 surrogate */
	CHECK_STREQ(err, "field \"a\": value is not valid UTF-8");
	CHECK_INTEQ(parse_query("a=%C0%AF", 10, &l), -1);	/* overlong '/' */
	CHECK_STREQ(err, "field \"a\": value is not valid UTF-8");
	CHECK_INTEQ(parse_query("ok=1&%FF=1", 10, &l), -1);
	CHECK_STREQ(err, "field name at offset 5 is not valid UTF-8");
	CHECK_INTEQ(parse_query("a=1&=2", 10, &l), -1);
	CHECK_STREQ(err, "field at offset 4 has an empty name");
	CHECK_INTEQ(parse_query("a=1&b=2&c=3", 2, &l), -1);
	CHECK_STREQ(err, "more than 2 fields");
	CHECK_INTEQ(parse_query("a=1&b=2", 2, &l), 0);
	kv_list_free(&l);

	struct strbuf q = STRBUF_INIT;
	for (int i = 0; i < 129; i++)
		strbuf_addch(&q, 'k');
	strbuf_addstr(&q, "=v");
	CHECK_INTEQ(parse_query(q.buf, 10, &l), -1);
	CHECK_STREQ(err, "field name at offset 0 is longer than 128 bytes");
	q.buf[128] = '=';	/* a 128-byte key is fine */
	CHECK_INTEQ(parse_query(q.buf, 10, &l), 0);
	kv_list_free(&l);
	strbuf_release(&q);
}

static void test_cookies_skip_junk(void)
{
	struct kv_list l = { 0 };

	CHECK_INTEQ(http_parse_cookies("sid=abc123; theme=\"dark\";junk; =novalue; bad name=x; ok=1;"
				       " sp=a b; csrf=t0k-en_", &l, err, sizeof err), 0);
	CHECK_INTEQ(l.count, 4);
	CHECK_STREQ(kv_get(&l, "sid"), "abc123");
	CHECK_STREQ(kv_get(&l, "theme"), "dark");
	CHECK_STREQ(kv_get(&l, "ok"), "1");
	CHECK_STREQ(kv_get(&l, "csrf"), "t0k-en_");
	CHECK(kv_get(&l, "sp") == NULL);
	kv_list_free(&l);
	CHECK_INTEQ(http_parse_cookies(NULL, &l, err, sizeof err), 0);
	CHECK_INTEQ(http_parse_cookies("", &l, err, sizeof err), 0);
	CHECK_INTEQ(l.count, 0);
}

static void test_cookies_are_limited(void)
{
	struct kv_list l = { 0 };
	struct strbuf h = STRBUF_INIT;

	for (int i = 0; i < 64; i++)
		strbuf_addf(&h, "c%d=%d; ", i, i);
	CHECK_INTEQ(http_parse_cookies(h.buf, &l, err, sizeof err), 0);
	CHECK_INTEQ(l.count, 64);
	kv_list_free(&l);
	strbuf_addstr(&h, "one=toomany");
	CHECK_INTEQ(http_parse_cookies(h.buf, &l, err, sizeof err), -1);
	CHECK_STREQ(err, "Cookie header has more than 64 cookies");
	CHECK_INTEQ(l.count, 0);
	kv_list_free(&l);
	strbuf_release(&h);
}

static int parse_mp(const char *body, size_t len, const char *ct, struct kv_list *out)
{
	err[0] = '\0';
	return http_parse_multipart(body, len, ct, 10, out, err, sizeof err);
}

#define MP(s) s, sizeof(s) - 1

static void test_multipart_fields_and_files(void)
{
	struct kv_list l = { 0 };
	static const char body[] =
		"preamble to ignore\r\n"
		"--XyZ\r\n"
		"Content-Disposition: form-data; name=\"cluster\"\r\n"
		"\r\n"
		"prod\r\n"
		"--XyZ\r\n"
		"content-disposition: form-data; name=\"kubeconfig\"; filename=\"my \\\"kube\\\".yaml\"\r\n"
		"Content-Type: application/octet-stream\r\n"
		"\r\n"
		"bin\0ary\r\n--XyZnot-a-delimiter\r\n\r\n"
		"--XyZ \r\n"
		"Content-Disposition: form-data; name=empty\r\n"
		"\r\n"
		"\r\n"
		"--XyZ--\r\n"
		"epilogue";

	CHECK_INTEQ(parse_mp(MP(body), "multipart/form-data; boundary=\"XyZ\"", &l), 0);
	CHECK_STREQ(err, "");
	CHECK_INTEQ(l.count, 3);
	if (l.count != 3)
		return;
	CHECK_STREQ(l.items[0].key, "cluster");
	CHECK_STREQ(l.items[0].value, "prod");
	CHECK(l.items[0].filename == NULL);
	CHECK_STREQ(l.items[1].key, "kubeconfig");
	CHECK_STREQ(l.items[1].filename, "my \"kube\".yaml");
	CHECK_INTEQ(l.items[1].value_len, 31);
	CHECK(memcmp(l.items[1].value, "bin\0ary\r\n--XyZnot-a-delimiter\r\n", 31) == 0);
	CHECK(l.items[1].value[31] == '\0');
	CHECK_STREQ(l.items[2].key, "empty");
	CHECK_INTEQ(l.items[2].value_len, 0);
	kv_list_free(&l);
}

static void test_multipart_unquoted_boundary_and_no_parts(void)
{
	struct kv_list l = { 0 };

	CHECK_INTEQ(parse_mp(MP("--b-1\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b-1--"),
			     "Multipart/Form-Data;charset=utf-8; BOUNDARY=b-1", &l), 0);
	CHECK_INTEQ(l.count, 1);
	CHECK_STREQ(kv_get(&l, "a"), "x");
	kv_list_free(&l);
	CHECK_INTEQ(parse_mp(MP("--b--\r\n"), "multipart/form-data; boundary=b", &l), 0);
	CHECK_INTEQ(l.count, 0);
}

static void test_multipart_errors(void)
{
	struct kv_list l = { 0 };
	static const char one[] = "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b--";

	CHECK_INTEQ(parse_mp(MP(one), "multipart/form-data", &l), -1);
	CHECK_STREQ(err, "Content-Type has no boundary");
	CHECK_INTEQ(parse_mp(MP(one), "multipart/form-data; boundary=\"\"", &l), -1);
	CHECK_STREQ(err, "Content-Type has no boundary");
	CHECK_INTEQ(parse_mp(MP(one), "application/x-www-form-urlencoded; boundary=b", &l), -1);
	CHECK_STREQ(err, "Content-Type is not multipart/form-data");
	CHECK_INTEQ(parse_mp(MP(one), "multipart/form-data; boundary="
			     "12345678901234567890123456789012345678901234567890123456789012345678901", &l), -1);
	CHECK_STREQ(err, "multipart boundary is longer than 70 characters");
	CHECK_INTEQ(parse_mp(MP(one), "multipart/form-data; boundary=\"a\nb\"", &l), -1);
	CHECK_STREQ(err, "multipart boundary has invalid characters");
	CHECK_INTEQ(parse_mp(MP("--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b\r\n"
				"Content-Disposition: form-data; name=c\r\n\r\ntruncated"),
			     "multipart/form-data; boundary=b", &l), -1);
	CHECK_STREQ(err, "multipart body has no closing boundary");
	CHECK_INTEQ(l.count, 0);
	CHECK_INTEQ(parse_mp(MP("no delimiter at all"), "multipart/form-data; boundary=b", &l), -1);
	CHECK_STREQ(err, "multipart body has no boundary line");
	CHECK_INTEQ(parse_mp(MP("--b\r\nContent-Disposition: form-data; filename=x\r\n\r\nx\r\n--b--"),
			     "multipart/form-data; boundary=b", &l), -1);
	CHECK_STREQ(err, "part 1 has no name");
	CHECK_INTEQ(parse_mp(MP("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--"),
			     "multipart/form-data; boundary=b", &l), -1);
	CHECK_STREQ(err, "part 1 has no name");
	CHECK_INTEQ(parse_mp(MP("--b\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--b--"),
			     "multipart/form-data; boundary=b", &l), -1);
	CHECK_STREQ(err, "part 1: Content-Disposition is not form-data");
	CHECK_INTEQ(parse_mp(MP("--b\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--b--"),
			     "multipart/form-data; boundary=b", &l), -1);
	CHECK_STREQ(err, "part 1: unterminated quoted string in Content-Disposition");
	CHECK_INTEQ(parse_mp(MP("--b\r\nno colon here\r\n\r\nx\r\n--b--"), "multipart/form-data; boundary=b", &l), -1);
	CHECK_STREQ(err, "part 1: malformed header line");
	CHECK_INTEQ(parse_mp(MP("--b\r\nContent-Disposition: form-data; name=a\r\nx"),
			     "multipart/form-data; boundary=b", &l), -1);
	CHECK_STREQ(err, "part 1: headers never end");

	struct strbuf big = STRBUF_INIT;
	strbuf_addstr(&big, "--b\r\nContent-Disposition: form-data; name=a\r\nX-Pad: ");
	for (int i = 0; i < 9000; i++)
		strbuf_addch(&big, 'p');
	strbuf_addstr(&big, "\r\n\r\nx\r\n--b--");
	CHECK_INTEQ(parse_mp(big.buf, big.len, "multipart/form-data; boundary=b", &l), -1);
	CHECK_STREQ(err, "part 1: header block larger than 8 KiB");
	strbuf_release(&big);

	struct strbuf many = STRBUF_INIT;
	for (int i = 0; i < 11; i++)
		strbuf_addf(&many, "--b\r\nContent-Disposition: form-data; name=f%d\r\n\r\n%d\r\n", i, i);
	strbuf_addstr(&many, "--b--");
	CHECK_INTEQ(parse_mp(many.buf, many.len, "multipart/form-data; boundary=b", &l), -1);
	CHECK_STREQ(err, "more than 10 parts");
	CHECK_INTEQ(l.count, 0);
	kv_list_free(&l);
	strbuf_release(&many);
}

static void test_path_check(void)
{
	CHECK_INTEQ(http_path_check("/", err, sizeof err), 0);
	CHECK_INTEQ(http_path_check("/clusters/prod-1/backups", err, sizeof err), 0);
	CHECK_INTEQ(http_path_check("/files/caf\xc3\xa9", err, sizeof err), 0);
	CHECK_INTEQ(http_path_check("clusters", err, sizeof err), -1);
	CHECK_STREQ(err, "path must start with '/'");
	CHECK_INTEQ(http_path_check("/a/../etc/passwd", err, sizeof err), -1);
	CHECK_STREQ(err, "path contains \"..\"");
	CHECK_INTEQ(http_path_check("/a//b", err, sizeof err), -1);
	CHECK_STREQ(err, "path contains \"//\"");
	CHECK_INTEQ(http_path_check("/a%2e%2e/b", err, sizeof err), -1);
	CHECK_STREQ(err, "path has a '%' at offset 2");
	CHECK_INTEQ(http_path_check("/a\nb", err, sizeof err), -1);
	CHECK_STREQ(err, "path has a control character at offset 2");
	CHECK_INTEQ(http_path_check("/a\x7f", err, sizeof err), -1);
	CHECK_STREQ(err, "path has a control character at offset 2");
	CHECK_INTEQ(http_path_check("/\xff", err, sizeof err), -1);
	CHECK_STREQ(err, "path is not valid UTF-8");

	char longp[1100];
	memset(longp, 'a', sizeof longp);
	longp[0] = '/';
	longp[1024] = '\0';
	CHECK_INTEQ(http_path_check(longp, err, sizeof err), 0);
	longp[1024] = 'a';
	longp[1025] = '\0';
	CHECK_INTEQ(http_path_check(longp, err, sizeof err), -1);
	CHECK_STREQ(err, "path is longer than 1024 bytes");
}

static void test_accept_and_media_types(void)
{
	CHECK(http_accepts_json("application/json"));
	CHECK(http_accepts_json("Application/JSON; charset=utf-8"));
	CHECK(http_accepts_json("application/json, text/html"));
	CHECK(http_accepts_json("text/plain, application/json;q=0.9, text/html;q=0.8"));
	CHECK(!http_accepts_json("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
	CHECK(!http_accepts_json("text/html, application/json"));
	CHECK(!http_accepts_json("*/*"));
	CHECK(!http_accepts_json("application/jsonp"));
	CHECK(!http_accepts_json(""));
	CHECK(!http_accepts_json(NULL));

	CHECK(http_media_type_is("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"));
	CHECK(http_media_type_is(" Multipart/Form-Data ; boundary=x", "multipart/form-data"));
	CHECK(!http_media_type_is("multipart/form-datax", "multipart/form-data"));
	CHECK(!http_media_type_is("text/html", "text/htm"));
	CHECK(!http_media_type_is(NULL, "text/html"));
}

int main(void)
{
	RUN(test_urlencoded_decodes_percent_and_plus);
	RUN(test_urlencoded_keeps_duplicates_in_order);
	RUN(test_urlencoded_rejects_bad_input);
	RUN(test_cookies_skip_junk);
	RUN(test_cookies_are_limited);
	RUN(test_multipart_fields_and_files);
	RUN(test_multipart_unquoted_boundary_and_no_parts);
	RUN(test_multipart_errors);
	RUN(test_path_check);
	RUN(test_accept_and_media_types);
	return check_done();
}
