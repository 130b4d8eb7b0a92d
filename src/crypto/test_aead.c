#include "aead.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t key_a[AEAD_KEY_LEN] = { 1, 2, 3 };
static const uint8_t key_b[AEAD_KEY_LEN] = { 9, 9, 9 };

static void test_aead_round_trip(void)
{
	const char msg[] = "cluster token: eyJhbGciOi";
	uint8_t sealed[sizeof msg + AEAD_OVERHEAD], opened[sizeof msg];

	CHECK_INTEQ(aead_seal(key_a, "org:1", 5, msg, sizeof msg, sealed), 0);
	CHECK(memmem(sealed, sizeof sealed, "eyJhbGciOi", 10) == NULL);
	CHECK_INTEQ(aead_open(key_a, "org:1", 5, sealed, sizeof sealed, opened), 0);
	CHECK_STREQ((char *)opened, msg);
}

static void test_aead_detects_tamper_wrong_key_and_aad(void)
{
	const char msg[] = "s3 secret key";
	uint8_t sealed[sizeof msg + AEAD_OVERHEAD], opened[sizeof msg];

	CHECK_INTEQ(aead_seal(key_a, "org:1", 5, msg, sizeof msg, sealed), 0);
	CHECK_INTEQ(aead_open(key_b, "org:1", 5, sealed, sizeof sealed, opened), -1);
	CHECK_INTEQ(aead_open(key_a, "org:2", 5, sealed, sizeof sealed, opened), -1);
	for (size_t i = 0; i < sizeof sealed; i++) {
		sealed[i] ^= 0x01;
		CHECK_INTEQ(aead_open(key_a, "org:1", 5, sealed, sizeof sealed, opened), -1);
		sealed[i] ^= 0x01;
	}
	CHECK_INTEQ(aead_open(key_a, "org:1", 5, sealed, AEAD_OVERHEAD - 1, opened), -1);
	CHECK_INTEQ(aead_open(key_a, "org:1", 5, sealed, sizeof sealed, opened), 0);
}

static void test_aead_nonces_differ(void)
{
	uint8_t s1[4 + AEAD_OVERHEAD], s2[4 + AEAD_OVERHEAD];

	aead_seal(key_a, NULL, 0, "same", 4, s1);
	aead_seal(key_a, NULL, 0, "same", 4, s2);
	CHECK(memcmp(s1, s2, sizeof s1) != 0);
}

static void test_aead_derive_is_per_purpose(void)
{
	uint8_t k1[AEAD_KEY_LEN], k2[AEAD_KEY_LEN], k3[AEAD_KEY_LEN];

	CHECK_INTEQ(aead_derive_key(key_a, "secrets", k1), 0);
	CHECK_INTEQ(aead_derive_key(key_a, "repo:7", k2), 0);
	CHECK_INTEQ(aead_derive_key(key_a, "secrets", k3), 0);
	CHECK(memcmp(k1, k2, AEAD_KEY_LEN) != 0);
	CHECK(memcmp(k1, k3, AEAD_KEY_LEN) == 0);
}

static void test_master_key_file_checks(void)
{
	char path[] = "/tmp/stowage-key-XXXXXX", err[256] = "";
	uint8_t key[AEAD_KEY_LEN];
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	fputs("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", f);
	fclose(f);
	chmod(path, 0600);
	CHECK_INTEQ(master_key_load(path, key, err, sizeof err), 0);
	CHECK(key[0] == 0x00 && key[1] == 0x11 && key[31] == 0xff);
	chmod(path, 0644);
	CHECK_INTEQ(master_key_load(path, key, err, sizeof err), -1);
	CHECK(strstr(err, "chmod 600") != NULL);
	f = fopen(path, "w");
	fputs("short", f);
	fclose(f);
	chmod(path, 0600);
	CHECK_INTEQ(master_key_load(path, key, err, sizeof err), -1);
	CHECK(strstr(err, "32 bytes or 64 hex digits") != NULL);
	unlink(path);
}

int main(void)
{
	RUN(test_aead_round_trip);
	RUN(test_aead_detects_tamper_wrong_key_and_aad);
	RUN(test_aead_nonces_differ);
	RUN(test_aead_derive_is_per_purpose);
	RUN(test_master_key_file_checks);
	return check_done();
}
