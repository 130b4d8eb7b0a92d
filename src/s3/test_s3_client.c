/* The S3 client's checks of its settings and its reading of what an endpoint answers (error
 * replies, ETags and their MD5, listings and continuation tokens, the reply size limit,
 * multipart uploads that fail), against a scripted HTTP endpoint on loopback
 * (tests/loopback_server.h): the replies are the test's input. */
#include "s3_client.h"
#include "sigv4.h"
#include "strbuf.h"
#include "check.h"
#include "loopback_server.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static struct loopback_server srv;
static struct strbuf seen = STRBUF_INIT;	/* "METHOD target\n" per request */
static struct loopback_request last;		/* the last request, without its body */
static struct strbuf last_body = STRBUF_INIT;
static int script;				/* what the endpoint does, per test */
static int calls;

static void remember(const struct loopback_request *rq)
{
	strbuf_addf(&seen, "%s %s\n", rq->method, rq->target);
	memcpy(&last, rq, offsetof(struct loopback_request, body));
	strbuf_reset(&last_body);
	strbuf_add(&last_body, rq->body.buf ? rq->body.buf : "", rq->body.len);
	calls++;
}

static void xml_reply(struct strbuf *out, int status, const char *xml)
{
	loopback_reply(out, status, "Content-Type: application/xml\r\n", xml, strlen(xml));
}

/* A HEAD's reply: the object's length and ETag, no body. */
static void head_reply(struct strbuf *out, size_t len, const char *etag)
{
	strbuf_addf(out, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nETag: %s\r\nConnection: close\r\n\r\n", len, etag);
}

static void md5_etag(const char *data, size_t len, char out[35])
{
	unsigned char md[16];
	unsigned int n = 0;

	EVP_Digest(data, len, md, &n, EVP_md5(), NULL);
	out[0] = '"';
	for (int i = 0; i < 16; i++)
		snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
	out[33] = '"';
	out[34] = '\0';
}

static struct s3_client *start(loopback_handler fn, int path_style, const char *resolve_host)
{
	struct s3_conf conf = { .bucket = "bkt", .access_key = "AKIDTEST", .secret_key = "secret-key-1",
				.region = "eu-west-1", .path_style = path_style };
	struct s3_client *c;
	char err[256] = "", resolve[128];

	strbuf_reset(&seen);
	calls = 0;
	if (loopback_server_start(&srv, 0, fn, NULL) < 0) {
		printf("Bail out! cannot start the loopback server\n");
		exit(1);
	}
	conf.endpoint = srv.url;
	if (resolve_host) {
		snprintf(resolve, sizeof resolve, "%s:%d:127.0.0.1", resolve_host, srv.port);
		conf.resolve = resolve;
	}
	c = s3_client_new(&conf, NULL, err, sizeof err);
	if (!c) {
		printf("Bail out! s3_client_new: %s\n", err);
		exit(1);
	}
	return c;
}

static void stop(struct s3_client *c)
{
	s3_client_free(c);
	loopback_server_stop(&srv);
}

/* ---- without an endpoint ---- */

static void test_client_new_checks_settings(void)
{
	static const struct { const char *bucket, *region, *endpoint, *words; } bad[] = {
		{ NULL, NULL, NULL, "bucket" },
		{ "ab", NULL, NULL, "bucket" },
		{ "a-bucket-name-of-sixty-four-characters-is-one-too-long-for-s3xyz", NULL, NULL, "bucket" },
		{ "a b", NULL, NULL, "bucket" },
		{ "bkt/x", NULL, NULL, "bucket" },
		{ "bkt", "", NULL, "region" },
		{ "bkt", "EU-WEST-1", NULL, "region" },
		{ "bkt", "eu west", NULL, "region" },
		{ "bkt", NULL, "not a url", "endpoint" },
		{ "bkt", NULL, "ftp://127.0.0.1:21", "scheme" },
		{ "bkt", NULL, "file:///etc", "endpoint" },
		{ "bkt", NULL, "http://127.0.0.1:9000/other-bucket", "path" },
	};
	struct s3_conf conf = { .access_key = "AKID", .secret_key = "sk" }, back;
	struct s3_client *c;
	char err[256];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		conf.bucket = (char *)bad[i].bucket;
		conf.region = (char *)bad[i].region;
		conf.endpoint = (char *)bad[i].endpoint;
		err[0] = '\0';
		c = s3_client_new(&conf, NULL, err, sizeof err);
		CHECK(c == NULL);
		if (!strstr(err, bad[i].words))
			printf("# case %zu: %s\n", i, err);
		CHECK(strstr(err, bad[i].words) != NULL);
		s3_client_free(c);
	}
	conf.bucket = "bkt";
	conf.region = NULL;
	conf.endpoint = NULL;
	conf.access_key = "";
	CHECK(s3_client_new(&conf, NULL, err, sizeof err) == NULL);
	CHECK(strstr(err, "access key") != NULL);
	conf.access_key = "AKID";
	conf.secret_key = NULL;
	CHECK(s3_client_new(&conf, NULL, err, sizeof err) == NULL);
	CHECK(strstr(err, "secret key") != NULL);
	conf.secret_key = "sk";
	conf.timeout_ms = -1;
	CHECK(s3_client_new(&conf, NULL, err, sizeof err) == NULL);
	CHECK(strstr(err, "timeout") != NULL);
	conf.timeout_ms = 0;
	/* AWS by default; what the client keeps is what it was given, defaults filled in */
	c = s3_client_new(&conf, NULL, err, sizeof err);
	CHECK(c != NULL);
	s3_client_conf(c, &back);
	CHECK(back.endpoint == NULL);
	CHECK_STREQ(back.region, "us-east-1");
	CHECK_STREQ(back.bucket, "bkt");
	CHECK_INTEQ(back.timeout_ms, 30000);
	CHECK(back.op_timeout_ms > 0);
	CHECK(back.resolve == NULL);
	s3_client_free(c);
	/* the longest bucket name, and the characters MinIO's older names may carry */
	conf.bucket = "a-bucket-name-of-sixty-three-characters-is-just-short-enough_.x";
	c = s3_client_new(&conf, NULL, err, sizeof err);
	CHECK(c != NULL);
	s3_client_free(c);
	conf.bucket = "bkt";
	conf.endpoint = "https://minio.example:9000/";
	conf.resolve = "minio.example:9000:10.1.2.3";
	conf.path_style = 1;
	c = s3_client_new(&conf, NULL, err, sizeof err);
	CHECK(c != NULL);
	s3_client_conf(c, &back);
	CHECK_STREQ(back.endpoint, "https://minio.example:9000/");
	CHECK_STREQ(back.resolve, "minio.example:9000:10.1.2.3");
	CHECK_INTEQ(back.path_style, 1);
	s3_client_free(c);
}

static void test_error_describe_words(void)
{
	struct s3_error e = { .http_status = 404 };
	char buf[256];

	snprintf(e.bucket, sizeof e.bucket, "bkt");
	snprintf(e.code, sizeof e.code, "NoSuchBucket");
	s3_error_describe(&e, buf, sizeof buf);
	CHECK_STREQ(buf, "bucket bkt does not exist");
	snprintf(e.code, sizeof e.code, "NotFound");
	s3_error_describe(&e, buf, sizeof buf);
	CHECK_STREQ(buf, "object not found in bucket bkt");
	e.http_status = 400;
	snprintf(e.code, sizeof e.code, "AuthorizationHeaderMalformed");
	snprintf(e.message, sizeof e.message, "expecting eu-west-1");
	s3_error_describe(&e, buf, sizeof buf);
	CHECK_STREQ(buf, "wrong region for bucket bkt: expecting eu-west-1");
	snprintf(e.code, sizeof e.code, "QuotaExceeded");
	s3_error_describe(&e, buf, sizeof buf);
	CHECK_STREQ(buf, "QuotaExceeded (HTTP 400): expecting eu-west-1");
	e.curl_code = 7;
	snprintf(e.message, sizeof e.message, "connection refused");
	s3_error_describe(&e, buf, sizeof buf);
	CHECK_STREQ(buf, "endpoint unreachable: connection refused");
}

static void answer_ok(const struct loopback_request *rq, struct strbuf *out, void *ud)
{
	(void)ud;
	remember(rq);
	if (script == 1 && calls == 1)	/* one SlowDown, then success */
		xml_reply(out, 503, "<Error><Code>SlowDown</Code><Message>wait</Message></Error>");
	else if (script == 2)		/* we already own the bucket */
		xml_reply(out, 409, "<Error><Code>BucketAlreadyOwnedByYou</Code><Message>yours</Message></Error>");
	else
		loopback_reply(out, 200, "ETag: \"x\"\r\n", "", 0);
}

static int never(const struct s3_object_info *o, void *ud)
{
	(void)o;
	(void)ud;
	return 0;
}

static int write_nothing(const void *d, size_t n, void *ud)
{
	(void)d;
	(void)n;
	(void)ud;
	return 0;
}

static void test_local_refusals_send_nothing(void)
{
	struct s3_client *c = start(answer_ok, 1, NULL);
	struct strbuf out = STRBUF_INIT;
	struct s3_error e;
	char key[1100];

	CHECK_INTEQ(s3_put_mem(c, "", "x", 1, &e), -1);
	CHECK_STREQ(e.code, "InvalidKey");
	memset(key, 'k', sizeof key);
	key[1025] = '\0';
	CHECK_INTEQ(s3_get_mem(c, key, 10, &out, &e), -1);
	CHECK_STREQ(e.code, "InvalidKey");
	CHECK_INTEQ(s3_get_stream(c, "k", -1, -1, write_nothing, NULL, &e), -1);
	CHECK_STREQ(e.code, "InvalidRange");
	CHECK_INTEQ(s3_get_stream(c, "k", 0, 0, write_nothing, NULL, &e), -1);
	CHECK_STREQ(e.code, "InvalidRange");
	CHECK_INTEQ(s3_get_stream(c, "k", 0, -2, write_nothing, NULL, &e), -1);
	CHECK_INTEQ(s3_list(c, "", 0, never, NULL, &e), -1);
	CHECK_STREQ(e.code, "InvalidArgument");
	CHECK_INTEQ(s3_list(c, "", 1001, never, NULL, &e), -1);
	CHECK_INTEQ(atomic_load(&srv.requests), 0);
	strbuf_release(&out);
	stop(c);
}

/* ---- requests and error replies ---- */

static void answer_errors(const struct loopback_request *rq, struct strbuf *out, void *ud)
{
	static const char slow_down[] = "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>";

	(void)ud;
	remember(rq);
	if (strcmp(rq->method, "HEAD") == 0)
		strbuf_addstr(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
	else if (strstr(rq->target, "/denied"))
		xml_reply(out, 403, "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>"
			  "<Message>Access Denied.</Message><Resource>/bkt/denied</Resource></Error>");
	else if (strstr(rq->target, "/html"))
		loopback_reply(out, 400, NULL, "<html>proxy</html>", 18);
	else if (strstr(rq->target, "/in-200"))
		/* CompleteMultipartUpload's way: a 200 that is an error */
		xml_reply(out, 200, "<Error><Code>AccessDenied</Code><Message>changed its mind</Message></Error>");
	else if (strstr(rq->target, "/slow"))
		/* asks for more time than the retry budget: given up at once */
		loopback_reply(out, 503, "Retry-After: 3600\r\nContent-Type: application/xml\r\n", slow_down,
			       strlen(slow_down));
	else
		xml_reply(out, 404, "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>");
}

static void test_error_replies(void)
{
	struct s3_client *c = start(answer_errors, 1, NULL);
	struct strbuf out = STRBUF_INIT;
	struct s3_error e;
	char words[256], etag[64] = "untouched";
	int64_t size = 77;

	CHECK_INTEQ(s3_put_mem(c, "denied", "x", 1, &e), -1);
	CHECK_INTEQ(e.http_status, 403);
	CHECK_STREQ(e.code, "AccessDenied");
	CHECK_STREQ(e.message, "Access Denied.");
	s3_error_describe(&e, words, sizeof words);
	CHECK_STREQ(words, "access denied (check the key's permissions on bucket bkt)");
	CHECK_INTEQ(calls, 1);	/* not retried */

	CHECK_INTEQ(s3_get_mem(c, "nobucket", 100, &out, &e), -1);
	CHECK_STREQ(e.code, "NoSuchBucket");
	s3_error_describe(&e, words, sizeof words);
	CHECK_STREQ(words, "bucket bkt does not exist");
	CHECK_INTEQ(out.len, 0);	/* the error body is not the object */

	/* a HEAD's error has no body: its code comes from the status */
	CHECK_INTEQ(s3_head(c, "missing", &size, etag, sizeof etag, &e), -1);
	CHECK_INTEQ(e.http_status, 404);
	CHECK_STREQ(e.code, "NotFound");
	CHECK_INTEQ(size, 77);
	CHECK_STREQ(etag, "untouched");

	CHECK_INTEQ(s3_delete(c, "html", &e), -1);
	CHECK_STREQ(e.code, "HttpError");
	CHECK_STREQ(e.message, "HTTP status 400");

	CHECK_INTEQ(s3_put_mem(c, "in-200", "x", 1, &e), -1);
	CHECK_STREQ(e.code, "AccessDenied");
	CHECK_STREQ(e.message, "changed its mind");

	calls = 0;
	CHECK_INTEQ(s3_put_mem(c, "slow", "x", 1, &e), -1);
	CHECK_STREQ(e.code, "SlowDown");
	CHECK_INTEQ(e.http_status, 503);
	CHECK_INTEQ(calls, 1);
	/* the secret is in no error */
	CHECK(strstr(e.message, "secret-key-1") == NULL);
	strbuf_release(&out);
	stop(c);
}

static void test_requests_are_addressed_and_signed(void)
{
	struct s3_client *c;
	struct s3_error e;
	char header[512], want[100];

	/* path style: the bucket in the path; every byte of the key outside [A-Za-z0-9-._~/]
	 * percent-encoded */
	c = start(answer_ok, 1, NULL);
	script = 0;
	CHECK_INTEQ(s3_put_mem(c, "dir/a b+c=d", "payload", 7, &e), 0);
	CHECK_STREQ(seen.buf, "PUT /bkt/dir/a%20b%2Bc%3Dd\n");
	snprintf(want, sizeof want, "127.0.0.1:%d", srv.port);
	CHECK_STREQ(last.host, want);
	CHECK_STREQ(last_body.buf, "payload");
	CHECK_INTEQ(loopback_header(&last, "Authorization", header, sizeof header), 0);
	CHECK(strncmp(header, "AWS4-HMAC-SHA256 Credential=AKIDTEST/", 37) == 0);
	CHECK(strstr(header, "/eu-west-1/s3/aws4_request") != NULL);
	CHECK(strstr(header, "secret-key-1") == NULL);
	/* the payload is named by its SHA-256 (which the server checks), and by nothing slower */
	CHECK_INTEQ(loopback_header(&last, "x-amz-content-sha256", header, sizeof header), 0);
	CHECK_STREQ(header, "239f59ed55e737c77147cf55ad0c1b030b6d7ee748a7426952f9b852d5a935e5");
	CHECK_INTEQ(loopback_header(&last, "Content-MD5", header, sizeof header), -1);
	/* a caller that has the body's SHA-256 already (a pack, named by it) has it signed as it
	 * is, not computed again: the server's check of it is what catches a wrong one */
	CHECK_INTEQ(s3_put_mem_hashed(c, "pack", "payload", 7,
				      "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", &e), 0);
	CHECK_INTEQ(loopback_header(&last, "x-amz-content-sha256", header, sizeof header), 0);
	CHECK_STREQ(header, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
	/* a retryable failure is retried */
	script = 1;
	calls = 0;
	CHECK_INTEQ(s3_delete(c, "k", &e), 0);
	CHECK_INTEQ(calls, 2);
	/* creating a bucket we own already succeeds; a region is named in the body */
	script = 2;
	strbuf_reset(&seen);
	CHECK_INTEQ(s3_create_bucket(c, &e), 0);
	CHECK_STREQ(seen.buf, "PUT /bkt\n");
	CHECK(strstr(last_body.buf, "<LocationConstraint>eu-west-1</LocationConstraint>") != NULL);
	stop(c);

	/* virtual-hosted style: the bucket in the host name, pinned to loopback */
	c = start(answer_ok, 0, "bkt.127.0.0.1");
	script = 0;
	CHECK_INTEQ(s3_put_mem(c, "dir/a b", "", 0, &e), 0);
	CHECK_STREQ(seen.buf, "PUT /dir/a%20b\n");
	snprintf(want, sizeof want, "bkt.127.0.0.1:%d", srv.port);
	CHECK_STREQ(last.host, want);
	stop(c);
}

/* ---- objects and their ETags ---- */

static const char object[] = "the object's bytes";
static char object_etag[80];
static const char *object_sse;

static void answer_object(const struct loopback_request *rq, struct strbuf *out, void *ud)
{
	char range[64], headers[256];
	long from, to;

	(void)ud;
	remember(rq);
	snprintf(headers, sizeof headers, "ETag: %s\r\n%s%s%s", object_etag, object_sse ? "x-amz-server-side-encryption: " : "",
		 object_sse ? object_sse : "", object_sse ? "\r\n" : "");
	if (strcmp(rq->method, "HEAD") == 0) {
		head_reply(out, sizeof object - 1, object_etag);
	} else if (loopback_header(rq, "Range", range, sizeof range) == 0 &&
		   sscanf(range, "bytes=%ld-%ld", &from, &to) == 2 && to < (long)sizeof object - 1) {
		strbuf_addf(out, "HTTP/1.1 206 Partial\r\nContent-Length: %ld\r\nConnection: close\r\n%s\r\n", to - from + 1, headers);
		strbuf_add(out, object + from, (size_t)(to - from + 1));
	} else {
		loopback_reply(out, 200, headers, object, sizeof object - 1);
	}
}

static int append(const void *data, size_t len, void *ud)
{
	strbuf_add(ud, data, len);
	return 0;
}

static void test_objects_are_checked_against_their_etag(void)
{
	struct s3_client *c = start(answer_object, 1, NULL);
	struct strbuf out = STRBUF_INIT;
	struct s3_error e;
	char etag[128], range[64];
	int64_t size = 0;

	md5_etag(object, sizeof object - 1, object_etag);
	object_sse = NULL;
	CHECK_INTEQ(s3_head(c, "o", &size, etag, sizeof etag, &e), 0);
	CHECK_INTEQ(size, sizeof object - 1);
	CHECK_STREQ(etag, object_etag);	/* quotes and all */
	CHECK_INTEQ(s3_get_mem(c, "o", 1000, &out, &e), 0);
	CHECK_STREQ(out.buf, object);
	/* streamed whole: a HEAD, then one GET checked against the ETag */
	strbuf_reset(&out);
	strbuf_reset(&seen);
	CHECK_INTEQ(s3_get_stream(c, "o", 0, -1, append, &out, &e), 0);
	CHECK_STREQ(out.buf, object);
	CHECK_STREQ(seen.buf, "HEAD /bkt/o\nGET /bkt/o\n");
	/* a range asks for exactly its bytes */
	strbuf_reset(&out);
	CHECK_INTEQ(s3_get_stream(c, "o", 4, 6, append, &out, &e), 0);
	CHECK_STREQ(out.buf, "object");
	CHECK_INTEQ(loopback_header(&last, "Range", range, sizeof range), 0);
	CHECK_STREQ(range, "bytes=4-9");
	/* more than the caller's cap */
	CHECK_INTEQ(s3_get_mem(c, "o", 5, &out, &e), -1);
	CHECK_STREQ(e.code, "TooLarge");

	/* an MD5 ETag that the bytes do not match */
	snprintf(object_etag, sizeof object_etag, "\"%s\"", "0123456789abcdef0123456789abcdef");
	CHECK_INTEQ(s3_get_mem(c, "o", 1000, &out, &e), -1);
	CHECK_STREQ(e.code, "BadDigest");
	strbuf_reset(&out);
	CHECK_INTEQ(s3_get_stream(c, "o", 0, -1, append, &out, &e), -1);
	CHECK_STREQ(e.code, "BadDigest");
	/* ETags that are not an MD5 are not held against the data: multipart, KMS, other */
	snprintf(object_etag, sizeof object_etag, "\"%s-3\"", "0123456789abcdef0123456789abcdef");
	CHECK_INTEQ(s3_get_mem(c, "o", 1000, &out, &e), 0);
	snprintf(object_etag, sizeof object_etag, "\"%s\"", "0123456789abcdef0123456789abcdef");
	object_sse = "aws:kms";
	CHECK_INTEQ(s3_get_mem(c, "o", 1000, &out, &e), 0);
	object_sse = "AES256";	/* SSE-S3: the ETag is the MD5 again */
	CHECK_INTEQ(s3_get_mem(c, "o", 1000, &out, &e), -1);
	CHECK_STREQ(e.code, "BadDigest");
	object_sse = NULL;
	snprintf(object_etag, sizeof object_etag, "W/\"weak\"");
	CHECK_INTEQ(s3_get_mem(c, "o", 1000, &out, &e), 0);
	strbuf_release(&out);
	stop(c);
}

/* ---- listings ---- */

static size_t giant_listing;

static void answer_list(const struct loopback_request *rq, struct strbuf *out, void *ud)
{
	(void)ud;
	remember(rq);
	if (giant_listing) {
		struct strbuf x = STRBUF_INIT;

		strbuf_addstr(&x, "<ListBucketResult><Contents><Key>");
		while (x.len < giant_listing)
			strbuf_addstr(&x, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk");
		xml_reply(out, 200, x.buf);
		strbuf_release(&x);
	} else if (strstr(rq->target, "prefix=endless")) {
		xml_reply(out, 200, "<ListBucketResult><IsTruncated>true</IsTruncated>"
			  "<NextContinuationToken>same</NextContinuationToken></ListBucketResult>");
	} else if (strstr(rq->target, "prefix=notoken")) {
		xml_reply(out, 200, "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>");
	} else if (strstr(rq->target, "prefix=broken")) {
		xml_reply(out, 200, "<ListBucketResult><Contents><Key>a</Key></Contents");
	} else if (strstr(rq->target, "prefix=p%2Fdata%2Findex%2F")) {
		/* a key outside the prefix asked for, after one inside it */
		xml_reply(out, 200, "<ListBucketResult><Contents><Key>p/data/index/ab</Key></Contents>"
			  "<Contents><Key>p/foo</Key></Contents><Contents><Key>p/data/index/cd</Key></Contents>"
			  "</ListBucketResult>");
	} else if (strstr(rq->target, "prefix=nokey")) {
		xml_reply(out, 200, "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>");
	} else if (strstr(rq->target, "prefix=denied")) {
		xml_reply(out, 403, "<Error><Code>AccessDenied</Code><Message>no listing</Message></Error>");
	} else if (!strstr(rq->target, "continuation-token=")) {
		xml_reply(out, 200, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult>"
			  "<Name>bkt</Name><IsTruncated>true</IsTruncated>"
			  "<Contents><Key>p/a</Key><Size>1</Size><ETag>\"e1\"</ETag><LastModified>2026-01-02T03:04:05.000Z</LastModified></Contents>"
			  "<Contents><Key>p/b &amp; c</Key><Size>22</Size></Contents>"
			  "<NextContinuationToken>t/1+=</NextContinuationToken></ListBucketResult>");
	} else if (strstr(rq->target, "continuation-token=t%2F1%2B%3D")) {
		xml_reply(out, 200, "<ListBucketResult><IsTruncated>false</IsTruncated>"
			  "<Contents><Key>p/c</Key><Size>333</Size></Contents></ListBucketResult>");
	} else {
		xml_reply(out, 400, "<Error><Code>InvalidArgument</Code><Message>bad token</Message></Error>");
	}
}

struct keys {
	struct strbuf text;
	int stop_at, n;
};

static int collect(const struct s3_object_info *o, void *ud)
{
	struct keys *k = ud;

	strbuf_addf(&k->text, "%s|%lld|%s|%s;", o->key, (long long)o->size, o->etag, o->last_modified);
	return k->stop_at && ++k->n >= k->stop_at;
}

static void test_listing_follows_tokens_and_refuses_hostile_ones(void)
{
	struct s3_client *c = start(answer_list, 1, NULL);
	struct keys k = { STRBUF_INIT, 0, 0 };
	struct s3_error e;

	giant_listing = 0;
	CHECK_INTEQ(s3_list(c, "p/", 2, collect, &k, &e), 0);
	CHECK_STREQ(k.text.buf, "p/a|1|\"e1\"|2026-01-02T03:04:05.000Z;p/b & c|22||;p/c|333||;");
	CHECK_STREQ(seen.buf, "GET /bkt?list-type=2&max-keys=2&prefix=p%2F\n"
			      "GET /bkt?list-type=2&max-keys=2&prefix=p%2F&continuation-token=t%2F1%2B%3D\n");
	/* the caller stops: no second page */
	strbuf_reset(&k.text);
	strbuf_reset(&seen);
	k.stop_at = 1;
	CHECK_INTEQ(s3_list(c, "p/", 2, collect, &k, &e), -1);
	CHECK_STREQ(e.code, "Stopped");
	CHECK_STREQ(k.text.buf, "p/a|1|\"e1\"|2026-01-02T03:04:05.000Z;");
	CHECK_INTEQ(strchr(seen.buf, '\n') - seen.buf + 1, (long)seen.len);
	k.stop_at = 0;

	calls = 0;
	CHECK_INTEQ(s3_list(c, "endless", 1000, collect, &k, &e), -1);
	CHECK_STREQ(e.code, "EndlessList");
	CHECK_INTEQ(calls, 2);
	CHECK_INTEQ(s3_list(c, "notoken", 1000, collect, &k, &e), -1);
	CHECK_STREQ(e.code, "MalformedReply");
	CHECK_INTEQ(s3_list(c, "broken", 1000, collect, &k, &e), -1);
	CHECK_STREQ(e.code, "MalformedReply");
	/* keys outside the prefix or none at all: the callers cut the prefix off every key */
	strbuf_reset(&k.text);
	CHECK_INTEQ(s3_list(c, "p/data/index/", 1000, collect, &k, &e), -1);
	CHECK_STREQ(e.code, "MalformedReply");
	CHECK_STREQ(e.message, "listing of \"p/data/index/\" names \"p/foo\", a key outside it");
	CHECK_STREQ(k.text.buf, "p/data/index/ab|0||;");
	strbuf_reset(&k.text);
	CHECK_INTEQ(s3_list(c, "nokey", 1000, collect, &k, &e), -1);
	CHECK_STREQ(e.code, "MalformedReply");
	CHECK_STREQ(e.message, "listing of \"nokey\" names an object without a key");
	CHECK(!k.text.len);
	CHECK_INTEQ(s3_list(c, "denied", 1000, collect, &k, &e), -1);
	CHECK_STREQ(e.code, "AccessDenied");
	CHECK_INTEQ(e.http_status, 403);

	/* a reply larger than 8 MiB is not read to its end */
	giant_listing = (8u << 20) + 100;
	CHECK_INTEQ(s3_list(c, "", 1000, collect, &k, &e), -1);
	CHECK_STREQ(e.code, "TooLarge");
	giant_listing = 0;
	strbuf_release(&k.text);
	stop(c);
}

/* ---- multipart uploads ---- */

static int part_without_etag;
static int part_refused;		/* answer part 2 like S3 does a body that is not what was signed */
static int part_fails_once;		/* answer part 2 once with a 500 */
static int parts_unsigned;		/* parts whose x-amz-content-sha256 did not name their body */
static struct strbuf completed = STRBUF_INIT;
static size_t part_bytes;

/* What S3 checks of every payload: x-amz-content-sha256 is the SHA-256 of the body. */
static int payload_hash_matches(const struct loopback_request *rq)
{
	char header[100], want[65];

	if (loopback_header(rq, "x-amz-content-sha256", header, sizeof header) < 0)
		return 0;
	sigv4_sha256_hex(rq->body.buf ? rq->body.buf : "", rq->body.len, want);
	return strcmp(header, want) == 0;
}

static void answer_multipart(const struct loopback_request *rq, struct strbuf *out, void *ud)
{
	(void)ud;
	remember(rq);
	if (strcmp(rq->method, "POST") == 0 && strstr(rq->target, "?uploads")) {
		xml_reply(out, 200, "<InitiateMultipartUploadResult><Bucket>bkt</Bucket><Key>big</Key>"
			  "<UploadId>up-1</UploadId></InitiateMultipartUploadResult>");
	} else if (strcmp(rq->method, "PUT") == 0 && strstr(rq->target, "partNumber=")) {
		int number = atoi(strstr(rq->target, "partNumber=") + 11);
		char etag[64];

		part_bytes += rq->body.len;
		parts_unsigned += !payload_hash_matches(rq);
		if (part_refused && number == 2) {
			xml_reply(out, 400, "<Error><Code>XAmzContentSHA256Mismatch</Code><Message>The provided "
				  "'x-amz-content-sha256' header does not match what was computed.</Message></Error>");
		} else if (part_fails_once && number == 2) {
			part_fails_once = 0;
			xml_reply(out, 500, "<Error><Code>InternalError</Code><Message>try again</Message></Error>");
		} else if (part_without_etag && number == 2) {
			loopback_reply(out, 200, NULL, "", 0);
		} else {
			snprintf(etag, sizeof etag, "ETag: \"part-%d\"\r\n", number);
			loopback_reply(out, 200, etag, "", 0);
		}
	} else if (strcmp(rq->method, "POST") == 0 && strstr(rq->target, "uploadId=up-1")) {
		strbuf_reset(&completed);
		strbuf_add(&completed, rq->body.buf, rq->body.len);
		xml_reply(out, 200, "<CompleteMultipartUploadResult><ETag>\"all-2\"</ETag></CompleteMultipartUploadResult>");
	} else if (strcmp(rq->method, "DELETE") == 0 && strstr(rq->target, "uploadId=up-1")) {
		loopback_reply(out, 204, NULL, "", 0);
	} else {
		loopback_reply(out, 200, "ETag: \"small\"\r\n", "", 0);
	}
}

struct source {
	size_t left;
	int fail;
};

/* Gives bytes in odd-sized pieces, or fails. */
static long read_source(void *buf, size_t len, void *ud)
{
	struct source *s = ud;
	size_t n = len < 100000 ? len : 100000;

	if (s->fail)
		return -1;
	if (n > s->left)
		n = s->left;
	memset(buf, 'd', n);
	s->left -= n;
	return (long)n;
}

static void test_uploads_in_parts_and_aborts_on_failure(void)
{
	struct s3_client *c = start(answer_multipart, 1, NULL);
	struct source src = { 1000, 0 };
	struct s3_error e;

	/* smaller than a part: one PUT */
	part_without_etag = 0;
	CHECK_INTEQ(s3_put_stream(c, "small", read_source, &src, -1, &e), 0);
	CHECK_STREQ(seen.buf, "PUT /bkt/small\n");
	CHECK_INTEQ(last_body.len, 1000);
	src.fail = 1;
	CHECK_INTEQ(s3_put_stream(c, "small", read_source, &src, -1, &e), -1);
	CHECK_STREQ(e.code, "ReadError");

	/* one byte over a part: two parts (the second of one byte), each named by its own
	 * SHA-256, completed in order with their ETags */
	src = (struct source){ (size_t)S3_PART_SIZE_MIN + 1, 0 };
	strbuf_reset(&seen);
	part_bytes = 0;
	parts_unsigned = 0;
	CHECK_INTEQ(s3_put_stream(c, "big", read_source, &src, -1, &e), 0);
	CHECK_INTEQ(part_bytes, (size_t)S3_PART_SIZE_MIN + 1);
	CHECK_INTEQ(parts_unsigned, 0);
	CHECK(strstr(seen.buf, "POST /bkt/big?uploads=\n") != NULL);
	CHECK(strstr(seen.buf, "PUT /bkt/big?partNumber=1&uploadId=up-1\n") != NULL);
	CHECK(strstr(seen.buf, "PUT /bkt/big?partNumber=2&uploadId=up-1\n") != NULL);
	CHECK(strstr(seen.buf, "DELETE") == NULL);
	CHECK_STREQ(completed.buf, "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"part-1\"</ETag></Part>"
		    "<Part><PartNumber>2</PartNumber><ETag>\"part-2\"</ETag></Part></CompleteMultipartUpload>");

	/* a part the server fails once is sent again, whole, and the upload completes */
	src = (struct source){ (size_t)S3_PART_SIZE_MIN * 2 + 5, 0 };
	strbuf_reset(&seen);
	strbuf_reset(&completed);
	part_bytes = 0;
	part_fails_once = 1;
	CHECK_INTEQ(s3_put_stream(c, "big", read_source, &src, -1, &e), 0);
	CHECK_INTEQ(part_fails_once, 0);
	CHECK_INTEQ(part_bytes, (size_t)S3_PART_SIZE_MIN * 3 + 5);
	CHECK_INTEQ(parts_unsigned, 0);
	CHECK(strstr(strstr(seen.buf, "PUT /bkt/big?partNumber=2&") + 1, "PUT /bkt/big?partNumber=2&") != NULL);
	CHECK(strstr(completed.buf, "<PartNumber>3</PartNumber><ETag>\"part-3\"</ETag>") != NULL);

	/* a part whose bytes the server finds are not the ones signed fails the upload: it is
	 * aborted, never completed */
	src = (struct source){ (size_t)S3_PART_SIZE_MIN + 1, 0 };
	strbuf_reset(&seen);
	strbuf_reset(&completed);
	part_refused = 1;
	CHECK_INTEQ(s3_put_stream(c, "big", read_source, &src, -1, &e), -1);
	part_refused = 0;
	CHECK_STREQ(e.code, "XAmzContentSHA256Mismatch");
	CHECK(strstr(seen.buf, "DELETE /bkt/big?uploadId=up-1\n") != NULL);
	CHECK_INTEQ(completed.len, 0);

	/* a part that comes back without an ETag fails the upload, and the upload is aborted
	 * so that no part of it stays behind */
	src = (struct source){ (size_t)S3_PART_SIZE_MIN + 1, 0 };
	strbuf_reset(&seen);
	strbuf_reset(&completed);
	part_without_etag = 1;
	CHECK_INTEQ(s3_put_stream(c, "big", read_source, &src, -1, &e), -1);
	CHECK_STREQ(e.code, "MalformedReply");
	CHECK(strstr(seen.buf, "DELETE /bkt/big?uploadId=up-1\n") != NULL);
	CHECK_INTEQ(completed.len, 0);
	strbuf_release(&completed);
	stop(c);
}

int main(void)
{
	RUN(test_client_new_checks_settings);
	RUN(test_error_describe_words);
	RUN(test_local_refusals_send_nothing);
	RUN(test_error_replies);
	RUN(test_requests_are_addressed_and_signed);
	RUN(test_objects_are_checked_against_their_etag);
	RUN(test_listing_follows_tokens_and_refuses_hostile_ones);
	RUN(test_uploads_in_parts_and_aborts_on_failure);
	strbuf_release(&seen);
	strbuf_release(&last_body);
	return check_done();
}
