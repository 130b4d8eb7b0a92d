#include "s3_xml.h"
#include "strbuf.h"
#include "check.h"

static int collect(const char *path, const char *text, void *ud)
{
	strbuf_addf(ud, "%s=%s;", path, text);
	return 0;
}

static int walk(const char *xml, struct strbuf *out, char *err, size_t errlen)
{
	strbuf_reset(out);
	strbuf_addstr(out, "");
	return s3_xml_walk(xml, strlen(xml), collect, out, err, errlen);
}

static void test_error_reply(void)
{
	struct strbuf out = STRBUF_INIT;
	char err[256] = "";

	CHECK_INTEQ(walk("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code>"
			 "<Message>The specified bucket does not exist</Message><BucketName>b</BucketName></Error>",
			 &out, err, sizeof err), 0);
	CHECK_STREQ(out.buf, "Error/Code=NoSuchBucket;Error/Message=The specified bucket does not exist;"
		    "Error/BucketName=b;Error=;");
	strbuf_release(&out);
}

static void test_listing_with_entities_cdata_and_attributes(void)
{
	struct strbuf out = STRBUF_INIT;
	char err[256] = "";

	CHECK_INTEQ(walk("<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
			 "<Contents><Key>a &amp; b&#x20;&#233;&lt;/Key&gt;</Key><ETag>&quot;9b2c&quot;</ETag>"
			 "<Size>12</Size><Empty/></Contents><NextContinuationToken><![CDATA[1<x>]]></NextContinuationToken>"
			 "<!-- note --></ListBucketResult>", &out, err, sizeof err), 0);
	CHECK_STREQ(out.buf, "ListBucketResult/Contents/Key=a & b \xc3\xa9</Key>;"
		    "ListBucketResult/Contents/ETag=\"9b2c\";ListBucketResult/Contents/Size=12;"
		    "ListBucketResult/Contents/Empty=;ListBucketResult/Contents=;"
		    "ListBucketResult/NextContinuationToken=1<x>;ListBucketResult=;");
	strbuf_release(&out);
}

static void test_malformed_rejected(void)
{
	static const char *bad[] = {
		"", "   ", "<a>", "<a></b>", "</a>", "<a></a><b></b>", "x<a></a>", "<a>&bogus;</a>",
		"<a>&#0;</a>", "<a>&#xD800;</a>", "<a>&#99999999999;</a>", "<a", "<a><!-- x</a>",
		"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>", "<a><![CDATA[x</a>", "< a></a>",
	};
	struct strbuf out = STRBUF_INIT;
	char err[256];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		if (walk(bad[i], &out, err, sizeof err) != -1) {
			printf("# accepted: %s\n", bad[i]);
			CHECK(0);
		}
		CHECK(strncmp(err, "malformed XML reply at byte ", 28) == 0);
	}
	CHECK_INTEQ(walk("<a></b>", &out, err, sizeof err), -1);
	CHECK_STREQ(err, "malformed XML reply at byte 7: end tag does not match its start tag");
	strbuf_release(&out);
}

static void test_bounds(void)
{
	struct strbuf doc = STRBUF_INIT, out = STRBUF_INIT;
	char err[256] = "";

	for (int i = 0; i < S3_XML_MAX_DEPTH + 1; i++)
		strbuf_addstr(&doc, "<a>");
	CHECK_INTEQ(walk(doc.buf, &out, err, sizeof err), -1);
	CHECK(strstr(err, "nested too deeply") != NULL);
	strbuf_reset(&doc);
	strbuf_addstr(&doc, "<a>");
	for (int i = 0; i < S3_XML_MAX_TEXT + 1; i++)
		strbuf_addch(&doc, 'x');
	strbuf_addstr(&doc, "</a>");
	CHECK_INTEQ(walk(doc.buf, &out, err, sizeof err), -1);
	CHECK(strstr(err, "text too long") != NULL);
	strbuf_release(&doc);
	strbuf_release(&out);
}

static int stop_at_code(const char *path, const char *text, void *ud)
{
	(void)text;
	(void)ud;
	return strcmp(path, "Error/Code") == 0 ? 7 : 0;
}

static void test_callback_stops_walk(void)
{
	const char *xml = "<Error><Code>X</Code><Message>m</Message></Error>";
	char err[64];

	CHECK_INTEQ(s3_xml_walk(xml, strlen(xml), stop_at_code, NULL, err, sizeof err), 7);
}

int main(void)
{
	RUN(test_error_reply);
	RUN(test_listing_with_entities_cdata_and_attributes);
	RUN(test_malformed_rejected);
	RUN(test_bounds);
	RUN(test_callback_stops_walk);
	return check_done();
}
