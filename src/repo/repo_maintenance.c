#include "repo_maintenance.h"
#include "repo_lock.h"
#include "snapshot_store.h"
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct listed_pack {
	uint8_t id[CHUNK_ID_LEN];
	time_t mtime;
	uint64_t size;
};

struct pack_listing {
	struct listed_pack *p;
	size_t n, cap;
};

static int id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, CHUNK_ID_LEN);
}

static int pack_listed(const char *key, const struct object_info *info, void *arg)
{
	struct pack_listing *pl = arg;
	uint8_t id[CHUNK_ID_LEN];

	if (chunk_id_parse(strrchr(key, '/') + 1, id) < 0)
		return 0;
	if (pl->n == pl->cap) {
		pl->cap = pl->cap ? pl->cap * 2 : 256;
		pl->p = xrealloc(pl->p, pl->cap * sizeof *pl->p);
	}
	memcpy(pl->p[pl->n].id, id, CHUNK_ID_LEN);
	pl->p[pl->n].mtime = info->mtime;
	pl->p[pl->n++].size = info->size;
	return 0;
}

static int list_packs(struct chunk_store *cs, struct pack_listing *pl, char *err, size_t errlen)
{
	struct strbuf prefix = STRBUF_INIT;
	int rc;

	memset(pl, 0, sizeof *pl);
	chunk_store_key(cs, &prefix, "data/packs/");
	rc = object_list(chunk_store_objects(cs), prefix.buf, pack_listed, pl, err, errlen);
	strbuf_release(&prefix);
	if (pl->n)
		qsort(pl->p, pl->n, sizeof *pl->p, id_cmp);
	return rc;
}

static struct listed_pack *pack_find(const struct pack_listing *pl, const uint8_t id[CHUNK_ID_LEN])
{
	return pl->n ? bsearch(id, pl->p, pl->n, sizeof *pl->p, id_cmp) : NULL;
}

struct snapshot_ids {
	char (*id)[SNAPSHOT_ID_LEN + 1];
	time_t *mtime;
	size_t n, cap;
};

static int snapshot_listed(const char *id, const struct object_info *info, void *arg)
{
	struct snapshot_ids *s = arg;

	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->id = xrealloc(s->id, s->cap * sizeof *s->id);
		s->mtime = xrealloc(s->mtime, s->cap * sizeof *s->mtime);
	}
	strcpy(s->id[s->n], id);
	s->mtime[s->n++] = info->mtime;
	return 0;
}

static void snapshot_ids_free(struct snapshot_ids *s)
{
	free(s->id);
	free(s->mtime);
}

/* ---- check ---- */

struct check_ctx {
	struct chunk_store *cs;
	repo_report_cb report;
	void *arg;
	long problems;
	uint8_t (*bad)[CHUNK_ID_LEN];
	size_t nbad, badcap;
};

static void check_report(struct check_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void check_report(struct check_ctx *c, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	c->problems++;
	if (c->report)
		c->report(line, c->arg);
}

static void check_bad_chunk(const uint8_t id[CHUNK_ID_LEN], size_t pack, const char *why, void *arg)
{
	struct check_ctx *c = arg;
	char idhex[CHUNK_ID_HEX], packhex[CHUNK_ID_HEX];

	chunk_id_hex(id, idhex);
	chunk_store_pack_hex(c->cs, pack, packhex);
	check_report(c, "pack %s: chunk %s: %s", packhex, idhex, why);
	if (c->nbad == c->badcap) {
		c->badcap = c->badcap ? c->badcap * 2 : 64;
		c->bad = xrealloc(c->bad, c->badcap * sizeof *c->bad);
	}
	memcpy(c->bad[c->nbad++], id, CHUNK_ID_LEN);
}

/* Why a chunk of a snapshot cannot be restored, or NULL when it can. */
static const char *chunk_problem(struct check_ctx *c, const struct pack_listing *pl, const uint8_t id[CHUNK_ID_LEN])
{
	long pack = chunk_store_pack_of(c->cs, id);
	char hex[CHUNK_ID_HEX];
	uint8_t pack_id[CHUNK_ID_LEN];

	if (pack < 0)
		return "missing (no pack index lists it)";
	chunk_store_pack_hex(c->cs, (size_t)pack, hex);
	chunk_id_parse(hex, pack_id);
	if (!pack_find(pl, pack_id))
		return "its pack is missing";
	if (c->nbad && bsearch(id, c->bad, c->nbad, sizeof *c->bad, id_cmp))
		return "corrupt";
	return NULL;
}

static void check_snapshot(struct check_ctx *c, const struct pack_listing *pl, const char *id)
{
	struct manifest_header h;
	struct manifest_entry e;
	struct tree_reader *tr;
	char err[1024];
	int rc;

	if (snapshot_read(c->cs, id, &h, err, sizeof err) < 0) {
		check_report(c, "%s", err);
		return;
	}
	tr = tree_reader_new(c->cs, &h);
	while ((rc = tree_reader_next(tr, &e, err, sizeof err)) == 1) {
		for (size_t i = 0; i < e.nchunks; i++) {
			const char *why = chunk_problem(c, pl, e.chunks[i].id);
			char hex[CHUNK_ID_HEX], *esc;

			if (!why)
				continue;
			chunk_id_hex(e.chunks[i].id, hex);
			esc = path_escape(e.path);
			check_report(c, "snapshot %s: %s: chunk %s: %s", id, esc, hex, why);
			free(esc);
			break;	/* one line per file is enough to name it */
		}
		manifest_entry_free(&e);
	}
	if (rc < 0)
		check_report(c, "%s", err);
	tree_reader_free(tr);
	manifest_header_free(&h);
}

static long check_run(struct chunk_store *cs, const char *const *only, size_t nonly, int read_data,
		      repo_report_cb report, void *arg, char *err, size_t errlen)
{
	struct check_ctx c = { cs, report, arg, 0, NULL, 0, 0 };
	struct pack_listing pl = { 0 };
	struct snapshot_ids ids = { 0 };
	long rc = -1;

	if (list_packs(cs, &pl, err, errlen) < 0)
		goto out;
	if (only) {
		for (size_t i = 0; i < nonly; i++) {
			if (strlen(only[i]) != SNAPSHOT_ID_LEN) {
				check_report(&c, "snapshot %.80s: not a snapshot id", only[i]);
				continue;
			}
			if (ids.n == ids.cap) {
				ids.cap = ids.cap ? ids.cap * 2 : 16;
				ids.id = xrealloc(ids.id, ids.cap * sizeof *ids.id);
			}
			memcpy(ids.id[ids.n++], only[i], SNAPSHOT_ID_LEN + 1);
		}
	} else if (snapshot_list(cs, snapshot_listed, &ids, err, errlen) < 0) {
		goto out;
	}
	for (size_t i = 0; i < chunk_store_pack_count(cs); i++) {
		char hex[CHUNK_ID_HEX];
		uint8_t id[CHUNK_ID_LEN];

		chunk_store_pack_hex(cs, i, hex);
		chunk_id_parse(hex, id);
		if (!pack_find(&pl, id))
			check_report(&c, "pack %s: listed by an index but missing", hex);
	}
	if (read_data && chunk_store_verify_all(cs, check_bad_chunk, &c, err, errlen) < 0)
		goto out;
	if (c.nbad)
		qsort(c.bad, c.nbad, sizeof *c.bad, id_cmp);
	for (size_t i = 0; i < ids.n; i++)
		check_snapshot(&c, &pl, ids.id[i]);
	rc = c.problems;
out:
	free(pl.p);
	free(c.bad);
	snapshot_ids_free(&ids);
	return rc;
}

long repo_check(struct chunk_store *cs, int read_data, repo_report_cb report, void *arg,
		char *err, size_t errlen)
{
	return check_run(cs, NULL, 0, read_data, report, arg, err, errlen);
}

long repo_check_snapshots(struct chunk_store *cs, const char *const *ids, size_t n, int read_data,
			  repo_report_cb report, void *arg, char *err, size_t errlen)
{
	return check_run(cs, ids, n, read_data, report, arg, err, errlen);
}

/* ---- prune ---- */

static int snapshot_kept(const struct prune_options *opt, const char *id, time_t age)
{
	if (!opt->keep || age < opt->grace)
		return 1;
	for (size_t i = 0; i < opt->nkeep; i++)
		if (strcmp(opt->keep[i], id) == 0)
			return 1;
	return 0;
}

static void mark_pack(struct chunk_store *cs, uint8_t *used, const uint8_t id[CHUNK_ID_LEN])
{
	long pack = chunk_store_pack_of(cs, id);

	if (pack >= 0)
		used[pack] = 1;
}

/* Marks every pack the snapshot needs; any failure stops the prune before it deletes. */
static int mark_snapshot(struct chunk_store *cs, uint8_t *used, const char *id, char *err, size_t errlen)
{
	struct manifest_header h;
	struct manifest_entry e;
	struct tree_reader *tr;
	int rc;

	if ((rc = snapshot_read(cs, id, &h, err, errlen)) < 0)
		return rc;
	for (size_t i = 0; i < h.ntree; i++)
		mark_pack(cs, used, h.tree[i].id);
	tr = tree_reader_new(cs, &h);
	while ((rc = tree_reader_next(tr, &e, err, errlen)) == 1) {
		for (size_t i = 0; i < e.nchunks; i++)
			mark_pack(cs, used, e.chunks[i].id);
		manifest_entry_free(&e);
	}
	tree_reader_free(tr);
	manifest_header_free(&h);
	return rc;
}

struct indexed_pack {
	uint8_t id[CHUNK_ID_LEN];	/* first: sorted and searched with id_cmp */
	size_t n;
};

static int prune_packs(struct chunk_store *cs, const struct prune_options *opt, const uint8_t *used,
		       struct prune_result *res, char *err, size_t errlen)
{
	struct pack_listing pl;
	size_t nindexed = chunk_store_pack_count(cs);
	struct indexed_pack *indexed = xcalloc(nindexed + 1, sizeof *indexed);
	time_t now = time(NULL);
	int rc = list_packs(cs, &pl, err, errlen);

	for (size_t i = 0; i < nindexed; i++) {
		char hex[CHUNK_ID_HEX];
		chunk_store_pack_hex(cs, i, hex);
		chunk_id_parse(hex, indexed[i].id);
		indexed[i].n = i;
	}
	if (nindexed)
		qsort(indexed, nindexed, sizeof *indexed, id_cmp);
	for (size_t i = 0; rc == 0 && i < pl.n; i++) {
		const struct listed_pack *p = &pl.p[i];
		struct indexed_pack *ix = nindexed ? bsearch(p->id, indexed, nindexed, sizeof *indexed, id_cmp) : NULL;
		char hex[CHUNK_ID_HEX];

		if ((ix && used[ix->n]) || now - p->mtime < opt->grace || (ix && res->backups_running)) {
			res->packs_kept++;
			continue;
		}
		chunk_id_hex(p->id, hex);
		rc = chunk_store_delete_pack(cs, hex, err, errlen);
		if (rc == 0) {
			res->packs_deleted++;
			res->bytes_freed += p->size;
		}
	}
	free(indexed);
	free(pl.p);
	return rc;
}

int repo_prune(struct chunk_store *cs, const struct prune_options *opt, struct prune_result *res,
	       char *err, size_t errlen)
{
	struct repo_lock *lock;
	struct snapshot_ids ids = { 0 };
	uint8_t *used = xcalloc(chunk_store_pack_count(cs) + 1, 1);
	time_t now = time(NULL);
	int rc;

	memset(res, 0, sizeof *res);
	rc = repo_lock_acquire(cs, REPO_LOCK_PRUNE, opt->lock_stale ? opt->lock_stale : REPO_LOCK_STALE_DEFAULT,
			       0, &lock, &res->backups_running, err, errlen);
	if (rc < 0) {
		free(used);
		return rc;
	}
	rc = snapshot_list(cs, snapshot_listed, &ids, err, errlen);
	for (size_t i = 0; rc == 0 && i < ids.n; i++)
		if (snapshot_kept(opt, ids.id[i], now - ids.mtime[i]))
			rc = mark_snapshot(cs, used, ids.id[i], err, errlen);
	for (size_t i = 0; rc == 0 && i < ids.n; i++) {
		if (snapshot_kept(opt, ids.id[i], now - ids.mtime[i])) {
			res->snapshots_kept++;
			continue;
		}
		rc = snapshot_delete(cs, ids.id[i], err, errlen);
		if (rc == 0)
			res->snapshots_deleted++;
	}
	if (rc == 0)
		rc = prune_packs(cs, opt, used, res, err, errlen);
	repo_lock_release(lock);
	snapshot_ids_free(&ids);
	free(used);
	return rc;
}
