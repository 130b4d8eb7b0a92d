#include "token.h"

#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

static const char base64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void base64url_encode(const uint8_t *in, size_t n, char *out)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		acc = acc << 8 | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = base64url_alphabet[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = base64url_alphabet[(acc << (6 - bits)) & 63];
	out[o] = '\0';
}

long base64url_decode(const char *in, size_t len, uint8_t *out)
{
	uint32_t acc = 0;
	int bits = 0;
	long o = 0;

	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		const char *c = in[i] ? memchr(base64url_alphabet, in[i], 64) : NULL;
		if (!c)
			return -1;
		acc = acc << 6 | (uint32_t)(c - base64url_alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* the left-over bits of the last character must be zero (one encoding per value) */
	if (bits && (acc & ((1u << bits) - 1)))
		return -1;
	out[o] = 0;
	return o;
}

int token_new(char out[TOKEN_TEXT_LEN + 1])
{
	uint8_t raw[32];

	if (RAND_bytes(raw, sizeof raw) != 1)
		return -1;
	base64url_encode(raw, sizeof raw, out);
	OPENSSL_cleanse(raw, sizeof raw);
	return 0;
}

/* SHA-256 fetched once per process: SHA256() fetches the algorithm from OpenSSL 3's provider
 * on every call, and a console page hashes its session token (1.5% of a page's samples,
 * docs/performance.md). */
static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void token_hash(const char *token, uint8_t out[32])
{
	pthread_once(&sha256_once, sha256_fetch);
	if (!sha256 || EVP_Digest(token, strlen(token), out, NULL, sha256, NULL) != 1)
		SHA256((const unsigned char *)token, strlen(token), out);
}

int token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la != lb || la == 0)
		return 0;
	return CRYPTO_memcmp(a, b, la) == 0;
}

