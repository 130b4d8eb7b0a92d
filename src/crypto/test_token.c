/* Random tokens: their text form, the hash kept in the database, and their comparison. */
#include "token.h"
#include "check.h"

#include <openssl/evp.h>
#include <string.h>

static const char base64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Decodes unpadded base64url text of 32 bytes with OpenSSL's (standard alphabet) decoder. */
static int decode32(const char *text, unsigned char out[33])
{
	char std[45];

	if (strlen(text) != 43)
		return -1;
	for (int i = 0; i < 43; i++)
		std[i] = text[i] == '-' ? '+' : text[i] == '_' ? '/' : text[i];
	std[43] = '=';
	std[44] = '\0';
	return EVP_DecodeBlock(out, (const unsigned char *)std, 44) == 33 ? 0 : -1;
}

static void test_token_new_is_unpadded_base64url_of_32_bytes(void)
{
	for (int n = 0; n < 200; n++) {
		char t[TOKEN_TEXT_LEN + 1], again[45];
		unsigned char raw[33];

		memset(t, '!', sizeof t);
		CHECK_INTEQ(token_new(t), 0);
		CHECK_INTEQ(strlen(t), TOKEN_TEXT_LEN);
		CHECK_INTEQ(strspn(t, base64url), TOKEN_TEXT_LEN);
		/* the bits come out in order: decoding and encoding again gives the same text */
		CHECK_INTEQ(decode32(t, raw), 0);
		EVP_EncodeBlock((unsigned char *)again, raw, 32);
		for (int i = 0; i < 43; i++)
			again[i] = again[i] == '+' ? '-' : again[i] == '/' ? '_' : again[i];
		CHECK(strncmp(again, t, 43) == 0);
		CHECK_STREQ(again + 43, "=");
	}
}

static void test_token_new_differs_and_uses_the_whole_alphabet(void)
{
	char prev[TOKEN_TEXT_LEN + 1] = "", t[TOKEN_TEXT_LEN + 1];
	int seen[256] = { 0 }, distinct = 0;

	for (int n = 0; n < 300; n++) {
		CHECK_INTEQ(token_new(t), 0);
		CHECK(strcmp(t, prev) != 0);
		for (int i = 0; i < TOKEN_TEXT_LEN - 1; i++)
			seen[(unsigned char)t[i]] = 1;
		memcpy(prev, t, sizeof t);
	}
	for (const char *p = base64url; *p; p++)
		distinct += seen[(unsigned char)*p];
	CHECK_INTEQ(distinct, 64);
}

static void test_token_hash_is_sha256_of_the_text(void)
{
	char t[TOKEN_TEXT_LEN + 1], hex[65], want_hex[65];
	uint8_t h[32], want[32];
	unsigned int len = 0;

	/* FIPS 180-2's example */
	token_hash("abc", h);
	hex_encode(h, 32, hex);
	CHECK_STREQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	CHECK_INTEQ(token_new(t), 0);
	token_hash(t, h);
	EVP_Digest(t, strlen(t), want, &len, EVP_sha256(), NULL);
	CHECK_INTEQ(len, 32);
	hex_encode(want, 32, want_hex);
	hex_encode(h, 32, hex);
	CHECK_STREQ(hex, want_hex);
	/* one character more is another hash */
	token_hash("abcd", want);
	token_hash("abc", h);
	CHECK(memcmp(h, want, 32) != 0);
}

static void test_token_equal(void)
{
	char a[TOKEN_TEXT_LEN + 1], b[TOKEN_TEXT_LEN + 1];

	CHECK_INTEQ(token_new(a), 0);
	memcpy(b, a, sizeof a);
	CHECK_INTEQ(token_equal(a, b), 1);
	b[TOKEN_TEXT_LEN - 1] ^= 1;
	CHECK_INTEQ(token_equal(a, b), 0);
	b[TOKEN_TEXT_LEN - 1] ^= 1;
	b[0] ^= 1;
	CHECK_INTEQ(token_equal(a, b), 0);
	b[0] ^= 1;
	/* a prefix is not the token, nor the token with more after it */
	b[10] = '\0';
	CHECK_INTEQ(token_equal(a, b), 0);
	CHECK_INTEQ(token_equal(b, a), 0);
	/* an empty token never matches, not even an empty one */
	CHECK_INTEQ(token_equal("", ""), 0);
	CHECK_INTEQ(token_equal(a, ""), 0);
	CHECK_INTEQ(token_equal("x", "x"), 1);
}

static void test_hex_encode(void)
{
	const uint8_t bytes[] = { 0x00, 0x0f, 0xa5, 0xff, 0x10 };
	char out[2 * sizeof bytes + 1];

	memset(out, 'z', sizeof out);
	hex_encode(bytes, sizeof bytes, out);
	CHECK_STREQ(out, "000fa5ff10");
	hex_encode(bytes, 0, out);
	CHECK_STREQ(out, "");
}

/* base64url both ways; decoding is strict: one encoding per value, no padding, no other alphabet. */
static void test_base64url(void)
{
	uint8_t out[16];
	char text[8];

	base64url_encode((const uint8_t *)"hi?", 3, text);
	CHECK_STREQ(text, "aGk_");
	CHECK_INTEQ(base64url_decode("aGk", 3, out), 2);
	CHECK(memcmp(out, "hi", 2) == 0);
	CHECK_INTEQ(base64url_decode("aGl", 3, out), -1);	/* non-zero left-over bits */
	CHECK_INTEQ(base64url_decode("aGk=", 4, out), -1);
	CHECK_INTEQ(base64url_decode("a+/A", 4, out), -1);
	CHECK_INTEQ(base64url_decode("a", 1, out), -1);
}

int main(void)
{
	RUN(test_token_new_is_unpadded_base64url_of_32_bytes);
	RUN(test_token_new_differs_and_uses_the_whole_alphabet);
	RUN(test_token_hash_is_sha256_of_the_text);
	RUN(test_token_equal);
	RUN(test_hex_encode);
	RUN(test_base64url);
	return check_done();
}
