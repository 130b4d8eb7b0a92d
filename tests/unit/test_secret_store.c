#include "secret_store.h"
#include "check.h"

#include <stdlib.h>

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

int main(void)
{
	RUN(test_secret_round_trip_in_bytea_hex);
	RUN(test_secret_bound_to_org_purpose_and_key);
	return check_done();
}
