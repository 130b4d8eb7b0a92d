/* A test restore (docs/jobs.md): proves a backup restores. Its namespaces are restored into
 * temporary namespaces of the job's cluster (stowage-test-<job>-<n>, labelled
 * stowage.io/test-restore=<job>), with the workloads held at zero replicas until the volume data
 * is in; the backup plan's check hooks then run there (post-restore), and the namespaces are
 * deleted whatever happened (failure, cancel). What a crashed runner left behind is deleted by the
 * next test restore on that cluster: namespaces of a job of the organisation that has ended, and
 * any labelled namespace older than TEST_RESTORE_LEFTOVER_HOURS.
 *
 * result.test_restore: {passed, cluster, namespaces, checks: [{name, state, duration_ms, log,
 * error}], duration_ms, cleaned_up}. */
#include "job.h"
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TEST_RESTORE_LABEL "stowage.io/test-restore"
#define TEST_RESTORE_LEFTOVER_HOURS 6
#define LEFTOVER_HOURS_TEXT "6"
#define TEST_RESTORE_DELETE_WAIT_MS (5L * 60 * 1000)

struct leftover_sweep {
	struct job *job;
	struct k8s_client *k;
	long deleted;
};

static int namespace_gone(const cJSON *obj, void *ud)
{
	(void)ud;
	return obj ? 0 : 1;
}

/* Deletes namespace name and waits until it is gone; 0, or -1 with err. */
static int namespace_remove(struct k8s_client *k, const char *name, char *err, size_t errlen)
{
	char *path = k8s_resource_path("", "v1", "namespaces", NULL, name);
	struct k8s_error ke = { 0 };
	int rc = k8s_delete(k, path, "Background", &ke);

	if (rc == 0 || ke.http_status == 404)
		rc = k8s_wait(k, path, namespace_gone, NULL, TEST_RESTORE_DELETE_WAIT_MS, &ke);
	if (rc < 0) {
		char why[600];
		k8s_error_describe(&ke, why, sizeof why);
		snprintf(err, errlen, "namespace %s: %s", name, why);
	}
	free(path);
	return rc;
}

/* One labelled namespace: deleted when its job has ended or it is older than the limit. */
static int leftover_one(cJSON *ns, void *ud)
{
	struct leftover_sweep *s = ud;
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(ns, "metadata");
	const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(meta, "name"));
	const char *of = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(meta, "labels"), TEST_RESTORE_LABEL));
	const char *created = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(meta, "creationTimestamp"));
	char own[24], err[700];
	struct tm tm = { 0 };
	int old = 0, ended = 0;

	snprintf(own, sizeof own, "%lld", s->job->id);
	if (!ns || !name || !of || strcmp(of, own) == 0)
		return 0;
	if (created && strptime(created, "%Y-%m-%dT%H:%M:%SZ", &tm))
		old = time(NULL) - timegm(&tm) > TEST_RESTORE_LEFTOVER_HOURS * 3600L;
	if (!old && strspn(of, "0123456789") == strlen(of) && strlen(of) < 19) {
		const char *params[] = { of };
		PGresult *res = job_query(s->job, "SELECT 1 FROM jobs WHERE id = $1 AND kind = 'test_restore' "
					  "AND state NOT IN ('queued', 'running')", 1, params, err, sizeof err);
		ended = res && PQntuples(res) == 1;
		PQclear(res);
	}
	if (!old && !ended)
		return 0;
	if (namespace_remove(s->k, name, err, sizeof err) < 0) {
		job_log(s->job, "warning", "a test restore's leftover: %s", err);
		return 0;
	}
	s->deleted++;
	job_log(s->job, "info", "deleted namespace %s, left by test restore job %s (%s)", name, of,
		old ? "older than " LEFTOVER_HOURS_TEXT " hours" : "that job has ended");
	return 0;
}

static void leftovers_sweep(struct job *job, struct k8s_client *k)
{
	static const struct k8s_resource_type namespaces = { .group = "", .version = "v1", .kind = "Namespace",
							      .plural = "namespaces" };
	struct leftover_sweep s = { .job = job, .k = k };
	struct k8s_error ke = { 0 };

	if (k8s_list(k, &namespaces, NULL, TEST_RESTORE_LABEL, 100, leftover_one, &s, &ke) < 0) {
		char why[600];
		k8s_error_describe(&ke, why, sizeof why);
		job_log(job, "warning", "looking for leftovers of earlier test restores: %s", why);
	}
}

/* The backup's namespaces and the plan's check hooks (the job's plan, else the backup's). */
static int test_restore_load(struct job *job, cJSON **namespaces, cJSON **hooks, char *err, size_t errlen)
{
	char bid[24], pid[24];
	const char *params[] = { bid, job->backup_plan_id ? pid : NULL };
	PGresult *res;

	snprintf(bid, sizeof bid, "%lld", job->backup_id);
	snprintf(pid, sizeof pid, "%lld", job->backup_plan_id);
	res = job_query(job, "SELECT array_to_json(b.namespaces)::text, coalesce(p.test_restore_hooks, '[]')::text, b.state "
			"FROM backups b LEFT JOIN backup_plans p ON p.id = coalesce($2::bigint, b.plan_id) WHERE b.id = $1",
			2, params, err, errlen);
	if (!res)
		return -1;
	if (PQntuples(res) != 1) {
		PQclear(res);
		snprintf(err, errlen, "backup %lld no longer exists", job->backup_id);
		return -1;
	}
	*namespaces = cJSON_Parse(PQgetvalue(res, 0, 0));
	*hooks = cJSON_Parse(PQgetvalue(res, 0, 1));
	PQclear(res);
	if (!cJSON_IsArray(*namespaces) || !cJSON_IsArray(*hooks)) {
		snprintf(err, errlen, "backup %lld: its namespaces or its plan's check hooks are malformed", job->backup_id);
		return -1;
	}
	if (cJSON_GetArraySize(*namespaces) == 0) {
		snprintf(err, errlen, "backup %lld names no namespace (a whole-cluster backup): a test restore restores "
			 "namespaces into temporary ones, and would otherwise write into the cluster's own", job->backup_id);
		return -1;
	}
	return 0;
}

/* Creates stowage-test-<job>-<n> for each of the backup's namespaces, labelled; map receives
 * {"<source-ns>": "<temporary>"} and made the names created (to delete, whatever follows). */
static int namespaces_create(struct job *job, struct k8s_client *k, const cJSON *sources, cJSON *map, cJSON *made,
			     char *err, size_t errlen)
{
	const cJSON *src;
	char name[64], owner[24];
	int n = 0;

	snprintf(owner, sizeof owner, "%lld", job->id);
	cJSON_ArrayForEach(src, sources) {
		struct k8s_error ke = { 0 };
		cJSON *ns = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(ns, "metadata");
		int rc;
		if (!cJSON_IsString(src)) {
			cJSON_Delete(ns);
			continue;
		}
		snprintf(name, sizeof name, "stowage-test-%lld-%d", job->id, n++);
		cJSON_AddStringToObject(ns, "apiVersion", "v1");
		cJSON_AddStringToObject(ns, "kind", "Namespace");
		cJSON_AddStringToObject(meta, "name", name);
		cJSON_AddStringToObject(cJSON_AddObjectToObject(meta, "labels"), TEST_RESTORE_LABEL, owner);
		cJSON_AddStringToObject(cJSON_AddObjectToObject(meta, "annotations"), "stowage.io/test-restore-of",
					src->valuestring);
		rc = k8s_create(k, "/api/v1/namespaces", ns, NULL, &ke);
		cJSON_Delete(ns);
		if (rc < 0) {
			char why[600];
			k8s_error_describe(&ke, why, sizeof why);
			snprintf(err, errlen, "creating the temporary namespace %s: %s", name, why);
			return -1;
		}
		cJSON_AddItemToArray(made, cJSON_CreateString(name));
		cJSON_AddStringToObject(map, src->valuestring, name);
		job_log(job, "info", "namespace %s of the backup is restored into the temporary namespace %s",
			src->valuestring, name);
	}
	return 0;
}

/* Each check's result, from the hooks the restore ran. */
static cJSON *checks_of(const cJSON *result)
{
	cJSON *checks = cJSON_CreateArray();
	const cJSON *h;

	cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(result, "hooks")) {
		cJSON *c = cJSON_CreateObject();
		static const char *const keys[] = { "name", "namespace", "state", "duration_ms", "log", "error" };
		for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, keys[i]);
			if (v)
				cJSON_AddItemToObject(c, keys[i], cJSON_Duplicate(v, 1));
		}
		cJSON_AddItemToArray(checks, c);
	}
	return checks;
}

const char *job_test_restore_run(struct job *job, char *err, size_t errlen)
{
	struct job_phase whole = job_phase_start(NULL);
	cJSON *sources = NULL, *hooks = NULL, *map = cJSON_CreateObject(), *made = cJSON_CreateArray();
	cJSON *held = cJSON_CreateObject();
	char cluster[128] = "", cleanup_err[700] = "";
	const char *state = "failed";
	struct k8s_client *k = NULL;
	int cleaned = 1;

	if (!job->backup_id || !job->cluster_id) {
		snprintf(err, errlen, "a test restore names its backup and its cluster");
		goto out;
	}
	if (test_restore_load(job, &sources, &hooks, err, errlen) < 0)
		goto out;
	k = job_cluster_client(job, job->cluster_id, cluster, sizeof cluster, err, errlen);
	if (!k)
		goto out;
	leftovers_sweep(job, k);
	if (namespaces_create(job, k, sources, map, made, err, errlen) == 0) {
		struct restore_spec spec = { .backup_id = job->backup_id, .target_cluster_id = job->cluster_id,
					     .namespace_map = map, .hooks = hooks, .start_later = held,
					     .namespaced_only = 1 };
		state = job_restore_execute(job, &spec, err, errlen);
	}
	/* whatever happened: the temporary namespaces go */
	const cJSON *ns;
	cJSON_ArrayForEach(ns, made) {
		job_progress(job, "deleting the temporary namespaces", 0, 0, job->bytes_done, 0);
		if (namespace_remove(k, ns->valuestring, cleanup_err, sizeof cleanup_err) < 0) {
			cleaned = 0;
			job_log(job, "error", "%s", cleanup_err);
		} else {
			job_log(job, "info", "deleted the temporary namespace %s", ns->valuestring);
		}
	}
	if (strcmp(state, "succeeded") == 0 && !cleaned) {
		snprintf(err, errlen, "the backup restored and its checks passed, but a temporary namespace was not deleted: %s",
			 cleanup_err);
		state = "partially_failed";
	} else if (strcmp(state, "partially_failed") == 0) {
		char why[700];
		snprintf(why, sizeof why, "%s", err);
		snprintf(err, errlen, "the backup did not restore whole: %s", why);
		state = "failed";
	}
out:;
	cJSON *t = cJSON_CreateObject();
	int passed = strcmp(state, "succeeded") == 0 || (strcmp(state, "partially_failed") == 0 && !cleaned);
	cJSON_AddBoolToObject(t, "passed", passed);
	cJSON_AddStringToObject(t, "cluster", cluster);
	cJSON_AddItemToObject(t, "namespaces", made);
	cJSON_AddItemToObject(t, "checks", checks_of(job->result));
	cJSON_AddNumberToObject(t, "duration_ms", (double)(long long)(job_phase_seconds(&whole) * 1000));
	cJSON_AddBoolToObject(t, "cleaned_up", cleaned);
	if (!passed)
		cJSON_AddStringToObject(t, "error", err);
	cJSON_DeleteItemFromObjectCaseSensitive(job->result, "test_restore");
	cJSON_AddItemToObject(job->result, "test_restore", t);
	job_log(job, passed ? "info" : "error", "test restore %s in %.1f s%s%s", passed ? "passed" : "failed",
		job_phase_seconds(&whole), passed ? "" : ": ", passed ? "" : err);
	k8s_client_free(k);
	cJSON_Delete(sources);
	cJSON_Delete(hooks);
	cJSON_Delete(map);
	cJSON_Delete(held);
	return state;
}
