#include "chunk_store.h"
#include "strbuf.h"
#include "hex.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <zstd.h>

#define PACK_TARGET_DEFAULT (16u * 1024 * 1024)
#define UPLOAD_QUEUE 2
/* zstd levels by kind. Tree lines (JSON with base64 paths and hex chunk ids) come out both
 * smaller and twice as fast at level 1 as at 3 (a 200,000-line tree: 3.92x at 360 MB/s against
 * 3.73x at 176 MB/s); file data keeps 3. */
#define ZSTD_LEVEL_DATA 3
#define ZSTD_LEVEL_TREE 1
#define BLOB_RAW 0
#define BLOB_ZSTD 1
#define BLOB_MAX (1 + CHUNK_MAX + CHUNK_MAX / 128 + 1024 + AEAD_OVERHEAD)
#define INDEX_MAGIC "STWIDX01"
#define INDEX_ENTRY_LEN 48
#define PACK_PENDING UINT32_MAX

struct index_slot {
	uint8_t id[CHUNK_ID_LEN];
	uint32_t pack;		/* PACK_PENDING while the chunk waits for a pack */
	uint32_t stored_len;
	uint32_t raw_len;
	uint8_t used;
	uint64_t offset;
};

struct pack_ref {
	uint8_t id[CHUNK_ID_LEN];
	int durable;		/* pack and index are in the store */
};

/* Restores read chunks in roughly the order backups wrote them, with several threads. A reader
 * is shared by all of them and fetches packs in windows of whole blobs: window k of a pack holds
 * the blobs that start in [k * READ_WINDOW, (k + 1) * READ_WINDOW), so one ranged read serves
 * the neighbouring chunks (a large file's run of chunks, many small files), every byte of a pack
 * is fetched once whichever thread asks first, and a thread asking for a window on its way waits
 * for it. A thread of the reader reads ahead: the window after each one asked for, and those of
 * chunks announced by chunk_reader_hint, at most READ_AHEAD windows not asked for yet. */
#define READ_WINDOW (8u * 1024 * 1024)
#define READ_CACHE 8		/* windows kept (more only while threads are reading from them) */
#define READ_AHEAD 2
#define READ_STALE 256		/* reads after which a window read ahead and never asked for is let go */
#define READ_QUEUE 32
#define READ_DONE 64		/* windows served whole lately: a late hint does not fetch them again */

struct blob_loc {
	uint32_t pack, len;
	uint64_t offset;
};

struct read_window {
	uint32_t pack;
	uint64_t k, start, end;
	struct strbuf data;
	int loading, failed, asked;
	unsigned refs;
	size_t blobs, served;		/* a window whose every blob was served is dropped */
	uint64_t last_use;
};

struct chunk_reader {
	struct chunk_store *cs;
	pthread_mutex_t mu;
	pthread_cond_t loaded, wake;	/* a window arrived; the read-ahead thread has work */
	struct blob_loc *locs;		/* every durable blob by pack and offset, built once */
	size_t nlocs;
	int have_locs;
	struct read_window **win;
	size_t nwin, wincap;
	uint64_t clock;
	struct window_ref { uint32_t pack; uint64_t k; } queue[READ_QUEUE], done[READ_DONE];
	unsigned qhead, qlen, ndone;
	pthread_t thread;
	int started, stop;
};

struct pack_entry {
	uint8_t id[CHUNK_ID_LEN];
	uint64_t offset;
	uint32_t stored_len, raw_len;
};

struct open_pack {
	uint32_t slot;
	struct strbuf data;
	struct pack_entry *entries;
	size_t n, cap;
	struct open_pack *next;
};

struct chunk_store {
	struct object_store *os;
	char *repo;
	uint8_t data_key[AEAD_KEY_LEN], id_key[AEAD_KEY_LEN];
	struct chunker chunker;
	struct chunk_store_options opt;

	pthread_mutex_t index_lock;	/* table, packs, stats */
	struct index_slot *table;
	size_t table_cap, table_used;
	struct pack_ref *packs;
	size_t npacks, packs_cap;
	struct chunk_store_stats stats;

	pthread_mutex_t pack_lock;	/* the open packs */
	struct open_pack *open[CHUNK_KINDS];

	pthread_mutex_t queue_lock;	/* upload queue, in-flight count, failure, shutdown */
	pthread_cond_t queue_cond;
	struct open_pack *queue_head, *queue_tail;
	size_t queued, in_flight;
	unsigned packs_done;
	int failed, shutdown;
	char failure[512];
	pthread_t *threads;
	unsigned nthreads;
	unsigned verify_part, verify_parts;	/* chunk_store_verify_share */

	pthread_mutex_t scratch_lock;	/* the free scratch areas (struct scratch) */
	struct scratch *scratch;
};

int repo_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 64 || id[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
		      (id[i] >= '0' && id[i] <= '9') || id[i] == '.' || id[i] == '_' || id[i] == '-'))
			return 0;
	return 1;
}

void chunk_id_hex(const uint8_t id[CHUNK_ID_LEN], char hex[CHUNK_ID_HEX])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < CHUNK_ID_LEN; i++) {
		hex[2 * i] = digits[id[i] >> 4];
		hex[2 * i + 1] = digits[id[i] & 15];
	}
	hex[CHUNK_ID_HEX - 1] = '\0';
}

int chunk_id_parse(const char *hex, uint8_t id[CHUNK_ID_LEN])
{
	/* lowercase only: an id has one spelling, the one objects are named by */
	if (strlen(hex) != CHUNK_ID_HEX - 1 || strspn(hex, "0123456789abcdef") != CHUNK_ID_HEX - 1)
		return -1;
	return hex_decode(hex, CHUNK_ID_LEN, id);
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* ---- the in-memory index: open addressing on the (already uniform) chunk id ---- */

static struct index_slot *table_find(struct index_slot *table, size_t cap, const uint8_t id[CHUNK_ID_LEN])
{
	size_t i = (size_t)get_le(id, 8) & (cap - 1);

	while (table[i].used && memcmp(table[i].id, id, CHUNK_ID_LEN) != 0)
		i = (i + 1) & (cap - 1);
	return &table[i];
}

static void table_grow(struct chunk_store *cs)
{
	size_t cap = cs->table_cap ? cs->table_cap * 2 : 1024;
	struct index_slot *t = xcalloc(cap, sizeof *t);

	for (size_t i = 0; i < cs->table_cap; i++)
		if (cs->table[i].used)
			*table_find(t, cap, cs->table[i].id) = cs->table[i];
	free(cs->table);
	cs->table = t;
	cs->table_cap = cap;
}

/* Caller holds index_lock. Returns the slot, inserting an unused one as pending if absent;
 * *inserted tells which. */
static struct index_slot *table_reserve(struct chunk_store *cs, const uint8_t id[CHUNK_ID_LEN], int *inserted)
{
	struct index_slot *s;

	if ((cs->table_used + 1) * 4 > cs->table_cap * 3)
		table_grow(cs);
	s = table_find(cs->table, cs->table_cap, id);
	*inserted = !s->used;
	if (!s->used) {
		memcpy(s->id, id, CHUNK_ID_LEN);
		s->used = 1;
		s->pack = PACK_PENDING;
		cs->table_used++;
	}
	return s;
}

static uint32_t pack_add(struct chunk_store *cs, const uint8_t *id, int durable)
{
	if (cs->npacks == cs->packs_cap) {
		cs->packs_cap = cs->packs_cap ? cs->packs_cap * 2 : 64;
		cs->packs = xrealloc(cs->packs, cs->packs_cap * sizeof *cs->packs);
	}
	memset(&cs->packs[cs->npacks], 0, sizeof cs->packs[0]);
	if (id)
		memcpy(cs->packs[cs->npacks].id, id, CHUNK_ID_LEN);
	cs->packs[cs->npacks].durable = durable;
	return (uint32_t)cs->npacks++;
}

/* ---- keys and sealed objects ---- */

void chunk_store_key(struct chunk_store *cs, struct strbuf *sb, const char *suffix)
{
	strbuf_addf(sb, "%s/%s", cs->repo, suffix);
}

static void pack_key(struct chunk_store *cs, struct strbuf *sb, const char *hex)
{
	strbuf_addf(sb, "%s/data/packs/%.2s/%s", cs->repo, hex, hex);
}

static void index_key(struct chunk_store *cs, struct strbuf *sb, const char *hex)
{
	strbuf_addf(sb, "%s/data/index/%s", cs->repo, hex);
}

int chunk_store_put_sealed(struct chunk_store *cs, const char *key, const char *aad,
			   const void *data, size_t len, char *err, size_t errlen)
{
	uint8_t *sealed = xmalloc(len + AEAD_OVERHEAD);
	int rc = -1;

	if (aead_seal(cs->data_key, aad, strlen(aad), data, len, sealed) < 0)
		snprintf(err, errlen, "%s: encryption failed", key);
	else
		rc = object_put(cs->os, key, sealed, len + AEAD_OVERHEAD, err, errlen);
	free(sealed);
	return rc;
}

int chunk_store_get_sealed(struct chunk_store *cs, const char *key, const char *aad,
			   struct strbuf *out, char *err, size_t errlen)
{
	struct strbuf raw = STRBUF_INIT;
	int rc = object_get(cs->os, key, 0, 0, &raw, err, errlen);

	if (rc < 0)
		goto out;
	if (raw.len < AEAD_OVERHEAD) {
		snprintf(err, errlen, "%s: too short to be a sealed object", key);
		rc = CHUNK_STORE_CORRUPT;
		goto out;
	}
	strbuf_grow(out, raw.len - AEAD_OVERHEAD);
	if (aead_open(cs->data_key, aad, strlen(aad), (uint8_t *)raw.buf, raw.len,
		      (uint8_t *)out->buf + out->len) < 0) {
		snprintf(err, errlen, "%s: authentication failed (corrupt, tampered with, moved, or another key)", key);
		rc = CHUNK_STORE_CORRUPT;
		goto out;
	}
	out->len += raw.len - AEAD_OVERHEAD;
	out->buf[out->len] = '\0';
out:
	strbuf_release(&raw);
	return rc;
}

static void index_aad(char *aad, size_t n, const char *pack_hex)
{
	snprintf(aad, n, "stowage-index-v1:%s", pack_hex);
}

static void chunk_aad(uint8_t aad[16 + CHUNK_ID_LEN], const uint8_t id[CHUNK_ID_LEN])
{
	memcpy(aad, "stowage-chunk-v1", 16);
	memcpy(aad + 16, id, CHUNK_ID_LEN);
}

/* ---- loading the indexes ---- */

/* Opening a repository reads every index: several at once, as each is a round trip. */
#define INDEX_LOADERS 8

struct index_load {
	struct chunk_store *cs;
	char **keys;
	size_t n, cap, next;
	pthread_mutex_t mu;
	int rc;
	char err[512];
};

static int index_parse(struct chunk_store *cs, const uint8_t pack_id[CHUNK_ID_LEN], const char *key,
		       const uint8_t *p, size_t len, char *err, size_t errlen)
{
	uint64_t n;
	uint32_t slot;

	if (len < 12 || memcmp(p, INDEX_MAGIC, 8) != 0) {
		snprintf(err, errlen, "%s: not a pack index", key);
		return CHUNK_STORE_CORRUPT;
	}
	n = get_le(p + 8, 4);
	if (len != 12 + n * INDEX_ENTRY_LEN) {
		snprintf(err, errlen, "%s: index length does not match its %llu entries", key, (unsigned long long)n);
		return CHUNK_STORE_CORRUPT;
	}
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *e = p + 12 + i * INDEX_ENTRY_LEN;
		uint64_t stored = get_le(e + 40, 4), raw = get_le(e + 44, 4);
		if (raw == 0 || raw > CHUNK_MAX || stored <= AEAD_OVERHEAD || stored > BLOB_MAX) {
			snprintf(err, errlen, "%s: entry %llu has impossible lengths", key, (unsigned long long)i);
			return CHUNK_STORE_CORRUPT;
		}
	}
	slot = pack_add(cs, pack_id, 1);
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *e = p + 12 + i * INDEX_ENTRY_LEN;
		int inserted;
		struct index_slot *s = table_reserve(cs, e, &inserted);

		if (!inserted)
			continue;	/* the same chunk in two packs (concurrent backups): keep the first */
		s->pack = slot;
		s->offset = get_le(e + 32, 8);
		s->stored_len = (uint32_t)get_le(e + 40, 4);
		s->raw_len = (uint32_t)get_le(e + 44, 4);
	}
	return 0;
}

static int index_listed(const char *key, const struct object_info *info, void *arg)
{
	struct index_load *il = arg;
	uint8_t pack_id[CHUNK_ID_LEN];

	(void)info;
	if (chunk_id_parse(strrchr(key, '/') + 1, pack_id) < 0)
		return 0;	/* not ours */
	if (il->n == il->cap) {
		il->cap = il->cap ? il->cap * 2 : 256;
		il->keys = xrealloc(il->keys, il->cap * sizeof *il->keys);
	}
	il->keys[il->n++] = xstrdup(key);
	return 0;
}

static void *index_loader(void *arg)
{
	struct index_load *il = arg;
	struct strbuf plain = STRBUF_INIT;
	char err[512];

	for (;;) {
		const char *key, *hex;
		uint8_t pack_id[CHUNK_ID_LEN];
		char aad[96];
		int rc;

		pthread_mutex_lock(&il->mu);
		key = il->rc || il->next == il->n ? NULL : il->keys[il->next++];
		pthread_mutex_unlock(&il->mu);
		if (!key)
			break;
		hex = strrchr(key, '/') + 1;
		chunk_id_parse(hex, pack_id);
		index_aad(aad, sizeof aad, hex);
		strbuf_reset(&plain);
		rc = chunk_store_get_sealed(il->cs, key, aad, &plain, err, sizeof err);
		if (rc == 0) {
			pthread_mutex_lock(&il->cs->index_lock);
			rc = index_parse(il->cs, pack_id, key, (uint8_t *)plain.buf, plain.len, err, sizeof err);
			pthread_mutex_unlock(&il->cs->index_lock);
		}
		if (rc) {
			pthread_mutex_lock(&il->mu);
			if (!il->rc) {
				il->rc = rc;
				snprintf(il->err, sizeof il->err, "%s", err);
			}
			pthread_mutex_unlock(&il->mu);
		}
	}
	strbuf_release(&plain);
	return NULL;
}

static int index_load_all(struct chunk_store *cs, char *err, size_t errlen)
{
	struct index_load il = { .cs = cs };
	struct strbuf prefix = STRBUF_INIT;
	pthread_t threads[INDEX_LOADERS];
	int started = 0, rc;

	pthread_mutex_init(&il.mu, NULL);
	chunk_store_key(cs, &prefix, "data/index/");
	rc = object_list(cs->os, prefix.buf, index_listed, &il, err, errlen);
	strbuf_release(&prefix);
	for (; rc == 0 && started < INDEX_LOADERS && (size_t)started < il.n; started++)
		if (pthread_create(&threads[started], NULL, index_loader, &il) != 0)
			break;
	if (rc == 0 && il.n && started == 0) {
		snprintf(err, errlen, "starting index loader threads: %s", strerror(errno));
		rc = -1;
	}
	for (int i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	if (rc == 0 && il.rc) {
		rc = il.rc;
		snprintf(err, errlen, "%s", il.err);
	}
	for (size_t i = 0; i < il.n; i++)
		free(il.keys[i]);
	free(il.keys);
	pthread_mutex_destroy(&il.mu);
	return rc;
}

/* ---- writing packs ---- */

static void *uploader_main(void *arg);

static void fail_locked(struct chunk_store *cs, const char *msg)
{
	if (!cs->failed)
		snprintf(cs->failure, sizeof cs->failure, "%s", msg);
	cs->failed = 1;
	pthread_cond_broadcast(&cs->queue_cond);
}

int chunk_store_open(struct chunk_store **out, struct object_store *os, const char *repo_id,
		     const uint8_t master[AEAD_KEY_LEN], const struct chunk_store_options *opt,
		     char *err, size_t errlen)
{
	struct chunk_store *cs;
	struct strbuf purpose = STRBUF_INIT;
	uint8_t seed[AEAD_KEY_LEN];
	int rc = 0;

	*out = NULL;
	if (!repo_id_valid(repo_id)) {
		snprintf(err, errlen, "repository id \"%s\": must be 1 to 64 of [A-Za-z0-9._-], not starting with '.'", repo_id);
		return -1;
	}
	cs = xcalloc(1, sizeof *cs);
	cs->os = os;
	cs->repo = xstrdup(repo_id);
	if (opt)
		cs->opt = *opt;
	if (!cs->opt.pack_target)
		cs->opt.pack_target = PACK_TARGET_DEFAULT;
	if (!cs->opt.uploaders)
		cs->opt.uploaders = 2;
	strbuf_addf(&purpose, "repo:%s", repo_id);
	rc |= aead_derive_key(master, purpose.buf, cs->data_key);
	strbuf_addstr(&purpose, ":chunk-id");
	rc |= aead_derive_key(master, purpose.buf, cs->id_key);
	strbuf_reset(&purpose);
	strbuf_addf(&purpose, "repo:%s:chunker", repo_id);
	rc |= aead_derive_key(master, purpose.buf, seed);
	strbuf_release(&purpose);
	chunker_init(&cs->chunker, get_le(seed, 8));
	OPENSSL_cleanse(seed, sizeof seed);
	pthread_mutex_init(&cs->index_lock, NULL);
	pthread_mutex_init(&cs->pack_lock, NULL);
	pthread_mutex_init(&cs->queue_lock, NULL);
	pthread_cond_init(&cs->queue_cond, NULL);
	pthread_mutex_init(&cs->scratch_lock, NULL);
	if (rc) {
		snprintf(err, errlen, "repository %s: deriving keys failed", repo_id);
		chunk_store_close(cs);
		return -1;
	}
	table_grow(cs);
	rc = index_load_all(cs, err, errlen);
	if (rc) {
		chunk_store_close(cs);
		return rc;
	}
	cs->threads = xcalloc(cs->opt.uploaders, sizeof *cs->threads);
	for (; cs->nthreads < cs->opt.uploaders; cs->nthreads++)
		if (pthread_create(&cs->threads[cs->nthreads], NULL, uploader_main, cs) != 0) {
			snprintf(err, errlen, "starting upload threads: %s", strerror(errno));
			chunk_store_close(cs);
			return -1;
		}
	*out = cs;
	return 0;
}

static uint8_t *index_build(const struct open_pack *p, size_t *len)
{
	uint8_t *buf = xmalloc(12 + p->n * INDEX_ENTRY_LEN);

	memcpy(buf, INDEX_MAGIC, 8);
	put_le(buf + 8, p->n, 4);
	for (size_t i = 0; i < p->n; i++) {
		uint8_t *e = buf + 12 + i * INDEX_ENTRY_LEN;
		memcpy(e, p->entries[i].id, CHUNK_ID_LEN);
		put_le(e + 32, p->entries[i].offset, 8);
		put_le(e + 40, p->entries[i].stored_len, 4);
		put_le(e + 44, p->entries[i].raw_len, 4);
	}
	*len = 12 + p->n * INDEX_ENTRY_LEN;
	return buf;
}

static void open_pack_free(struct open_pack *p)
{
	strbuf_release(&p->data);
	free(p->entries);
	free(p);
}

static int pack_upload(struct chunk_store *cs, struct open_pack *p, int with_index, char *err, size_t errlen)
{
	struct strbuf key = STRBUF_INIT;
	char hex[CHUNK_ID_HEX], aad[96];
	uint8_t *index, id[CHUNK_ID_LEN];
	size_t index_len;
	int rc;

	pthread_mutex_lock(&cs->index_lock);
	memcpy(id, cs->packs[p->slot].id, CHUNK_ID_LEN);
	pthread_mutex_unlock(&cs->index_lock);
	chunk_id_hex(id, hex);
	pack_key(cs, &key, hex);
	/* a pack is named by its SHA-256, which is also the payload hash an S3 PUT signs: hashed
	 * once (pack_finish), not again by the store */
	rc = object_put_hashed(cs->os, key.buf, p->data.buf, p->data.len, id, err, errlen);
	if (rc < 0 || !with_index)
		goto out;
	strbuf_reset(&key);
	index_key(cs, &key, hex);
	index_aad(aad, sizeof aad, hex);
	index = index_build(p, &index_len);
	rc = chunk_store_put_sealed(cs, key.buf, aad, index, index_len, err, errlen);
	free(index);
	if (rc == 0) {
		pthread_mutex_lock(&cs->index_lock);
		cs->packs[p->slot].durable = 1;
		cs->stats.packs_written++;
		cs->stats.bytes_written += p->data.len + index_len + AEAD_OVERHEAD;
		pthread_mutex_unlock(&cs->index_lock);
	}
out:
	strbuf_release(&key);
	return rc;
}

static void *uploader_main(void *arg)
{
	struct chunk_store *cs = arg;
	char err[512];

	pthread_mutex_lock(&cs->queue_lock);
	for (;;) {
		struct open_pack *p;
		int with_index, rc;

		while (!cs->queue_head && !cs->shutdown)
			pthread_cond_wait(&cs->queue_cond, &cs->queue_lock);
		if (!cs->queue_head)
			break;
		p = cs->queue_head;
		cs->queue_head = p->next;
		if (!cs->queue_head)
			cs->queue_tail = NULL;
		cs->queued--;
		cs->in_flight++;
		with_index = !cs->opt.stop_after_packs || cs->packs_done < cs->opt.stop_after_packs;
		cs->packs_done++;
		pthread_cond_broadcast(&cs->queue_cond);
		pthread_mutex_unlock(&cs->queue_lock);

		rc = cs->failed ? 0 : pack_upload(cs, p, with_index, err, sizeof err);
		open_pack_free(p);

		pthread_mutex_lock(&cs->queue_lock);
		cs->in_flight--;
		if (rc < 0)
			fail_locked(cs, err);
		else if (!with_index)
			fail_locked(cs, "stopped by the stop_after_packs test hook");
		pthread_cond_broadcast(&cs->queue_cond);
	}
	pthread_mutex_unlock(&cs->queue_lock);
	return NULL;
}

/* Caller holds pack_lock. Seals the open pack's identity and queues it, waiting while the
 * queue is full: that wait is what bounds memory when the store is slower than the readers. */
static int pack_finish(struct chunk_store *cs, enum chunk_kind kind, char *err, size_t errlen)
{
	struct open_pack *p = cs->open[kind];
	uint8_t digest[SHA256_DIGEST_LENGTH];
	int rc = 0;

	if (!p)
		return 0;
	cs->open[kind] = NULL;
	SHA256((uint8_t *)p->data.buf, p->data.len, digest);
	pthread_mutex_lock(&cs->index_lock);
	memcpy(cs->packs[p->slot].id, digest, CHUNK_ID_LEN);
	for (size_t i = 0; i < p->n; i++) {
		struct index_slot *s = table_find(cs->table, cs->table_cap, p->entries[i].id);
		s->pack = p->slot;
		s->offset = p->entries[i].offset;
		s->stored_len = p->entries[i].stored_len;
		s->raw_len = p->entries[i].raw_len;
	}
	pthread_mutex_unlock(&cs->index_lock);

	pthread_mutex_lock(&cs->queue_lock);
	while (cs->queued >= UPLOAD_QUEUE && !cs->failed)
		pthread_cond_wait(&cs->queue_cond, &cs->queue_lock);
	if (cs->failed) {
		snprintf(err, errlen, "%s", cs->failure);
		open_pack_free(p);
		rc = -1;
	} else {
		if (cs->queue_tail)
			cs->queue_tail->next = p;
		else
			cs->queue_head = p;
		cs->queue_tail = p;
		cs->queued++;
		pthread_cond_broadcast(&cs->queue_cond);
	}
	pthread_mutex_unlock(&cs->queue_lock);
	return rc;
}

static void chunk_id_compute(struct chunk_store *cs, const void *data, size_t len, uint8_t id[CHUNK_ID_LEN])
{
	unsigned int n = CHUNK_ID_LEN;

	HMAC(EVP_sha256(), cs->id_key, AEAD_KEY_LEN, data, len, id, &n);
}

/* Kept between calls and shared by the threads: chunk_store_put's compression context and two
 * buffers (a context made per call cost as much as compressing a 4 KiB chunk), and a read's
 * decompression context (ZSTD_decompress makes and frees one, some 160 KiB, per call, which for
 * a restore of small files cost more than decompressing them). Each part is made when first
 * needed. */
struct scratch {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	uint8_t *plain, *blob;
	struct scratch *next;
};

static struct scratch *scratch_take(struct chunk_store *cs)
{
	struct scratch *sc;

	pthread_mutex_lock(&cs->scratch_lock);
	sc = cs->scratch;
	if (sc)
		cs->scratch = sc->next;
	pthread_mutex_unlock(&cs->scratch_lock);
	return sc ? sc : xcalloc(1, sizeof *sc);
}

/* sc with what a put needs */
static struct scratch *scratch_for_put(struct scratch *sc)
{
	if (!sc->plain) {
		sc->cctx = ZSTD_createCCtx();
		sc->plain = xmalloc(1 + ZSTD_compressBound(CHUNK_MAX));
		sc->blob = xmalloc(BLOB_MAX);
	}
	return sc;
}

static void scratch_give(struct chunk_store *cs, struct scratch *sc)
{
	pthread_mutex_lock(&cs->scratch_lock);
	sc->next = cs->scratch;
	cs->scratch = sc;
	pthread_mutex_unlock(&cs->scratch_lock);
}

static void scratch_free_all(struct chunk_store *cs)
{
	while (cs->scratch) {
		struct scratch *sc = cs->scratch;
		cs->scratch = sc->next;
		ZSTD_freeCCtx(sc->cctx);
		ZSTD_freeDCtx(sc->dctx);
		free(sc->plain);
		free(sc->blob);
		free(sc);
	}
}

/* sc->blob = seal(kind byte | payload), payload zstd when that is smaller. */
static size_t blob_build(struct chunk_store *cs, struct scratch *sc, enum chunk_kind kind,
			 const uint8_t id[CHUNK_ID_LEN], const void *data, size_t len)
{
	uint8_t *plain = sc->plain, aad[16 + CHUNK_ID_LEN];
	size_t n = sc->cctx ? ZSTD_compressCCtx(sc->cctx, plain + 1, ZSTD_compressBound(len), data, len,
						kind == CHUNK_TREE ? ZSTD_LEVEL_TREE : ZSTD_LEVEL_DATA)
			    : len;

	if (ZSTD_isError(n) || n >= len) {
		plain[0] = BLOB_RAW;
		memcpy(plain + 1, data, len);
		n = len;
	} else {
		plain[0] = BLOB_ZSTD;
	}
	chunk_aad(aad, id);
	if (aead_seal(cs->data_key, aad, sizeof aad, plain, n + 1, sc->blob) < 0)
		n = 0;
	else
		n += 1 + AEAD_OVERHEAD;
	return n;
}

static int store_failed(struct chunk_store *cs, char *err, size_t errlen)
{
	int failed;

	pthread_mutex_lock(&cs->queue_lock);
	failed = cs->failed;
	if (failed)
		snprintf(err, errlen, "%s", cs->failure);
	pthread_mutex_unlock(&cs->queue_lock);
	return failed;
}

int chunk_store_put(struct chunk_store *cs, enum chunk_kind kind, const void *data, size_t len,
		    uint8_t id[CHUNK_ID_LEN], char *err, size_t errlen)
{
	struct scratch *sc;
	size_t blob_len;
	struct open_pack *p;
	int inserted, rc = 0;

	if (len == 0 || len > CHUNK_MAX) {
		snprintf(err, errlen, "chunk of %zu bytes: chunks hold 1 to %u bytes", len, CHUNK_MAX);
		return -1;
	}
	if (store_failed(cs, err, errlen))
		return -1;
	chunk_id_compute(cs, data, len, id);
	pthread_mutex_lock(&cs->index_lock);
	table_reserve(cs, id, &inserted);
	if (inserted) {
		cs->stats.chunks_new++;
		cs->stats.bytes_new += len;
	} else {
		cs->stats.chunks_reused++;
	}
	pthread_mutex_unlock(&cs->index_lock);
	if (!inserted)
		return 0;

	sc = scratch_for_put(scratch_take(cs));
	blob_len = blob_build(cs, sc, kind, id, data, len);
	if (!blob_len) {
		/* another thread may already count on this chunk: the whole store has failed */
		pthread_mutex_lock(&cs->queue_lock);
		fail_locked(cs, "chunk: encryption failed");
		pthread_mutex_unlock(&cs->queue_lock);
		snprintf(err, errlen, "chunk: encryption failed");
		scratch_give(cs, sc);
		return -1;
	}
	pthread_mutex_lock(&cs->pack_lock);
	if (!cs->open[kind]) {
		cs->open[kind] = p = xcalloc(1, sizeof *p);
		pthread_mutex_lock(&cs->index_lock);
		p->slot = pack_add(cs, NULL, 0);
		pthread_mutex_unlock(&cs->index_lock);
	}
	p = cs->open[kind];
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		p->entries = xrealloc(p->entries, p->cap * sizeof *p->entries);
	}
	memcpy(p->entries[p->n].id, id, CHUNK_ID_LEN);
	p->entries[p->n].offset = p->data.len;
	p->entries[p->n].stored_len = (uint32_t)blob_len;
	p->entries[p->n].raw_len = (uint32_t)len;
	p->n++;
	strbuf_add(&p->data, sc->blob, blob_len);
	scratch_give(cs, sc);
	if (p->data.len >= cs->opt.pack_target)
		rc = pack_finish(cs, kind, err, errlen);
	pthread_mutex_unlock(&cs->pack_lock);
	return rc;
}

int chunk_store_flush(struct chunk_store *cs, char *err, size_t errlen)
{
	int rc;

	pthread_mutex_lock(&cs->pack_lock);
	rc = pack_finish(cs, CHUNK_DATA, err, errlen);
	if (rc == 0)
		rc = pack_finish(cs, CHUNK_TREE, err, errlen);
	pthread_mutex_unlock(&cs->pack_lock);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&cs->queue_lock);
	while ((cs->queued || cs->in_flight) && !cs->failed)
		pthread_cond_wait(&cs->queue_cond, &cs->queue_lock);
	if (cs->failed) {
		snprintf(err, errlen, "%s", cs->failure);
		rc = -1;
	}
	pthread_mutex_unlock(&cs->queue_lock);
	return rc;
}

void chunk_store_close(struct chunk_store *cs)
{
	if (!cs)
		return;
	pthread_mutex_lock(&cs->queue_lock);
	cs->shutdown = 1;
	pthread_cond_broadcast(&cs->queue_cond);
	pthread_mutex_unlock(&cs->queue_lock);
	for (unsigned i = 0; i < cs->nthreads; i++)
		pthread_join(cs->threads[i], NULL);
	while (cs->queue_head) {
		struct open_pack *p = cs->queue_head;
		cs->queue_head = p->next;
		open_pack_free(p);
	}
	for (int k = 0; k < CHUNK_KINDS; k++)
		if (cs->open[k])
			open_pack_free(cs->open[k]);
	free(cs->threads);
	pthread_mutex_destroy(&cs->index_lock);
	pthread_mutex_destroy(&cs->pack_lock);
	pthread_mutex_destroy(&cs->queue_lock);
	pthread_cond_destroy(&cs->queue_cond);
	scratch_free_all(cs);
	pthread_mutex_destroy(&cs->scratch_lock);
	OPENSSL_cleanse(cs->data_key, sizeof cs->data_key);
	OPENSSL_cleanse(cs->id_key, sizeof cs->id_key);
	free(cs->table);
	free(cs->packs);
	free(cs->repo);
	free(cs);
}

/* ---- reading chunks ---- */

/* Opens one blob; the plaintext is appended to out. The seal authenticates the blob and the id
 * it was sealed for (the id is in its associated data): a blob that opens is what a holder of
 * the repository's key stored under that id, and moving it to another id's place fails. So a
 * read trusts the seal; only a check (check_id) also recomputes the id from the plaintext,
 * which catches what the seal cannot: a writer that stored wrong bytes under an id. */
static int blob_open(struct chunk_store *cs, const uint8_t id[CHUNK_ID_LEN], const uint8_t *blob,
		     size_t blob_len, uint32_t raw_len, struct strbuf *out, int check_id, const char **why)
{
	uint8_t aad[16 + CHUNK_ID_LEN], check[CHUNK_ID_LEN], *plain;
	size_t plain_len = blob_len - AEAD_OVERHEAD, start = out->len;

	chunk_aad(aad, id);
	*why = "authentication failed (the pack is corrupt or was tampered with)";
	if (blob_len <= AEAD_OVERHEAD)
		return CHUNK_STORE_CORRUPT;
	/* decrypted into out past room for the chunk: no buffer of its own per blob */
	strbuf_grow(out, (size_t)raw_len + plain_len);
	plain = (uint8_t *)out->buf + start + raw_len;
	if (aead_open(cs->data_key, aad, sizeof aad, blob, blob_len, plain) < 0)
		return CHUNK_STORE_CORRUPT;
	*why = "bad compressed data";
	if (plain[0] == BLOB_RAW && plain_len - 1 == raw_len) {
		memcpy(out->buf + start, plain + 1, raw_len);
	} else if (plain[0] == BLOB_ZSTD) {
		struct scratch *sc = scratch_take(cs);
		size_t n;

		if (!sc->dctx)
			sc->dctx = ZSTD_createDCtx();
		n = sc->dctx ? ZSTD_decompressDCtx(sc->dctx, out->buf + start, raw_len, plain + 1, plain_len - 1)
			     : ZSTD_decompress(out->buf + start, raw_len, plain + 1, plain_len - 1);
		scratch_give(cs, sc);
		if (ZSTD_isError(n) || n != raw_len)
			return CHUNK_STORE_CORRUPT;
	} else {
		return CHUNK_STORE_CORRUPT;
	}
	if (check_id) {
		chunk_id_compute(cs, out->buf + start, raw_len, check);
		*why = "content does not match its id";
		if (CRYPTO_memcmp(check, id, CHUNK_ID_LEN) != 0)
			return CHUNK_STORE_CORRUPT;
	}
	out->len = start + raw_len;
	out->buf[out->len] = '\0';
	return 0;
}

static int loc_cmp(const void *a, const void *b)
{
	const struct blob_loc *x = a, *y = b;

	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Caller holds r->mu. Where every durable blob lies, once: restores read a finished repository. */
static void reader_locs(struct chunk_reader *r)
{
	struct chunk_store *cs = r->cs;
	size_t n = 0;

	if (r->have_locs)
		return;
	pthread_mutex_lock(&cs->index_lock);
	r->locs = xmalloc((cs->table_used ? cs->table_used : 1) * sizeof *r->locs);
	for (size_t i = 0; i < cs->table_cap; i++) {
		const struct index_slot *t = &cs->table[i];

		if (t->used && t->pack != PACK_PENDING && cs->packs[t->pack].durable)
			r->locs[n++] = (struct blob_loc){ t->pack, t->stored_len, t->offset };
	}
	pthread_mutex_unlock(&cs->index_lock);
	qsort(r->locs, n, sizeof *r->locs, loc_cmp);
	r->nlocs = n;
	r->have_locs = 1;
}

/* The bytes of window k of a pack and how many blobs it holds; 0 when none. */
static size_t window_bounds(const struct chunk_reader *r, uint32_t pack, uint64_t k, uint64_t *start,
			    uint64_t *end)
{
	uint64_t from = k * READ_WINDOW, limit = from + READ_WINDOW;
	size_t lo = 0, hi = r->nlocs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->locs[mid].pack < pack || (r->locs[mid].pack == pack && r->locs[mid].offset < from))
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == r->nlocs || r->locs[lo].pack != pack || r->locs[lo].offset >= limit)
		return 0;
	*start = r->locs[lo].offset;
	*end = 0;
	for (hi = lo; hi < r->nlocs && r->locs[hi].pack == pack && r->locs[hi].offset < limit; hi++)
		if (r->locs[hi].offset + r->locs[hi].len > *end)
			*end = r->locs[hi].offset + r->locs[hi].len;
	return hi - lo;
}

/* The window functions below: caller holds r->mu. */
static struct read_window *window_find(struct chunk_reader *r, uint32_t pack, uint64_t k)
{
	for (size_t i = 0; i < r->nwin; i++)
		if (r->win[i]->pack == pack && r->win[i]->k == k)
			return r->win[i];
	return NULL;
}

static void window_drop(struct chunk_reader *r, struct read_window *w)
{
	for (size_t i = 0; i < r->nwin; i++)
		if (r->win[i] == w) {
			r->win[i] = r->win[--r->nwin];
			break;
		}
	strbuf_release(&w->data);
	free(w);
}

/* Read ahead, not asked for yet, and not given up on (a hint can be wrong: a file left as it
 * was, or a restore that stopped). */
static int window_waiting(const struct chunk_reader *r, const struct read_window *w)
{
	return !w->asked && r->clock - w->last_use < READ_STALE;
}

/* A new window, loading. The least recently used idle one makes room, one that is waiting
 * only when no other is idle. */
static struct read_window *window_add(struct chunk_reader *r, uint32_t pack, uint64_t k, uint64_t start,
				      uint64_t end, size_t blobs)
{
	struct read_window *w, *victim = NULL;

	for (size_t i = 0; r->nwin >= READ_CACHE && i < r->nwin; i++) {
		struct read_window *c = r->win[i];

		if (!c->loading && !c->refs &&
		    (!victim || window_waiting(r, victim) > window_waiting(r, c) ||
		     (window_waiting(r, victim) == window_waiting(r, c) && c->last_use < victim->last_use)))
			victim = c;
	}
	if (victim)
		window_drop(r, victim);
	if (r->nwin == r->wincap) {
		r->wincap = r->wincap ? r->wincap * 2 : 2 * READ_CACHE;
		r->win = xrealloc(r->win, r->wincap * sizeof *r->win);
	}
	w = xcalloc(1, sizeof *w);
	w->pack = pack;
	w->k = k;
	w->start = start;
	w->end = end;
	w->loading = 1;
	w->blobs = blobs;
	w->last_use = ++r->clock;
	r->win[r->nwin++] = w;
	return w;
}

/* Fetches a loading window without holding r->mu meanwhile. A failure is not reported here:
 * the chunks of a failed window are read alone, and that read says what is wrong. */
static void window_fetch(struct chunk_reader *r, struct read_window *w)
{
	struct strbuf key = STRBUF_INIT;
	char packhex[CHUNK_ID_HEX], err[512];
	int rc;

	pthread_mutex_lock(&r->cs->index_lock);
	chunk_id_hex(r->cs->packs[w->pack].id, packhex);
	pthread_mutex_unlock(&r->cs->index_lock);
	pack_key(r->cs, &key, packhex);
	pthread_mutex_unlock(&r->mu);
	rc = object_get(r->cs->os, key.buf, w->start, w->end - w->start, &w->data, err, sizeof err);
	pthread_mutex_lock(&r->mu);
	w->loading = 0;
	w->failed = rc < 0;
	pthread_cond_broadcast(&r->loaded);
	strbuf_release(&key);
}

static int window_done(const struct chunk_reader *r, uint32_t pack, uint64_t k)
{
	for (unsigned i = 0; i < r->ndone && i < READ_DONE; i++)
		if (r->done[i].pack == pack && r->done[i].k == k)
			return 1;
	return 0;
}

static void ahead_push(struct chunk_reader *r, uint32_t pack, uint64_t k)
{
	if (!r->started || r->qlen == READ_QUEUE || window_find(r, pack, k) || window_done(r, pack, k))
		return;
	for (unsigned i = 0; i < r->qlen; i++)
		if (r->queue[(r->qhead + i) % READ_QUEUE].pack == pack && r->queue[(r->qhead + i) % READ_QUEUE].k == k)
			return;
	r->queue[(r->qhead + r->qlen) % READ_QUEUE].pack = pack;
	r->queue[(r->qhead + r->qlen) % READ_QUEUE].k = k;
	r->qlen++;
	pthread_cond_signal(&r->wake);
}

static void *read_ahead(void *arg)
{
	struct chunk_reader *r = arg;

	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		unsigned pending = 0;
		uint64_t k, start, end;
		uint32_t pack;
		size_t blobs;

		for (size_t i = 0; i < r->nwin; i++)
			pending += window_waiting(r, r->win[i]);
		if (!r->qlen || pending >= READ_AHEAD) {
			pthread_cond_wait(&r->wake, &r->mu);
			continue;
		}
		pack = r->queue[r->qhead].pack;
		k = r->queue[r->qhead].k;
		r->qhead = (r->qhead + 1) % READ_QUEUE;
		r->qlen--;
		reader_locs(r);
		if (!window_find(r, pack, k) && !window_done(r, pack, k) && (blobs = window_bounds(r, pack, k, &start, &end)))
			window_fetch(r, window_add(r, pack, k, start, end, blobs));
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

struct chunk_reader *chunk_reader_new(struct chunk_store *cs)
{
	struct chunk_reader *r = xcalloc(1, sizeof *r);

	r->cs = cs;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->loaded, NULL);
	pthread_cond_init(&r->wake, NULL);
	r->started = pthread_create(&r->thread, NULL, read_ahead, r) == 0;	/* else no read-ahead */
	return r;
}

void chunk_reader_free(struct chunk_reader *r)
{
	if (!r)
		return;
	if (r->started) {
		pthread_mutex_lock(&r->mu);
		r->stop = 1;
		pthread_cond_signal(&r->wake);
		pthread_mutex_unlock(&r->mu);
		pthread_join(r->thread, NULL);
	}
	while (r->nwin)
		window_drop(r, r->win[0]);
	free(r->win);
	free(r->locs);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->loaded);
	pthread_cond_destroy(&r->wake);
	free(r);
}

/* A copy of id's index slot (used 0 when the index lacks it), taken under index_lock. */
static struct index_slot slot_of(struct chunk_store *cs, const uint8_t id[CHUNK_ID_LEN])
{
	struct index_slot s;

	pthread_mutex_lock(&cs->index_lock);
	s = *table_find(cs->table, cs->table_cap, id);
	pthread_mutex_unlock(&cs->index_lock);
	return s;
}

uint64_t chunk_reader_window(struct chunk_reader *r, const uint8_t id[CHUNK_ID_LEN])
{
	struct index_slot s = slot_of(r->cs, id);

	return s.used ? (uint64_t)s.pack << 40 ^ s.offset / READ_WINDOW : UINT64_MAX;
}

void chunk_reader_hint(struct chunk_reader *r, const uint8_t id[CHUNK_ID_LEN])
{
	struct index_slot s = slot_of(r->cs, id);

	if (!s.used || s.pack == PACK_PENDING)
		return;
	pthread_mutex_lock(&r->mu);
	ahead_push(r, s.pack, s.offset / READ_WINDOW);
	pthread_mutex_unlock(&r->mu);
}

/* 0 or an error when a window served the chunk; 1 when it is to be read alone: its window
 * failed, or it lies in none (a pack that became durable after the reader started). */
static int reader_read(struct chunk_reader *r, const struct index_slot *s, const uint8_t id[CHUNK_ID_LEN],
		       const char *idhex, const char *packhex, struct strbuf *out, char *err, size_t errlen)
{
	uint64_t k = s->offset / READ_WINDOW, start, end;
	struct read_window *w;
	const char *why;
	size_t blobs;
	int rc = 1;

	pthread_mutex_lock(&r->mu);
	reader_locs(r);
	w = window_find(r, s->pack, k);
	if (!w) {
		if (!(blobs = window_bounds(r, s->pack, k, &start, &end)) || s->offset < start ||
		    s->offset + s->stored_len > end) {
			pthread_mutex_unlock(&r->mu);
			return 1;
		}
		w = window_add(r, s->pack, k, start, end, blobs);
		w->asked = 1;
		w->refs++;
		ahead_push(r, s->pack, k + 1);
		window_fetch(r, w);
	} else {
		w->refs++;
		if (!w->asked) {
			w->asked = 1;
			ahead_push(r, s->pack, k + 1);
			pthread_cond_signal(&r->wake);
		}
		while (w->loading)
			pthread_cond_wait(&r->loaded, &r->mu);
	}
	w->last_use = ++r->clock;
	if (!w->failed && s->offset >= w->start && s->offset + s->stored_len <= w->start + w->data.len) {
		pthread_mutex_unlock(&r->mu);
		rc = blob_open(r->cs, id, (uint8_t *)w->data.buf + (s->offset - w->start), s->stored_len,
			       s->raw_len, out, 0, &why);
		if (rc)
			snprintf(err, errlen, "chunk %.16s in pack %.16s: %s", idhex, packhex, why);
		pthread_mutex_lock(&r->mu);
		w->served++;
	}
	if (--w->refs == 0 && !w->failed && w->served >= w->blobs)
		r->done[r->ndone++ % READ_DONE] = (struct window_ref){ w->pack, w->k };
	if (!w->refs && (w->failed || w->served >= w->blobs))
		window_drop(r, w);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

int chunk_store_get(struct chunk_store *cs, const uint8_t id[CHUNK_ID_LEN], struct strbuf *out,
		    char *err, size_t errlen)
{
	return chunk_store_read(cs, NULL, id, out, err, errlen);
}

int chunk_store_read(struct chunk_store *cs, struct chunk_reader *r, const uint8_t id[CHUNK_ID_LEN],
		     struct strbuf *out, char *err, size_t errlen)
{
	struct index_slot s;
	struct strbuf key = STRBUF_INIT, blob = STRBUF_INIT;
	char idhex[CHUNK_ID_HEX], packhex[CHUNK_ID_HEX];
	const char *why;
	int rc, durable;

	chunk_id_hex(id, idhex);
	pthread_mutex_lock(&cs->index_lock);
	s = *table_find(cs->table, cs->table_cap, id);
	durable = s.used && s.pack != PACK_PENDING && cs->packs[s.pack].durable;
	if (durable)
		chunk_id_hex(cs->packs[s.pack].id, packhex);
	pthread_mutex_unlock(&cs->index_lock);
	if (!durable) {
		snprintf(err, errlen, "chunk %.16s: missing (no pack index lists it)", idhex);
		return CHUNK_STORE_CORRUPT;
	}
	if (r && (rc = reader_read(r, &s, id, idhex, packhex, out, err, errlen)) != 1)
		return rc;
	pack_key(cs, &key, packhex);
	rc = object_get(cs->os, key.buf, s.offset, s.stored_len, &blob, err, errlen);
	if (rc == OBJECT_STORE_NOT_FOUND) {
		snprintf(err, errlen, "chunk %.16s: its pack %.16s is missing", idhex, packhex);
		rc = CHUNK_STORE_CORRUPT;
	} else if (rc == 0) {
		rc = blob_open(cs, id, (uint8_t *)blob.buf, s.stored_len, s.raw_len, out, 0, &why);
		if (rc)
			snprintf(err, errlen, "chunk %.16s in pack %.16s: %s", idhex, packhex, why);
	} else {
		/* a pack shorter than its index says is corruption, not an I/O error */
		struct object_info info;
		if (object_head(cs->os, key.buf, &info, err, errlen) == 1 &&
		    info.size < s.offset + s.stored_len) {
			snprintf(err, errlen, "chunk %.16s: pack %.16s is truncated", idhex, packhex);
			rc = CHUNK_STORE_CORRUPT;
		}
	}
	strbuf_release(&key);
	strbuf_release(&blob);
	return rc;
}

int chunk_store_has(struct chunk_store *cs, const uint8_t id[CHUNK_ID_LEN])
{
	return slot_of(cs, id).used;
}

void chunk_store_get_stats(struct chunk_store *cs, struct chunk_store_stats *st)
{
	pthread_mutex_lock(&cs->index_lock);
	*st = cs->stats;
	pthread_mutex_unlock(&cs->index_lock);
}

const struct chunker *chunk_store_chunker(struct chunk_store *cs)
{
	return &cs->chunker;
}

struct object_store *chunk_store_objects(struct chunk_store *cs)
{
	return cs->os;
}

/* ---- maintenance ---- */

size_t chunk_store_pack_count(struct chunk_store *cs)
{
	return cs->npacks;
}

void chunk_store_pack_hex(struct chunk_store *cs, size_t pack, char hex[CHUNK_ID_HEX])
{
	chunk_id_hex(cs->packs[pack].id, hex);
}

long chunk_store_pack_of(struct chunk_store *cs, const uint8_t id[CHUNK_ID_LEN])
{
	struct index_slot *s;
	long pack = -1;

	pthread_mutex_lock(&cs->index_lock);
	s = table_find(cs->table, cs->table_cap, id);
	if (s->used && s->pack != PACK_PENDING)
		pack = s->pack;
	pthread_mutex_unlock(&cs->index_lock);
	return pack;
}

static int slot_by_pack_offset(const void *a, const void *b)
{
	const struct index_slot *x = *(struct index_slot *const *)a, *y = *(struct index_slot *const *)b;

	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

void chunk_store_verify_share(struct chunk_store *cs, unsigned part, unsigned parts)
{
	cs->verify_parts = parts;
	cs->verify_part = parts ? part % parts : 0;
}

long chunk_store_verify_all(struct chunk_store *cs, chunk_store_bad_cb bad, void *arg,
			    char *err, size_t errlen)
{
	struct index_slot **order = xmalloc((cs->table_used + 1) * sizeof *order);
	struct strbuf key = STRBUF_INIT, pack = STRBUF_INIT, plain = STRBUF_INIT;
	size_t n = 0, i = 0;
	long failures = 0;

	for (size_t t = 0; t < cs->table_cap; t++)
		if (cs->table[t].used && cs->table[t].pack != PACK_PENDING &&
		    (cs->verify_parts < 2 || cs->packs[cs->table[t].pack].id[0] % cs->verify_parts == cs->verify_part))
			order[n++] = &cs->table[t];
	qsort(order, n, sizeof *order, slot_by_pack_offset);
	while (i < n) {
		uint32_t p = order[i]->pack;
		char hex[CHUNK_ID_HEX];
		const char *pack_problem = NULL;
		int rc;

		chunk_id_hex(cs->packs[p].id, hex);
		strbuf_reset(&key);
		strbuf_reset(&pack);
		pack_key(cs, &key, hex);
		rc = object_get(cs->os, key.buf, 0, 0, &pack, err, errlen);
		if (rc == OBJECT_STORE_NOT_FOUND)
			pack_problem = "its pack is missing";
		else if (rc < 0)
			goto fail;
		for (; i < n && order[i]->pack == p; i++) {
			struct index_slot *s = order[i];
			const char *why = pack_problem;

			if (!why && s->offset + s->stored_len > pack.len)
				why = "its pack is truncated";
			strbuf_reset(&plain);
			if (!why && blob_open(cs, s->id, (uint8_t *)pack.buf + s->offset, s->stored_len,
					      s->raw_len, &plain, 1, &why) == 0)
				continue;
			failures++;
			bad(s->id, p, why, arg);
		}
	}
	free(order);
	strbuf_release(&key);
	strbuf_release(&pack);
	strbuf_release(&plain);
	return failures;
fail:
	free(order);
	strbuf_release(&key);
	strbuf_release(&pack);
	strbuf_release(&plain);
	return -1;
}

int chunk_store_delete_pack(struct chunk_store *cs, const char *pack_hex, char *err, size_t errlen)
{
	struct strbuf key = STRBUF_INIT;
	int rc;

	index_key(cs, &key, pack_hex);
	rc = object_delete(cs->os, key.buf, err, errlen);
	strbuf_reset(&key);
	if (rc == 0) {
		pack_key(cs, &key, pack_hex);
		rc = object_delete(cs->os, key.buf, err, errlen);
	}
	strbuf_release(&key);
	return rc;
}
