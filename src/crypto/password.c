#include "password.h"
#include "strbuf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* N = 2^15, r = 8: 32 MiB and about 0.1 s per hash on this class of machine. */
#define SCRYPT_LOG_N 15
#define SCRYPT_R 8
#define SCRYPT_P 1
#define SALT_LEN 16
#define HASH_LEN 32
#define SCRYPT_MAXMEM (64u * 1024 * 1024)

static int scrypt_derive(const char *password, const uint8_t *salt, size_t saltlen,
			 unsigned ln, unsigned r, unsigned p, uint8_t *out, size_t outlen)
{
	return EVP_PBE_scrypt(password, strlen(password), salt, saltlen, (uint64_t)1 << ln, r, p,
			      SCRYPT_MAXMEM, out, outlen) == 1 ? 0 : -1;
}

char *password_hash(const char *password)
{
	uint8_t salt[SALT_LEN], hash[HASH_LEN];
	char salt64[4 * ((SALT_LEN + 2) / 3) + 1], hash64[4 * ((HASH_LEN + 2) / 3) + 1];
	struct strbuf sb = STRBUF_INIT;

	if (RAND_bytes(salt, sizeof salt) != 1)
		return NULL;
	if (scrypt_derive(password, salt, sizeof salt, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, hash, sizeof hash) < 0)
		return NULL;
	EVP_EncodeBlock((unsigned char *)salt64, salt, sizeof salt);
	EVP_EncodeBlock((unsigned char *)hash64, hash, sizeof hash);
	OPENSSL_cleanse(hash, sizeof hash);
	strbuf_addf(&sb, "scrypt$%d$%d$%d$%s$%s", SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, salt64, hash64);
	return strbuf_take(&sb);
}

const char *password_dummy_hash(void)
{
	return "scrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
}

static int decode64(const char *in, uint8_t *out, size_t want)
{
	size_t len = strlen(in);
	uint8_t buf[64];
	int n;

	if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof buf)
		return -1;
	n = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)len);
	if (n < 0)
		return -1;
	/* EVP_DecodeBlock counts padding bytes as zeros: drop them. */
	if (in[len - 1] == '=')
		n--;
	if (in[len - 2] == '=')
		n--;
	if ((size_t)n != want)
		return -1;
	memcpy(out, buf, want);
	return 0;
}

int password_verify(const char *password, const char *encoded)
{
	unsigned ln, r, p;
	char salt64[64], hash64[64];
	uint8_t salt[SALT_LEN], want[HASH_LEN], got[HASH_LEN];
	int ok;

	if (sscanf(encoded, "scrypt$%2u$%2u$%2u$%63[^$]$%63s", &ln, &r, &p, salt64, hash64) != 5)
		return 0;
	if (ln < 10 || ln > 20 || r < 1 || r > 16 || p < 1 || p > 4)
		return 0;
	if (decode64(salt64, salt, sizeof salt) < 0 || decode64(hash64, want, sizeof want) < 0)
		return 0;
	if (scrypt_derive(password, salt, sizeof salt, ln, r, p, got, sizeof got) < 0)
		return 0;
	ok = CRYPTO_memcmp(got, want, sizeof got) == 0;
	OPENSSL_cleanse(got, sizeof got);
	return ok;
}
