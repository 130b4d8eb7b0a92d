/* The audit log: who did what in this organisation, newest first. */
#include "web.h"
#include "db.h"


#define AUDIT_PAGE 200

void page_audit(struct request *r)
{
	char err[512];
	PGresult *res = db_exec(r->db,
		"SELECT to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS time, coalesce(u.email, '') AS user, "
		"a.action, a.target, a.detail::text AS detail FROM audit_log a LEFT JOIN users u ON u.id = a.user_id "
		"ORDER BY a.created_at DESC, a.id DESC LIMIT 200", 0, NULL, err, sizeof err);
	cJSON *view;

	if (!res) {
		respond_db_error(r, err);
		return;
	}
	view = cJSON_CreateObject();
	cJSON_AddStringToObject(view, "title", "Audit log");
	cJSON_AddBoolToObject(view, "nav_audit", 1);
	cJSON_AddItemToObject(view, "entries", db_rows_json(res));
	cJSON_AddBoolToObject(view, "truncated", PQntuples(res) == AUDIT_PAGE);
	PQclear(res);
	respond_page(r, 200, "audit", view);
}
