/* OpenID Connect ID tokens: a compact JWS from a tenant's provider, verified with OpenSSL
 * against the provider's JWK Set (RS256 and ES256 only: "none", HMAC and every other alg are
 * refused), then its issuer, audience, expiry and nonce. Everything here is untrusted input. */
#ifndef STOWAGE_OIDC_TOKEN_H
#define STOWAGE_OIDC_TOKEN_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <time.h>

#define OIDC_TOKEN_MAX 16384
#define OIDC_JWKS_KEYS_MAX 32
#define OIDC_LEEWAY_SECONDS 60

struct oidc_expect {
	const char *issuer;	/* exactly the discovery document's issuer */
	const char *client_id;	/* the organisation's client: in aud, and azp when aud has several */
	const char *nonce;	/* the one sent with this sign-in */
	time_t now;
};

/* The token's claims (caller frees) when its signature verifies with a key of jwks (a JWK Set:
 * {"keys": [...]}) and its claims match expect; else NULL with the reason in err. */
cJSON *oidc_id_token_verify(const char *token, const cJSON *jwks, const struct oidc_expect *expect, char *err,
			    size_t errlen);
/* The kid of the token's header into out ("" when it names none): 0, or -1 when the header does
 * not parse. The runner fetches the JWK Set again when its cached copy lacks the kid. */
int oidc_token_kid(const char *token, char *out, size_t outlen);
/* 1 when jwks holds a key named kid (any key when kid is ""). */
int oidc_jwks_has_kid(const cJSON *jwks, const char *kid);
/* 0 when text is a JWK Set with 1 to OIDC_JWKS_KEYS_MAX keys of which at least one is usable
 * (RSA of 2048 bits or more, or EC P-256); else -1 with err. */
int oidc_jwks_check(const cJSON *jwks, char *err, size_t errlen);

#endif
