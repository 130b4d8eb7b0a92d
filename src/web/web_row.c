/* One of the tenant's rows by the route's id, under row-level security: looked up (web_row, the
 * one way a page answers 404 for a row it does not find) or deleted (respond_delete, the one way
 * every "Delete" button works: audited, a row still in use refused). */
#include "web.h"
#include "audit.h"
#include "db.h"

#include <stdio.h>
#include <string.h>

PGresult *web_row(struct request *r, const char *query, long long id, const char *noun)
{
	char sid[24], err[512], msg[128];
	const char *params[] = { sid };
	PGresult *res;

	snprintf(sid, sizeof sid, "%lld", id);
	res = id > 0 ? db_exec(r->db, query, 1, params, err, sizeof err) : NULL;
	if (id > 0 && !res) {
		respond_db_error(r, err);
		return NULL;
	}
	if (!res || PQntuples(res) != 1) {
		PQclear(res);
		snprintf(msg, sizeof msg, "There is no such %s.", noun);
		respond_error(r, 404, msg);
		return NULL;
	}
	return res;
}

void respond_delete(struct request *r, const struct delete_action *a)
{
	long long id = request_param_id(r, "id");
	char sid[24], err[512], msg[300];
	const char *params[] = { sid };
	PGresult *res;

	snprintf(sid, sizeof sid, "%lld", id);
	res = id ? db_exec(r->db, a->sql, 1, params, err, sizeof err) : NULL;
	if (!res && strcmp(db_last_sqlstate(), "23503") == 0) {
		respond_error(r, 409, a->in_use);
		return;
	}
	if (!res || PQntuples(res) != 1) {
		PQclear(res);
		respond_error(r, 404, a->not_found);
		return;
	}
	if (audit_record(r->db, a->audit_action, PQgetvalue(res, 0, 0), NULL, err, sizeof err) < 0) {
		PQclear(res);
		respond_db_error(r, err);
		return;
	}
	snprintf(msg, sizeof msg, a->done, PQgetvalue(res, 0, 0));
	PQclear(res);
	response_flash(r, msg);
	respond_redirect(r, a->then);
}
