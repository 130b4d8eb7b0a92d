/* Secrets at rest: cluster tokens and S3 secret keys sealed with AES-256-GCM under a key
 * derived from the master key, bound to their organisation and purpose, and carried to and
 * from PostgreSQL as bytea in hex text form. */
#ifndef STOWAGE_SECRET_STORE_H
#define STOWAGE_SECRET_STORE_H

#include "aead.h"

#include <stddef.h>

struct secret_keyring {
	uint8_t key[AEAD_KEY_LEN];
	char key_id[17];	/* names the key in each row, so rotation knows what to re-seal */
};

int secret_keyring_load(const char *master_key_file, struct secret_keyring *ring, char *err, size_t errlen);
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
