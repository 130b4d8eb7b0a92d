#include "migrate_workloads.h"
#include "http_retry.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct workload_kind {
	const char *key;	/* "<plural>.<group>" as recorded */
	const char *group, *version, *plural;
	int is_cronjob;
};

static const struct workload_kind workload_kinds[] = {
	{ "deployments.apps", "apps", "v1", "deployments", 0 },
	{ "statefulsets.apps", "apps", "v1", "statefulsets", 0 },
	{ "replicasets.apps", "apps", "v1", "replicasets", 0 },
	{ "cronjobs.batch", "batch", "v1", "cronjobs", 1 },
};
#define WORKLOAD_KINDS (sizeof workload_kinds / sizeof workload_kinds[0])

static const struct workload_kind *kind_of(const char *key, size_t keylen)
{
	for (size_t i = 0; i < WORKLOAD_KINDS; i++)
		if (strlen(workload_kinds[i].key) == keylen && strncmp(workload_kinds[i].key, key, keylen) == 0)
			return &workload_kinds[i];
	return NULL;
}

/* A ReplicaSet that a Deployment owns is the Deployment's business. */
static int owned_by_controller(const cJSON *obj)
{
	const cJSON *refs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"),
							       "ownerReferences"), *ref;

	cJSON_ArrayForEach(ref, refs)
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ref, "controller")))
			return 1;
	return 0;
}

static int patch_workload(struct k8s_client *k, const struct workload_kind *wk, const char *ns, const char *name,
			  const cJSON *value, char *err, size_t errlen)
{
	struct k8s_error kerr = { 0 };
	char patch[128];
	char *path = k8s_resource_path(wk->group, wk->version, wk->plural, ns, name);
	int rc;

	if (wk->is_cronjob)
		snprintf(patch, sizeof patch, "{\"spec\":{\"suspend\":%s}}", cJSON_IsTrue(value) ? "true" : "false");
	else
		snprintf(patch, sizeof patch, "{\"spec\":{\"replicas\":%d}}", value->valueint);
	rc = k8s_patch(k, path, K8S_PATCH_MERGE, patch, NULL, &kerr);
	if (rc < 0) {
		char why[600];
		k8s_error_describe(&kerr, why, sizeof why);
		snprintf(err, errlen, "%s %s/%s: %s", wk->plural, ns, name, why);
	}
	free(path);
	return rc;
}

struct stop_ctx {
	const struct workload_kind *wk;
	const char *ns;
	struct k8s_client *k;
	cJSON *names;		/* collected: name -> original value */
};

static int collect_workload(cJSON *obj, void *ud)
{
	struct stop_ctx *sc = ud;
	const cJSON *meta, *spec, *name;

	if (!obj) {	/* the listing restarted: forget what was seen */
		cJSON_Delete(sc->names);
		sc->names = cJSON_CreateObject();
		return 0;
	}
	meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
	name = cJSON_GetObjectItemCaseSensitive(meta, "name");
	if (!cJSON_IsString(name))
		return 0;
	if (!sc->wk->is_cronjob && strcmp(sc->wk->plural, "replicasets") == 0 && owned_by_controller(obj))
		return 0;
	if (sc->wk->is_cronjob) {
		cJSON_AddBoolToObject(sc->names, name->valuestring,
				      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(spec, "suspend")));
	} else {
		const cJSON *replicas = cJSON_GetObjectItemCaseSensitive(spec, "replicas");
		cJSON_AddNumberToObject(sc->names, name->valuestring, cJSON_IsNumber(replicas) ? replicas->valueint : 1);
	}
	return 0;
}

int workloads_stop(struct k8s_client *k, const char *ns, cJSON *record, char *err, size_t errlen)
{
	cJSON *per_ns = cJSON_GetObjectItemCaseSensitive(record, ns);

	if (!per_ns)
		per_ns = cJSON_AddObjectToObject(record, ns);
	for (size_t i = 0; i < WORKLOAD_KINDS; i++) {
		const struct workload_kind *wk = &workload_kinds[i];
		struct k8s_resource_type type = { 0 };
		struct stop_ctx sc = { wk, ns, k, cJSON_CreateObject() };
		struct k8s_error kerr = { 0 };
		const cJSON *item;

		snprintf(type.group, sizeof type.group, "%s", wk->group);
		snprintf(type.version, sizeof type.version, "%s", wk->version);
		snprintf(type.plural, sizeof type.plural, "%s", wk->plural);
		type.namespaced = 1;
		if (k8s_list(k, &type, ns, NULL, 500, collect_workload, &sc, &kerr) < 0) {
			char why[600];
			k8s_error_describe(&kerr, why, sizeof why);
			snprintf(err, errlen, "listing %s in %s: %s", wk->plural, ns, why);
			cJSON_Delete(sc.names);
			return -1;
		}
		cJSON_ArrayForEach(item, sc.names) {
			char key[512];
			cJSON *stopped = wk->is_cronjob ? cJSON_CreateTrue() : cJSON_CreateNumber(0);
			int rc = patch_workload(k, wk, ns, item->string, stopped, err, errlen);
			cJSON_Delete(stopped);
			if (rc < 0) {
				cJSON_Delete(sc.names);
				return -1;
			}
			/* Recorded only once stopped: starting again touches only what was changed. */
			snprintf(key, sizeof key, "%s/%s", wk->key, item->string);
			cJSON_AddItemToObject(per_ns, key, cJSON_Duplicate(item, 0));
		}
		cJSON_Delete(sc.names);
	}
	return 0;
}

int workloads_start(struct k8s_client *k, const cJSON *record, const char *ns_from, const char *ns_to,
		    cJSON *failures)
{
	const cJSON *per_ns = cJSON_GetObjectItemCaseSensitive(record, ns_from), *item;
	int failed = 0;

	cJSON_ArrayForEach(item, per_ns) {
		const char *slash = strchr(item->string, '/');
		const struct workload_kind *wk = slash ? kind_of(item->string, (size_t)(slash - item->string)) : NULL;
		char err[700];
		if (!wk) {
			failed++;
			if (failures)
				cJSON_AddItemToArray(failures, cJSON_CreateString(item->string));
			continue;
		}
		if (patch_workload(k, wk, ns_to, slash + 1, item, err, sizeof err) < 0) {
			failed++;
			if (failures)
				cJSON_AddItemToArray(failures, cJSON_CreateString(err));
		}
	}
	return failed;
}

cJSON *workloads_current(struct k8s_client *k, const char *ns, const cJSON *record)
{
	const cJSON *per_ns = cJSON_GetObjectItemCaseSensitive(record, ns), *item;
	cJSON *now = cJSON_CreateObject();

	cJSON_ArrayForEach(item, per_ns) {
		const char *slash = strchr(item->string, '/');
		const struct workload_kind *wk = slash ? kind_of(item->string, (size_t)(slash - item->string)) : NULL;
		struct k8s_error kerr = { 0 };
		cJSON *obj = NULL;
		if (!wk)
			continue;
		char *path = k8s_resource_path(wk->group, wk->version, wk->plural, ns, slash + 1);
		if (k8s_get(k, path, &obj, &kerr) == 0) {
			const cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, wk->is_cronjob ? "suspend" : "replicas");
			cJSON_AddItemToObject(now, item->string, v ? cJSON_Duplicate(v, 0) : cJSON_CreateNull());
		}
		cJSON_Delete(obj);
		free(path);
	}
	return now;
}

/* Pods that a stopped workload still runs: those a ReplicaSet or a StatefulSet controls. */
struct pods_ctx {
	int count;
	struct strbuf names;
};

static int collect_pod(cJSON *obj, void *ud)
{
	struct pods_ctx *pc = ud;
	const cJSON *meta, *ref;

	if (!obj) {	/* the listing restarted */
		pc->count = 0;
		strbuf_reset(&pc->names);
		return 0;
	}
	meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	cJSON_ArrayForEach(ref, cJSON_GetObjectItemCaseSensitive(meta, "ownerReferences")) {
		const cJSON *kind = cJSON_GetObjectItemCaseSensitive(ref, "kind");

		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ref, "controller")) && cJSON_IsString(kind) &&
		    (strcmp(kind->valuestring, "ReplicaSet") == 0 || strcmp(kind->valuestring, "StatefulSet") == 0)) {
			const cJSON *name = cJSON_GetObjectItemCaseSensitive(meta, "name");

			if (pc->count++ < 5)
				strbuf_addf(&pc->names, "%s%s", pc->names.len ? ", " : "",
					    cJSON_IsString(name) ? name->valuestring : "?");
			break;
		}
	}
	return 0;
}

int workloads_wait_stopped(struct k8s_client *k, const char *ns, long timeout_ms, char *err, size_t errlen)
{
	struct k8s_resource_type type = { .version = "v1", .plural = "pods", .namespaced = 1 };
	struct pods_ctx pc = { 0, STRBUF_INIT };
	long start = http_retry_now_ms();
	int rc = -1;

	for (;;) {
		struct k8s_error kerr = { 0 };

		pc.count = 0;
		strbuf_reset(&pc.names);
		if (k8s_list(k, &type, ns, NULL, 500, collect_pod, &pc, &kerr) < 0) {
			char why[600];
			k8s_error_describe(&kerr, why, sizeof why);
			snprintf(err, errlen, "listing the pods of %s: %s", ns, why);
			break;
		}
		if (pc.count == 0) {
			rc = 0;
			break;
		}
		if (http_retry_now_ms() - start > timeout_ms) {
			snprintf(err, errlen, "%d pod%s of the stopped workloads in %s still exist%s after %ld s (%s%s): "
				 "their data would be copied while in use", pc.count, pc.count == 1 ? "" : "s", ns,
				 pc.count == 1 ? "s" : "", timeout_ms / 1000, pc.names.buf, pc.count > 5 ? ", ..." : "");
			break;
		}
		http_retry_sleep_ms(1000);
	}
	strbuf_release(&pc.names);
	return rc;
}

static long status_count(const cJSON *obj, const char *part, const char *field)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, part), field);

	return cJSON_IsNumber(n) ? (long)n->valuedouble : 0;
}

/* Appends "<key>: R of N ready" to words when the workload is not ready yet; -1 when it cannot be read. */
static int workload_ready(struct k8s_client *k, const struct workload_kind *wk, const char *ns, const char *name,
			  long want, struct strbuf *words, char *err, size_t errlen)
{
	char *path = k8s_resource_path(wk->group, wk->version, wk->plural, ns, name);
	struct k8s_error kerr = { 0 };
	cJSON *obj = NULL;
	int rc = k8s_get(k, path, &obj, &kerr);

	free(path);
	if (rc < 0) {
		char why[600];
		k8s_error_describe(&kerr, why, sizeof why);
		snprintf(err, errlen, "%s %s/%s: %s", wk->plural, ns, name, why);
		return -1;
	}
	int deployment = strcmp(wk->plural, "deployments") == 0;
	long ready = status_count(obj, "status", deployment ? "availableReplicas" : "readyReplicas");
	long updated = status_count(obj, "status", "updatedReplicas");
	int current = status_count(obj, "status", "observedGeneration") >= status_count(obj, "metadata", "generation");

	if (!current || ready < want || (deployment && updated < want))
		strbuf_addf(words, "%s%s/%s: %ld of %ld ready", words->len ? ", " : "", wk->key, name, ready, want);
	cJSON_Delete(obj);
	return 0;
}

int workloads_wait_ready(struct k8s_client *k, const char *ns, const cJSON *record, long timeout_ms,
			 char *err, size_t errlen)
{
	const cJSON *recorded = cJSON_GetObjectItemCaseSensitive(record, ns), *w;
	struct strbuf words = STRBUF_INIT;
	long start = http_retry_now_ms();
	int rc = -1;

	for (;;) {
		strbuf_reset(&words);
		cJSON_ArrayForEach(w, recorded) {
			const char *slash = strchr(w->string, '/');
			const struct workload_kind *wk = slash ? kind_of(w->string, (size_t)(slash - w->string)) : NULL;

			if (!wk || wk->is_cronjob || strcmp(wk->plural, "replicasets") == 0 || !cJSON_IsNumber(w) ||
			    w->valueint <= 0)
				continue;
			if (workload_ready(k, wk, ns, slash + 1, w->valueint, &words, err, errlen) < 0)
				goto out;
		}
		if (words.len == 0) {
			rc = 0;
			break;
		}
		if (http_retry_now_ms() - start > timeout_ms) {
			snprintf(err, errlen, "not ready in %s after %ld s: %s", ns, timeout_ms / 1000, words.buf);
			break;
		}
		http_retry_sleep_ms(2000);
	}
out:
	strbuf_release(&words);
	return rc;
}
