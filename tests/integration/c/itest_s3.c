/* The S3 client against a real S3 server (MinIO of scripts/testenv). TAP on stdout.
 * Reads S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY, S3_SECRET_KEY. */
#include "s3_client.h"
#include "sigv4.h"
#include "check.h"
#include "itest_env.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <sys/resource.h>

static struct s3_conf conf;
static char bucket[64];

static struct s3_client *client(const struct s3_conf *c)
{
	char err[256] = "";
	struct s3_client *s3 = s3_client_new(c, NULL, err, sizeof err);

	if (!s3)
		printf("# s3_client_new: %s\n", err);
	return s3;
}

static void describe(const struct s3_error *e, char *buf, size_t len)
{
	s3_error_describe(e, buf, len);
	printf("# error in words: %s\n", buf);
}

static void test_create_bucket_and_probe(void)
{
	struct s3_client *s3 = client(&conf);
	struct s3_error e;
	char words[600];

	CHECK(s3 != NULL);
	if (!s3)
		return;
	CHECK_INTEQ(s3_create_bucket(s3, &e), 0);
	CHECK_INTEQ(s3_create_bucket(s3, &e), 0);
	if (s3_probe(&conf, NULL, &e) != 0) {
		describe(&e, words, sizeof words);
		CHECK(0);
	}
	s3_client_free(s3);
}

struct names {
	char keys[16][128];
	int n;
};

static int collect(const struct s3_object_info *o, void *ud)
{
	struct names *names = ud;

	if (names->n < 16)
		snprintf(names->keys[names->n++], sizeof names->keys[0], "%s", o->key);
	return 0;
}

static void test_keys_with_spaces_and_unicode(void)
{
	/* Listing order is byte order of the keys. */
	static const char *keys[] = {
		"odd/ a leading space",
		"odd/!$&'()*+,;=:@ all the reserved ones",
		"odd/100% sure?#yes",
		"odd/caf\xc3\xa9 cr\xc3\xa8me/br\xc3\xbbl\xc3\xa9" "e.txt",
		"odd/\xe2\x98\x83 snowman",
		"odd/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/\xe3\x83\x95\xe3\x82\xa1\xe3\x82\xa4\xe3\x83\xab",
	};
	struct s3_client *s3 = client(&conf);
	struct s3_error e;
	struct strbuf got = STRBUF_INIT;
	struct names names = { .n = 0 };
	char words[600];

	if (!s3) {
		CHECK(0);
		return;
	}
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if (s3_put_mem(s3, keys[i], keys[i], strlen(keys[i]), &e) != 0) {
			describe(&e, words, sizeof words);
			CHECK(0);
		}
		CHECK_INTEQ(s3_get_mem(s3, keys[i], 1024, &got, &e), 0);
		CHECK_STREQ(got.buf, keys[i]);
	}
	CHECK_INTEQ(s3_list(s3, "odd/", 1000, collect, &names, &e), 0);
	CHECK_INTEQ(names.n, sizeof keys / sizeof keys[0]);
	for (int i = 0; i < names.n; i++)
		CHECK_STREQ(names.keys[i], keys[i]);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		CHECK_INTEQ(s3_delete(s3, keys[i], &e), 0);
	strbuf_release(&got);
	s3_client_free(s3);
}

static void test_list_pages(void)
{
	struct s3_client *s3 = client(&conf);
	struct s3_error e;
	struct names names = { .n = 0 };
	char key[32];

	if (!s3) {
		CHECK(0);
		return;
	}
	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof key, "paged/%d", i);
		CHECK_INTEQ(s3_put_mem(s3, key, "x", 1, &e), 0);
	}
	CHECK_INTEQ(s3_list(s3, "paged/", 2, collect, &names, &e), 0);
	CHECK_INTEQ(names.n, 5);
	for (int i = 0; i < names.n && i < 5; i++) {
		snprintf(key, sizeof key, "paged/%d", i);
		CHECK_STREQ(names.keys[i], key);
	}
	s3_client_free(s3);
}

/* A deterministic byte stream: xorshift64, so upload and check need no 50 MiB buffer. */
struct gen {
	uint64_t state;
	int64_t left;
	int fail_at_left;		/* return -1 when this many bytes remain (0: never) */
	EVP_MD_CTX *sha;
};

static long gen_read(void *buf, size_t len, void *ud)
{
	struct gen *g = ud;
	unsigned char *p = buf;
	size_t n = 0;

	if (g->fail_at_left && g->left <= g->fail_at_left)
		return -1;
	for (; n < len && g->left > 0; n++, g->left--) {
		g->state ^= g->state << 13;
		g->state ^= g->state >> 7;
		g->state ^= g->state << 17;
		p[n] = (unsigned char)(g->state >> 24);
	}
	EVP_DigestUpdate(g->sha, buf, n);
	return (long)n;
}

static int sha_write(const void *data, size_t len, void *ud)
{
	EVP_DigestUpdate(ud, data, len);
	return 0;
}

static void sha_hex(EVP_MD_CTX *ctx, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;

	EVP_DigestFinal_ex(ctx, md, &n);
	sigv4_hex(md, 32, out);
}

static void test_multipart_50mib_round_trip(void)
{
	const int64_t size = 50LL << 20;
	struct s3_client *s3 = client(&conf);
	struct gen g = { .state = 88172645463325252ull, .left = size, .sha = EVP_MD_CTX_new() };
	EVP_MD_CTX *down = EVP_MD_CTX_new();
	struct s3_error e;
	char up_hex[65], down_hex[65], etag[128] = "", words[600];
	int64_t got_size = 0;
	struct rusage ru;

	if (!s3) {
		CHECK(0);
		return;
	}
	EVP_DigestInit_ex(g.sha, EVP_sha256(), NULL);
	EVP_DigestInit_ex(down, EVP_sha256(), NULL);
	if (s3_put_stream(s3, "big/50mib.bin", gen_read, &g, -1, &e) != 0) {
		describe(&e, words, sizeof words);
		CHECK(0);
	}
	sha_hex(g.sha, up_hex);
	CHECK_INTEQ(s3_head(s3, "big/50mib.bin", &got_size, etag, sizeof etag, &e), 0);
	CHECK_INTEQ(got_size, size);
	/* 50 MiB in 8 MiB parts: a 7-part multipart ETag. */
	CHECK(strstr(etag, "-7\"") != NULL);
	printf("# etag %s\n", etag);
	CHECK_INTEQ(s3_get_stream(s3, "big/50mib.bin", 0, -1, sha_write, down, &e), 0);
	sha_hex(down, down_hex);
	CHECK_STREQ(down_hex, up_hex);
	printf("# sha256 %s\n", up_hex);
	getrusage(RUSAGE_SELF, &ru);
	printf("# peak RSS after a 50 MiB upload and download: %ld MiB\n", ru.ru_maxrss / 1024);
	EVP_MD_CTX_free(g.sha);
	EVP_MD_CTX_free(down);
	s3_client_free(s3);
}

static int into_strbuf(const void *data, size_t len, void *ud)
{
	strbuf_add(ud, data, len);
	return 0;
}

static void test_ranged_get_and_cap(void)
{
	struct s3_client *s3 = client(&conf);
	struct s3_error e;
	struct strbuf got = STRBUF_INIT;
	const char *text = "0123456789abcdefghij";

	if (!s3) {
		CHECK(0);
		return;
	}
	CHECK_INTEQ(s3_put_mem(s3, "range/t", text, strlen(text), &e), 0);
	CHECK_INTEQ(s3_get_stream(s3, "range/t", 10, 5, into_strbuf, &got, &e), 0);
	CHECK_STREQ(got.buf, "abcde");
	strbuf_reset(&got);
	CHECK_INTEQ(s3_get_stream(s3, "range/t", 15, -1, into_strbuf, &got, &e), 0);
	CHECK_STREQ(got.buf, "fghij");
	CHECK_INTEQ(s3_get_mem(s3, "range/t", 10, &got, &e), -1);
	CHECK_STREQ(e.code, "TooLarge");
	strbuf_release(&got);
	s3_client_free(s3);
}

struct replacer {
	struct s3_client *other;
	EVP_MD_CTX *sha;
	int calls, replaced;
};

/* After the first part arrives, another client overwrites the object. */
static int replace_after_first(const void *data, size_t len, void *ud)
{
	struct replacer *rp = ud;
	struct s3_error e;

	EVP_DigestUpdate(rp->sha, data, len);
	if (rp->calls++ == 0)
		rp->replaced = s3_put_mem(rp->other, "big/replaced.bin", "new", 3, &e) == 0;
	return 0;
}

static int stop_at_second(const void *data, size_t len, void *ud)
{
	(void)data;
	(void)len;
	return ++*(int *)ud == 2;
}

/* A large object is read in parallel parts of the version HEAD saw: replaced mid-read, the
 * read fails in words rather than splice two versions; a caller's stop stops the workers. */
static void test_parallel_read_of_one_version(void)
{
	const int64_t size = 60LL << 20;
	struct s3_client *s3 = client(&conf), *other = client(&conf);
	struct gen g = { .state = 1234567, .left = size, .sha = EVP_MD_CTX_new() };
	struct replacer rp = { .other = other, .sha = EVP_MD_CTX_new() };
	struct s3_error e;
	char words[600];
	int calls = 0;

	if (!s3 || !other) {
		CHECK(0);
		return;
	}
	EVP_DigestInit_ex(g.sha, EVP_sha256(), NULL);
	EVP_DigestInit_ex(rp.sha, EVP_sha256(), NULL);
	CHECK_INTEQ(s3_put_stream(s3, "big/replaced.bin", gen_read, &g, -1, &e), 0);
	CHECK_INTEQ(s3_get_stream(s3, "big/replaced.bin", 0, -1, stop_at_second, &calls, &e), -1);
	CHECK_STREQ(e.code, "Stopped");
	CHECK_INTEQ(calls, 2);
	CHECK_INTEQ(s3_get_stream(s3, "big/replaced.bin", 0, -1, replace_after_first, &rp, &e), -1);
	CHECK(rp.replaced);
	CHECK_STREQ(e.code, "PreconditionFailed");
	describe(&e, words, sizeof words);
	CHECK(strstr(words, "big/replaced.bin was replaced while it was being read") != NULL);
	EVP_MD_CTX_free(g.sha);
	EVP_MD_CTX_free(rp.sha);
	s3_client_free(s3);
	s3_client_free(other);
}

static void test_failed_upload_leaves_no_object(void)
{
	struct s3_client *s3 = client(&conf);
	struct gen g = { .state = 1, .left = 30LL << 20, .fail_at_left = 5 << 20, .sha = EVP_MD_CTX_new() };
	struct s3_error e;
	char words[600];

	if (!s3) {
		CHECK(0);
		return;
	}
	EVP_DigestInit_ex(g.sha, EVP_sha256(), NULL);
	CHECK_INTEQ(s3_put_stream(s3, "big/broken.bin", gen_read, &g, -1, &e), -1);
	CHECK_STREQ(e.code, "ReadError");
	CHECK_INTEQ(s3_head(s3, "big/broken.bin", NULL, NULL, 0, &e), -1);
	CHECK_INTEQ(e.http_status, 404);
	describe(&e, words, sizeof words);
	EVP_MD_CTX_free(g.sha);
	s3_client_free(s3);
}

static void test_delete(void)
{
	struct s3_client *s3 = client(&conf);
	struct s3_error e;
	struct strbuf got = STRBUF_INIT;
	char words[600];

	if (!s3) {
		CHECK(0);
		return;
	}
	CHECK_INTEQ(s3_put_mem(s3, "gone", "x", 1, &e), 0);
	CHECK_INTEQ(s3_delete(s3, "gone", &e), 0);
	CHECK_INTEQ(s3_get_mem(s3, "gone", 10, &got, &e), -1);
	CHECK_STREQ(e.code, "NoSuchKey");
	describe(&e, words, sizeof words);
	CHECK(strstr(words, "object not found") != NULL);
	CHECK_INTEQ(s3_delete(s3, "gone", &e), 0);
	strbuf_release(&got);
	s3_client_free(s3);
}

static void test_wrong_secret_in_words(void)
{
	struct s3_conf bad = conf;
	struct s3_error e;
	char words[600];

	bad.secret_key = "not-the-secret-key";
	CHECK_INTEQ(s3_probe(&bad, NULL, &e), -1);
	CHECK_STREQ(e.code, "SignatureDoesNotMatch");
	describe(&e, words, sizeof words);
	CHECK_STREQ(words, "signature does not match: check the secret key");
	/* The secret never appears in what a user sees. */
	CHECK(strstr(words, conf.secret_key) == NULL && strstr(e.message, conf.secret_key) == NULL);
}

static void test_missing_bucket_in_words(void)
{
	struct s3_conf bad = conf;
	struct s3_error e;
	char words[600], missing[80];

	snprintf(missing, sizeof missing, "%s-missing", bucket);
	bad.bucket = missing;
	CHECK_INTEQ(s3_probe(&bad, NULL, &e), -1);
	CHECK_STREQ(e.code, "NoSuchBucket");
	describe(&e, words, sizeof words);
	CHECK(strstr(words, "bucket ") == words && strstr(words, missing) && strstr(words, " does not exist"));
}

static void test_unreachable_and_disallowed_endpoint(void)
{
	struct s3_conf bad = conf;
	struct s3_error e;
	struct net_allow allow;
	char words[600], err[256];

	bad.endpoint = "http://127.0.0.1:1";
	CHECK_INTEQ(s3_probe(&bad, NULL, &e), -1);
	describe(&e, words, sizeof words);
	CHECK_STREQ(words, "endpoint unreachable: connection refused to 127.0.0.1:1");

	CHECK_INTEQ(net_allow_parse("10.0.0.0/8", &allow, err, sizeof err), 0);
	CHECK_INTEQ(s3_probe(&conf, &allow, &e), -1);
	describe(&e, words, sizeof words);
	CHECK(strstr(words, "loopback (127.0.0.0/8), which is always refused unless allowed_private_networks names it") != NULL);
	/* allowed_networks naming loopback is not enough: the deny list holds until opted out of */
	CHECK_INTEQ(net_allow_parse("127.0.0.0/8", &allow, err, sizeof err), 0);
	CHECK_INTEQ(s3_probe(&conf, &allow, &e), -1);
	describe(&e, words, sizeof words);
	printf("# %s\n", words);
	CHECK(strstr(words, "always refused unless allowed_private_networks names it") != NULL);
	CHECK_INTEQ(net_allow_opt_in(&allow, "127.0.0.0/8", err, sizeof err), 0);	/* loopback: opted in */
	CHECK_INTEQ(s3_probe(&conf, &allow, &e), 0);
}

int main(void)
{
	unsigned char rnd[6];

	RAND_bytes(rnd, sizeof rnd);
	memcpy(bucket, "stowage-itest-", 14);
	sigv4_hex(rnd, sizeof rnd, bucket + 14);
	conf.endpoint = need_env("S3_ENDPOINT");
	conf.region = need_env("S3_REGION");
	conf.access_key = need_env("S3_ACCESS_KEY");
	conf.secret_key = need_env("S3_SECRET_KEY");
	conf.bucket = bucket;
	conf.path_style = 1;
	conf.timeout_ms = 10000;
	printf("# bucket %s at %s\n", bucket, conf.endpoint);

	RUN(test_create_bucket_and_probe);
	RUN(test_keys_with_spaces_and_unicode);
	RUN(test_list_pages);
	RUN(test_multipart_50mib_round_trip);
	RUN(test_ranged_get_and_cap);
	RUN(test_parallel_read_of_one_version);
	RUN(test_failed_upload_leaves_no_object);
	RUN(test_delete);
	RUN(test_wrong_secret_in_words);
	RUN(test_missing_bucket_in_words);
	RUN(test_unreachable_and_disallowed_endpoint);
	return check_done();
}
