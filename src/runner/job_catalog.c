/* Day-two jobs on backups and repositories (issue 15):
 *
 *   delete_backup  the one way a backup goes, whether a person pressed Delete or retention
 *                  expired it. The row is 'deleting' before the job starts (never offered for
 *                  restore again); the job removes, in this order: the metadata file
 *                  (velero-backup.json, so the bucket no longer holds a complete backup), each
 *                  volume's mover snapshot manifest (its chunks become garbage for prune) and
 *                  CSI VolumeSnapshot with its content (deletionPolicy set to Delete first, so
 *                  the storage system's snapshot goes too), the rest of the backup's objects,
 *                  and only then the row. Every step is idempotent: a delete that fails halfway
 *                  leaves the row 'deleting' with the reason, and the next attempt resumes.
 *   prune          stowage-mover prune on the repository (the mover's own lock keeps it away
 *                  from running backups), queued by the scheduler once the repository is idle;
 *                  the bytes freed go on the repository's row.
 *   verify         a backup's objects are all there and each opens (AES-256-GCM, bound to its
 *                  name, to its last segment: repo_seal.h), and every chunk its volumes' files
 *                  need is listed in an index and its pack present (stowage-mover check
 *                  --snapshots); with read_data every pack is downloaded and each chunk
 *                  authenticated and re-hashed. Any problem marks the backup damaged, naming
 *                  the object, or the pack, chunk and file. */
#include "job.h"
#include "job_volumes.h"
#include "audit.h"
#include "config.h"
#include "db.h"
#include "hex.h"
#include "log.h"
#include "repo_seal.h"
#include "repository.h"
#include "strbuf.h"
#include "names.h"

#include <archive.h>
#include <archive_entry.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VOLUMES_JSON_MAX (16u << 20)

struct deletion {
	struct job *job;
	char name[256];
	long long repository_id, cluster_id;
	cJSON *volumes;
	struct job_repository repo;
	int repo_open;
	long objects_deleted, snapshots_released, volume_snapshots_deleted;
	char *err;
	size_t errlen;
};

static int deletion_load(struct deletion *d, int *gone)
{
	char id[24];
	const char *params[] = { id };
	PGresult *res;

	snprintf(id, sizeof id, "%lld", d->job->backup_id);
	res = job_query(d->job, "SELECT name, state, repository_id, coalesce(cluster_id, 0), volumes::text "
			"FROM backups WHERE id = $1", 1, params, d->err, d->errlen);
	if (!res)
		return -1;
	if (PQntuples(res) != 1) {
		PQclear(res);
		*gone = 1;
		return 0;
	}
	snprintf(d->name, sizeof d->name, "%s", PQgetvalue(res, 0, 0));
	if (strcmp(PQgetvalue(res, 0, 1), "deleting") != 0) {
		snprintf(d->err, d->errlen, "backup %s is %s, not being deleted: press Delete on its page", d->name,
			 PQgetvalue(res, 0, 1));
		PQclear(res);
		return -1;
	}
	d->repository_id = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	d->cluster_id = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
	d->volumes = cJSON_Parse(PQgetvalue(res, 0, 4));
	PQclear(res);
	if (!cJSON_IsArray(d->volumes)) {
		cJSON_Delete(d->volumes);
		d->volumes = cJSON_CreateArray();
	}
	return 0;
}

static void backup_key(const struct deletion *d, const char *file, struct strbuf *out)
{
	strbuf_reset(out);
	strbuf_addf(out, "%sbackups/%s/%s", d->repo.prefix, d->name, file);
}

/* A backup written before its row kept its volumes (sql/013) has them only in the bucket:
 * read <name>-volumes.json while it is there, and keep it in the row, so a resumed delete knows
 * them after the objects are gone. */
static int volumes_from_bucket(struct deletion *d)
{
	struct strbuf key = STRBUF_INIT, sealed = STRBUF_INIT, plain = STRBUF_INIT, file = STRBUF_INIT;
	struct s3_error serr = { 0 };
	uint8_t k[AEAD_KEY_LEN];
	int rc = -1;

	if (cJSON_GetArraySize(d->volumes) > 0)
		return 0;
	strbuf_addf(&file, "%s-volumes.json", d->name);
	backup_key(d, file.buf, &key);
	if (s3_get_mem(d->repo.s3, key.buf, VOLUMES_JSON_MAX, &sealed, &serr) < 0) {
		if (serr.http_status == 404)
			rc = 0;	/* no volume, or already deleted */
		else
			s3_error_describe(&serr, d->err, d->errlen);
		goto out;
	}
	if (repo_seal_key(d->job->ctx->master_key, d->repo.id, k) < 0 ||
	    repo_unseal_mem(k, key.buf, sealed.buf, sealed.len, &plain, d->err, d->errlen) < 0)
		goto out;
	cJSON *v = cJSON_ParseWithLength(plain.buf, plain.len);
	if (!cJSON_IsArray(v)) {
		cJSON_Delete(v);
		snprintf(d->err, d->errlen, "%s: not a list of volumes", key.buf);
		goto out;
	}
	cJSON_Delete(d->volumes);
	d->volumes = v;
	char id[24], *text = cJSON_PrintUnformatted(v);
	const char *params[] = { id, text };
	snprintf(id, sizeof id, "%lld", d->job->backup_id);
	rc = job_exec(d->job, "UPDATE backups SET volumes = $2::jsonb WHERE id = $1", 2, params, d->err, d->errlen);
	free(text);
out:
	OPENSSL_cleanse(k, sizeof k);
	strbuf_release(&key);
	strbuf_release(&sealed);
	strbuf_release(&plain);
	strbuf_release(&file);
	return rc;
}

static int delete_object(struct deletion *d, const char *key)
{
	struct s3_error serr = { 0 };
	char why[512];

	if (s3_delete(d->repo.s3, key, &serr) == 0) {
		d->objects_deleted++;
		return 0;
	}
	s3_error_describe(&serr, why, sizeof why);
	snprintf(d->err, d->errlen, "deleting %s: %s", key, why);
	return -1;
}

static const char *json_text(const cJSON *o, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* A snapshot id as the mover writes it: YYYYMMDDTHHMMSSZ-<16 hex>; anything else in a row or
 * a bucket is not used to build a key. */
static int snapshot_id_valid(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	return n > 0 && n <= 64 && strspn(id, "0123456789abcdefTZ-") == n;
}

/* The mover snapshot of each volume: its manifest goes, so prune frees the chunks no other
 * snapshot uses. */
static int release_volume_data(struct deletion *d)
{
	struct strbuf key = STRBUF_INIT;
	const cJSON *v;
	int rc = 0;

	cJSON_ArrayForEach(v, d->volumes) {
		const char *id = json_text(v, "snapshot_id");
		if (!id || !*id)
			continue;
		if (!snapshot_id_valid(id)) {
			job_log(d->job, "warning", "volume %s/%s: snapshot id \"%.80s\" is not one of the mover's; left alone",
				json_text(v, "namespace") ?: "", json_text(v, "pvc") ?: "", id);
			continue;
		}
		strbuf_reset(&key);
		strbuf_addf(&key, "%sdata/%lld/data/snapshots/%s.json.enc", d->repo.prefix, d->repo.id, id);
		if (delete_object(d, key.buf) < 0) {
			rc = -1;
			break;
		}
		d->snapshots_released++;
		job_log(d->job, "info", "volume %s/%s: mover snapshot %s released; prune frees its data",
			json_text(v, "namespace") ?: "", json_text(v, "pvc") ?: "", id);
	}
	strbuf_release(&key);
	return rc;
}

static int k8s_gone_or_ok(int rc, const struct k8s_error *ke)
{
	return rc == 0 || ke->http_status == 404;
}

/* A CSI VolumeSnapshot and its content. The class has deletionPolicy Retain (so that a deleted
 * VolumeSnapshot never loses data by accident): the content is switched to Delete first, so
 * that deleting it makes the driver delete the storage system's snapshot too. */
static int delete_volume_snapshot(struct deletion *d, struct k8s_client *k, const cJSON *vs)
{
	const char *api = json_text(vs, "api_version"), *ns = json_text(vs, "namespace");
	const char *name = json_text(vs, "name"), *content = json_text(vs, "content");
	const char *version = api && strchr(api, '/') ? strchr(api, '/') + 1 : "v1";
	struct k8s_error ke = { 0 };
	char why[600];
	char *path;
	int rc;

	if (content && *content) {
		path = k8s_resource_path("snapshot.storage.k8s.io", version, "volumesnapshotcontents", NULL, content);
		rc = k8s_patch(k, path, K8S_PATCH_MERGE, "{\"spec\":{\"deletionPolicy\":\"Delete\"}}", NULL, &ke);
		free(path);
		if (!k8s_gone_or_ok(rc, &ke)) {
			k8s_error_describe(&ke, why, sizeof why);
			snprintf(d->err, d->errlen, "VolumeSnapshotContent %s: setting deletionPolicy Delete: %s", content, why);
			return -1;
		}
	}
	if (ns && name) {
		path = k8s_resource_path("snapshot.storage.k8s.io", version, "volumesnapshots", ns, name);
		rc = k8s_delete(k, path, NULL, &ke);
		free(path);
		if (!k8s_gone_or_ok(rc, &ke)) {
			k8s_error_describe(&ke, why, sizeof why);
			snprintf(d->err, d->errlen, "VolumeSnapshot %s/%s: %s", ns, name, why);
			return -1;
		}
	}
	if (content && *content) {
		path = k8s_resource_path("snapshot.storage.k8s.io", version, "volumesnapshotcontents", NULL, content);
		rc = k8s_delete(k, path, NULL, &ke);
		free(path);
		if (!k8s_gone_or_ok(rc, &ke)) {
			k8s_error_describe(&ke, why, sizeof why);
			snprintf(d->err, d->errlen, "VolumeSnapshotContent %s: %s", content, why);
			return -1;
		}
	}
	d->volume_snapshots_deleted++;
	job_log(d->job, "info", "VolumeSnapshot %s/%s and its content %s deleted", ns ? ns : "", name ? name : "",
		content ? content : "");
	return 0;
}

static int delete_volume_snapshots(struct deletion *d)
{
	struct k8s_client *k = NULL;
	char cluster[128];
	const cJSON *v;
	int rc = 0;

	cJSON_ArrayForEach(v, d->volumes) {
		const cJSON *vs = cJSON_GetObjectItemCaseSensitive(v, "volume_snapshot");
		if (!cJSON_IsObject(vs))
			continue;
		if (!d->cluster_id) {
			job_log(d->job, "warning", "VolumeSnapshot %s/%s: its cluster was deleted from Stowage, so it cannot "
				"be removed from here; delete it in the cluster", json_text(vs, "namespace") ?: "",
				json_text(vs, "name") ?: "");
			continue;
		}
		if (!k && !(k = job_cluster_client(d->job, d->cluster_id, cluster, sizeof cluster, d->err, d->errlen))) {
			rc = -1;
			break;
		}
		if (delete_volume_snapshot(d, k, vs) < 0) {
			rc = -1;
			break;
		}
	}
	k8s_client_free(k);
	return rc;
}

static int collect_key(const struct s3_object_info *o, void *ud)
{
	cJSON_AddItemToArray(ud, cJSON_CreateString(o->key));
	return 0;
}

static int delete_remaining_objects(struct deletion *d)
{
	struct strbuf prefix = STRBUF_INIT;
	struct s3_error serr = { 0 };
	cJSON *keys = cJSON_CreateArray();
	const cJSON *k;
	int rc = 0;

	backup_key(d, "", &prefix);
	if (s3_list(d->repo.s3, prefix.buf, 1000, collect_key, keys, &serr) < 0) {
		char why[512];
		s3_error_describe(&serr, why, sizeof why);
		snprintf(d->err, d->errlen, "listing %s: %s", prefix.buf, why);
		rc = -1;
	}
	cJSON_ArrayForEach(k, keys)
		if (rc == 0 && delete_object(d, k->valuestring) < 0)
			rc = -1;
	cJSON_Delete(keys);
	strbuf_release(&prefix);
	return rc;
}

/* The row goes in the same transaction as its audit entry and the repository's wish for a prune. */
static int deletion_finish(struct deletion *d, const char *trigger)
{
	char id[24], repo[24], why[700];
	const char *params[] = { id };
	const char *rparams[] = { repo };
	int expired = strcmp(trigger, "schedule") == 0;
	cJSON *detail = cJSON_CreateObject();
	int rc = -1;

	snprintf(id, sizeof id, "%lld", d->job->backup_id);
	snprintf(repo, sizeof repo, "%lld", d->repository_id);
	cJSON_AddNumberToObject(detail, "objects_deleted", (double)d->objects_deleted);
	cJSON_AddNumberToObject(detail, "volume_snapshots_deleted", (double)d->volume_snapshots_deleted);
	cJSON_AddNumberToObject(detail, "volume_data_released", (double)d->snapshots_released);
	cJSON_AddNumberToObject(detail, "job_id", (double)d->job->id);
	if (expired)
		cJSON_AddStringToObject(detail, "reason", "retention period over");
	if (db_tenant_begin(d->job->db, d->job->org_id, 0, why, sizeof why) == 0 &&
	    db_run(d->job->db, "DELETE FROM backups WHERE id = $1 AND state = 'deleting'", 1, params, why, sizeof why) == 0 &&
	    (!d->snapshots_released ||
	     db_run(d->job->db, "UPDATE repositories SET prune_wanted = true WHERE id = $1", 1, rparams, why, sizeof why) == 0) &&
	    audit_record(d->job->db, expired ? "backup.expire" : "backup.deleted", d->name, detail, why, sizeof why) == 0 &&
	    db_commit(d->job->db, why, sizeof why) == 0)
		rc = 0;
	else {
		db_rollback(d->job->db);
		snprintf(d->err, d->errlen, "removing backup %s's row: %s", d->name, why);
	}
	cJSON_Delete(detail);
	return rc;
}

static int deletion_steps(struct deletion *d, const char *trigger)
{
	struct strbuf meta = STRBUF_INIT;
	int rc;

	job_progress(d->job, "delete", 0, 4, 0, 0);
	if (job_repository_open(d->job, d->repository_id, &d->repo, d->err, d->errlen) < 0)
		return -1;
	d->repo_open = 1;
	if (volumes_from_bucket(d) < 0)
		return -1;
	backup_key(d, "velero-backup.json", &meta);
	rc = delete_object(d, meta.buf);
	strbuf_release(&meta);
	if (rc < 0)
		return -1;
	job_progress(d->job, "delete: volume data", 1, 4, 0, 0);
	if (release_volume_data(d) < 0 || delete_volume_snapshots(d) < 0)
		return -1;
	job_progress(d->job, "delete: objects", 2, 4, 0, 0);
	if (delete_remaining_objects(d) < 0)
		return -1;
	job_progress(d->job, "delete: catalog", 3, 4, 0, 0);
	if (deletion_finish(d, trigger) < 0)
		return -1;
	job_progress(d->job, "deleted", 4, 4, 0, 0);
	return 0;
}

static const char *job_trigger(struct job *job)
{
	char id[24], err[256];
	const char *params[] = { id };
	static char trigger[16];
	PGresult *res;

	snprintf(id, sizeof id, "%lld", job->id);
	res = job_query(job, "SELECT trigger FROM jobs WHERE id = $1", 1, params, err, sizeof err);
	snprintf(trigger, sizeof trigger, "%s", res && PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "manual");
	PQclear(res);
	return trigger;
}

const char *job_delete_backup_run(struct job *job, char *err, size_t errlen)
{
	struct deletion d = { .job = job, .err = err, .errlen = errlen };
	const char *trigger = job_trigger(job);
	int gone = 0, rc;

	if (!job->backup_id) {
		snprintf(err, errlen, "the backup is gone already");
		return "succeeded";
	}
	rc = deletion_load(&d, &gone);
	if (rc == 0 && gone) {
		job_log(job, "info", "the backup was deleted already");
		return "succeeded";
	}
	if (rc == 0) {
		job_log(job, "info", "deleting backup %s (%d volumes)%s", d.name, cJSON_GetArraySize(d.volumes),
			strcmp(trigger, "schedule") == 0 ? ": its retention period is over" : "");
		rc = deletion_steps(&d, trigger);
	}
	if (rc < 0 && d.name[0]) {
		char id[24];
		const char *params[] = { id, err };
		char why[256];
		snprintf(id, sizeof id, "%lld", job->backup_id);
		if (job_exec(job, "UPDATE backups SET delete_error = $2 WHERE id = $1", 2, params, why, sizeof why) < 0)
			log_error("job %lld: %s", job->id, why);
	}
	cJSON *summary = cJSON_CreateObject();
	cJSON_AddStringToObject(summary, "backup", d.name);
	cJSON_AddNumberToObject(summary, "objects_deleted", (double)d.objects_deleted);
	cJSON_AddNumberToObject(summary, "volume_data_released", (double)d.snapshots_released);
	cJSON_AddNumberToObject(summary, "volume_snapshots_deleted", (double)d.volume_snapshots_deleted);
	cJSON_DeleteItemFromObjectCaseSensitive(job->result, "deleted");
	cJSON_AddItemToObject(job->result, "deleted", summary);
	if (rc == 0)
		job_log(job, "info", "backup %s deleted: %ld objects, %ld volume snapshots released, %ld VolumeSnapshots",
			d.name, d.objects_deleted, d.snapshots_released, d.volume_snapshots_deleted);
	if (d.repo_open)
		job_repository_close(&d.repo);
	cJSON_Delete(d.volumes);
	return rc == 0 ? "succeeded" : "failed";
}

/* ---- prune ---- */

/* prune_grace_seconds in the runner's configuration (default a day): packs younger than that
 * are never deleted, whatever refers to them. */
static long prune_grace(struct job *job)
{
	struct config cfg;
	char err[256];
	long grace = 86400;

	if (job->ctx->config_path && config_load(&cfg, job->ctx->config_path, err, sizeof err) == 0) {
		if (config_get_int(&cfg, "prune_grace_seconds", 86400, 0, 30L * 86400, &grace, err, sizeof err) < 0)
			log_warn("%s", err);
		config_free(&cfg);
	}
	return grace;
}

const char *job_prune_run(struct job *job, char *err, size_t errlen)
{
	struct job_repository repo;
	char id[24], grace_s[24], freed[24], packs[24];
	long long repository_id;
	cJSON *done = NULL;
	PGresult *res;

	snprintf(id, sizeof id, "%lld", job->id);
	const char *params[] = { id };
	res = job_query(job, "SELECT coalesce(repository_id, 0) FROM jobs WHERE id = $1", 1, params, err, errlen);
	repository_id = res && PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	if (!repository_id) {
		snprintf(err, errlen, "a prune job needs a repository");
		return "failed";
	}
	if (job_repository_open(job, repository_id, &repo, err, errlen) < 0)
		return "failed";
	snprintf(grace_s, sizeof grace_s, "%ld", prune_grace(job));
	job_progress(job, "prune", 0, 1, 0, 0);
	job_log(job, "info", "pruning repository %lld: packs no snapshot uses and older than %s s are deleted",
		repository_id, grace_s);
	const char *args[] = { "prune", "--grace", grace_s, NULL };
	int rc = job_repository_mover(job, &repo, args, &done, NULL, err, errlen);
	job_repository_close(&repo);
	if (rc < 0)
		return "failed";
	const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(done, "bytes_freed");
	const cJSON *deleted = cJSON_GetObjectItemCaseSensitive(done, "packs_deleted");
	const cJSON *busy = cJSON_GetObjectItemCaseSensitive(done, "backups_running");
	snprintf(freed, sizeof freed, "%lld", cJSON_IsNumber(bytes) ? (long long)bytes->valuedouble : 0LL);
	snprintf(packs, sizeof packs, "%lld", cJSON_IsNumber(deleted) ? (long long)deleted->valuedouble : 0LL);
	cJSON_DeleteItemFromObjectCaseSensitive(done, "phase");
	cJSON_DeleteItemFromObjectCaseSensitive(job->result, "prune");
	cJSON_AddItemToObject(job->result, "prune", done);
	snprintf(id, sizeof id, "%lld", repository_id);
	/* a backup that ran meanwhile kept some packs: the repository still wants a prune */
	const char *uparams[] = { id, freed, cJSON_IsTrue(busy) ? "true" : "false" };
	if (job_exec(job, "UPDATE repositories SET prune_wanted = $3::boolean, last_prune_at = now(), "
		     "last_prune_bytes_freed = $2::bigint, bytes_freed_total = bytes_freed_total + $2::bigint WHERE id = $1",
		     3, uparams, err, errlen) < 0)
		return "failed";
	job_log(job, "info", "prune: %s packs deleted, %s bytes freed%s", packs, freed,
		cJSON_IsTrue(busy) ? "; a backup was running, so some packs wait for the next prune" : "");
	return "succeeded";
}

/* ---- verify ---- */

struct verify_object {
	struct repo_unsealer unsealer;
	long long bytes;
};

static int verify_sink(const void *data, size_t len, void *ud)
{
	(void)data;
	((struct verify_object *)ud)->bytes += (long long)len;
	return 0;
}

static int verify_write(const void *data, size_t len, void *ud)
{
	struct verify_object *v = ud;

	return repo_unsealer_feed(&v->unsealer, data, len) < 0 ? -1 : 0;
}

/* One object of the backup read to its end through its seal: NULL when it opens, else why. */
static char *verify_one_object(struct job *job, const struct job_repository *repo, long long seal_id, const char *key,
			       long long *plain)
{
	struct verify_object v = { 0 };
	struct s3_error se = { 0 };
	uint8_t k[AEAD_KEY_LEN];
	char words[600];
	struct strbuf why = STRBUF_INIT;

	if (repo_seal_key(job->ctx->master_key, seal_id, k) < 0) {
		strbuf_addf(&why, "%s: cannot derive the repository's key", key);
		return strbuf_take(&why);
	}
	repo_unsealer_init(&v.unsealer, k, key, verify_sink, &v);
	OPENSSL_cleanse(k, sizeof k);
	if (s3_get_stream(repo->s3, key, 0, -1, verify_write, &v, &se) < 0) {
		if (v.unsealer.failed) {
			strbuf_addf(&why, "%s: %s", key, v.unsealer.error);
		} else {
			s3_error_describe(&se, words, sizeof words);
			strbuf_addf(&why, "%s: cannot be read: %s", key, words);
		}
	} else if (repo_unsealer_finish(&v.unsealer) < 0) {
		strbuf_addf(&why, "%s: %s", key, v.unsealer.error);
	}
	repo_unsealer_release(&v.unsealer);
	*plain += v.bytes;
	return why.len ? strbuf_take(&why) : NULL;
}

static int collect_object(const struct s3_object_info *o, void *ud)
{
	cJSON_AddItemToArray(ud, cJSON_CreateString(o->key));
	return 0;
}

static void problem(struct job *job, cJSON *problems, const char *line)
{
	if (cJSON_GetArraySize(problems) < 1000)
		cJSON_AddItemToArray(problems, cJSON_CreateString(line));
	job_log(job, "error", "verify: %s", line);
}

/* The archive's objects: each one the backup wrote must be there and open. */
static int verify_archive(struct job *job, const struct job_repository *repo, const char *name, int has_volumes,
			  cJSON *problems, long long *plain, char *err, size_t errlen)
{
	static const char *const files[] = { "velero-backup.json", "%s.tar.gz", "%s-resource-list.json.gz", "%s-logs.gz",
					     "%s-volumes.json" };
	struct strbuf prefix = STRBUF_INIT, key = STRBUF_INIT;
	struct s3_error se = { 0 };
	cJSON *listed = cJSON_CreateArray();
	const cJSON *k;
	int rc = 0;

	strbuf_addf(&prefix, "%sbackups/%s/", repo->prefix, name);
	if (s3_list(repo->s3, prefix.buf, 1000, collect_object, listed, &se) < 0) {
		char words[512];
		s3_error_describe(&se, words, sizeof words);
		snprintf(err, errlen, "listing %s: %s", prefix.buf, words);
		rc = -1;
		goto out;
	}
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		int found = 0;
		if (i == 4 && !has_volumes)
			continue;
		strbuf_reset(&key);
		strbuf_addstr(&key, prefix.buf);
		strbuf_addf(&key, files[i], name);
		cJSON_ArrayForEach(k, listed)
			found |= strcmp(k->valuestring, key.buf) == 0;
		if (!found) {
			char line[1200];
			snprintf(line, sizeof line, "%s: missing", key.buf);
			problem(job, problems, line);
		}
	}
	cJSON_ArrayForEach(k, listed) {
		char *why = verify_one_object(job, repo, repo->id, k->valuestring, plain);
		if (why)
			problem(job, problems, why);
		free(why);
	}
out:
	cJSON_Delete(listed);
	strbuf_release(&prefix);
	strbuf_release(&key);
	return rc;
}

static int verify_volumes(struct job *job, const struct job_repository *repo, const cJSON *volumes, int read_data,
			  cJSON *problems, char *err, size_t errlen)
{
	struct strbuf ids = STRBUF_INIT;
	cJSON *done = NULL, *found = cJSON_CreateArray();
	const cJSON *v;
	int rc = 0;

	cJSON_ArrayForEach(v, volumes) {
		const char *id = json_text(v, "snapshot_id");
		if (!id || !*id)
			continue;
		if (!snapshot_id_valid(id)) {
			char line[200];
			snprintf(line, sizeof line, "volume %s/%s: \"%.64s\" is not a snapshot id", json_text(v, "namespace") ?: "",
				 json_text(v, "pvc") ?: "", id);
			problem(job, problems, line);
			continue;
		}
		strbuf_addf(&ids, "%s%s", ids.len ? "," : "", id);
	}
	if (!ids.len)
		goto out;
	const char *args[] = { "check", "--snapshots", ids.buf, read_data ? "--read-data" : NULL, NULL };
	rc = job_repository_mover(job, repo, args, &done, found, err, errlen);
	cJSON_ArrayForEach(v, found)
		problem(job, problems, v->valuestring);
	if (rc < 0 && cJSON_GetArraySize(found) > 0)
		rc = 0;	/* the mover exits 3 when it found problems: those are the answer */
out:
	cJSON_Delete(done);
	cJSON_Delete(found);
	strbuf_release(&ids);
	return rc;
}

/* The scheduled verification of a whole repository: every snapshot's chunks present, and the
 * share of packs result.share_part / share_parts read and authenticated. A backup whose volume
 * snapshot a problem names is marked damaged with those lines. */
static const char *verify_repository(struct job *job, char *err, size_t errlen)
{
	char id[24], part[16], parts[16];
	const char *params[] = { id };
	struct job_repository repo;
	cJSON *problems = cJSON_CreateArray(), *done = NULL;
	const cJSON *sp = cJSON_GetObjectItemCaseSensitive(job->result, "share_part");
	const cJSON *sn = cJSON_GetObjectItemCaseSensitive(job->result, "share_parts");
	long long repository_id;
	PGresult *res;
	int rc, damaged = 0;

	snprintf(id, sizeof id, "%lld", job->id);
	res = job_query(job, "SELECT coalesce(repository_id, 0) FROM jobs WHERE id = $1", 1, params, err, errlen);
	repository_id = res && PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	if (!repository_id || job_repository_open(job, repository_id, &repo, err, errlen) < 0) {
		if (!repository_id)
			snprintf(err, errlen, "a verify job needs a backup or a repository");
		cJSON_Delete(problems);
		return "failed";
	}
	snprintf(part, sizeof part, "%ld", cJSON_IsNumber(sp) ? (long)sp->valuedouble : 0L);
	snprintf(parts, sizeof parts, "%ld", cJSON_IsNumber(sn) && sn->valuedouble >= 1 ? (long)sn->valuedouble : 1L);
	char share[40];
	snprintf(share, sizeof share, "%s/%s", part, parts);
	job_log(job, "info", "verifying repository %lld: every snapshot's chunks, reading pack share %s", repository_id,
		share);
	job_progress(job, "verify: repository", 0, 1, 0, 0);
	const char *args[] = { "check", "--read-data", "--share", share, NULL };
	rc = job_repository_mover(job, &repo, args, &done, problems, err, errlen);
	job_repository_close(&repo);
	cJSON_Delete(done);
	if (rc < 0 && cJSON_GetArraySize(problems) == 0) {
		cJSON_Delete(problems);
		return "failed";
	}
	/* the backups whose volumes the problems name */
	char rid[24];
	const char *rparams[] = { rid };
	snprintf(rid, sizeof rid, "%lld", repository_id);
	res = job_query(job, "SELECT b.id, v->>'snapshot_id' FROM backups b, jsonb_array_elements(b.volumes) v "
			"WHERE b.repository_id = $1 AND v ? 'snapshot_id'", 1, rparams, err, errlen);
	for (int i = 0; res && i < PQntuples(res); i++) {
		struct strbuf lines = STRBUF_INIT;
		const cJSON *p;
		cJSON_ArrayForEach(p, problems)
			if (strstr(p->valuestring, PQgetvalue(res, i, 1)) && lines.len < 4000)
				strbuf_addf(&lines, "%s%s", lines.len ? "; " : "", p->valuestring);
		if (lines.len) {
			const char *uparams[] = { PQgetvalue(res, i, 0), lines.buf };
			char why[256];
			damaged++;
			if (job_exec(job, "UPDATE backups SET verify_state = 'damaged', verify_message = $2, verified_at = now() "
				     "WHERE id = $1", 2, uparams, why, sizeof why) < 0)
				log_error("job %lld: %s", job->id, why);
		}
		strbuf_release(&lines);
	}
	PQclear(res);
	struct strbuf message = STRBUF_INIT;
	const cJSON *p;
	strbuf_addf(&message, "pack share %s read: %d problem%s", share, cJSON_GetArraySize(problems),
		    cJSON_GetArraySize(problems) == 1 ? "" : "s");
	cJSON_ArrayForEach(p, problems) {
		if (message.len > 3000)
			break;
		strbuf_addf(&message, "; %s", p->valuestring);
	}
	const char *mparams[] = { rid, message.buf };
	if (job_exec(job, "UPDATE repositories SET last_verified_at = now(), last_verify_message = $2 WHERE id = $1",
		     2, mparams, err, errlen) < 0)
		rc = -1;
	cJSON *summary = cJSON_CreateObject();
	cJSON_AddStringToObject(summary, "share", share);
	cJSON_AddNumberToObject(summary, "backups_damaged", damaged);
	cJSON_AddItemToObject(summary, "problems", problems);
	cJSON_DeleteItemFromObjectCaseSensitive(job->result, "verify");
	cJSON_AddItemToObject(job->result, "verify", summary);
	if (cJSON_GetArraySize(problems)) {
		snprintf(err, errlen, "repository %lld: %.900s", repository_id, message.buf);
		strbuf_release(&message);
		return "failed";
	}
	strbuf_release(&message);
	job_log(job, "info", "repository %lld verified: every snapshot's chunks present, pack share %s authentic",
		repository_id, share);
	return rc == 0 ? "succeeded" : "failed";
}

const char *job_verify_run(struct job *job, char *err, size_t errlen)
{
	if (!job->backup_id)
		return verify_repository(job, err, errlen);

	char id[24];
	const char *params[] = { id };
	struct job_repository repo;
	cJSON *volumes = NULL, *problems = cJSON_CreateArray();
	long long plain = 0;
	int read_data, rc = -1;
	char name[256] = "";
	PGresult *res;

	snprintf(id, sizeof id, "%lld", job->backup_id);
	read_data = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(job->result, "read_data"));
	res = job_query(job, "SELECT name, state, repository_id, volumes::text FROM backups WHERE id = $1", 1, params,
			err, errlen);
	if (!res || PQntuples(res) != 1) {
		if (res)
			snprintf(err, errlen, "the backup is gone");
		PQclear(res);
		cJSON_Delete(problems);
		return "failed";
	}
	snprintf(name, sizeof name, "%s", PQgetvalue(res, 0, 0));
	if (strcmp(PQgetvalue(res, 0, 1), "completed") != 0 && strcmp(PQgetvalue(res, 0, 1), "partially_failed") != 0) {
		snprintf(err, errlen, "backup %s is %s: only a finished backup can be verified", name, PQgetvalue(res, 0, 1));
		PQclear(res);
		cJSON_Delete(problems);
		return "failed";
	}
	long long repository_id = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	volumes = cJSON_Parse(PQgetvalue(res, 0, 3));
	PQclear(res);
	if (job_repository_open(job, repository_id, &repo, err, errlen) < 0)
		goto out;
	job_log(job, "info", "verifying backup %s: its objects, and the chunks of its %d volumes%s", name,
		cJSON_GetArraySize(volumes), read_data ? ", reading every pack" : "");
	job_progress(job, "verify: archive", 0, 2, 0, 0);
	rc = verify_archive(job, &repo, name, cJSON_GetArraySize(volumes) > 0, problems, &plain, err, errlen);
	if (rc == 0) {
		job_progress(job, "verify: volume data", 1, 2, 0, 0);
		rc = verify_volumes(job, &repo, volumes, read_data, problems, err, errlen);
	}
	job_repository_close(&repo);
	if (rc < 0)
		goto out;
	int n = cJSON_GetArraySize(problems);
	struct strbuf message = STRBUF_INIT;
	const cJSON *p;
	cJSON_ArrayForEach(p, problems) {
		if (message.len > 4000) {
			strbuf_addf(&message, "; and more (%d problems in all)", n);
			break;
		}
		strbuf_addf(&message, "%s%s", message.len ? "; " : "", p->valuestring);
	}
	const char *uparams[] = { id, n ? "damaged" : "ok", message.buf ? message.buf : "" };
	char repo_s[24];
	const char *rparams[] = { repo_s };
	snprintf(repo_s, sizeof repo_s, "%lld", repository_id);
	if (job_exec(job, "UPDATE backups SET verify_state = $2, verify_message = $3, verified_at = now() WHERE id = $1",
		     3, uparams, err, errlen) < 0 ||
	    job_exec(job, "UPDATE repositories SET last_verified_at = now() WHERE id = $1", 1, rparams, err, errlen) < 0)
		rc = -1;
	cJSON *summary = cJSON_CreateObject();
	cJSON_AddStringToObject(summary, "state", n ? "damaged" : "ok");
	cJSON_AddBoolToObject(summary, "read_data", read_data);
	cJSON_AddNumberToObject(summary, "archive_plain_bytes", (double)plain);
	cJSON_AddItemToObject(summary, "problems", cJSON_Duplicate(problems, 1));
	cJSON_DeleteItemFromObjectCaseSensitive(job->result, "verify");
	cJSON_AddItemToObject(job->result, "verify", summary);
	if (rc == 0 && n) {
		snprintf(err, errlen, "backup %s is damaged: %.900s", name, message.buf);
		rc = 1;
	} else if (rc == 0) {
		job_log(job, "info", "backup %s verified: every object opens%s", name,
			cJSON_GetArraySize(volumes) ? (read_data ? ", every chunk of its volumes is present and authentic" :
						       ", every chunk of its volumes is present") : "");
	}
	strbuf_release(&message);
out:
	cJSON_Delete(volumes);
	cJSON_Delete(problems);
	return rc == 0 ? "succeeded" : "failed";
}

/* ---- sync: the bucket's backups into the catalog ---- */

#define SYNC_OBJECT_MAX (16u << 20)
#define SYNC_GUNZIP_MAX (64u << 20)
/* Seal ids tried when the repository's own and those its data/ folders name open none. */
#define SYNC_SEAL_SEARCH_MAX 100000
#define SYNC_DATA_KEYS_SCANNED 20000

struct sync_run {
	struct job *job;
	long long row_id;
	struct job_repository repo;
	int repo_open;
	cJSON *names;		/* backups with a velero-backup.json */
	cJSON *data_ids;	/* ids named by <prefix>data/<id>/ */
	long scanned, imported, known, refused;
	cJSON *refusals;
	char *err;
	size_t errlen;
};

static int sync_collect_backup(const struct s3_object_info *o, void *ud)
{
	struct sync_run *s = ud;
	const char *rest = o->key + strlen(s->repo.prefix) + strlen("backups/"), *slash = strchr(rest, '/');

	if (slash && slash > rest && strcmp(slash, "/velero-backup.json") == 0 && slash - rest < 250) {
		char *name = xstrndup(rest, (size_t)(slash - rest));
		cJSON_AddItemToArray(s->names, cJSON_CreateString(name));
		free(name);
	}
	return 0;
}

static int sync_collect_data_id(const struct s3_object_info *o, void *ud)
{
	struct sync_run *s = ud;
	const char *rest = o->key + strlen(s->repo.prefix) + strlen("data/");
	char *end;
	long long id = strtoll(rest, &end, 10);
	const cJSON *seen;

	if (++s->scanned > SYNC_DATA_KEYS_SCANNED)
		return 1;
	if (id <= 0 || *end != '/')
		return 0;
	cJSON_ArrayForEach(seen, s->data_ids)
		if ((long long)seen->valuedouble == id)
			return 0;
	cJSON_AddItemToArray(s->data_ids, cJSON_CreateNumber((double)id));
	return 0;
}

static int sync_get(struct sync_run *s, const char *key, struct strbuf *out)
{
	struct s3_error se = { 0 };
	char words[512];

	if (s3_get_mem(s->repo.s3, key, SYNC_OBJECT_MAX, out, &se) == 0)
		return 0;
	s3_error_describe(&se, words, sizeof words);
	snprintf(s->err, s->errlen, "%s: %s", key, words);
	return -1;
}

/* 1 when the sealed object opens under seal id `id`. */
static int opens_under(struct sync_run *s, long long id, const char *key, const struct strbuf *sealed, struct strbuf *plain)
{
	uint8_t k[AEAD_KEY_LEN];
	char why[200];
	int ok;

	strbuf_reset(plain);
	ok = repo_seal_key(s->job->ctx->master_key, id, k) == 0 &&
	     repo_unseal_mem(k, key, sealed->buf, sealed->len, plain, why, sizeof why) == 0;
	OPENSSL_cleanse(k, sizeof k);
	return ok;
}

/* Which seal id the bucket's backups were written under: the repository's own, or one its
 * data/ folders name, or one found by trying (keys are cheap to derive; the master key is the
 * secret). 0 when none opens them: another deployment's master key, or not Stowage's. */
static long long find_seal_id(struct sync_run *s, const char *key, const struct strbuf *sealed, int search)
{
	struct strbuf plain = STRBUF_INIT, prefix = STRBUF_INIT;
	struct s3_error se = { 0 };
	const cJSON *c;
	long long found = 0;

	if (opens_under(s, s->repo.id, key, sealed, &plain)) {
		found = s->repo.id;
		goto out;
	}
	strbuf_addf(&prefix, "%sdata/", s->repo.prefix);
	if (!s->scanned)
		s3_list(s->repo.s3, prefix.buf, 1000, sync_collect_data_id, s, &se);	/* stops itself early */
	cJSON_ArrayForEach(c, s->data_ids)
		if (opens_under(s, (long long)c->valuedouble, key, sealed, &plain)) {
			found = (long long)c->valuedouble;
			goto out;
		}
	for (long long id = 1; search && id <= SYNC_SEAL_SEARCH_MAX && !found; id++)
		if (id != s->repo.id && opens_under(s, id, key, sealed, &plain))
			found = id;
out:
	strbuf_release(&plain);
	strbuf_release(&prefix);
	return found;
}

/* The repository adopts seal id `id` (sql/013: only while it holds no backup, and only when no
 * other repository has that identity), and is opened again under it. */
static int adopt_seal_id(struct sync_run *s, long long id)
{
	char rid[24], sid[24];
	const char *params[] = { rid, sid };
	PGresult *res;

	snprintf(rid, sizeof rid, "%lld", s->row_id);
	snprintf(sid, sizeof sid, "%lld", id);
	res = job_query(s->job, "SELECT repository_adopt_seal_id($1, $2)", 2, params, s->err, s->errlen);
	if (!res)
		return -1;
	if (*PQgetvalue(res, 0, 0)) {
		snprintf(s->err, s->errlen, "the bucket's backups were sealed for repository %lld of this Stowage, and this "
			 "repository cannot take that key: %s", id, PQgetvalue(res, 0, 0));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	job_log(s->job, "info", "the bucket's backups were written by repository %lld of this Stowage (its database was "
		"lost or it was removed): this repository now opens them with that repository's key", id);
	job_repository_close(&s->repo);
	s->repo_open = 0;
	if (job_repository_open(s->job, s->row_id, &s->repo, s->err, s->errlen) < 0)
		return -1;
	s->repo_open = 1;
	return 0;
}

/* gzip in memory, bounded, through libarchive's raw format. */
static int gunzip_mem(const struct strbuf *in, struct strbuf *out)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	char buf[65536];
	la_ssize_t n;
	int rc = -1;

	archive_read_support_filter_gzip(a);
	archive_read_support_format_raw(a);
	if (archive_read_open_memory(a, in->buf, in->len) == ARCHIVE_OK && archive_read_next_header(a, &e) == ARCHIVE_OK) {
		while ((n = archive_read_data(a, buf, sizeof buf)) > 0 && out->len + (size_t)n <= SYNC_GUNZIP_MAX)
			strbuf_add(out, buf, (size_t)n);
		rc = n == 0 ? 0 : -1;
	}
	archive_read_free(a);
	return rc;
}

static void sync_refuse(struct sync_run *s, const char *name, const char *why)
{
	char line[1200];

	snprintf(line, sizeof line, "backup %s: %s; not imported", name, why);
	s->refused++;
	if (cJSON_GetArraySize(s->refusals) < 200)
		cJSON_AddItemToArray(s->refusals, cJSON_CreateString(line));
	job_log(s->job, "warning", "%s", line);
}

/* One sealed object of the backup, opened: 0, -1 (err: unreadable), 1 (absent). */
static int sync_open_object(struct sync_run *s, const char *name, const char *file, struct strbuf *plain, char *why,
			    size_t whylen)
{
	struct strbuf key = STRBUF_INIT, sealed = STRBUF_INIT;
	struct s3_error se = { 0 };
	uint8_t k[AEAD_KEY_LEN];
	int rc = -1;

	strbuf_addf(&key, "%sbackups/%s/%s", s->repo.prefix, name, file);
	strbuf_reset(plain);
	if (s3_get_mem(s->repo.s3, key.buf, SYNC_OBJECT_MAX, &sealed, &se) < 0) {
		if (se.http_status == 404)
			rc = 1;
		else
			s3_error_describe(&se, why, whylen);
	} else if (repo_seal_key(s->job->ctx->master_key, s->repo.id, k) == 0 &&
		   repo_unseal_mem(k, key.buf, sealed.buf, sealed.len, plain, why, whylen) == 0) {
		rc = 0;
	}
	OPENSSL_cleanse(k, sizeof k);
	strbuf_release(&key);
	strbuf_release(&sealed);
	return rc;
}

static const char *json_path(const cJSON *o, const char *a, const char *b)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, a), b));
}

/* A backup of the bucket into the catalog, unless its row exists: only what authenticates
 * under the repository's key, and only a backup its metadata says completed. */
static int sync_one(struct sync_run *s, const char *name)
{
	struct strbuf meta = STRBUF_INIT, list_gz = STRBUF_INIT, list = STRBUF_INIT, vols = STRBUF_INIT;
	char why[600], rid[24], id[24];
	const char *params[] = { name };
	cJSON *doc = NULL, *resources = NULL, *volumes = NULL;
	PGresult *res;
	int rc = 0;

	if (!dns_name_valid(name, strlen(name), 253, 1)) {
		sync_refuse(s, name, "not a backup name Stowage writes");
		return 0;
	}
	res = job_query(s->job, "SELECT 1 FROM backups WHERE name = $1", 1, params, s->err, s->errlen);
	if (!res)
		return -1;
	int exists = PQntuples(res) > 0;
	PQclear(res);
	if (exists) {
		s->known++;
		return 0;
	}
	int got = sync_open_object(s, name, "velero-backup.json", &meta, why, sizeof why);
	if (got != 0) {
		sync_refuse(s, name, got > 0 ? "its velero-backup.json vanished" : why);
		goto out;
	}
	doc = cJSON_ParseWithLength(meta.buf, meta.len);
	const char *phase = json_path(doc, "status", "phase");
	const char *meta_name = json_path(doc, "metadata", "name");
	const cJSON *nss = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "spec"), "includedNamespaces");
	if (!meta_name || strcmp(meta_name, name) != 0) {
		sync_refuse(s, name, "its metadata names another backup");
		goto out;
	}
	if (!phase || (strcmp(phase, "Completed") != 0 && strcmp(phase, "PartiallyFailed") != 0)) {
		sync_refuse(s, name, "its metadata does not say it completed");
		goto out;
	}
	if (!cJSON_IsArray(nss) || cJSON_GetArraySize(nss) < 1) {
		sync_refuse(s, name, "its metadata names no namespace");
		goto out;
	}
	/* its resource list and volumes, for its page; each must open, or it is not imported */
	char file[300];
	snprintf(file, sizeof file, "%.250s-resource-list.json.gz", name);
	got = sync_open_object(s, name, file, &list_gz, why, sizeof why);
	if (got < 0 || (got == 0 && gunzip_mem(&list_gz, &list) < 0)) {
		sync_refuse(s, name, got < 0 ? why : "its resource list is not gzip");
		goto out;
	}
	resources = got == 0 ? cJSON_ParseWithLength(list.buf, list.len) : NULL;
	snprintf(file, sizeof file, "%.250s-volumes.json", name);
	got = sync_open_object(s, name, file, &vols, why, sizeof why);
	if (got < 0) {
		sync_refuse(s, name, why);
		goto out;
	}
	volumes = got == 0 ? cJSON_ParseWithLength(vols.buf, vols.len) : cJSON_CreateArray();
	if (!cJSON_IsObject(resources))
		resources = (cJSON_Delete(resources), cJSON_CreateObject());
	if (!cJSON_IsArray(volumes))
		volumes = (cJSON_Delete(volumes), cJSON_CreateArray());
	const cJSON *progress = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "status"), "progress");
	const cJSON *items = cJSON_GetObjectItemCaseSensitive(progress, "itemsBackedUp");
	char count[24];
	snprintf(count, sizeof count, "%lld", cJSON_IsNumber(items) ? (long long)items->valuedouble : 0LL);
	snprintf(rid, sizeof rid, "%lld", s->row_id);
	char *ns_text = cJSON_PrintUnformatted(nss), *res_text = cJSON_PrintUnformatted(resources);
	char *vol_text = cJSON_PrintUnformatted(volumes);
	const char *ann_plan = json_path(cJSON_GetObjectItemCaseSensitive(doc, "metadata"), "annotations", "stowage.dev/plan");
	const char *ann_cluster = json_path(cJSON_GetObjectItemCaseSensitive(doc, "metadata"), "annotations",
					    "stowage.dev/cluster");
	const char *started = json_path(doc, "status", "startTimestamp");
	const char *completed = json_path(doc, "status", "completionTimestamp");
	const char *expires = json_path(doc, "status", "expiration");
	const char *iparams[] = { rid, name, ns_text, strcmp(phase, "Completed") == 0 ? "completed" : "partially_failed",
				  count, started, completed, expires, ann_plan ? ann_plan : "", ann_cluster ? ann_cluster : "",
				  res_text, vol_text };
	/* times are RFC 3339 from our own sealed metadata; a bad one is refused by the cast */
	res = job_query(s->job,
		"INSERT INTO backups (repository_id, name, namespaces, state, resource_count, started_at, completed_at, "
		"expires_at, plan_name, cluster_name, cluster_id, resource_list, volumes, imported, bytes_new) "
		"VALUES ($1, $2, ARRAY(SELECT jsonb_array_elements_text($3::jsonb)), $4, $5::integer, "
		"coalesce($6::timestamptz, now()), $7::timestamptz, $8::timestamptz, $9, $10, "
		"(SELECT id FROM clusters WHERE name = $10), $11::jsonb, $12::jsonb, true, 0) "
		"ON CONFLICT (org_id, name) DO NOTHING RETURNING id", 12, iparams, why, sizeof why);
	free(ns_text);
	free(res_text);
	free(vol_text);
	if (!res) {
		sync_refuse(s, name, why);
		goto out;
	}
	if (PQntuples(res) == 1) {
		snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, 0));
		s->imported++;
		job_log(s->job, "info", "backup %s imported (namespaces from its metadata, %s objects, %d volumes)", name,
			count, cJSON_GetArraySize(volumes));
	} else {
		s->known++;
	}
	PQclear(res);
out:
	cJSON_Delete(doc);
	cJSON_Delete(resources);
	cJSON_Delete(volumes);
	strbuf_release(&meta);
	strbuf_release(&list_gz);
	strbuf_release(&list);
	strbuf_release(&vols);
	return rc;
}

const char *job_sync_run(struct job *job, char *err, size_t errlen)
{
	struct sync_run s = { .job = job, .err = err, .errlen = errlen };
	struct strbuf prefix = STRBUF_INIT, first = STRBUF_INIT, sealed = STRBUF_INIT;
	struct s3_error se = { 0 };
	char id[24], words[512];
	const char *params[] = { id };
	const cJSON *n;
	PGresult *res;
	int rc = -1;

	snprintf(id, sizeof id, "%lld", job->id);
	res = job_query(job, "SELECT coalesce(repository_id, 0) FROM jobs WHERE id = $1", 1, params, err, errlen);
	s.row_id = res && PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	if (!s.row_id) {
		snprintf(err, errlen, "a sync job needs a repository");
		return "failed";
	}
	s.names = cJSON_CreateArray();
	s.data_ids = cJSON_CreateArray();
	s.refusals = cJSON_CreateArray();
	if (job_repository_open(job, s.row_id, &s.repo, err, errlen) < 0)
		goto out;
	s.repo_open = 1;
	job_progress(job, "sync: listing", 0, 0, 0, 0);
	strbuf_addf(&prefix, "%sbackups/", s.repo.prefix);
	if (s3_list(s.repo.s3, prefix.buf, 1000, sync_collect_backup, &s, &se) < 0) {
		s3_error_describe(&se, words, sizeof words);
		snprintf(err, errlen, "listing %s: %s", prefix.buf, words);
		goto out;
	}
	job_log(job, "info", "%d backups with metadata under %s/%s", cJSON_GetArraySize(s.names), s.repo.bucket, prefix.buf);
	/* the key: the first few backups the catalog lacks say which seal id the bucket uses (one
	 * that opens under none, forged or another deployment's, is refused below, not trusted) */
	int tried = 0;
	cJSON_ArrayForEach(n, s.names) {
		const char *qp[] = { n->valuestring };
		res = job_query(job, "SELECT 1 FROM backups WHERE name = $1", 1, qp, err, errlen);
		int known = !res || PQntuples(res) > 0;
		PQclear(res);
		if (known)
			continue;
		strbuf_reset(&first);
		strbuf_addf(&first, "%sbackups/%s/velero-backup.json", s.repo.prefix, n->valuestring);
		if (sync_get(&s, first.buf, &sealed) < 0)
			goto out;
		long long seal = find_seal_id(&s, first.buf, &sealed, tried == 0);
		if (seal && seal != s.repo.id && adopt_seal_id(&s, seal) < 0)
			goto out;
		if (seal)
			break;
		job_log(job, "warning", "%s does not open with this Stowage's master key under any repository's key: it "
			"was written by another deployment (another master key), or is not Stowage's", first.buf);
		if (++tried == 5)
			break;
	}
	long i = 0, total = cJSON_GetArraySize(s.names);
	cJSON_ArrayForEach(n, s.names) {
		job_progress(job, "sync", i++, total, 0, 0);
		if (sync_one(&s, n->valuestring) < 0)
			goto out;
		if (job_cancel_requested(job)) {
			snprintf(err, errlen, "cancelled by a user after %ld of %ld backups", i, total);
			goto out;
		}
	}
	rc = 0;
out:;
	char message[600];
	snprintf(message, sizeof message, "%ld imported, %ld already known, %ld refused", s.imported, s.known, s.refused);
	if (rc < 0)
		snprintf(message + strlen(message), sizeof message - strlen(message), "; stopped: %.400s", err);
	snprintf(id, sizeof id, "%lld", s.row_id);
	const char *uparams[] = { id, message };
	char why[256];
	if (job_exec(job, "UPDATE repositories SET last_sync_at = now(), last_sync_message = $2 WHERE id = $1", 2, uparams,
		     why, sizeof why) < 0)
		log_error("job %lld: %s", job->id, why);
	cJSON *summary = cJSON_CreateObject();
	cJSON_AddNumberToObject(summary, "imported", (double)s.imported);
	cJSON_AddNumberToObject(summary, "known", (double)s.known);
	cJSON_AddNumberToObject(summary, "refused", (double)s.refused);
	cJSON_AddItemToObject(summary, "refusals", s.refusals);
	cJSON_DeleteItemFromObjectCaseSensitive(job->result, "sync");
	cJSON_AddItemToObject(job->result, "sync", summary);
	job_log(job, "info", "sync: %s", message);
	if (rc == 0 && s.refused) {
		snprintf(err, errlen, "%ld backup%s of the bucket could not be authenticated or read and %s not imported; "
			 "see the log", s.refused, s.refused == 1 ? "" : "s", s.refused == 1 ? "was" : "were");
		rc = 1;
	}
	if (s.repo_open)
		job_repository_close(&s.repo);
	cJSON_Delete(s.names);
	cJSON_Delete(s.data_ids);
	strbuf_release(&prefix);
	strbuf_release(&first);
	strbuf_release(&sealed);
	return rc == 0 ? "succeeded" : rc > 0 ? "partially_failed" : "failed";
}

/* ---- diagnostics: a tar.gz about another job ---- */

#define BUNDLE_MAX (16u << 20)
#define BUNDLE_LIST_LIMIT "500"

struct bundle {
	struct archive *a;
	struct strbuf out;
	int failed;
};

static la_ssize_t bundle_write(struct archive *a, void *ud, const void *buf, size_t len)
{
	struct bundle *b = ud;

	(void)a;
	if (b->out.len + len > BUNDLE_MAX) {
		b->failed = 1;
		return -1;
	}
	strbuf_add(&b->out, buf, len);
	return (la_ssize_t)len;
}

static void bundle_add(struct bundle *b, const char *path, const char *data, size_t len)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_set_pathname(e, path);
	archive_entry_set_size(e, (la_int64_t)len);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_mtime(e, time(NULL), 0);
	if (archive_write_header(b->a, e) != ARCHIVE_OK || (len && archive_write_data(b->a, data, len) < 0))
		b->failed = 1;
	archive_entry_free(e);
}

static void bundle_add_json(struct bundle *b, const char *path, const cJSON *doc)
{
	char *text = cJSON_Print(doc);

	if (text)
		bundle_add(b, path, text, strlen(text));
	free(text);
}

/* What a person needs of the cluster, never a Secret: events, and each pod's phase, conditions
 * and containers' states, of one namespace. */
static void bundle_add_cluster(struct bundle *b, struct k8s_client *k, const char *ns)
{
	struct k8s_error ke = { 0 };
	cJSON *list = NULL, *out = cJSON_CreateArray();
	const cJSON *o;
	char path[400], why[600];
	char *p;

	p = k8s_resource_path("", "v1", "events", ns, NULL);
	snprintf(path, sizeof path, "%s?limit=" BUNDLE_LIST_LIMIT, p);
	free(p);
	if (k8s_get(k, path, &list, &ke) == 0) {
		cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(list, "items")) {
			cJSON *e = cJSON_CreateObject();
			static const char *const keys[] = { "type", "reason", "message", "count", "firstTimestamp",
							    "lastTimestamp", "involvedObject" };
			for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
				const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
				if (v)
					cJSON_AddItemToObject(e, keys[i], cJSON_Duplicate(v, 1));
			}
			cJSON_AddItemToArray(out, e);
		}
	} else {
		k8s_error_describe(&ke, why, sizeof why);
		cJSON_AddItemToArray(out, cJSON_CreateString(why));
	}
	snprintf(path, sizeof path, "cluster/%s/events.json", ns);
	bundle_add_json(b, path, out);
	cJSON_Delete(out);
	cJSON_Delete(list);
	list = NULL;
	out = cJSON_CreateArray();
	p = k8s_resource_path("", "v1", "pods", ns, NULL);
	snprintf(path, sizeof path, "%s?limit=" BUNDLE_LIST_LIMIT, p);
	free(p);
	if (k8s_get(k, path, &list, &ke) == 0) {
		cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(list, "items")) {
			const cJSON *status = cJSON_GetObjectItemCaseSensitive(o, "status");
			cJSON *e = cJSON_CreateObject();
			cJSON_AddStringToObject(e, "name", json_path(o, "metadata", "name") ?: "");
			cJSON_AddStringToObject(e, "node", json_path(o, "spec", "nodeName") ?: "");
			cJSON_AddStringToObject(e, "phase", json_text(status, "phase") ?: "");
			const cJSON *v;
			if ((v = cJSON_GetObjectItemCaseSensitive(status, "conditions")))
				cJSON_AddItemToObject(e, "conditions", cJSON_Duplicate(v, 1));
			if ((v = cJSON_GetObjectItemCaseSensitive(status, "containerStatuses")))
				cJSON_AddItemToObject(e, "containerStatuses", cJSON_Duplicate(v, 1));
			cJSON_AddItemToArray(out, e);
		}
	} else {
		k8s_error_describe(&ke, why, sizeof why);
		cJSON_AddItemToArray(out, cJSON_CreateString(why));
	}
	snprintf(path, sizeof path, "cluster/%s/pods.json", ns);
	bundle_add_json(b, path, out);
	cJSON_Delete(out);
	cJSON_Delete(list);
}

/* A file for the web to serve: a row of job_bundles under job_id (the web reads no runner's disk). */
static int bundle_store(struct job *job, long long job_id, const char *data, size_t len, char *err, size_t errlen)
{
	char id[24];
	char *hex = xmalloc(2 * len + 3);
	int rc;

	hex[0] = '\\';
	hex[1] = 'x';
	hex_encode((const uint8_t *)data, len, hex + 2);
	snprintf(id, sizeof id, "%lld", job_id);
	const char *params[] = { id, hex };
	rc = job_exec(job, "INSERT INTO job_bundles (job_id, data) VALUES ($1, $2::bytea)", 2, params, err, errlen);
	free(hex);
	return rc;
}

const char *job_diagnostics_run(struct job *job, char *err, size_t errlen)
{
	const cJSON *of = cJSON_GetObjectItemCaseSensitive(job->result, "of_job");
	char id[24];
	const char *params[] = { id };
	struct bundle b = { 0 };
	PGresult *res;
	long long cluster_id;

	if (!cJSON_IsNumber(of)) {
		snprintf(err, errlen, "a diagnostics job names the job it is about (result.of_job)");
		return "failed";
	}
	snprintf(id, sizeof id, "%lld", (long long)of->valuedouble);
	/* the job, and the namespaces involved: the backup's, mapped by a restore plan's map */
	res = job_query(job, "SELECT row_to_json(j)::text, coalesce(j.cluster_id, 0), "
			"coalesce((SELECT json_agg(coalesce(rp.namespace_map->>n, n)) FROM unnest(coalesce(b.namespaces, "
			"bp.namespaces, mp.namespaces)) n), '[]')::text "
			"FROM jobs j LEFT JOIN backups b ON b.id = j.backup_id LEFT JOIN backup_plans bp ON bp.id = j.backup_plan_id "
			"LEFT JOIN migration_plans mp ON mp.id = j.migration_plan_id LEFT JOIN restore_plans rp ON rp.id = j.restore_plan_id "
			"WHERE j.id = $1", 1, params, err, errlen);
	if (!res || PQntuples(res) != 1) {
		if (res)
			snprintf(err, errlen, "job %s no longer exists", id);
		PQclear(res);
		return "failed";
	}
	cJSON *row = cJSON_Parse(PQgetvalue(res, 0, 0)), *namespaces = cJSON_Parse(PQgetvalue(res, 0, 2));
	cluster_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	b.a = archive_write_new();
	archive_write_add_filter_gzip(b.a);
	archive_write_set_format_pax_restricted(b.a);
	archive_write_open(b.a, &b, NULL, bundle_write, NULL);
	bundle_add_json(&b, "job.json", row);
	cJSON_Delete(row);
	res = job_query(job, "SELECT string_agg(to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') || ' ' || level || "
			"' ' || message, E'\\n' ORDER BY id) FROM job_logs WHERE job_id = $1", 1, params, err, errlen);
	if (res && PQntuples(res) == 1)
		bundle_add(&b, "log.txt", PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)));
	PQclear(res);
	res = job_query(job, "SELECT coalesce(json_agg(json_build_object('group', api_group, 'resource', resource, "
			"'namespace', namespace, 'name', name, 'result', action, 'message', message) ORDER BY id), '[]')::text "
			"FROM job_items WHERE job_id = $1", 1, params, err, errlen);
	if (res && PQntuples(res) == 1)
		bundle_add(&b, "items.json", PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)));
	PQclear(res);
	static const char readme[] =
		"Stowage diagnostics bundle\n\n"
		"job.json       the job's row: kind, state, phase, error, result (phases, counts, hooks)\n"
		"log.txt        the job's log\n"
		"items.json     every object's result\n"
		"cluster/<ns>/  events and pod statuses of each namespace the job involved, read when the bundle was made\n\n"
		"No Secret is read. The runner process's own log lines are on its host: grep \"job <id>\" there.\n";
	bundle_add(&b, "README.txt", readme, sizeof readme - 1);
	if (cluster_id && cJSON_GetArraySize(namespaces) > 0) {
		char name[128];
		struct k8s_client *k = job_cluster_client(job, cluster_id, name, sizeof name, err, errlen);
		const cJSON *n;
		if (k) {
			cJSON_ArrayForEach(n, namespaces)
				if (cJSON_IsString(n) && dns_name_valid(n->valuestring, strlen(n->valuestring), 63, 0))
					bundle_add_cluster(&b, k, n->valuestring);
			k8s_client_free(k);
		} else {
			bundle_add(&b, "cluster/unreachable.txt", err, strlen(err));
		}
	}
	cJSON_Delete(namespaces);
	if (archive_write_close(b.a) != ARCHIVE_OK)
		b.failed = 1;
	archive_write_free(b.a);
	if (b.failed) {
		snprintf(err, errlen, "the bundle grew past %u bytes, or could not be written", BUNDLE_MAX);
		strbuf_release(&b.out);
		return "failed";
	}
	int rc = bundle_store(job, (long long)of->valuedouble, b.out.buf, b.out.len, err, errlen);
	cJSON_DeleteItemFromObjectCaseSensitive(job->result, "bundle_bytes");
	cJSON_AddNumberToObject(job->result, "bundle_bytes", (double)b.out.len);
	if (rc == 0)
		job_log(job, "info", "diagnostics bundle of job %s: %zu bytes", id, b.out.len);
	strbuf_release(&b.out);
	return rc == 0 ? "succeeded" : "failed";
}

/* ---- download: the backup's archive, decrypted, for the browser ---- */

#define DOWNLOAD_MAX_DEFAULT (64L << 20)
#define DOWNLOAD_MAX_LIMIT (256L << 20)

/* download_max_bytes in the runner's configuration: the largest archive a download holds (it
 * waits in the database for a day, and a web worker serves it from memory). */
static long download_max(struct job *job)
{
	struct config cfg;
	char err[256];
	long max = DOWNLOAD_MAX_DEFAULT;

	if (job->ctx->config_path && config_load(&cfg, job->ctx->config_path, err, sizeof err) == 0) {
		if (config_get_int(&cfg, "download_max_bytes", DOWNLOAD_MAX_DEFAULT, 1, DOWNLOAD_MAX_LIMIT, &max, err,
				   sizeof err) < 0)
			log_warn("%s", err);
		config_free(&cfg);
	}
	return max;
}

/* The archive (<name>.tar.gz: resources/..., metadata/version, Velero's layout) opened through
 * its seal and stored as this job's bundle, which GET /jobs/:id/archive.tar.gz serves for a day. */
const char *job_download_run(struct job *job, char *err, size_t errlen)
{
	struct job_repository repo;
	struct strbuf plain = STRBUF_INIT;
	char id[24], name[256];
	const char *params[] = { id };
	long max = download_max(job);
	PGresult *res;
	int rc;

	snprintf(id, sizeof id, "%lld", job->backup_id);
	res = job_query(job, "SELECT name, repository_id, state FROM backups WHERE id = $1", 1, params, err, errlen);
	if (!res || PQntuples(res) != 1) {
		if (res)
			snprintf(err, errlen, "the backup no longer exists");
		PQclear(res);
		return "failed";
	}
	snprintf(name, sizeof name, "%s", PQgetvalue(res, 0, 0));
	long long repository_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	int finished = strcmp(PQgetvalue(res, 0, 2), "completed") == 0 || strcmp(PQgetvalue(res, 0, 2), "partially_failed") == 0;
	PQclear(res);
	if (!finished) {
		snprintf(err, errlen, "backup %s is not a finished backup (it is being written or deleted)", name);
		return "failed";
	}
	job_progress(job, "download", 0, 1, 0, 0);
	if (job_repository_open(job, repository_id, &repo, err, errlen) < 0)
		return "failed";
	struct repository r = { .id = repo.id, .s3 = repo.s3, .prefix = repo.prefix, .bucket = repo.bucket };
	rc = repository_read_archive(&r, job->ctx->master_key, name, (size_t)max, &plain, err, errlen);
	job_repository_close(&repo);
	if (rc == -2) {
		size_t n = strlen(err);
		snprintf(err + n, errlen - n, " (download_max_bytes of this deployment: %ld); restore it instead, "
			 "or ask the operator to raise the limit", max);
	}
	if (rc < 0)
		return "failed";
	rc = bundle_store(job, job->id, plain.buf ? plain.buf : "", plain.len, err, errlen);
	cJSON_DeleteItemFromObjectCaseSensitive(job->result, "download");
	cJSON *d = cJSON_AddObjectToObject(job->result, "download");
	cJSON_AddStringToObject(d, "file", name);
	cJSON_AddNumberToObject(d, "bytes", (double)plain.len);
	if (rc == 0)
		job_log(job, "info", "backup %s: its archive, decrypted (%zu bytes), can be downloaded for a day", name, plain.len);
	job_progress(job, "download", 1, 1, (long long)plain.len, (long long)plain.len);
	strbuf_release(&plain);
	return rc == 0 ? "succeeded" : "failed";
}
