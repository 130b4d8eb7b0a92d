/* Backup jobs: the resources of a plan's namespaces into a Velero-layout archive in the plan's
 * repository (see backup_archive.h for the layout).
 *
 * Phases, each recorded in jobs.result.phases: hooks, discover, resources, volumes, upload,
 * finalize. The repository gets, under <prefix>backups/<name>/:
 *   <name>.tar.gz                  the objects (backup_archive.h)
 *   <name>-resource-list.json.gz   {"<group>/<version>/<Kind>": ["ns/name", ...]}, as Velero
 *   <name>-logs.gz                 the job's log lines
 *   velero-backup.json             written LAST: a backup without it was never completed
 * and only after velero-backup.json is stored does the backups row become 'completed' (or
 * 'partially_failed'). Each backup owns its key prefix, so nothing locks the bucket. A
 * cancelled or failed backup deletes what it uploaded; a runner killed mid-backup leaves no
 * velero-backup.json, and the reaper fails its job and backups row (sql/003_plans_jobs.sql). */
#include "job.h"
#include "job_hooks.h"
#include "job_volumes.h"
#include "json.h"
#include "backup_archive.h"
#include "log.h"
#include "repo_seal.h"
#include "restore_transform.h"
#include "strbuf.h"

#include <errno.h>
#include <fnmatch.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LIST_PAGE_SIZE 500

struct backup_plan {
	long long id;			/* 0: a migration's backup, which no plan owns */
	char name[64];
	long long cluster_id;
	long long repository_id;
	cJSON *namespaces;		/* array of strings */
	char *label_selector;		/* NULL: every object */
	long retention_days;
	cJSON *volume_methods;		/* {"ns/pvc": "filesystem" | "snapshot"} */
	cJSON *hooks;			/* array */
	cJSON *include_resources;	/* patterns "resource[.group]" with shell wildcards; empty: all */
	cJSON *exclude_resources;	/* patterns never backed up */
	int whole_cluster;		/* every namespace (namespaces: the system ones to add) and
					 * every cluster-scoped type */
};

struct backup_run {
	struct job *job;
	struct backup_plan plan;
	struct k8s_client *k8s;
	char cluster_name[128];
	struct k8s_resource_list types;
	struct job_repository repo;
	int repo_open;
	char name[128];			/* <plan>-<YYYYMMDDHHMMSS> */
	time_t started;
	char *archive_path;
	struct backup_archive *archive;
	int64_t archive_bytes;
	int64_t bytes;			/* everything uploaded */
	long objects;			/* objects in the archive */
	long failed;			/* types and objects that could not be read */
	int cancelled;
	char *err;
	size_t errlen;
	/* the phase under way */
	struct job_phase phase;
	/* what the objects tell us */
	cJSON *counts;			/* {"configmaps": 3, "deployments.apps": 1} */
	cJSON *resource_list;		/* {"apps/v1/Deployment": ["ns/web"]} */
	cJSON *resource_types;		/* {"apps/v1/Deployment": {"resource", "group", "namespaced"}} */
	cJSON *volumes;			/* [{"namespace", "claim", "volume", "storage_class", "method"}] */
	cJSON *volume_data;		/* what job_backup_volumes saved: <name>-volumes.json */
	cJSON *pv_names;		/* volumes bound to the claims backed up */
	cJSON *storage_classes;		/* classes of those claims and volumes */
	cJSON *cluster_roles;		/* ClusterRoles granted to the namespaces' accounts */
	cJSON *priority_classes;	/* PriorityClasses of their pods and pod templates */
	unsigned char *type_found;	/* per discovered type: 1 when it had objects */
	struct job_items_batch items;	/* the objects not yet recorded as job items */
};

/* ---- small helpers ---- */

static void rfc3339(time_t t, char *out, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *string_at(const cJSON *obj, const char *a, const char *b)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, a);

	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void json_set(cJSON *obj, const char *key, cJSON *value)
{
	if (cJSON_GetObjectItemCaseSensitive(obj, key))
		cJSON_ReplaceItemInObjectCaseSensitive(obj, key, value);
	else
		cJSON_AddItemToObject(obj, key, value);
}

/* Names to back up, repeats and all: json_array_unique drops those once, before they are read
 * (asking at each add walked the list, quadratic in a cluster's claims or bindings). */
static void names_add(cJSON *arr, const char *s)
{
	if (s && *s)
		cJSON_AddItemToArray(arr, cJSON_CreateString(s));
}

static int dns_label(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

static void group_resource(const struct k8s_resource_type *t, char *out, size_t len)
{
	struct strbuf sb = STRBUF_INIT;

	backup_archive_group_resource(t->group, t->plural, &sb);
	snprintf(out, len, "%s", sb.buf);
	strbuf_release(&sb);
}

static void repo_key(const struct backup_run *r, const char *file, struct strbuf *out)
{
	strbuf_reset(out);
	strbuf_addf(out, "%sbackups/%s/%s", r->repo.prefix, r->name, file);
}

static int cancel_check(struct backup_run *r)
{
	if (!r->cancelled && job_cancel_requested(r->job)) {
		r->cancelled = 1;
		job_log(r->job, "warning", "cancellation requested: stopping the backup");
	}
	return r->cancelled;
}

/* ---- phases ---- */

static void result_store(struct backup_run *r)
{
	char id[24], err[256];
	char *doc = cJSON_PrintUnformatted(r->job->result);
	const char *params[] = { id, doc };

	snprintf(id, sizeof id, "%lld", r->job->id);
	if (job_exec(r->job, "UPDATE jobs SET result = $2::jsonb WHERE id = $1", 2, params, err, sizeof err) < 0)
		log_error("job %lld: cannot store its result: %s", r->job->id, err);
	free(doc);
}

static void phase_begin(struct backup_run *r, const char *name)
{
	r->phase = job_phase_start(name);
	job_progress(r->job, name, 0, 0, 0, 0);
}

/* state: succeeded, partially_failed, failed, cancelled or skipped. */
static void phase_end(struct backup_run *r, const char *state)
{
	cJSON *phases = cJSON_GetObjectItemCaseSensitive(r->job->result, "phases");

	if (!cJSON_IsArray(phases)) {
		phases = cJSON_CreateArray();
		json_set(r->job->result, "phases", phases);
	}
	job_phase_add(phases, &r->phase, state, -1, NULL);
	result_store(r);
}

/* Ends the phase by how its step went (0 done, -1 stopped). */
static int phase_close(struct backup_run *r, int rc)
{
	phase_end(r, rc == 0 ? "succeeded" : r->cancelled ? "cancelled" : "failed");
	return rc;
}

/* ---- the plan and the backups row ---- */

static int plan_load(struct backup_run *r)
{
	char id[24];
	const char *params[] = { id };
	struct backup_plan *p = &r->plan;
	PGresult *res;

	snprintf(id, sizeof id, "%lld", r->job->backup_plan_id);
	res = job_query(r->job, "SELECT name, cluster_id, repository_id, array_to_json(namespaces)::text, label_selector, "
			"retention_days, volume_methods::text, hooks::text, array_to_json(include_resources)::text, "
			"array_to_json(exclude_resources)::text, whole_cluster FROM backup_plans WHERE id = $1",
			1, params, r->err, r->errlen);
	if (!res)
		return -1;
	if (PQntuples(res) != 1) {
		snprintf(r->err, r->errlen, "backup plan %lld no longer exists", r->job->backup_plan_id);
		PQclear(res);
		return -1;
	}
	p->id = r->job->backup_plan_id;
	snprintf(p->name, sizeof p->name, "%s", PQgetvalue(res, 0, 0));
	p->cluster_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	p->repository_id = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	p->namespaces = cJSON_Parse(PQgetvalue(res, 0, 3));
	p->label_selector = *PQgetvalue(res, 0, 4) ? xstrdup(PQgetvalue(res, 0, 4)) : NULL;
	p->retention_days = strtol(PQgetvalue(res, 0, 5), NULL, 10);
	p->volume_methods = cJSON_Parse(PQgetvalue(res, 0, 6));
	p->hooks = cJSON_Parse(PQgetvalue(res, 0, 7));
	p->include_resources = cJSON_Parse(PQgetvalue(res, 0, 8));
	p->exclude_resources = cJSON_Parse(PQgetvalue(res, 0, 9));
	p->whole_cluster = strcmp(PQgetvalue(res, 0, 10), "t") == 0;
	PQclear(res);
	if (!cJSON_IsArray(p->namespaces) || !cJSON_IsObject(p->volume_methods) || !cJSON_IsArray(p->hooks) ||
	    !cJSON_IsArray(p->include_resources) || !cJSON_IsArray(p->exclude_resources)) {
		snprintf(r->err, r->errlen, "backup plan %s: its stored namespaces, volume methods or hooks are malformed", p->name);
		return -1;
	}
	return 0;
}

static void plan_free(struct backup_plan *p)
{
	cJSON_Delete(p->namespaces);
	cJSON_Delete(p->volume_methods);
	cJSON_Delete(p->hooks);
	cJSON_Delete(p->include_resources);
	cJSON_Delete(p->exclude_resources);
	free(p->label_selector);
}

/* Creates the backups row and points the job at it, in one statement. */
static int backup_row_create(struct backup_run *r)
{
	char stamp[32], job_id[24], plan_id[24], days[24], cluster_id[24], repo_id[24];
	char *namespaces = cJSON_PrintUnformatted(r->plan.namespaces);
	const char *params[] = { job_id, r->plan.id ? plan_id : NULL, r->name, namespaces, days, cluster_id, repo_id,
				 r->plan.id ? r->plan.name : NULL };
	struct tm tm;
	PGresult *res = NULL;
	int rc = -1;

	r->started = time(NULL);
	gmtime_r(&r->started, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
	snprintf(job_id, sizeof job_id, "%lld", r->job->id);
	snprintf(plan_id, sizeof plan_id, "%lld", r->plan.id);
	snprintf(days, sizeof days, "%ld", r->plan.retention_days);
	snprintf(cluster_id, sizeof cluster_id, "%lld", r->plan.cluster_id);
	snprintf(repo_id, sizeof repo_id, "%lld", r->plan.repository_id);
	/* <plan>-<UTC second>; another backup of the plan in the same second gets -2, -3, ... */
	for (int n = 1; n <= 20 && rc < 0; n++) {
		if (n == 1)
			snprintf(r->name, sizeof r->name, "%s-%s", r->plan.name, stamp);
		else
			snprintf(r->name, sizeof r->name, "%s-%s-%d", r->plan.name, stamp, n);
		res = job_query(r->job,
				"WITH b AS (INSERT INTO backups (plan_id, cluster_id, repository_id, name, namespaces, expires_at, plan_name) "
				"  VALUES ($2, $6, $7, $3, ARRAY(SELECT jsonb_array_elements_text($4::jsonb)), "
				"         now() + make_interval(days => $5::integer), coalesce($8, '')) "
				"  ON CONFLICT (org_id, name) DO NOTHING RETURNING id) "
				"UPDATE jobs SET backup_id = b.id FROM b WHERE jobs.id = $1 RETURNING b.id",
				8, params, r->err, r->errlen);
		if (!res)
			break;
		if (PQntuples(res) == 1) {
			r->job->backup_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
			rc = 0;
		}
		PQclear(res);
	}
	if (rc < 0 && res)
		snprintf(r->err, r->errlen, "a backup named %s already exists: 20 backups of plan %s started in the same second",
			 r->name, r->plan.name);
	free(namespaces);
	return rc;
}

/* ---- hooks ---- */

/* The plan's hooks of one phase ("pre-backup" before anything is read, "post-backup" once
 * everything is read, e.g. to resume a quiesced database): run in each of the plan's
 * namespaces, with the others granted. A failing hook whose on_failure is "fail" fails the job. */
static int hooks_run(struct backup_run *r, const char *phase)
{
	cJSON *context;
	const cJSON *first;
	int rc;

	if (cJSON_GetArraySize(r->plan.hooks) == 0)
		return 0;
	phase_begin(r, phase);
	first = cJSON_GetArrayItem(r->plan.namespaces, 0);
	context = cJSON_CreateObject();
	cJSON_AddStringToObject(context, "plan", r->plan.name);
	cJSON_AddStringToObject(context, "cluster", r->cluster_name);
	cJSON_AddStringToObject(context, "backup", r->name);
	cJSON_AddStringToObject(context, "source_namespace", first->valuestring);
	cJSON_AddItemToObject(context, "namespaces", cJSON_Duplicate(r->plan.namespaces, 1));
	rc = job_run_hooks(r->job, phase, r->plan.hooks, r->k8s, context, r->err, r->errlen);
	cJSON_Delete(context);
	phase_end(r, rc < 0 ? "failed" : "succeeded");
	return rc;
}

/* Whether the plan asks for hooks at post-backup (only the entries that name it run there). */
static int has_post_backup_hooks(const struct backup_run *r)
{
	const cJSON *h;

	cJSON_ArrayForEach(h, r->plan.hooks) {
		const cJSON *phase = cJSON_GetObjectItemCaseSensitive(h, "phase");

		if (cJSON_IsString(phase) && strcmp(phase->valuestring, "post-backup") == 0)
			return 1;
	}
	return 0;
}

/* A backup that fails or is cancelled once its pre-backup hooks have begun still runs its
 * post-backup hooks: they resume what pre-backup quiesced (a database holding its writes would
 * otherwise wait for its lock's own limit). The job keeps its first error; a failing
 * post-backup hook is added to it. Returns -1. */
static int resume_after_failure(struct backup_run *r)
{
	char *err = r->err, second[1024] = "";
	size_t errlen = r->errlen, n;
	int rc;

	cancel_check(r);	/* a hook that stopped for a cancellation returns its own error */
	if (!has_post_backup_hooks(r))
		return -1;
	job_log(r->job, "warning", "the backup stopped%s%s: its post-backup hooks run all the same, to resume what "
		"its pre-backup hooks quiesced", r->cancelled ? " (cancelled)" : ": ", r->cancelled ? "" : err);
	r->err = second;
	r->errlen = sizeof second;
	rc = hooks_run(r, "post-backup");
	r->err = err;
	r->errlen = errlen;
	n = strlen(err);
	if (rc < 0 && n < errlen)
		snprintf(err + n, errlen - n, "; and at post-backup: %s", second);
	return -1;
}

/* ---- discovery ---- */

/* Types whose objects are not worth keeping: events are a log, not state (and the busiest
 * type of a namespace), and metrics are computed live by an aggregated API. Pods are kept, as
 * Velero keeps them; the restore skips what controllers recreate. */
static int type_is_noise(const struct k8s_resource_type *t)
{
	return (strcmp(t->group, "") == 0 && strcmp(t->plural, "events") == 0) ||
	       strcmp(t->group, "events.k8s.io") == 0 ||
	       strcmp(t->group, "metrics.k8s.io") == 0;
}

static int type_matches(const cJSON *patterns, const struct k8s_resource_type *t)
{
	struct strbuf gr = STRBUF_INIT;
	const cJSON *p;
	int found = 0;

	strbuf_addstr(&gr, t->plural);
	if (*t->group)
		strbuf_addf(&gr, ".%s", t->group);
	cJSON_ArrayForEach(p, patterns)
		found |= cJSON_IsString(p) && fnmatch(p->valuestring, gr.buf, 0) == 0;
	strbuf_release(&gr);
	return found;
}

/* Whether the plan backs up objects of type t: namespaced, listable, not noise, included
 * (every type when the plan includes none) and not excluded. */
static int type_is_listed(const struct backup_plan *p, const struct k8s_resource_type *t)
{
	return t->namespaced && (t->verbs & K8S_VERB_LIST) && !type_is_noise(t) &&
	       (cJSON_GetArraySize(p->include_resources) == 0 || type_matches(p->include_resources, t)) &&
	       !type_matches(p->exclude_resources, t);
}

/* Cluster-scoped types a whole-cluster backup leaves out: the nodes and what they publish, the
 * cluster's own bookkeeping (allocated addresses, certificate requests, storage versions), and
 * the namespaces (each one comes with its objects). docs/jobs.md lists them. */
static int cluster_type_is_noise(const struct k8s_resource_type *t)
{
	static const char *const noise[][2] = {
		{ "", "nodes" }, { "", "componentstatuses" }, { "", "namespaces" },
		{ "certificates.k8s.io", "certificatesigningrequests" },
		{ "storage.k8s.io", "csinodes" }, { "storage.k8s.io", "volumeattachments" },
		{ "networking.k8s.io", "ipaddresses" }, { "networking.k8s.io", "servicecidrs" },
		{ "resource.k8s.io", "resourceslices" }, { "internal.apiserver.k8s.io", "storageversions" },
		{ "storagemigration.k8s.io", "storageversionmigrations" },
	};

	for (size_t i = 0; i < sizeof noise / sizeof noise[0]; i++)
		if (strcmp(t->group, noise[i][0]) == 0 && strcmp(t->plural, noise[i][1]) == 0)
			return 1;
	return type_is_noise(t);
}

static int type_is_cluster_listed(const struct backup_plan *p, const struct k8s_resource_type *t)
{
	return !t->namespaced && (t->verbs & K8S_VERB_LIST) && !cluster_type_is_noise(t) &&
	       (cJSON_GetArraySize(p->include_resources) == 0 || type_matches(p->include_resources, t)) &&
	       !type_matches(p->exclude_resources, t);
}

static int discover(struct backup_run *r)
{
	struct k8s_error kerr;
	char why[640];
	long listed = 0;

	phase_begin(r, "discover");
	if (k8s_discover(r->k8s, K8S_DISCOVERY_AUTO, &r->types, &kerr) < 0) {
		k8s_error_describe(&kerr, why, sizeof why);
		snprintf(r->err, r->errlen, "cluster %s: discovering its resource types failed: %s", r->cluster_name, why);
		return phase_close(r, -1);
	}
	r->type_found = xcalloc(r->types.n ? r->types.n : 1, 1);
	for (size_t i = 0; i < r->types.n; i++)
		listed += type_is_listed(&r->plan, &r->types.items[i]);
	job_log(r->job, "info", "cluster %s serves %zu resource types; %ld namespaced ones are backed up",
		r->cluster_name, r->types.n, listed);
	return phase_close(r, 0);
}

/* ---- recording objects ---- */

static void fail_item(struct backup_run *r, const struct k8s_resource_type *t, const char *group, const char *plural,
		      const char *ns, const char *name, const char *message)
{
	struct strbuf what = STRBUF_INIT;

	if (t) {
		group = t->group;
		plural = t->plural;
	}
	name = name ? name : "";
	backup_archive_group_resource(group, plural, &what);
	if (*name)
		strbuf_addf(&what, " %s%s%s", ns, *ns ? "/" : "", name);
	else if (*ns)
		strbuf_addf(&what, " in %s", ns);
	r->failed++;
	job_item(r->job, "failed", group, plural, ns, name, message);
	job_log(r->job, "error", "%s: %s", what.buf, message);
	strbuf_release(&what);
}

static void counts_add(struct backup_run *r, const struct k8s_resource_type *t)
{
	char gr[400];
	cJSON *n;

	group_resource(t, gr, sizeof gr);
	n = cJSON_GetObjectItemCaseSensitive(r->counts, gr);
	if (n)
		cJSON_SetNumberValue(n, n->valuedouble + 1);
	else
		cJSON_AddNumberToObject(r->counts, gr, 1);
}

static void resource_list_add(struct backup_run *r, const struct k8s_resource_type *t, const char *ns, const char *name)
{
	char key[600], entry[600];
	cJSON *list;

	snprintf(key, sizeof key, "%s%s%s/%s", t->group, *t->group ? "/" : "", t->version, t->kind);
	snprintf(entry, sizeof entry, "%s%s%s", ns, *ns ? "/" : "", name);
	list = cJSON_GetObjectItemCaseSensitive(r->resource_list, key);
	if (!list) {
		list = cJSON_CreateArray();
		cJSON_AddItemToObject(r->resource_list, key, list);
		/* what a restore's selection names the type by (sql/023 backups.resource_types) */
		cJSON *type = cJSON_AddObjectToObject(r->resource_types, key);
		cJSON_AddStringToObject(type, "resource", t->plural);
		cJSON_AddStringToObject(type, "group", t->group);
		cJSON_AddBoolToObject(type, "namespaced", t->namespaced);
	}
	cJSON_AddItemToArray(list, cJSON_CreateString(entry));
}

/* The PriorityClass a pod, or the pod template of a workload or a CronJob, runs at. */
static void note_priority_class(struct backup_run *r, const cJSON *obj)
{
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
	const cJSON *pod = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "template"), "spec");
	const cJSON *job = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "jobTemplate"), "spec");
	const cJSON *job_pod = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(job, "template"), "spec");

	names_add(r->priority_classes, string_at(spec, "priorityClassName", NULL));
	names_add(r->priority_classes, string_at(pod, "priorityClassName", NULL));
	names_add(r->priority_classes, string_at(job_pod, "priorityClassName", NULL));
}

/* The ClusterRole a binding grants (a RoleBinding may grant one within its namespace). */
static void note_cluster_role(struct backup_run *r, const cJSON *binding)
{
	const cJSON *ref = cJSON_GetObjectItemCaseSensitive(binding, "roleRef");
	const char *kind = string_at(ref, "kind", NULL);

	if (kind && strcmp(kind, "ClusterRole") == 0)
		names_add(r->cluster_roles, string_at(ref, "name", NULL));
}

/* What the volumes phase and the cluster-scoped additions need from an object: a claim's
 * volume and class, a volume's class, a pod's PriorityClass, a RoleBinding's ClusterRole. */
static void note_dependencies(struct backup_run *r, const struct k8s_resource_type *t, const cJSON *obj,
			      const char *ns, const char *name)
{
	if (strcmp(t->group, "rbac.authorization.k8s.io") == 0 && strcmp(t->plural, "rolebindings") == 0)
		note_cluster_role(r, obj);
	if (*ns)
		note_priority_class(r, obj);
	if (*t->group)
		return;
	if (strcmp(t->plural, "persistentvolumeclaims") == 0) {
		char key[600];
		const char *volume = string_at(obj, "spec", "volumeName");
		const char *sc = string_at(obj, "spec", "storageClassName");
		const char *method;
		cJSON *v = cJSON_CreateObject();

		snprintf(key, sizeof key, "%s/%s", ns, name);
		method = string_at(r->plan.volume_methods, key, NULL);
		cJSON_AddStringToObject(v, "namespace", ns);
		cJSON_AddStringToObject(v, "claim", name);
		cJSON_AddStringToObject(v, "volume", volume ? volume : "");
		cJSON_AddStringToObject(v, "storage_class", sc ? sc : "");
		cJSON_AddStringToObject(v, "method", method ? method : "none");
		cJSON_AddItemToArray(r->volumes, v);
		names_add(r->pv_names, volume);
		names_add(r->storage_classes, sc);
	} else if (strcmp(t->plural, "persistentvolumes") == 0) {
		names_add(r->storage_classes, string_at(obj, "spec", "storageClassName"));
	}
}

/* Archives and records one object of type t in ns ("" for a cluster-scoped one). 0, or -1
 * when the backup must stop (r->err, or r->cancelled). */
static int write_object(struct backup_run *r, const struct k8s_resource_type *t, const char *ns, const cJSON *obj)
{
	const char *name = string_at(obj, "metadata", "name");
	const char *obj_ns = string_at(obj, "metadata", "namespace");
	char *json;
	int rc;

	if (cancel_check(r))
		return -1;
	if (!name || !*name || strcmp(obj_ns ? obj_ns : "", ns) != 0) {
		fail_item(r, t, NULL, NULL, ns, name ? name : "", "the API server returned an object without a name "
			  "or from another namespace");
		return 0;
	}
	if (restore_builtin_reason(t->group, t->plural, obj))	/* every cluster has its own */
		return 0;
	json = cJSON_PrintUnformatted(obj);
	rc = backup_archive_add_object(r->archive, t->group, t->version, t->plural, ns, name, json, strlen(json),
				       r->err, r->errlen);
	free(json);
	if (rc < 0)
		return -1;
	r->objects++;
	counts_add(r, t);
	resource_list_add(r, t, ns, name);
	note_dependencies(r, t, obj, ns, name);
	job_items_batch_add(&r->items, "backed_up", t->group, "", t->plural, ns, name, "", "");
	return 0;
}

/* ---- reading the cluster ---- */

/* One type's listing, written page by page as it comes: a namespace of 100,000 objects is
 * never in memory at once. */
struct listing {
	struct backup_run *r;
	const struct k8s_resource_type *t;
	const char *ns;
	char phase[700];
	long done;
	int failed;		/* write_object said stop */
	int restarted;		/* the listing started over: skip what was written */
	char last[254];		/* the name last written */
	int (*keep)(struct backup_run *r, const cJSON *obj);	/* NULL: every object */
};

static int listing_write(cJSON *obj, void *ud)
{
	struct listing *l = ud;
	const char *name;

	if (!obj) {
		/* The listing starts over from a newer snapshot. An etcd list comes in key order,
		 * so what sorts up to the last name written is in the archive already. */
		l->restarted = 1;
		return 0;
	}
	name = string_at(obj, "metadata", "name");
	if (l->restarted && name && strcmp(name, l->last) <= 0)
		return 0;
	if (l->keep && !l->keep(l->r, obj))
		return 0;
	if (write_object(l->r, l->t, l->ns, obj) < 0) {
		l->failed = 1;
		return 1;
	}
	if (*l->ns)
		l->r->type_found[l->t - l->r->types.items] = 1;
	if (name)
		snprintf(l->last, sizeof l->last, "%s", name);
	job_progress(l->r->job, l->phase, ++l->done, 0, 0, 0);
	return 0;
}

/* Lists and writes every object of one type in ns. */
static int backup_type(struct backup_run *r, const struct k8s_resource_type *t, const char *ns)
{
	struct listing l = { .r = r, .t = t, .ns = ns };
	struct k8s_error kerr;
	char why[640], gr[400];
	int rc = 0;

	group_resource(t, gr, sizeof gr);
	snprintf(l.phase, sizeof l.phase, "resources: %s%s%s", gr, *ns ? " in " : "", ns);
	if (k8s_list(r->k8s, t, ns, r->plan.label_selector, LIST_PAGE_SIZE, listing_write, &l, &kerr) < 0) {
		if (!r->cancelled && !l.failed) {
			k8s_error_describe(&kerr, why, sizeof why);
			fail_item(r, t, NULL, NULL, ns, "", why);
		}
		rc = r->cancelled || l.failed ? -1 : 0;
	}
	job_items_batch_flush(&r->items);
	return rc;
}

/* One cluster-scoped object by name. missing_ok: a 404 is not a failure (a CRD looked up for
 * a type that an aggregated API serves). */
static int backup_cluster_object(struct backup_run *r, const char *group, const char *plural, const char *name,
				 int missing_ok)
{
	const struct k8s_resource_type *t = k8s_resource_find(&r->types, group, plural);
	struct k8s_error kerr;
	cJSON *obj = NULL;
	char *path, why[640];
	int rc;

	if (!t) {
		fail_item(r, NULL, group, plural, "", name, "the cluster does not serve this resource type");
		return 0;
	}
	path = k8s_resource_path(t->group, t->version, t->plural, NULL, name);
	rc = k8s_get(r->k8s, path, &obj, &kerr);
	free(path);
	if (rc < 0) {
		if (!(missing_ok && kerr.http_status == 404)) {
			k8s_error_describe(&kerr, why, sizeof why);
			fail_item(r, t, NULL, NULL, "", name, why);
		}
		return 0;
	}
	rc = write_object(r, t, "", obj);
	job_items_batch_flush(&r->items);
	cJSON_Delete(obj);
	return rc;
}

static int backup_namespace(struct backup_run *r, const char *ns)
{
	long before = r->objects;

	if (!dns_label(ns)) {
		fail_item(r, NULL, "", "namespaces", "", ns, "not a valid namespace name");
		return 0;
	}
	if (backup_cluster_object(r, "", "namespaces", ns, 0) < 0)
		return -1;
	for (size_t i = 0; i < r->types.n; i++) {
		if (!type_is_listed(&r->plan, &r->types.items[i]))
			continue;
		if (backup_type(r, &r->types.items[i], ns) < 0)
			return -1;
	}
	job_log(r->job, "info", "namespace %s: %ld objects", ns, r->objects - before);
	return 0;
}

/* Whether a ClusterRoleBinding names a ServiceAccount of a namespace this backup holds. */
static int binding_names_our_accounts(const struct backup_run *r, const cJSON *binding)
{
	const cJSON *subject;

	cJSON_ArrayForEach(subject, cJSON_GetObjectItemCaseSensitive(binding, "subjects")) {
		const char *kind = string_at(subject, "kind", NULL), *ns = string_at(subject, "namespace", NULL);
		if (kind && ns && strcmp(kind, "ServiceAccount") == 0 && json_array_has(r->plan.namespaces, ns))
			return 1;
	}
	return 0;
}

/* The ClusterRoleBindings that grant the namespaces' ServiceAccounts cluster-wide rights, and
 * (noted) the ClusterRoles they grant. Credentials that may not list them leave them out, in
 * the log: the namespaces are still backed up. */
static int binding_keep(struct backup_run *r, const cJSON *binding)
{
	if (!binding_names_our_accounts(r, binding))
		return 0;
	note_cluster_role(r, binding);
	return 1;
}

static int backup_cluster_bindings(struct backup_run *r)
{
	const struct k8s_resource_type *t = k8s_resource_find(&r->types, "rbac.authorization.k8s.io", "clusterrolebindings");
	struct listing l = { .r = r, .t = t, .ns = "", .keep = binding_keep };
	struct k8s_error kerr;
	char why[640];

	if (!t)
		return 0;
	snprintf(l.phase, sizeof l.phase, "resources: clusterrolebindings");
	if (k8s_list(r->k8s, t, NULL, NULL, LIST_PAGE_SIZE, listing_write, &l, &kerr) < 0) {
		job_items_batch_flush(&r->items);
		if (r->cancelled || l.failed)
			return -1;
		k8s_error_describe(&kerr, why, sizeof why);
		if (kerr.http_status == 403)
			job_log(r->job, "warning", "ClusterRoleBindings: not backed up, the cluster's credentials may not list "
				"them (%s): the namespaces' service accounts will lack their cluster-wide rights after a "
				"restore into another cluster", why);
		else
			fail_item(r, t, NULL, NULL, "", "", why);
		return 0;
	}
	job_items_batch_flush(&r->items);
	return 0;
}

/* The cluster-scoped objects the namespaces depend on: the CRDs of their custom resources,
 * the bindings granting their accounts cluster-wide rights and the ClusterRoles granted, the
 * volumes bound to their claims, the claims' and volumes' StorageClasses and the pods'
 * PriorityClasses. A class or role named but missing is no failure: nothing to keep. */
static int backup_dependencies(struct backup_run *r)
{
	const cJSON *v;

	for (size_t i = 0; i < r->types.n; i++) {
		const struct k8s_resource_type *t = &r->types.items[i];
		char crd[400];

		if (!r->type_found[i] || !*t->group)
			continue;
		snprintf(crd, sizeof crd, "%s.%s", t->plural, t->group);
		if (backup_cluster_object(r, "apiextensions.k8s.io", "customresourcedefinitions", crd, 1) < 0)
			return -1;
	}
	if (backup_cluster_bindings(r) < 0)
		return -1;
	/* each list made unique just before it is read: reading one can add to the next (a volume
	 * names its class) */
	json_array_unique(r->cluster_roles);
	cJSON_ArrayForEach(v, r->cluster_roles)
		if (backup_cluster_object(r, "rbac.authorization.k8s.io", "clusterroles", v->valuestring, 1) < 0)
			return -1;
	json_array_unique(r->pv_names);
	cJSON_ArrayForEach(v, r->pv_names)
		if (backup_cluster_object(r, "", "persistentvolumes", v->valuestring, 0) < 0)
			return -1;
	json_array_unique(r->storage_classes);
	cJSON_ArrayForEach(v, r->storage_classes)
		if (backup_cluster_object(r, "storage.k8s.io", "storageclasses", v->valuestring, 1) < 0)
			return -1;
	json_array_unique(r->priority_classes);
	cJSON_ArrayForEach(v, r->priority_classes)
		if (strncmp(v->valuestring, "system-", 7) != 0 &&
		    backup_cluster_object(r, "scheduling.k8s.io", "priorityclasses", v->valuestring, 1) < 0)
			return -1;
	return 0;
}

/* A whole-cluster backup: every cluster-scoped type the plan backs up (type_is_listed's rules,
 * less the noise of cluster_type_is_noise), all of its objects. */
static int backup_cluster_types(struct backup_run *r)
{
	long before = r->objects;

	for (size_t i = 0; i < r->types.n; i++) {
		const struct k8s_resource_type *t = &r->types.items[i];

		if (!type_is_cluster_listed(&r->plan, t))
			continue;
		if (backup_type(r, t, "") < 0)
			return -1;
	}
	job_log(r->job, "info", "cluster-scoped: %ld objects", r->objects - before);
	return 0;
}

static int backup_resources(struct backup_run *r)
{
	const cJSON *ns;
	int rc = 0;

	phase_begin(r, "resources");
	cJSON_ArrayForEach(ns, r->plan.namespaces) {
		if (!cJSON_IsString(ns))
			continue;
		if ((rc = backup_namespace(r, ns->valuestring)) < 0)
			break;
	}
	if (rc == 0)
		rc = r->plan.whole_cluster ? backup_cluster_types(r) : backup_dependencies(r);
	if (rc == 0)
		rc = backup_archive_finish(r->archive, &r->archive_bytes, r->err, r->errlen);
	else
		backup_archive_abandon(r->archive);
	r->archive = NULL;
	json_set(r->job->result, "counts", cJSON_Duplicate(r->counts, 1));
	if (rc == 0)
		job_log(r->job, "info", "%ld objects archived (%lld bytes compressed)%s", r->objects,
			(long long)r->archive_bytes, r->failed ? "; some could not be read" : "");
	phase_end(r, rc < 0 ? (r->cancelled ? "cancelled" : "failed") : r->failed ? "partially_failed" : "succeeded");
	return rc;
}

/* Each claim's data by its method (job_volumes.h). A volume that fails leaves the backup
 * partially failed: its resources and the other volumes are still good. */
static int backup_volumes(struct backup_run *r)
{
	size_t n = (size_t)cJSON_GetArraySize(r->plan.namespaces), i = 0;
	char **namespaces = xcalloc(n ? n : 1, sizeof *namespaces);
	char err[1024];
	const cJSON *ns;

	const struct k8s_resource_type *claims = k8s_resource_find(&r->types, "", "persistentvolumeclaims");
	if (claims && !type_is_listed(&r->plan, claims)) {
		job_log(r->job, "info", "volume data: not copied, as the plan leaves PersistentVolumeClaims out");
		free(namespaces);
		return 0;
	}
	phase_begin(r, "volumes");
	cJSON_ArrayForEach(ns, r->plan.namespaces)
		namespaces[i++] = ns->valuestring;
	r->volume_data = cJSON_CreateArray();
	if (job_backup_volumes(r->job, r->k8s, r->plan.cluster_id, &r->repo, r->name, namespaces, n, r->plan.label_selector,
			       r->plan.volume_methods, r->volume_data, err, sizeof err) < 0) {
		r->failed++;
		job_log(r->job, "error", "volume data: %s", err);
	}
	free(namespaces);
	phase_end(r, r->job->cancelled ? "cancelled" : "succeeded");
	return 0;
}

/* ---- the repository ---- */

/* The repository's key for the objects a backup writes (repo_seal.h). */
static int seal_key(struct backup_run *r, uint8_t key[AEAD_KEY_LEN])
{
	if (repo_seal_key(r->job->ctx->master_key, r->repo.id, key) < 0) {
		snprintf(r->err, r->errlen, "repository %lld: cannot derive its key", r->repo.id);
		return -1;
	}
	return 0;
}

static int put_mem(struct backup_run *r, const char *file, const void *data, size_t len)
{
	struct strbuf key = STRBUF_INIT, sealed = STRBUF_INIT;
	uint8_t k[AEAD_KEY_LEN];
	struct s3_error serr;
	char why[640];
	int rc;

	if (seal_key(r, k) < 0)
		return -1;
	repo_key(r, file, &key);
	repo_seal_mem(k, key.buf, data, len, &sealed);
	OPENSSL_cleanse(k, sizeof k);
	rc = s3_put_mem(r->repo.s3, key.buf, sealed.buf, sealed.len, &serr);
	if (rc < 0) {
		s3_error_describe(&serr, why, sizeof why);
		snprintf(r->err, r->errlen, "uploading %s: %s", key.buf, why);
	} else {
		r->bytes += (int64_t)sealed.len;
	}
	strbuf_release(&key);
	strbuf_release(&sealed);
	return rc;
}

static int put_gzip(struct backup_run *r, const char *file, const char *text)
{
	struct strbuf gz = STRBUF_INIT;
	int rc = backup_gzip(text, strlen(text), &gz, r->err, r->errlen);

	if (rc == 0)
		rc = put_mem(r, file, gz.buf, gz.len);
	strbuf_release(&gz);
	return rc;
}

struct file_upload {
	struct backup_run *r;
	FILE *f;
	int64_t done;
};

static long file_upload_read(void *buf, size_t len, void *ud)
{
	struct file_upload *u = ud;
	size_t n;

	if (cancel_check(u->r))
		return -1;
	n = fread(buf, 1, len, u->f);
	if (n == 0 && ferror(u->f))
		return -1;
	u->done += (int64_t)n;
	job_progress(u->r->job, "upload", 0, 0, u->done, u->r->archive_bytes);
	return (long)n;
}

static long sealed_upload_read(void *buf, size_t len, void *ud)
{
	return repo_sealer_read(ud, buf, len);
}

static int put_archive(struct backup_run *r)
{
	struct file_upload u = { r, fopen(r->archive_path, "rb"), 0 };
	struct strbuf key = STRBUF_INIT, file = STRBUF_INIT;
	struct repo_sealer sealer;
	uint8_t k[AEAD_KEY_LEN];
	struct s3_error serr;
	char why[640];
	int rc;

	if (!u.f) {
		snprintf(r->err, r->errlen, "%s: %s", r->archive_path, strerror(errno));
		return -1;
	}
	if (seal_key(r, k) < 0) {
		fclose(u.f);
		return -1;
	}
	strbuf_addf(&file, "%s.tar.gz", r->name);
	repo_key(r, file.buf, &key);
	repo_sealer_init(&sealer, k, key.buf, (uint64_t)r->archive_bytes, file_upload_read, &u);
	OPENSSL_cleanse(k, sizeof k);
	rc = s3_put_stream(r->repo.s3, key.buf, sealed_upload_read, &sealer,
			   (int64_t)repo_seal_size((uint64_t)r->archive_bytes), &serr);
	repo_sealer_release(&sealer);
	if (rc < 0 && !r->cancelled) {
		s3_error_describe(&serr, why, sizeof why);
		snprintf(r->err, r->errlen, "uploading %s: %s", key.buf, why);
	}
	if (rc == 0) {
		r->bytes += (int64_t)repo_seal_size((uint64_t)r->archive_bytes);
		cJSON_DeleteItemFromObjectCaseSensitive(r->job->result, "archive_bytes");
		cJSON_AddNumberToObject(r->job->result, "archive_bytes", (double)r->archive_bytes);
	}
	fclose(u.f);
	strbuf_release(&key);
	strbuf_release(&file);
	return rc;
}

/* The job's log lines so far, one a line: "<time> <level> <message>". */
static int log_text(struct backup_run *r, struct strbuf *out)
{
	char id[24];
	const char *params[] = { id };
	PGresult *res;

	snprintf(id, sizeof id, "%lld", r->job->id);
	res = job_query(r->job, "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), level, message "
			"FROM job_logs WHERE job_id = $1 ORDER BY id", 1, params, r->err, r->errlen);
	if (!res)
		return -1;
	for (int i = 0; i < PQntuples(res); i++)
		strbuf_addf(out, "%s %s %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
	PQclear(res);
	return 0;
}

static int backup_upload(struct backup_run *r)
{
	struct strbuf file = STRBUF_INIT, logs = STRBUF_INIT;
	char *list = cJSON_PrintUnformatted(r->resource_list);
	int rc;

	phase_begin(r, "upload");
	rc = put_archive(r);
	if (rc == 0 && !cancel_check(r)) {
		strbuf_addf(&file, "%s-resource-list.json.gz", r->name);
		rc = put_gzip(r, file.buf, list);
	}
	if (rc == 0 && !cancel_check(r) && cJSON_GetArraySize(r->volume_data) > 0) {
		char *volumes = cJSON_PrintUnformatted(r->volume_data);
		strbuf_reset(&file);
		strbuf_addf(&file, "%s-volumes.json", r->name);
		rc = put_mem(r, file.buf, volumes, strlen(volumes));
		free(volumes);
	}
	if (rc == 0 && !cancel_check(r)) {
		job_log(r->job, "info", "archive and resource list uploaded to %s/%sbackups/%s/",
			r->repo.bucket, r->repo.prefix, r->name);
		strbuf_reset(&file);
		strbuf_addf(&file, "%s-logs.gz", r->name);
		rc = log_text(r, &logs);
		if (rc == 0)
			rc = put_gzip(r, file.buf, logs.buf);
	}
	if (r->cancelled)
		rc = -1;
	free(list);
	strbuf_release(&file);
	strbuf_release(&logs);
	return phase_close(r, rc);
}

/* velero-backup.json: a Backup object as Velero writes it, plus our own annotations. */
static char *velero_backup_json(struct backup_run *r, const char *phase, time_t completed)
{
	cJSON *b = cJSON_CreateObject(), *meta, *ann, *spec, *status, *progress;
	char started[32], done[32], expires[32], ttl[32];
	char *counts = cJSON_PrintUnformatted(r->counts), *out;

	rfc3339(r->started, started, sizeof started);
	rfc3339(completed, done, sizeof done);
	rfc3339(r->started + r->plan.retention_days * 86400, expires, sizeof expires);
	snprintf(ttl, sizeof ttl, "%ldh0m0s", r->plan.retention_days * 24);
	cJSON_AddStringToObject(b, "apiVersion", "velero.io/v1");
	cJSON_AddStringToObject(b, "kind", "Backup");
	meta = cJSON_AddObjectToObject(b, "metadata");
	cJSON_AddStringToObject(meta, "name", r->name);
	cJSON_AddStringToObject(meta, "namespace", "velero");
	cJSON_AddStringToObject(meta, "creationTimestamp", started);
	ann = cJSON_AddObjectToObject(meta, "annotations");
	cJSON_AddStringToObject(ann, "stowage.dev/plan", r->plan.name);
	cJSON_AddStringToObject(ann, "stowage.dev/cluster", r->cluster_name);
	cJSON_AddStringToObject(ann, "stowage.dev/counts", counts);
	cJSON_AddStringToObject(ann, "stowage.dev/label-selector", r->plan.label_selector ? r->plan.label_selector : "");
	cJSON_AddStringToObject(ann, "stowage.dev/whole-cluster", r->plan.whole_cluster ? "true" : "false");
	spec = cJSON_AddObjectToObject(b, "spec");
	cJSON_AddItemToObject(spec, "includedNamespaces", cJSON_Duplicate(r->plan.namespaces, 1));
	cJSON_AddItemToObject(spec, "includedResources", cJSON_CreateStringArray((const char *[]){ "*" }, 1));
	if (r->plan.whole_cluster)
		cJSON_AddTrueToObject(spec, "includeClusterResources");
	cJSON_AddStringToObject(spec, "ttl", ttl);
	status = cJSON_AddObjectToObject(b, "status");
	cJSON_AddNumberToObject(status, "version", 1);
	cJSON_AddStringToObject(status, "formatVersion", BACKUP_FORMAT_VERSION);
	cJSON_AddStringToObject(status, "phase", phase);
	cJSON_AddStringToObject(status, "startTimestamp", started);
	cJSON_AddStringToObject(status, "completionTimestamp", done);
	cJSON_AddStringToObject(status, "expiration", expires);
	progress = cJSON_AddObjectToObject(status, "progress");
	cJSON_AddNumberToObject(progress, "totalItems", (double)(r->objects + r->failed));
	cJSON_AddNumberToObject(progress, "itemsBackedUp", (double)r->objects);
	cJSON_AddNumberToObject(status, "errors", (double)r->failed);
	out = cJSON_Print(b);
	cJSON_Delete(b);
	free(counts);
	return out;
}

/* What the backup's page shows without reading the bucket (sql/013_backup_catalog.sql): the
 * resource list, the volumes, the hooks with their results (not their log lines), the cluster's
 * name. Four strings into out[0..3], freed by catalog_text_free. */
static void catalog_text(struct backup_run *r, const char **out)
{
	const cJSON *hooks = cJSON_GetObjectItemCaseSensitive(r->job->result, "hooks"), *h;
	cJSON *summary = cJSON_CreateArray();

	cJSON_ArrayForEach(h, hooks) {
		cJSON *o = cJSON_Duplicate(h, 1);
		cJSON_DeleteItemFromObjectCaseSensitive(o, "log");
		cJSON_AddItemToArray(summary, o);
	}
	out[0] = cJSON_PrintUnformatted(r->resource_list);
	out[1] = r->volume_data ? cJSON_PrintUnformatted(r->volume_data) : xstrdup("[]");
	out[2] = cJSON_PrintUnformatted(summary);
	out[3] = xstrdup(r->cluster_name);
	cJSON_Delete(summary);
}

static void catalog_text_free(const char **p)
{
	for (int i = 0; i < 4; i++)
		free((char *)p[i]);
}

static int backup_finalize(struct backup_run *r, const char *state)
{
	char id[24], count[24], bytes[24];
	const char *params[9] = { id, state, count, bytes };
	char *doc;
	PGresult *res;
	int rc;

	phase_begin(r, "finalize");
	doc = velero_backup_json(r, strcmp(state, "completed") == 0 ? "Completed" : "PartiallyFailed", time(NULL));
	rc = cancel_check(r) ? -1 : put_mem(r, "velero-backup.json", doc, strlen(doc));
	free(doc);
	if (rc < 0)
		return phase_close(r, -1);
	snprintf(id, sizeof id, "%lld", r->job->backup_id);
	snprintf(count, sizeof count, "%ld", r->objects);
	snprintf(bytes, sizeof bytes, "%lld", (long long)r->bytes);
	catalog_text(r, params + 4);
	char *types = cJSON_PrintUnformatted(r->resource_types);
	params[8] = types;
	res = job_query(r->job, "UPDATE backups SET state = $2, resource_count = $3, bytes = $4, completed_at = now(), "
			"resource_list = $5::jsonb, volumes = $6::jsonb, hooks = $7::jsonb, cluster_name = $8, "
			"resource_types = $9::jsonb, "
			"bytes_new = $4::bigint + coalesce((SELECT sum((v->>'bytes_new')::bigint) FROM jsonb_array_elements($6::jsonb) v), 0) "
			"WHERE id = $1 AND state = 'running' RETURNING id", 9, params, r->err, r->errlen);
	catalog_text_free(params + 4);
	free(types);
	if (res && PQntuples(res) != 1)
		snprintf(r->err, r->errlen, "backup %s was marked failed while it was being written (did this runner "
			 "stop heart-beating?)", r->name);
	rc = res && PQntuples(res) == 1 ? 0 : -1;
	PQclear(res);
	return phase_close(r, rc);
}

/* Deletes what this backup put in the repository: a backup that did not complete leaves
 * nothing behind. */
static int collect_key(const struct s3_object_info *o, void *ud)
{
	cJSON_AddItemToArray(ud, cJSON_CreateString(o->key));
	return 0;
}

static void backup_delete_uploads(struct backup_run *r)
{
	struct strbuf prefix = STRBUF_INIT;
	cJSON *keys = cJSON_CreateArray();
	const cJSON *k;
	struct s3_error serr;
	char why[640];
	int deleted = 0;

	repo_key(r, "", &prefix);
	if (s3_list(r->repo.s3, prefix.buf, 1000, collect_key, keys, &serr) < 0) {
		s3_error_describe(&serr, why, sizeof why);
		job_log(r->job, "error", "cannot list %s to delete this backup's files: %s", prefix.buf, why);
	}
	cJSON_ArrayForEach(k, keys) {
		if (s3_delete(r->repo.s3, k->valuestring, &serr) == 0) {
			deleted++;
			continue;
		}
		s3_error_describe(&serr, why, sizeof why);
		job_log(r->job, "error", "cannot delete %s: %s", k->valuestring, why);
	}
	if (deleted)
		job_log(r->job, "info", "deleted the %d file%s this backup had uploaded", deleted, deleted == 1 ? "" : "s");
	cJSON_Delete(keys);
	strbuf_release(&prefix);
}

/* ---- the job ---- */

/* A whole-cluster plan's namespaces: every one of the cluster's but those being deleted and
 * the system ones (kube-system, kube-public, kube-node-lease), which the plan adds by naming
 * them; recorded on the backups row in place of the plan's list. */
static int namespace_collect(cJSON *obj, void *ud)
{
	cJSON *names = ud;
	const char *name = string_at(obj, "metadata", "name"), *phase = string_at(obj, "status", "phase");
	static const char *const system[] = { "kube-system", "kube-public", "kube-node-lease" };

	if (!obj) {
		json_array_truncate(names, 0);
		return 0;
	}
	/* a name no API server would give (a hostile one's) is no namespace to back up */
	if (!name || !dns_label(name) || (phase && strcmp(phase, "Terminating") == 0))
		return 0;
	for (size_t i = 0; i < sizeof system / sizeof system[0]; i++)
		if (strcmp(name, system[i]) == 0)
			return 0;
	names_add(names, name);
	return 0;
}

static int whole_cluster_namespaces(struct backup_run *r)
{
	static const struct k8s_resource_type namespaces = { "", "v1", "Namespace", "namespaces", 0, K8S_VERB_LIST };
	cJSON *names = cJSON_CreateArray();
	const cJSON *ns;
	struct k8s_error kerr;
	char why[640], id[24];
	char *list;

	if (k8s_list(r->k8s, &namespaces, NULL, NULL, LIST_PAGE_SIZE, namespace_collect, names, &kerr) < 0) {
		k8s_error_describe(&kerr, why, sizeof why);
		snprintf(r->err, r->errlen, "cluster %s: listing its namespaces for a whole-cluster backup failed: %s",
			 r->cluster_name, why);
		cJSON_Delete(names);
		return -1;
	}
	cJSON_ArrayForEach(ns, r->plan.namespaces)
		if (cJSON_IsString(ns))
			names_add(names, ns->valuestring);
	json_array_unique(names);
	cJSON_Delete(r->plan.namespaces);
	r->plan.namespaces = names;
	if (cJSON_GetArraySize(names) == 0) {
		snprintf(r->err, r->errlen, "cluster %s: a whole-cluster backup found no namespace to back up", r->cluster_name);
		return -1;
	}
	list = cJSON_PrintUnformatted(names);
	snprintf(id, sizeof id, "%lld", r->job->backup_id);
	const char *params[] = { id, list };
	if (job_exec(r->job, "UPDATE backups SET namespaces = ARRAY(SELECT jsonb_array_elements_text($2::jsonb)) WHERE id = $1",
		     2, params, r->err, r->errlen) < 0) {
		free(list);
		return -1;
	}
	free(list);
	job_log(r->job, "info", "whole cluster: %d namespaces and every cluster-scoped type but the noise",
		cJSON_GetArraySize(names));
	return 0;
}

static int backup_open(struct backup_run *r)
{
	struct strbuf path = STRBUF_INIT;

	r->k8s = job_cluster_client(r->job, r->plan.cluster_id, r->cluster_name, sizeof r->cluster_name, r->err, r->errlen);
	if (!r->k8s)
		return -1;
	if (job_repository_open(r->job, r->plan.repository_id, &r->repo, r->err, r->errlen) < 0)
		return -1;
	r->repo_open = 1;
	strbuf_addf(&path, "%s/backup-%lld-%s.tar.gz", r->job->ctx->work_dir, r->job->id, r->name);
	r->archive_path = strbuf_take(&path);
	r->archive = backup_archive_create(r->archive_path, r->err, r->errlen);
	if (!r->archive) {
		free(r->archive_path);
		r->archive_path = NULL;
		return -1;
	}
	return 0;
}

static void backup_close(struct backup_run *r)
{
	backup_archive_abandon(r->archive);
	if (r->archive_path && unlink(r->archive_path) < 0 && errno != ENOENT)
		log_error("job %lld: cannot delete %s: %s", r->job->id, r->archive_path, strerror(errno));
	free(r->archive_path);
	if (r->repo_open)
		job_repository_close(&r->repo);
	k8s_client_free(r->k8s);
	k8s_resource_list_free(&r->types);
	free(r->type_found);
	cJSON_Delete(r->counts);
	cJSON_Delete(r->resource_list);
	cJSON_Delete(r->resource_types);
	cJSON_Delete(r->volumes);
	cJSON_Delete(r->volume_data);
	cJSON_Delete(r->pv_names);
	cJSON_Delete(r->storage_classes);
	cJSON_Delete(r->cluster_roles);
	cJSON_Delete(r->priority_classes);
	cJSON_Delete(r->items.rows);
	plan_free(&r->plan);
}

static int backup_steps(struct backup_run *r)
{
	if (backup_row_create(r) < 0)
		return -1;
	json_set(r->job->result, "backup", cJSON_CreateString(r->name));
	job_log(r->job, "info", "backup %s of plan %s: namespaces %d, label selector \"%s\"", r->name, r->plan.name,
		cJSON_GetArraySize(r->plan.namespaces), r->plan.label_selector ? r->plan.label_selector : "");
	if (backup_open(r) < 0)
		return -1;
	if (r->plan.whole_cluster && whole_cluster_namespaces(r) < 0)
		return -1;
	if (hooks_run(r, "pre-backup") < 0 || cancel_check(r))
		return resume_after_failure(r);
	if (discover(r) < 0 || cancel_check(r))
		return resume_after_failure(r);
	if (backup_resources(r) < 0 || cancel_check(r))
		return resume_after_failure(r);
	if (backup_volumes(r) < 0 || cancel_check(r))
		return resume_after_failure(r);
	if (hooks_run(r, "post-backup") < 0 || cancel_check(r))
		return -1;
	if (backup_upload(r) < 0)
		return -1;
	return backup_finalize(r, r->failed ? "partially_failed" : "completed");
}

/* Runs a backup of r->plan (loaded or given) to its end and returns the job's state. */
static const char *backup_execute(struct backup_run *r, int plan_loaded)
{
	struct job *job = r->job;
	char *err = r->err;
	size_t errlen = r->errlen;
	const char *state = "succeeded";

	r->counts = cJSON_CreateObject();
	r->resource_list = cJSON_CreateObject();
	r->resource_types = cJSON_CreateObject();
	r->volumes = cJSON_CreateArray();
	r->pv_names = cJSON_CreateArray();
	r->storage_classes = cJSON_CreateArray();
	r->cluster_roles = cJSON_CreateArray();
	r->priority_classes = cJSON_CreateArray();
	if (!plan_loaded || backup_steps(r) < 0) {
		state = r->cancelled ? "cancelled" : "failed";
		if (r->cancelled)
			snprintf(err, errlen, "cancelled by a user; backup %s was discarded", r->name);
		if (r->repo_open)
			backup_delete_uploads(r);
	} else if (r->failed) {
		state = "partially_failed";
		snprintf(err, errlen, "%ld resource type%s or object%s could not be read; see the failed items",
			 r->failed, r->failed == 1 ? "" : "s", r->failed == 1 ? "" : "s");
	}
	job_progress(job, r->phase.name ? r->phase.name : "", r->objects, r->objects + r->failed, r->bytes, r->bytes);
	backup_close(r);
	return state;
}

const char *job_backup_run(struct job *job, char *err, size_t errlen)
{
	struct backup_run r = { .job = job, .err = err, .errlen = errlen, .items = { job, NULL } };

	if (!job->backup_plan_id) {
		snprintf(err, errlen, "a backup job needs a backup plan");
		return "failed";
	}
	return backup_execute(&r, plan_load(&r) == 0);
}

const char *job_backup_execute(struct job *job, const struct backup_spec *spec, char *err, size_t errlen)
{
	struct backup_run r = { .job = job, .err = err, .errlen = errlen, .items = { job, NULL } };
	struct backup_plan *p = &r.plan;

	p->id = spec->plan_id;
	snprintf(p->name, sizeof p->name, "%s", spec->name);
	p->cluster_id = spec->cluster_id;
	p->repository_id = spec->repository_id;
	p->namespaces = cJSON_Duplicate(spec->namespaces, 1);
	p->label_selector = spec->label_selector && *spec->label_selector ? xstrdup(spec->label_selector) : NULL;
	p->retention_days = spec->retention_days;
	p->volume_methods = spec->volume_methods ? cJSON_Duplicate(spec->volume_methods, 1) : cJSON_CreateObject();
	p->hooks = spec->hooks ? cJSON_Duplicate(spec->hooks, 1) : cJSON_CreateArray();
	p->include_resources = cJSON_CreateArray();
	p->exclude_resources = cJSON_CreateArray();
	return backup_execute(&r, cJSON_IsArray(p->namespaces));
}
