#include "db.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char db_sqlstate[6];
#define DB_ERROR_PREFIX "database: "	/* what db_set_error puts before the message */

/* The statements prepared on the one connection that asked (db_prepare_statements; a web
 * worker's, single-threaded): parsed, analysed and planned once per connection instead of once
 * per run. The names are the index: s0, s1, ... A reconnect (another backend) starts afresh. */
#define DB_PREPARED_MAX 256
static struct {
	PGconn *conn;
	int backend_pid;
	int stale;			/* a plan's result type changed under a migration: DEALLOCATE ALL */
	size_t count;
	char *sql[DB_PREPARED_MAX];
} prepared;

/* The connection whose READ ONLY transaction's COMMIT was sent and not yet answered. */
static PGconn *commit_unread;

static void db_set_error(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	snprintf(db_sqlstate, sizeof db_sqlstate, "%s", state ? state : "XX000");
	if (!msg)
		msg = PQerrorMessage(conn);
	snprintf(err, errlen, DB_ERROR_PREFIX "%s", msg);
	err[strcspn(err, "\n")] = '\0';
}

const char *db_last_sqlstate(void)
{
	return db_sqlstate;
}

const char *db_quota_refusal(const char *err)
{
	size_t n = strlen(DB_ERROR_PREFIX);

	return strcmp(db_sqlstate, "SWQ01") == 0 && strncmp(err, DB_ERROR_PREFIX, n) == 0 ? err + n : NULL;
}

/* Reads the answer to a COMMIT sent by db_commit_read_only: it came while the caller answered its
 * client, so this waits for nothing. */
static void commit_settle(PGconn *conn)
{
	PGresult *res;

	if (conn != commit_unread)
		return;
	commit_unread = NULL;
	PQconsumeInput(conn); /* one read of what is there: PQgetResult then has no need to poll first */
	while ((res = PQgetResult(conn))) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			log_warn("database: COMMIT of a read-only transaction: %s", PQresultErrorMessage(res));
		PQclear(res);
	}
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
	commit_settle(conn);
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

static void prepared_forget(void)
{
	for (size_t i = 0; i < prepared.count; i++)
		free(prepared.sql[i]);
	prepared.count = 0;
	prepared.stale = 0;
}

void db_prepare_statements(PGconn *conn)
{
	prepared_forget();
	prepared.conn = conn;
	prepared.backend_pid = PQbackendPID(conn);
}

/* The name sql is prepared under on conn (preparing it the first time), or NULL to run it
 * unprepared (another connection, a full list) or, with *failed set, the refused PREPARE. */
static const char *prepared_name(PGconn *conn, const char *sql, int nparams, char name[16], PGresult **failed)
{
	PGresult *res;
	size_t i;

	if (conn != prepared.conn)
		return NULL;
	if (PQbackendPID(conn) != prepared.backend_pid) {
		prepared_forget();
		prepared.backend_pid = PQbackendPID(conn);
	}
	if (prepared.stale) {
		if (PQtransactionStatus(conn) != PQTRANS_IDLE)
			return NULL;
		PQclear(PQexec(conn, "DEALLOCATE ALL"));
		prepared_forget();
	}
	for (i = 0; i < prepared.count && strcmp(prepared.sql[i], sql) != 0; i++)
		;
	snprintf(name, 16, "s%zu", i);
	if (i < prepared.count)
		return name;
	if (i == DB_PREPARED_MAX || PQtransactionStatus(conn) == PQTRANS_INERROR)
		return NULL;
	res = PQprepare(conn, name, sql, nparams, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		*failed = res;
		return NULL;
	}
	PQclear(res);
	prepared.sql[prepared.count++] = strdup(sql);
	if (!prepared.sql[i]) {
		prepared.count--;
		prepared.stale = 1;
		return NULL;
	}
	return name;
}

static void note_failure(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
	db_set_error(conn, res, err, errlen);
	/* "cached plan must not change result type": a migration changed a prepared query's rows */
	if (conn == prepared.conn && strcmp(db_sqlstate, "0A000") == 0)
		prepared.stale = 1;
}

/* The result of a db_begin_exec's then_sql, kept for the db_exec of the same statement in the
 * same transaction; dropped when the transaction ends. */
static struct {
	PGconn *conn;
	const char *sql;
	PGresult *res;
} kept;

static void kept_drop(void)
{
	PQclear(kept.res);
	kept.res = NULL;
}

PGresult *db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
		  char *err, size_t errlen)
{
	char buf[16];
	PGresult *res = NULL;
	const char *name;

	commit_settle(conn);
	if (conn == kept.conn && kept.res && nparams == 0 && strcmp(sql, kept.sql) == 0) {
		res = kept.res;
		kept.res = NULL;
		db_sqlstate[0] = '\0';
		return res;
	}
	name = prepared_name(conn, sql, nparams, buf, &res);
	if (name)
		res = PQexecPrepared(conn, name, nparams, params, NULL, NULL, 0);
	else if (!res)
		res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
		db_sqlstate[0] = '\0';
		return res;
	}
	note_failure(conn, res, err, errlen);
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

/* BEGIN, sql and then_sql in one round trip (libpq's pipeline mode): the results come as
 * BEGIN's, NULL, sql's, NULL, then_sql's, NULL, then the sync's. */
PGresult *db_begin_exec(PGconn *conn, int read_only, const char *sql, int nparams, const char *const *params,
			const char *then_sql, char *err, size_t errlen)
{
	PGresult *res = NULL, *out = NULL, *then = NULL;
	int failed = 0, failed_at = 0, ends = 0, last = then_sql ? 2 : 1;
	char buf[16], then_buf[16], begin_buf[16];
	const char *begin = read_only ? "BEGIN READ ONLY" : "BEGIN", *name, *then_name = NULL, *begin_name;

	commit_settle(conn);
	kept_drop();
	/* BEGIN prepared too: PostgreSQL parses it once per connection instead of per request */
	begin_name = prepared_name(conn, begin, 0, begin_buf, &res);
	name = res ? NULL : prepared_name(conn, sql, nparams, buf, &res);
	if (!res && then_sql)
		then_name = prepared_name(conn, then_sql, 0, then_buf, &res);
	if (res) {
		note_failure(conn, res, err, errlen);
		PQclear(res);
		return NULL;
	}
	if (!PQenterPipelineMode(conn) ||
	    !(begin_name ? PQsendQueryPrepared(conn, begin_name, 0, NULL, NULL, NULL, 0)
			 : PQsendQueryParams(conn, begin, 0, NULL, NULL, NULL, NULL, 0)) ||
	    !(name ? PQsendQueryPrepared(conn, name, nparams, params, NULL, NULL, 0)
		   : PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)) ||
	    (then_sql && !(then_name ? PQsendQueryPrepared(conn, then_name, 0, NULL, NULL, NULL, 0)
				     : PQsendQueryParams(conn, then_sql, 0, NULL, NULL, NULL, NULL, 0))) ||
	    !PQpipelineSync(conn)) {
		db_set_error(conn, NULL, err, errlen);
		failed = 1;
	}
	while (PQpipelineStatus(conn) != PQ_PIPELINE_OFF && PQstatus(conn) == CONNECTION_OK && ends <= last + 1) {
		res = PQgetResult(conn);
		if (!res) {
			ends++;
			continue;
		}
		ExecStatusType st = PQresultStatus(res);
		if (st == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			break;
		}
		if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
			if (ends == 1 && !out)
				out = res;
			else if (ends == 2 && !then)
				then = res;
			else
				PQclear(res);
			continue;
		}
		if (!failed) {
			note_failure(conn, res, err, errlen);
			failed_at = ends;
		}
		failed = 1;
		PQclear(res);
	}
	if (!PQexitPipelineMode(conn) && !failed) {
		db_set_error(conn, NULL, err, errlen);
		failed = 1;
	}
	if (failed || !out || (then_sql && !then)) {
		PQclear(out);
		PQclear(then);
		db_rollback(conn);
		/* then_sql alone failed: the request is opened again without it (its db_exec reports) */
		if (failed && failed_at == 2) {
			log_warn("%s (a request's first query, sent with its BEGIN; opened again without it)", err);
			return db_begin_exec(conn, read_only, sql, nparams, params, NULL, err, errlen);
		}
		if (!failed)
			snprintf(err, errlen, "database: no answer to %s", sql);
		return NULL;
	}
	if (then) {
		kept.conn = conn;
		kept.sql = then_sql;
		kept.res = then;
	}
	db_sqlstate[0] = '\0';
	return out;
}

int db_tenant_begin(PGconn *conn, long long org_id, long long user_id, char *err, size_t errlen)
{
	char org[24], user[24];
	const char *params[] = { org, user };
	PGresult *res;

	snprintf(org, sizeof org, "%lld", org_id);
	snprintf(user, sizeof user, "%lld", user_id);
	if (org_id <= 0)
		params[0] = "";
	if (user_id <= 0)
		params[1] = "";
	res = db_begin_exec(conn, 0, DB_TENANT_BIND_SQL, 2, params, NULL, err, errlen);
	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

int db_commit(PGconn *conn, char *err, size_t errlen)
{
	kept_drop();
	return db_run(conn, "COMMIT", 0, NULL, err, errlen);
}

int db_commit_read_only(PGconn *conn, char *err, size_t errlen)
{
	PGresult *res = NULL;
	char buf[16];
	const char *name;

	commit_settle(conn);
	kept_drop();
	name = prepared_name(conn, "COMMIT", 0, buf, &res);
	if (res) {
		note_failure(conn, res, err, errlen);
		PQclear(res);
		return -1;
	}
	if (!(name ? PQsendQueryPrepared(conn, name, 0, NULL, NULL, NULL, 0) : PQsendQuery(conn, "COMMIT"))) {
		db_set_error(conn, NULL, err, errlen);
		return -1;
	}
	commit_unread = conn;
	return 0;
}

void db_rollback(PGconn *conn)
{
	PGresult *res;

	commit_settle(conn);
	kept_drop();
	res = PQexec(conn, "ROLLBACK");

	PQclear(res);
}

/* The type OIDs of the built-in types (pg_type.h is a server header). */
enum { DB_BOOL = 16, DB_INT8 = 20, DB_INT2 = 21, DB_INT4 = 23, DB_OID = 26, DB_FLOAT4 = 700, DB_FLOAT8 = 701,
       DB_NUMERIC = 1700 };

cJSON *db_row_json(const PGresult *res, int i)
{
	cJSON *o = cJSON_CreateObject();

	for (int c = 0; c < PQnfields(res); c++) {
		const char *name = PQfname(res, c), *v = PQgetvalue(res, i, c);
		if (PQgetisnull(res, i, c)) {
			cJSON_AddNullToObject(o, name);
			continue;
		}
		switch (PQftype(res, c)) {
		case DB_BOOL:
			cJSON_AddBoolToObject(o, name, v[0] == 't');
			break;
		case DB_INT8: case DB_INT2: case DB_INT4: case DB_OID: case DB_FLOAT4: case DB_FLOAT8: case DB_NUMERIC:
			cJSON_AddNumberToObject(o, name, strtod(v, NULL));
			break;
		default:
			cJSON_AddStringToObject(o, name, v);
		}
	}
	return o;
}

cJSON *db_rows_json(const PGresult *res)
{
	cJSON *rows = cJSON_CreateArray();

	for (int i = 0; i < PQntuples(res); i++)
		cJSON_AddItemToArray(rows, db_row_json(res, i));
	return rows;
}

int db_exists(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	char err[256];
	PGresult *res = db_exec(conn, sql, nparams, params, err, sizeof err);
	int found = res && PQntuples(res) == 1;

	PQclear(res);
	return found;
}
