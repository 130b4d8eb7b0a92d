/* Webhooks: a JSON POST to a tenant's URL, signed so that the receiver knows it comes from us
 * and is fresh (docs/notifications.md):
 *
 *   X-Stowage-Timestamp: <unix seconds>
 *   X-Stowage-Signature: sha256=<hex of HMAC-SHA256(secret, "<timestamp>.<body>")>
 *
 * The URL passes the same network checks as a cluster's (net_allow) and the connection is pinned
 * to the addresses checked; no redirect is followed, no proxy used, the reply is not read. */
#ifndef STOWAGE_WEBHOOK_H
#define STOWAGE_WEBHOOK_H

#include <stddef.h>

struct net_allow;

#define WEBHOOK_SIGNATURE_LEN (7 + 64) /* "sha256=" and 32 bytes in hex */
#define WEBHOOK_SECRET_PREFIX "whsec_"

/* out = "sha256=<hex>" of HMAC-SHA256(secret, timestamp "." body). */
void webhook_sign(const char *secret, const char *timestamp, const char *body, size_t len,
		  char out[WEBHOOK_SIGNATURE_LEN + 1]);

/* POSTs body to url, signed with secret at time now. Returns the HTTP status (2xx: delivered), or
 * -1 with err when the URL is refused or no answer came (connection, TLS, timeout). */
long webhook_post(const struct net_allow *allow, const char *url, const char *secret, const char *body, long now,
		  long timeout_ms, char *err, size_t errlen);

#endif
