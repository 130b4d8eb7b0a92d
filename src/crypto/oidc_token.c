#include "oidc_token.h"
#include "token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#define RSA_BITS_MIN 2048
#define RSA_BITS_MAX 8192

/* The JSON of one base64url part of the token, or NULL. */
static cJSON *part_json(const char *s, size_t len)
{
	uint8_t *raw;
	cJSON *json;

	if (len == 0 || len > OIDC_TOKEN_MAX)
		return NULL;
	raw = malloc(len * 3 / 4 + 2);
	if (!raw)
		return NULL;
	long n = base64url_decode(s, len, raw);
	json = n > 0 ? cJSON_ParseWithLength((const char *)raw, (size_t)n) : NULL;
	free(raw);
	if (json && !cJSON_IsObject(json)) {
		cJSON_Delete(json);
		return NULL;
	}
	return json;
}

struct jws {
	cJSON *header, *claims;
	const char *signed_part;	/* header.payload, what the signature covers */
	size_t signed_len;
	uint8_t *sig;
	long sig_len;
};

static void jws_free(struct jws *j)
{
	cJSON_Delete(j->header);
	cJSON_Delete(j->claims);
	free(j->sig);
	memset(j, 0, sizeof *j);
}

static int jws_split(const char *token, struct jws *j, char *err, size_t errlen)
{
	size_t len = token ? strlen(token) : 0;
	const char *dot1, *dot2;

	memset(j, 0, sizeof *j);
	if (len == 0 || len > OIDC_TOKEN_MAX) {
		snprintf(err, errlen, "the ID token is empty or longer than %d bytes", OIDC_TOKEN_MAX);
		return -1;
	}
	dot1 = strchr(token, '.');
	dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (!dot2 || strchr(dot2 + 1, '.')) {
		snprintf(err, errlen, "the ID token is not a compact JWS (three parts)");
		return -1;
	}
	j->header = part_json(token, (size_t)(dot1 - token));
	j->claims = part_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	if (!j->header || !j->claims) {
		snprintf(err, errlen, "the ID token's %s is not base64url JSON", j->header ? "payload" : "header");
		jws_free(j);
		return -1;
	}
	size_t slen = strlen(dot2 + 1);
	j->sig = malloc(slen * 3 / 4 + 2);
	j->sig_len = j->sig ? base64url_decode(dot2 + 1, slen, j->sig) : -1;
	if (j->sig_len <= 0) {
		snprintf(err, errlen, "the ID token has no signature");
		jws_free(j);
		return -1;
	}
	j->signed_part = token;
	j->signed_len = (size_t)(dot2 - token);
	return 0;
}

static const char *jstr(const cJSON *o, const char *name)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

/* The big-endian bytes of a base64url member into a fresh buffer of exactly want bytes (0: any
 * length up to max), or NULL. */
static uint8_t *member_bytes(const cJSON *jwk, const char *name, size_t want, size_t max, size_t *len)
{
	const char *s = jstr(jwk, name);
	size_t slen = s ? strlen(s) : 0;
	uint8_t *out;
	long n;

	if (!slen || slen > max * 4 / 3 + 4)
		return NULL;
	out = malloc(slen * 3 / 4 + 2);
	if (!out)
		return NULL;
	n = base64url_decode(s, slen, out);
	if (n <= 0 || (want && (size_t)n != want)) {
		free(out);
		return NULL;
	}
	*len = (size_t)n;
	return out;
}

static EVP_PKEY *key_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pkey = NULL;

	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static EVP_PKEY *rsa_key(const cJSON *jwk)
{
	size_t nlen = 0, elen = 0;
	uint8_t *n = member_bytes(jwk, "n", 0, RSA_BITS_MAX / 8 + 1, &nlen);
	uint8_t *e = member_bytes(jwk, "e", 0, 8, &elen);
	BIGNUM *bn = n ? BN_bin2bn(n, (int)nlen, NULL) : NULL, *be = e ? BN_bin2bn(e, (int)elen, NULL) : NULL;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY *pkey = NULL;

	if (bn && be && bld && BN_num_bits(bn) >= RSA_BITS_MIN && BN_num_bits(bn) <= RSA_BITS_MAX &&
	    BN_is_odd(be) && BN_num_bits(be) > 1 &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
		pkey = key_from_params("RSA", bld);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	return pkey;
}

static EVP_PKEY *ec_key(const cJSON *jwk)
{
	size_t xlen = 0, ylen = 0;
	const char *crv = jstr(jwk, "crv");
	uint8_t *x = member_bytes(jwk, "x", 32, 32, &xlen), *y = member_bytes(jwk, "y", 32, 32, &ylen);
	uint8_t point[65];
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY *pkey = NULL;

	if (crv && strcmp(crv, "P-256") == 0 && x && y && bld) {
		point[0] = 4;
		memcpy(point + 1, x, 32);
		memcpy(point + 33, y, 32);
		if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
		    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point))
			pkey = key_from_params("EC", bld);
	}
	/* a point off the curve is no key */
	if (pkey) {
		EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
		if (!check || EVP_PKEY_public_check(check) != 1) {
			EVP_PKEY_free(pkey);
			pkey = NULL;
		}
		EVP_PKEY_CTX_free(check);
	}
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return pkey;
}

/* The public key of a JWK for alg ("RS256" or "ES256"), or NULL when it is not such a key. */
static EVP_PKEY *jwk_key(const cJSON *jwk, const char *alg)
{
	const char *kty = jstr(jwk, "kty"), *use = jstr(jwk, "use"), *kalg = jstr(jwk, "alg");

	if (!kty || (use && strcmp(use, "sig") != 0) || (kalg && strcmp(kalg, alg) != 0))
		return NULL;
	if (strcmp(alg, "RS256") == 0 && strcmp(kty, "RSA") == 0)
		return rsa_key(jwk);
	if (strcmp(alg, "ES256") == 0 && strcmp(kty, "EC") == 0)
		return ec_key(jwk);
	return NULL;
}

static const cJSON *jwks_keys(const cJSON *jwks)
{
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(jwks, "keys");

	if (!cJSON_IsArray(keys) || cJSON_GetArraySize(keys) < 1 || cJSON_GetArraySize(keys) > OIDC_JWKS_KEYS_MAX)
		return NULL;
	return keys;
}

int oidc_jwks_has_kid(const cJSON *jwks, const char *kid)
{
	const cJSON *k;

	cJSON_ArrayForEach(k, jwks_keys(jwks)) {
		const char *id = jstr(k, "kid");
		if (!*kid || (id && strcmp(id, kid) == 0))
			return 1;
	}
	return 0;
}

int oidc_jwks_check(const cJSON *jwks, char *err, size_t errlen)
{
	const cJSON *k;

	if (!jwks_keys(jwks)) {
		snprintf(err, errlen, "the JWK Set has no \"keys\" array of 1 to %d keys", OIDC_JWKS_KEYS_MAX);
		return -1;
	}
	cJSON_ArrayForEach(k, jwks_keys(jwks)) {
		EVP_PKEY *p = jwk_key(k, "RS256");
		if (!p)
			p = jwk_key(k, "ES256");
		if (p) {
			EVP_PKEY_free(p);
			return 0;
		}
	}
	snprintf(err, errlen, "the JWK Set has no usable signing key (RSA of %d bits or more, or EC P-256)",
		 RSA_BITS_MIN);
	return -1;
}

/* JWS ES256 signatures are r || s (32 bytes each); OpenSSL verifies DER. */
static uint8_t *es256_der(const uint8_t *sig, long len, size_t *der_len)
{
	ECDSA_SIG *s;
	BIGNUM *r, *sv;
	uint8_t *der = NULL;
	int n;

	if (len != 64 || !(s = ECDSA_SIG_new()))
		return NULL;
	r = BN_bin2bn(sig, 32, NULL);
	sv = BN_bin2bn(sig + 32, 32, NULL);
	if (!r || !sv || !ECDSA_SIG_set0(s, r, sv)) {
		BN_free(r);
		BN_free(sv);
		ECDSA_SIG_free(s);
		return NULL;
	}
	n = i2d_ECDSA_SIG(s, &der);
	ECDSA_SIG_free(s);
	if (n <= 0)
		return NULL;
	*der_len = (size_t)n;
	return der;
}

static int signature_ok(const struct jws *j, EVP_PKEY *key, int es256)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	const uint8_t *sig = j->sig;
	size_t sig_len = (size_t)j->sig_len;
	uint8_t *der = NULL;
	int ok = 0;

	if (es256) {
		der = es256_der(j->sig, j->sig_len, &sig_len);
		sig = der;
	}
	if (md && sig && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1)
		ok = EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)j->signed_part, j->signed_len) == 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	return ok;
}

/* 1 when a key of jwks (the header's kid when it names one) verifies the signature. */
static int verify_signature(const struct jws *j, const cJSON *jwks, char *err, size_t errlen)
{
	const char *alg = jstr(j->header, "alg"), *kid = jstr(j->header, "kid");
	const cJSON *k;
	int tried = 0;

	if (!alg || (strcmp(alg, "RS256") != 0 && strcmp(alg, "ES256") != 0)) {
		snprintf(err, errlen, "the ID token's alg %s is not accepted (RS256 or ES256 only)", alg ? alg : "(none)");
		return 0;
	}
	if (cJSON_GetObjectItemCaseSensitive(j->header, "crit")) {
		snprintf(err, errlen, "the ID token's header has critical extensions");
		return 0;
	}
	cJSON_ArrayForEach(k, jwks_keys(jwks)) {
		const char *id = jstr(k, "kid");
		if (kid && (!id || strcmp(id, kid) != 0))
			continue;
		EVP_PKEY *key = jwk_key(k, alg);
		if (!key)
			continue;
		tried++;
		int ok = signature_ok(j, key, strcmp(alg, "ES256") == 0);
		EVP_PKEY_free(key);
		if (ok)
			return 1;
	}
	if (tried)
		snprintf(err, errlen, "the ID token's signature does not verify");
	else
		snprintf(err, errlen, "the provider's keys hold no %s key%s%s", alg, kid ? " named " : "", kid ? kid : "");
	return 0;
}

/* A NumericDate claim, or -1. */
static double date_claim(const cJSON *claims, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(claims, name);

	return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e11 ? v->valuedouble : -1;
}

static int audience_ok(const cJSON *claims, const char *client_id)
{
	const cJSON *aud = cJSON_GetObjectItemCaseSensitive(claims, "aud"), *a;
	const cJSON *list = cJSON_IsArray(aud) ? aud : NULL;
	const char *azp = jstr(claims, "azp");
	int found = 0, n = 0;

	if (cJSON_IsString(aud))
		return strcmp(aud->valuestring, client_id) == 0 && (!azp || strcmp(azp, client_id) == 0);
	cJSON_ArrayForEach(a, list) {
		n++;
		if (cJSON_IsString(a) && strcmp(a->valuestring, client_id) == 0)
			found = 1;
	}
	/* several audiences: the token must have been issued to us (azp) */
	if (found && (n > 1 || azp))
		return azp && strcmp(azp, client_id) == 0;
	return found;
}

static int claims_ok(const cJSON *claims, const struct oidc_expect *x, char *err, size_t errlen)
{
	const char *iss = jstr(claims, "iss"), *sub = jstr(claims, "sub"), *nonce = jstr(claims, "nonce");
	double exp = date_claim(claims, "exp"), iat = date_claim(claims, "iat");
	double now = (double)x->now;

	if (!iss || strcmp(iss, x->issuer) != 0)
		snprintf(err, errlen, "the ID token's issuer %s is not %s", iss ? iss : "(none)", x->issuer);
	else if (!sub || !*sub || strlen(sub) > 255)
		snprintf(err, errlen, "the ID token names no subject (sub)");
	else if (!audience_ok(claims, x->client_id))
		snprintf(err, errlen, "the ID token was issued for another client than %s", x->client_id);
	else if (exp < 0 || exp + OIDC_LEEWAY_SECONDS <= now)
		snprintf(err, errlen, "the ID token has expired");
	else if (iat < 0 || iat > now + OIDC_LEEWAY_SECONDS)
		snprintf(err, errlen, "the ID token's issue time (iat) is missing or in the future");
	else if (!nonce || !x->nonce || !*x->nonce || !token_equal(nonce, x->nonce))
		snprintf(err, errlen, "the ID token's nonce is not the one of this sign-in");
	else
		return 1;
	return 0;
}

cJSON *oidc_id_token_verify(const char *token, const cJSON *jwks, const struct oidc_expect *expect, char *err,
			    size_t errlen)
{
	struct jws j;
	cJSON *claims;

	if (jws_split(token, &j, err, errlen) < 0)
		return NULL;
	if (!verify_signature(&j, jwks, err, errlen) || !claims_ok(j.claims, expect, err, errlen)) {
		jws_free(&j);
		return NULL;
	}
	claims = j.claims;
	j.claims = NULL;
	jws_free(&j);
	return claims;
}

int oidc_token_kid(const char *token, char *out, size_t outlen)
{
	const char *dot = token ? strchr(token, '.') : NULL;
	cJSON *header;
	const char *kid;

	out[0] = '\0';
	if (!dot || !(header = part_json(token, (size_t)(dot - token))))
		return -1;
	kid = jstr(header, "kid");
	snprintf(out, outlen, "%s", kid ? kid : "");
	cJSON_Delete(header);
	return 0;
}
