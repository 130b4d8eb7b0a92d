#include "chunk_store.h"
#include "object_store.h"
#include "check.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t master[AEAD_KEY_LEN] = "0123456789abcdef0123456789abcdef";

static char *make_tmpdir(void)
{
	char tmpl[] = "/tmp/stowage-cs-XXXXXX";
	char *d = mkdtemp(tmpl);

	return d ? strdup(d) : NULL;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void remove_tmpdir(char *dir)
{
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

struct counter {
	int n;
	uint64_t bytes;
};

static int count_cb(const char *key, const struct object_info *info, void *arg)
{
	struct counter *c = arg;

	(void)key;
	c->n++;
	c->bytes += info->size;
	return 0;
}

static int count_objects(struct object_store *os, const char *prefix)
{
	struct counter c = { 0, 0 };
	char err[256];

	object_list(os, prefix, count_cb, &c, err, sizeof err);
	return c.n;
}

struct first_key {
	char key[512];
};

static int first_cb(const char *key, const struct object_info *info, void *arg)
{
	(void)info;
	snprintf(((struct first_key *)arg)->key, 512, "%s", key);
	return 1;
}

static void test_object_store_dir_basics(void)
{
	char *dir = make_tmpdir(), err[256] = "";
	struct object_store *os = object_store_dir_open(dir, err, sizeof err);
	struct strbuf sb = STRBUF_INIT;
	struct object_info info;

	CHECK(os != NULL);
	CHECK_INTEQ(object_put(os, "r/a/b/c", "hello world", 11, err, sizeof err), 0);
	CHECK_INTEQ(object_get(os, "r/a/b/c", 6, 5, &sb, err, sizeof err), 0);
	CHECK_STREQ(sb.buf, "world");
	CHECK_INTEQ(object_head(os, "r/a/b/c", &info, err, sizeof err), 1);
	CHECK_INTEQ(info.size, 11);
	CHECK_INTEQ(object_head(os, "r/a/b/nope", &info, err, sizeof err), 0);
	strbuf_reset(&sb);
	CHECK_INTEQ(object_get(os, "r/a/nope", 0, 0, &sb, err, sizeof err), OBJECT_STORE_NOT_FOUND);
	CHECK_INTEQ(object_get(os, "r/a/b/c", 6, 50, &sb, err, sizeof err), -1);
	CHECK_INTEQ(object_put(os, "r/../etc", "x", 1, err, sizeof err), -1);
	CHECK_STREQ(err, "object key \"r/../etc\": not a valid key");
	CHECK_INTEQ(object_put(os, "r/a/bb", "x", 1, err, sizeof err), 0);
	CHECK_INTEQ(object_put(os, "r/ab", "x", 1, err, sizeof err), 0);
	CHECK_INTEQ(count_objects(os, "r/a/b"), 2);	/* r/a/b/c and r/a/bb, not r/ab */
	CHECK_INTEQ(count_objects(os, "r/"), 3);
	CHECK_INTEQ(object_delete(os, "r/a/b/c", err, sizeof err), 0);
	CHECK_INTEQ(count_objects(os, "r/a/b"), 1);
	strbuf_release(&sb);
	object_store_close(os);
	remove_tmpdir(dir);
}

static void test_round_trip_and_dedup(void)
{
	char *dir = make_tmpdir(), err[256] = "";
	struct object_store *os = object_store_dir_open(dir, err, sizeof err);
	struct chunk_store *cs;
	struct chunk_store_stats st;
	uint8_t *data = malloc(CHUNK_MAX), id1[CHUNK_ID_LEN], id2[CHUNK_ID_LEN], id3[CHUNK_ID_LEN];
	struct strbuf out = STRBUF_INIT;

	fill(data, CHUNK_MAX, 1);
	CHECK_INTEQ(chunk_store_open(&cs, os, "repo1", master, NULL, err, sizeof err), 0);
	CHECK_INTEQ(chunk_store_put(cs, CHUNK_DATA, data, CHUNK_MAX, id1, err, sizeof err), 0);
	CHECK_INTEQ(chunk_store_put(cs, CHUNK_DATA, data, CHUNK_MAX, id2, err, sizeof err), 0);
	CHECK(memcmp(id1, id2, CHUNK_ID_LEN) == 0);
	memset(data, 'z', 1000);
	CHECK_INTEQ(chunk_store_put(cs, CHUNK_DATA, data, 1000, id3, err, sizeof err), 0);
	CHECK_INTEQ(chunk_store_flush(cs, err, sizeof err), 0);
	chunk_store_get_stats(cs, &st);
	CHECK_INTEQ(st.chunks_new, 2);
	CHECK_INTEQ(st.chunks_reused, 1);
	CHECK_INTEQ(st.packs_written, 1);
	/* the compressible chunk shrank: the pack is smaller than its raw data */
	CHECK(st.bytes_written < CHUNK_MAX + 1000 + 1024);
	chunk_store_close(cs);

	/* a fresh process sees the chunks through the index and reads them back */
	CHECK_INTEQ(chunk_store_open(&cs, os, "repo1", master, NULL, err, sizeof err), 0);
	CHECK(chunk_store_has(cs, id1));
	CHECK_INTEQ(chunk_store_get(cs, id3, &out, err, sizeof err), 0);
	CHECK_INTEQ(out.len, 1000);
	CHECK(memcmp(out.buf, data, 1000) == 0);
	strbuf_reset(&out);
	fill(data, CHUNK_MAX, 1);
	CHECK_INTEQ(chunk_store_get(cs, id1, &out, err, sizeof err), 0);
	CHECK(out.len == CHUNK_MAX && memcmp(out.buf, data, CHUNK_MAX) == 0);
	/* the same data again stores nothing */
	CHECK_INTEQ(chunk_store_put(cs, CHUNK_DATA, data, CHUNK_MAX, id2, err, sizeof err), 0);
	CHECK_INTEQ(chunk_store_flush(cs, err, sizeof err), 0);
	chunk_store_get_stats(cs, &st);
	CHECK_INTEQ(st.chunks_new, 0);
	CHECK_INTEQ(st.packs_written, 0);
	CHECK_INTEQ(count_objects(os, "repo1/data/packs/"), 1);
	CHECK_INTEQ(count_objects(os, "repo1/data/index/"), 1);
	chunk_store_close(cs);

	/* another repository id derives other keys: same data, another id */
	CHECK_INTEQ(chunk_store_open(&cs, os, "repo2", master, NULL, err, sizeof err), 0);
	CHECK_INTEQ(chunk_store_put(cs, CHUNK_DATA, data, CHUNK_MAX, id2, err, sizeof err), 0);
	CHECK(memcmp(id1, id2, CHUNK_ID_LEN) != 0);
	chunk_store_close(cs);
	strbuf_release(&out);
	free(data);
	object_store_close(os);
	remove_tmpdir(dir);
}

static void test_packs_fill_to_target(void)
{
	char *dir = make_tmpdir(), err[256] = "";
	struct object_store *os = object_store_dir_open(dir, err, sizeof err);
	struct chunk_store_options opt = { .pack_target = 3u * 1024 * 1024 };
	struct chunk_store *cs;
	struct chunk_store_stats st;
	uint8_t *data = malloc(1024 * 1024), id[CHUNK_ID_LEN];

	CHECK_INTEQ(chunk_store_open(&cs, os, "r", master, &opt, err, sizeof err), 0);
	for (int i = 0; i < 10; i++) {
		fill(data, 1024 * 1024, (uint32_t)i + 100);
		CHECK_INTEQ(chunk_store_put(cs, CHUNK_DATA, data, 1024 * 1024, id, err, sizeof err), 0);
	}
	CHECK_INTEQ(chunk_store_flush(cs, err, sizeof err), 0);
	chunk_store_get_stats(cs, &st);
	CHECK_INTEQ(st.packs_written, 4);	/* 3 + 3 + 3 + 1 chunks */
	chunk_store_close(cs);
	free(data);
	object_store_close(os);
	remove_tmpdir(dir);
}

static void flip_byte_in_first_pack(struct object_store *os, const char *dir, const char *prefix, long at)
{
	struct first_key fk = { "" };
	char err[256], path[1024];
	int fd;
	uint8_t b;

	object_list(os, prefix, first_cb, &fk, err, sizeof err);
	snprintf(path, sizeof path, "%s/%s", dir, fk.key);
	fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	CHECK(pread(fd, &b, 1, at) == 1);
	b ^= 0x40;
	CHECK(pwrite(fd, &b, 1, at) == 1);
	close(fd);
}

static void test_tampered_and_missing_chunks_are_reported(void)
{
	char *dir = make_tmpdir(), err[256] = "";
	struct object_store *os = object_store_dir_open(dir, err, sizeof err);
	struct chunk_store *cs;
	uint8_t data[5000], id[CHUNK_ID_LEN], other[CHUNK_ID_LEN];
	struct strbuf out = STRBUF_INIT;
	char hex[CHUNK_ID_HEX], want[256];

	fill(data, sizeof data, 9);
	CHECK_INTEQ(chunk_store_open(&cs, os, "r", master, NULL, err, sizeof err), 0);
	CHECK_INTEQ(chunk_store_put(cs, CHUNK_DATA, data, sizeof data, id, err, sizeof err), 0);
	CHECK_INTEQ(chunk_store_flush(cs, err, sizeof err), 0);
	chunk_store_close(cs);

	flip_byte_in_first_pack(os, dir, "r/data/packs/", 100);
	CHECK_INTEQ(chunk_store_open(&cs, os, "r", master, NULL, err, sizeof err), 0);
	CHECK_INTEQ(chunk_store_get(cs, id, &out, err, sizeof err), CHUNK_STORE_CORRUPT);
	chunk_id_hex(id, hex);
	snprintf(want, sizeof want, "chunk %.16s in pack ", hex);
	CHECK(strncmp(err, want, strlen(want)) == 0);
	CHECK(strstr(err, "authentication failed") != NULL);

	memset(other, 7, sizeof other);
	CHECK_INTEQ(chunk_store_get(cs, other, &out, err, sizeof err), CHUNK_STORE_CORRUPT);
	CHECK_STREQ(err, "chunk 0707070707070707: missing (no pack index lists it)");
	chunk_store_close(cs);

	/* a tampered index is refused when the repository is opened */
	flip_byte_in_first_pack(os, dir, "r/data/index/", 20);
	CHECK_INTEQ(chunk_store_open(&cs, os, "r", master, NULL, err, sizeof err), CHUNK_STORE_CORRUPT);
	CHECK(strstr(err, "authentication failed") != NULL);
	strbuf_release(&out);
	object_store_close(os);
	remove_tmpdir(dir);
}

static void test_wrong_key_is_refused(void)
{
	char *dir = make_tmpdir(), err[256] = "";
	struct object_store *os = object_store_dir_open(dir, err, sizeof err);
	struct chunk_store *cs;
	uint8_t data[100] = { 1 }, id[CHUNK_ID_LEN], other_key[AEAD_KEY_LEN] = { 0 };

	CHECK_INTEQ(chunk_store_open(&cs, os, "r", master, NULL, err, sizeof err), 0);
	CHECK_INTEQ(chunk_store_put(cs, CHUNK_DATA, data, sizeof data, id, err, sizeof err), 0);
	CHECK_INTEQ(chunk_store_flush(cs, err, sizeof err), 0);
	chunk_store_close(cs);
	CHECK_INTEQ(chunk_store_open(&cs, os, "r", other_key, NULL, err, sizeof err), CHUNK_STORE_CORRUPT);
	CHECK_INTEQ(chunk_store_open(&cs, os, "../x", master, NULL, err, sizeof err), -1);
	object_store_close(os);
	remove_tmpdir(dir);
}

/* A store that counts the gets it passes on to the directory store below it. */
struct counting_store {
	struct object_store base;
	struct object_store *below;
	int gets;
	uint64_t bytes;		/* read by the gets */
	pthread_mutex_t mu;	/* a reader's read-ahead thread gets too */
};

static int cnt_put(struct object_store *os, const char *key, const void *data, size_t len, const uint8_t *sha256,
		   char *err, size_t errlen)
{
	return ((struct counting_store *)os)->below->ops->put(((struct counting_store *)os)->below, key, data, len,
							      sha256, err, errlen);
}

static int cnt_get(struct object_store *os, const char *key, uint64_t off, uint64_t len, struct strbuf *out,
		   char *err, size_t errlen)
{
	struct counting_store *c = (struct counting_store *)os;
	size_t before = out->len;
	int rc = object_get(c->below, key, off, len, out, err, errlen);

	pthread_mutex_lock(&c->mu);
	c->gets++;
	c->bytes += out->len - before;
	pthread_mutex_unlock(&c->mu);
	return rc;
}

static int cnt_head(struct object_store *os, const char *key, struct object_info *info, char *err, size_t errlen)
{
	return object_head(((struct counting_store *)os)->below, key, info, err, errlen);
}

static int cnt_list(struct object_store *os, const char *prefix, object_store_list_cb cb, void *arg,
		    char *err, size_t errlen)
{
	return object_list(((struct counting_store *)os)->below, prefix, cb, arg, err, errlen);
}

static int cnt_del(struct object_store *os, const char *key, char *err, size_t errlen)
{
	return object_delete(((struct counting_store *)os)->below, key, err, errlen);
}

static void cnt_close(struct object_store *os)
{
	(void)os;
}

static const struct object_store_ops counting_ops = { cnt_put, cnt_get, cnt_head, cnt_list, cnt_del, cnt_close };

static void test_reader_serves_neighbouring_chunks_from_one_read(void)
{
	char *dir = make_tmpdir(), err[256] = "";
	struct counting_store cnt = { { &counting_ops }, object_store_dir_open(dir, err, sizeof err), 0, 0,
				      PTHREAD_MUTEX_INITIALIZER };
	struct chunk_store *cs;
	struct chunk_reader *r;
	static uint8_t ids[200][CHUNK_ID_LEN];
	uint8_t data[3000];
	struct strbuf out = STRBUF_INIT;
	int gets_before, ok = 1;

	CHECK_INTEQ(chunk_store_open(&cs, &cnt.base, "r", master, NULL, err, sizeof err), 0);
	for (int i = 0; i < 200; i++) {
		fill(data, sizeof data, (uint32_t)i + 1000);
		CHECK_INTEQ(chunk_store_put(cs, CHUNK_DATA, data, sizeof data, ids[i], err, sizeof err), 0);
	}
	CHECK_INTEQ(chunk_store_flush(cs, err, sizeof err), 0);
	r = chunk_reader_new(cs);
	gets_before = cnt.gets;
	for (int i = 0; i < 200; i++) {
		fill(data, sizeof data, (uint32_t)i + 1000);
		strbuf_reset(&out);
		ok &= chunk_store_read(cs, r, ids[i], &out, err, sizeof err) == 0 &&
		      out.len == sizeof data && memcmp(out.buf, data, sizeof data) == 0;
	}
	CHECK(ok);
	/* 200 chunks of ~3 KB, 600 KB in all: one window */
	CHECK_INTEQ(cnt.gets - gets_before, 1);
	/* without a reader, one get each */
	CHECK_INTEQ(chunk_store_get(cs, ids[7], &out, err, sizeof err), 0);
	CHECK_INTEQ(cnt.gets - gets_before, 2);
	chunk_reader_free(r);
	strbuf_release(&out);
	chunk_store_close(cs);
	object_store_close(cnt.below);
	remove_tmpdir(dir);
}

/* Three threads reading one repository through one reader, each every third chunk (a
 * restore's writers sharing a directory's small files): right bytes, and each byte of a pack
 * fetched once, however the threads interleave. */
#define SHARED_CHUNKS 96
#define SHARED_CHUNK_LEN (200 * 1024)
struct shared_read {
	struct chunk_store *cs;
	struct chunk_reader *r;
	uint8_t (*ids)[CHUNK_ID_LEN];
	unsigned t;
	int ok;
};

static void *shared_reader_thread(void *arg)
{
	struct shared_read *sr = arg;
	uint8_t *want = malloc(SHARED_CHUNK_LEN);
	struct strbuf out = STRBUF_INIT;
	char err[256];

	sr->ok = 1;
	for (unsigned i = sr->t; i < SHARED_CHUNKS; i += 3) {
		if (i + 3 < SHARED_CHUNKS)
			chunk_reader_hint(sr->r, sr->ids[i + 3]);
		fill(want, SHARED_CHUNK_LEN, i + 7);
		strbuf_reset(&out);
		sr->ok &= chunk_store_read(sr->cs, sr->r, sr->ids[i], &out, err, sizeof err) == 0 &&
			  out.len == SHARED_CHUNK_LEN && memcmp(out.buf, want, SHARED_CHUNK_LEN) == 0;
	}
	strbuf_release(&out);
	free(want);
	return NULL;
}

static int add_size(const char *key, const struct object_info *info, void *arg)
{
	(void)key;
	*(uint64_t *)arg += info->size;
	return 0;
}

static void test_shared_reader_fetches_each_byte_once(void)
{
	char *dir = make_tmpdir(), err[256] = "";
	struct counting_store cnt = { { &counting_ops }, object_store_dir_open(dir, err, sizeof err), 0, 0,
				      PTHREAD_MUTEX_INITIALIZER };
	struct chunk_store_options opt = { .pack_target = 12u << 20 };	/* 2 packs, one of 2 windows */
	static uint8_t ids[SHARED_CHUNKS][CHUNK_ID_LEN];
	uint8_t *data = malloc(SHARED_CHUNK_LEN);
	struct shared_read sr[3];
	pthread_t tid[3];
	struct chunk_store *cs;
	uint64_t packs = 0;

	CHECK_INTEQ(chunk_store_open(&cs, &cnt.base, "r", master, &opt, err, sizeof err), 0);
	for (unsigned i = 0; i < SHARED_CHUNKS; i++) {
		fill(data, SHARED_CHUNK_LEN, i + 7);
		CHECK_INTEQ(chunk_store_put(cs, CHUNK_DATA, data, SHARED_CHUNK_LEN, ids[i], err, sizeof err), 0);
	}
	CHECK_INTEQ(chunk_store_flush(cs, err, sizeof err), 0);
	CHECK_INTEQ(object_list(cnt.below, "r/data/packs/", add_size, &packs, err, sizeof err), 0);
	cnt.bytes = 0;
	for (unsigned t = 0; t < 3; t++) {
		sr[t] = (struct shared_read){ cs, NULL, ids, t, 0 };
		if (t == 0)
			sr[0].r = chunk_reader_new(cs);
		sr[t].r = sr[0].r;
		CHECK_INTEQ(pthread_create(&tid[t], NULL, shared_reader_thread, &sr[t]), 0);
	}
	for (unsigned t = 0; t < 3; t++) {
		pthread_join(tid[t], NULL);
		CHECK(sr[t].ok);
	}
	chunk_reader_free(sr[0].r);
	printf("# %llu bytes fetched of %llu in packs\n", (unsigned long long)cnt.bytes, (unsigned long long)packs);
	CHECK(packs > SHARED_CHUNKS * (uint64_t)SHARED_CHUNK_LEN / 2);
	CHECK(cnt.bytes <= packs);
	CHECK(cnt.bytes >= packs / 2);
	free(data);
	chunk_store_close(cs);
	object_store_close(cnt.below);
	remove_tmpdir(dir);
}

/* chunk_store_put keeps its compression context and buffers between calls: small chunks that
 * compress and chunks that do not (stored raw), of both kinds and any size order, each come
 * back exactly, none carrying bytes of the one before. */
static void test_small_chunks_of_both_kinds_round_trip(void)
{
	char *dir = make_tmpdir(), err[256] = "";
	struct object_store *os = object_store_dir_open(dir, err, sizeof err);
	static const size_t sizes[] = { 8192, 1, 4096, 600, 8000, 3, 512, 7777 };
	enum { N = 2 * sizeof sizes / sizeof sizes[0] };
	uint8_t data[N][8192], ids[N][CHUNK_ID_LEN];
	uint64_t raw = 0, random_raw = 0;
	struct chunk_store_stats st;
	struct strbuf out = STRBUF_INIT;
	struct chunk_store *cs;

	CHECK_INTEQ(chunk_store_open(&cs, os, "r", master, NULL, err, sizeof err), 0);
	for (size_t i = 0; i < N; i++) {
		size_t len = sizes[i / 2];
		if (i % 2) {
			fill(data[i], len, (uint32_t)i + 7);	/* incompressible */
			random_raw += len;
		} else {
			for (size_t j = 0; j < len; j++)
				data[i][j] = (uint8_t)"stowage volume "[(j + i) % 15];
		}
		raw += len;
		CHECK_INTEQ(chunk_store_put(cs, i % 4 < 2 ? CHUNK_DATA : CHUNK_TREE, data[i], len, ids[i], err,
					    sizeof err), 0);
	}
	CHECK_INTEQ(chunk_store_flush(cs, err, sizeof err), 0);
	chunk_store_get_stats(cs, &st);
	/* the text shrank; the random data was not grown beyond its framing */
	CHECK(st.bytes_written < raw);
	CHECK(st.bytes_written > random_raw);
	chunk_store_close(cs);
	CHECK_INTEQ(chunk_store_open(&cs, os, "r", master, NULL, err, sizeof err), 0);
	for (size_t i = 0; i < N; i++) {
		strbuf_reset(&out);
		CHECK_INTEQ(chunk_store_get(cs, ids[i], &out, err, sizeof err), 0);
		CHECK_INTEQ(out.len, sizes[i / 2]);
		CHECK(memcmp(out.buf, data[i], sizes[i / 2]) == 0);
	}
	strbuf_release(&out);
	chunk_store_close(cs);
	object_store_close(os);
	remove_tmpdir(dir);
}

int main(void)
{
	RUN(test_object_store_dir_basics);
	RUN(test_round_trip_and_dedup);
	RUN(test_packs_fill_to_target);
	RUN(test_tampered_and_missing_chunks_are_reported);
	RUN(test_wrong_key_is_refused);
	RUN(test_reader_serves_neighbouring_chunks_from_one_read);
	RUN(test_shared_reader_fetches_each_byte_once);
	RUN(test_small_chunks_of_both_kinds_round_trip);
	return check_done();
}
