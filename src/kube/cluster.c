#include "cluster.h"
#include "db.h"

#include <stdio.h>

struct k8s_client *cluster_open(PGconn *db, long long org_id, const struct secret_keyring *ring,
				const struct net_allow *allow, long long cluster_id, long timeout_ms,
				char *name_out, size_t name_len, char *err, size_t errlen)
{
	char sid[24], why[512];
	const char *params[] = { sid };
	struct k8s_client *c = NULL;
	PGresult *res;
	char *token;

	snprintf(sid, sizeof sid, "%lld", cluster_id);
	res = db_exec(db, "SELECT name, api_url, ca_pem, token_enc FROM clusters WHERE id = $1", 1, params,
		      why, sizeof why);
	if (!res || PQntuples(res) != 1) {
		snprintf(err, errlen, "cluster %lld does not exist", cluster_id);
		PQclear(res);
		return NULL;
	}
	const char *name = PQgetvalue(res, 0, 0);
	if (name_out)
		snprintf(name_out, name_len, "%s", name);
	token = secret_open(ring, org_id, "cluster.token", PQgetvalue(res, 0, 3));
	if (!token) {
		snprintf(err, errlen, "cluster %s: the stored token cannot be decrypted with the current master key", name);
	} else {
		struct k8s_cluster_conf conf = {
			.api_url = PQgetvalue(res, 0, 1), .token = token,
			.ca_pem = PQgetisnull(res, 0, 2) || !*PQgetvalue(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2),
			.timeout_ms = timeout_ms,
		};
		c = k8s_client_new(&conf, allow, why, sizeof why);
		if (!c)
			snprintf(err, errlen, "cluster %s: %s", name, why);
	}
	secret_free(token);
	PQclear(res);
	return c;
}
