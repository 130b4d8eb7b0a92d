/* The runner's fast lane: short requests the web workers insert instead of connecting to a
 * tenant's server themselves (sql/012_runner_requests.sql). A cluster or repository probe, a
 * bounded set of reads of a cluster for the wizards, a hook's dry run. Each lane is a thread
 * with its own database connection, never behind a backup; every request keeps the k8s and S3
 * clients' deadlines and reply caps, and no transaction stays open across the network. */
#include "runner_requests.h"
#include "runner_sso.h"
#include "audit.h"
#include "backup_reader.h"
#include "cluster.h"
#include "db.h"
#include "hook_process.h"
#include "job_queue.h"
#include "log.h"
#include "lua_k8s.h"
#include "migrate_precheck.h"
#include "repository.h"
#include "resource_modifier.h"
#include "yaml_json.h"
#include "s3_client.h"
#include "strbuf.h"
#include "template.h"
#include "json.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_TIMEOUT_MS 10000
#define REQUEST_READS_MAX 120
#define LIVE_LIST_LIMIT 500
#define ANSWER_MAX (8 << 20)		/* bytes of an answer kept for the web */
#define DRY_LOG_LINES 200
/* One object of a backup shown as YAML: the archive read for it, and the text answered, bounded. */
#define OBJECT_ARCHIVE_MAX (64u << 20)
#define OBJECT_YAML_MAX (512u << 10)
#define SECRET_MASK "********"
#define PREVIEW_OBJECTS_MAX 100		/* objects a modifiers preview applies the rules to */
#define PREVIEW_CHANGES_MAX 20		/* fields it shows of each */
/* A dry run is a preview: much tighter than a job's hook limits. */
static const struct lua_sandbox_limits dry_run_limits = { 16 << 20, 20000000, 10000 };

struct answer {
	cJSON *result;		/* NULL: none */
	char error[700];	/* why the request could not be answered at all */
};

static long long num(const cJSON *obj, const char *name)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsNumber(n) ? (long long)n->valuedouble : cJSON_IsString(n) ? atoll(n->valuestring) : 0;
}

/* ---- probes: the Test buttons and the saves that test ---- */

/* params: {api_url, ca_pem, token_enc} (a token sealed for this organisation by the web). */
static void cluster_probe(const struct runner_request *q, struct answer *a)
{
	const cJSON *p = q->params;
	struct k8s_cluster_conf conf = { .api_url = (char *)json_str(p, "api_url"), .timeout_ms = REQUEST_TIMEOUT_MS };
	struct k8s_error kerr = { 0 };
	struct k8s_client *c = NULL;
	cJSON *list = NULL;
	char version[64] = "", message[600], err[512];
	int ok = 0;

	conf.ca_pem = *json_str(p, "ca_pem") ? (char *)json_str(p, "ca_pem") : NULL;
	conf.token = secret_open(&q->ctx->keyring, q->org_id, "cluster.token", json_str(p, "token_enc"));
	if (!conf.token)
		snprintf(message, sizeof message, "The stored token cannot be decrypted with the current master key.");
	else if (!(c = k8s_client_new(&conf, q->allow, err, sizeof err)))
		snprintf(message, sizeof message, "%s", err);
	else if (k8s_version(c, version, sizeof version, &kerr) < 0 ||
		 k8s_get(c, "/api/v1/namespaces?limit=1", &list, &kerr) < 0)
		k8s_error_describe(&kerr, message, sizeof message);
	else {
		ok = 1;
		snprintf(message, sizeof message, "Connected: Kubernetes %s", version);
	}
	secret_free(conf.token);
	cJSON_Delete(list);
	k8s_client_free(c);
	a->result = cJSON_CreateObject();
	cJSON_AddBoolToObject(a->result, "ok", ok);
	cJSON_AddStringToObject(a->result, "message", message);
	cJSON_AddStringToObject(a->result, "version", ok ? version : "");
}

/* params: {kind, bucket, region, endpoint, access_key, secret_key_enc}. */
static void repository_probe(const struct runner_request *q, struct answer *a)
{
	const cJSON *p = q->params;
	const char *kind = json_str(p, "kind"), *endpoint = json_str(p, "endpoint"), *region = json_str(p, "region");
	struct s3_conf conf = { .endpoint = *endpoint ? (char *)endpoint : NULL,
				.region = (char *)(*region ? region : "us-east-1"), .bucket = (char *)json_str(p, "bucket"),
				.access_key = (char *)json_str(p, "access_key"), .path_style = strcmp(kind, "s3-compatible") == 0,
				.timeout_ms = REQUEST_TIMEOUT_MS };
	struct s3_error serr = { 0 };
	char message[600];
	int ok = 0;

	conf.secret_key = secret_open(&q->ctx->keyring, q->org_id, "repository.secret_key", json_str(p, "secret_key_enc"));
	if (!conf.secret_key) {
		snprintf(message, sizeof message, "The stored secret key cannot be decrypted with the current master key.");
	} else if (s3_probe(&conf, q->allow, &serr) == 0) {
		ok = 1;
		snprintf(message, sizeof message, "Connected: wrote, read back and deleted a probe object in %s", conf.bucket);
	} else {
		s3_error_describe(&serr, message, sizeof message);
	}
	secret_free(conf.secret_key);
	a->result = cJSON_CreateObject();
	cJSON_AddBoolToObject(a->result, "ok", ok);
	cJSON_AddStringToObject(a->result, "message", message);
}

/* ---- reads of a cluster, for the wizards ---- */

struct open_cluster {
	long long id;
	struct k8s_client *c;
	char err[600];
};

/* The client of cluster id, opened once per request (at most two clusters: a migration's). */
static struct k8s_client *cluster_for(const struct runner_request *q, struct open_cluster *open, long long id,
				      char *err, size_t errlen)
{
	for (int i = 0; i < 2; i++)
		if (open[i].id == id) {
			snprintf(err, errlen, "%s", open[i].err);
			return open[i].c;
		}
	for (int i = 0; i < 2; i++) {
		if (open[i].id)
			continue;
		open[i].id = id;
		if (db_tenant_begin(q->db, q->org_id, 0, open[i].err, sizeof open[i].err) == 0) {
			open[i].c = cluster_open(q->db, q->org_id, &q->ctx->keyring, q->allow, id, REQUEST_TIMEOUT_MS,
						 NULL, 0, open[i].err, sizeof open[i].err);
			db_rollback(q->db);	/* read only, and over before the network */
		}
		snprintf(err, errlen, "%s", open[i].err);
		return open[i].c;
	}
	snprintf(err, errlen, "a request reads at most two clusters");
	return NULL;
}

static const char *json_path_str(const cJSON *obj, const char *a, const char *b)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, a);
	const char *s = cJSON_GetStringValue(b ? cJSON_GetObjectItemCaseSensitive(x, b) : x);
	return s ? s : "";
}

static int read_fail(cJSON *out, const struct k8s_error *kerr)
{
	char why[600];

	k8s_error_describe(kerr, why, sizeof why);
	cJSON_AddBoolToObject(out, "ok", 0);
	cJSON_AddNumberToObject(out, "http_status", (double)kerr->http_status);
	cJSON_AddStringToObject(out, "error", why);
	return -1;
}

/* The items of a list page read for a form: at most LIVE_LIST_LIMIT, the page size asked for. A
 * server may send more (an aggregated one ignores limit; a tenant's can pad a page to 128 MiB),
 * and the answer goes to the database and to every page that shows it: one page stays one page. */
static cJSON *live_items(cJSON *list)
{
	cJSON *items = cJSON_GetObjectItemCaseSensitive(list, "items");

	json_array_truncate(items, LIVE_LIST_LIMIT);
	return items;
}

static int read_namespaces(struct k8s_client *c, cJSON *data, struct k8s_error *kerr)
{
	cJSON *list = NULL, *item;

	if (k8s_get(c, "/api/v1/namespaces?limit=500", &list, kerr) < 0)
		return -1;
	cJSON_ArrayForEach(item, live_items(list)) {
		const char *name = json_path_str(cJSON_GetObjectItemCaseSensitive(item, "metadata"), "name", NULL);
		if (*name)
			cJSON_AddItemToArray(data, cJSON_CreateString(name));
	}
	cJSON_Delete(list);
	return 0;
}

/* 1 when the object at path exists, 0 when the server says 404, -1 otherwise. */
static int object_exists(struct k8s_client *c, const char *path, struct k8s_error *kerr)
{
	cJSON *obj = NULL;
	int rc = k8s_get(c, path, &obj, kerr);

	cJSON_Delete(obj);
	if (rc == 0)
		return 1;
	return kerr->http_status == 404 ? 0 : -1;
}

/* {exists, claims: [{name, storage_class, capacity, requested, phase, volume}]} */
static int read_claims(struct k8s_client *c, const cJSON *r, cJSON *data, struct k8s_error *kerr)
{
	const char *ns = json_str(r, "namespace"), *sel = json_str(r, "label_selector");
	char *nspath = k8s_resource_path("", "v1", "namespaces", NULL, ns);
	char *path = k8s_resource_path("", "v1", "persistentvolumeclaims", ns, NULL);
	struct strbuf url = STRBUF_INIT;
	cJSON *list = NULL, *item, *claims = cJSON_AddArrayToObject(data, "claims");
	int exists = object_exists(c, nspath, kerr), rc = exists < 0 ? -1 : 0;

	cJSON_AddBoolToObject(data, "exists", exists == 1);
	strbuf_addf(&url, "%s?limit=%d", path, LIVE_LIST_LIMIT);
	if (*sel) {
		strbuf_addstr(&url, "&labelSelector=");
		url_escape(&url, sel, strlen(sel));
	}
	if (exists == 1 && k8s_get(c, url.buf, &list, kerr) < 0)
		rc = -1;
	cJSON_ArrayForEach(item, live_items(list)) {
		cJSON *o = cJSON_CreateObject();
		const cJSON *spec = cJSON_GetObjectItemCaseSensitive(item, "spec");
		cJSON_AddStringToObject(o, "name", json_path_str(item, "metadata", "name"));
		cJSON_AddStringToObject(o, "storage_class", json_path_str(item, "spec", "storageClassName"));
		cJSON_AddStringToObject(o, "capacity", json_path_str(cJSON_GetObjectItemCaseSensitive(item, "status"), "capacity", "storage"));
		cJSON_AddStringToObject(o, "requested", json_path_str(cJSON_GetObjectItemCaseSensitive(spec, "resources"), "requests", "storage"));
		cJSON_AddStringToObject(o, "phase", json_path_str(item, "status", "phase"));
		cJSON_AddStringToObject(o, "volume", json_path_str(item, "spec", "volumeName"));
		cJSON_AddItemToArray(claims, o);
	}
	cJSON_Delete(list);
	strbuf_release(&url);
	free(path);
	free(nspath);
	return rc;
}

/* {classes: [names], default: name or ""} */
static int read_storage_classes(struct k8s_client *c, cJSON *data, struct k8s_error *kerr)
{
	cJSON *list = NULL, *item, *names = cJSON_AddArrayToObject(data, "classes");
	const char *def = "";

	if (k8s_get(c, "/apis/storage.k8s.io/v1/storageclasses?limit=500", &list, kerr) < 0)
		return -1;
	cJSON_ArrayForEach(item, live_items(list)) {
		const cJSON *meta = cJSON_GetObjectItemCaseSensitive(item, "metadata");
		const char *name = json_path_str(meta, "name", NULL);
		if (!*name)
			continue;
		cJSON_AddItemToArray(names, cJSON_CreateString(name));
		if (strcmp(json_path_str(meta, "annotations", "storageclass.kubernetes.io/is-default-class"), "true") == 0)
			def = name;
	}
	cJSON_AddStringToObject(data, "default", def);
	cJSON_Delete(list);
	return 0;
}

/* The VolumeSnapshotClass a snapshot plan needs: {served: "v1"|"v1beta1"|"", retained, other,
 * other_policy}. */
static int read_snapshot_classes(struct k8s_client *c, cJSON *data, struct k8s_error *kerr)
{
	static const char *const versions[] = { "v1", "v1beta1" };

	for (size_t i = 0; i < 2; i++) {
		char path[160];
		cJSON *list = NULL, *item;
		const char *retained = "", *other = "", *other_policy = "";
		snprintf(path, sizeof path, "/apis/snapshot.storage.k8s.io/%s/volumesnapshotclasses?labelSelector="
			 "velero.io%%2Fcsi-volumesnapshot-class%%3Dtrue", versions[i]);
		if (k8s_get(c, path, &list, kerr) < 0) {
			if (kerr->http_status == 404)
				continue;
			return -1;
		}
		cJSON_ArrayForEach(item, live_items(list)) {
			const char *name = json_path_str(item, "metadata", "name");
			if (strcmp(json_path_str(item, "deletionPolicy", NULL), "Retain") == 0 && !*retained)
				retained = name;
			else if (!*other) {
				other = name;
				other_policy = json_path_str(item, "deletionPolicy", NULL);
			}
		}
		cJSON_AddStringToObject(data, "served", versions[i]);
		cJSON_AddStringToObject(data, "retained", retained);
		cJSON_AddStringToObject(data, "other", other);
		cJSON_AddStringToObject(data, "other_policy", other_policy);
		cJSON_Delete(list);
		return 0;
	}
	cJSON_AddStringToObject(data, "served", "");
	return 0;
}

/* One read of the bounded set; its result {ok, data} or {ok: false, http_status, error}. */
static cJSON *cluster_read_one(const struct runner_request *q, struct open_cluster *open, const cJSON *r)
{
	const char *read = json_str(r, "read");
	cJSON *out = cJSON_CreateObject(), *data;
	struct k8s_error kerr = { 0 };
	char err[600];
	int rc = 0;
	struct k8s_client *c = cluster_for(q, open, num(r, "cluster_id"), err, sizeof err);

	if (!c) {
		cJSON_AddBoolToObject(out, "ok", 0);
		cJSON_AddStringToObject(out, "error", err);
		return out;
	}
	if (strcmp(read, "namespaces") == 0) {
		data = cJSON_CreateArray();
		rc = read_namespaces(c, data, &kerr);
	} else {
		data = cJSON_CreateObject();
		if (strcmp(read, "version") == 0) {
			char version[64];
			rc = k8s_version(c, version, sizeof version, &kerr);
			cJSON_AddStringToObject(data, "version", rc == 0 ? version : "");
		} else if (strcmp(read, "namespace") == 0 || strcmp(read, "storage_class") == 0) {
			char *path = strcmp(read, "namespace") == 0 ?
				k8s_resource_path("", "v1", "namespaces", NULL, json_str(r, "name")) :
				k8s_resource_path("storage.k8s.io", "v1", "storageclasses", NULL, json_str(r, "name"));
			int exists = object_exists(c, path, &kerr);
			free(path);
			rc = exists < 0 ? -1 : 0;
			cJSON_AddBoolToObject(data, "exists", exists == 1);
		} else if (strcmp(read, "claims") == 0) {
			rc = read_claims(c, r, data, &kerr);
		} else if (strcmp(read, "storage_classes") == 0) {
			rc = read_storage_classes(c, data, &kerr);
		} else if (strcmp(read, "snapshot_classes") == 0) {
			rc = read_snapshot_classes(c, data, &kerr);
		} else if (strcmp(read, "migration_precheck") == 0) {
			struct k8s_client *tgt = cluster_for(q, open, num(r, "target_cluster_id"), err, sizeof err);
			cJSON *conflicts = cJSON_AddArrayToObject(data, "conflicts");
			if (!tgt || migrate_precheck(c, tgt, json_str(r, "namespace"), NULL,
						     cJSON_GetObjectItemCaseSensitive(r, "storage_classes"), conflicts,
						     err, sizeof err) < 0) {
				cJSON_Delete(data);
				cJSON_AddBoolToObject(out, "ok", 0);
				cJSON_AddStringToObject(out, "error", err);
				return out;
			}
		} else {
			cJSON_Delete(data);
			cJSON_AddBoolToObject(out, "ok", 0);
			cJSON_AddStringToObject(out, "error", "not a read this runner answers");
			return out;
		}
	}
	if (rc < 0) {
		cJSON_Delete(data);
		read_fail(out, &kerr);
		return out;
	}
	cJSON_AddBoolToObject(out, "ok", 1);
	cJSON_AddItemToObject(out, "data", data);
	return out;
}

/* params: {reads: [{read, cluster_id, ...}]}; result: {results: [...]} in the same order. */
static void cluster_read(const struct runner_request *q, struct answer *a)
{
	const cJSON *reads = cJSON_GetObjectItemCaseSensitive(q->params, "reads"), *r;
	struct open_cluster open[2] = { { 0 } };
	cJSON *results;

	if (!cJSON_IsArray(reads) || cJSON_GetArraySize(reads) > REQUEST_READS_MAX) {
		snprintf(a->error, sizeof a->error, "a cluster read names 1 to %d reads", REQUEST_READS_MAX);
		return;
	}
	a->result = cJSON_CreateObject();
	results = cJSON_AddArrayToObject(a->result, "results");
	cJSON_ArrayForEach(r, reads)
		cJSON_AddItemToArray(results, cluster_read_one(q, open, r));
	for (int i = 0; i < 2; i++)
		k8s_client_free(open[i].c);
}

/* ---- a hook's dry run ---- */

static void dry_run_log(void *ctx, const char *line)
{
	cJSON *lines = ctx;

	if (cJSON_GetArraySize(lines) < DRY_LOG_LINES)
		cJSON_AddItemToArray(lines, cJSON_CreateString(line));
}

/* params: {cluster_id, namespace, phase, name, source, params}; result: {ok, error, elapsed_ms,
 * log: [lines], writes: [{verb, kind, namespace, name, detail}]}. Writes are recorded, not made. */
static void hook_dry_run(const struct runner_request *q, struct answer *a)
{
	const cJSON *p = q->params, *w;
	struct open_cluster open[2] = { { 0 } };
	char err[600], chunk[80];
	struct k8s_client *c = cluster_for(q, open, num(p, "cluster_id"), err, sizeof err);
	struct lua_sandbox_result res;
	cJSON *job, *recorded = NULL, *log, *writes;

	if (!c) {
		snprintf(a->error, sizeof a->error, "Cluster: %s", err);
		return;
	}
	struct lua_k8s_scope scope = { .client = c, .namespace = json_str(p, "namespace"), .dry_run = 1 };
	struct lua_k8s *k = lua_k8s_new(&scope);
	a->result = cJSON_CreateObject();
	log = cJSON_AddArrayToObject(a->result, "log");
	job = cJSON_CreateObject();
	cJSON_AddStringToObject(job, "phase", json_str(p, "phase"));
	cJSON_AddStringToObject(job, "target_namespace", scope.namespace);
	cJSON_AddBoolToObject(job, "dry_run", 1);
	snprintf(chunk, sizeof chunk, "%.70s.lua", json_str(p, "name"));
	hook_process_run(q->ctx->hook_path, k, &scope, &dry_run_limits, job,
			 cJSON_GetObjectItemCaseSensitive(p, "params"), chunk, json_str(p, "source"), dry_run_log, log,
			 &res, &recorded);
	cJSON_AddBoolToObject(a->result, "ok", res.ok);
	cJSON_AddStringToObject(a->result, "error", res.error);
	cJSON_AddNumberToObject(a->result, "elapsed_ms", (double)res.elapsed_ms);
	writes = cJSON_AddArrayToObject(a->result, "writes");
	cJSON_ArrayForEach(w, recorded) {
		cJSON *row = cJSON_CreateObject();
		const cJSON *body = cJSON_GetObjectItemCaseSensitive(w, "body");
		const cJSON *argv = cJSON_GetObjectItemCaseSensitive(w, "argv");
		const cJSON *replicas = cJSON_GetObjectItemCaseSensitive(w, "replicas");
		char *detail = body ? cJSON_PrintUnformatted(body) : argv ? cJSON_PrintUnformatted(argv) : NULL;
		char n[32];

		cJSON_AddItemToObject(row, "verb", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(w, "verb"), 1));
		cJSON_AddStringToObject(row, "kind", json_path_str(w, "kind", NULL));
		cJSON_AddItemToObject(row, "namespace", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(w, "namespace"), 1));
		cJSON_AddItemToObject(row, "name", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(w, "name"), 1));
		if (replicas)
			snprintf(n, sizeof n, "replicas: %d", (int)replicas->valuedouble);
		cJSON_AddStringToObject(row, "detail", detail ? detail : replicas ? n : "");
		free(detail);
		cJSON_AddItemToArray(writes, row);
	}
	cJSON_Delete(recorded);
	cJSON_Delete(job);
	lua_k8s_free(k);
	k8s_client_free(c);
}

/* ---- one object of a backup's archive, as YAML ---- */

/* A Secret's values never leave the runner: every key of data and stringData is kept, its value
 * masked, and so is the copy kubectl apply leaves in an annotation (it holds the same values). */
static void secret_mask(cJSON *obj)
{
	static const char *const fields[] = { "data", "stringData" };
	cJSON *annotations = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"),
							      "annotations");
	cJSON *v;

	for (size_t i = 0; i < 2; i++) {
		cJSON *map = cJSON_GetObjectItemCaseSensitive(obj, fields[i]);
		if (!cJSON_IsObject(map)) {
			cJSON_DeleteItemFromObjectCaseSensitive(obj, fields[i]);
			continue;
		}
		cJSON *masked = cJSON_CreateObject();
		cJSON_ArrayForEach(v, map)
			cJSON_AddStringToObject(masked, v->string ? v->string : "", SECRET_MASK);
		cJSON_ReplaceItemInObjectCaseSensitive(obj, fields[i], masked);
	}
	if (cJSON_GetObjectItemCaseSensitive(annotations, "kubectl.kubernetes.io/last-applied-configuration"))
		cJSON_ReplaceItemInObjectCaseSensitive(annotations, "kubectl.kubernetes.io/last-applied-configuration",
						       cJSON_CreateString(SECRET_MASK));
}

/* The resource list's key of an object: "<group>/<version>/<Kind>" ("v1/ConfigMap" for core). */
static int object_has_type(const cJSON *obj, const char *type)
{
	const char *api = json_str(obj, "apiVersion"), *kind = json_str(obj, "kind");
	size_t n = strlen(api);

	return *api && *kind && strncmp(type, api, n) == 0 && type[n] == '/' && strcmp(type + n + 1, kind) == 0;
}

/* A finished backup's archive (bounded by OBJECT_ARCHIVE_MAX), read object by object: each
 * (lim->each) sees every object, and arc keeps only their names, never the namespace's bodies
 * (100,000 objects would be the whole namespace in this shared process). name gets the
 * backup's name. 0, or -1 with the reason in err. */
static int archive_read(const struct runner_request *q, const struct backup_limits *lim, char *name, size_t namelen,
			char *err, size_t errlen)
{
	struct backup_archive arc = { 0 };
	struct strbuf plain = STRBUF_INIT;
	struct repository repo = { 0 };
	char sid[24];
	const char *params[] = { sid };
	PGresult *res = NULL;
	int opened = -1, rc = -1;

	snprintf(sid, sizeof sid, "%lld", num(q->params, "backup_id"));
	if (db_tenant_begin(q->db, q->org_id, 0, err, errlen) == 0) {
		res = db_exec(q->db, "SELECT name, repository_id FROM backups WHERE id = $1 "
			      "AND state IN ('completed', 'partially_failed')", 1, params, err, errlen);
		if (res && PQntuples(res) == 1) {
			snprintf(name, namelen, "%s", PQgetvalue(res, 0, 0));
			opened = repository_open(q->db, q->org_id, &q->ctx->keyring, q->allow,
						 strtoll(PQgetvalue(res, 0, 1), NULL, 10), &repo, err, errlen);
		} else if (res) {
			snprintf(err, errlen, "the backup is gone, or not a finished one");
		}
		PQclear(res);
		db_rollback(q->db);	/* read only, and over before the network */
	}
	if (opened < 0)
		return -1;
	if (repository_read_archive(&repo, q->ctx->master_key, name, OBJECT_ARCHIVE_MAX, &plain, err, errlen) == 0 &&
	    backup_reader_read_memory(plain.buf ? plain.buf : "", plain.len, lim, &arc, err, errlen) == 0)
		rc = 0;
	backup_archive_free(&arc);
	strbuf_release(&plain);
	repository_close(&repo);
	return rc;
}

/* The one object a view asks for, kept when the read passes it. */
struct object_wanted {
	const char *type, *object, *slash;	/* "ns/name" (slash into it), or "name" */
	cJSON *found;
};

static int object_pick(struct backup_object *o, const char *json, size_t len, void *ud, char *err, size_t errlen)
{
	struct object_wanted *w = ud;
	size_t nslen = w->slash ? (size_t)(w->slash - w->object) : 0;

	(void)json, (void)len, (void)err, (void)errlen;
	if (!w->found && strcmp(o->name, w->slash ? w->slash + 1 : w->object) == 0 && strlen(o->ns) == nslen &&
	    strncmp(o->ns, w->object, nslen) == 0 && object_has_type(o->obj, w->type)) {
		w->found = o->obj;	/* taken: the reader frees what it still holds */
		o->obj = NULL;
	}
	return 0;
}

/* params: {backup_id, type, object ("ns/name", or "name" when cluster-scoped)};
 * result: {yaml, secret_masked}. */
static void backup_object(const struct runner_request *q, struct answer *a)
{
	struct object_wanted w = { json_str(q->params, "type"), json_str(q->params, "object"), NULL, NULL };
	struct backup_limits lim = { .each = object_pick, .each_ud = &w };
	char err[600], name[256] = "", *yaml = NULL;

	w.slash = strchr(w.object, '/');
	if (archive_read(q, &lim, name, sizeof name, err, sizeof err) < 0) {
		snprintf(a->error, sizeof a->error, "%s", err);
		goto out;
	}
	if (!w.found) {
		snprintf(a->error, sizeof a->error, "%s %s is not in the archive of backup %s", w.type, w.object, name);
		goto out;
	}
	int secret = strcmp(w.type, "v1/Secret") == 0;
	if (secret)
		secret_mask(w.found);
	int rc = yaml_json_print(w.found, OBJECT_YAML_MAX, &yaml, err, sizeof err);
	if (rc < 0) {
		snprintf(a->error, sizeof a->error, rc == -2 ? "%s %s is more than %u bytes as YAML: download the "
			 "backup to read it" : "%s %s cannot be written as YAML", w.type, w.object, OBJECT_YAML_MAX);
		goto out;
	}
	a->result = cJSON_CreateObject();
	cJSON_AddStringToObject(a->result, "yaml", yaml);
	cJSON_AddBoolToObject(a->result, "secret_masked", secret);
out:
	free(yaml);
	cJSON_Delete(w.found);
}

/* ---- resource modifiers previewed against a backup's objects ---- */

struct preview {
	struct resource_modifiers *m;
	const cJSON *objects;		/* the plan's chosen objects; empty: any */
	cJSON *changed;
	int examined;
};

/* Applies the rules to one object the read passes, while fewer than PREVIEW_OBJECTS_MAX were. */
static int preview_object(struct backup_object *o, const char *json, size_t len, void *ud, char *e, size_t elen)
{
	struct preview *p = ud;
	struct strbuf key = STRBUF_INIT;
	const cJSON *it;
	char err[600];
	int listed = cJSON_GetArraySize(p->objects) == 0;

	(void)json, (void)len, (void)e, (void)elen;
	if (p->examined >= PREVIEW_OBJECTS_MAX)
		return 0;
	strbuf_addf(&key, "%s%s%s/%s/%s", o->resource, *o->group ? "." : "", o->group, o->ns, o->name);
	cJSON_ArrayForEach(it, p->objects)
		listed |= cJSON_IsString(it) && strcmp(it->valuestring, key.buf) == 0;
	if (!listed) {
		strbuf_release(&key);
		return 0;
	}
	p->examined++;
	cJSON *after = cJSON_Duplicate(o->obj, 1);
	int n = resource_modifiers_apply(p->m, o->group, o->resource, o->ns, after, err, sizeof err);
	if (n != 0) {
		int secret = !*o->group && strcmp(o->resource, "secrets") == 0;
		if (secret) {
			secret_mask(o->obj);
			secret_mask(after);
		}
		cJSON *c = cJSON_CreateObject();
		char *slash = strchr(key.buf, '/');
		*slash = '\0';
		cJSON_AddStringToObject(c, "type", key.buf);
		cJSON_AddStringToObject(c, "object", slash + 1);
		cJSON_AddNumberToObject(c, "rules", n < 0 ? 0 : n);
		cJSON_AddStringToObject(c, "error", n < 0 ? err : "");
		cJSON *changes = cJSON_AddArrayToObject(c, "changes");
		if (n > 0)
			resource_modifiers_diff(o->obj, after, changes, PREVIEW_CHANGES_MAX);
		cJSON_AddItemToArray(p->changed, c);
	}
	cJSON_Delete(after);
	strbuf_release(&key);
	return 0;
}

/* params: {backup_id, rules (the modifiers' text), objects: ["type/ns/name", ...] (the plan's
 * chosen objects; empty: the archive's first PREVIEW_OBJECTS_MAX, in the archive's order)};
 * result: {examined, changed: [{type, object, rules, error, changes: [{path, before, after}]}]}.
 * Secrets are compared masked: their values never leave the runner. */
static void modifier_preview(const struct runner_request *q, struct answer *a)
{
	const char *rules = json_str(q->params, "rules");
	struct preview p = { .objects = cJSON_GetObjectItemCaseSensitive(q->params, "objects"), .changed = cJSON_CreateArray() };
	struct backup_limits lim = { .each = preview_object, .each_ud = &p };
	char err[600], name[256] = "";

	if (!(p.m = resource_modifiers_parse(rules, strlen(rules), err, sizeof err)) ||
	    archive_read(q, &lim, name, sizeof name, err, sizeof err) < 0) {
		snprintf(a->error, sizeof a->error, "%s", err);
		cJSON_Delete(p.changed);
	} else {
		a->result = cJSON_CreateObject();
		cJSON_AddItemToObject(a->result, "changed", p.changed);
		cJSON_AddNumberToObject(a->result, "examined", p.examined);
	}
	resource_modifiers_free(p.m);
}

/* ---- the lane ---- */

int runner_org_networks(PGconn *db, long long org_id, const struct net_allow *base, struct net_allow *out,
			char *err, size_t errlen)
{
	PGresult *res;
	int rc = 0;

	*out = *base;
	if (db_tenant_begin(db, org_id, 0, err, errlen) < 0)
		return -1;
	res = db_exec(db, "SELECT networks FROM org_network_opt_ins", 0, NULL, err, errlen);
	if (!res)
		rc = -1;
	else if (PQntuples(res) == 1 && net_allow_opt_in_add(out, PQgetvalue(res, 0, 0), err, errlen) < 0)
		rc = -1;
	PQclear(res);
	db_rollback(db);
	return rc;
}

/* A Test's outcome on the cluster's or repository's row. */
static int store_status(PGconn *db, const cJSON *p, const cJSON *result, int cluster, char *err, size_t errlen)
{
	char sid[24];
	int ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "ok"));

	snprintf(sid, sizeof sid, "%lld", num(p, cluster ? "cluster_id" : "repository_id"));
	const char *params[] = { ok ? "connected" : "error", json_str(result, "message"), sid, json_str(result, "version") };
	return cluster ?
		db_run(db, "UPDATE clusters SET status = $1, status_message = $2, last_checked_at = now(), "
		       "k8s_version = CASE WHEN $4 = '' THEN k8s_version ELSE $4 END WHERE id = $3", 4, params, err, errlen) :
		db_run(db, "UPDATE repositories SET status = $1, status_message = $2, last_checked_at = now() WHERE id = $3",
		       3, params, err, errlen);
}

/* The row a save asked for: INSERT when its id is 0, else UPDATE; then the audit line, in the
 * name of the person who asked. result gets "stored" or "name_taken" (or "gone"). */
static int store_save(PGconn *db, const cJSON *p, cJSON *result, int cluster, char *err, size_t errlen)
{
	long long id = num(p, cluster ? "cluster_id" : "repository_id");
	int ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "ok"));
	const char *status = ok ? "connected" : "error", *message = json_str(result, "message");
	char sid[24];
	PGresult *res;

	snprintf(sid, sizeof sid, "%lld", id);
	if (db_run(db, "SAVEPOINT store", 0, NULL, err, errlen) < 0)
		return -1;
	if (cluster) {
		const char *ca = json_str(p, "ca_pem");
		const char *params[] = { json_str(p, "name"), json_str(p, "api_url"), *ca ? ca : NULL, json_str(p, "token_enc"),
					 json_str(p, "key_id"), status, message, json_str(result, "version"), sid };
		res = db_exec(db, id ?
			"UPDATE clusters SET name = $1, api_url = $2, ca_pem = $3, token_enc = $4, key_id = $5, "
			"status = $6, status_message = $7, k8s_version = $8, last_checked_at = now(), updated_at = now() "
			"WHERE id = $9 RETURNING id" :
			"INSERT INTO clusters (name, api_url, ca_pem, token_enc, key_id, status, status_message, "
			"k8s_version, last_checked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now()) RETURNING id",
			id ? 9 : 8, params, err, errlen);
	} else {
		const char *endpoint = json_str(p, "endpoint");
		const char *params[] = { json_str(p, "name"), json_str(p, "kind"), json_str(p, "bucket"), json_str(p, "region"),
					 *endpoint ? endpoint : NULL, json_str(p, "prefix"),
					 strcmp(json_str(p, "kind"), "s3-compatible") == 0 ? "true" : "false", json_str(p, "access_key"),
					 json_str(p, "secret_key_enc"), json_str(p, "key_id"), status, message, sid };
		res = db_exec(db, id ?
			"UPDATE repositories SET name = $1, kind = $2, bucket = $3, region = $4, endpoint = $5, prefix = $6, "
			"path_style = $7, access_key = $8, secret_key_enc = $9, key_id = $10, status = $11, status_message = $12, "
			"last_checked_at = now(), updated_at = now() WHERE id = $13 RETURNING id" :
			"INSERT INTO repositories (name, kind, bucket, region, endpoint, prefix, path_style, access_key, "
			"secret_key_enc, key_id, status, status_message, last_checked_at) "
			"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now()) RETURNING id",
			id ? 13 : 12, params, err, errlen);
	}
	if (!res) {
		const char *quota = db_quota_refusal(err);

		if (quota) {	/* the page says it as why nothing was saved */
			cJSON_DeleteItemFromObjectCaseSensitive(result, "message");
			cJSON_AddStringToObject(result, "message", quota);
			return db_run(db, "ROLLBACK TO SAVEPOINT store", 0, NULL, err, errlen);
		}
		if (strcmp(db_last_sqlstate(), "23505") != 0)
			return -1;
		cJSON_AddBoolToObject(result, "name_taken", 1);
		return db_run(db, "ROLLBACK TO SAVEPOINT store", 0, NULL, err, errlen);
	}
	int found = PQntuples(res) == 1;
	char created[24] = "";
	if (found && !id)
		snprintf(created, sizeof created, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	if (!found) {
		cJSON_AddBoolToObject(result, "gone", 1);
		return 0;
	}
	/* a new repository that connected reads its bucket's backups into the catalog (re-import) */
	if (!cluster && *created && strcmp(status, "connected") == 0) {
		struct job_spec sync = { .kind = "sync", .repository_id = strtoll(created, NULL, 10) };
		if (job_enqueue(db, &sync, err, errlen) < 0)
			return -1;
	}
	cJSON *detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, cluster ? "api_url" : "bucket", json_str(p, cluster ? "api_url" : "bucket"));
	cJSON_AddStringToObject(detail, "status", status);
	int rc = audit_record(db, cluster ? (id ? "cluster.update" : "cluster.create") :
			      (id ? "repository.update" : "repository.create"), json_str(p, "name"), detail, err, errlen);
	cJSON_Delete(detail);
	if (rc == 0)
		cJSON_AddBoolToObject(result, "stored", 1);
	return rc;
}

/* What the asking page wanted done with a probe's answer, in the answer's own transaction:
 * 1 when done (applied), 0 when nothing was to be done, -1 with err. */
static int request_apply(PGconn *db, const char *kind, const cJSON *params, cJSON *result, char *err, size_t errlen)
{
	const char *purpose = json_str(params, "purpose");
	int cluster = strcmp(kind, "cluster_probe") == 0;

	if (strncmp(kind, "sso_", 4) == 0)
		return runner_sso_apply(db, kind, params, result, err, errlen);

	if (!result || (!cluster && strcmp(kind, "repository_probe") != 0))
		return 0;
	if (strcmp(purpose, "cluster_test") == 0 || strcmp(purpose, "repository_test") == 0)
		return store_status(db, params, result, cluster, err, errlen) < 0 ? -1 : 1;
	if (strcmp(purpose, "cluster_save") != 0 && strcmp(purpose, "repository_save") != 0)
		return 0;
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "ok")) &&
	    !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(params, "save_unverified")))
		return 0;	/* refused: nothing is stored */
	return store_save(db, params, result, cluster, err, errlen) < 0 ? -1 : 1;
}

static void request_answer(const struct runner_context *ctx, PGconn *db, long long id, long long org_id,
			   long long user_id, const char *kind, const char *params_text)
{
	struct net_allow allow;
	struct runner_request q = { .ctx = ctx, .db = db, .id = id, .org_id = org_id, .allow = &allow };
	struct answer a = { 0 };
	char sid[24], err[512];
	char *result = NULL;
	int applied = 0;

	q.params = cJSON_Parse(params_text);
	if (runner_org_networks(db, org_id, &ctx->allowed_networks, &allow, err, sizeof err) < 0)
		snprintf(a.error, sizeof a.error, "the organisation's networks cannot be read: %s", err);
	else if (!cJSON_IsObject(q.params))
		snprintf(a.error, sizeof a.error, "the request's parameters are not an object");
	else if (strcmp(kind, "cluster_probe") == 0)
		cluster_probe(&q, &a);
	else if (strcmp(kind, "repository_probe") == 0)
		repository_probe(&q, &a);
	else if (strcmp(kind, "cluster_read") == 0)
		cluster_read(&q, &a);
	else if (strcmp(kind, "hook_dry_run") == 0)
		hook_dry_run(&q, &a);
	else if (strcmp(kind, "backup_object") == 0)
		backup_object(&q, &a);
	else if (strcmp(kind, "modifier_preview") == 0)
		modifier_preview(&q, &a);
	else if (strcmp(kind, "sso_discovery") == 0)
		a.result = runner_sso_discovery(&q);
	else if (strcmp(kind, "sso_exchange") == 0)
		a.result = runner_sso_exchange(&q);
	else
		snprintf(a.error, sizeof a.error, "this runner cannot answer %s requests", kind);
	snprintf(sid, sizeof sid, "%lld", id);
	if (db_ensure(db, err, sizeof err) < 0 || db_tenant_begin(db, org_id, user_id, err, sizeof err) < 0 ||
	    (applied = request_apply(db, kind, q.params, a.result, err, sizeof err)) < 0) {
		db_rollback(db);
		log_error("request %lld (%s): cannot store what it asked for: %s", id, kind, err);
		snprintf(a.error, sizeof a.error, "The answer could not be stored; try again.");
		cJSON_Delete(a.result);
		a.result = NULL;
		applied = 0;
		if (db_tenant_begin(db, org_id, user_id, err, sizeof err) < 0)
			goto out;
	}
	result = a.result ? cJSON_PrintUnformatted(a.result) : NULL;
	size_t result_len = result ? strlen(result) : 0;

	if (result_len > ANSWER_MAX) {	/* every page that shows it parses it again */
		log_error("request %lld (%s): its answer is %zu bytes, more than %d", id, kind, result_len, ANSWER_MAX);
		snprintf(a.error, sizeof a.error, "The cluster's answer is larger than %d MiB; nothing of it is kept.",
			 ANSWER_MAX >> 20);
		free(result);
		result = NULL;
	}
	const char *params[] = { sid, result, a.error, applied ? "t" : "f" };
	if (db_run(db, "UPDATE runner_requests SET state = 'answered', result = $2::jsonb, error = $3, "
		   "answered_at = now(), applied_at = CASE WHEN $4::boolean THEN now() END WHERE id = $1",
		   4, params, err, sizeof err) < 0 || db_commit(db, err, sizeof err) < 0) {
		db_rollback(db);
		log_error("request %lld (%s): cannot record its answer: %s", id, kind, err);
	}
out:
	cJSON_Delete(q.params);
	cJSON_Delete(a.result);
	free(result);
}

/* Claims one request and answers it; 1 when there was one. */
static int request_claim_and_answer(const struct runner_lane *lane, PGconn *db)
{
	char err[512], limit[24];
	const char *params[] = { lane->ctx->runner_id, limit };
	PGresult *res;

	snprintf(limit, sizeof limit, "%ld", lane->org_limit);
	if (db_ensure(db, err, sizeof err) < 0)
		return 0;
	res = db_exec(db, "SELECT request_id, request_org_id, request_kind, request_params::text, "
		      "coalesce(request_created_by, 0) FROM claim_runner_request($1, $2)", 2, params, err, sizeof err);
	if (!res) {
		log_error("claiming a request: %s", err);
		return 0;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		return 0;
	}
	long long id = atoll(PQgetvalue(res, 0, 0)), org = atoll(PQgetvalue(res, 0, 1)), user = atoll(PQgetvalue(res, 0, 4));
	char *kind = xstrdup(PQgetvalue(res, 0, 2)), *params_text = xstrdup(PQgetvalue(res, 0, 3));
	PQclear(res);
	request_answer(lane->ctx, db, id, org, user, kind, params_text);
	log_info("request %lld (%s) of organisation %lld answered", id, kind, org);
	free(kind);
	free(params_text);
	return 1;
}

void *runner_lane_loop(void *arg)
{
	const struct runner_lane *lane = arg;
	char err[512];
	PGconn *db = db_connect(lane->database_url, "stowage-runner-requests", err, sizeof err);

	if (!db || db_run(db, "LISTEN stowage_requests", 0, NULL, err, sizeof err) < 0)
		log_fatal("request lane: %s", err);
	for (time_t swept = 0;;) {
		struct pollfd pfd = { .fd = PQsocket(db), .events = POLLIN };
		PGnotify *n;

		if (time(NULL) - swept >= 30) {
			swept = time(NULL);
			if (db_run(db, "SELECT sweep_runner_requests()", 0, NULL, err, sizeof err) < 0)
				log_error("sweeping requests: %s", err);
		}
		if (request_claim_and_answer(lane, db))
			continue;
		/* woken by NOTIFY; polls anyway, as a reconnect forgets LISTEN. While the database is
		 * away (no socket, or one that only says it closed) it waits: it never spins */
		if (pfd.fd < 0 || PQstatus(db) != CONNECTION_OK)
			poll(NULL, 0, 2000);
		else if (poll(&pfd, 1, 2000) > 0 && !PQconsumeInput(db))
			poll(NULL, 0, 2000);
		while ((n = PQnotifies(db)) != NULL)
			PQfreemem(n);
		if (PQstatus(db) != CONNECTION_OK && db_ensure(db, err, sizeof err) == 0)
			db_run(db, "LISTEN stowage_requests", 0, NULL, err, sizeof err);
	}
	return NULL;
}
