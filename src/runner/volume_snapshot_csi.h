/* CSI volume snapshots through the snapshot.storage.k8s.io API (v1, or v1beta1 where only
 * that is served): the VolumeSnapshotClass a backup uses is the one labelled
 * velero.io/csi-volumesnapshot-class=true for the volume's CSI driver, and it must have
 * deletionPolicy Retain, so that the snapshot outlives its VolumeSnapshot object (manual 3.4,
 * 9.2). Everything goes through the API server; the cluster's snapshot controller and CSI
 * driver do the rest. */
#ifndef STOWAGE_RUNNER_VOLUME_SNAPSHOT_CSI_H
#define STOWAGE_RUNNER_VOLUME_SNAPSHOT_CSI_H

#include "k8s_client.h"

#include <cjson/cJSON.h>
#include <stddef.h>

#define CSI_SNAPSHOT_GROUP "snapshot.storage.k8s.io"
#define CSI_SNAPSHOT_CLASS_LABEL "velero.io/csi-volumesnapshot-class"

struct csi_snapshot {
	char version[16];		/* "v1" or "v1beta1" */
	char ns[64];
	char name[254];
	char class_name[254];
	char driver[254];
	char content[254];		/* the VolumeSnapshotContent bound to it */
	char handle[1024];		/* the driver's snapshotHandle */
	char restore_size[64];		/* status.restoreSize, "" when not reported */
};

/* "v1" when served, else "v1beta1"; -1 with err when the group is not served at all. */
int csi_snapshot_api_version(struct k8s_client *k, char *version, size_t len, char *err, size_t errlen);

/* The labelled class for driver (NULL: any driver) with deletionPolicy Retain. cluster names
 * the cluster in the error, which says what is missing or wrong: no labelled class, none for
 * that driver, or one whose deletionPolicy is not Retain. */
int csi_snapshot_class_find(struct k8s_client *k, const char *cluster, const char *version,
			    const char *driver, char *name, size_t namelen, char *err, size_t errlen);

/* For the backup plan wizard: 0 when a snapshot of a volume of driver (NULL: any) can be
 * taken in the cluster; -1 with the sentence to show otherwise ("volume snapshot needs a
 * VolumeSnapshotClass labelled velero.io/csi-volumesnapshot-class=true with deletionPolicy
 * Retain in cluster X: none found"). */
int csi_snapshot_validate(struct k8s_client *k, const char *cluster, const char *driver,
			  char *err, size_t errlen);

/* Creates VolumeSnapshot name of claim ns/pvc (whose PV has CSI driver `driver`) with the
 * driver's class, waits up to timeout_ms until it is readyToUse, and fills out (with the
 * bound VolumeSnapshotContent's name and snapshotHandle). A snapshot that reports an error,
 * or one whose content is not Retain, fails with the reason. An existing VolumeSnapshot of the
 * same name and claim is reused (a resumed job). */
int csi_snapshot_create(struct k8s_client *k, const char *cluster, const char *ns, const char *pvc,
		      const char *driver, const char *name, long timeout_ms, struct csi_snapshot *out,
		      char *err, size_t errlen);

/* Deletes the VolumeSnapshot (its content stays: Retain). */
int csi_snapshot_delete(struct k8s_client *k, const struct csi_snapshot *s, char *err, size_t errlen);

/* To and from the volumes.json entry's "volume_snapshot" object. */
cJSON *csi_snapshot_to_json(const struct csi_snapshot *s);
int csi_snapshot_from_json(const cJSON *o, struct csi_snapshot *s, char *err, size_t errlen);

#endif
