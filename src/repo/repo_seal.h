/* Every object Stowage writes to a repository, sealed with the repository's key: a person who
 * holds only the bucket reads object names and sizes, nothing of their contents, and cannot
 * change, cut short, reorder or swap an object without the restore noticing.
 *
 * Format: "STOWAGE\x01", then segments of up to REPO_SEAL_SEGMENT bytes of plaintext, each
 * [4-byte big-endian plaintext length][nonce | AES-256-GCM ciphertext | tag]. Each segment's
 * associated data is the object's key, a zero byte, its 8-byte big-endian index and a byte that
 * is 1 for the last segment; the last segment holds the rest (0 to REPO_SEAL_SEGMENT - 1 bytes),
 * so every object, the empty one too, ends with a segment marked last.
 * The key is HKDF(master key, "objects:repository:<id>"). */
#ifndef STOWAGE_REPO_SEAL_H
#define STOWAGE_REPO_SEAL_H

#include "aead.h"
#include "strbuf.h"

#include <stdint.h>

#define REPO_SEAL_SEGMENT (1u << 20)
#define REPO_SEAL_MAGIC "STOWAGE\x01"
#define REPO_SEAL_MAGIC_LEN 8

int repo_seal_key(const uint8_t master[AEAD_KEY_LEN], long long repository_id, uint8_t key[AEAD_KEY_LEN]);
/* The sealed size of plain bytes. */
uint64_t repo_seal_size(uint64_t plain);

/* Seals len bytes into out (appended). */
void repo_seal_mem(const uint8_t key[AEAD_KEY_LEN], const char *object, const void *plain, size_t len,
		   struct strbuf *out);

/* Seals a plaintext of a known size read from a source, as a pull stream (s3_put_stream). */
typedef long (*repo_seal_source_fn)(void *buf, size_t len, void *ud);	/* bytes, 0 at end, -1 error */
struct repo_sealer {
	uint8_t key[AEAD_KEY_LEN];
	char *object;
	uint64_t plain_size, plain_done, index;
	repo_seal_source_fn source;
	void *ud;
	uint8_t *out;			/* one sealed segment waiting to be read */
	size_t out_len, out_pos;
	int done;
};
void repo_sealer_init(struct repo_sealer *s, const uint8_t key[AEAD_KEY_LEN], const char *object,
		      uint64_t plain_size, repo_seal_source_fn source, void *ud);
/* Up to len sealed bytes into buf: a count, 0 at the end, -1 when the source failed or gave
 * other than plain_size bytes. */
long repo_sealer_read(struct repo_sealer *s, void *buf, size_t len);
void repo_sealer_release(struct repo_sealer *s);

/* Opens a sealed stream fed in pieces of any size; plaintext goes to sink as each segment checks. */
typedef int (*repo_seal_sink_fn)(const void *data, size_t len, void *ud);	/* 0, or -1 to stop */
struct repo_unsealer {
	uint8_t key[AEAD_KEY_LEN];
	char *object;
	uint64_t index;
	repo_seal_sink_fn sink;
	void *ud;
	struct strbuf in;		/* bytes of the segment being received */
	int magic_seen, last_seen, failed;
	char error[160];
};
void repo_unsealer_init(struct repo_unsealer *u, const uint8_t key[AEAD_KEY_LEN], const char *object,
			repo_seal_sink_fn sink, void *ud);
/* 0, or -1 with u->error in words (the object is not one of ours, or was changed). */
int repo_unsealer_feed(struct repo_unsealer *u, const void *data, size_t len);
/* 0 when the whole object arrived, -1 when it was cut short. */
int repo_unsealer_finish(struct repo_unsealer *u);
void repo_unsealer_release(struct repo_unsealer *u);

/* The whole of a sealed object in memory: 0 with the plaintext appended to out, or -1 with err. */
int repo_unseal_mem(const uint8_t key[AEAD_KEY_LEN], const char *object, const void *sealed, size_t len,
		    struct strbuf *out, char *err, size_t errlen);

#endif
