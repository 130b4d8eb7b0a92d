#include "password.h"
#include "token.h"
#include "check.h"

#include <stdlib.h>

static void test_password_hash_and_verify(void)
{
	char *h = password_hash("correct horse battery");

	CHECK(h != NULL);
	CHECK(strncmp(h, "scrypt$15$8$1$", 14) == 0);
	CHECK(strstr(h, "correct") == NULL);
	CHECK_INTEQ(password_verify("correct horse battery", h), 1);
	CHECK_INTEQ(password_verify("correct horse batterz", h), 0);
	CHECK_INTEQ(password_verify("", h), 0);
	free(h);
}

static void test_password_salted(void)
{
	char *a = password_hash("same password"), *b = password_hash("same password");

	CHECK(strcmp(a, b) != 0);
	free(a);
	free(b);
}

static void test_password_malformed_encodings_never_match(void)
{
	CHECK_INTEQ(password_verify("x", ""), 0);
	CHECK_INTEQ(password_verify("x", "scrypt$99$8$1$AAAA$AAAA"), 0);
	CHECK_INTEQ(password_verify("x", "md5$abc"), 0);
	CHECK_INTEQ(password_verify("x", "scrypt$15$8$1$!!!!$????"), 0);
	CHECK_INTEQ(password_verify("anything", password_dummy_hash()), 0);
}

static void test_tokens_are_random_and_compared_exactly(void)
{
	char a[TOKEN_TEXT_LEN + 1], b[TOKEN_TEXT_LEN + 1];
	uint8_t ha[32], hb[32];

	CHECK_INTEQ(token_new(a), 0);
	CHECK_INTEQ(token_new(b), 0);
	CHECK_INTEQ(strlen(a), TOKEN_TEXT_LEN);
	CHECK(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == TOKEN_TEXT_LEN);
	CHECK(!token_equal(a, b));
	CHECK(token_equal(a, a));
	CHECK(!token_equal("", ""));
	token_hash(a, ha);
	token_hash(b, hb);
	CHECK(memcmp(ha, hb, 32) != 0);
}

int main(void)
{
	RUN(test_password_hash_and_verify);
	RUN(test_password_salted);
	RUN(test_password_malformed_encodings_never_match);
	RUN(test_tokens_are_random_and_compared_exactly);
	return check_done();
}
