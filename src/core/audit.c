#include "audit.h"
#include "db.h"

#include <stdlib.h>

int audit_record(PGconn *conn, const char *action, const char *target, const cJSON *detail,
		 char *err, size_t errlen)
{
	char *json = detail ? cJSON_PrintUnformatted(detail) : NULL;
	const char *params[] = { action, target ? target : "", json ? json : "{}" };
	int rc = db_run(conn, "INSERT INTO audit_log (action, target, detail) VALUES ($1, $2, $3::jsonb)",
			3, params, err, errlen);

	free(json);
	return rc;
}
