/* ID tokens signed here with fresh keys: the good one passes; a bad signature, another issuer or
 * audience, an expired token, alg "none" or HS256, a wrong nonce are all refused. */
#include "check.h"
#include "oidc_token.h"
#include "token.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#define NOW 1900000000

static EVP_PKEY *rsa, *ec;
static cJSON *jwks;

static char *b64(const void *data, size_t n)
{
	char *out = malloc(n * 4 / 3 + 4);
	base64url_encode(data, n, out);
	return out;
}

static char *bn_b64(EVP_PKEY *k, const char *name, int pad)
{
	BIGNUM *bn = NULL;
	uint8_t buf[512];

	EVP_PKEY_get_bn_param(k, name, &bn);
	int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
	BN_free(bn);
	return b64(buf, (size_t)n);
}

static void add_str(cJSON *o, const char *k, char *v)
{
	cJSON_AddStringToObject(o, k, v);
	free(v);
}

static void setup(void)
{
	rsa = EVP_RSA_gen(2048);
	ec = EVP_EC_gen("P-256");
	jwks = cJSON_CreateObject();
	cJSON *keys = cJSON_AddArrayToObject(jwks, "keys"), *k = cJSON_CreateObject();
	cJSON_AddStringToObject(k, "kty", "RSA");
	cJSON_AddStringToObject(k, "kid", "r1");
	cJSON_AddStringToObject(k, "use", "sig");
	add_str(k, "n", bn_b64(rsa, OSSL_PKEY_PARAM_RSA_N, 0));
	add_str(k, "e", bn_b64(rsa, OSSL_PKEY_PARAM_RSA_E, 0));
	cJSON_AddItemToArray(keys, k);
	k = cJSON_CreateObject();
	cJSON_AddStringToObject(k, "kty", "EC");
	cJSON_AddStringToObject(k, "kid", "e1");
	cJSON_AddStringToObject(k, "crv", "P-256");
	add_str(k, "x", bn_b64(ec, OSSL_PKEY_PARAM_EC_PUB_X, 32));
	add_str(k, "y", bn_b64(ec, OSSL_PKEY_PARAM_EC_PUB_Y, 32));
	cJSON_AddItemToArray(keys, k);
}

static cJSON *good_claims(void)
{
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "iss", "https://idp.example");
	cJSON_AddStringToObject(c, "sub", "user-1");
	cJSON_AddStringToObject(c, "aud", "stowage");
	cJSON_AddNumberToObject(c, "exp", NOW + 300);
	cJSON_AddNumberToObject(c, "iat", NOW - 10);
	cJSON_AddStringToObject(c, "nonce", "n-123");
	return c;
}

/* header.payload.signature, signed with key as alg (key NULL: the signature is "sig"). */
static char *sign(const char *alg, const char *kid, EVP_PKEY *key, cJSON *claims)
{
	cJSON *h = cJSON_CreateObject();
	cJSON_AddStringToObject(h, "alg", alg);
	if (kid)
		cJSON_AddStringToObject(h, "kid", kid);
	char *ht = cJSON_PrintUnformatted(h), *ct = cJSON_PrintUnformatted(claims);
	char *hb = b64(ht, strlen(ht)), *cb = b64(ct, strlen(ct));
	size_t n = strlen(hb) + strlen(cb) + 2;
	char *input = malloc(n);
	snprintf(input, n, "%s.%s", hb, cb);
	uint8_t sig[600];
	size_t siglen = sizeof sig;
	if (key) {
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key);
		EVP_DigestSign(md, sig, &siglen, (uint8_t *)input, strlen(input));
		EVP_MD_CTX_free(md);
		if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
			const uint8_t *p = sig;
			ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
			BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, 32);
			BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + 32, 32);
			siglen = 64;
			ECDSA_SIG_free(s);
		}
	} else {
		memcpy(sig, "sig", 3);
		siglen = 3;
	}
	char *sb = b64(sig, siglen);
	size_t total = strlen(input) + strlen(sb) + 2;
	char *token = malloc(total);
	snprintf(token, total, "%s.%s", input, sb);
	free(ht); free(ct); free(hb); free(cb); free(input); free(sb);
	cJSON_Delete(h);
	cJSON_Delete(claims);
	return token;
}

static const struct oidc_expect expect = { "https://idp.example", "stowage", "n-123", NOW };

/* 1 when token verifies; err gets the reason otherwise. */
static int verifies(char *token, char *err, size_t errlen)
{
	cJSON *claims = oidc_id_token_verify(token, jwks, &expect, err, errlen);
	free(token);
	cJSON_Delete(claims);
	return claims != NULL;
}

static void test_good_rs256_and_es256(void)
{
	char err[256] = "";
	CHECK(verifies(sign("RS256", "r1", rsa, good_claims()), err, sizeof err));
	CHECK_STREQ(err, "");
	CHECK(verifies(sign("ES256", "e1", ec, good_claims()), err, sizeof err));
	CHECK(verifies(sign("RS256", NULL, rsa, good_claims()), err, sizeof err));
	cJSON *claims = oidc_id_token_verify(NULL, jwks, &expect, err, sizeof err);
	CHECK(!claims);
}

static void test_bad_signature(void)
{
	char err[256];
	EVP_PKEY *other = EVP_RSA_gen(2048);
	CHECK(!verifies(sign("RS256", "r1", other, good_claims()), err, sizeof err));
	CHECK(strstr(err, "signature does not verify") != NULL);
	EVP_PKEY_free(other);
	/* a payload changed after signing */
	char *t = sign("RS256", "r1", rsa, good_claims());
	char *dot = strchr(t, '.');
	dot[2] = dot[2] == 'A' ? 'B' : 'A';
	CHECK(!verifies(t, err, sizeof err));
	/* an RSA signature presented as ES256 with the EC key's kid */
	CHECK(!verifies(sign("ES256", "e1", rsa, good_claims()), err, sizeof err));
}

static void test_alg_none_and_hmac_refused(void)
{
	char err[256];
	CHECK(!verifies(sign("none", NULL, NULL, good_claims()), err, sizeof err));
	CHECK(strstr(err, "alg none is not accepted") != NULL);
	CHECK(!verifies(sign("HS256", "r1", NULL, good_claims()), err, sizeof err));
	CHECK(strstr(err, "HS256") != NULL);
	/* an empty signature part */
	char *t = sign("RS256", "r1", rsa, good_claims());
	strrchr(t, '.')[1] = '\0';
	CHECK(!verifies(t, err, sizeof err));
}

static void test_claims_refused(void)
{
	char err[256];
	cJSON *c = good_claims();
	cJSON_ReplaceItemInObject(c, "iss", cJSON_CreateString("https://evil.example"));
	CHECK(!verifies(sign("RS256", "r1", rsa, c), err, sizeof err));
	CHECK(strstr(err, "issuer") != NULL);

	c = good_claims();
	cJSON_ReplaceItemInObject(c, "aud", cJSON_CreateString("another-org-client"));
	CHECK(!verifies(sign("RS256", "r1", rsa, c), err, sizeof err));
	CHECK(strstr(err, "another client") != NULL);

	c = good_claims();	/* several audiences and azp not ours */
	cJSON *aud = cJSON_CreateArray();
	cJSON_AddItemToArray(aud, cJSON_CreateString("stowage"));
	cJSON_AddItemToArray(aud, cJSON_CreateString("other"));
	cJSON_ReplaceItemInObject(c, "aud", aud);
	cJSON_AddStringToObject(c, "azp", "other");
	CHECK(!verifies(sign("RS256", "r1", rsa, c), err, sizeof err));

	c = good_claims();
	cJSON_ReplaceItemInObject(c, "exp", cJSON_CreateNumber(NOW - OIDC_LEEWAY_SECONDS - 1));
	CHECK(!verifies(sign("RS256", "r1", rsa, c), err, sizeof err));
	CHECK(strstr(err, "expired") != NULL);

	c = good_claims();
	cJSON_DeleteItemFromObject(c, "exp");
	CHECK(!verifies(sign("RS256", "r1", rsa, c), err, sizeof err));

	c = good_claims();
	cJSON_ReplaceItemInObject(c, "nonce", cJSON_CreateString("n-124"));
	CHECK(!verifies(sign("RS256", "r1", rsa, c), err, sizeof err));
	CHECK(strstr(err, "nonce") != NULL);

	c = good_claims();
	cJSON_DeleteItemFromObject(c, "nonce");
	CHECK(!verifies(sign("RS256", "r1", rsa, c), err, sizeof err));

	c = good_claims();
	cJSON_ReplaceItemInObject(c, "iat", cJSON_CreateNumber(NOW + 3600));
	CHECK(!verifies(sign("RS256", "r1", rsa, c), err, sizeof err));
}

static void test_unknown_kid_and_jwks(void)
{
	char err[256], kid[64];
	char *t = sign("RS256", "r9", rsa, good_claims());
	CHECK_INTEQ(oidc_token_kid(t, kid, sizeof kid), 0);
	CHECK_STREQ(kid, "r9");
	CHECK(!oidc_jwks_has_kid(jwks, kid));
	CHECK(oidc_jwks_has_kid(jwks, "r1"));
	CHECK(!verifies(t, err, sizeof err));
	CHECK(strstr(err, "no RS256 key named r9") != NULL);
	CHECK_INTEQ(oidc_jwks_check(jwks, err, sizeof err), 0);
	cJSON *bad = cJSON_Parse("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}");
	CHECK_INTEQ(oidc_jwks_check(bad, err, sizeof err), -1);	/* a toy modulus */
	cJSON_Delete(bad);
	bad = cJSON_Parse("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
			  "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}");
	CHECK_INTEQ(oidc_jwks_check(bad, err, sizeof err), -1);	/* a point off the curve */
	cJSON_Delete(bad);
}

int main(void)
{
	setup();
	RUN(test_good_rs256_and_es256);
	RUN(test_bad_signature);
	RUN(test_alg_none_and_hmac_refused);
	RUN(test_claims_refused);
	RUN(test_unknown_kid_and_jwks);
	cJSON_Delete(jwks);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	return check_done();
}
