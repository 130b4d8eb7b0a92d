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
 *                  the bytes freed go on the repository's row. */
#include "job.h"
#include "job_volumes.h"
#include "audit.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "repo_seal.h"
#include "strbuf.h"

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
	if (repo_seal_key(d->job->ctx->master_key, d->repository_id, k) < 0 ||
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
		strbuf_addf(&key, "%sdata/%lld/data/snapshots/%s.json.enc", d->repo.prefix, d->repository_id, id);
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
