/* Rate limits of the account pages, per address and per client, kept in the database
 * (rate_hit in sql/007_accounts.sql) so that every worker shares them. nginx adds its own
 * per-client limit on sign-in in front. */
#include "web.h"
#include "db.h"
#include "log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Counts one attempt under key: 1 when within limit; 0 when over it (answered 429 in words,
 * the refused attempt counted too); -1 when the database failed (answered). */
static int hit(struct request *r, const char *key, long limit, const char *what, const char *whose)
{
	char err[512], lim[24], msg[300];
	const char *params[] = { key, lim };
	PGresult *res;
	int allowed;

	snprintf(lim, sizeof lim, "%ld", limit);
	res = db_exec(r->db, "SELECT rate_hit($1, $2, interval '1 hour')", 2, params, err, sizeof err);
	if (!res) {
		respond_db_error(r, err);
		return -1;
	}
	allowed = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (allowed)
		return 1;
	snprintf(msg, sizeof msg, "Too many %s %s in the last hour (at most %ld): try again later.", what, whose, limit);
	log_info("rate limit: %s", key);
	respond_error(r, 429, msg);
	r->rollback = 0; /* the refused attempt counts too */
	return 0;
}

int web_rate_limit(struct request *r, const char *action, const char *what, const char *address)
{
	char key[400];
	/* Sign-in attempts are many per person; mails (sign-up, invitation, reset) are few. */
	int signin = strcmp(action, "signin") == 0, rc;
	long per_address = signin ? 10 * r->ctx->rate_per_address : r->ctx->rate_per_address;
	long per_client = signin ? 10 * r->ctx->rate_per_client : r->ctx->rate_per_client;

	if (address && *address) {
		int n = snprintf(key, sizeof key, "%s:addr:", action);
		for (const char *p = address; *p && n < (int)sizeof key - 1; p++)
			key[n++] = (char)tolower((unsigned char)*p);
		key[n < (int)sizeof key ? n : (int)sizeof key - 1] = '\0';
		if ((rc = hit(r, key, per_address, what, "for this address")) <= 0)
			return rc;
	}
	snprintf(key, sizeof key, "%s:client:%s", action, r->remote_addr ? r->remote_addr : "?");
	return hit(r, key, per_client, what, "from your network address");
}

int web_org_rate_limit(struct request *r)
{
	char key[64];

	snprintf(key, sizeof key, "probe:org:%lld", r->session.org_id);
	return hit(r, key, r->ctx->rate_per_org, "connection tests and dry runs", "for your organisation");
}

int web_signin_slowed(struct request *r, const char *email)
{
	const char *params[] = { email };
	char err[512], msg[300];
	PGresult *res;
	int seconds;

	/* From the tenth wrong password within 15 minutes, the address is slowed down: even the
	 * right password waits its turn, so guessing goes on at one try every 30 seconds. */
	res = db_exec(r->db, "SELECT signin_wait($1)", 1, params, err, sizeof err);
	if (!res) {
		respond_db_error(r, err);
		return -1;
	}
	seconds = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (seconds <= 0)
		return 0;
	snprintf(msg, sizeof msg, "Too many wrong passwords for this address: sign-in is slowed down to one try "
		 "every 30 seconds. Try again in %d seconds, or reset the password.", seconds);
	log_info("sign-in slowed down for an address, from %s", r->remote_addr ? r->remote_addr : "?");
	respond_error(r, 429, msg);
	r->rollback = 0; /* the attempt counts */
	return 1;
}

int web_signin_failed(struct request *r, const char *email)
{
	const char *params[] = { email };
	char err[512];

	log_info("wrong password from %s", r->remote_addr ? r->remote_addr : "?");
	if (db_run(r->db, "SELECT signin_failed($1)", 1, params, err, sizeof err) < 0) {
		respond_db_error(r, err);
		return -1;
	}
	return 0;
}
