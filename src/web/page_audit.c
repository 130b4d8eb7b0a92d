/* The audit log: who did what in this organisation, newest first. */
#include "web.h"
#include "db.h"

#include <stdlib.h>

#define AUDIT_PAGE 200

void page_audit(struct request *r)
{
	char err[512];
	PGresult *res = db_exec(r->db,
		"SELECT to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), coalesce(u.email, ''), "
		"a.action, a.target, a.detail::text FROM audit_log a LEFT JOIN users u ON u.id = a.user_id "
		"ORDER BY a.created_at DESC, a.id DESC LIMIT 200", 0, NULL, err, sizeof err);
	cJSON *view, *list;

	if (!res) {
		respond_db_error(r, err);
		return;
	}
	view = cJSON_CreateObject();
	cJSON_AddStringToObject(view, "title", "Audit log");
	cJSON_AddBoolToObject(view, "nav_audit", 1);
	list = cJSON_AddArrayToObject(view, "entries");
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "time", PQgetvalue(res, i, 0));
		cJSON_AddStringToObject(e, "user", PQgetvalue(res, i, 1));
		cJSON_AddStringToObject(e, "action", PQgetvalue(res, i, 2));
		cJSON_AddStringToObject(e, "target", PQgetvalue(res, i, 3));
		cJSON_AddStringToObject(e, "detail", PQgetvalue(res, i, 4));
		cJSON_AddItemToArray(list, e);
	}
	cJSON_AddBoolToObject(view, "truncated", PQntuples(res) == AUDIT_PAGE);
	PQclear(res);
	respond_page(r, 200, "audit", view);
}
