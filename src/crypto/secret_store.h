/* Secrets at rest: cluster tokens and S3 secret keys sealed with AES-256-GCM, bound to their
 * organisation and purpose, and carried to and from PostgreSQL as bytea in hex text form.
 * A secret is sealed to the deployment's public sealing key (X25519, the private half derived
 * from the master key): whoever holds only the public key (the web workers) seals and cannot
 * open. Secrets sealed before, under the key derived from the master key, still open. */
#ifndef STOWAGE_SECRET_STORE_H
#define STOWAGE_SECRET_STORE_H

#include "aead.h"

#include <stddef.h>

#define SECRET_SEAL_KEY_LEN 32

struct secret_keyring {
	int can_open;		/* 0: a sealing-only ring (secret_keyring_load_sealing) */
	uint8_t key[AEAD_KEY_LEN];
	uint8_t open_key[SECRET_SEAL_KEY_LEN];	/* X25519 private half */
	uint8_t seal_key[SECRET_SEAL_KEY_LEN];	/* X25519 public half */
	char key_id[17];	/* names the key in each row, so rotation knows what to re-seal */
};

int secret_keyring_load(const char *master_key_file, struct secret_keyring *ring, char *err, size_t errlen);
/* A sealing-only ring from a file written by `stowage-keys sealing-key`: "<key_id> <public key
 * in hex>". It seals; secret_open refuses with it. */
int secret_keyring_load_sealing(const char *path, struct secret_keyring *ring, char *err, size_t errlen);
/* That file's one line for ring (which must be able to open), without a newline. */
void secret_keyring_sealing_line(const struct secret_keyring *ring, char out[17 + 1 + 2 * SECRET_SEAL_KEY_LEN + 1]);
void secret_keyring_from_master(const uint8_t master[AEAD_KEY_LEN], struct secret_keyring *ring);
/* The sealed secret as a bytea parameter ("\x..."), malloc'd; NULL on failure. purpose names the
 * column ("cluster.token"); org_id is bound into the ciphertext. */
char *secret_seal(const struct secret_keyring *ring, long long org_id, const char *purpose, const char *plain);
/* The plaintext of a bytea value as libpq returns it in text mode, malloc'd; NULL when it does
 * not open (wrong key, organisation or purpose, or tampered). */
char *secret_open(const struct secret_keyring *ring, long long org_id, const char *purpose, const char *bytea_hex);
/* Frees a plaintext after wiping it. */
void secret_free(char *plain);

#endif
