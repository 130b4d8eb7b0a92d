#include "db.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

static char db_sqlstate[6];

static void db_set_error(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	snprintf(db_sqlstate, sizeof db_sqlstate, "%s", state ? state : "XX000");
	if (!msg)
		msg = PQerrorMessage(conn);
	snprintf(err, errlen, "database: %s", msg);
	err[strcspn(err, "\n")] = '\0';
}

const char *db_last_sqlstate(void)
{
	return db_sqlstate;
}

PGconn *db_connect(const char *conninfo, const char *application_name, char *err, size_t errlen)
{
	const char *keys[] = { "dbname", "application_name", "options", NULL };
	const char *vals[] = { conninfo, application_name, "-c search_path=stowage -c client_min_messages=warning", NULL };
	PGconn *conn = PQconnectdbParams(keys, vals, 1);

	if (!conn || PQstatus(conn) != CONNECTION_OK) {
		snprintf(err, errlen, "database: %s", conn ? PQerrorMessage(conn) : "out of memory");
		err[strcspn(err, "\n")] = '\0';
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

int db_ensure(PGconn *conn, char *err, size_t errlen)
{
	if (PQstatus(conn) == CONNECTION_OK)
		return 0;
	PQreset(conn);
	if (PQstatus(conn) == CONNECTION_OK) {
		log_warn("database connection re-established");
		return 0;
	}
	snprintf(err, errlen, "database: %s", PQerrorMessage(conn));
	err[strcspn(err, "\n")] = '\0';
	return -1;
}

PGresult *db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
		  char *err, size_t errlen)
{
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
		db_sqlstate[0] = '\0';
		return res;
	}
	db_set_error(conn, res, err, errlen);
	PQclear(res);
	return NULL;
}

int db_run(PGconn *conn, const char *sql, int nparams, const char *const *params,
	   char *err, size_t errlen)
{
	PGresult *res = db_exec(conn, sql, nparams, params, err, errlen);

	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

int db_tenant_begin(PGconn *conn, long long org_id, long long user_id, char *err, size_t errlen)
{
	char org[24], user[24];
	const char *params[] = { org, user };

	if (db_run(conn, "BEGIN", 0, NULL, err, errlen) < 0)
		return -1;
	snprintf(org, sizeof org, "%lld", org_id);
	snprintf(user, sizeof user, "%lld", user_id);
	if (org_id <= 0)
		params[0] = "";
	if (user_id <= 0)
		params[1] = "";
	if (db_run(conn, "SELECT set_config('app.org_id', $1, true), set_config('app.user_id', $2, true)",
		   2, params, err, errlen) < 0) {
		db_rollback(conn);
		return -1;
	}
	return 0;
}

int db_commit(PGconn *conn, char *err, size_t errlen)
{
	return db_run(conn, "COMMIT", 0, NULL, err, errlen);
}

void db_rollback(PGconn *conn)
{
	PGresult *res = PQexec(conn, "ROLLBACK");

	PQclear(res);
}
