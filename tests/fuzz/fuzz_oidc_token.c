/* libFuzzer target: an ID token and the JWK Set come from a tenant's OpenID provider. The input
 * is "<token>\n<jwks JSON>". */
#include "oidc_token.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[256], kid[64];
	const struct oidc_expect expect = { "https://idp.example", "stowage", "n", 1900000000 };

	memcpy(text, data, size);
	text[size] = '\0';
	char *nl = strchr(text, '\n');
	cJSON *jwks = nl ? cJSON_Parse(nl + 1) : NULL;
	if (nl)
		*nl = '\0';
	oidc_token_kid(text, kid, sizeof kid);
	oidc_jwks_has_kid(jwks, kid);
	oidc_jwks_check(jwks, err, sizeof err);
	cJSON_Delete(oidc_id_token_verify(text, jwks, &expect, err, sizeof err));
	cJSON_Delete(jwks);
	free(text);
	return 0;
}
