#include "snapshot_store.h"
#include "strbuf.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A single tree line may list a huge file's chunks: 16M chunks of ~75 bytes. */
#define TREE_LINE_MAX (1300u * 1024 * 1024)

static void snapshot_key(struct chunk_store *cs, struct strbuf *sb, const char *id)
{
	struct strbuf suffix = STRBUF_INIT;

	strbuf_addf(&suffix, "data/snapshots/%s.json.enc", id);
	chunk_store_key(cs, sb, suffix.buf);
	strbuf_release(&suffix);
}

static void snapshot_aad(char *aad, size_t n, const char *id)
{
	snprintf(aad, n, "stowage-snapshot-v1:%s", id);
}

int snapshot_write(struct chunk_store *cs, const struct manifest_header *h, char *err, size_t errlen)
{
	struct strbuf key = STRBUF_INIT;
	char *json = manifest_header_json(h), aad[64];
	int rc;

	snapshot_key(cs, &key, h->id);
	snapshot_aad(aad, sizeof aad, h->id);
	rc = chunk_store_put_sealed(cs, key.buf, aad, json, strlen(json), err, errlen);
	free(json);
	strbuf_release(&key);
	return rc;
}

int snapshot_read(struct chunk_store *cs, const char *id, struct manifest_header *h,
		  char *err, size_t errlen)
{
	struct strbuf key = STRBUF_INIT, json = STRBUF_INIT;
	char aad[64], why[384];
	int rc;

	memset(h, 0, sizeof *h);
	if (!snapshot_id_valid(id)) {
		snprintf(err, errlen, "snapshot id \"%.40s\": not a snapshot id", id);
		return -1;
	}
	snapshot_key(cs, &key, id);
	snapshot_aad(aad, sizeof aad, id);
	rc = chunk_store_get_sealed(cs, key.buf, aad, &json, err, errlen);
	if (rc == OBJECT_STORE_NOT_FOUND)
		snprintf(err, errlen, "snapshot %s: not found", id);
	if (rc == 0 && manifest_header_parse(json.buf, json.len, h, why, sizeof why) < 0) {
		snprintf(err, errlen, "snapshot %s: %s", id, why);
		rc = CHUNK_STORE_CORRUPT;
	}
	if (rc == 0 && strcmp(h->id, id) != 0) {
		snprintf(err, errlen, "snapshot %s: manifest names another snapshot", id);
		manifest_header_free(h);
		rc = CHUNK_STORE_CORRUPT;
	}
	strbuf_release(&key);
	strbuf_release(&json);
	return rc;
}

struct list_ctx {
	snapshot_list_cb cb;
	void *arg;
};

static int list_one(const char *key, const struct object_info *info, void *arg)
{
	struct list_ctx *lc = arg;
	const char *base = strrchr(key, '/') + 1;
	char id[SNAPSHOT_ID_LEN + 1];

	if (strlen(base) != SNAPSHOT_ID_LEN + strlen(".json.enc") || strcmp(base + SNAPSHOT_ID_LEN, ".json.enc") != 0)
		return 0;
	memcpy(id, base, SNAPSHOT_ID_LEN);
	id[SNAPSHOT_ID_LEN] = '\0';
	return snapshot_id_valid(id) ? lc->cb(id, info, lc->arg) : 0;
}

int snapshot_list(struct chunk_store *cs, snapshot_list_cb cb, void *arg, char *err, size_t errlen)
{
	struct strbuf prefix = STRBUF_INIT;
	struct list_ctx lc = { cb, arg };
	int rc;

	chunk_store_key(cs, &prefix, "data/snapshots/");
	rc = object_list(chunk_store_objects(cs), prefix.buf, list_one, &lc, err, errlen);
	strbuf_release(&prefix);
	return rc;
}

int snapshot_delete(struct chunk_store *cs, const char *id, char *err, size_t errlen)
{
	struct strbuf key = STRBUF_INIT;
	int rc;

	snapshot_key(cs, &key, id);
	rc = object_delete(chunk_store_objects(cs), key.buf, err, errlen);
	strbuf_release(&key);
	return rc;
}

/* ---- tree stream ---- */

/* The walk only formats lines; a thread of the writer's own cuts them into chunks and stores
 * them (hash, compress, seal: in a 1% re-backup every tree chunk is new), so that work runs
 * beside the walk instead of stopping it. The walk hands over its buffer whenever a chunker
 * window is full and the thread has taken the one before: at most three windows in memory. */
struct tree_writer {
	struct chunk_store *cs;
	struct strbuf buf;		/* the walk's lines not handed over yet */
	pthread_t thread;
	int started;

	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct strbuf in;		/* handed over, not yet taken by the thread; under mu */
	int final, stop, done, failed;	/* under mu; stop: give up, store nothing more */
	char err[512];			/* the thread's failure, set before failed */

	struct strbuf pend;		/* the thread's own: lines taken, not yet cut */
	struct manifest_chunk *chunks;	/* the thread's until done */
	size_t n, cap;
};

/* Stores chunks of pend while at least a full chunker window is left (all of it when final). */
static int tree_writer_cut(struct tree_writer *tw, int final, char *err, size_t errlen)
{
	size_t off = 0;
	int rc = 0;

	while (tw->pend.len - off >= CHUNK_MAX || (final && off < tw->pend.len)) {
		const char *p = tw->pend.buf + off;
		size_t n = chunker_cut(chunk_store_chunker(tw->cs), (const uint8_t *)p, tw->pend.len - off);

		if (tw->n == tw->cap) {
			tw->cap = tw->cap ? tw->cap * 2 : 16;
			tw->chunks = xrealloc(tw->chunks, tw->cap * sizeof *tw->chunks);
		}
		if ((rc = chunk_store_put(tw->cs, CHUNK_TREE, p, n, tw->chunks[tw->n].id, err, errlen)) < 0)
			break;
		tw->chunks[tw->n++].len = (uint32_t)n;
		off += n;
	}
	memmove(tw->pend.buf, tw->pend.buf + off, tw->pend.len - off);
	tw->pend.len -= off;
	return rc;
}

static void *tree_writer_main(void *arg)
{
	struct tree_writer *tw = arg;
	char err[512];

	pthread_mutex_lock(&tw->mu);
	for (;;) {
		int final;

		while (!tw->in.len && !tw->final)
			pthread_cond_wait(&tw->cond, &tw->mu);
		if (tw->stop)
			break;
		final = tw->final;
		strbuf_add(&tw->pend, tw->in.buf, tw->in.len);
		strbuf_reset(&tw->in);
		pthread_cond_broadcast(&tw->cond);
		pthread_mutex_unlock(&tw->mu);
		if (tree_writer_cut(tw, final, err, sizeof err) < 0) {
			pthread_mutex_lock(&tw->mu);
			snprintf(tw->err, sizeof tw->err, "%s", err);
			tw->failed = 1;
			break;
		}
		pthread_mutex_lock(&tw->mu);
		if (final)
			break;
	}
	tw->done = 1;
	pthread_cond_broadcast(&tw->cond);
	pthread_mutex_unlock(&tw->mu);
	return NULL;
}

struct tree_writer *tree_writer_new(struct chunk_store *cs)
{
	struct tree_writer *tw = xcalloc(1, sizeof *tw);

	tw->cs = cs;
	pthread_mutex_init(&tw->mu, NULL);
	pthread_cond_init(&tw->cond, NULL);
	tw->started = pthread_create(&tw->thread, NULL, tree_writer_main, tw) == 0;
	return tw;
}

/* Hands the walk's buffer to the thread (or, without one, cuts it right here). */
static int tree_writer_hand(struct tree_writer *tw, int final, char *err, size_t errlen)
{
	int rc = 0;

	if (!tw->started) {
		strbuf_add(&tw->pend, tw->buf.buf, tw->buf.len);
		strbuf_reset(&tw->buf);
		return tree_writer_cut(tw, final, err, errlen);
	}
	pthread_mutex_lock(&tw->mu);
	while (tw->in.len && !tw->done)
		pthread_cond_wait(&tw->cond, &tw->mu);
	if (tw->failed) {
		snprintf(err, errlen, "%s", tw->err);
		rc = -1;
	} else {
		struct strbuf t = tw->in;

		tw->in = tw->buf;
		tw->buf = t;
		tw->final = final;
		pthread_cond_broadcast(&tw->cond);
	}
	pthread_mutex_unlock(&tw->mu);
	return rc;
}

int tree_writer_add(struct tree_writer *tw, const struct manifest_entry *e, char *err, size_t errlen)
{
	manifest_entry_json_add(&tw->buf, e);
	strbuf_addch(&tw->buf, '\n');
	return tw->buf.len >= CHUNK_MAX ? tree_writer_hand(tw, 0, err, errlen) : 0;
}

/* Stops the thread (after it stored what it was given) and frees everything. */
void tree_writer_free(struct tree_writer *tw)
{
	if (tw->started) {
		pthread_mutex_lock(&tw->mu);
		tw->final = tw->stop = 1;
		pthread_cond_broadcast(&tw->cond);
		pthread_mutex_unlock(&tw->mu);
		pthread_join(tw->thread, NULL);
	}
	pthread_mutex_destroy(&tw->mu);
	pthread_cond_destroy(&tw->cond);
	free(tw->chunks);
	strbuf_release(&tw->buf);
	strbuf_release(&tw->in);
	strbuf_release(&tw->pend);
	free(tw);
}

int tree_writer_finish(struct tree_writer *tw, struct manifest_chunk **chunks, size_t *n,
		       char *err, size_t errlen)
{
	int rc = tree_writer_hand(tw, 1, err, errlen);

	*chunks = NULL;
	*n = 0;
	if (tw->started) {
		pthread_join(tw->thread, NULL);
		tw->started = 0;
		if (rc == 0 && tw->failed) {
			snprintf(err, errlen, "%s", tw->err);
			rc = -1;
		}
	}
	if (rc == 0) {
		*chunks = tw->chunks;
		*n = tw->n;
		tw->chunks = NULL;
	}
	tree_writer_free(tw);
	return rc;
}

struct tree_reader {
	struct chunk_store *cs;
	struct chunk_reader *reader;	/* a tree's chunks lie in order in its packs: one read serves many */
	const struct manifest_header *h;
	size_t next_chunk;
	struct strbuf buf;
	size_t pos;
	char *last_path;
};

struct tree_reader *tree_reader_new(struct chunk_store *cs, const struct manifest_header *h)
{
	struct tree_reader *tr = xcalloc(1, sizeof *tr);

	tr->cs = cs;
	tr->reader = chunk_reader_new(cs);
	tr->h = h;
	strbuf_grow(&tr->buf, 1);
	return tr;
}

int tree_reader_next(struct tree_reader *tr, struct manifest_entry *e, char *err, size_t errlen)
{
	char *nl;
	char why[384];

	memset(e, 0, sizeof *e);
	while (!(nl = memchr(tr->buf.buf + tr->pos, '\n', tr->buf.len - tr->pos))) {
		const struct manifest_chunk *c = &tr->h->tree[tr->next_chunk];
		int rc;

		if (tr->next_chunk == tr->h->ntree) {
			if (tr->pos == tr->buf.len)
				return 0;
			snprintf(err, errlen, "snapshot %s: tree ends inside an entry", tr->h->id);
			return CHUNK_STORE_CORRUPT;
		}
		if (tr->buf.len - tr->pos > TREE_LINE_MAX) {
			snprintf(err, errlen, "snapshot %s: tree entry longer than %u bytes", tr->h->id, TREE_LINE_MAX);
			return CHUNK_STORE_CORRUPT;
		}
		memmove(tr->buf.buf, tr->buf.buf + tr->pos, tr->buf.len - tr->pos);
		tr->buf.len -= tr->pos;
		tr->pos = 0;
		rc = chunk_store_read(tr->cs, tr->reader, c->id, &tr->buf, why, sizeof why);
		if (rc < 0) {
			snprintf(err, errlen, "snapshot %s: tree: %s", tr->h->id, why);
			return rc;
		}
		tr->next_chunk++;
	}
	if (manifest_entry_parse(tr->buf.buf + tr->pos, (size_t)(nl - (tr->buf.buf + tr->pos)), e, why, sizeof why) < 0) {
		snprintf(err, errlen, "snapshot %s: %s", tr->h->id, why);
		return CHUNK_STORE_CORRUPT;
	}
	tr->pos = (size_t)(nl - tr->buf.buf) + 1;
	if (tr->last_path && manifest_path_cmp(tr->last_path, e->path) >= 0) {
		char *esc = path_escape(e->path);
		snprintf(err, errlen, "snapshot %s: entry %s is out of order", tr->h->id, esc);
		free(esc);
		manifest_entry_free(e);
		return CHUNK_STORE_CORRUPT;
	}
	free(tr->last_path);
	tr->last_path = xstrdup(e->path);
	return 1;
}

void tree_reader_free(struct tree_reader *tr)
{
	if (!tr)
		return;
	chunk_reader_free(tr->reader);
	strbuf_release(&tr->buf);
	free(tr->last_path);
	free(tr);
}

char *path_escape(const char *path)
{
	struct strbuf sb = STRBUF_INIT;

	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (*p == '\n')
			strbuf_addstr(&sb, "\\n");
		else if (*p == '\\')
			strbuf_addstr(&sb, "\\\\");
		else if (*p < 0x20 || *p == 0x7f)
			strbuf_addf(&sb, "\\x%02x", *p);
		else
			strbuf_addch(&sb, (char)*p);	/* UTF-8 passes through */
	}
	return strbuf_take(&sb);
}
