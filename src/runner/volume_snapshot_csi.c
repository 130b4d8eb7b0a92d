/* CSI volume snapshots: see volume_snapshot_csi.h. */
#include "volume_snapshot_csi.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *json_str(const cJSON *o, const char *a, const char *b)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);

	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void describe(const char *what, const struct k8s_error *ke, char *err, size_t errlen)
{
	char words[600];

	k8s_error_describe(ke, words, sizeof words);
	snprintf(err, errlen, "%s: %s", what, words);
}

int csi_snapshot_api_version(struct k8s_client *k, char *version, size_t len, char *err, size_t errlen)
{
	struct k8s_error ke;
	cJSON *group = NULL, *v;
	int v1 = 0, v1beta1 = 0;

	if (k8s_get(k, "/apis/" CSI_SNAPSHOT_GROUP, &group, &ke) < 0) {
		if (ke.http_status == 404)
			snprintf(err, errlen, "the cluster does not serve %s: install the CSI snapshot CRDs and the snapshot controller",
				 CSI_SNAPSHOT_GROUP);
		else
			describe("reading the API group " CSI_SNAPSHOT_GROUP, &ke, err, errlen);
		return -1;
	}
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(group, "versions")) {
		const char *name = json_str(v, "version", NULL);

		v1 |= name && strcmp(name, "v1") == 0;
		v1beta1 |= name && strcmp(name, "v1beta1") == 0;
	}
	cJSON_Delete(group);
	if (!v1 && !v1beta1) {
		snprintf(err, errlen, "the cluster serves %s in neither v1 nor v1beta1", CSI_SNAPSHOT_GROUP);
		return -1;
	}
	snprintf(version, len, "%s", v1 ? "v1" : "v1beta1");
	return 0;
}

int csi_snapshot_class_find(struct k8s_client *k, const char *cluster, const char *version,
			    const char *driver, char *name, size_t namelen, char *err, size_t errlen)
{
	char *path = k8s_resource_path(CSI_SNAPSHOT_GROUP, version, "volumesnapshotclasses", NULL, NULL);
	struct strbuf q = STRBUF_INIT, not_retain = STRBUF_INIT;
	struct k8s_error ke;
	cJSON *list = NULL, *c;
	int labelled = 0, rc = -1;

	strbuf_addf(&q, "%s?labelSelector=velero.io%%2Fcsi-volumesnapshot-class%%3Dtrue", path);
	free(path);
	if (k8s_get(k, q.buf, &list, &ke) < 0) {
		describe("listing VolumeSnapshotClasses", &ke, err, errlen);
		goto out;
	}
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(list, "items")) {
		const char *cname = json_str(c, "metadata", "name"), *cdriver = json_str(c, "driver", NULL);
		const char *policy = json_str(c, "deletionPolicy", NULL);

		labelled++;
		if (!cname || !cdriver || (driver && strcmp(driver, cdriver) != 0))
			continue;
		if (!policy || strcmp(policy, "Retain") != 0) {
			strbuf_addf(&not_retain, "%s%s (deletionPolicy %s)", not_retain.len ? ", " : "", cname,
				    policy ? policy : "unset");
			continue;
		}
		snprintf(name, namelen, "%s", cname);
		rc = 0;
		goto out;
	}
	if (not_retain.len)
		snprintf(err, errlen, "volume snapshot needs a VolumeSnapshotClass labelled %s=true with deletionPolicy Retain "
			 "in cluster %s: %s must have deletionPolicy Retain, or snapshots are deleted with their "
			 "VolumeSnapshot and cannot be restored (set it and apply the class again)",
			 CSI_SNAPSHOT_CLASS_LABEL, cluster, not_retain.buf);
	else if (labelled && driver)
		snprintf(err, errlen, "volume snapshot needs a VolumeSnapshotClass labelled %s=true with deletionPolicy Retain "
			 "in cluster %s: none for the volume's CSI driver %s (%d labelled for other drivers)",
			 CSI_SNAPSHOT_CLASS_LABEL, cluster, driver, labelled);
	else
		snprintf(err, errlen, "volume snapshot needs a VolumeSnapshotClass labelled %s=true with deletionPolicy Retain "
			 "in cluster %s: none found", CSI_SNAPSHOT_CLASS_LABEL, cluster);
out:
	cJSON_Delete(list);
	strbuf_release(&q);
	strbuf_release(&not_retain);
	return rc;
}

int csi_snapshot_validate(struct k8s_client *k, const char *cluster, const char *driver,
			  char *err, size_t errlen)
{
	char version[16], name[254], why[768];

	if (csi_snapshot_api_version(k, version, sizeof version, why, sizeof why) < 0) {
		snprintf(err, errlen, "volume snapshot needs a VolumeSnapshotClass labelled %s=true with deletionPolicy "
			 "Retain in cluster %s: %s", CSI_SNAPSHOT_CLASS_LABEL, cluster, why);
		return -1;
	}
	return csi_snapshot_class_find(k, cluster, version, driver, name, sizeof name, err, errlen);
}

static cJSON *snapshot_object(const char *version, const char *ns, const char *name, const char *pvc,
			      const char *class_name)
{
	cJSON *o = cJSON_CreateObject(), *meta, *spec, *source;
	char api[64];

	snprintf(api, sizeof api, "%s/%s", CSI_SNAPSHOT_GROUP, version);
	cJSON_AddStringToObject(o, "apiVersion", api);
	cJSON_AddStringToObject(o, "kind", "VolumeSnapshot");
	meta = cJSON_AddObjectToObject(o, "metadata");
	cJSON_AddStringToObject(meta, "name", name);
	cJSON_AddStringToObject(meta, "namespace", ns);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(meta, "labels"), "app.kubernetes.io/managed-by", "stowage");
	spec = cJSON_AddObjectToObject(o, "spec");
	cJSON_AddStringToObject(spec, "volumeSnapshotClassName", class_name);
	source = cJSON_AddObjectToObject(spec, "source");
	cJSON_AddStringToObject(source, "persistentVolumeClaimName", pvc);
	return o;
}

struct ready_state {
	char error[512];
};

/* Ready when status.readyToUse; status.error stops the wait with its message. */
static int snapshot_ready(const cJSON *obj, void *ud)
{
	struct ready_state *st = ud;
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(obj, "status");
	const char *msg = json_str(cJSON_GetObjectItemCaseSensitive(status, "error"), "message", NULL);

	if (!obj)
		return -1;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(status, "readyToUse")))
		return 1;
	if (msg) {
		snprintf(st->error, sizeof st->error, "%s", msg);
		return -1;
	}
	return 0;
}

/* The bound content's name, snapshotHandle and deletionPolicy. */
static int read_content(struct k8s_client *k, struct csi_snapshot *s, char *err, size_t errlen)
{
	char *path = k8s_resource_path(CSI_SNAPSHOT_GROUP, s->version, "volumesnapshotcontents", NULL, s->content);
	const char *handle, *policy;
	struct k8s_error ke;
	cJSON *c = NULL;
	int rc = -1;

	if (k8s_get(k, path, &c, &ke) < 0) {
		char what[1024];

		snprintf(what, sizeof what, "VolumeSnapshotContent %s of VolumeSnapshot %s/%s", s->content, s->ns, s->name);
		describe(what, &ke, err, errlen);
		goto out;
	}
	handle = json_str(c, "status", "snapshotHandle");
	policy = json_str(c, "spec", "deletionPolicy");
	if (!handle || !*handle) {
		snprintf(err, errlen, "VolumeSnapshotContent %s of VolumeSnapshot %s/%s: ready but without status.snapshotHandle",
			 s->content, s->ns, s->name);
		goto out;
	}
	if (!policy || strcmp(policy, "Retain") != 0) {
		snprintf(err, errlen, "VolumeSnapshotContent %s of VolumeSnapshot %s/%s has deletionPolicy %s, not Retain: "
			 "the snapshot would be deleted with its VolumeSnapshot and could not be restored; set "
			 "deletionPolicy: Retain in VolumeSnapshotClass %s", s->content, s->ns, s->name,
			 policy ? policy : "unset", s->class_name);
		goto out;
	}
	snprintf(s->handle, sizeof s->handle, "%s", handle);
	rc = 0;
out:
	cJSON_Delete(c);
	free(path);
	return rc;
}

int csi_snapshot_create(struct k8s_client *k, const char *cluster, const char *ns, const char *pvc,
		      const char *driver, const char *name, long timeout_ms, struct csi_snapshot *out,
		      char *err, size_t errlen)
{
	struct ready_state st = { "" };
	struct k8s_error ke;
	char *coll = NULL, *path = NULL, what[1024];
	cJSON *obj = NULL, *got = NULL;
	int rc = -1;

	memset(out, 0, sizeof *out);
	snprintf(out->ns, sizeof out->ns, "%s", ns);
	snprintf(out->name, sizeof out->name, "%s", name);
	snprintf(out->driver, sizeof out->driver, "%s", driver);
	snprintf(what, sizeof what, "VolumeSnapshot %s/%s of claim %s", ns, name, pvc);
	if (csi_snapshot_api_version(k, out->version, sizeof out->version, err, errlen) < 0 ||
	    csi_snapshot_class_find(k, cluster, out->version, driver, out->class_name, sizeof out->class_name,
				    err, errlen) < 0)
		return -1;
	coll = k8s_resource_path(CSI_SNAPSHOT_GROUP, out->version, "volumesnapshots", ns, NULL);
	path = k8s_resource_path(CSI_SNAPSHOT_GROUP, out->version, "volumesnapshots", ns, name);
	obj = snapshot_object(out->version, ns, name, pvc, out->class_name);
	if (k8s_create(k, coll, obj, NULL, &ke) < 0) {
		if (strcmp(ke.reason, "AlreadyExists") != 0) {
			describe(what, &ke, err, errlen);
			goto out;
		}
		if (k8s_get(k, path, &got, &ke) < 0) {
			describe(what, &ke, err, errlen);
			goto out;
		}
		const char *claim = json_str(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(got, "spec"), "source"),
					     "persistentVolumeClaimName", NULL);
		if (!claim || strcmp(claim, pvc) != 0) {
			snprintf(err, errlen, "%s: a VolumeSnapshot of that name already exists for another source", what);
			goto out;
		}
		cJSON_Delete(got);
		got = NULL;
	}
	if (k8s_wait(k, path, snapshot_ready, &st, timeout_ms, &ke) < 0) {
		if (st.error[0])
			snprintf(err, errlen, "%s failed: %s", what, st.error);
		else if (strcmp(ke.reason, "Timeout") == 0)
			snprintf(err, errlen, "%s: not readyToUse after %ld s (is the cluster's snapshot controller and the "
				 "CSI driver %s running?)", what, timeout_ms / 1000, driver);
		else
			describe(what, &ke, err, errlen);
		goto out;
	}
	if (k8s_get(k, path, &got, &ke) < 0) {
		describe(what, &ke, err, errlen);
		goto out;
	}
	const char *content = json_str(got, "status", "boundVolumeSnapshotContentName");
	const char *size = json_str(got, "status", "restoreSize");
	if (!content || !*content) {
		snprintf(err, errlen, "%s: ready but bound to no VolumeSnapshotContent", what);
		goto out;
	}
	snprintf(out->content, sizeof out->content, "%s", content);
	snprintf(out->restore_size, sizeof out->restore_size, "%s", size ? size : "");
	rc = read_content(k, out, err, errlen);
out:
	cJSON_Delete(obj);
	cJSON_Delete(got);
	free(coll);
	free(path);
	return rc;
}

int csi_snapshot_delete(struct k8s_client *k, const struct csi_snapshot *s, char *err, size_t errlen)
{
	char *path = k8s_resource_path(CSI_SNAPSHOT_GROUP, s->version, "volumesnapshots", s->ns, s->name);
	struct k8s_error ke;
	int rc = k8s_delete(k, path, NULL, &ke);

	free(path);
	if (rc < 0 && ke.http_status != 404) {
		char what[1024];

		snprintf(what, sizeof what, "deleting VolumeSnapshot %s/%s", s->ns, s->name);
		describe(what, &ke, err, errlen);
		return -1;
	}
	return 0;
}

cJSON *csi_snapshot_to_json(const struct csi_snapshot *s)
{
	cJSON *o = cJSON_CreateObject();
	char api[64];

	snprintf(api, sizeof api, "%s/%s", CSI_SNAPSHOT_GROUP, s->version);
	cJSON_AddStringToObject(o, "api_version", api);
	cJSON_AddStringToObject(o, "namespace", s->ns);
	cJSON_AddStringToObject(o, "name", s->name);
	cJSON_AddStringToObject(o, "class", s->class_name);
	cJSON_AddStringToObject(o, "driver", s->driver);
	cJSON_AddStringToObject(o, "content", s->content);
	cJSON_AddStringToObject(o, "handle", s->handle);
	if (s->restore_size[0])
		cJSON_AddStringToObject(o, "restore_size", s->restore_size);
	return o;
}

static int copy_field(const cJSON *o, const char *key, char *dst, size_t len, int required,
		      char *err, size_t errlen)
{
	const char *v = json_str(o, key, NULL);

	if (!v && !required) {
		dst[0] = '\0';
		return 0;
	}
	if (!v || strlen(v) >= len || (required && !*v)) {
		snprintf(err, errlen, "volume_snapshot.%s: missing, empty or longer than %zu characters", key, len - 1);
		return -1;
	}
	snprintf(dst, len, "%s", v);
	return 0;
}

int csi_snapshot_from_json(const cJSON *o, struct csi_snapshot *s, char *err, size_t errlen)
{
	const char *api = json_str(o, "api_version", NULL);

	memset(s, 0, sizeof *s);
	if (!api || (strcmp(api, CSI_SNAPSHOT_GROUP "/v1") != 0 && strcmp(api, CSI_SNAPSHOT_GROUP "/v1beta1") != 0)) {
		snprintf(err, errlen, "volume_snapshot.api_version: must be %s/v1 or %s/v1beta1",
			 CSI_SNAPSHOT_GROUP, CSI_SNAPSHOT_GROUP);
		return -1;
	}
	snprintf(s->version, sizeof s->version, "%s", strrchr(api, '/') + 1);
	if (copy_field(o, "namespace", s->ns, sizeof s->ns, 1, err, errlen) < 0 ||
	    copy_field(o, "name", s->name, sizeof s->name, 1, err, errlen) < 0 ||
	    copy_field(o, "class", s->class_name, sizeof s->class_name, 1, err, errlen) < 0 ||
	    copy_field(o, "driver", s->driver, sizeof s->driver, 1, err, errlen) < 0 ||
	    copy_field(o, "content", s->content, sizeof s->content, 1, err, errlen) < 0 ||
	    copy_field(o, "handle", s->handle, sizeof s->handle, 1, err, errlen) < 0 ||
	    copy_field(o, "restore_size", s->restore_size, sizeof s->restore_size, 0, err, errlen) < 0)
		return -1;
	return 0;
}
