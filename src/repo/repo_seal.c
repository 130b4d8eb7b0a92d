#include "repo_seal.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEG_HEAD 4

int repo_seal_key(const uint8_t master[AEAD_KEY_LEN], long long repository_id, uint8_t key[AEAD_KEY_LEN])
{
	char purpose[64];

	snprintf(purpose, sizeof purpose, "objects:repository:%lld", repository_id);
	return aead_derive_key(master, purpose, key);
}

uint64_t repo_seal_size(uint64_t plain)
{
	uint64_t segments = plain / REPO_SEAL_SEGMENT + 1;

	return REPO_SEAL_MAGIC_LEN + segments * (SEG_HEAD + AEAD_OVERHEAD) + plain;
}

static void seal_aad(struct strbuf *aad, const char *object, uint64_t index, int last)
{
	strbuf_reset(aad);
	strbuf_add(aad, object, strlen(object) + 1);
	for (int i = 7; i >= 0; i--)
		strbuf_addch(aad, (char)(index >> (8 * i)));
	strbuf_addch(aad, (char)last);
}

/* Appends one sealed segment of len bytes to out. */
static void seal_segment(const uint8_t *key, const char *object, uint64_t index, int last,
			 const void *plain, size_t len, struct strbuf *out)
{
	struct strbuf aad = STRBUF_INIT;
	uint8_t head[SEG_HEAD] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len };
	size_t at;

	seal_aad(&aad, object, index, last);
	strbuf_add(out, head, SEG_HEAD);
	at = out->len;
	strbuf_grow(out, len + AEAD_OVERHEAD);
	if (aead_seal(key, aad.buf, aad.len, plain, len, (uint8_t *)out->buf + at) < 0)
		abort();	/* only an OpenSSL failure to allocate: nothing sensible to write */
	out->len = at + len + AEAD_OVERHEAD;
	out->buf[out->len] = '\0';
	strbuf_release(&aad);
}

void repo_seal_mem(const uint8_t key[AEAD_KEY_LEN], const char *object, const void *plain, size_t len,
		   struct strbuf *out)
{
	const char *p = plain;
	uint64_t index = 0;

	strbuf_add(out, REPO_SEAL_MAGIC, REPO_SEAL_MAGIC_LEN);
	while (len >= REPO_SEAL_SEGMENT) {
		seal_segment(key, object, index++, 0, p, REPO_SEAL_SEGMENT, out);
		p += REPO_SEAL_SEGMENT;
		len -= REPO_SEAL_SEGMENT;
	}
	seal_segment(key, object, index, 1, p, len, out);
}

void repo_sealer_init(struct repo_sealer *s, const uint8_t key[AEAD_KEY_LEN], const char *object,
		      uint64_t plain_size, repo_seal_source_fn source, void *ud)
{
	memset(s, 0, sizeof *s);
	memcpy(s->key, key, AEAD_KEY_LEN);
	s->object = xstrdup(object);
	s->plain_size = plain_size;
	s->source = source;
	s->ud = ud;
	s->out = xmalloc(REPO_SEAL_MAGIC_LEN);
	memcpy(s->out, REPO_SEAL_MAGIC, REPO_SEAL_MAGIC_LEN);
	s->out_len = REPO_SEAL_MAGIC_LEN;
}

/* Reads the next segment's plaintext from the source and seals it into s->out. */
static int sealer_next(struct repo_sealer *s)
{
	uint64_t left = s->plain_size - s->plain_done;
	size_t want = left >= REPO_SEAL_SEGMENT ? REPO_SEAL_SEGMENT : (size_t)left, got = 0;
	int last = left < REPO_SEAL_SEGMENT;
	uint8_t *plain = xmalloc(want ? want : 1);
	struct strbuf out = STRBUF_INIT;

	while (got < want) {
		long n = s->source(plain + got, want - got, s->ud);

		if (n <= 0) {
			free(plain);
			return -1;
		}
		got += (size_t)n;
	}
	seal_segment(s->key, s->object, s->index++, last, plain, want, &out);
	OPENSSL_cleanse(plain, want);
	free(plain);
	free(s->out);
	s->out_len = out.len;
	s->out_pos = 0;
	s->out = (uint8_t *)strbuf_take(&out);
	s->plain_done += want;
	s->done = last;
	return 0;
}

long repo_sealer_read(struct repo_sealer *s, void *buf, size_t len)
{
	size_t n;

	if (s->out_pos == s->out_len) {
		if (s->done)
			return 0;
		if (sealer_next(s) < 0)
			return -1;
	}
	n = s->out_len - s->out_pos < len ? s->out_len - s->out_pos : len;
	memcpy(buf, s->out + s->out_pos, n);
	s->out_pos += n;
	return (long)n;
}

void repo_sealer_release(struct repo_sealer *s)
{
	OPENSSL_cleanse(s->key, sizeof s->key);
	free(s->object);
	free(s->out);
	s->object = NULL;
	s->out = NULL;
}

void repo_unsealer_init(struct repo_unsealer *u, const uint8_t key[AEAD_KEY_LEN], const char *object,
			repo_seal_sink_fn sink, void *ud)
{
	memset(u, 0, sizeof *u);
	memcpy(u->key, key, AEAD_KEY_LEN);
	u->object = xstrdup(object);
	u->sink = sink;
	u->ud = ud;
	u->in = (struct strbuf)STRBUF_INIT;
}

/* Drops the first n bytes received. */
static void consume(struct strbuf *in, size_t n)
{
	memmove(in->buf, in->buf + n, in->len - n);
	in->len -= n;
	in->buf[in->len] = '\0';
}

static int unseal_fail(struct repo_unsealer *u, const char *why)
{
	u->failed = 1;
	snprintf(u->error, sizeof u->error, "%s", why);
	return -1;
}

int repo_unsealer_feed(struct repo_unsealer *u, const void *data, size_t len)
{
	if (u->failed)
		return -1;
	strbuf_add(&u->in, data, len);
	for (;;) {
		const uint8_t *p = (const uint8_t *)u->in.buf;
		struct strbuf aad = STRBUF_INIT;
		size_t plain_len, need;
		uint8_t *plain;
		int rc;

		if (!u->magic_seen) {
			if (u->in.len < REPO_SEAL_MAGIC_LEN)
				return 0;
			if (memcmp(p, REPO_SEAL_MAGIC, REPO_SEAL_MAGIC_LEN) != 0)
				return unseal_fail(u, "the object is not sealed by Stowage (it was written by something "
						   "else, or changed)");
			u->magic_seen = 1;
			consume(&u->in, REPO_SEAL_MAGIC_LEN);
			continue;
		}
		if (u->in.len < SEG_HEAD)
			return 0;
		if (u->last_seen)
			return unseal_fail(u, "the object goes on past its last segment");
		plain_len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
		if (plain_len > REPO_SEAL_SEGMENT)
			return unseal_fail(u, "the object holds a segment larger than Stowage writes");
		need = SEG_HEAD + plain_len + AEAD_OVERHEAD;
		if (u->in.len < need)
			return 0;
		plain = xmalloc(plain_len ? plain_len : 1);
		/* a full segment is never the last; a short one always is */
		seal_aad(&aad, u->object, u->index, plain_len < REPO_SEAL_SEGMENT);
		rc = aead_open(u->key, aad.buf, aad.len, p + SEG_HEAD, plain_len + AEAD_OVERHEAD, plain);
		strbuf_release(&aad);
		if (rc < 0) {
			free(plain);
			return unseal_fail(u, "the object does not open with this repository's key: it was changed, "
					   "reordered, or belongs elsewhere");
		}
		u->last_seen = plain_len < REPO_SEAL_SEGMENT;
		u->index++;
		consume(&u->in, need);
		rc = u->sink(plain, plain_len, u->ud);
		OPENSSL_cleanse(plain, plain_len);
		free(plain);
		if (rc < 0)
			return unseal_fail(u, "the reader of the object stopped");
	}
}

int repo_unsealer_finish(struct repo_unsealer *u)
{
	if (u->failed)
		return -1;
	if (!u->last_seen || u->in.len)
		return unseal_fail(u, "the object ends before its last segment: it was cut short");
	return 0;
}

void repo_unsealer_release(struct repo_unsealer *u)
{
	OPENSSL_cleanse(u->key, sizeof u->key);
	free(u->object);
	strbuf_release(&u->in);
}

#define UNSEAL_MEM_PIECE (64u << 10)

static int mem_sink(const void *data, size_t len, void *ud)
{
	strbuf_add(ud, data, len);
	return 0;
}

int repo_unseal_mem(const uint8_t key[AEAD_KEY_LEN], const char *object, const void *sealed, size_t len,
		    struct strbuf *out, char *err, size_t errlen)
{
	struct repo_unsealer u;
	int rc;

	repo_unsealer_init(&u, key, object, mem_sink, out);
	/* in pieces, as a stream arrives: fed whole, the object would be copied once more, and each
	 * segment opened would move all the rest of it to the front */
	rc = 0;
	for (size_t at = 0; rc == 0 && at < len; at += UNSEAL_MEM_PIECE)
		rc = repo_unsealer_feed(&u, (const char *)sealed + at,
					len - at < UNSEAL_MEM_PIECE ? len - at : UNSEAL_MEM_PIECE);
	if (rc == 0)
		rc = repo_unsealer_finish(&u);
	if (rc < 0)
		snprintf(err, errlen, "%s: %s", object, u.error);
	repo_unsealer_release(&u);
	return rc;
}
