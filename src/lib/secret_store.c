#include "secret_store.h"
#include "strbuf.h"
#include "token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#define SECRET_MAX 65536

void secret_keyring_from_master(const uint8_t master[AEAD_KEY_LEN], struct secret_keyring *ring)
{
	uint8_t digest[SHA256_DIGEST_LENGTH];

	aead_derive_key(master, "stowage:secrets:v1", ring->key);
	SHA256(ring->key, sizeof ring->key, digest);
	hex_encode(digest, 8, ring->key_id);
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
	sealed = xmalloc(len + AEAD_OVERHEAD);
	if (aead_seal(ring->key, aad, strlen(aad), plain, len, sealed) < 0) {
		free(sealed);
		return NULL;
	}
	hex = xmalloc(2 * (len + AEAD_OVERHEAD) + 3);
	hex[0] = '\\';
	hex[1] = 'x';
	hex_encode(sealed, len + AEAD_OVERHEAD, hex + 2);
	free(sealed);
	return hex;
}

static int hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *secret_open(const struct secret_keyring *ring, long long org_id, const char *purpose, const char *bytea_hex)
{
	size_t hexlen, n;
	uint8_t *sealed;
	char aad[160], *plain;

	if (!bytea_hex || strncmp(bytea_hex, "\\x", 2) != 0)
		return NULL;
	hexlen = strlen(bytea_hex + 2);
	if (hexlen % 2 || hexlen / 2 < AEAD_OVERHEAD || hexlen / 2 > SECRET_MAX + AEAD_OVERHEAD)
		return NULL;
	n = hexlen / 2;
	sealed = xmalloc(n);
	for (size_t i = 0; i < n; i++) {
		int hi = hex_digit(bytea_hex[2 + 2 * i]), lo = hex_digit(bytea_hex[3 + 2 * i]);
		if (hi < 0 || lo < 0) {
			free(sealed);
			return NULL;
		}
		sealed[i] = (uint8_t)(hi << 4 | lo);
	}
	secret_aad(aad, sizeof aad, org_id, purpose);
	plain = xmalloc(n - AEAD_OVERHEAD + 1);
	if (aead_open(ring->key, aad, strlen(aad), sealed, n, (uint8_t *)plain) < 0) {
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
