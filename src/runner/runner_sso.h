/* Single sign-on's requests to an organisation's OpenID provider (runner_sso.c). */
#ifndef STOWAGE_RUNNER_SSO_H
#define STOWAGE_RUNNER_SSO_H

#include "runner_requests.h"

/* The answers of the sso_discovery and sso_exchange requests ({ok, message, ...}). */
cJSON *runner_sso_discovery(const struct runner_request *q);
cJSON *runner_sso_exchange(const struct runner_request *q);
/* In the answer's transaction: stores the settings a discovery read well, or the JWK Set an
 * exchange fetched again. 1 when done, 0 when nothing was to be done, -1 with err. */
int runner_sso_apply(PGconn *db, const char *kind, const cJSON *params, cJSON *result, char *err, size_t errlen);

#endif
