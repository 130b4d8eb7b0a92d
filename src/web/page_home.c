/* The home page: a dashboard of where the organisation stands (issue 15). Counts of clusters,
 * protected namespaces, plans and restorable backups; the last 24 hours of jobs by state with
 * the failures first, each linking to its job; the next scheduled runs; storage per repository.
 * A new organisation sees the four steps instead. Everything from the database. */
#include "web.h"
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_rows(struct request *r, cJSON *view, const char *key, const char *sql, const char *const *cols)
{
	char err[256];
	PGresult *res = db_exec(r->db, sql, 0, NULL, err, sizeof err);
	cJSON *list = cJSON_AddArrayToObject(view, key);

	for (int i = 0; res && i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject();
		for (int c = 0; cols[c]; c++)
			cJSON_AddStringToObject(o, cols[c], PQgetvalue(res, i, c));
		cJSON_AddItemToArray(list, o);
	}
	PQclear(res);
}

void page_home(struct request *r)
{
	static const char *const count_cols[] = { "clusters", "namespaces", "backup_plans", "restore_plans",
						  "migrations", "backups", "damaged", "repositories", NULL };
	static const char *const state_cols[] = { "state", "count", NULL };
	static const char *const failure_cols[] = { "id", "kind", "state", "finished_at", "error", "what", NULL };
	static const char *const next_cols[] = { "id", "name", "next_run_at", "namespaces", NULL };
	static const char *const repo_cols[] = { "id", "name", "backups", "stored", "last_verified_at", NULL };
	cJSON *view = cJSON_CreateObject(), *counts;
	char err[512];
	PGresult *res;

	cJSON_AddStringToObject(view, "title", "Overview");
	cJSON_AddBoolToObject(view, "nav_home", 1);
	res = db_exec(r->db, "SELECT (SELECT count(*) FROM clusters), "
		      "(SELECT count(DISTINCT (p.cluster_id, n)) FROM backup_plans p, unnest(p.namespaces) n), "
		      "(SELECT count(*) FROM backup_plans), (SELECT count(*) FROM restore_plans), "
		      "(SELECT count(*) FROM migration_plans), "
		      "(SELECT count(*) FROM backups WHERE state IN ('completed', 'partially_failed')), "
		      "(SELECT count(*) FROM backups WHERE verify_state = 'damaged'), (SELECT count(*) FROM repositories)",
		      0, NULL, err, sizeof err);
	if (!res) {
		cJSON_Delete(view);
		respond_db_error(r, err);
		return;
	}
	counts = cJSON_AddObjectToObject(view, "counts");
	for (int c = 0; count_cols[c]; c++)
		cJSON_AddNumberToObject(counts, count_cols[c], atof(PQgetvalue(res, 0, c)));
	int empty = atol(PQgetvalue(res, 0, 0)) == 0 && atol(PQgetvalue(res, 0, 7)) == 0;
	PQclear(res);
	cJSON_AddBoolToObject(view, "getting_started", empty);
	add_rows(r, view, "jobs_24h", "SELECT state, count(*) FROM jobs WHERE queued_at > now() - interval '24 hours' "
		 "GROUP BY state ORDER BY state IN ('failed', 'partially_failed') DESC, count(*) DESC", state_cols);
	add_rows(r, view, "failures", "SELECT j.id, j.kind, j.state, "
		 "coalesce(to_char(j.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), ''), left(j.error, 300), "
		 "coalesce(bp.name, rp.name, mp.name, b.name, '') FROM jobs j "
		 "LEFT JOIN backup_plans bp ON bp.id = j.backup_plan_id LEFT JOIN restore_plans rp ON rp.id = j.restore_plan_id "
		 "LEFT JOIN migration_plans mp ON mp.id = j.migration_plan_id LEFT JOIN backups b ON b.id = j.backup_id "
		 "WHERE j.queued_at > now() - interval '24 hours' AND j.state IN ('failed', 'partially_failed') "
		 "ORDER BY j.finished_at DESC NULLS LAST, j.id DESC LIMIT 20", failure_cols);
	add_rows(r, view, "next_runs", "SELECT id, name, to_char(next_run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), "
		 "array_to_string(namespaces, ', ') FROM backup_plans WHERE schedule_kind <> 'manual' AND next_run_at IS NOT NULL "
		 "ORDER BY next_run_at LIMIT 10", next_cols);
	add_rows(r, view, "storage", "SELECT r.id, r.name, count(b.id) FILTER (WHERE b.state IN ('completed', 'partially_failed')), "
		 "pg_size_pretty(coalesce(sum(b.bytes_new), 0)), "
		 "coalesce(to_char(r.last_verified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), 'never') "
		 "FROM repositories r LEFT JOIN backups b ON b.repository_id = r.id GROUP BY r.id ORDER BY r.name", repo_cols);
	cJSON_AddBoolToObject(view, "has_failures", cJSON_GetArraySize(cJSON_GetObjectItem(view, "failures")) > 0);
	respond_page(r, 200, "home", view);
}
