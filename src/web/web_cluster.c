/* A Kubernetes client for one of the tenant's clusters, for pages that read the cluster live
 * (the wizards list namespaces, claims and storage classes). The token is opened in memory
 * only, for the life of the client. */
#include "web.h"
#include "db.h"
#include "k8s_client.h"

#include <stdio.h>
#include <string.h>

#define WEB_CLUSTER_TIMEOUT_MS 10000

struct k8s_client *web_cluster_client(struct request *r, long long cluster_id, char *err, size_t errlen)
{
	char sid[24], dberr[512];
	const char *params[] = { sid };
	struct k8s_client *c = NULL;
	PGresult *res;
	char *token;

	snprintf(sid, sizeof sid, "%lld", cluster_id);
	res = db_exec(r->db, "SELECT name, api_url, ca_pem, token_enc FROM clusters WHERE id = $1", 1, params,
		      dberr, sizeof dberr);
	if (!res || PQntuples(res) != 1) {
		snprintf(err, errlen, "There is no cluster %lld.", cluster_id);
		PQclear(res);
		return NULL;
	}
	token = secret_open(&r->ctx->keyring, r->session.org_id, "cluster.token", PQgetvalue(res, 0, 3));
	if (!token) {
		snprintf(err, errlen, "Cluster %s: the stored token cannot be decrypted with the current master key.",
			 PQgetvalue(res, 0, 0));
	} else {
		struct k8s_cluster_conf conf = {
			.api_url = PQgetvalue(res, 0, 1), .token = token,
			.ca_pem = PQgetisnull(res, 0, 2) || !*PQgetvalue(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2),
			.timeout_ms = WEB_CLUSTER_TIMEOUT_MS,
		};
		char why[400];
		c = k8s_client_new(&conf, &r->ctx->allowed_networks, why, sizeof why);
		if (!c)
			snprintf(err, errlen, "Cluster %s: %s", PQgetvalue(res, 0, 0), why);
	}
	secret_free(token);
	PQclear(res);
	return c;
}
