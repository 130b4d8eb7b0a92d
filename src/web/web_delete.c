/* Deleting one of the tenant's rows from its page: the one way every "Delete" button works
 * (row by the route's id, under row-level security; audited; a row still in use is refused). */
#include "web.h"
#include "audit.h"
#include "db.h"

#include <stdio.h>
#include <string.h>

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
