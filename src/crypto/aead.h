/* AES-256-GCM sealing for secrets at rest and repository data, and the master key that
 * everything else is derived from. One implementation serves the database secrets and the
 * data mover's chunks. */
#ifndef STOWAGE_AEAD_H
#define STOWAGE_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define AEAD_KEY_LEN 32
#define AEAD_NONCE_LEN 12
#define AEAD_TAG_LEN 16
#define AEAD_OVERHEAD (AEAD_NONCE_LEN + AEAD_TAG_LEN)

/* out receives nonce | ciphertext | tag: len + AEAD_OVERHEAD bytes. The nonce is random.
 * aad is authenticated, not stored: opening with another aad fails. Returns 0 or -1. */
int aead_seal(const uint8_t key[AEAD_KEY_LEN], const void *aad, size_t aadlen,
	      const void *plain, size_t len, uint8_t *out);
/* out receives inlen - AEAD_OVERHEAD bytes. -1 when in is short, tampered, or the key or aad
 * differ: the caller cannot tell which, by design. */
int aead_open(const uint8_t key[AEAD_KEY_LEN], const void *aad, size_t aadlen,
	      const uint8_t *in, size_t inlen, uint8_t *out);
/* HKDF-SHA256 of the master key: one key per purpose ("secrets", "repo:<id>", ...). */
int aead_derive_key(const uint8_t master[AEAD_KEY_LEN], const char *purpose,
		    uint8_t out[AEAD_KEY_LEN]);
/* Reads a master key file: exactly 32 raw bytes or 64 hex digits (and a newline), owned by us,
 * not readable by group or others. */
int master_key_load(const char *path, uint8_t key[AEAD_KEY_LEN], char *err, size_t errlen);

#endif
