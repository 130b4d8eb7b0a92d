/* Opening a tenant's cluster: its row, its token opened in memory only, and a Kubernetes client
 * pinned to the allowed networks. The caller's transaction must be bound to the organisation
 * (db_tenant_begin). One way for the console and the runner alike. */
#ifndef STOWAGE_CLUSTER_H
#define STOWAGE_CLUSTER_H

#include "k8s_client.h"
#include "net_allow.h"
#include "secret_store.h"

#include <libpq-fe.h>

/* timeout_ms 0: the client's default. name_out (may be NULL) receives the cluster's name.
 * NULL with err in words: the cluster does not exist, its token does not open, or the client
 * cannot be made (the URL outside the allowed networks, say). */
struct k8s_client *cluster_open(PGconn *db, long long org_id, const struct secret_keyring *ring,
				const struct net_allow *allow, long long cluster_id, long timeout_ms,
				char *name_out, size_t name_len, char *err, size_t errlen);

#endif
