/* The snapshot manifest format. A snapshot is a small sealed JSON header
 * (<repo>/data/snapshots/<id>.json.enc) naming the chunks of its tree: the tree is a stream of
 * JSON lines, one per file, directory or symlink in walk order, itself cut into chunks and
 * stored like file data (so unchanged metadata deduplicates too, and no manifest must fit in
 * memory). Both come from storage: every field is validated on parse. */
#ifndef STOWAGE_SNAPSHOT_MANIFEST_H
#define STOWAGE_SNAPSHOT_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "chunk_store.h"
#include "strbuf.h"

#define MANIFEST_VERSION 1
/* "20261125T124019Z-" and 16 hex digits */
#define SNAPSHOT_ID_LEN 33
#define MANIFEST_PATH_MAX 4095
#define MANIFEST_TAGS_MAX 32

struct manifest_chunk {
	uint8_t id[CHUNK_ID_LEN];
	uint32_t len;
};

struct manifest_hole {
	uint64_t offset, len;
};

enum manifest_type { ENTRY_FILE, ENTRY_DIR, ENTRY_SYMLINK };

struct manifest_entry {
	enum manifest_type type;
	char *path;			/* relative, '/'-separated bytes; "." is the volume root */
	char *target;			/* symlinks only */
	uint32_t mode;			/* permission bits, 07777 */
	uint32_t uid, gid;
	int64_t mtime_sec, ctime_sec;
	uint32_t mtime_nsec, ctime_nsec;
	uint64_t ino;
	uint64_t size;			/* files: logical size = chunk bytes + hole bytes */
	struct manifest_chunk *chunks;
	size_t nchunks;
	struct manifest_hole *holes;	/* sorted, disjoint */
	size_t nholes;
};

struct manifest_tag {
	char *key, *value;
};

struct manifest_header {
	char id[SNAPSHOT_ID_LEN + 1];
	char parent[SNAPSHOT_ID_LEN + 1];	/* "" when none */
	int64_t time_sec;
	char *source;
	struct manifest_tag *tags;
	size_t ntags;
	uint64_t files, dirs, symlinks, bytes;
	struct manifest_chunk *tree;
	size_t ntree;
};

int snapshot_id_valid(const char *id);
/* A new id: the UTC time now to the second, the fraction of the second in 16 bits and 48 random
 * bits, so ids sort by time, also within a second. */
int snapshot_id_new(char id[SNAPSHOT_ID_LEN + 1]);
/* Tag keys: 1..63 of [A-Za-z0-9._/-]; values: up to 256 bytes, no control characters. */
int manifest_tag_valid(const char *key, const char *value, char *err, size_t errlen);

/* One compact JSON line (no newline), returned or appended to sb. */
char *manifest_entry_json(const struct manifest_entry *e);
void manifest_entry_json_add(struct strbuf *sb, const struct manifest_entry *e);
int manifest_entry_parse(const char *line, size_t len, struct manifest_entry *e, char *err, size_t errlen);
void manifest_entry_free(struct manifest_entry *e);

char *manifest_header_json(const struct manifest_header *h);
int manifest_header_parse(const char *json, size_t len, struct manifest_header *h, char *err, size_t errlen);
void manifest_header_free(struct manifest_header *h);

/* Order of the walk: byte order with '/' first, so "a", "a/b", "a-c". Parent and current
 * walks are compared in this order to find unchanged files without holding either in memory. */
int manifest_path_cmp(const char *a, const char *b);

#endif
