/* A job as the runner executes it: what it is about, and the calls every job kind uses to
 * report progress, per-object results and log lines, to check for cancellation, and to open
 * clients to its clusters and repositories. Every database write runs in its own short
 * transaction bound to the job's organisation, so row-level security covers the runner too. */
#ifndef STOWAGE_RUNNER_JOB_H
#define STOWAGE_RUNNER_JOB_H

#include "k8s_client.h"
#include "net_allow.h"
#include "s3_client.h"
#include "secret_store.h"

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <time.h>

struct runner_context {
	const char *runner_id;
	const char *config_path;
	struct secret_keyring keyring;
	uint8_t master_key[AEAD_KEY_LEN];	/* for the data mover's per-repository keys */
	struct net_allow allowed_networks;
	const char *work_dir;
	const char *mover_path;
	const char *hook_path;		/* stowage-hook, the process each hook runs in */
};

struct job {
	const struct runner_context *ctx;
	PGconn *db;
	long long id;
	long long org_id;
	/* the deployment's networks and the ones the operator opted in for this organisation */
	struct net_allow allow;
	char kind[16];
	long long backup_plan_id;	/* 0 when none */
	long long restore_plan_id;
	long long backup_id;
	long long cluster_id;
	long long migration_plan_id;
	/* progress as last reported */
	char phase[64];
	long items_done, items_total, items_failed;
	long long bytes_done, bytes_total;
	struct timespec last_flush;
	int cancelled;
	cJSON *result;		/* the job's result document; job_finish stores it */
	long hooks_ms;		/* run time of the job's hooks so far, against JOB_HOOKS_JOB_TIME_MS */
	long items_recorded;	/* job_items rows written, against JOB_ITEMS_MAX */
};

/* A job records at most this many objects one by one; past it the counts go on, and the log
 * says that the list stops there. Bounds what one cluster's listing can put in the database. */
#define JOB_ITEMS_MAX 1000000L

/* A repository opened for a job: its client and the key prefix everything goes under. */
struct job_repository {
	long long id;		/* its seal identity, for key derivations (repository.h), not its row id */
	struct s3_client *s3;
	char *prefix;		/* "" or "team-a/" (always ends in '/' when not empty) */
	char *bucket;
};

/* The job's transaction helpers: run one statement bound to the job's organisation. */
PGresult *job_query(struct job *job, const char *sql, int nparams, const char *const *params,
		    char *err, size_t errlen);
int job_exec(struct job *job, const char *sql, int nparams, const char *const *params,
	     char *err, size_t errlen);

void job_log(struct job *job, const char *level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A job's phases as jobs.result records them (docs/jobs.md), one writer for every kind:
 * "phases": [{name, state, started_at, finished_at, duration_ms[, objects][, error]}, ...] */
struct job_phase {
	const char *name;
	time_t started_at;
	struct timespec started;	/* CLOCK_MONOTONIC */
};
struct job_phase job_phase_start(const char *name);
double job_phase_seconds(const struct job_phase *p);	/* since its start */
/* Appends the phase's entry to phases; objects < 0 and an empty or NULL error are left out. */
void job_phase_add(cJSON *phases, const struct job_phase *p, const char *state, long objects, const char *error);

/* Sets the phase and counters; written to the database at most every 500 ms (and always when
 * the phase changes), so progress is cheap to report per object. */
void job_progress(struct job *job, const char *phase, long items_done, long items_total,
		  long long bytes_done, long long bytes_total);
void job_progress_flush(struct job *job);
/* One object's result: action is backed_up, created, updated, skipped or failed. */
/* Whether n more objects may be listed in job_items (JOB_ITEMS_MAX), counting them if so. */
int job_items_room(struct job *job, long n);
int job_item(struct job *job, const char *action, const char *group, const char *resource,
	     const char *ns, const char *name, const char *message);
/* The same, with the object's version and the uid it was created with (a restore's created
 * objects: an undo deletes exactly those, sql/018). */
int job_item_created(struct job *job, const char *action, const char *group, const char *version,
		     const char *resource, const char *ns, const char *name, const char *message, const char *uid);
/* Many objects' results, JOB_ITEMS_BATCH rows a statement: a namespace can hold 100,000
 * objects, and a commit each would cost more than the objects. Add rows (flushed every
 * JOB_ITEMS_BATCH), then flush the rest; { job, NULL } starts a batch. */
#define JOB_ITEMS_BATCH 500
struct job_items_batch {
	struct job *job;
	cJSON *rows;
};
void job_items_batch_add(struct job_items_batch *b, const char *action, const char *group, const char *version,
			 const char *resource, const char *ns, const char *name, const char *message, const char *uid);
int job_items_batch_flush(struct job_items_batch *b);
/* 1 when someone asked to cancel the job (checked in the database at most once a second). */
int job_cancel_requested(struct job *job);

/* Clients for the job's clusters and repositories, with their secrets opened in memory only. */
struct k8s_client *job_cluster_client(struct job *job, long long cluster_id, char *name_out, size_t name_len,
				      char *err, size_t errlen);
int job_repository_open(struct job *job, long long repository_id, struct job_repository *repo,
			char *err, size_t errlen);
void job_repository_close(struct job_repository *repo);

/* What a restore restores, and how: a restore plan's row, or what a migration decides. */
struct restore_spec {
	long long backup_id;
	long long target_cluster_id;
	const cJSON *namespace_map;	/* {"source-ns": "target-ns"}, or NULL */
	const cJSON *storage_class_map;	/* {"old": "new"}, or NULL */
	const cJSON *claim_class_map;	/* {"<source-ns>/<claim>": "class"}, or NULL */
	const cJSON *hooks;		/* post-restore hooks, or NULL */
	int update_existing;
	int reattach_volumes;		/* recreate the backup's PersistentVolumes (same cluster only);
					 * otherwise claims get new volumes, which the data fills */
	const cJSON *volume_map;	/* {"<source-ns>/<claim>": "pv"}: bind to this volume, or NULL */
	int restore_storage_classes;	/* create the backup's StorageClasses the target lacks (not mapped ones) */
	int keep_default_class;		/* keep their is-default-class annotation */
	int restore_completed_jobs;	/* recreate Jobs that had finished (they run again) */
	const cJSON *selection;		/* what of the backup: types in/out, label selector, objects; NULL: all */
	const char *resource_modifiers;	/* the plan's rules (resource_modifier.h), or NULL */
};

/* What a backup backs up: a backup plan's row, or what a migration decides (plan_id 0). */
struct backup_spec {
	long long plan_id;
	const char *name;		/* the backup is named <name>-<UTC time> */
	long long cluster_id;
	long long repository_id;
	const cJSON *namespaces;	/* array of strings */
	const char *label_selector;	/* NULL: every object */
	long retention_days;
	const cJSON *volume_methods;	/* {"ns/pvc": "filesystem" | "snapshot"}, or NULL */
	const cJSON *hooks;		/* pre- and post-backup hooks, or NULL */
};

/* The engines with explicit inputs, for jobs that are more than one backup or restore. They
 * return the state as the job kinds below do; a backup leaves job->backup_id set to its row. */
const char *job_backup_execute(struct job *job, const struct backup_spec *spec, char *err, size_t errlen);
const char *job_restore_execute(struct job *job, const struct restore_spec *spec, char *err, size_t errlen);

/* The job kinds. Each returns the final state: "succeeded", "partially_failed", "failed" or
 * "cancelled", and fills err with the reason when it is not "succeeded". */
const char *job_backup_run(struct job *job, char *err, size_t errlen);
const char *job_restore_run(struct job *job, char *err, size_t errlen);
const char *job_migrate_run(struct job *job, char *err, size_t errlen);
/* job_catalog.c: a backup marked 'deleting' removed from its repository, its clusters and the
 * catalog; a repository's unused data pruned. */
const char *job_delete_backup_run(struct job *job, char *err, size_t errlen);
const char *job_prune_run(struct job *job, char *err, size_t errlen);
/* job_catalog.c: a backup's objects and volume data checked (result.read_data: every pack read). */
const char *job_verify_run(struct job *job, char *err, size_t errlen);
/* job_catalog.c: the repository's bucket read for backups the catalog lacks (re-import). */
const char *job_sync_run(struct job *job, char *err, size_t errlen);
/* job_catalog.c: a tar.gz about the job result.of_job (log, items, the cluster's events and
 * pod statuses of its namespaces) into job_bundles. */
const char *job_diagnostics_run(struct job *job, char *err, size_t errlen);
/* job_catalog.c: the backup's archive decrypted into job_bundles (download_max_bytes), for a day. */
const char *job_download_run(struct job *job, char *err, size_t errlen);
/* job_restore.c: deletes what the cancelled restore result.undo_of created (by uid), nothing else. */
const char *job_undo_restore_run(struct job *job, char *err, size_t errlen);

#endif
