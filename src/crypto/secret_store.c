#include "secret_store.h"
#include "strbuf.h"
#include "token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#define SECRET_MAX 65536
/* A secret sealed to the public key: magic | ephemeral public key | nonce | ciphertext | tag. */
static const uint8_t sealed_v2_magic[4] = { 'S', 'P', 'K', '1' };
#define SEALED_V2_HEAD (sizeof sealed_v2_magic + SECRET_SEAL_KEY_LEN)

void secret_keyring_from_master(const uint8_t master[AEAD_KEY_LEN], struct secret_keyring *ring)
{
	uint8_t digest[SHA256_DIGEST_LENGTH];

	EVP_PKEY *pk;
	size_t n = SECRET_SEAL_KEY_LEN;

	memset(ring, 0, sizeof *ring);
	aead_derive_key(master, "stowage:secrets:v1", ring->key);
	SHA256(ring->key, sizeof ring->key, digest);
	hex_encode(digest, 8, ring->key_id);
	aead_derive_key(master, "stowage:secrets:x25519:v1", ring->open_key);
	pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, ring->open_key, SECRET_SEAL_KEY_LEN);
	if (pk && EVP_PKEY_get_raw_public_key(pk, ring->seal_key, &n) == 1 && n == SECRET_SEAL_KEY_LEN)
		ring->can_open = 1;
	EVP_PKEY_free(pk);
}

void secret_keyring_sealing_line(const struct secret_keyring *ring, char out[17 + 1 + 2 * SECRET_SEAL_KEY_LEN + 1])
{
	memcpy(out, ring->key_id, 16);
	out[16] = ' ';
	hex_encode(ring->seal_key, SECRET_SEAL_KEY_LEN, out + 17);
}


int secret_keyring_load_sealing(const char *path, struct secret_keyring *ring, char *err, size_t errlen)
{
	char line[200];
	FILE *f = fopen(path, "re");
	size_t len;

	memset(ring, 0, sizeof *ring);
	if (!f) {
		snprintf(err, errlen, "%s: cannot read the sealing key", path);
		return -1;
	}
	if (!fgets(line, sizeof line, f))
		line[0] = '\0';
	fclose(f);
	len = strcspn(line, "\r\n");
	line[len] = '\0';
	if (len != 17 + 2 * SECRET_SEAL_KEY_LEN || line[16] != ' ') {
		snprintf(err, errlen, "%s: not a sealing key (stowage-keys sealing-key writes one)", path);
		return -1;
	}
	memcpy(ring->key_id, line, 16);
	ring->key_id[16] = '\0';
	if (hex_decode(line + 17, SECRET_SEAL_KEY_LEN, ring->seal_key) < 0) {
		snprintf(err, errlen, "%s: not a sealing key (stowage-keys sealing-key writes one)", path);
		return -1;
	}
	return 0;
}

/* The AES key of a sealed_v2 secret: HKDF of the X25519 shared secret, bound to both public keys. */
static int x25519_key(EVP_PKEY *mine, const uint8_t peer_pub[SECRET_SEAL_KEY_LEN], const uint8_t eph_pub[SECRET_SEAL_KEY_LEN],
		      const uint8_t recipient_pub[SECRET_SEAL_KEY_LEN], uint8_t key[AEAD_KEY_LEN])
{
	EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer_pub, SECRET_SEAL_KEY_LEN);
	EVP_PKEY_CTX *ctx = peer ? EVP_PKEY_CTX_new(mine, NULL) : NULL;
	uint8_t shared[32];
	size_t n = sizeof shared;
	char info[32 + 4 * SECRET_SEAL_KEY_LEN + 1];
	int rc = -1;

	if (ctx && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
	    EVP_PKEY_derive(ctx, shared, &n) == 1 && n == sizeof shared) {
		strcpy(info, "stowage:secrets:x25519-seal:v1:");
		hex_encode(eph_pub, SECRET_SEAL_KEY_LEN, info + strlen(info));
		hex_encode(recipient_pub, SECRET_SEAL_KEY_LEN, info + strlen(info));
		rc = aead_derive_key(shared, info, key);
	}
	OPENSSL_cleanse(shared, sizeof shared);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	return rc;
}

int secret_keyring_load(const char *master_key_file, struct secret_keyring *ring, char *err, size_t errlen)
{
	uint8_t master[AEAD_KEY_LEN];

	if (master_key_load(master_key_file, master, err, errlen) < 0)
		return -1;
	secret_keyring_from_master(master, ring);
	OPENSSL_cleanse(master, sizeof master);
	return 0;
}

static void secret_aad(char *aad, size_t size, long long org_id, const char *purpose)
{
	snprintf(aad, size, "stowage-secret:v1:org=%lld:%s", org_id, purpose);
}

char *secret_seal(const struct secret_keyring *ring, long long org_id, const char *purpose, const char *plain)
{
	size_t len = strlen(plain);
	char aad[160];
	uint8_t *sealed;
	char *hex;

	if (len > SECRET_MAX)
		return NULL;
	secret_aad(aad, sizeof aad, org_id, purpose);
	size_t total = SEALED_V2_HEAD + len + AEAD_OVERHEAD;
	uint8_t key[AEAD_KEY_LEN];
	EVP_PKEY_CTX *gen = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL);
	EVP_PKEY *eph = NULL;
	size_t n = SECRET_SEAL_KEY_LEN;
	int rc = -1;

	sealed = xmalloc(total);
	memcpy(sealed, sealed_v2_magic, sizeof sealed_v2_magic);
	if (gen && EVP_PKEY_keygen_init(gen) == 1 && EVP_PKEY_keygen(gen, &eph) == 1 &&
	    EVP_PKEY_get_raw_public_key(eph, sealed + sizeof sealed_v2_magic, &n) == 1 && n == SECRET_SEAL_KEY_LEN &&
	    x25519_key(eph, ring->seal_key, sealed + sizeof sealed_v2_magic, ring->seal_key, key) == 0)
		rc = aead_seal(key, aad, strlen(aad), plain, len, sealed + SEALED_V2_HEAD);
	OPENSSL_cleanse(key, sizeof key);
	EVP_PKEY_free(eph);
	EVP_PKEY_CTX_free(gen);
	if (rc < 0) {
		free(sealed);
		return NULL;
	}
	hex = xmalloc(2 * total + 3);
	hex[0] = '\\';
	hex[1] = 'x';
	hex_encode(sealed, total, hex + 2);
	free(sealed);
	return hex;
}

char *secret_open(const struct secret_keyring *ring, long long org_id, const char *purpose, const char *bytea_hex)
{
	size_t hexlen, n;
	uint8_t *sealed;
	char aad[160], *plain;

	if (!bytea_hex || strncmp(bytea_hex, "\\x", 2) != 0)
		return NULL;
	hexlen = strlen(bytea_hex + 2);
	if (hexlen % 2 || hexlen / 2 < AEAD_OVERHEAD || hexlen / 2 > SECRET_MAX + AEAD_OVERHEAD + SEALED_V2_HEAD)
		return NULL;
	n = hexlen / 2;
	sealed = xmalloc(n);
	if (hex_decode(bytea_hex + 2, n, sealed) < 0) {
		free(sealed);
		return NULL;
	}
	if (!ring->can_open) {
		free(sealed);
		return NULL;
	}
	secret_aad(aad, sizeof aad, org_id, purpose);
	plain = xmalloc(n - AEAD_OVERHEAD + 1);
	int opened = 0;
	if (n >= SEALED_V2_HEAD + AEAD_OVERHEAD && memcmp(sealed, sealed_v2_magic, sizeof sealed_v2_magic) == 0) {
		uint8_t key[AEAD_KEY_LEN];
		EVP_PKEY *mine = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, ring->open_key, SECRET_SEAL_KEY_LEN);
		if (mine && x25519_key(mine, sealed + sizeof sealed_v2_magic, sealed + sizeof sealed_v2_magic,
				       ring->seal_key, key) == 0 &&
		    aead_open(key, aad, strlen(aad), sealed + SEALED_V2_HEAD, n - SEALED_V2_HEAD, (uint8_t *)plain) == 0) {
			opened = 1;
			n -= SEALED_V2_HEAD;
		}
		OPENSSL_cleanse(key, sizeof key);
		EVP_PKEY_free(mine);
	}
	/* sealed before the public key, under the key derived from the master key */
	if (!opened && aead_open(ring->key, aad, strlen(aad), sealed, n, (uint8_t *)plain) < 0) {
		free(sealed);
		free(plain);
		return NULL;
	}
	plain[n - AEAD_OVERHEAD] = '\0';
	free(sealed);
	if (strlen(plain) != n - AEAD_OVERHEAD) {
		secret_free(plain);
		return NULL;
	}
	return plain;
}

void secret_free(char *plain)
{
	if (!plain)
		return;
	OPENSSL_cleanse(plain, strlen(plain));
	free(plain);
}
