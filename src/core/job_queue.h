/* Queueing a job: the one way the web pages, the scheduler and the runner add a row to jobs, in
 * the caller's tenant transaction (db_tenant_begin). An insert trigger wakes the runners. */
#ifndef STOWAGE_JOB_QUEUE_H
#define STOWAGE_JOB_QUEUE_H

#include <stddef.h>

#include <libpq-fe.h>

struct job_spec {
	const char *kind;		/* backup, restore, migrate, delete_backup, verify, prune, sync, diagnostics */
	const char *trigger;		/* manual, schedule, migration */
	long long backup_plan_id, restore_plan_id, migration_plan_id;	/* 0: none */
	long long backup_id, cluster_id, repository_id;			/* 0: none */
	const char *scheduled_for;	/* a scheduled run's due time (RFC 3339), or NULL */
	const char *input;		/* a JSON object the job's result starts as (its options), or NULL */
};

/* The new job's id; 0 when the same job is already live (one live delete per backup, one live
 * prune or sync per repository, one job per plan and scheduled time); -1 with err. */
long long job_enqueue(PGconn *db, const struct job_spec *spec, char *err, size_t errlen);

/* Deleting a backup starts here: the backup is 'deleting' from this transaction on (never
 * offered for restore again; a manual ask clears the last attempt's error) and spec is filled
 * for its delete_backup job. 1 when marked, 0 when there is no such backup or it is still being
 * written, -1 with err. */
int job_backup_deleting(PGconn *db, long long backup_id, int manual, struct job_spec *spec, char *err,
			size_t errlen);

#endif
