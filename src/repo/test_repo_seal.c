#include "repo_seal.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

static uint8_t key[AEAD_KEY_LEN] = { 7 }, other[AEAD_KEY_LEN] = { 8 };

static char *pattern(size_t n)
{
	char *p = malloc(n ? n : 1);

	for (size_t i = 0; i < n; i++)
		p[i] = (char)(i * 131 + i / 7);
	return p;
}

struct source {
	const char *data;
	size_t len, pos, step;
};

static long source_read(void *buf, size_t len, void *ud)
{
	struct source *s = ud;
	size_t n = s->len - s->pos;

	if (n > len)
		n = len;
	if (n > s->step)
		n = s->step;
	memcpy(buf, s->data + s->pos, n);
	s->pos += n;
	return (long)n;
}

static void test_round_trips_at_segment_edges(void)
{
	const size_t sizes[] = { 0, 1, REPO_SEAL_SEGMENT - 1, REPO_SEAL_SEGMENT, REPO_SEAL_SEGMENT + 1,
				 3 * REPO_SEAL_SEGMENT + 17 };

	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char *plain = pattern(sizes[i]), err[200], buf[70000];
		struct strbuf mem = STRBUF_INIT, streamed = STRBUF_INIT, back = STRBUF_INIT;
		struct source src = { plain, sizes[i], 0, 65537 };
		struct repo_sealer s;
		long n;

		repo_seal_mem(key, "b/x.tar.gz", plain, sizes[i], &mem);
		CHECK_INTEQ(mem.len, repo_seal_size(sizes[i]));
		repo_sealer_init(&s, key, "b/x.tar.gz", sizes[i], source_read, &src);
		while ((n = repo_sealer_read(&s, buf, sizeof buf)) > 0)
			strbuf_add(&streamed, buf, (size_t)n);
		CHECK_INTEQ(n, 0);
		repo_sealer_release(&s);
		CHECK_INTEQ(streamed.len, repo_seal_size(sizes[i]));
		CHECK_INTEQ(repo_unseal_mem(key, "b/x.tar.gz", streamed.buf, streamed.len, &back, err, sizeof err), 0);
		CHECK(back.len == sizes[i] && memcmp(back.buf, plain, sizes[i]) == 0);
		CHECK(sizes[i] < 64 || !memmem(mem.buf, mem.len, plain, 64));	/* no plaintext shows */
		strbuf_release(&mem);
		strbuf_release(&streamed);
		strbuf_release(&back);
		free(plain);
	}
}

static void test_changes_are_refused(void)
{
	size_t len = 2 * REPO_SEAL_SEGMENT + 100, seg = 4 + REPO_SEAL_SEGMENT + AEAD_OVERHEAD;
	char *plain = pattern(len), err[200];
	struct strbuf sealed = STRBUF_INIT, back = STRBUF_INIT, copy = STRBUF_INIT;

	repo_seal_mem(key, "b/x.tar.gz", plain, len, &sealed);
	CHECK_INTEQ(repo_unseal_mem(other, "b/x.tar.gz", sealed.buf, sealed.len, &back, err, sizeof err), -1);
	CHECK(strstr(err, "does not open with this repository's key") != NULL);
	CHECK_INTEQ(repo_unseal_mem(key, "b/y.tar.gz", sealed.buf, sealed.len, &back, err, sizeof err), -1);
	/* one flipped byte */
	strbuf_add(&copy, sealed.buf, sealed.len);
	copy.buf[copy.len / 2] ^= 1;
	CHECK_INTEQ(repo_unseal_mem(key, "b/x.tar.gz", copy.buf, copy.len, &back, err, sizeof err), -1);
	/* cut after the first full segment: the end is missing */
	CHECK_INTEQ(repo_unseal_mem(key, "b/x.tar.gz", sealed.buf, 8 + seg, &back, err, sizeof err), -1);
	CHECK(strstr(err, "cut short") != NULL);
	/* the two full segments swapped */
	strbuf_reset(&copy);
	strbuf_add(&copy, sealed.buf, 8);
	strbuf_add(&copy, sealed.buf + 8 + seg, seg);
	strbuf_add(&copy, sealed.buf + 8, seg);
	strbuf_add(&copy, sealed.buf + 8 + 2 * seg, sealed.len - 8 - 2 * seg);
	CHECK_INTEQ(repo_unseal_mem(key, "b/x.tar.gz", copy.buf, copy.len, &back, err, sizeof err), -1);
	/* a plain object in its place */
	CHECK_INTEQ(repo_unseal_mem(key, "b/x.tar.gz", "\x1f\x8b\x08\x00plain gzip", 14, &back, err, sizeof err), -1);
	CHECK(strstr(err, "not sealed by Stowage") != NULL);
	/* a segment claiming more than Stowage writes */
	CHECK_INTEQ(repo_unseal_mem(key, "b/x.tar.gz", "STOWAGE\x01\xff\xff\xff\xff", 12, &back, err, sizeof err), -1);
	CHECK(strstr(err, "larger than Stowage writes") != NULL);
	strbuf_release(&sealed);
	strbuf_release(&back);
	strbuf_release(&copy);
	free(plain);
}

int main(void)
{
	RUN(test_round_trips_at_segment_edges);
	RUN(test_changes_are_refused);
	return check_done();
}
