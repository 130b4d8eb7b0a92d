#include "secret_store.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const uint8_t master_a[AEAD_KEY_LEN] = { 7 };
static const uint8_t master_b[AEAD_KEY_LEN] = { 8 };

static void test_secret_round_trip_in_bytea_hex(void)
{
	struct secret_keyring ring;
	char *sealed, *plain;

	secret_keyring_from_master(master_a, &ring);
	sealed = secret_seal(&ring, 42, "cluster.token", "eyJhbGciOiJSUzI1NiJ9.token");
	CHECK(sealed && strncmp(sealed, "\\x", 2) == 0);
	CHECK(strstr(sealed, "eyJ") == NULL);
	plain = secret_open(&ring, 42, "cluster.token", sealed);
	CHECK_STREQ(plain, "eyJhbGciOiJSUzI1NiJ9.token");
	secret_free(plain);
	free(sealed);
}

static void test_secret_bound_to_org_purpose_and_key(void)
{
	struct secret_keyring a, b;
	char *sealed;

	secret_keyring_from_master(master_a, &a);
	secret_keyring_from_master(master_b, &b);
	CHECK(strcmp(a.key_id, b.key_id) != 0);
	CHECK_INTEQ(strlen(a.key_id), 16);
	sealed = secret_seal(&a, 1, "repository.secret_key", "s3cr3t");
	CHECK(secret_open(&a, 2, "repository.secret_key", sealed) == NULL);	/* copied to another tenant */
	CHECK(secret_open(&a, 1, "cluster.token", sealed) == NULL);		/* moved to another column */
	CHECK(secret_open(&b, 1, "repository.secret_key", sealed) == NULL);	/* another master key */
	sealed[10] = sealed[10] == '0' ? '1' : '0';				/* tampered */
	CHECK(secret_open(&a, 1, "repository.secret_key", sealed) == NULL);
	CHECK(secret_open(&a, 1, "repository.secret_key", "\\xzz") == NULL);
	CHECK(secret_open(&a, 1, "repository.secret_key", "plain") == NULL);
	free(sealed);
}

/* The web workers hold only the public sealing key: what they seal, the master key opens; they
 * open nothing, not even what they sealed themselves. */
static void test_a_sealing_only_ring_seals_and_cannot_open(void)
{
	struct secret_keyring full, sealing;
	char line[17 + 1 + 2 * SECRET_SEAL_KEY_LEN + 1], path[] = "/tmp/test-sealing-XXXXXX", err[256];
	char *sealed, *plain;
	int fd = mkstemp(path);

	secret_keyring_from_master(master_a, &full);
	CHECK(full.can_open);
	secret_keyring_sealing_line(&full, line);
	CHECK(fd >= 0 && write(fd, line, strlen(line)) == (ssize_t)strlen(line) && write(fd, "\n", 1) == 1);
	close(fd);
	CHECK_INTEQ(secret_keyring_load_sealing(path, &sealing, err, sizeof err), 0);
	unlink(path);
	CHECK(!sealing.can_open);
	CHECK_STREQ(sealing.key_id, full.key_id);
	for (size_t i = 0; i < AEAD_KEY_LEN; i++)
		CHECK(sealing.key[i] == 0 && sealing.open_key[i] == 0);
	sealed = secret_seal(&sealing, 5, "cluster.token", "token-typed-in-a-form");
	CHECK(sealed != NULL);
	CHECK(secret_open(&sealing, 5, "cluster.token", sealed) == NULL);
	plain = secret_open(&full, 5, "cluster.token", sealed);
	CHECK_STREQ(plain, "token-typed-in-a-form");
	secret_free(plain);
	CHECK(secret_open(&full, 6, "cluster.token", sealed) == NULL);
	free(sealed);
	CHECK_INTEQ(secret_keyring_load_sealing("/nonexistent/sealing.key", &sealing, err, sizeof err), -1);
}

/* Secrets sealed before the public key (AES-GCM under the derived key) still open. */
static void test_secrets_sealed_before_still_open(void)
{
	struct secret_keyring ring;
	const char *aad = "stowage-secret:v1:org=9:repository.secret_key", *secret = "old-secret";
	uint8_t sealed[64];
	char hex[2 * sizeof sealed + 3] = "\\x", *plain;
	size_t n = strlen(secret) + AEAD_OVERHEAD;

	secret_keyring_from_master(master_a, &ring);
	CHECK_INTEQ(aead_seal(ring.key, aad, strlen(aad), secret, strlen(secret), sealed), 0);
	for (size_t i = 0; i < n; i++)
		snprintf(hex + 2 + 2 * i, 3, "%02x", sealed[i]);
	plain = secret_open(&ring, 9, "repository.secret_key", hex);
	CHECK_STREQ(plain, "old-secret");
	secret_free(plain);
	CHECK(secret_open(&ring, 9, "cluster.token", hex) == NULL);
}

int main(void)
{
	RUN(test_a_sealing_only_ring_seals_and_cannot_open);
	RUN(test_secrets_sealed_before_still_open);
	RUN(test_secret_round_trip_in_bytea_hex);
	RUN(test_secret_bound_to_org_purpose_and_key);
	return check_done();
}
