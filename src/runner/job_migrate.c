/* Migration jobs (manual 7): move an application's namespaces from one cluster to another.
 *
 *   pre-check -> stop the source application -> backup -> restore into the target
 *             -> start the application in the target at its original counts, wait until it
 *                is ready -> report, with the downtime (source stopping -> target ready)
 *
 * The job's input (result.mode) says which run of the plan it is (docs/migration.md):
 *   "full"      (default) the above;
 *   "pre-copy"  the source keeps running; its claims (and namespaces) only are restored into
 *               the target with their data; repeatable, each writing only the files changed;
 *   "cutover"   the above, but the claims a pre-copy made are kept and their data restored
 *               with --mirror: only the changed files are written while the source is down;
 *   "test"      the source keeps running; everything is restored into the target, the plan's
 *               post-restore hooks check it, and what the restore created is deleted (by uid).
 *
 * The pre-check refuses with the full list of conflicts before anything changes. Unless the
 * plan keeps the source running (a crash-consistent copy), its workloads are scaled to zero and
 * its CronJobs suspended first, with the original counts recorded, and the backup waits until
 * their pods have ended; on any failure after that,
 * the source is started again at those counts and the job says so. The restore provisions new
 * volumes in the target (its PersistentVolumes are not copied) with the class chosen per claim. */
#include "job.h"
#include "migrate_precheck.h"
#include "migrate_workloads.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long the source's pods may take to end once their workloads are scaled to zero. */
#define STOP_WAIT_MS (300 * 1000L)

enum migrate_mode { MODE_FULL, MODE_PRECOPY, MODE_CUTOVER, MODE_TEST };
static const char *const mode_names[] = { "full", "pre-copy", "cutover", "test" };

struct migration_plan {
	char name[64];
	long long source_cluster_id, target_cluster_id, repository_id;
	cJSON *namespaces, *storage_classes, *hooks;
	int keep_source_running;
	long ready_timeout_s;	/* how long the target may take to become ready */
};

struct migration_run {
	struct job *job;
	struct migration_plan plan;
	struct k8s_client *source, *target;
	cJSON *phases;		/* the migration's own phases */
	cJSON *stopped;		/* {"<ns>": {"deployments.apps/x": 3, ...}}: what the stop changed */
	cJSON *own;		/* {"<ns>": "<uid>"}: namespaces this plan's pre-copies created */
	enum migrate_mode mode;
	struct timespec down;	/* when the source began to stop (CLOCK_MONOTONIC) */
	struct job_phase phase;
	char *err;
	size_t errlen;
};

static void phase_begin(struct migration_run *m, const char *name)
{
	m->phase = job_phase_start(name);
	/* the counters stay those of the last engine: the page keeps showing what was moved */
	job_progress(m->job, name, m->job->items_done, m->job->items_total, m->job->bytes_done, m->job->bytes_total);
	job_log(m->job, "info", "migration phase %s", name);
}

static void phase_end(struct migration_run *m, const char *state)
{
	job_phase_add(m->phases, &m->phase, state, -1, NULL);
}

static int plan_load(struct migration_run *m)
{
	char id[24];
	const char *params[] = { id };
	struct migration_plan *p = &m->plan;
	PGresult *res;

	snprintf(id, sizeof id, "%lld", m->job->migration_plan_id);
	res = job_query(m->job, "SELECT name, source_cluster_id, target_cluster_id, repository_id, "
			"array_to_json(namespaces)::text, storage_classes::text, hooks::text, keep_source_running, "
			"ready_timeout_seconds FROM migration_plans WHERE id = $1", 1, params, m->err, m->errlen);
	if (!res)
		return -1;
	if (PQntuples(res) != 1) {
		PQclear(res);
		snprintf(m->err, m->errlen, "migration plan %lld no longer exists", m->job->migration_plan_id);
		return -1;
	}
	snprintf(p->name, sizeof p->name, "%s", PQgetvalue(res, 0, 0));
	p->source_cluster_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	p->target_cluster_id = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	p->repository_id = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
	p->namespaces = cJSON_Parse(PQgetvalue(res, 0, 4));
	p->storage_classes = cJSON_Parse(PQgetvalue(res, 0, 5));
	p->hooks = cJSON_Parse(PQgetvalue(res, 0, 6));
	p->keep_source_running = strcmp(PQgetvalue(res, 0, 7), "t") == 0;
	p->ready_timeout_s = strtol(PQgetvalue(res, 0, 8), NULL, 10);
	PQclear(res);
	if (!cJSON_IsArray(p->namespaces) || !cJSON_IsObject(p->storage_classes) || !cJSON_IsArray(p->hooks)) {
		snprintf(m->err, m->errlen, "migration plan %s: its stored namespaces, classes or hooks are malformed", p->name);
		return -1;
	}
	return 0;
}

/* Every conflict in the target, all at once: the job fails with the list and changes nothing. */
static int precheck(struct migration_run *m)
{
	cJSON *conflicts = cJSON_CreateArray();
	const cJSON *ns;
	struct strbuf words = STRBUF_INIT;
	int rc = 0;

	phase_begin(m, "pre-check");
	cJSON_ArrayForEach(ns, m->plan.namespaces) {
		const char *own = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m->own, ns->valuestring));
		if (migrate_precheck(m->source, m->target, ns->valuestring, own, m->plan.storage_classes, conflicts,
				     m->err, m->errlen) < 0) {
			rc = -1;
			break;
		}
	}
	cJSON_AddItemToObject(m->job->result, "conflicts", conflicts);
	if (rc == 0 && cJSON_GetArraySize(conflicts) > 0) {
		const cJSON *c;
		cJSON_ArrayForEach(c, conflicts)
			strbuf_addf(&words, "%s%s", words.len ? "; " : "", c->valuestring);
		snprintf(m->err, m->errlen, "refused before changing anything: %s", words.buf);
		rc = -1;
	}
	strbuf_release(&words);
	phase_end(m, rc == 0 ? "succeeded" : "failed");
	return rc;
}

/* The namespaces earlier pre-copies of this plan created in the target, by the uid the target
 * gave them: a cutover or another pre-copy finds them there and goes on. */
static int own_load(struct migration_run *m)
{
	char id[24];
	const char *params[] = { id };
	PGresult *res;

	m->own = cJSON_CreateObject();
	if (m->mode != MODE_PRECOPY && m->mode != MODE_CUTOVER)
		return 0;
	snprintf(id, sizeof id, "%lld", m->job->migration_plan_id);
	res = job_query(m->job, "SELECT i.name, i.uid FROM job_items i JOIN jobs j ON j.id = i.job_id "
			"WHERE j.migration_plan_id = $1 AND j.kind = 'migrate' AND j.result->>'mode' = 'pre-copy' "
			"AND i.resource = 'namespaces' AND i.api_group = '' AND i.action = 'created' AND i.uid <> '' "
			"ORDER BY i.id", 1, params, m->err, m->errlen);
	if (!res)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON_DeleteItemFromObjectCaseSensitive(m->own, PQgetvalue(res, i, 0));	/* the latest */
		cJSON_AddStringToObject(m->own, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
	}
	PQclear(res);
	return 0;
}

static int stop_source(struct migration_run *m)
{
	const cJSON *ns;

	clock_gettime(CLOCK_MONOTONIC, &m->down);
	if (m->plan.keep_source_running || m->mode == MODE_PRECOPY || m->mode == MODE_TEST) {
		job_log(m->job, "info", "the source application keeps running (crash-consistent copy)");
		return 0;
	}
	phase_begin(m, "stop source");
	cJSON_ArrayForEach(ns, m->plan.namespaces) {
		if (workloads_stop(m->source, ns->valuestring, m->stopped, m->err, m->errlen) < 0) {
			phase_end(m, "failed");
			return -1;
		}
	}
	/* scaled to zero is not stopped yet: a database still shutting down writes its files */
	cJSON_ArrayForEach(ns, m->plan.namespaces) {
		if (workloads_wait_stopped(m->source, ns->valuestring, STOP_WAIT_MS, m->err, m->errlen) < 0) {
			phase_end(m, "failed");
			return -1;
		}
	}
	job_log(m->job, "info", "the source application is stopped: its pods have ended");
	phase_end(m, "succeeded");
	return 0;
}

/* Puts the workloads of every migrated namespace back to the recorded counts in cluster k.
 * Returns the number that could not be put back. */
static int start_workloads(struct migration_run *m, struct k8s_client *k, const char *where)
{
	const cJSON *ns;
	cJSON *failures = cJSON_CreateArray();
	int failed = 0;

	cJSON_ArrayForEach(ns, m->plan.namespaces)
		failed += workloads_start(k, m->stopped, ns->valuestring, ns->valuestring, failures);
	if (failed) {
		char *list = cJSON_PrintUnformatted(failures);
		job_log(m->job, "error", "%d workload%s of the %s could not be started again: %s", failed,
			failed == 1 ? "" : "s", where, list);
		free(list);
	}
	cJSON_Delete(failures);
	return failed;
}

/* The sub-engines write their own phases; keep them under their name and keep ours on top. */
static void stash_phases(struct migration_run *m, const char *as)
{
	cJSON *theirs = cJSON_DetachItemFromObjectCaseSensitive(m->job->result, "phases");

	if (theirs)
		cJSON_AddItemToObject(m->job->result, as, theirs);
}

static const char *copy_application(struct migration_run *m)
{
	struct backup_spec bspec = { 0 };
	struct restore_spec rspec = { 0 };
	cJSON *methods = cJSON_CreateObject();
	const cJSON *claim;
	const char *state;

	/* filesystem copy for every claim, as the manual's migration does */
	cJSON_ArrayForEach(claim, m->plan.storage_classes)
		cJSON_AddStringToObject(methods, claim->string, "filesystem");
	bspec = (struct backup_spec){ .plan_id = 0, .name = m->plan.name, .cluster_id = m->plan.source_cluster_id,
				      .repository_id = m->plan.repository_id, .namespaces = m->plan.namespaces,
				      .retention_days = 30, .volume_methods = methods, .hooks = m->plan.hooks };
	phase_begin(m, "backup");
	state = job_backup_execute(m->job, &bspec, m->err, m->errlen);
	cJSON_Delete(methods);
	stash_phases(m, "backup_phases");
	phase_end(m, state);
	if (strcmp(state, "succeeded") != 0 && strcmp(state, "partially_failed") != 0)
		return state;

	cJSON *claims_only = cJSON_CreateObject();
	cJSON_AddItemToArray(cJSON_AddArrayToObject(claims_only, "include_types"), cJSON_CreateString("persistentvolumeclaims"));
	rspec = (struct restore_spec){ .backup_id = m->job->backup_id, .target_cluster_id = m->plan.target_cluster_id,
				       .claim_class_map = m->plan.storage_classes,
				       .hooks = m->mode == MODE_PRECOPY ? NULL : m->plan.hooks,
				       .selection = m->mode == MODE_PRECOPY ? claims_only : NULL,
				       .mirror_volumes = m->mode == MODE_PRECOPY || m->mode == MODE_CUTOVER };
	phase_begin(m, "restore");
	const char *rstate = job_restore_execute(m->job, &rspec, m->err, m->errlen);
	cJSON_Delete(claims_only);
	stash_phases(m, "restore_phases");
	phase_end(m, rstate);
	if (strcmp(rstate, "succeeded") != 0)
		return rstate;
	return state;
}

static void report(struct migration_run *m)
{
	cJSON *source = cJSON_CreateObject(), *target = cJSON_CreateObject();
	const cJSON *ns;

	cJSON_ArrayForEach(ns, m->plan.namespaces) {
		cJSON_AddItemToObject(source, ns->valuestring, workloads_current(m->source, ns->valuestring, m->stopped));
		cJSON_AddItemToObject(target, ns->valuestring, workloads_current(m->target, ns->valuestring, m->stopped));
	}
	cJSON_AddItemToObject(m->job->result, "workloads_original", cJSON_Duplicate(m->stopped, 1));
	cJSON_AddItemToObject(m->job->result, "workloads_source_now", source);
	cJSON_AddItemToObject(m->job->result, "workloads_target_now", target);
}

/* Starts the application in the target and waits until it is ready; the downtime ends there.
 * When it does not become ready in time, its workloads are scaled to zero again (a crash loop
 * must not run beside the restarted source) and -1 says why. */
static int start_target(struct migration_run *m)
{
	const cJSON *ns;
	cJSON *scaled = cJSON_CreateObject();
	char why[1024] = "";
	int rc = 0;

	phase_begin(m, "start target");
	int failed = start_workloads(m, m->target, "target cluster");
	if (failed) {
		snprintf(m->err, m->errlen, "%d workload%s could not be started in the target", failed, failed == 1 ? "" : "s");
		rc = -1;
	}
	cJSON_ArrayForEach(ns, m->plan.namespaces) {
		if (rc < 0)
			break;
		if (workloads_wait_ready(m->target, ns->valuestring, m->stopped, m->plan.ready_timeout_s * 1000L, why,
					 sizeof why) < 0) {
			snprintf(m->err, m->errlen, "the target did not become ready: %s", why);
			rc = -1;
		}
	}
	if (rc == 0) {
		struct timespec up;
		clock_gettime(CLOCK_MONOTONIC, &up);
		long long ms = (long long)(up.tv_sec - m->down.tv_sec) * 1000 + (up.tv_nsec - m->down.tv_nsec) / 1000000;
		cJSON_AddNumberToObject(m->job->result, "downtime_ms", (double)ms);
		job_log(m->job, "info", "the application is ready in the target: %.1f s of downtime (source stopping to target ready)",
			(double)ms / 1000);
	} else {
		cJSON_ArrayForEach(ns, m->plan.namespaces)
			workloads_stop(m->target, ns->valuestring, scaled, why, sizeof why);
		job_log(m->job, "error", "%s; the target's workloads were scaled to zero", m->err);
	}
	cJSON_Delete(scaled);
	phase_end(m, rc == 0 ? "succeeded" : "failed");
	return rc;
}

/* A test migration: what its restore created in the target, deleted again. */
static int remove_test(struct migration_run *m)
{
	char why[1024] = "";

	phase_begin(m, "remove test copy");
	const char *state = job_undo_created(m->job, m->job->id, m->plan.target_cluster_id, why, sizeof why);
	phase_end(m, state);
	if (strcmp(state, "succeeded") != 0) {
		size_t len = strlen(m->err);
		snprintf(m->err + len, m->errlen - len, "%swhat the test restored could not all be removed: %s",
			 len ? "; " : "", why);
		return -1;
	}
	return 0;
}

/* The last pre-copy's figures for the plan's page. */
static void precopy_report(struct migration_run *m)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->job->result, "volumes");
	cJSON *p = cJSON_AddObjectToObject(m->job->result, "precopy");
	const char *keys[] = { "bytes_written", "files_written", "files_unchanged", "removed", "bytes" };

	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(v, keys[i]);
		cJSON_AddNumberToObject(p, keys[i], cJSON_IsNumber(n) ? n->valuedouble : 0);
	}
}

static int mode_load(struct migration_run *m)
{
	const cJSON *mode = cJSON_GetObjectItemCaseSensitive(m->job->result, "mode");

	m->mode = MODE_FULL;
	if (!mode)
		return 0;
	for (size_t i = 0; i < sizeof mode_names / sizeof *mode_names; i++)
		if (cJSON_IsString(mode) && strcmp(mode->valuestring, mode_names[i]) == 0) {
			m->mode = (enum migrate_mode)i;
			return 0;
		}
	snprintf(m->err, m->errlen, "mode: must be one of full, pre-copy, cutover, test");
	return -1;
}

const char *job_migrate_run(struct job *job, char *err, size_t errlen)
{
	struct migration_run m = { .job = job, .err = err, .errlen = errlen };
	const char *state = "failed";
	int stopped = 0;

	m.phases = cJSON_CreateArray();
	m.stopped = cJSON_CreateObject();
	if (mode_load(&m) < 0 || plan_load(&m) < 0 || own_load(&m) < 0)
		goto out;
	if (m.mode == MODE_CUTOVER && cJSON_GetArraySize(m.own) == 0) {
		snprintf(err, errlen, "a cutover needs a pre-copy of this plan first: run Pre-copy");
		goto out;
	}
	m.source = job_cluster_client(job, m.plan.source_cluster_id, NULL, 0, err, errlen);
	m.target = m.source ? job_cluster_client(job, m.plan.target_cluster_id, NULL, 0, err, errlen) : NULL;
	if (!m.source || !m.target || precheck(&m) < 0)
		goto out;
	stopped = 1;	/* from here on a failure starts the source again */
	if (stop_source(&m) < 0)
		goto restart_source;
	state = copy_application(&m);
	if (m.mode == MODE_TEST) {
		if (strcmp(state, "succeeded") != 0 && strcmp(state, "partially_failed") != 0)
			state = "failed";
		if (remove_test(&m) < 0)
			state = "failed";
		job_log(job, "info", "test migration %s: %s; the source kept running", m.plan.name, state);
		goto out;
	}
	if (strcmp(state, "succeeded") != 0 && strcmp(state, "partially_failed") != 0)
		goto restart_source;
	if (m.mode == MODE_PRECOPY) {
		precopy_report(&m);
		job_log(job, "info", "pre-copy %s: %s; the source kept running", m.plan.name, state);
		goto out;
	}
	if (!m.plan.keep_source_running && start_target(&m) < 0) {
		state = "failed";
		goto restart_source;
	}
	report(&m);
	job_log(job, "info", "migration %s: %s%s", m.plan.name, state,
		m.plan.keep_source_running ? "; the source kept running" : "; the source application stays stopped");
	goto out;
restart_source:
	if (stopped && cJSON_GetArraySize(m.stopped) > 0) {
		char reason[1024];
		snprintf(reason, sizeof reason, "%s", err);
		phase_begin(&m, "restart source");
		int failed = start_workloads(&m, m.source, "source cluster");
		phase_end(&m, failed ? "failed" : "succeeded");
		snprintf(err, errlen, "%s; %s", reason, failed ? "the source application could NOT be fully started again: see the log"
						      : "the source application was started again at its original replica counts");
		report(&m);
	}
	if (strcmp(state, "cancelled") != 0)
		state = "failed";
out:
	cJSON_DeleteItemFromObjectCaseSensitive(job->result, "phases");
	cJSON_AddItemToObject(job->result, "phases", m.phases);
	cJSON_Delete(m.stopped);
	cJSON_Delete(m.own);
	cJSON_Delete(m.plan.namespaces);
	cJSON_Delete(m.plan.storage_classes);
	cJSON_Delete(m.plan.hooks);
	k8s_client_free(m.source);
	k8s_client_free(m.target);
	return state;
}
