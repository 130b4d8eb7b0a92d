/* Snapshots in a repository: the sealed manifest header and the tree stream it names.
 * <repo>/data/snapshots/<id>.json.enc is written last by a backup: a snapshot without it
 * does not exist. The header's aad binds it to its id, so one snapshot's manifest cannot be
 * swapped in under another's name. */
#ifndef STOWAGE_SNAPSHOT_STORE_H
#define STOWAGE_SNAPSHOT_STORE_H

#include "chunk_store.h"
#include "object_store.h"
#include "snapshot_manifest.h"

int snapshot_write(struct chunk_store *cs, const struct manifest_header *h, char *err, size_t errlen);
/* Reads and checks the manifest of id (CHUNK_STORE_CORRUPT, OBJECT_STORE_NOT_FOUND or -1). */
int snapshot_read(struct chunk_store *cs, const char *id, struct manifest_header *h,
		  char *err, size_t errlen);
typedef int (*snapshot_list_cb)(const char *id, const struct object_info *info, void *arg);
/* Calls cb for every snapshot id, in no particular order. */
int snapshot_list(struct chunk_store *cs, snapshot_list_cb cb, void *arg, char *err, size_t errlen);
int snapshot_delete(struct chunk_store *cs, const char *id, char *err, size_t errlen);

/* Writes tree entries (in walk order) as JSON lines cut into content-defined chunks. */
struct tree_writer;
struct tree_writer *tree_writer_new(struct chunk_store *cs);
int tree_writer_add(struct tree_writer *tw, const struct manifest_entry *e, char *err, size_t errlen);
/* Stores what is left and hands over the chunk list; tw is freed either way. */
int tree_writer_finish(struct tree_writer *tw, struct manifest_chunk **chunks, size_t *n,
		       char *err, size_t errlen);

void tree_writer_free(struct tree_writer *tw);

/* Reads a snapshot's entries back, one at a time, checking that they come in walk order. */
struct tree_reader;
struct tree_reader *tree_reader_new(struct chunk_store *cs, const struct manifest_header *h);
/* 1 with *e filled (free it with manifest_entry_free), 0 at the end, or an error code. */
int tree_reader_next(struct tree_reader *tr, struct manifest_entry *e, char *err, size_t errlen);
void tree_reader_free(struct tree_reader *tr);

/* path with bytes outside printable ASCII escaped (\n, \xHH): safe in a one-line message. */
char *path_escape(const char *path);

#endif
