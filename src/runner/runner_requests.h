/* The runner's fast lane: requests the web workers leave in runner_requests (a probe, reads of
 * a cluster, a dry run), answered by threads that never wait behind a job. */
#ifndef STOWAGE_RUNNER_REQUESTS_H
#define STOWAGE_RUNNER_REQUESTS_H

#include "job.h"

struct runner_lane {
	const struct runner_context *ctx;
	const char *database_url;
	long org_limit;		/* requests of one organisation answered at once, over every runner */
};

/* One request being answered: its organisation's networks, its parameters. */
struct runner_request {
	const struct runner_context *ctx;
	PGconn *db;
	long long id;
	long long org_id;
	const struct net_allow *allow;
	cJSON *params;
};

/* The lane's thread: claims and answers requests until the process ends. */
void *runner_lane_loop(void *arg);

/* base, plus the ranges the operator opted back in for org_id (org_network_opt_ins); runs its own
 * short transaction on db. 0, or -1 with err. */
int runner_org_networks(PGconn *db, long long org_id, const struct net_allow *base, struct net_allow *out,
			char *err, size_t errlen);

#endif
