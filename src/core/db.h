/* PostgreSQL access: connecting with a pinned search_path, tenant transactions, and one way to
 * run a parameterised statement. There is no function that builds SQL from values. */
#ifndef STOWAGE_DB_H
#define STOWAGE_DB_H

#include <stddef.h>
#include <cjson/cJSON.h>
#include <libpq-fe.h>

PGconn *db_connect(const char *conninfo, const char *application_name, char *err, size_t errlen);
/* From now on every statement run on conn (one connection per process, used by one thread) is
 * prepared the first time and only executed after: parsed and planned once per connection. */
void db_prepare_statements(PGconn *conn);
/* Reconnects when the connection broke; 0 when usable. */
int db_ensure(PGconn *conn, char *err, size_t errlen);

/* Runs one statement with text parameters ($1..$n; NULL is SQL NULL). Returns the result on
 * success (caller PQclear()s it), or NULL with the server's message in err. */
PGresult *db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
		  char *err, size_t errlen);
/* Same, for statements whose result is not needed. 0 or -1. */
int db_run(PGconn *conn, const char *sql, int nparams, const char *const *params,
	   char *err, size_t errlen);
/* The SQLSTATE of the last failed db_exec/db_run in this process ("23505" for a unique
 * violation), "" when it succeeded. */
const char *db_last_sqlstate(void);
/* When the last failed statement was refused by an organisation's quota (SQLSTATE SWQ01,
 * sql/031), the database's sentence naming the bound, taken from err; else NULL. */
const char *db_quota_refusal(const char *err);

/* Binds the transaction it runs in to organisation $1 and user $2 ("" for none); row-level
 * security reads them. */
#define DB_TENANT_BIND_SQL "SELECT set_config('app.org_id', $1, true), set_config('app.user_id', $2, true)"
/* BEGIN, then bind the transaction to an organisation and user (row-level security reads them).
 * org_id 0 means "no tenant" (sign-up, sign-in). */
int db_tenant_begin(PGconn *conn, long long org_id, long long user_id, char *err, size_t errlen);
/* BEGIN (READ ONLY when read_only: PostgreSQL then refuses any write) and one statement in a
 * single round trip: the statement's result (caller PQclear()s it) with the transaction left
 * open, or NULL with the message in err and the transaction rolled back. With then_sql (a
 * statement without parameters, NULL for none) it goes in the same round trip too, and its
 * result answers the first db_exec of then_sql in this transaction (a page's query sent before
 * the page asks; if it fails, the transaction is opened again without it). */
PGresult *db_begin_exec(PGconn *conn, int read_only, const char *sql, int nparams, const char *const *params,
			const char *then_sql, char *err, size_t errlen);
int db_commit(PGconn *conn, char *err, size_t errlen);
/* Ends a READ ONLY transaction without waiting for the answer: COMMIT is sent now and its answer
 * read by the next call on conn (a failure is logged; a read-only transaction has nothing to lose).
 * 0, or -1 when it could not be sent. */
int db_commit_read_only(PGconn *conn, char *err, size_t errlen);
void db_rollback(PGconn *conn);

/* Row i of res as a JSON object keyed by its columns' names (name them with AS in the query):
 * SQL NULL is null, boolean true or false, integer and numeric types numbers, anything else a
 * string. The one way a page turns rows into its view, never by column position. */
cJSON *db_row_json(const PGresult *res, int i);
/* Every row of res, as an array of db_row_json objects. */
cJSON *db_rows_json(const PGresult *res);

/* 1 when the query answers exactly one row (a tenant's row of that id, in the caller's tenant
 * transaction); 0 otherwise, a failed query included. */
int db_exists(PGconn *conn, const char *sql, int nparams, const char *const *params);

#endif
