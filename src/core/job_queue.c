#include "job_queue.h"
#include "db.h"

#include <stdio.h>
#include <stdlib.h>

/* An id as a parameter: NULL (SQL NULL) for 0. */
static const char *id_param(long long id, char *buf, size_t len)
{
	if (id <= 0)
		return NULL;
	snprintf(buf, len, "%lld", id);
	return buf;
}

long long job_enqueue(PGconn *db, const struct job_spec *s, char *err, size_t errlen)
{
	char ids[6][24];
	const char *params[] = {
		s->kind, s->trigger ? s->trigger : "manual",
		id_param(s->backup_plan_id, ids[0], sizeof ids[0]), id_param(s->restore_plan_id, ids[1], sizeof ids[1]),
		id_param(s->migration_plan_id, ids[2], sizeof ids[2]), id_param(s->backup_id, ids[3], sizeof ids[3]),
		id_param(s->cluster_id, ids[4], sizeof ids[4]), id_param(s->repository_id, ids[5], sizeof ids[5]),
		s->scheduled_for, s->input,
	};
	/* ON CONFLICT without a target: any of the partial unique indexes that keep one live job
	 * (sql/003, 013, 022) turns a second ask into nothing. */
	PGresult *res = db_exec(db, "INSERT INTO jobs (kind, trigger, backup_plan_id, restore_plan_id, migration_plan_id, "
				"backup_id, cluster_id, repository_id, scheduled_for, result) "
				"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, coalesce($10::jsonb, '{}')) "
				"ON CONFLICT DO NOTHING RETURNING id", 10, params, err, errlen);
	long long id;

	if (!res)
		return -1;
	id = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	return id;
}

int job_backup_deleting(PGconn *db, long long backup_id, int manual, struct job_spec *spec, char *err,
			size_t errlen)
{
	char id[24];
	const char *params[] = { id, manual ? "t" : "f" };
	PGresult *res;

	snprintf(id, sizeof id, "%lld", backup_id);
	res = db_exec(db, "UPDATE backups SET state = 'deleting', "
		      "delete_error = CASE WHEN $2::boolean THEN '' ELSE delete_error END "
		      "WHERE id = $1 AND state <> 'running' RETURNING coalesce(cluster_id, 0), coalesce(repository_id, 0)",
		      2, params, err, errlen);
	if (!res)
		return -1;
	int marked = PQntuples(res) == 1;
	if (marked)
		*spec = (struct job_spec){
			.kind = "delete_backup", .trigger = manual ? "manual" : "schedule", .backup_id = backup_id,
			.cluster_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10),
			.repository_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10),
		};
	PQclear(res);
	return marked;
}
