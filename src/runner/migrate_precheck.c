#include "migrate_precheck.h"
#include "json.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 when the object at path exists, 0 when it does not, -1 (err set) when the cluster cannot say. */
/* 1 when the object exists (2 when its uid is own_uid), 0 when not, -1 with err. */
static int object_exists_uid(struct k8s_client *k, const char *path, const char *own_uid, char *err, size_t errlen)
{
	struct k8s_error kerr = { 0 };
	cJSON *obj = NULL;
	int rc = k8s_get(k, path, &obj, &kerr);

	if (rc == 0) {
		const char *uid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "uid"));
		rc = own_uid && *own_uid && uid && strcmp(uid, own_uid) == 0 ? 2 : 1;
		cJSON_Delete(obj);
		return rc;
	}
	cJSON_Delete(obj);
	if (kerr.http_status == 404)
		return 0;
	k8s_error_describe(&kerr, err, errlen);
	return -1;
}

static int object_exists(struct k8s_client *k, const char *path, char *err, size_t errlen)
{
	return object_exists_uid(k, path, NULL, err, errlen);
}

static void add_conflict(cJSON *conflicts, const char *fmt, const char *a, const char *b)
{
	char msg[600];

	snprintf(msg, sizeof msg, fmt, a, b);
	cJSON_AddItemToArray(conflicts, cJSON_CreateString(msg));
}

struct pvc_scan {
	struct k8s_client *tgt;
	const char *ns;
	const cJSON *storage_classes;
	cJSON *conflicts;
	cJSON *checked_classes;	/* class name -> true, so each is asked once */
	int first;		/* conflicts before the scan: the namespace's */
	char *err;
	size_t errlen;
	int failed;
};

static int check_pvc(cJSON *pvc, void *ud)
{
	struct pvc_scan *ps = ud;
	const cJSON *meta, *spec, *name, *cls, *volume;
	char key[512];

	if (!pvc) {	/* the list starts over: what it found so far will be found again */
		json_array_truncate(ps->conflicts, ps->first);
		cJSON_Delete(ps->checked_classes);
		ps->checked_classes = cJSON_CreateObject();
		return 0;
	}
	meta = cJSON_GetObjectItemCaseSensitive(pvc, "metadata");
	spec = cJSON_GetObjectItemCaseSensitive(pvc, "spec");
	name = cJSON_GetObjectItemCaseSensitive(meta, "name");
	if (!cJSON_IsString(name))
		return 0;
	snprintf(key, sizeof key, "%s/%s", ps->ns, name->valuestring);
	cls = cJSON_GetObjectItemCaseSensitive(ps->storage_classes, key);
	if (!cJSON_IsString(cls))
		cls = cJSON_GetObjectItemCaseSensitive(spec, "storageClassName");
	if (cJSON_IsString(cls) && *cls->valuestring &&
	    !cJSON_GetObjectItemCaseSensitive(ps->checked_classes, cls->valuestring)) {
		char *path = k8s_resource_path("storage.k8s.io", "v1", "storageclasses", NULL, cls->valuestring);
		int exists = object_exists(ps->tgt, path, ps->err, ps->errlen);
		free(path);
		if (exists < 0) {
			ps->failed = 1;
			return 1;
		}
		cJSON_AddTrueToObject(ps->checked_classes, cls->valuestring);
		if (!exists)
			add_conflict(ps->conflicts, "StorageClass %s, needed by PVC %s, does not exist in the target cluster",
				     cls->valuestring, key);
	}
	volume = cJSON_GetObjectItemCaseSensitive(spec, "volumeName");
	if (cJSON_IsString(volume) && *volume->valuestring) {
		char *path = k8s_resource_path("", "v1", "persistentvolumes", NULL, volume->valuestring);
		int exists = object_exists(ps->tgt, path, ps->err, ps->errlen);
		free(path);
		if (exists < 0) {
			ps->failed = 1;
			return 1;
		}
		if (exists)
			add_conflict(ps->conflicts, "PersistentVolume %s (bound to PVC %s) already exists in the target cluster",
				     volume->valuestring, key);
	}
	return 0;
}

int migrate_precheck(struct k8s_client *src, struct k8s_client *tgt, const char *ns, const char *own_uid,
		     const cJSON *storage_classes, cJSON *conflicts, char *err, size_t errlen)
{
	struct k8s_resource_type pvcs = { .version = "v1", .plural = "persistentvolumeclaims", .namespaced = 1 };
	struct pvc_scan ps = { tgt, ns, storage_classes, conflicts, cJSON_CreateObject(), 0, err, errlen, 0 };
	struct k8s_error kerr = { 0 };
	char *path = k8s_resource_path("", "v1", "namespaces", NULL, ns);
	int exists = object_exists_uid(tgt, path, own_uid, err, errlen), rc = 0;

	free(path);
	if (exists < 0) {
		cJSON_Delete(ps.checked_classes);
		return -1;
	}
	if (exists == 1)
		add_conflict(conflicts, "namespace %s already exists in the target cluster%s", ns, "");
	ps.first = cJSON_GetArraySize(conflicts);
	if (k8s_list(src, &pvcs, ns, NULL, 500, check_pvc, &ps, &kerr) < 0) {
		if (!ps.failed) {
			char why[600];
			k8s_error_describe(&kerr, why, sizeof why);
			snprintf(err, errlen, "listing the PVCs of %s in the source: %s", ns, why);
		}
		rc = -1;
	}
	cJSON_Delete(ps.checked_classes);
	return rc;
}
