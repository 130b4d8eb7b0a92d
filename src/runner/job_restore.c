/* Restore jobs: see job.h.
 *
 * Phases, each recorded in job.result.phases with its duration:
 *   download   the backup's archive from its repository into the work directory;
 *   prepare    read and check every object (backup_reader) in one pass, leave out what the
 *              cluster or an owner recreates, and keep of each only a small index entry (its
 *              names, tier, why it is left out) while its JSON goes to an unlinked work file;
 *              order the entries (restore_order). Memory grows with the index, never with
 *              the objects' bodies;
 *   create     tier by tier, RESTORE_BATCH objects at a time read back from the work file and
 *              transformed for the target (restore_transform, the plan's modifiers) just
 *              before they are created: the objects of a batch are created in parallel by a small pool
 *              of threads, each with its own Kubernetes client (a client is one curl handle),
 *              at the pace the API server accepts (restore_pace) and, when the operator set
 *              restore_rate_limit, under one token bucket per cluster. After the CRDs, wait
 *              until each is Established and its resource served before custom resources are
 *              created;
 *   hooks      the post-restore hook point (the Lua hooks run here once they exist);
 *   finalize   counts per action and per type into job.result.
 *
 * Only the job's thread touches the database: workers hand each finished object back, and
 * the job's thread records it (job_item), reports progress and checks for cancellation. */
#include "job.h"
#include "migrate_workloads.h"
#include "job_hooks.h"
#include "job_volumes.h"
#include "json.h"
#include "backup_reader.h"
#include "config.h"
#include "http_retry.h"
#include "label_selector.h"
#include "log.h"
#include "repo_seal.h"
#include "restore_order.h"
#include "restore_transform.h"
#include "resource_modifier.h"
#include "strbuf.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RESTORE_PARALLELISM_DEFAULT 8
#define RESTORE_PARALLELISM_MAX 64
#define RESTORE_RATE_DEFAULT 0		/* no fixed rate: the API server's push back sets the pace */
#define RESTORE_PUSHBACK_ATTEMPTS 8	/* tries of one request the server keeps pushing back */
#define RESTORE_PUSHBACK_BASE_MS 250	/* first wait after a push back without a Retry-After */
#define RESTORE_PUSHBACK_GIVEUP_MS 60000	/* a server that accepted nothing this long: no more retries */
#define RESTORE_ARCHIVE_MAX (8LL << 30)		/* compressed bytes we agree to download */
#define RESTORE_CRD_WAIT_MS 60000
#define RESTORE_FAILED_LISTED 200		/* failed objects named in job.result */
#define RESTORE_UPDATE_ATTEMPTS 3
#define RESTORE_BATCH 500			/* objects read back, transformed and created at a time */

/* ---- the per-cluster token bucket ---- */

/* Tokens may go negative: each caller reserves one and sleeps off its debt, so waiting callers
 * are served in arrival order and the rate holds however many threads ask. */
struct rate_bucket {
	long long cluster_id;
	double rate, burst, tokens;
	double last;	/* seconds, monotonic */
};

static pthread_mutex_t rate_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rate_bucket rate_buckets[32];

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The runner process's bucket for a cluster, (re)configured to rate requests a second. */
static struct rate_bucket *rate_bucket_for(long long cluster_id, double rate)
{
	struct rate_bucket *b = NULL;

	pthread_mutex_lock(&rate_mu);
	for (size_t i = 0; i < sizeof rate_buckets / sizeof rate_buckets[0] && !b; i++)
		if (rate_buckets[i].cluster_id == cluster_id || rate_buckets[i].cluster_id == 0)
			b = &rate_buckets[i];
	if (!b)	/* more clusters than slots: reuse the first */
		b = &rate_buckets[0];
	if (b->cluster_id != cluster_id || b->rate != rate)
		*b = (struct rate_bucket){ cluster_id, rate, rate < 10 ? 1 : rate / 10, rate < 10 ? 1 : rate / 10, now_seconds() };
	pthread_mutex_unlock(&rate_mu);
	return b;
}

static void rate_take(struct rate_bucket *b)
{
	double wait, now;

	pthread_mutex_lock(&rate_mu);
	now = now_seconds();
	b->tokens += (now - b->last) * b->rate;
	if (b->tokens > b->burst)
		b->tokens = b->burst;
	b->last = now;
	b->tokens -= 1;
	wait = b->tokens < 0 ? -b->tokens / b->rate : 0;
	pthread_mutex_unlock(&rate_mu);
	if (wait > 0) {
		struct timespec ts = { (time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9) };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}

/* ---- the pace: requests in flight, fewer while the API server pushes back ---- */

/* No fixed rate by default: at most restore_parallelism requests in flight, and the API
 * server's own protection (API Priority and Fairness, max-requests-inflight) says when that is
 * too many, with a 429 (or 503) and a Retry-After. Then, as TCP does with its window: the
 * number in flight is halved (once per round of requests), the refused request waits out the
 * Retry-After (capped at K8S_RETRY_AFTER_MAX_MS, however long a hostile server asks; without
 * one, a doubling backoff) and is tried again, RESTORE_PUSHBACK_ATTEMPTS times in all, and each
 * success lets the window grow back by one request a window. A server that has answered
 * nothing but push backs for RESTORE_PUSHBACK_GIVEUP_MS gets no more retries (each object then
 * fails at its first refusal), so that one pushing back forever cannot hold the job for
 * objects x attempts x waits. A cancel ends every wait at once. */
struct restore_pace {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	double window;		/* requests allowed in flight: 1 .. max */
	double smallest;	/* the smallest window it came to */
	int max, inflight, stop;
	long waits_end_ms;	/* when the latest wait for a push back ends (http_retry_now_ms) */
	long cut_ms;		/* when the window was last halved */
	long ok_ms;		/* when the server last answered other than a push back (or the tier began) */
	long pushbacks, waited_ms;
};

static void pace_init(struct restore_pace *p, int max)
{
	*p = (struct restore_pace){ .window = max, .smallest = max, .max = max, .ok_ms = http_retry_now_ms() };
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
}

static void pace_destroy(struct restore_pace *p)
{
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
}

/* Waits on the pace's condition for ms at most (the caller holds p->mu). */
static void pace_wait(struct restore_pace *p, long ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&p->cv, &p->mu, &until);
}

/* Waits for room in the window; -1 when the restore is cancelled. */
static int pace_enter(struct restore_pace *p)
{
	int rc = 0;

	pthread_mutex_lock(&p->mu);
	while (!p->stop && p->inflight >= (int)p->window)
		pace_wait(p, 1000);
	if (p->stop)
		rc = -1;
	else
		p->inflight++;
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* Sleeps ms, the wait a push back asked for; -1 at once when the restore is cancelled. */
static int pace_sleep(struct restore_pace *p, long ms)
{
	long end = http_retry_now_ms() + ms, now;
	int stop;

	pthread_mutex_lock(&p->mu);
	while (!p->stop && (now = http_retry_now_ms()) < end)
		pace_wait(p, end - now);
	stop = p->stop;
	pthread_mutex_unlock(&p->mu);
	return stop ? -1 : 0;
}

/* A request that began at started_ms has ended; pushed: the server pushed it back, asking
 * retry_after_ms (-1: it named no time). Returns how long to wait before this attempt
 * number's retry, -1 when the server has accepted nothing for RESTORE_PUSHBACK_GIVEUP_MS
 * (retry no more), 0 when not pushed back. */
static long pace_leave(struct restore_pace *p, long started_ms, int pushed, long retry_after_ms, int attempt)
{
	long now = http_retry_now_ms(), wait = 0;

	pthread_mutex_lock(&p->mu);
	p->inflight--;
	if (pushed) {
		long backoff = RESTORE_PUSHBACK_BASE_MS << (attempt < 6 ? attempt - 1 : 5);

		if (backoff > K8S_RETRY_AFTER_MAX_MS)
			backoff = K8S_RETRY_AFTER_MAX_MS;
		wait = backoff / 2 + (long)(http_retry_random() % (unsigned)(backoff / 2 + 1));
		if (retry_after_ms > wait)
			wait = retry_after_ms > K8S_RETRY_AFTER_MAX_MS ? K8S_RETRY_AFTER_MAX_MS : retry_after_ms;
		p->pushbacks++;
		if (started_ms >= p->cut_ms) {	/* once per round: the others were sent at the old window */
			p->window = p->window / 2 < 1 ? 1 : p->window / 2;
			p->cut_ms = now;
			if (p->window < p->smallest)
				p->smallest = p->window;
		}
		if (now - p->ok_ms >= RESTORE_PUSHBACK_GIVEUP_MS)
			wait = -1;
		else if (now + wait > p->waits_end_ms) {	/* counted once however many wait at a time */
			p->waited_ms += now + wait - (p->waits_end_ms > now ? p->waits_end_ms : now);
			p->waits_end_ms = now + wait;
		}
	} else {
		p->ok_ms = now;
		if (p->window < p->max)
			p->window += 1 / p->window;
		if (p->window > p->max)
			p->window = p->max;
	}
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return wait;
}

static void pace_stop(struct restore_pace *p)
{
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* ---- the restore's state ---- */

/* A backup's volume record is small: one entry per claim. */
#define RESTORE_VOLUMES_MAX (16L << 20)

struct restore_item {
	struct backup_object *src;	/* group, resource, source namespace and name; obj transformed */
	char *ns;			/* target namespace, "" for cluster-scoped */
	char *name;			/* target name (a Namespace object's is mapped) */
	char *version;
	enum restore_tier tier;
	const char *skip;		/* why it is left out, or NULL */
	const char *refused;		/* why it is refused (recorded failed, not created), or NULL */
	const char *action;		/* created, updated, skipped, failed */
	char message[600];
	char uid[65];			/* created: the uid the server gave it (an undo deletes only that) */
};

/* What the prepare pass keeps of one object of the archive (or a Namespace it lacks): the
 * object's names stay in its backup_object, whose mark is the entry's index. */
struct restore_entry {
	long long offset;		/* its JSON in run->bodies (when neither skipped nor refused) */
	size_t length;
	char *version;
	const char *skip;		/* why it is left out, or NULL */
	const char *refused;		/* why it is refused before any request, or NULL */
	char *note;			/* the text of skip or refused when made for this object */
	enum restore_tier tier;
};

struct restore_plan {
	long long cluster_id;
	cJSON *namespace_map, *storage_class_map, *hooks;
	cJSON *claim_class_map;		/* a migration's class per claim, or NULL */
	int update_existing;
	int reattach_volumes;		/* the backup's PersistentVolumes are recreated (same cluster only) */
	cJSON *volume_map;		/* {"<source-ns>/<claim>": "pv"} */
	int restore_storage_classes, keep_default_class, restore_completed_jobs;
	int mirror_volumes;
	cJSON *selection;		/* what of the backup to restore (restore_selection_skip), or NULL: all */
	long long backup_cluster_id;	/* where the backup was taken (0: unknown) */
	char backup_name[256];
	long long repository_id;
	struct resource_modifiers *modifiers;	/* the plan's rules, or NULL */
	cJSON *start_later;		/* restore_spec's (borrowed), or NULL */
	int namespaced_only;
};

struct restore_run {
	struct job *job;
	struct restore_plan plan;
	long parallelism;
	double rate;			/* restore_rate_limit: 0 none */
	struct rate_bucket *bucket;	/* NULL without a rate limit */
	struct restore_pace pace;
	struct k8s_client **clients;	/* parallelism of them; clients[0] is the job thread's too */
	struct k8s_resource_list types;
	struct backup_archive archive;	/* the objects' names only (their bodies are in bodies) */
	struct backup_object *extra;	/* Namespace objects the backup lacks */
	size_t nextra;
	struct restore_entry *entries;	/* indexed by backup_object.mark */
	size_t nentries, entries_cap;
	FILE *bodies;			/* the JSON of the objects to create, one after another (unlinked) */
	long long bodies_len;
	char restore_id[24];
	struct restore_transform t;
	struct restore_names uids, pv_names;	/* the restored objects' uids, PersistentVolumes' names */
	struct restore_names ns_have, ns_want;	/* target namespaces with a Namespace object, with objects */
	struct restore_names crds;	/* CRDs created (or there already): waited for */
	struct restore_item *items;	/* the batch being created */
	size_t n, done;
	struct job_items_batch recorded;	/* results not yet written to job_items */
	cJSON *counts, *type_counts, *failed;	/* job.result's, tallied as each object is recorded */
	long nfailed, attempted;
	struct strbuf failed_words;
	cJSON *cluster_class_map;
	unsigned char node_ports[65536 / 8];
	long warnings;
	char archive_path[4096];
	cJSON *phases;
	cJSON *volumes;			/* the backup's volume record, or NULL */
	struct restore_names reattached;	/* "<source-ns>/<claim>" bound again to its original volume */
	struct restore_names versions_served, versions_unserved;	/* "group/version" asked of the target */
	struct restore_names chosen;	/* the selection's objects (type/ns/name), sealed at first use */
};

static void restore_phase(struct restore_run *run, const char *name, const struct job_phase *started,
			  const char *state, long objects)
{
	struct job_phase p = *started;

	p.name = name;
	job_phase_add(run->phases, &p, state, objects, NULL);
}

/* ---- loading the plan and the backup ---- */

static cJSON *restore_json_column(PGresult *res, int col)
{
	return cJSON_Parse(PQgetvalue(res, 0, col));
}

/* The restore plan's row as a spec; the JSON in it is the caller's to delete. */
static int restore_spec_load(struct job *job, struct restore_spec *spec, char *err, size_t errlen)
{
	char id[24];
	const char *params[] = { id };
	PGresult *res;

	memset(spec, 0, sizeof *spec);
	if (!job->restore_plan_id || !job->backup_id) {
		snprintf(err, errlen, "the job names no restore plan or no backup");
		return -1;
	}
	snprintf(id, sizeof id, "%lld", job->restore_plan_id);
	res = job_query(job, "SELECT target_cluster_id, namespace_map::text, storage_class_map::text, existing_policy, "
			"hooks::text, reattach_volumes, volume_map::text, restore_storage_classes, keep_default_class, restore_completed_jobs, "
			"resource_modifiers, selection::text FROM restore_plans WHERE id = $1", 1, params, err, errlen);
	if (!res)
		return -1;
	if (PQntuples(res) != 1) {
		PQclear(res);
		snprintf(err, errlen, "restore plan %lld no longer exists", job->restore_plan_id);
		return -1;
	}
	spec->backup_id = job->backup_id;
	spec->target_cluster_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	spec->namespace_map = restore_json_column(res, 1);
	spec->storage_class_map = restore_json_column(res, 2);
	spec->update_existing = strcmp(PQgetvalue(res, 0, 3), "update") == 0;
	spec->hooks = restore_json_column(res, 4);
	spec->reattach_volumes = strcmp(PQgetvalue(res, 0, 5), "t") == 0;
	spec->volume_map = restore_json_column(res, 6);
	spec->restore_storage_classes = strcmp(PQgetvalue(res, 0, 7), "t") == 0;
	spec->keep_default_class = strcmp(PQgetvalue(res, 0, 8), "t") == 0;
	spec->restore_completed_jobs = strcmp(PQgetvalue(res, 0, 9), "t") == 0;
	spec->resource_modifiers = xstrdup(PQgetvalue(res, 0, 10));
	spec->selection = restore_json_column(res, 11);
	PQclear(res);
	if (job->cluster_id && job->cluster_id != spec->target_cluster_id) {
		snprintf(err, errlen, "the job's cluster (%lld) is not its restore plan's target cluster (%lld)",
			 job->cluster_id, spec->target_cluster_id);
		return -1;
	}
	return 0;
}

static void restore_spec_free(struct restore_spec *spec)
{
	cJSON_Delete((cJSON *)spec->namespace_map);
	cJSON_Delete((cJSON *)spec->storage_class_map);
	cJSON_Delete((cJSON *)spec->hooks);
	cJSON_Delete((cJSON *)spec->volume_map);
	free((char *)spec->resource_modifiers);
	cJSON_Delete((cJSON *)spec->selection);
}

/* volume_map: {"<namespace>/<claim>": "<PersistentVolume name>"}. */
static int restore_volume_map_check(const cJSON *map, char *err, size_t errlen)
{
	const cJSON *e;

	if (!cJSON_IsObject(map)) {
		snprintf(err, errlen, "restore plan: volume_map: must be an object {\"namespace/claim\": \"volume\"}");
		return -1;
	}
	cJSON_ArrayForEach(e, map) {
		const char *slash = strchr(e->string, '/');
		if (!slash || slash == e->string || !slash[1] || strchr(slash + 1, '/')) {
			snprintf(err, errlen, "restore plan: volume_map: \"%.100s\" is not <namespace>/<claim>", e->string);
			return -1;
		}
		if (!cJSON_IsString(e) || !*e->valuestring || strlen(e->valuestring) > 253 ||
		    strspn(e->valuestring, "abcdefghijklmnopqrstuvwxyz0123456789-.") != strlen(e->valuestring)) {
			snprintf(err, errlen, "restore plan: volume_map: the volume for \"%.100s\" is not a PersistentVolume "
				 "name (lowercase letters, digits, '-' and '.')", e->string);
			return -1;
		}
	}
	return 0;
}

/* The run's own copy of what to restore, and the backup it comes from. */
static int restore_plan_load(struct restore_run *run, const struct restore_spec *spec, char *err, size_t errlen)
{
	struct job *job = run->job;
	struct restore_plan *p = &run->plan;
	char id[24];
	const char *params[] = { id };
	PGresult *res;

	p->cluster_id = spec->target_cluster_id;
	p->namespace_map = spec->namespace_map ? cJSON_Duplicate(spec->namespace_map, 1) : cJSON_CreateObject();
	p->storage_class_map = spec->storage_class_map ? cJSON_Duplicate(spec->storage_class_map, 1) : cJSON_CreateObject();
	p->claim_class_map = spec->claim_class_map ? cJSON_Duplicate(spec->claim_class_map, 1) : NULL;
	p->hooks = spec->hooks ? cJSON_Duplicate(spec->hooks, 1) : cJSON_CreateArray();
	p->update_existing = spec->update_existing;
	p->reattach_volumes = spec->reattach_volumes;
	p->restore_storage_classes = spec->restore_storage_classes;
	p->keep_default_class = spec->keep_default_class;
	p->restore_completed_jobs = spec->restore_completed_jobs;
	p->mirror_volumes = spec->mirror_volumes;
	p->selection = spec->selection && cJSON_IsObject(spec->selection) ? cJSON_Duplicate(spec->selection, 1) : NULL;
	p->volume_map = spec->volume_map ? cJSON_Duplicate(spec->volume_map, 1) : cJSON_CreateObject();
	p->start_later = spec->start_later;
	p->namespaced_only = spec->namespaced_only;
	if (restore_map_check(p->namespace_map, "restore plan: namespace_map", 1, err, errlen) < 0 ||
	    restore_map_check(p->storage_class_map, "restore plan: storage_class_map", 0, err, errlen) < 0 ||
	    restore_volume_map_check(p->volume_map, err, errlen) < 0)
		return -1;
	if (spec->resource_modifiers && *spec->resource_modifiers) {
		char why[400];
		p->modifiers = resource_modifiers_parse(spec->resource_modifiers, strlen(spec->resource_modifiers), why,
							sizeof why);
		if (!p->modifiers) {
			snprintf(err, errlen, "restore plan: %s", why);
			return -1;
		}
	}

	snprintf(id, sizeof id, "%lld", spec->backup_id);
	res = job_query(job, "SELECT name, state, repository_id, coalesce(cluster_id, 0) FROM backups WHERE id = $1",
			1, params, err, errlen);
	if (!res)
		return -1;
	if (PQntuples(res) != 1) {
		PQclear(res);
		snprintf(err, errlen, "backup %lld no longer exists", spec->backup_id);
		return -1;
	}
	const char *state = PQgetvalue(res, 0, 1);
	if (strcmp(state, "completed") != 0 && strcmp(state, "partially_failed") != 0) {
		snprintf(err, errlen, "backup %s is %s: only a completed or partially failed backup can be restored",
			 PQgetvalue(res, 0, 0), state);
		PQclear(res);
		return -1;
	}
	snprintf(p->backup_name, sizeof p->backup_name, "%s", PQgetvalue(res, 0, 0));
	p->repository_id = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	p->backup_cluster_id = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
	PQclear(res);
	/* another cluster may reach the same backends (hostPath, NFS, iSCSI, a CSI volumeHandle):
	 * recreating the volumes there would hand the source's live data to the target */
	if (p->reattach_volumes && p->backup_cluster_id != p->cluster_id) {
		snprintf(err, errlen, "restore plan: reattach_volumes: backup %s was taken in another cluster; its original "
			 "volumes can be reattached only in the cluster they belong to, so restore without reattaching "
			 "(the claims get new volumes, filled from the backup's data)", p->backup_name);
		return -1;
	}
	return 0;
}

static void restore_plan_free(struct restore_plan *p)
{
	cJSON_Delete(p->selection);
	cJSON_Delete(p->volume_map);
	cJSON_Delete(p->claim_class_map);
	cJSON_Delete(p->namespace_map);
	cJSON_Delete(p->storage_class_map);
	cJSON_Delete(p->hooks);
	resource_modifiers_free(p->modifiers);
}

/* ---- restoring part of a backup ---- */

/* The plan's selection, {"include_types": ["configmaps", "deployments.apps"], "exclude_types": [...],
 * "label_selector": "app=shop", "objects": ["configmaps/shop/settings", "persistentvolumeclaims/shop/data"]}:
 * why the object is left out, or NULL. A type is resource[.group], an object type/namespace/name
 * (cluster-scoped: type//name). Namespaces are restored whatever the includes say (the chosen
 * objects need them), unless excluded by name of type. */
static const char *restore_selection_skip(struct restore_run *run, struct restore_item *it)
{
	const cJSON *sel = run->plan.selection;
	const cJSON *include = cJSON_GetObjectItemCaseSensitive(sel, "include_types");
	const cJSON *exclude = cJSON_GetObjectItemCaseSensitive(sel, "exclude_types");
	const cJSON *objects = cJSON_GetObjectItemCaseSensitive(sel, "objects");
	const char *selector = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sel, "label_selector"));
	struct strbuf type = STRBUF_INIT, key = STRBUF_INIT;
	const char *why = NULL;

	if (!sel)
		return NULL;
	strbuf_addf(&type, "%s%s%s", it->src->resource, *it->src->group ? "." : "", it->src->group);
	int namespace_object = strcmp(type.buf, "namespaces") == 0;
	if (json_array_has(exclude, type.buf)) {
		snprintf(it->message, sizeof it->message, "not chosen: the plan excludes %s", type.buf);
		why = it->message;
	} else if (!namespace_object && cJSON_GetArraySize(include) > 0 && !json_array_has(include, type.buf)) {
		snprintf(it->message, sizeof it->message, "not chosen: %s is not among the types the plan restores", type.buf);
		why = it->message;
	} else if (!namespace_object && cJSON_GetArraySize(objects) > 0) {
		if (!run->chosen.sorted) {	/* a set: asked once for each of the backup's objects */
			const cJSON *o;

			cJSON_ArrayForEach(o, objects)
				if (cJSON_IsString(o))
					restore_names_add(&run->chosen, o->valuestring);
			restore_names_seal(&run->chosen);
		}
		strbuf_addf(&key, "%s/%s/%s", type.buf, it->src->ns, it->src->name);
		if (!restore_names_has(&run->chosen, key.buf)) {
			snprintf(it->message, sizeof it->message, "not chosen: the plan restores named objects only");
			why = it->message;
		}
	}
	if (!why && !namespace_object && selector && *selector) {
		const cJSON *labels = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(it->src->obj, "metadata"),
								       "labels");
		if (label_selector_match(selector, labels) != 1) {
			snprintf(it->message, sizeof it->message, "not chosen: its labels do not match %.400s", selector);
			why = it->message;
		}
	}
	strbuf_release(&type);
	strbuf_release(&key);
	return why;
}

/* The restore's tunables, read from the runner's configuration at each job so that an
 * operator's change applies to the next restore. */
static int restore_settings_load(struct restore_run *run, char *err, size_t errlen)
{
	struct config cfg;
	long rate = RESTORE_RATE_DEFAULT;
	int rc;

	if (config_load(&cfg, run->job->ctx->config_path, err, errlen) < 0)
		return -1;
	rc = config_get_int(&cfg, "restore_parallelism", RESTORE_PARALLELISM_DEFAULT, 1, RESTORE_PARALLELISM_MAX,
			    &run->parallelism, err, errlen);
	if (rc == 0)
		rc = config_get_int(&cfg, "restore_rate_limit", RESTORE_RATE_DEFAULT, 0, 100000, &rate, err, errlen);
	config_free(&cfg);
	run->rate = (double)rate;
	return rc;
}

/* ---- download ---- */

struct restore_download {
	FILE *f;
	struct job *job;
	long long done, total;		/* sealed bytes received, of the object's size */
	struct repo_unsealer unsealer;	/* opens the archive as it arrives; writes it to f */
};

static int restore_download_plain(const void *data, size_t len, void *ud)
{
	struct restore_download *d = ud;

	return fwrite(data, 1, len, d->f) == len ? 0 : -1;
}

static int restore_download_write(const void *data, size_t len, void *ud)
{
	struct restore_download *d = ud;

	d->done += (long long)len;
	if (d->done > RESTORE_ARCHIVE_MAX || repo_unsealer_feed(&d->unsealer, data, len) < 0)
		return -1;
	job_progress(d->job, "download", 0, 0, d->done, d->total);
	return 0;
}

/* The backup's volume data record (<name>-volumes.json), when it has one: which claims have
 * data to bring back and how. A backup without it has no volume data; that is not an error. */
static int restore_volumes_load(struct restore_run *run, struct job_repository *repo, char *err, size_t errlen)
{
	struct strbuf text = STRBUF_INIT, plain = STRBUF_INIT;
	struct s3_error se = { 0 };
	uint8_t k[AEAD_KEY_LEN];
	char key[1024], words[512];

	snprintf(key, sizeof key, "%sbackups/%s/%s-volumes.json", repo->prefix, run->plan.backup_name, run->plan.backup_name);
	if (s3_get_mem(repo->s3, key, RESTORE_VOLUMES_MAX, &text, &se) < 0) {
		strbuf_release(&text);
		if (se.http_status == 404)
			return 0;
		s3_error_describe(&se, words, sizeof words);
		snprintf(err, errlen, "backup %s: its volume record %s cannot be read: %s", run->plan.backup_name, key, words);
		return -1;
	}
	if (repo_seal_key(run->job->ctx->master_key, repo->id, k) < 0 ||
	    repo_unseal_mem(k, key, text.buf ? text.buf : "", text.len, &plain, words, sizeof words) < 0) {
		OPENSSL_cleanse(k, sizeof k);
		strbuf_release(&text);
		strbuf_release(&plain);
		snprintf(err, errlen, "backup %s: its volume record cannot be read: %s", run->plan.backup_name, words);
		return -1;
	}
	OPENSSL_cleanse(k, sizeof k);
	strbuf_release(&text);
	run->volumes = cJSON_ParseWithLength(plain.buf ? plain.buf : "", plain.len);
	strbuf_release(&plain);
	if (!cJSON_IsArray(run->volumes)) {
		snprintf(err, errlen, "backup %s: its volume record is not a JSON array", run->plan.backup_name);
		return -1;
	}
	return 0;
}

/* The volume record entry of claim ns/name (source names), or NULL. */
static const cJSON *restore_volume_of(const struct restore_run *run, const char *ns, const char *name)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, run->volumes) {
		const cJSON *vns = cJSON_GetObjectItemCaseSensitive(v, "namespace");
		const cJSON *vpvc = cJSON_GetObjectItemCaseSensitive(v, "pvc");
		if (cJSON_IsString(vns) && cJSON_IsString(vpvc) && strcmp(vns->valuestring, ns) == 0 &&
		    strcmp(vpvc->valuestring, name) == 0)
			return v;
	}
	return NULL;
}

/* A claim whose data is a VolumeSnapshot is created from it (dataSource), in the cluster and
 * namespace the snapshot lives in; anywhere else the restore says why the claim comes back empty.
 * A claim whose data the mover brings back is created plain: the dataSource it had (it was
 * itself made from a snapshot or a clone) names what the target may not hold, and a claim
 * waiting for it would never be Bound for the mover to fill. */
static void restore_claim_source(struct restore_run *run, struct restore_item *it)
{
	const cJSON *volume = restore_volume_of(run, it->src->ns, it->src->name);
	cJSON *spec = cJSON_GetObjectItemCaseSensitive(it->src->obj, "spec"), *ds = NULL;
	char why[512];
	int rc;

	if (!volume || !cJSON_IsObject(spec))
		return;
	rc = csi_restore_pvc_source(volume, run->plan.backup_cluster_id == run->plan.cluster_id, it->ns, &ds, why, sizeof why);
	if (rc < 0)
		job_log(run->job, "warning", "claim %s/%s: %s", it->ns, it->src->name, why);
	if (rc != 1 && (cJSON_GetObjectItemCaseSensitive(spec, "dataSource") ||
			cJSON_GetObjectItemCaseSensitive(spec, "dataSourceRef")))
		job_log(run->job, "info", "claim %s/%s: created without the dataSource it had: its data comes from the "
			"backup", it->ns, it->src->name);
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "dataSource");
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "dataSourceRef");
	if (rc != 1)
		return;
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "volumeName");
	cJSON_AddItemToObject(spec, "dataSource", ds);
}

static int restore_download(struct restore_run *run, char *err, size_t errlen)
{
	struct job *job = run->job;
	struct job_repository repo;
	struct restore_download d = { .job = job };
	struct s3_error se;
	uint8_t k[AEAD_KEY_LEN];
	char key[1024], words[512];
	int64_t size = 0;
	int fd, rc = -1;

	if (job_repository_open(job, run->plan.repository_id, &repo, err, errlen) < 0)
		return -1;
	snprintf(key, sizeof key, "%sbackups/%s/%s.tar.gz", repo.prefix, run->plan.backup_name, run->plan.backup_name);
	if (s3_head(repo.s3, key, &size, NULL, 0, &se) < 0) {
		s3_error_describe(&se, words, sizeof words);
		snprintf(err, errlen, "backup %s: its archive %s cannot be read: %s", run->plan.backup_name, key, words);
		goto out;
	}
	if (size > RESTORE_ARCHIVE_MAX) {
		snprintf(err, errlen, "backup %s: its archive is %lld bytes, more than the %lld a restore reads",
			 run->plan.backup_name, (long long)size, RESTORE_ARCHIVE_MAX);
		goto out;
	}
	d.total = size;
	snprintf(run->archive_path, sizeof run->archive_path, "%s/restore-%lld-XXXXXX", job->ctx->work_dir, job->id);
	fd = mkstemp(run->archive_path);
	if (fd < 0 || !(d.f = fdopen(fd, "w"))) {
		snprintf(err, errlen, "work directory %s: cannot create a file: %s", job->ctx->work_dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		run->archive_path[0] = '\0';
		goto out;
	}
	if (repo_seal_key(job->ctx->master_key, repo.id, k) < 0) {
		fclose(d.f);
		snprintf(err, errlen, "repository %lld: cannot derive its key", repo.id);
		goto out;
	}
	repo_unsealer_init(&d.unsealer, k, key, restore_download_plain, &d);
	OPENSSL_cleanse(k, sizeof k);
	if (s3_get_stream(repo.s3, key, 0, -1, restore_download_write, &d, &se) < 0) {
		if (d.unsealer.failed)
			snprintf(err, errlen, "backup %s: %s: %s", run->plan.backup_name, key, d.unsealer.error);
		else
			s3_error_describe(&se, words, sizeof words);
		if (!d.unsealer.failed)
			snprintf(err, errlen, "backup %s: downloading %s failed: %s", run->plan.backup_name, key, words);
	} else if (repo_unsealer_finish(&d.unsealer) < 0) {
		snprintf(err, errlen, "backup %s: %s: %s", run->plan.backup_name, key, d.unsealer.error);
	} else if (fflush(d.f) != 0) {
		snprintf(err, errlen, "work directory %s: %s", job->ctx->work_dir, strerror(errno));
	} else {
		rc = 0;
		job->bytes_done = job->bytes_total = d.done;
		cJSON_DeleteItemFromObjectCaseSensitive(job->result, "archive_bytes");
		cJSON_AddNumberToObject(job->result, "archive_bytes", (double)d.done);
	}
	fclose(d.f);
	repo_unsealer_release(&d.unsealer);
	if (rc == 0)
		rc = restore_volumes_load(run, &repo, err, errlen);
out:
	job_repository_close(&repo);
	return rc;
}

/* ---- prepare ---- */

static int restore_node_port_take(long port, void *ud)
{
	struct restore_run *run = ud;

	if (port <= 0 || port > 65535)
		return 0;
	if (run->node_ports[port / 8] & (1u << (port % 8)))
		return 0;
	run->node_ports[port / 8] |= (unsigned char)(1u << (port % 8));
	return 1;
}

static void restore_warning(const char *message, void *ud)
{
	struct restore_run *run = ud;

	run->warnings++;
	job_log(run->job, "warning", "%s", message);
}

static int restore_note_node_ports(cJSON *svc, void *ud)
{
	const cJSON *port;

	if (!svc)
		return 0;
	cJSON_ArrayForEach(port, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(svc, "spec"), "ports")) {
		const cJSON *np = cJSON_GetObjectItemCaseSensitive(port, "nodePort");
		if (cJSON_IsNumber(np))
			restore_node_port_take((long)np->valuedouble, ud);
	}
	return 0;
}

static const char *restore_meta_str(const cJSON *obj, const char *key)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), key));

	return s ? s : "";
}

/* Orders objects by namespace, then name. */
static int restore_meta_cmp(const cJSON *a, const cJSON *b)
{
	int c = strcmp(restore_meta_str(a, "namespace"), restore_meta_str(b, "namespace"));

	return c ? c : strcmp(restore_meta_str(a, "name"), restore_meta_str(b, "name"));
}

/* What the target cluster holds that the transformation must know: the node ports its services
 * use, and its change-storage-class ConfigMap (Velero's convention, read once per restore). */
static int restore_target_survey(struct restore_run *run, char *err, size_t errlen)
{
	const struct k8s_resource_type *services = k8s_resource_find(&run->types, "", "services");
	struct k8s_error ke;
	char words[600];
	cJSON *list = NULL;

	if (services && k8s_list(run->clients[0], services, NULL, NULL, 500, restore_note_node_ports, run, &ke) < 0) {
		k8s_error_describe(&ke, words, sizeof words);
		snprintf(err, errlen, "listing the target cluster's services (for their node ports): %s", words);
		return -1;
	}
	/* Velero's convention labels the ConfigMap, in whatever namespace the cluster's admin keeps
	 * it (the manual's own example uses its own); without the right to list every namespace's
	 * ConfigMaps, namespace velero is read as before */
	if (k8s_get(run->clients[0], "/api/v1/configmaps?limit=20&labelSelector="
		    "velero.io%2Fchange-storage-class%3DRestoreItemAction", &list, &ke) < 0 &&
	    (ke.http_status != 403 ||
	     k8s_get(run->clients[0], "/api/v1/namespaces/velero/configmaps?limit=20&labelSelector="
		     "velero.io%2Fchange-storage-class%3DRestoreItemAction", &list, &ke) < 0)) {
		if (ke.http_status == 404 || ke.http_status == 403)
			return 0;
		k8s_error_describe(&ke, words, sizeof words);
		snprintf(err, errlen, "reading the target cluster's change-storage-class ConfigMap: %s", words);
		return -1;
	}
	const cJSON *items = cJSON_GetObjectItemCaseSensitive(list, "items"), *first = NULL, *c;
	/* several: the first by namespace and name, whatever order the server lists them in */
	cJSON_ArrayForEach(c, items) {
		if (!first || restore_meta_cmp(c, first) < 0)
			first = c;
	}
	if (cJSON_GetArraySize(items) > 1)
		job_log(run->job, "warning", "the target cluster has %d change-storage-class ConfigMaps; using %s/%s",
			cJSON_GetArraySize(items), restore_meta_str(first, "namespace"), restore_meta_str(first, "name"));
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(first, "data");
	if (cJSON_IsObject(data)) {
		run->cluster_class_map = cJSON_Duplicate(data, 1);
		job_log(run->job, "info", "the target cluster's change-storage-class ConfigMap maps %d storage classes",
			cJSON_GetArraySize(data));
	}
	cJSON_Delete(list);
	return 0;
}

static char *restore_version_of(const cJSON *obj)
{
	const char *api = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, "apiVersion"));
	const char *slash = api ? strchr(api, '/') : NULL;

	return xstrdup(slash ? slash + 1 : api ? api : "v1");
}

static int restore_archive_cancelled(void *ud)
{
	return job_cancel_requested(ud);
}

/* Why the backup's PersistentVolume it->src may not be reattached, or NULL: it exists in the
 * target and another claim than the one this restore brings back holds it. */
static const char *restore_reattach_refusal(struct restore_run *run, const struct restore_transform *t,
					    struct restore_item *it)
{
	const cJSON *ref = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(it->src->obj, "spec"), "claimRef");
	const char *want_ns = restore_namespace_target(t, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ref, "namespace")));
	const char *want = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ref, "name"));
	char *path = k8s_resource_path("", "v1", "persistentvolumes", NULL, it->src->name);
	struct k8s_error ke;
	cJSON *live = NULL;
	const char *why = NULL;

	if (k8s_get(run->clients[0], path, &live, &ke) == 0) {
		const cJSON *lref = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(live, "spec"), "claimRef");
		const char *ns = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(lref, "namespace"));
		const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(lref, "name"));
		const char *phase = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(live, "status"), "phase"));
		if (ns && name && phase && strcmp(phase, "Bound") == 0 &&
		    (!want_ns || !want || strcmp(ns, want_ns) != 0 || strcmp(name, want) != 0)) {
			snprintf(it->message, sizeof it->message, "not reattached: claim %s/%s holds PersistentVolume %s in the "
				 "target cluster; its claim gets a new volume instead", ns, name, it->src->name);
			why = it->message;
		}
	}
	cJSON_Delete(live);
	free(path);
	return why;
}

/* A StorageClass belongs to the cluster: a restore creates one only when the plan asks, and
 * never one the plan maps to another class. */
static const char *restore_storage_class_skip(struct restore_run *run, const struct restore_transform *t,
					      struct restore_item *it)
{
	const char *to = restore_storage_class_target(t, it->src->name);

	if (to != it->src->name && strcmp(to, it->src->name) != 0) {
		snprintf(it->message, sizeof it->message, "not created: mapped to StorageClass %s of the target", to);
		return it->message;
	}
	if (!run->plan.restore_storage_classes)
		return "not created: a restore creates StorageClasses only when its plan asks to (restore_storage_classes)";
	return NULL;
}

/* Why a ClusterRoleBinding is not restored, or NULL. Restored into the cluster it was backed
 * up from with its accounts' namespaces mapped, it would give the new namespace's accounts the
 * cluster-wide rights only the source's had (and under the update policy take them from the
 * source's): that is a grant for a person to make, not a restore. Into another cluster the
 * subjects name the mapped namespaces (restore_transform). */
static const char *restore_binding_skip(struct restore_run *run, const struct restore_transform *t,
					struct restore_item *it)
{
	const cJSON *subject;

	if (run->plan.backup_cluster_id != 0 && run->plan.backup_cluster_id != run->plan.cluster_id)
		return NULL;
	cJSON_ArrayForEach(subject, cJSON_GetObjectItemCaseSensitive(it->src->obj, "subjects")) {
		const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(subject, "kind"));
		const char *ns = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(subject, "namespace"));
		const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(subject, "name"));
		const char *to = restore_namespace_target(t, ns);
		const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(it->src->obj, "roleRef"), "name"));

		if (!kind || strcmp(kind, "ServiceAccount") != 0 || !ns || !name || strcmp(to, ns) == 0)
			continue;
		snprintf(it->message, sizeof it->message, "not restored: in the cluster it was backed up from it would grant "
			 "ServiceAccount %.63s/%.60s the cluster-wide rights of ClusterRole %.80s that only %.63s/%.60s has; "
			 "rights not granted (bind them yourself if the copy needs them)", to, name, role ? role : "?", ns, name);
		return it->message;
	}
	return NULL;
}

/* A claim bound again to its original (reattached) volume keeps that volume's data: the mover
 * does not write the backup's copy over it. A claim whose volume is not restored gets a new one. */
static void restore_claim_volume_note(struct restore_run *run, struct restore_item *it, const struct restore_names *volumes)
{
	const char *pv = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(it->src->obj, "spec"), "volumeName"));
	char key[600];

	snprintf(key, sizeof key, "%s/%s", it->src->ns, it->src->name);
	if (pv && restore_names_has(volumes, pv)) {
		restore_names_add(&run->reattached, key);
		job_log(run->job, "info", "claim %s/%s: reattached to its original PersistentVolume %s", it->ns,
			it->src->name, pv);
	} else if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(run->plan.volume_map, key))) {
		job_log(run->job, "info", "claim %s/%s: bound to PersistentVolume %s, as the plan says", it->ns, it->src->name,
			cJSON_GetObjectItemCaseSensitive(run->plan.volume_map, key)->valuestring);
	} else if (!restore_volume_of(run, it->src->ns, it->src->name)) {
		job_log(run->job, "info", "claim %s/%s: a new volume, empty: the backup holds no data for it", it->ns,
			it->src->name);
	}
}

/* start_later: a Deployment, StatefulSet or ReplicaSet (none a controller owns) is created at
 * zero replicas and its count recorded, so that no pod writes its volumes before their data is in. */
static void restore_hold_workload(struct restore_run *run, struct restore_item *it)
{
	static const char *const kinds[] = { "deployments", "statefulsets", "replicasets" };
	cJSON *spec = cJSON_GetObjectItemCaseSensitive(it->src->obj, "spec"), *per_ns, *refs, *ref;
	const cJSON *replicas = cJSON_GetObjectItemCaseSensitive(spec, "replicas");
	char key[600];
	size_t k;

	if (strcmp(it->src->group, "apps") != 0 || !cJSON_IsObject(spec))
		return;
	for (k = 0; k < 3 && strcmp(it->src->resource, kinds[k]) != 0; k++)
		;
	if (k == 3)
		return;
	refs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(it->src->obj, "metadata"), "ownerReferences");
	cJSON_ArrayForEach(ref, refs)
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ref, "controller")))
			return;
	per_ns = cJSON_GetObjectItemCaseSensitive(run->plan.start_later, it->ns);
	if (!per_ns)
		per_ns = cJSON_AddObjectToObject(run->plan.start_later, it->ns);
	snprintf(key, sizeof key, "%s.apps/%s", kinds[k], restore_meta_str(it->src->obj, "name"));
	cJSON_DeleteItemFromObjectCaseSensitive(per_ns, key);
	cJSON_AddNumberToObject(per_ns, key, cJSON_IsNumber(replicas) ? replicas->valuedouble : 1);
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "replicas");
	cJSON_AddNumberToObject(spec, "replicas", 0);
}

/* The entry of a new object; o->mark names it. */
static struct restore_entry *restore_entry_new(struct restore_run *run, struct backup_object *o)
{
	if (run->nentries == run->entries_cap) {
		run->entries_cap = run->entries_cap ? run->entries_cap * 2 : 256;
		run->entries = xrealloc(run->entries, run->entries_cap * sizeof *run->entries);
	}
	o->mark = run->nentries;
	memset(&run->entries[run->nentries], 0, sizeof *run->entries);
	return &run->entries[run->nentries++];
}

static struct backup_object *restore_object(struct restore_run *run, size_t i)
{
	return i < run->archive.n ? &run->archive.objects[i] : &run->extra[i - run->archive.n];
}

static int restore_is_namespace(const struct backup_object *o)
{
	return strcmp(o->group, "") == 0 && strcmp(o->resource, "namespaces") == 0;
}

/* Appends json to the work file: where the create pass reads the object back. */
static int restore_body_write(struct restore_run *run, struct restore_entry *e, const char *json, size_t len,
			      char *err, size_t errlen)
{
	if (fwrite(json, 1, len, run->bodies) != len) {
		snprintf(err, errlen, "work directory %s: cannot write: %s", run->job->ctx->work_dir, strerror(errno));
		return -1;
	}
	e->offset = run->bodies_len;
	e->length = len;
	run->bodies_len += (long long)len;
	return 0;
}

/* A claim the plan's selection leaves out: its data is not restored, and no one waits for it
 * to be Bound. */
static void restore_volume_unchoose(struct restore_run *run, const struct backup_object *o)
{
	cJSON *v, *next;

	/* along the list: by index, each step walked the list again (a backup's volume record can
	 * name tens of thousands of claims, and this runs for every claim left out) */
	for (v = run->volumes->child; v; v = next) {
		const char *ns = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "namespace"));
		const char *pvc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "pvc"));

		next = v->next;
		if (ns && pvc && strcmp(ns, o->ns) == 0 && strcmp(pvc, o->name) == 0)
			cJSON_Delete(cJSON_DetachItemViaPointer(run->volumes, v));
	}
}

/* Why it->src is left out (it->skip) or refused before any request (it->refused). */
static void restore_classify(struct restore_run *run, struct restore_item *it)
{
	const struct restore_transform *t = &run->t;

	it->skip = restore_skip_reason(it->src->group, it->src->resource, it->src->obj);
	if (!it->skip)
		it->skip = restore_selection_skip(run, it);
	if (!it->skip && run->plan.namespaced_only && !*it->src->ns && !restore_is_namespace(it->src))
		it->skip = "not restored: a test restore restores namespaced objects only (a cluster-scoped one "
			   "would outlive its temporary namespaces)";
	if (!it->skip && strcmp(it->src->group, "") == 0 && strcmp(it->src->resource, "persistentvolumes") == 0) {
		if (!run->plan.reattach_volumes)
			it->skip = "not recreated: its claim gets a new volume in the target, which the restore fills "
				   "from the backup's data (the plan does not ask to reattach the original volumes)";
		else
			it->refused = restore_reattach_refusal(run, t, it);
	}
	if (!it->skip && !run->plan.restore_completed_jobs) {
		const char *finished = restore_job_finished(it->src->group, it->src->resource, it->src->obj);
		if (finished) {
			snprintf(it->message, sizeof it->message, "not recreated: the Job had finished (%s) when backed up, "
				 "and recreating it would run it again (the plan's restore_completed_jobs option does)", finished);
			it->skip = it->message;
		}
	}
	if (!it->skip && strcmp(it->src->group, "storage.k8s.io") == 0 && strcmp(it->src->resource, "storageclasses") == 0)
		it->skip = restore_storage_class_skip(run, t, it);
	if (!it->skip && strcmp(it->src->group, "rbac.authorization.k8s.io") == 0 &&
	    strcmp(it->src->resource, "clusterrolebindings") == 0)
		it->skip = restore_binding_skip(run, t, it);
}

/* The prepare pass, called by the archive reader with each object as it is read: classify it,
 * note what the transformation of the others needs (uids, volumes, namespaces), keep a small
 * entry, and put the object's JSON in the work file when it is to be created. */
static int restore_index_object(struct backup_object *o, const char *json, size_t len, void *ud, char *err,
				size_t errlen)
{
	struct restore_run *run = ud;
	struct restore_entry *e = restore_entry_new(run, o);
	struct restore_item it = { .src = o };

	restore_classify(run, &it);
	e->version = restore_version_of(o->obj);
	e->tier = restore_tier_of(o->group, o->resource);
	if (it.skip == it.message || it.refused == it.message)
		e->note = xstrdup(it.message);
	e->skip = it.skip == it.message ? e->note : it.skip;
	e->refused = it.refused == it.message ? e->note : it.refused;
	if (restore_is_namespace(o))
		restore_names_add(&run->ns_have, restore_namespace_target(&run->t, o->name));
	else if (*o->ns)
		restore_names_add(&run->ns_want, restore_namespace_target(&run->t, o->ns));
	if (e->skip && run->volumes && strncmp(e->skip, "not chosen", 10) == 0 && strcmp(o->group, "") == 0 &&
	    strcmp(o->resource, "persistentvolumeclaims") == 0)
		restore_volume_unchoose(run, o);
	if (e->skip || e->refused)
		return 0;
	if (*restore_meta_str(o->obj, "uid"))
		restore_names_add(&run->uids, restore_meta_str(o->obj, "uid"));
	if (strcmp(o->group, "") == 0 && strcmp(o->resource, "persistentvolumes") == 0)
		restore_names_add(&run->pv_names, o->name);
	return restore_body_write(run, e, json, len, err, errlen);
}

/* A Namespace object for each target namespace the backup holds objects of but no Namespace
 * object for, so that its objects have somewhere to go. */
static int restore_missing_namespaces(struct restore_run *run, char *err, size_t errlen)
{
	restore_names_seal(&run->ns_have);
	restore_names_seal(&run->ns_want);
	run->extra = xcalloc(run->ns_want.n ? run->ns_want.n : 1, sizeof *run->extra);
	for (size_t i = 0; i < run->ns_want.n; i++) {
		const char *name = run->ns_want.v[i];
		if (restore_names_has(&run->ns_have, name))
			continue;
		struct backup_object *o = &run->extra[run->nextra++];
		*o = (struct backup_object){ xstrdup(""), xstrdup("namespaces"), xstrdup(""), xstrdup(name), NULL, 0 };
		struct restore_entry *e = restore_entry_new(run, o);
		cJSON *ns = cJSON_CreateObject();
		cJSON_AddStringToObject(ns, "apiVersion", "v1");
		cJSON_AddStringToObject(ns, "kind", "Namespace");
		cJSON_AddStringToObject(cJSON_AddObjectToObject(ns, "metadata"), "name", name);
		char *json = cJSON_PrintUnformatted(ns);
		e->version = xstrdup("v1");
		e->tier = restore_tier_of("", "namespaces");
		int rc = restore_body_write(run, e, json, strlen(json), err, errlen);
		cJSON_free(json);
		cJSON_Delete(ns);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int restore_prepare(struct restore_run *run, char *err, size_t errlen)
{
	struct job *job = run->job;
	/* the archive is the tenant's, from its repository: the default caps, and a cancel stops the read */
	struct backup_limits lim = { .cancelled = restore_archive_cancelled, .cancel_ud = job,
				     .each = restore_index_object, .each_ud = run };
	char path[4200];
	int fd;

	if (restore_target_survey(run, err, errlen) < 0)
		return -1;
	snprintf(run->restore_id, sizeof run->restore_id, "%lld", job->id);
	run->t = (struct restore_transform){
		.namespace_map = run->plan.namespace_map, .storage_class_map = run->plan.storage_class_map,
		.cluster_class_map = run->cluster_class_map, .claim_class_map = run->plan.claim_class_map,
		.claim_volume_map = run->plan.volume_map, .keep_default_class = run->plan.keep_default_class,
		.backup_name = run->plan.backup_name,
		.restore_id = run->restore_id, .restored_uids = &run->uids, .restored_volumes = &run->pv_names,
		.node_port_take = restore_node_port_take, .node_port_ud = run,
		.warn = restore_warning, .warn_ud = run,
	};
	snprintf(path, sizeof path, "%s/restore-%lld-objects-XXXXXX", job->ctx->work_dir, job->id);
	fd = mkstemp(path);
	if (fd >= 0)
		unlink(path);	/* gone with the job, however it ends */
	if (fd < 0 || !(run->bodies = fdopen(fd, "w+"))) {
		snprintf(err, errlen, "work directory %s: cannot create a file: %s", job->ctx->work_dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (backup_reader_read_file(run->archive_path, &lim, &run->archive, err, errlen) < 0)
		return -1;
	job_log(job, "info", "backup %s holds %zu objects (format %s, %llu bytes)", run->plan.backup_name,
		run->archive.n, run->archive.version, (unsigned long long)run->archive.bytes);
	if (restore_missing_namespaces(run, err, errlen) < 0)
		return -1;
	if (fflush(run->bodies) != 0) {
		snprintf(err, errlen, "work directory %s: %s", job->ctx->work_dir, strerror(errno));
		return -1;
	}
	restore_names_seal(&run->uids);
	restore_names_seal(&run->pv_names);
	run->n = run->archive.n + run->nextra;
	return 0;
}

/* Reads object i back from the work file and transforms it for the target, as the prepare
 * step did for every object at once before: it->src->obj holds it until restore_batch_free. */
static void restore_item_load(struct restore_run *run, size_t i, struct restore_item *it)
{
	struct backup_object *o = restore_object(run, i);
	const struct restore_entry *e = &run->entries[o->mark];
	char *buf = xmalloc(e->length ? e->length : 1);

	memset(it, 0, sizeof *it);
	it->src = o;
	it->ns = xstrdup(restore_namespace_target(&run->t, o->ns));
	it->tier = e->tier;
	if (pread(fileno(run->bodies), buf, e->length, e->offset) == (ssize_t)e->length)
		o->obj = cJSON_ParseWithLength(buf, e->length);
	free(buf);
	if (!o->obj) {
		it->name = xstrdup(o->name);
		it->version = xstrdup(e->version);
		snprintf(it->message, sizeof it->message, "the object could not be read back from the work directory");
		it->refused = it->message;
		return;
	}
	if (strcmp(o->group, "") == 0 && strcmp(o->resource, "persistentvolumeclaims") == 0)
		restore_claim_volume_note(run, it, &run->pv_names);
	restore_transform_apply(&run->t, o->group, o->resource, o->obj);
	if (run->plan.modifiers &&
	    resource_modifiers_apply(run->plan.modifiers, o->group, o->resource, o->ns, o->obj, it->message,
				     sizeof it->message) < 0)
		it->refused = it->message;
	if (run->volumes && strcmp(o->group, "") == 0 && strcmp(o->resource, "persistentvolumeclaims") == 0)
		restore_claim_source(run, it);
	if (!it->refused && run->plan.start_later)
		restore_hold_workload(run, it);
	it->name = xstrdup(restore_meta_str(o->obj, "name"));
	it->version = restore_version_of(o->obj);
}

static void restore_batch_free(struct restore_run *run, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct restore_item *it = &run->items[i];
		cJSON_Delete(it->src->obj);
		it->src->obj = NULL;
		free(it->ns);
		free(it->name);
		free(it->version);
	}
}

/* ---- creating one object ---- */

static void restore_fail(struct restore_item *it, const char *what, const struct k8s_error *ke)
{
	char words[520];

	k8s_error_describe(ke, words, sizeof words);
	it->action = "failed";
	snprintf(it->message, sizeof it->message, "%s%s", what, words);
}

enum restore_verb { RESTORE_GET, RESTORE_CREATE, RESTORE_REPLACE };

static int restore_cancelled(struct k8s_error *ke)
{
	memset(ke, 0, sizeof *ke);
	ke->retry_after_ms = -1;
	snprintf(ke->message, sizeof ke->message, "not sent: the restore was cancelled");
	return -1;
}

/* One request at the restore's pace, tried again while the server pushes it back. */
static int restore_request(struct restore_run *run, struct k8s_client *c, enum restore_verb verb, const char *path,
			   const cJSON *obj, cJSON **out, struct k8s_error *ke)
{
	for (int attempt = 1;; attempt++) {
		long started;
		int rc, pushed;
		long wait;

		if (pace_enter(&run->pace) < 0)
			return restore_cancelled(ke);
		if (run->bucket)
			rate_take(run->bucket);
		started = http_retry_now_ms();
		rc = verb == RESTORE_GET ? k8s_get(c, path, out, ke) :
		     verb == RESTORE_CREATE ? k8s_create(c, path, obj, out, ke) : k8s_replace(c, path, obj, out, ke);
		pushed = rc < 0 && k8s_error_pushback(ke);
		wait = pace_leave(&run->pace, started, pushed, ke->retry_after_ms, attempt);
		if (!pushed)
			return rc;
		if (attempt == RESTORE_PUSHBACK_ATTEMPTS || wait < 0) {
			char words[sizeof ke->message];
			snprintf(words, sizeof words, "%s", ke->message);
			if (wait < 0)
				snprintf(ke->message, sizeof ke->message, "the API server has accepted no request for %d s "
					 "and pushed this one back; not tried again: %.400s", RESTORE_PUSHBACK_GIVEUP_MS / 1000, words);
			else
				snprintf(ke->message, sizeof ke->message, "the API server pushed back all %d attempts: %.400s",
					 RESTORE_PUSHBACK_ATTEMPTS, words);
			return rc;
		}
		if (pace_sleep(&run->pace, wait) < 0)
			return restore_cancelled(ke);
	}
}

/* existing_policy 'update': replace the live object, at its resourceVersion. */
static void restore_replace(struct restore_run *run, struct k8s_client *c, struct restore_item *it)
{
	char *path = k8s_resource_path(it->src->group, it->version, it->src->resource, it->ns, it->name);
	cJSON *meta = cJSON_GetObjectItemCaseSensitive(it->src->obj, "metadata");
	struct k8s_error ke;

	for (int attempt = 1;; attempt++) {
		cJSON *live = NULL;

		if (restore_request(run, c, RESTORE_GET, path, NULL, &live, &ke) < 0) {
			restore_fail(it, "reading the existing object: ", &ke);
			break;
		}
		cJSON_DeleteItemFromObjectCaseSensitive(meta, "resourceVersion");
		cJSON_AddStringToObject(meta, "resourceVersion", restore_meta_str(live, "resourceVersion"));
		cJSON_Delete(live);
		if (restore_request(run, c, RESTORE_REPLACE, path, it->src->obj, NULL, &ke) == 0) {
			it->action = "updated";
			break;
		}
		/* somebody changed it between our read and write: read it again */
		if (ke.http_status != 409 || attempt == RESTORE_UPDATE_ATTEMPTS) {
			restore_fail(it, "updating the existing object: ", &ke);
			break;
		}
	}
	cJSON_DeleteItemFromObjectCaseSensitive(meta, "resourceVersion");
	free(path);
}

static void restore_create(struct restore_run *run, struct k8s_client *c, struct restore_item *it)
{
	char *path = k8s_resource_path(it->src->group, it->version, it->src->resource, it->ns, NULL);
	struct k8s_error ke;

	cJSON *made = NULL;

	if (restore_request(run, c, RESTORE_CREATE, path, it->src->obj, &made, &ke) == 0) {
		const char *uid = restore_meta_str(made, "uid");
		it->action = "created";
		if (strlen(uid) < sizeof it->uid && strspn(uid, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == strlen(uid))
			snprintf(it->uid, sizeof it->uid, "%s", uid);
	} else if (ke.http_status == 409 && strcmp(ke.reason, "AlreadyExists") == 0) {
		if (run->plan.update_existing) {
			restore_replace(run, c, it);
		} else {
			it->action = "skipped";
			snprintf(it->message, sizeof it->message, "already exists");
		}
	} else {
		restore_fail(it, "", &ke);
	}
	cJSON_Delete(made);
	free(path);
}

/* Whether the target serves group/version (asked once per restore; a failure to ask counts
 * as served, and the create says what is wrong). */
static int restore_version_served(struct restore_run *run, const char *group, const char *version)
{
	struct strbuf key = STRBUF_INIT, path = STRBUF_INIT;
	struct k8s_error ke;
	cJSON *doc = NULL;
	int served;

	strbuf_addf(&key, "%s/%s", group, version);
	if (restore_names_has(&run->versions_served, key.buf) || restore_names_has(&run->versions_unserved, key.buf)) {
		served = restore_names_has(&run->versions_served, key.buf);
		strbuf_release(&key);
		return served;
	}
	if (*group)
		strbuf_addf(&path, "/apis/%s/%s", group, version);
	else
		strbuf_addf(&path, "/api/%s", version);
	served = k8s_get(run->clients[0], path.buf, &doc, &ke) == 0 || ke.http_status != 404;
	cJSON_Delete(doc);
	restore_names_add(served ? &run->versions_served : &run->versions_unserved, key.buf);
	restore_names_seal(served ? &run->versions_served : &run->versions_unserved);
	strbuf_release(&key);
	strbuf_release(&path);
	return served;
}

/* The type must be served by the target the way the backup stored it, or at the version it
 * prefers when it does not serve the stored one. */
static int restore_type_check(struct restore_run *run, struct restore_item *it)
{
	const struct k8s_resource_type *type = k8s_resource_find(&run->types, it->src->group, it->src->resource);
	const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it->src->obj, "kind"));

	it->action = "failed";
	if (!type) {
		snprintf(it->message, sizeof it->message, "the target cluster does not serve %s%s%s", it->src->resource,
			 *it->src->group ? "." : "", it->src->group);
		return -1;
	}
	if (!kind || strcmp(kind, type->kind) != 0) {
		snprintf(it->message, sizeof it->message, "the object's kind %s is not %s, the kind of %s in the target cluster",
			 kind ? kind : "(none)", type->kind, it->src->resource);
		return -1;
	}
	if (strcmp(type->version, it->version) != 0 && !restore_version_served(run, it->src->group, it->version)) {
		/* stored at a version the target no longer (or not yet) serves: the version it prefers,
		 * which the API server converts or refuses in words */
		struct strbuf api = STRBUF_INIT;
		snprintf(it->message, sizeof it->message, "restored at %s%s%s: the target cluster does not serve %s%s%s",
			 it->src->group, *it->src->group ? "/" : "", type->version, it->src->group, *it->src->group ? "/" : "",
			 it->version);
		strbuf_addf(&api, "%s%s%s", it->src->group, *it->src->group ? "/" : "", type->version);
		cJSON_DeleteItemFromObjectCaseSensitive(it->src->obj, "apiVersion");
		cJSON_AddStringToObject(it->src->obj, "apiVersion", api.buf);
		strbuf_release(&api);
		free(it->version);
		it->version = xstrdup(type->version);
		job_log(run->job, "warning", "%s %s%s%s: %s", it->src->resource, it->ns, *it->ns ? "/" : "", it->name, it->message);
	}
	if (type->namespaced != (*it->ns != '\0')) {
		snprintf(it->message, sizeof it->message, "%s are %s in the target cluster but %s in the backup",
			 it->src->resource, type->namespaced ? "namespaced" : "cluster-scoped",
			 type->namespaced ? "cluster-scoped" : "namespaced");
		return -1;
	}
	it->action = NULL;
	return 0;
}

/* ---- one tier, in parallel ---- */

struct restore_pool {
	struct restore_run *run;
	const size_t *order;		/* item indexes of the tier */
	size_t n, next;
	size_t *finished;		/* indexes done by workers, not yet recorded */
	size_t nfinished;
	int workers_left;
	int stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

struct restore_worker {
	struct restore_pool *pool;
	struct k8s_client *client;
};

static void *restore_worker_loop(void *arg)
{
	struct restore_worker *w = arg;
	struct restore_pool *p = w->pool;

	pthread_mutex_lock(&p->mu);
	while (!p->stop && p->next < p->n) {
		size_t i = p->order[p->next++];
		pthread_mutex_unlock(&p->mu);
		restore_create(p->run, w->client, &p->run->items[i]);
		pthread_mutex_lock(&p->mu);
		p->finished[p->nfinished++] = i;
		pthread_cond_signal(&p->cv);
	}
	p->workers_left--;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void restore_count(cJSON *counts, const char *key)
{
	cJSON *c = cJSON_GetObjectItemCaseSensitive(counts, key);

	if (!c)
		cJSON_AddNumberToObject(counts, key, 1);
	else
		cJSON_SetNumberValue(c, c->valuedouble + 1);
}

/* job.result's counts per action and per type and its failed objects, as each is recorded. */
static void restore_tally(struct restore_run *run, const struct restore_item *it)
{
	char type[400];

	if (!run->counts) {
		run->counts = cJSON_CreateObject();
		run->type_counts = cJSON_CreateObject();
		run->failed = cJSON_CreateArray();
	}
	snprintf(type, sizeof type, "%s%s%s", it->src->resource, *it->src->group ? "." : "", it->src->group);
	restore_count(run->counts, it->action);
	cJSON *per = cJSON_GetObjectItemCaseSensitive(run->type_counts, type);
	if (!per)
		per = cJSON_AddObjectToObject(run->type_counts, type);
	restore_count(per, it->action);
	if (!it->skip)
		run->attempted++;
	if (it->tier == RESTORE_TIER_CRDS && !it->skip && strcmp(it->action, "failed") != 0)
		restore_names_add(&run->crds, it->name);
	if (strcmp(it->action, "failed") != 0)
		return;
	if (run->nfailed < RESTORE_FAILED_LISTED) {
		char line[1200];
		snprintf(line, sizeof line, "%s %s%s%s: %s", type, it->ns, *it->ns ? "/" : "", it->name, it->message);
		cJSON_AddItemToArray(run->failed, cJSON_CreateString(line));
		strbuf_addf(&run->failed_words, "%s%s", run->nfailed ? "; " : "", line);
	}
	run->nfailed++;
}

static void restore_record(struct restore_run *run, struct restore_item *it)
{
	run->recorded.job = run->job;
	job_items_batch_add(&run->recorded, it->action, it->src->group, it->version ? it->version : "", it->src->resource,
			    it->ns, it->name, it->message, it->uid);
	restore_tally(run, it);
	run->done++;
}

/* Creates order[0..n) with the pool; records each as it finishes. 1 when cancelled. */
static int restore_tier_run(struct restore_run *run, const size_t *order, size_t n, const char *phase)
{
	struct restore_pool p = { .run = run, .order = order, .n = n };
	struct restore_worker *w;
	pthread_t *threads;
	size_t *batch = xcalloc(n ? n : 1, sizeof *batch);
	int nthreads = (int)(run->parallelism < (long)n ? run->parallelism : (long)n), started = 0, cancelled = 0;

	p.finished = xcalloc(n ? n : 1, sizeof *p.finished);
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	threads = xcalloc((size_t)(nthreads ? nthreads : 1), sizeof *threads);
	w = xcalloc((size_t)(nthreads ? nthreads : 1), sizeof *w);
	for (int i = 0; i < (nthreads ? nthreads : 1); i++)	/* push backs come to restore_request */
		k8s_client_return_pushback(run->clients[i], 1);
	pthread_mutex_lock(&p.mu);
	for (int i = 0; i < nthreads; i++) {
		w[i] = (struct restore_worker){ &p, run->clients[i] };
		if (pthread_create(&threads[i], NULL, restore_worker_loop, &w[i]) != 0)
			break;
		started++;
		p.workers_left++;
	}
	pthread_mutex_unlock(&p.mu);
	if (started == 0)	/* no thread to be had: do it here */
		restore_worker_loop(&(struct restore_worker){ &p, run->clients[0] });
	for (;;) {
		size_t nbatch;
		int left;

		pthread_mutex_lock(&p.mu);
		if (p.nfinished == 0 && p.workers_left > 0) {	/* a second at most: a cancel ends waits */
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec++;
			pthread_cond_timedwait(&p.cv, &p.mu, &until);
		}
		nbatch = p.nfinished;
		memcpy(batch, p.finished, nbatch * sizeof *batch);
		p.nfinished = 0;
		left = p.workers_left;
		pthread_mutex_unlock(&p.mu);
		for (size_t i = 0; i < nbatch; i++)
			restore_record(run, &run->items[batch[i]]);
		job_progress(run->job, phase, (long)run->done, (long)run->n, run->job->bytes_done, 0);
		if (!cancelled && job_cancel_requested(run->job)) {
			cancelled = 1;
			pthread_mutex_lock(&p.mu);
			p.stop = 1;
			pthread_mutex_unlock(&p.mu);
			pace_stop(&run->pace);
		}
		if (left <= 0 && nbatch == 0)
			break;
	}
	for (int i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	for (int i = 0; i < (nthreads ? nthreads : 1); i++)
		k8s_client_return_pushback(run->clients[i], 0);
	job_items_batch_flush(&run->recorded);
	pthread_mutex_destroy(&p.mu);
	pthread_cond_destroy(&p.cv);
	free(threads);
	free(w);
	free(batch);
	free(p.finished);
	return cancelled;
}

/* ---- CRDs: established and served before their custom resources ---- */

static int restore_crd_established(const cJSON *crd, void *ud)
{
	const cJSON *c;

	(void)ud;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(crd, "status"), "conditions")) {
		const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "type"));
		const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "status"));
		if (type && status && strcmp(type, "Established") == 0)
			return strcmp(status, "True") == 0;
	}
	return 0;
}

static int restore_rediscover(struct restore_run *run, char *err, size_t errlen)
{
	struct k8s_resource_list fresh;
	struct k8s_error ke;
	char words[520];

	if (k8s_discover(run->clients[0], K8S_DISCOVERY_AUTO, &fresh, &ke) < 0) {
		k8s_error_describe(&ke, words, sizeof words);
		snprintf(err, errlen, "discovering the target cluster's resource types: %s", words);
		return -1;
	}
	k8s_resource_list_free(&run->types);
	run->types = fresh;
	return 0;
}

/* Waits for every restored CRD to be Established, then until discovery serves its resource. */
static int restore_crds_wait(struct restore_run *run, char *err, size_t errlen)
{
	double deadline = now_seconds() + RESTORE_CRD_WAIT_MS / 1000.0;
	struct k8s_error ke;
	char words[520];
	int waiting = 0;

	for (size_t i = 0; i < run->crds.n; i++) {
		const char *name = run->crds.v[i];
		char *path = k8s_resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions", NULL, name);
		if (k8s_wait(run->clients[0], path, restore_crd_established, NULL, RESTORE_CRD_WAIT_MS, &ke) < 0) {
			k8s_error_describe(&ke, words, sizeof words);
			job_log(run->job, "warning", "CRD %s is not Established: %s; its custom resources may fail", name, words);
		}
		free(path);
		waiting++;
	}
	if (!waiting)
		return 0;
	for (;;) {
		int missing = 0;
		if (restore_rediscover(run, err, errlen) < 0)
			return -1;
		for (size_t i = 0; i < run->n; i++) {
			const struct backup_object *o = restore_object(run, i);
			const struct restore_entry *e = &run->entries[o->mark];
			if (e->tier == RESTORE_TIER_REST && !e->skip && !k8s_resource_find(&run->types, o->group, o->resource))
				missing++;
		}
		if (!missing || now_seconds() > deadline)
			return 0;
		usleep(250 * 1000);
	}
}

/* ---- the tiers ---- */

/* The entry's object named for a record, without reading it back (skipped or refused). */
static void restore_item_named(struct restore_run *run, size_t i, struct restore_item *it, const char *action,
			       const char *message)
{
	struct backup_object *o = restore_object(run, i);

	memset(it, 0, sizeof *it);
	it->src = o;
	it->ns = xstrdup(restore_namespace_target(&run->t, o->ns));
	it->name = xstrdup(restore_is_namespace(o) ? restore_namespace_target(&run->t, o->name) : o->name);
	it->version = xstrdup(run->entries[o->mark].version);
	it->tier = run->entries[o->mark].tier;
	it->skip = run->entries[o->mark].skip;
	it->action = action;
	snprintf(it->message, sizeof it->message, "%s", message);
}

/* Reads back, transforms and creates the objects order[*pos..) of tier t, RESTORE_BATCH at a
 * time; counts what the tier created and failed. 1 when cancelled. */
static int restore_tier_batches(struct restore_run *run, const size_t *order, size_t *pos, enum restore_tier t,
				const char *phase, size_t *n, size_t *created, size_t *failed)
{
	size_t batch[RESTORE_BATCH];
	int cancelled = 0;

	while (!cancelled && *pos < run->n && run->entries[restore_object(run, order[*pos])->mark].tier == t) {
		size_t nb = 0, nrun = 0;

		for (; *pos < run->n && nb < RESTORE_BATCH; ++*pos) {
			const struct restore_entry *e = &run->entries[restore_object(run, order[*pos])->mark];
			if (e->tier != t)
				break;
			if (e->skip)
				continue;
			struct restore_item *it = &run->items[nb++];
			if (e->refused) {
				restore_item_named(run, order[*pos], it, "failed", e->refused);
				restore_record(run, it);
				continue;
			}
			restore_item_load(run, order[*pos], it);
			if (it->refused) {
				it->action = "failed";
				restore_record(run, it);
			} else if (restore_type_check(run, it) < 0) {
				restore_record(run, it);
			} else {
				batch[nrun++] = nb - 1;
			}
		}
		if (nrun)
			cancelled = restore_tier_run(run, batch, nrun, phase);
		for (size_t i = 0; i < nrun; i++) {
			const char *action = run->items[batch[i]].action;
			*failed += action && strcmp(action, "failed") == 0;
			*created += action && strcmp(action, "created") == 0;
		}
		*n += nrun;
		restore_batch_free(run, nb);
	}
	return cancelled;
}

static int restore_create_all(struct restore_run *run, char *err, size_t errlen)
{
	struct restore_order_key *keys = xcalloc(run->n ? run->n : 1, sizeof *keys);
	size_t *order = xcalloc(run->n ? run->n : 1, sizeof *order);
	int rc = 0;

	for (size_t i = 0; i < run->n; i++) {
		const struct backup_object *o = restore_object(run, i);
		keys[i] = (struct restore_order_key){ o->group, o->resource, restore_namespace_target(&run->t, o->ns),
						      restore_is_namespace(o) ? restore_namespace_target(&run->t, o->name) : o->name };
		order[i] = i;
	}
	restore_order_sort(keys, order, run->n);
	free(keys);
	run->items = xcalloc(RESTORE_BATCH, sizeof *run->items);
	/* what is left out is recorded first: the cluster or an owner recreates it */
	for (size_t i = 0; i < run->n; i++) {
		const struct restore_entry *e = &run->entries[restore_object(run, i)->mark];
		if (!e->skip)
			continue;
		restore_item_named(run, i, &run->items[0], "skipped", e->skip);
		restore_record(run, &run->items[0]);
		restore_batch_free(run, 1);
	}
	for (size_t pos = 0; pos < run->n && rc == 0;) {
		enum restore_tier t = run->entries[restore_object(run, order[pos])->mark].tier;
		struct job_phase started = job_phase_start(NULL);
		size_t n = 0, created = 0, failed = 0;
		char phase[64];

		snprintf(phase, sizeof phase, "create %s", restore_tier_name(t));
		long pushbacks = run->pace.pushbacks, waited_ms = run->pace.waited_ms;
		run->pace.ok_ms = http_retry_now_ms();	/* each tier gets RESTORE_PUSHBACK_GIVEUP_MS */
		int cancelled = restore_tier_batches(run, order, &pos, t, phase, &n, &created, &failed);
		if (run->pace.pushbacks > pushbacks)
			job_log(run->job, "info", "%s: slowed down by the API server, which pushed back %ld requests (too many "
				"requests): down to %.0f of %d requests in flight, %.1f s waited as it asked", phase,
				run->pace.pushbacks - pushbacks, run->pace.smallest, run->pace.max,
				(double)(run->pace.waited_ms - waited_ms) / 1000);
		if (cancelled) {
			restore_phase(run, phase, &started, "cancelled", (long)n);
			rc = 1;
			break;
		}
		if (n == 0)
			continue;
		restore_phase(run, phase, &started, failed == n ? "failed" : failed ? "partially_failed" : "succeeded", (long)n);
		job_log(run->job, failed ? "warning" : "info", "%s: %zu of %zu objects created, %zu failed, %zu already there (skipped or updated), "
			"in %.1f s", phase, created, n, failed, n - created - failed, job_phase_seconds(&started));
		if (t == RESTORE_TIER_CRDS) {
			restore_names_seal(&run->crds);
			if (restore_crds_wait(run, err, errlen) < 0)
				rc = -1;
		}
	}
	job_items_batch_flush(&run->recorded);
	free(order);
	return rc;
}

/* ---- hooks and the result ---- */

/* The plan's hooks of one phase: "pre-restore" (entries that name it) before any object is
 * created, when the target namespaces may not exist yet; "post-restore" once every object
 * exists. They run in each target namespace, the others granted. Returns the phase's state, or
 * NULL when a hook failed the restore (err says which). */
static const char *restore_hooks(struct restore_run *run, const char *phase, char *err, size_t errlen)
{
	cJSON *context, *targets;
	const cJSON *entry;
	int rc, any = 0;

	cJSON_ArrayForEach(entry, run->plan.hooks) {
		const char *only = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(entry, "phase"));
		any |= only ? strcmp(only, phase) == 0 : strcmp(phase, "post-restore") == 0;
	}
	if (!any)
		return "none";
	targets = cJSON_CreateArray();
	for (size_t i = 0; i < run->ns_want.n; i++)
		cJSON_AddItemToArray(targets, cJSON_CreateString(run->ns_want.v[i]));
	if (cJSON_GetArraySize(targets) == 0) {
		cJSON_Delete(targets);
		job_log(run->job, "warning", "%s hooks not run: the restore has no namespaced object", phase);
		return "skipped";
	}
	context = cJSON_CreateObject();
	cJSON_AddStringToObject(context, "backup", run->plan.backup_name);
	cJSON_AddStringToObject(context, "target_namespace", cJSON_GetArrayItem(targets, 0)->valuestring);
	cJSON_AddItemToObject(context, "namespaces", targets);
	rc = job_run_hooks(run->job, phase, run->plan.hooks, run->clients[0], context, err, errlen);
	cJSON_Delete(context);
	return rc < 0 ? NULL : "succeeded";
}

/* job.result: counts per action and per type, the failed objects, the phases. Returns failures. */
static long restore_result(struct restore_run *run, double create_seconds, char *err, size_t errlen)
{
	cJSON *result = run->job->result;
	long nfailed = run->nfailed, attempted = run->attempted;

	cJSON_DeleteItemFromObjectCaseSensitive(result, "counts");
	cJSON_DeleteItemFromObjectCaseSensitive(result, "types");
	cJSON_DeleteItemFromObjectCaseSensitive(result, "failed");
	cJSON_DeleteItemFromObjectCaseSensitive(result, "create");
	cJSON_AddItemToObject(result, "counts", run->counts ? run->counts : cJSON_CreateObject());
	cJSON_AddItemToObject(result, "types", run->type_counts ? run->type_counts : cJSON_CreateObject());
	cJSON_AddItemToObject(result, "failed", run->failed ? run->failed : cJSON_CreateArray());
	run->counts = run->type_counts = run->failed = NULL;
	cJSON *create = cJSON_AddObjectToObject(result, "create");
	cJSON_AddNumberToObject(create, "objects", (double)attempted);
	cJSON_AddNumberToObject(create, "seconds", (double)(long)(create_seconds * 1000) / 1000);
	cJSON_AddNumberToObject(create, "objects_per_second",
				create_seconds > 0 ? (double)(long)(attempted / create_seconds * 10) / 10 : 0);
	cJSON_AddNumberToObject(create, "parallelism", (double)run->parallelism);
	cJSON_AddNumberToObject(create, "rate_limit", run->rate);
	/* how much the API server slowed the restore down (API Priority and Fairness, 429) */
	cJSON_AddNumberToObject(create, "pushbacks", (double)run->pace.pushbacks);
	cJSON_AddNumberToObject(create, "pushback_wait_seconds", (double)(run->pace.waited_ms / 100) / 10);
	cJSON_AddNumberToObject(create, "smallest_in_flight", (double)(long)run->pace.smallest);
	if (nfailed)
		snprintf(err, errlen, "%ld of %ld objects failed: %s", nfailed, attempted, run->failed_words.buf);
	return nfailed == attempted && nfailed ? -1 : nfailed;
}

/* ---- the job ---- */

static int restore_clients_open(struct restore_run *run, char *err, size_t errlen)
{
	run->clients = xcalloc((size_t)run->parallelism, sizeof *run->clients);
	for (long i = 0; i < run->parallelism; i++) {
		run->clients[i] = job_cluster_client(run->job, run->plan.cluster_id, NULL, 0, err, errlen);
		if (!run->clients[i])
			return -1;
	}
	return restore_rediscover(run, err, errlen);
}

/* The volume record without the claims bound again to their original volumes: those keep what
 * they hold; the backup's copy is written only into new volumes. */
static void restore_leave_reattached(struct restore_run *run)
{
	cJSON *v, *next;

	restore_names_seal(&run->reattached);
	for (v = run->volumes ? run->volumes->child : NULL; v; v = next) {
		const char *ns = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "namespace"));
		const char *pvc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "pvc"));
		char key[600];

		next = v->next;
		snprintf(key, sizeof key, "%s/%s", ns ? ns : "", pvc ? pvc : "");
		if (ns && pvc && restore_names_has(&run->reattached, key)) {
			job_log(run->job, "info", "claim %s: reattached to its original volume, which keeps its data; the "
				"backup's copy is not written over it", key);
			cJSON_Delete(cJSON_DetachItemViaPointer(run->volumes, v));
		}
	}
}

static void restore_run_free(struct restore_run *run)
{
	for (long i = 0; run->clients && i < run->parallelism; i++)
		k8s_client_free(run->clients[i]);
	free(run->clients);
	k8s_resource_list_free(&run->types);
	free(run->items);
	for (size_t i = 0; i < run->nentries; i++) {
		free(run->entries[i].version);
		free(run->entries[i].note);
	}
	free(run->entries);
	if (run->bodies)
		fclose(run->bodies);
	struct backup_archive extra = { .objects = run->extra, .n = run->nextra };
	backup_archive_free(&extra);
	backup_archive_free(&run->archive);
	restore_names_free(&run->uids);
	restore_names_free(&run->pv_names);
	restore_names_free(&run->ns_have);
	restore_names_free(&run->ns_want);
	restore_names_free(&run->chosen);
	restore_names_free(&run->crds);
	cJSON_Delete(run->counts);
	cJSON_Delete(run->type_counts);
	cJSON_Delete(run->failed);
	strbuf_release(&run->failed_words);
	cJSON_Delete(run->cluster_class_map);
	cJSON_Delete(run->volumes);
	cJSON_Delete(run->recorded.rows);
	restore_names_free(&run->reattached);
	restore_names_free(&run->versions_served);
	restore_names_free(&run->versions_unserved);
	restore_plan_free(&run->plan);
	pace_destroy(&run->pace);
	if (run->archive_path[0])
		unlink(run->archive_path);
}

const char *job_restore_run(struct job *job, char *err, size_t errlen)
{
	struct restore_spec spec;
	const char *state = "failed";

	if (restore_spec_load(job, &spec, err, errlen) == 0)
		state = job_restore_execute(job, &spec, err, errlen);
	restore_spec_free(&spec);
	return state;
}

const char *job_restore_execute(struct job *job, const struct restore_spec *spec, char *err, size_t errlen)
{
	struct restore_run run = { .job = job };
	const char *state = "failed";
	struct job_phase started;
	long failures;
	int rc;

	run.phases = cJSON_CreateArray();
	cJSON_DeleteItemFromObjectCaseSensitive(job->result, "phases");
	cJSON_AddItemToObject(job->result, "phases", run.phases);
	pace_init(&run.pace, 1);
	if (restore_settings_load(&run, err, errlen) < 0 || restore_plan_load(&run, spec, err, errlen) < 0)
		goto out;
	run.pace.window = run.pace.smallest = run.pace.max = (int)run.parallelism;
	if (run.rate > 0)
		run.bucket = rate_bucket_for(run.plan.cluster_id, run.rate);

	started = job_phase_start(NULL);
	job_progress(job, "download", 0, 0, 0, 0);
	rc = restore_download(&run, err, errlen);
	restore_phase(&run, "download", &started, rc == 0 ? "succeeded" : "failed", -1);
	if (rc < 0)
		goto out;

	started = job_phase_start(NULL);
	job_progress(job, "prepare", 0, 0, job->bytes_done, 0);
	rc = restore_clients_open(&run, err, errlen);
	if (rc == 0)
		rc = restore_prepare(&run, err, errlen);
	restore_phase(&run, "prepare", &started, rc == 0 ? "succeeded" : "failed", (long)run.n);
	if (rc < 0)
		goto out;

	started = job_phase_start(NULL);
	const char *pre_state = restore_hooks(&run, "pre-restore", err, errlen);
	if (strcmp(pre_state ? pre_state : "", "none") != 0)
		restore_phase(&run, "pre-restore hooks", &started, pre_state ? pre_state : "failed", -1);
	if (!pre_state) {
		char ignored[8];
		restore_result(&run, 0, ignored, sizeof ignored);
		goto out;
	}

	started = job_phase_start(NULL);
	job_progress(job, "create", 0, (long)run.n, job->bytes_done, 0);
	rc = restore_create_all(&run, err, errlen);
	double create_seconds = job_phase_seconds(&started);
	if (rc != 0) {
		if (rc > 0)
			snprintf(err, errlen, "cancelled after %zu of %zu objects", run.done, run.n);
		state = rc > 0 ? "cancelled" : "failed";
		char ignored[8];
		restore_result(&run, create_seconds, ignored, sizeof ignored);
		goto out;
	}

	started = job_phase_start(NULL);
	char volume_err[1024] = "";
	restore_leave_reattached(&run);
	if (cJSON_GetArraySize(run.volumes) > 0) {
		struct job_repository repo;
		int vrc = job_repository_open(job, run.plan.repository_id, &repo, volume_err, sizeof volume_err);
		if (vrc == 0) {
			vrc = job_restore_volumes(job, run.clients[0], run.plan.cluster_id, &repo, run.volumes, run.plan.namespace_map,
						  run.plan.mirror_volumes, volume_err, sizeof volume_err);
			job_repository_close(&repo);
		}
		restore_phase(&run, "volumes", &started, vrc == 0 ? "succeeded" : "failed", -1);
		if (vrc < 0)
			job_log(job, "error", "volume data: %s", volume_err);
		else
			volume_err[0] = '\0';
	}
	/* cancelled while the data came back: it ends cancelled, no hook runs, and what it created
	 * can be undone (job_undo_restore_run) */
	if (job_cancel_requested(job)) {
		snprintf(err, errlen, "cancelled after its %zu objects, before its volume data was restored", run.n);
		state = "cancelled";
		char ignored[8];
		restore_result(&run, create_seconds, ignored, sizeof ignored);
		goto out;
	}

	if (run.plan.start_later) {
		const cJSON *ns;
		cJSON *unstarted = cJSON_CreateArray();
		int failed = 0;
		started = job_phase_start(NULL);
		cJSON_ArrayForEach(ns, run.plan.start_later)
			failed += workloads_start(run.clients[0], run.plan.start_later, ns->string, ns->string, unstarted);
		cJSON_ArrayForEach(ns, unstarted)
			job_log(job, "error", "starting the restored workloads: %s", ns->valuestring);
		cJSON_Delete(unstarted);
		restore_phase(&run, "start workloads", &started, failed ? "failed" : "succeeded", -1);
	}

	started = job_phase_start(NULL);
	const char *hooks_state = restore_hooks(&run, "post-restore", err, errlen);
	restore_phase(&run, "hooks", &started, hooks_state ? hooks_state : "failed", -1);
	if (!hooks_state) {
		char ignored[8];
		restore_result(&run, create_seconds, ignored, sizeof ignored);
		goto out;
	}

	started = job_phase_start(NULL);
	job_progress(job, "finalize", (long)run.done, (long)run.n, job->bytes_done, 0);
	failures = restore_result(&run, create_seconds, err, errlen);
	state = failures < 0 ? "failed" : failures > 0 ? "partially_failed" : "succeeded";
	if (volume_err[0] && strcmp(state, "succeeded") == 0) {
		snprintf(err, errlen, "the objects were restored, but volume data was not: %s", volume_err);
		state = "partially_failed";
	}
	restore_phase(&run, "finalize", &started, "succeeded", -1);
	job_log(job, failures ? "warning" : "info", "restored backup %s: %zu objects in %.1f s", run.plan.backup_name,
		run.n, create_seconds);
out:
	restore_run_free(&run);
	return state;
}

/* ---- undo: what a cancelled restore created, removed ---- */

/* result.undo_of names a cancelled restore job. Each object it recorded as created, with the
 * uid the server gave it, is deleted only while it still has that uid (a DELETE precondition):
 * objects that were there before the restore were recorded skipped or updated, never created,
 * and an object deleted and made again since has another uid; both are left alone. Newest
 * first, Namespaces last (a Namespace the restore created held nothing before it). */
const char *job_undo_restore_run(struct job *job, char *err, size_t errlen)
{
	const cJSON *of = cJSON_GetObjectItemCaseSensitive(job->result, "undo_of");
	char id[24];
	const char *params[] = { id };
	PGresult *res;

	if (!cJSON_IsNumber(of)) {
		snprintf(err, errlen, "an undo names the restore job it undoes (result.undo_of)");
		return "failed";
	}
	snprintf(id, sizeof id, "%lld", (long long)of->valuedouble);
	res = job_query(job, "SELECT kind, state, coalesce(cluster_id, 0) FROM jobs WHERE id = $1", 1, params, err, errlen);
	if (!res || PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "restore") != 0 ||
	    strcmp(PQgetvalue(res, 0, 1), "cancelled") != 0) {
		if (res)
			snprintf(err, errlen, "job %s is not a cancelled restore", id);
		PQclear(res);
		return "failed";
	}
	long long cluster_id = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	PQclear(res);
	return job_undo_created(job, (long long)of->valuedouble, cluster_id, err, errlen);
}

const char *job_undo_created(struct job *job, long long of_job, long long cluster_id, char *err, size_t errlen)
{
	char id[24], cluster[128];
	const char *params[] = { id };
	long deleted = 0, left = 0, failed = 0;
	PGresult *res;

	snprintf(id, sizeof id, "%lld", of_job);
	res = job_query(job, "SELECT api_group, api_version, resource, namespace, name, uid FROM job_items "
			"WHERE job_id = $1 AND action = 'created' AND uid <> '' ORDER BY resource = 'namespaces', id DESC",
			1, params, err, errlen);
	if (!res)
		return "failed";
	struct k8s_client *k = job_cluster_client(job, cluster_id, cluster, sizeof cluster, err, errlen);
	if (!k) {
		PQclear(res);
		return "failed";
	}
	int n = PQntuples(res);
	job_log(job, "info", "undoing restore job %s: %d objects it created in cluster %s", id, n, cluster);
	for (int i = 0; i < n; i++) {
		const char *group = PQgetvalue(res, i, 0), *version = PQgetvalue(res, i, 1), *resource = PQgetvalue(res, i, 2);
		const char *ns = PQgetvalue(res, i, 3), *name = PQgetvalue(res, i, 4), *uid = PQgetvalue(res, i, 5);
		char *path = k8s_resource_path(group, version, resource, *ns ? ns : NULL, name);
		struct k8s_error ke = { 0 };
		char words[600], message[700];
		cJSON *live = NULL;
		const char *action = "deleted";

		job_progress(job, "removing what the restore created", i, n, 0, 0);
		if (!*version) {
			action = "skipped";
			snprintf(message, sizeof message, "its version was not recorded: left alone");
		} else if (k8s_get(k, path, &live, &ke) < 0) {
			k8s_error_describe(&ke, words, sizeof words);
			action = ke.http_status == 404 ? "skipped" : "failed";
			snprintf(message, sizeof message, "%s", ke.http_status == 404 ? "already gone" : words);
		} else if (strcmp(restore_meta_str(live, "uid"), uid) != 0) {
			action = "skipped";
			snprintf(message, sizeof message, "replaced since the restore (uid %.64s, the restore made %s): left alone",
				 restore_meta_str(live, "uid"), uid);
		} else if (k8s_delete_uid(k, path, uid, &ke) < 0) {
			k8s_error_describe(&ke, words, sizeof words);
			action = ke.http_status == 404 ? "skipped" : ke.http_status == 409 ? "skipped" : "failed";
			snprintf(message, sizeof message, "%s", ke.http_status == 404 ? "already gone" :
				 ke.http_status == 409 ? "replaced since the restore: left alone" : words);
		} else {
			snprintf(message, sizeof message, "deleted (uid %s, created by restore job %s)", uid, id);
		}
		cJSON_Delete(live);
		free(path);
		deleted += strcmp(action, "deleted") == 0;
		left += strcmp(action, "skipped") == 0;
		failed += strcmp(action, "failed") == 0;
		job_item_created(job, action, group, version, resource, ns, name, message, "");
		if (job_cancel_requested(job))
			break;
	}
	PQclear(res);
	k8s_client_free(k);
	cJSON *u = cJSON_AddObjectToObject(job->result, "undo");
	cJSON_AddNumberToObject(u, "deleted", (double)deleted);
	cJSON_AddNumberToObject(u, "left_alone", (double)left);
	cJSON_AddNumberToObject(u, "failed", (double)failed);
	job_progress(job, "removing what the restore created", n, n, 0, 0);
	job_log(job, failed ? "warning" : "info", "undo of restore job %s: %ld deleted, %ld left alone, %ld failed",
		id, deleted, left, failed);
	if (job->cancelled) {
		snprintf(err, errlen, "cancelled: %ld of %d objects deleted", deleted, n);
		return "cancelled";
	}
	if (failed) {
		snprintf(err, errlen, "%ld of %d objects could not be deleted (see each object's result)", failed, n);
		return deleted ? "partially_failed" : "failed";
	}
	return "succeeded";
}
