/* The chunks of a repository: each stored once, compressed (zstd), encrypted (AES-256-GCM),
 * packed into pack objects of about 16 MiB, and found again through per-pack index objects.
 *
 * Layout under the store, for repository <repo>:
 *   <repo>/data/packs/<aa>/<packid>   blobs back to back; packid = SHA-256 of the pack bytes
 *   <repo>/data/index/<packid>        sealed list of (chunk id, offset, lengths), written after
 *                                     its pack: a chunk is usable only once both exist
 * Keys (HKDF of the master key):
 *   "repo:<repo>"           encrypts blobs, indexes, manifests
 *   "repo:<repo>:chunk-id"  HMAC-SHA256 key of chunk ids, so an id says nothing about content
 *                           to anyone without the key, and tenants cannot probe each other
 *   "repo:<repo>:chunker"   seeds the chunker's gear table
 * put and get may be called from several threads at once. */
#ifndef STOWAGE_CHUNK_STORE_H
#define STOWAGE_CHUNK_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "aead.h"
#include "chunker.h"
#include "object_store.h"
#include "strbuf.h"

#define CHUNK_ID_LEN 32
#define CHUNK_ID_HEX (CHUNK_ID_LEN * 2 + 1)
/* Returned (instead of -1) when data is missing from the repository or fails verification. */
#define CHUNK_STORE_CORRUPT (-3)

struct chunk_store;

struct chunk_store_options {
	size_t pack_target;		/* bytes per pack; 0 means 16 MiB */
	unsigned uploaders;		/* threads writing packs; 0 means 2 */
	/* Test hook simulating a crash: after this many complete packs, the next pack is written
	 * without its index and every later put fails. 0 disables it. */
	unsigned stop_after_packs;
};

struct chunk_store_stats {
	uint64_t chunks_new, chunks_reused;
	uint64_t bytes_new;		/* plaintext bytes of new chunks */
	uint64_t bytes_written;		/* pack and index bytes written to the store */
	uint64_t packs_written;
};

/* Derives the keys, then loads every pack index of the repository. repo_id is
 * [A-Za-z0-9._-]{1,64}. */
int chunk_store_open(struct chunk_store **out, struct object_store *os, const char *repo_id,
		     const uint8_t master[AEAD_KEY_LEN], const struct chunk_store_options *opt,
		     char *err, size_t errlen);
/* Waits for uploads still running, then frees. Chunks not flushed are lost. */
void chunk_store_close(struct chunk_store *cs);

/* File data and snapshot trees go to separate packs, so losing a data pack still leaves the
 * trees readable and the damage can be reported by file name. */
enum chunk_kind { CHUNK_DATA, CHUNK_TREE, CHUNK_KINDS };

/* Stores one chunk unless the repository already holds it; id receives its id. */
int chunk_store_put(struct chunk_store *cs, enum chunk_kind kind, const void *data, size_t len,
		    uint8_t id[CHUNK_ID_LEN], char *err, size_t errlen);
/* Writes the open pack and waits until every chunk put so far is in a pack with its index. */
int chunk_store_flush(struct chunk_store *cs, char *err, size_t errlen);
/* Appends the chunk's bytes to out after checking them against the id. Missing or corrupt
 * data returns CHUNK_STORE_CORRUPT with a message naming the chunk and pack. */
int chunk_store_get(struct chunk_store *cs, const uint8_t id[CHUNK_ID_LEN], struct strbuf *out,
		    char *err, size_t errlen);
/* The same through a reader shared by a restore's threads: it fetches packs in windows of
 * whole blobs, each byte once, the chunks written one after another (a large file's, the small
 * files of a directory) in one ranged read, and reads ahead on a thread of its own: the next
 * window of a pack, and the window of each chunk hinted as wanted soon. */
struct chunk_reader;
struct chunk_reader *chunk_reader_new(struct chunk_store *cs);
void chunk_reader_free(struct chunk_reader *r);
void chunk_reader_hint(struct chunk_reader *r, const uint8_t id[CHUNK_ID_LEN]);
/* Which window holds a chunk, as a number equal for the chunks of one window. */
uint64_t chunk_reader_window(struct chunk_reader *r, const uint8_t id[CHUNK_ID_LEN]);
int chunk_store_read(struct chunk_store *cs, struct chunk_reader *r, const uint8_t id[CHUNK_ID_LEN],
		     struct strbuf *out, char *err, size_t errlen);
/* 1 when a pack of the repository (or one being written) holds the chunk. */
int chunk_store_has(struct chunk_store *cs, const uint8_t id[CHUNK_ID_LEN]);
void chunk_store_get_stats(struct chunk_store *cs, struct chunk_store_stats *st);
const struct chunker *chunk_store_chunker(struct chunk_store *cs);
struct object_store *chunk_store_objects(struct chunk_store *cs);

/* Store key "<repo>/<suffix>" appended to sb. */
void chunk_store_key(struct chunk_store *cs, struct strbuf *sb, const char *suffix);

/* Small objects sealed with the repository key; aad binds each to its name and purpose. */
int chunk_store_put_sealed(struct chunk_store *cs, const char *key, const char *aad,
			   const void *data, size_t len, char *err, size_t errlen);
/* CHUNK_STORE_CORRUPT when authentication fails, OBJECT_STORE_NOT_FOUND when absent. */
int chunk_store_get_sealed(struct chunk_store *cs, const char *key, const char *aad,
			   struct strbuf *out, char *err, size_t errlen);

/* Maintenance. Packs are numbered 0..count-1 in the order their indexes were loaded. */
size_t chunk_store_pack_count(struct chunk_store *cs);
void chunk_store_pack_hex(struct chunk_store *cs, size_t pack, char hex[CHUNK_ID_HEX]);
/* The pack number holding the chunk, or -1. */
long chunk_store_pack_of(struct chunk_store *cs, const uint8_t id[CHUNK_ID_LEN]);
/* Downloads every pack, checks its hash and every chunk in it; calls bad() for each chunk that
 * fails (pack is the pack number) and returns the number of failures, or -1 on I/O error. */
typedef void (*chunk_store_bad_cb)(const uint8_t id[CHUNK_ID_LEN], size_t pack, const char *why, void *arg);
long chunk_store_verify_all(struct chunk_store *cs, chunk_store_bad_cb bad, void *arg,
			    char *err, size_t errlen);
/* From now on chunk_store_verify_all reads only the packs of share `part` of `parts` (by the
 * first byte of the pack's id): a scheduled check reads every pack over `parts` runs. parts 0
 * or 1: every pack. */
void chunk_store_verify_share(struct chunk_store *cs, unsigned part, unsigned parts);
/* Removes a pack: its index first, so no reader ever finds an index whose pack is gone. */
int chunk_store_delete_pack(struct chunk_store *cs, const char *pack_hex, char *err, size_t errlen);

int repo_id_valid(const char *id);
void chunk_id_hex(const uint8_t id[CHUNK_ID_LEN], char hex[CHUNK_ID_HEX]);
int chunk_id_parse(const char *hex, uint8_t id[CHUNK_ID_LEN]);

#endif
