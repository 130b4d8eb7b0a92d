/* The runner's requests to a tenant's OpenID provider: its discovery document, its JWK Set, and
 * the code-for-token exchange. Each URL passes the network allow rules (net_allow) and is pinned
 * to the addresses checked; no redirect is followed; replies are capped and must be JSON
 * objects. Never called by a web worker. */
#ifndef STOWAGE_OIDC_FETCH_H
#define STOWAGE_OIDC_FETCH_H

#include "net_allow.h"

#include <cjson/cJSON.h>
#include <stddef.h>

#define OIDC_FETCH_TIMEOUT_MS 10000
#define OIDC_REPLY_MAX (256 * 1024)

/* GET url, or POST form (application/x-www-form-urlencoded) when form is not NULL, with the
 * Authorization header's value authorization when not NULL ("Basic ...", "Bearer ..."). The reply's JSON object (caller frees)
 * and its status in *status; NULL with err when there is none (refused address, connection,
 * timeout, too long, not JSON). A non-2xx status with a JSON body is returned as such. */
cJSON *oidc_fetch_json(const struct net_allow *allow, const char *url, const char *form, const char *authorization,
		       long *status, char *err, size_t errlen);
/* 0 when url is an absolute http(s) URL without user info or fragment, at most 2048 bytes; else
 * -1 with err naming what. */
int oidc_url_check(const char *url, char *err, size_t errlen);

/* "Basic <base64 of id:secret>" (both halves form-urlencoded first, RFC 6749 2.3.1), malloc'd. */
char *oidc_basic_auth(const char *client_id, const char *client_secret);

#endif
