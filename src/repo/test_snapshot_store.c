#include "snapshot_store.h"
#include "check.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const uint8_t master[AEAD_KEY_LEN] = "0123456789abcdef0123456789abcdef";

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* A file entry whose line is about 200 bytes: 40,000 of them make a tree of several chunks. */
static void file_entry(struct manifest_entry *e, char *path, size_t pathlen, unsigned i)
{
	memset(e, 0, sizeof *e);
	snprintf(path, pathlen, "d%04u/f%07u", i / 100, i);
	e->type = ENTRY_FILE;
	e->path = path;
	e->mode = 0644;
	e->mtime_sec = 1700000000 + i;
	e->ino = 1000000u + i * 7919u;
	e->uid = i % 5000;	/* no chunks: size 0 */
}

static int write_tree(struct chunk_store *cs, unsigned n, struct manifest_header *h, char *err, size_t errlen)
{
	struct tree_writer *tw = tree_writer_new(cs);
	char path[64];
	int rc = 0;

	for (unsigned i = 0; i < n && rc == 0; i++) {
		struct manifest_entry e;
		file_entry(&e, path, sizeof path, i);
		rc = tree_writer_add(tw, &e, err, errlen);
	}
	if (rc < 0) {
		tree_writer_free(tw);
		return rc;
	}
	return tree_writer_finish(tw, &h->tree, &h->ntree, err, errlen);
}

/* The writer cuts and stores on a thread of its own: the chunks still come back in order,
 * line for line, and the same lines make the same chunks (trees deduplicate). */
static void test_tree_of_many_chunks_reads_back_in_order(void)
{
	char tmpl[] = "/tmp/stowage-ss-XXXXXX", *dir = mkdtemp(tmpl), err[512] = "", path[64];
	struct object_store *os = object_store_dir_open(dir, err, sizeof err);
	struct manifest_header h, again;
	struct chunk_store *cs;
	struct tree_reader *tr;
	struct manifest_entry e;
	unsigned n = 0;
	int rc;

	memset(&h, 0, sizeof h);
	memset(&again, 0, sizeof again);
	strcpy(h.id, "20261203T120000Z-0000aaaaaaaaaaaa");
	CHECK(os != NULL);
	CHECK_INTEQ(chunk_store_open(&cs, os, "r", master, NULL, err, sizeof err), 0);
	CHECK_INTEQ(write_tree(cs, 40000, &h, err, sizeof err), 0);
	CHECK(h.ntree >= 3);
	CHECK_INTEQ(chunk_store_flush(cs, err, sizeof err), 0);
	tr = tree_reader_new(cs, &h);
	while ((rc = tree_reader_next(tr, &e, err, sizeof err)) == 1) {
		file_entry(&(struct manifest_entry){ 0 }, path, sizeof path, n);
		if (strcmp(e.path, path) != 0 || e.ino != 1000000u + n * 7919u)
			break;
		n++;
		manifest_entry_free(&e);
	}
	CHECK_INTEQ(rc, 0);
	CHECK_INTEQ(n, 40000);
	tree_reader_free(tr);
	CHECK_INTEQ(write_tree(cs, 40000, &again, err, sizeof err), 0);
	CHECK_INTEQ(again.ntree, h.ntree);
	CHECK(memcmp(again.tree, h.tree, h.ntree * sizeof *h.tree) == 0);
	/* a writer given up on before its end stops without storing the rest */
	{
		struct tree_writer *tw = tree_writer_new(cs);
		for (unsigned i = 0; i < 30000; i++) {
			file_entry(&e, path, sizeof path, i);
			CHECK_INTEQ(tree_writer_add(tw, &e, err, sizeof err), 0);
		}
		tree_writer_free(tw);
	}
	free(h.tree);
	free(again.tree);
	chunk_store_close(cs);
	object_store_close(os);
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A store that fails while the writer's thread stores: the walk hears of it, by the store's words. */
static void test_tree_writer_reports_the_store_failing(void)
{
	char tmpl[] = "/tmp/stowage-ss-XXXXXX", *dir = mkdtemp(tmpl), err[512] = "";
	struct object_store *os = object_store_dir_open(dir, err, sizeof err);
	struct chunk_store_options opt = { .pack_target = 64 * 1024, .stop_after_packs = 1 };
	struct manifest_header h;
	struct chunk_store *cs;

	memset(&h, 0, sizeof h);
	CHECK_INTEQ(chunk_store_open(&cs, os, "r", master, &opt, err, sizeof err), 0);
	CHECK(write_tree(cs, 40000, &h, err, sizeof err) < 0);
	CHECK(strstr(err, "stop_after_packs") != NULL);
	CHECK(h.tree == NULL);
	chunk_store_close(cs);
	object_store_close(os);
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	RUN(test_tree_of_many_chunks_reads_back_in_order);
	RUN(test_tree_writer_reports_the_store_failing);
	return check_done();
}
