/* Migration jobs (manual 7): move an application's namespaces from one cluster to another.
 *
 *   pre-check -> stop the source application -> backup -> restore into the target
 *             -> start the application in the target at its original counts -> report
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

struct migration_plan {
	char name[64];
	long long source_cluster_id, target_cluster_id, repository_id;
	cJSON *namespaces, *storage_classes, *hooks;
	int keep_source_running;
};

struct migration_run {
	struct job *job;
	struct migration_plan plan;
	struct k8s_client *source, *target;
	cJSON *phases;		/* the migration's own phases */
	cJSON *stopped;		/* {"<ns>": {"deployments.apps/x": 3, ...}}: what the stop changed */
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
			"array_to_json(namespaces)::text, storage_classes::text, hooks::text, keep_source_running "
			"FROM migration_plans WHERE id = $1", 1, params, m->err, m->errlen);
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
		if (migrate_precheck(m->source, m->target, ns->valuestring, m->plan.storage_classes, conflicts,
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

static int stop_source(struct migration_run *m)
{
	const cJSON *ns;

	if (m->plan.keep_source_running) {
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

	rspec = (struct restore_spec){ .backup_id = m->job->backup_id, .target_cluster_id = m->plan.target_cluster_id,
				       .claim_class_map = m->plan.storage_classes, .hooks = m->plan.hooks };
	phase_begin(m, "restore");
	const char *rstate = job_restore_execute(m->job, &rspec, m->err, m->errlen);
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

const char *job_migrate_run(struct job *job, char *err, size_t errlen)
{
	struct migration_run m = { .job = job, .err = err, .errlen = errlen };
	const char *state = "failed";
	int stopped = 0;

	m.phases = cJSON_CreateArray();
	m.stopped = cJSON_CreateObject();
	if (plan_load(&m) < 0)
		goto out;
	m.source = job_cluster_client(job, m.plan.source_cluster_id, NULL, 0, err, errlen);
	m.target = m.source ? job_cluster_client(job, m.plan.target_cluster_id, NULL, 0, err, errlen) : NULL;
	if (!m.source || !m.target || precheck(&m) < 0)
		goto out;
	stopped = 1;	/* from here on a failure starts the source again */
	if (stop_source(&m) < 0)
		goto restart_source;
	state = copy_application(&m);
	if (strcmp(state, "succeeded") != 0 && strcmp(state, "partially_failed") != 0)
		goto restart_source;
	if (!m.plan.keep_source_running) {
		phase_begin(&m, "start target");
		int failed = start_workloads(&m, m.target, "target cluster");
		phase_end(&m, failed ? "failed" : "succeeded");
		if (failed) {
			snprintf(err, errlen, "the application was copied, but %d workload%s could not be started in the target",
				 failed, failed == 1 ? "" : "s");
			state = "partially_failed";
		}
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
	cJSON_Delete(m.plan.namespaces);
	cJSON_Delete(m.plan.storage_classes);
	cJSON_Delete(m.plan.hooks);
	k8s_client_free(m.source);
	k8s_client_free(m.target);
	return state;
}
