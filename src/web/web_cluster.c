/* A Kubernetes client for one of the tenant's clusters, for pages that read the cluster live
 * (the wizards list namespaces, claims and storage classes). The token is opened in memory
 * only, for the life of the client. */
#include "web.h"
#include "cluster.h"

#define WEB_CLUSTER_TIMEOUT_MS 10000

struct k8s_client *web_cluster_client(struct request *r, long long cluster_id, char *err, size_t errlen)
{
	return cluster_open(r->db, r->session.org_id, &r->ctx->keyring, &r->ctx->allowed_networks, cluster_id,
			    WEB_CLUSTER_TIMEOUT_MS, NULL, 0, err, errlen);
}
