/* The object stores: keys, the directory store in a temporary directory (put, ranged get, head,
 * list, delete, atomic replacement, no way out of its root), and the S3 store's URL and its
 * mapping of keys onto a bucket prefix, against a scripted S3 endpoint on loopback. */
#include "object_store.h"
#include "strbuf.h"
#include "check.h"
#include "loopback_server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

static char root[64];

static void write_file(const char *rel, const char *text)
{
	struct strbuf p = STRBUF_INIT;
	FILE *f;

	strbuf_addf(&p, "%s/%s", root, rel);
	f = fopen(p.buf, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	strbuf_release(&p);
}

static int exists(const char *rel)
{
	struct strbuf p = STRBUF_INIT;
	struct stat st;
	int rc;

	strbuf_addf(&p, "%s/%s", root, rel);
	rc = lstat(p.buf, &st) == 0;
	strbuf_release(&p);
	return rc;
}

/* Names starting with ".tmp-" anywhere under dir. */
static int count_temp_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d))) {
		struct strbuf p = STRBUF_INIT;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		strbuf_addf(&p, "%s/%s", dir, de->d_name);
		if (strncmp(de->d_name, ".tmp-", 5) == 0)
			n++;
		else if (de->d_type == DT_DIR)
			n += count_temp_files(p.buf);
		strbuf_release(&p);
	}
	if (d)
		closedir(d);
	return n;
}

static struct object_store *open_dir(void)
{
	char err[256] = "";
	struct object_store *os;

	snprintf(root, sizeof root, "/tmp/stowage-test-os-XXXXXX");
	if (!mkdtemp(root)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		exit(1);
	}
	os = object_store_dir_open(root, err, sizeof err);
	if (!os) {
		printf("Bail out! object_store_dir_open: %s\n", err);
		exit(1);
	}
	return os;
}

static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		struct strbuf p = STRBUF_INIT;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		strbuf_addf(&p, "%s/%s", dir, de->d_name);
		if (de->d_type == DT_DIR)
			remove_tree(p.buf);
		else
			unlink(p.buf);
		strbuf_release(&p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

static void close_dir(struct object_store *os)
{
	object_store_close(os);
	remove_tree(root);
}

/* ---- keys and URLs ---- */

static void test_key_validity(void)
{
	char long_key[1100];

	CHECK(object_key_valid("a"));
	CHECK(object_key_valid("repo/data/packs/ab/abcdef0123"));
	CHECK(object_key_valid("A.b-c_d/x.y"));
	CHECK(object_key_valid("a./b.."));		/* dots inside or at the end of a segment */
	CHECK(!object_key_valid(""));
	CHECK(!object_key_valid("/a"));
	CHECK(!object_key_valid("a/"));
	CHECK(!object_key_valid("a//b"));
	CHECK(!object_key_valid(".."));
	CHECK(!object_key_valid("../x"));
	CHECK(!object_key_valid("a/../b"));
	CHECK(!object_key_valid("a/./b"));
	CHECK(!object_key_valid(".hidden"));
	CHECK(!object_key_valid("a/.tmp-1-2"));
	CHECK(!object_key_valid("a b"));
	CHECK(!object_key_valid("a\\b"));
	CHECK(!object_key_valid("a?b"));
	CHECK(!object_key_valid("caf\xc3\xa9"));
	memset(long_key, 'k', sizeof long_key);
	long_key[1024] = '\0';
	CHECK(object_key_valid(long_key));
	long_key[1024] = 'k';
	long_key[1025] = '\0';
	CHECK(!object_key_valid(long_key));
}

static void test_open_refuses_bad_urls(void)
{
	char err[256], url[128];
	struct object_store *os;

	CHECK(object_store_open("file://relative/dir", err, sizeof err) == NULL);
	CHECK(strstr(err, "absolute") != NULL);
	CHECK(object_store_open("ftp://host/x", err, sizeof err) == NULL);
	CHECK(strstr(err, "unsupported scheme") != NULL);
	CHECK(object_store_open("/tmp/no-scheme", err, sizeof err) == NULL);
	CHECK(object_store_dir_open("relative", err, sizeof err) == NULL);
	CHECK(object_store_dir_open("", err, sizeof err) == NULL);
	/* a file:// URL opens (and creates) its directory; trailing slashes do not matter */
	os = open_dir();
	object_store_close(os);
	snprintf(url, sizeof url, "file://%s/sub//", root);
	os = object_store_open(url, err, sizeof err);
	CHECK(os != NULL);
	CHECK(exists("sub"));
	CHECK_INTEQ(object_put(os, "k", "v", 1, err, sizeof err), 0);
	CHECK(exists("sub/k"));
	object_store_close(os);
	remove_tree(root);
}

/* ---- the directory store ---- */

static void test_dir_put_get_head_delete(void)
{
	struct object_store *os = open_dir();
	struct strbuf out = STRBUF_INIT;
	struct object_info info = { 0 };
	char err[256];
	time_t before = time(NULL);

	CHECK_INTEQ(object_put(os, "repo/data/ab/abcd", "0123456789", 10, err, sizeof err), 0);
	CHECK_INTEQ(object_head(os, "repo/data/ab/abcd", &info, err, sizeof err), 1);
	CHECK_INTEQ(info.size, 10);
	CHECK(info.mtime >= before - 1 && info.mtime <= time(NULL) + 1);
	CHECK_INTEQ(object_get(os, "repo/data/ab/abcd", 0, 0, &out, err, sizeof err), 0);
	CHECK_STREQ(out.buf, "0123456789");
	/* a ranged get appends to what the buffer holds */
	CHECK_INTEQ(object_get(os, "repo/data/ab/abcd", 3, 4, &out, err, sizeof err), 0);
	CHECK_STREQ(out.buf, "01234567893456");
	strbuf_reset(&out);
	CHECK_INTEQ(object_get(os, "repo/data/ab/abcd", 7, 0, &out, err, sizeof err), 0);
	CHECK_STREQ(out.buf, "789");
	strbuf_reset(&out);
	CHECK_INTEQ(object_get(os, "repo/data/ab/abcd", 10, 0, &out, err, sizeof err), 0);
	CHECK_INTEQ(out.len, 0);
	/* ranges past the end are errors, not short reads */
	CHECK_INTEQ(object_get(os, "repo/data/ab/abcd", 11, 0, &out, err, sizeof err), -1);
	CHECK(strstr(err, "outside the object") != NULL);
	CHECK_INTEQ(object_get(os, "repo/data/ab/abcd", 8, 3, &out, err, sizeof err), -1);
	CHECK_INTEQ(object_get(os, "repo/data/ab/abcd", UINT64_MAX, 1, &out, err, sizeof err), -1);
	CHECK_INTEQ(out.len, 0);
	/* replaced whole, shorter */
	CHECK_INTEQ(object_put(os, "repo/data/ab/abcd", "xy", 2, err, sizeof err), 0);
	CHECK_INTEQ(object_get(os, "repo/data/ab/abcd", 0, 0, &out, err, sizeof err), 0);
	CHECK_STREQ(out.buf, "xy");
	/* an empty object is an object */
	CHECK_INTEQ(object_put(os, "empty", "", 0, err, sizeof err), 0);
	CHECK_INTEQ(object_head(os, "empty", &info, err, sizeof err), 1);
	CHECK_INTEQ(info.size, 0);
	/* missing: head 0, get NOT_FOUND (not an I/O error), delete succeeds */
	CHECK_INTEQ(object_head(os, "repo/none", &info, err, sizeof err), 0);
	CHECK_INTEQ(object_head(os, "repo/none", NULL, err, sizeof err), 0);
	CHECK_INTEQ(object_get(os, "repo/none", 0, 0, &out, err, sizeof err), OBJECT_STORE_NOT_FOUND);
	CHECK(strstr(err, "not found") != NULL);
	CHECK_INTEQ(object_delete(os, "repo/none", err, sizeof err), 0);
	CHECK_INTEQ(object_delete(os, "repo/data/ab/abcd", err, sizeof err), 0);
	CHECK_INTEQ(object_head(os, "repo/data/ab/abcd", NULL, err, sizeof err), 0);
	CHECK_INTEQ(object_get(os, "repo/data/ab/abcd", 0, 0, &out, err, sizeof err), OBJECT_STORE_NOT_FOUND);
	/* a directory is not an object */
	CHECK_INTEQ(object_head(os, "repo/data", NULL, err, sizeof err), -1);
	strbuf_release(&out);
	close_dir(os);
}

static void test_dir_refuses_keys_that_leave_the_root(void)
{
	static const char *const bad[] = { "../escape", "a/../../escape", "/etc/passwd", "a//b", ".tmp-1-1", "" };
	struct object_store *outer = open_dir(), *os;
	struct strbuf out = STRBUF_INIT, inner = STRBUF_INIT;
	char err[256];

	/* the store one level down, so that what climbs out would land where we can look */
	strbuf_addf(&inner, "%s/inner", root);
	os = object_store_dir_open(inner.buf, err, sizeof err);
	CHECK(os != NULL);
	if (!os)
		return;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		CHECK_INTEQ(object_put(os, bad[i], "x", 1, err, sizeof err), -1);
		CHECK(strstr(err, "not a valid key") != NULL);
		CHECK_INTEQ(object_get(os, bad[i], 0, 0, &out, err, sizeof err), -1);
		CHECK_INTEQ(object_head(os, bad[i], NULL, err, sizeof err), -1);
		CHECK_INTEQ(object_delete(os, bad[i], err, sizeof err), -1);
	}
	CHECK(!exists("escape"));
	CHECK(!exists("inner/escape"));
	CHECK(!exists(".tmp-1-1") && !exists("inner/.tmp-1-1"));
	/* nor listable from a prefix that climbs */
	CHECK_INTEQ(object_list(os, "../", NULL, NULL, err, sizeof err), -1);
	CHECK(strstr(err, "not a valid key prefix") != NULL);
	CHECK_INTEQ(object_list(os, "/", NULL, NULL, err, sizeof err), -1);
	CHECK_INTEQ(object_list(os, "a/../../", NULL, NULL, err, sizeof err), -1);
	CHECK_INTEQ(out.len, 0);
	strbuf_release(&out);
	strbuf_release(&inner);
	object_store_close(os);
	close_dir(outer);
}

struct listing {
	struct strbuf keys;
	int stop_after;		/* return 7 at this many keys (0: never) */
	int n;
};

static int collect(const char *key, const struct object_info *info, void *arg)
{
	struct listing *l = arg;

	strbuf_addf(&l->keys, "%s=%llu ", key, (unsigned long long)info->size);
	return l->stop_after && ++l->n >= l->stop_after ? 7 : 0;
}

/* The listing is in directory order: sorted here so the checks do not depend on it. */
static int cmp_words(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *list_sorted(struct object_store *os, const char *prefix, int *rc)
{
	struct listing l = { STRBUF_INIT, 0, 0 };
	char err[256], *words[64], *save = NULL;
	struct strbuf out = STRBUF_INIT;
	size_t n = 0;

	*rc = object_list(os, prefix, collect, &l, err, sizeof err);
	strbuf_addstr(&l.keys, "");
	for (char *w = strtok_r(l.keys.buf, " ", &save); w && n < 64; w = strtok_r(NULL, " ", &save))
		words[n++] = w;
	qsort(words, n, sizeof words[0], cmp_words);
	for (size_t i = 0; i < n; i++)
		strbuf_addf(&out, "%s%s", i ? " " : "", words[i]);
	strbuf_addstr(&out, "");
	strbuf_release(&l.keys);
	return strbuf_take(&out);
}

static void test_dir_list_by_prefix(void)
{
	struct object_store *os = open_dir();
	struct listing l = { STRBUF_INIT, 0, 0 };
	char err[256], *got;
	int rc;

	CHECK_INTEQ(object_put(os, "data/ab/ab01", "1", 1, err, sizeof err), 0);
	CHECK_INTEQ(object_put(os, "data/ab/ab02", "22", 2, err, sizeof err), 0);
	CHECK_INTEQ(object_put(os, "data/cd/cd01", "333", 3, err, sizeof err), 0);
	CHECK_INTEQ(object_put(os, "datum", "4444", 4, err, sizeof err), 0);
	CHECK_INTEQ(object_put(os, "index/i1", "55555", 5, err, sizeof err), 0);

	got = list_sorted(os, "", &rc);
	CHECK_INTEQ(rc, 0);
	CHECK_STREQ(got, "data/ab/ab01=1 data/ab/ab02=2 data/cd/cd01=3 datum=4 index/i1=5");
	free(got);
	got = list_sorted(os, "data/", &rc);
	CHECK_STREQ(got, "data/ab/ab01=1 data/ab/ab02=2 data/cd/cd01=3");
	free(got);
	/* a prefix need not end at a '/' */
	got = list_sorted(os, "dat", &rc);
	CHECK_STREQ(got, "data/ab/ab01=1 data/ab/ab02=2 data/cd/cd01=3 datum=4");
	free(got);
	got = list_sorted(os, "data/ab/ab0", &rc);
	CHECK_STREQ(got, "data/ab/ab01=1 data/ab/ab02=2");
	free(got);
	got = list_sorted(os, "data/ab/ab01", &rc);
	CHECK_STREQ(got, "data/ab/ab01=1");
	free(got);
	got = list_sorted(os, "data/zz/", &rc);
	CHECK_INTEQ(rc, 0);
	CHECK_STREQ(got, "");
	free(got);
	/* a prefix through an object is an empty listing, not an error */
	got = list_sorted(os, "datum/x", &rc);
	CHECK_INTEQ(rc, 0);
	CHECK_STREQ(got, "");
	free(got);
	/* the callback's non-zero return stops the listing and is returned */
	l.stop_after = 2;
	CHECK_INTEQ(object_list(os, "", collect, &l, err, sizeof err), 7);
	CHECK_INTEQ(l.n, 2);
	strbuf_release(&l.keys);
	close_dir(os);
}

static void test_dir_put_leaves_no_temporary_files(void)
{
	struct object_store *os = open_dir();
	struct utimbuf old = { time(NULL) - 2 * 24 * 3600, time(NULL) - 2 * 24 * 3600 };
	struct strbuf p = STRBUF_INIT;
	char err[256], *got;
	int rc;

	for (int i = 0; i < 5; i++)
		CHECK_INTEQ(object_put(os, "locks/lock1", "held", 4, err, sizeof err), 0);
	CHECK_INTEQ(count_temp_files(root), 0);
	/* a key whose parent is an object cannot be written, and leaves nothing behind */
	CHECK_INTEQ(object_put(os, "locks/lock1/sub", "x", 1, err, sizeof err), -1);
	CHECK(strstr(err, "locks/lock1/sub") != NULL);
	/* nor can a key that is a directory be replaced by an object */
	CHECK_INTEQ(object_put(os, "locks", "x", 1, err, sizeof err), -1);
	CHECK_INTEQ(count_temp_files(root), 0);
	CHECK(exists("locks/lock1"));

	/* a writer that died before its rename: its temporary file is never listed; listing
	 * removes it once it is a day old, and leaves a fresh one (a writer at work) alone */
	write_file("locks/.tmp-99-1", "partial");
	write_file("locks/.tmp-99-2", "partial");
	write_file(".tmp-99-3", "partial");
	strbuf_addf(&p, "%s/locks/.tmp-99-1", root);
	CHECK_INTEQ(utime(p.buf, &old), 0);
	strbuf_reset(&p);
	strbuf_addf(&p, "%s/.tmp-99-3", root);
	CHECK_INTEQ(utime(p.buf, &old), 0);
	got = list_sorted(os, "", &rc);
	CHECK_INTEQ(rc, 0);
	CHECK_STREQ(got, "locks/lock1=4");
	free(got);
	CHECK(!exists("locks/.tmp-99-1"));
	CHECK(!exists(".tmp-99-3"));
	CHECK(exists("locks/.tmp-99-2"));
	strbuf_release(&p);
	close_dir(os);
}

/* Writers replace one object again and again while a reader reads it: every read sees one
 * whole version, never a mix or a part. */
#define RACE_SIZE (64 * 1024)
#define RACE_ROUNDS 30

struct race {
	struct object_store *os;
	char fill;
	int torn;
};

static void *race_writer(void *arg)
{
	struct race *r = arg;
	char *data = malloc(RACE_SIZE), err[256];

	memset(data, r->fill, RACE_SIZE);
	for (int i = 0; i < RACE_ROUNDS; i++)
		if (object_put(r->os, "race/obj", data, RACE_SIZE, err, sizeof err) < 0)
			r->torn++;
	free(data);
	return NULL;
}

static void test_dir_put_is_atomic_for_readers(void)
{
	struct object_store *os = open_dir();
	struct race writers[2] = { { os, 'a', 0 }, { os, 'b', 0 } };
	struct strbuf out = STRBUF_INIT;
	pthread_t tid[2];
	char err[256], first;
	int torn = 0, reads = 0;

	CHECK_INTEQ(object_put(os, "race/obj", "", 0, err, sizeof err), 0);
	for (int i = 0; i < 2; i++)
		pthread_create(&tid[i], NULL, race_writer, &writers[i]);
	for (int i = 0; i < 3 * RACE_ROUNDS; i++) {
		strbuf_reset(&out);
		if (object_get(os, "race/obj", 0, 0, &out, err, sizeof err) < 0) {
			torn++;
			continue;
		}
		reads++;
		if (out.len == 0)
			continue;	/* the first, empty version */
		first = out.buf[0];
		if (out.len != RACE_SIZE || (first != 'a' && first != 'b'))
			torn++;
		for (size_t j = 0; j < out.len; j++)
			if (out.buf[j] != first) {
				torn++;
				break;
			}
	}
	for (int i = 0; i < 2; i++)
		pthread_join(tid[i], NULL);
	CHECK_INTEQ(torn, 0);
	CHECK_INTEQ(writers[0].torn + writers[1].torn, 0);
	CHECK_INTEQ(reads, 3 * RACE_ROUNDS);
	CHECK_INTEQ(count_temp_files(root), 0);
	strbuf_release(&out);
	close_dir(os);
}

/* ---- the S3 store ---- */

static void test_s3_url_is_checked(void)
{
	static const struct { const char *url, *words; } bad[] = {
		{ "s3://ab", "3 to 63" },
		{ "s3://Bucket", "3 to 63" },
		{ "s3://bucket_x/p", "3 to 63" },
		{ "s3://", "3 to 63" },
		{ "s3://bucket/a/../b", "prefix" },
		{ "s3://bucket/a//b", "prefix" },
		{ "s3://bucket/.hidden", "prefix" },
		{ "s3://bucket?foo=1", "\"foo\"" },
		{ "s3://bucket?region=eu-west-1&region=us-east-1", "\"region\"" },
		{ "s3://bucket?endpoint=", "\"endpoint\"" },
		{ "s3://bucket?endpoint", "\"endpoint\"" },
		{ "s3://bucket?path_style=2", "\"path_style\"" },
		{ "s3://bucket?deadline_s=0", "\"deadline_s\"" },
		{ "s3://bucket?deadline_s=86401", "\"deadline_s\"" },
		{ "s3://bucket?deadline_s=30s", "\"deadline_s\"" },
		{ "s3://bucket?deadline_s=-5", "\"deadline_s\"" },
		{ "s3://bucket?deadline_s=30&deadline_s=40", "\"deadline_s\"" },
		{ "s3://bucket?endpoint=ftp://127.0.0.1:9", "scheme" },
		{ "s3://bucket?endpoint=http://127.0.0.1:9/path", "path" },
		{ "s3://bucket?region=EU", "region" },
	};
	char err[512];
	struct object_store *os;

	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	CHECK(object_store_open("s3://bucket/p?endpoint=http://127.0.0.1:9", err, sizeof err) == NULL);
	CHECK(strstr(err, "AWS_ACCESS_KEY_ID") != NULL);
	setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret-in-env", 1);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		os = object_store_open(bad[i].url, err, sizeof err);
		CHECK(os == NULL);
		if (!strstr(err, bad[i].words))
			printf("# %s: %s\n", bad[i].url, err);
		CHECK(strstr(err, bad[i].words) != NULL);
		CHECK(strstr(err, "secret-in-env") == NULL);
		object_store_close(os);
	}
	/* opening does not connect: a closed port still opens */
	os = object_store_open("s3://my-bucket.x/some/prefix//?endpoint=http://127.0.0.1:9&region=eu-west-1"
			       "&path_style=1&deadline_s=86400", err, sizeof err);
	CHECK(os != NULL);
	object_store_close(os);
	os = object_store_open("s3://bucket", err, sizeof err);
	CHECK(os != NULL);
	object_store_close(os);
}

/* A scripted S3 endpoint: records each request and answers by its target. */
static struct strbuf s3_seen = STRBUF_INIT;

static void answer_s3(const struct loopback_request *rq, struct strbuf *out, void *ud)
{
	static const char listing[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><IsTruncated>false</IsTruncated>"
		"<Contents><Key>pre/fix/data/a1</Key><Size>11</Size><LastModified>2026-11-25T12:57:32.000Z</LastModified></Contents>"
		"<Contents><Key>pre/fix/data/../../x</Key><Size>1</Size></Contents>"
		"<Contents><Key>pre/fix/data/b2</Key><Size>22</Size><LastModified>garbage</LastModified></Contents>"
		"</ListBucketResult>";
	/* a key outside the prefix asked for: the callers cut the prefix off (strrchr(key, '/') + 1) */
	static const char outside[] = "<ListBucketResult><Contents><Key>pre/fix/foo</Key><Size>1</Size></Contents></ListBucketResult>";
	static const char no_key[] = "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>";

	(void)ud;
	strbuf_addf(&s3_seen, "%s %s\n", rq->method, rq->target);
	if (strcmp(rq->method, "PUT") == 0)
		loopback_reply(out, 200, "ETag: \"d41d8cd98f00b204e9800998ecf8427e\"\r\n", "", 0);
	else if (strcmp(rq->method, "HEAD") == 0 && strstr(rq->target, "/data/endless"))
		loopback_reply(out, 200, NULL, "", 0);
	else if (strstr(rq->target, "/data/endless")) {
		/* whatever was asked (a range, or a whole object it called empty), more than a
		 * repository ever writes */
		size_t n = (64u << 20) + 1;
		char *body = xmalloc(n);
		memset(body, 'x', n);
		loopback_reply(out, 200, NULL, body, n);
		free(body);
	}
	else if (strncmp(rq->target, "/bucket?list-type=2", 19) == 0 && strstr(rq->target, "prefix=pre%2Ffix%2Fdata%2Findex%2F"))
		loopback_reply(out, 200, "Content-Type: application/xml\r\n", outside, sizeof outside - 1);
	else if (strncmp(rq->target, "/bucket?list-type=2", 19) == 0)
		loopback_reply(out, 200, "Content-Type: application/xml\r\n", listing, sizeof listing - 1);
	else
		loopback_reply(out, 404, "Content-Type: application/xml\r\n", no_key, sizeof no_key - 1);
}

struct timed_listing {
	struct strbuf keys;
};

static int collect_times(const char *key, const struct object_info *info, void *arg)
{
	struct timed_listing *l = arg;

	strbuf_addf(&l->keys, "%s=%llu@%lld ", key, (unsigned long long)info->size, (long long)info->mtime);
	return 0;
}

static void test_s3_store_maps_keys_under_its_prefix(void)
{
	struct loopback_server srv;
	struct timed_listing l = { STRBUF_INIT };
	struct strbuf out = STRBUF_INIT, url = STRBUF_INIT;
	struct object_store *os;
	char err[512];
	int before;

	CHECK_INTEQ(loopback_server_start(&srv, 0, answer_s3, NULL), 0);
	setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret-in-env", 1);
	strbuf_addf(&url, "s3://bucket/pre/fix/?endpoint=%s&path_style=1&region=eu-west-1", srv.url);
	os = object_store_open(url.buf, err, sizeof err);
	CHECK(os != NULL);
	if (!os) {
		printf("# %s\n", err);
		loopback_server_stop(&srv);
		return;
	}
	CHECK_INTEQ(object_put(os, "data/a1", "hello", 5, err, sizeof err), 0);
	CHECK_STREQ(s3_seen.buf, "PUT /bucket/pre/fix/data/a1\n");
	strbuf_reset(&s3_seen);
	CHECK_INTEQ(object_get(os, "data/none", 0, 0, &out, err, sizeof err), OBJECT_STORE_NOT_FOUND);
	CHECK(strstr(err, "not found") != NULL);
	CHECK_INTEQ(out.len, 0);
	CHECK_INTEQ(object_head(os, "data/none", NULL, err, sizeof err), 0);
	/* only the keys under the prefix that are valid keys are listed, without the prefix */
	CHECK_INTEQ(object_list(os, "data/", collect_times, &l, err, sizeof err), 0);
	CHECK_STREQ(l.keys.buf, "data/a1=11@1795611452 data/b2=22@0 ");
	CHECK(strstr(s3_seen.buf, "prefix=pre%2Ffix%2Fdata%2F") != NULL);
	strbuf_reset(&l.keys);
	CHECK_INTEQ(object_list(os, "data/index/", collect_times, &l, err, sizeof err), -1);
	CHECK(strstr(err, "\"pre/fix/foo\", a key outside it") != NULL);
	CHECK(!l.keys.len);
	/* a reply past the range asked for, or past what a whole object may be, fails the read as
	 * it comes, not after it has all been kept */
	strbuf_addstr(&out, "kept");
	CHECK_INTEQ(object_get(os, "data/endless", 0, 4, &out, err, sizeof err), -1);
	CHECK_STREQ(err, "object data/endless: the endpoint sent more than the 4 bytes asked for");
	CHECK_INTEQ(object_get(os, "data/endless", 0, 0, &out, err, sizeof err), -1);
	CHECK_STREQ(err, "object data/endless: larger than 64 MiB, more than a repository writes");
	CHECK_INTEQ(out.len, 4);
	/* invalid keys are refused before any request */
	before = atomic_load(&srv.requests);
	CHECK_INTEQ(object_put(os, "../up", "x", 1, err, sizeof err), -1);
	CHECK_INTEQ(object_get(os, "a//b", 0, 0, &out, err, sizeof err), -1);
	CHECK_INTEQ(object_head(os, "../../other-repo/config", NULL, err, sizeof err), -1);
	CHECK(strstr(err, "not a valid key") != NULL);
	CHECK_INTEQ(object_delete(os, ".x", err, sizeof err), -1);
	CHECK_INTEQ(atomic_load(&srv.requests) - before, 0);
	object_store_close(os);
	loopback_server_stop(&srv);
	strbuf_release(&l.keys);
	strbuf_release(&out);
	strbuf_release(&url);
	strbuf_release(&s3_seen);
}

int main(void)
{
	RUN(test_key_validity);
	RUN(test_open_refuses_bad_urls);
	RUN(test_dir_put_get_head_delete);
	RUN(test_dir_refuses_keys_that_leave_the_root);
	RUN(test_dir_list_by_prefix);
	RUN(test_dir_put_leaves_no_temporary_files);
	RUN(test_dir_put_is_atomic_for_readers);
	RUN(test_s3_url_is_checked);
	RUN(test_s3_store_maps_keys_under_its_prefix);
	return check_done();
}
