/* SigV4 against AWS's published vectors: the generic test suite (service "service",
 * 20150830T123600Z) and the S3 examples of the S3 SigV4 documentation (examplebucket,
 * 20130524T000000Z). */
#include "sigv4.h"
#include "check.h"

#include <stdlib.h>

#define SUITE_DATE "20150830T123600Z"
#define S3_DATE "20130524T000000Z"
#define S3_HOST "examplebucket.s3.amazonaws.com"

static struct sigv4_request suite_request(const char *method, const char *path)
{
	struct sigv4_request r = {
		.method = method, .path = path, .payload_sha256 = SIGV4_EMPTY_SHA256,
		.amz_date = SUITE_DATE, .region = "us-east-1", .service = "service",
		.access_key = "AKIDEXAMPLE", .secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	};
	return r;
}

static struct sigv4_request s3_request(const char *method, const char *path)
{
	struct sigv4_request r = {
		.method = method, .path = path, .payload_sha256 = SIGV4_EMPTY_SHA256,
		.amz_date = S3_DATE, .region = "us-east-1", .service = "s3",
		.access_key = "AKIAIOSFODNN7EXAMPLE", .secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	};
	return r;
}

static const struct sigv4_pair suite_headers[] = {
	{ "Host", "example.amazonaws.com" }, { "X-Amz-Date", SUITE_DATE },
};

static void test_get_vanilla(void)
{
	struct sigv4_request r = suite_request("GET", "/");
	struct sigv4_signature s;

	r.headers = suite_headers;
	r.nheaders = 2;
	CHECK_INTEQ(sigv4_sign(&r, &s), 0);
	CHECK_STREQ(s.canonical_request, "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
		    "host;x-amz-date\n" SIGV4_EMPTY_SHA256);
	CHECK_STREQ(s.string_to_sign, "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
		    "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
	CHECK_STREQ(s.authorization, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
		    "SignedHeaders=host;x-amz-date, "
		    "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
	sigv4_signature_free(&s);
}

static void test_get_vanilla_query_order_key_case(void)
{
	static const struct sigv4_pair q[] = { { "Param2", "value2" }, { "Param1", "value1" } };
	struct sigv4_request r = suite_request("GET", "/");
	struct sigv4_signature s;

	r.headers = suite_headers;
	r.nheaders = 2;
	r.query = q;
	r.nquery = 2;
	CHECK_INTEQ(sigv4_sign(&r, &s), 0);
	CHECK(strstr(s.canonical_request, "\nParam1=value1&Param2=value2\n") != NULL);
	CHECK_STREQ(s.signature, "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
	sigv4_signature_free(&s);
}

static void test_post_x_www_form_urlencoded(void)
{
	static const struct sigv4_pair h[] = {
		{ "Content-Type", "application/x-www-form-urlencoded" },
		{ "Host", "example.amazonaws.com" }, { "X-Amz-Date", SUITE_DATE },
	};
	struct sigv4_request r = suite_request("POST", "/");
	struct sigv4_signature s;
	char body_hash[65];

	sigv4_sha256_hex("Param1=value1", 13, body_hash);
	CHECK_STREQ(body_hash, "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
	r.headers = h;
	r.nheaders = 3;
	r.payload_sha256 = body_hash;
	CHECK_INTEQ(sigv4_sign(&r, &s), 0);
	CHECK(strstr(s.string_to_sign, "\n42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281") != NULL);
	CHECK(strstr(s.authorization, "SignedHeaders=content-type;host;x-amz-date, ") != NULL);
	CHECK_STREQ(s.signature, "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
	sigv4_signature_free(&s);
}

static void test_get_utf8(void)
{
	struct sigv4_request r = suite_request("GET", "/\xe1\x88\xb4");
	struct sigv4_signature s;

	r.headers = suite_headers;
	r.nheaders = 2;
	CHECK_INTEQ(sigv4_sign(&r, &s), 0);
	CHECK(strncmp(s.canonical_request, "GET\n/%E1%88%B4\n", 15) == 0);
	CHECK_STREQ(s.signature, "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
	sigv4_signature_free(&s);
}

static void test_s3_get_object_with_range(void)
{
	static const struct sigv4_pair h[] = {
		{ "Host", S3_HOST }, { "Range", "bytes=0-9" },
		{ "x-amz-content-sha256", SIGV4_EMPTY_SHA256 }, { "x-amz-date", S3_DATE },
	};
	struct sigv4_request r = s3_request("GET", "/test.txt");
	struct sigv4_signature s;

	r.headers = h;
	r.nheaders = 4;
	CHECK_INTEQ(sigv4_sign(&r, &s), 0);
	CHECK_STREQ(s.string_to_sign, "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
		    "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
	CHECK_STREQ(s.authorization, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
		    "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
		    "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	sigv4_signature_free(&s);
}

static void test_s3_put_object(void)
{
	const char *body = "Welcome to Amazon S3.";
	char hash[65];
	struct sigv4_pair h[] = {
		{ "Date", "Fri, 24 May 2013 00:00:00 GMT" }, { "Host", S3_HOST },
		{ "x-amz-content-sha256", hash }, { "x-amz-date", S3_DATE },
		{ "x-amz-storage-class", "REDUCED_REDUNDANCY" },
	};
	struct sigv4_request r = s3_request("PUT", "/test$file.text");
	struct sigv4_signature s;

	sigv4_sha256_hex(body, strlen(body), hash);
	CHECK_STREQ(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
	r.headers = h;
	r.nheaders = 5;
	r.payload_sha256 = hash;
	CHECK_INTEQ(sigv4_sign(&r, &s), 0);
	CHECK(strncmp(s.canonical_request, "PUT\n/test%24file.text\n\n", 23) == 0);
	CHECK_STREQ(s.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
	sigv4_signature_free(&s);
}

static void test_s3_list_objects_and_lifecycle(void)
{
	static const struct sigv4_pair h[] = {
		{ "Host", S3_HOST }, { "x-amz-content-sha256", SIGV4_EMPTY_SHA256 }, { "x-amz-date", S3_DATE },
	};
	static const struct sigv4_pair list[] = { { "prefix", "J" }, { "max-keys", "2" } };
	static const struct sigv4_pair lifecycle[] = { { "lifecycle", NULL } };
	struct sigv4_request r = s3_request("GET", "/");
	struct sigv4_signature s;

	r.headers = h;
	r.nheaders = 3;
	r.query = list;
	r.nquery = 2;
	CHECK_INTEQ(sigv4_sign(&r, &s), 0);
	CHECK(strstr(s.canonical_request, "\nmax-keys=2&prefix=J\n") != NULL);
	CHECK_STREQ(s.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
	sigv4_signature_free(&s);
	r.query = lifecycle;
	r.nquery = 1;
	CHECK_INTEQ(sigv4_sign(&r, &s), 0);
	CHECK_STREQ(s.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
	sigv4_signature_free(&s);
}

static void test_header_values_trimmed_and_repeats_joined(void)
{
	static const struct sigv4_pair h[] = {
		{ "My-Header1", "  value1  " }, { "My-Header2", "\"a   b   c\"" }, { "my-header1", "value2" },
		{ "Host", "example.amazonaws.com" },
	};
	struct sigv4_request r = suite_request("GET", "/");
	struct sigv4_signature s;

	r.headers = h;
	r.nheaders = 4;
	CHECK_INTEQ(sigv4_sign(&r, &s), 0);
	CHECK(strstr(s.canonical_request, "\nmy-header1:value1,value2\nmy-header2:\"a b c\"\n\nhost;my-header1;my-header2\n") != NULL);
	sigv4_signature_free(&s);
}

static void test_uri_encoding_of_keys(void)
{
	struct strbuf sb = STRBUF_INIT;
	const char key[] = "dir/a b+c=\xc3\xbc~_.-*\x01\xff";

	sigv4_uri_encode(&sb, key, sizeof key - 1, 1);
	CHECK_STREQ(sb.buf, "dir/a%20b%2Bc%3D%C3%BC~_.-%2A%01%FF");
	strbuf_reset(&sb);
	sigv4_uri_encode(&sb, key, sizeof key - 1, 0);
	CHECK_STREQ(sb.buf, "dir%2Fa%20b%2Bc%3D%C3%BC~_.-%2A%01%FF");
	strbuf_release(&sb);
}

static void test_rejects_bad_date_and_missing_fields(void)
{
	struct sigv4_request r = suite_request("GET", "/");
	struct sigv4_signature s;

	r.amz_date = "2015-08-30T12:36:00Z";
	CHECK_INTEQ(sigv4_sign(&r, &s), -1);
	r = suite_request("GET", "/");
	r.secret_key = NULL;
	CHECK_INTEQ(sigv4_sign(&r, &s), -1);
}

static void test_amz_date(void)
{
	char d[17];

	sigv4_amz_date(1369353600, d);
	CHECK_STREQ(d, "20130524T000000Z");
}

int main(void)
{
	RUN(test_get_vanilla);
	RUN(test_get_vanilla_query_order_key_case);
	RUN(test_post_x_www_form_urlencoded);
	RUN(test_get_utf8);
	RUN(test_s3_get_object_with_range);
	RUN(test_s3_put_object);
	RUN(test_s3_list_objects_and_lifecycle);
	RUN(test_header_values_trimmed_and_repeats_joined);
	RUN(test_uri_encoding_of_keys);
	RUN(test_rejects_bad_date_and_missing_fields);
	RUN(test_amz_date);
	return check_done();
}
