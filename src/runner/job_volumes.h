/* Persistent-volume data of a job: the backup and restore engines call these at their
 * "volumes" phase. Per claim, by the plan's method:
 *
 *   "filesystem"     the data mover (stowage-mover) copies the volume's files into the job's
 *                    repository and back: deduplicated, compressed, encrypted;
 *   "snapshot"       a CSI VolumeSnapshot is taken (volume_snapshot_csi.h); it restores only
 *                    into the same cluster, as a new claim with the snapshot as its dataSource;
 *   "snapshot+move"  a snapshot is taken, a temporary claim is restored from it, and the mover
 *                    copies that claim's files into the repository: a consistent point in time
 *                    that restores anywhere, like "filesystem".
 *
 * Where the mover runs is the runner's config key `mover_launch`: "local" (default; the
 * volume's directory, a hostPath or local PV, is on this machine: the test environment's case)
 * or "pod" (mover_pod.h: a pod on the volume's node mounts the claim; `mover_image` names the
 * image). The mover reaches the repository at s3://<bucket>/<prefix>data with repository id
 * = the repository's id; the S3 keys go into its environment only and the master key through
 * a pipe (--key-file /dev/fd/3), never onto a disk or a command line.
 *
 * Progress: phase "volumes", bytes done/total over all volumes, items = volumes; each volume
 * gets a job item (group "stowage.dev", resource "volumedata") saying backed_up / created or
 * failed with the claim and the mover's one-line reason, and job->result["volumes"] gets the
 * totals and the throughput. */
#ifndef STOWAGE_RUNNER_JOB_VOLUMES_H
#define STOWAGE_RUNNER_JOB_VOLUMES_H

#include "job.h"

#include <cjson/cJSON.h>
#include <stddef.h>

#define JOB_VOLUMES_PHASE "volumes"

/* For every PVC of the namespaces (that label_selector selects, when not NULL: the plan's, so
 * that a backup copies the data of the claims it keeps and no other), backs its data up by volume_methods ({"ns/pvc": method},
 * a claim not named there: "filesystem") and appends one entry per claim to the array
 * volumes_out:
 *   {namespace, pvc, pv, storage_class, size, node, method, snapshot_id | volume_snapshot,
 *    bytes, files, duration_ms[, rate_wait_ms]}
 * (volume_snapshot: {name, namespace, api_version, class, content, handle, driver}). The lead
 * writes volumes_out into the backup as backups/<name>/<name>-volumes.json. Claims that are
 * not Bound are skipped with a warning. Returns 0 when every claim's data was saved, -1 when
 * any failed (all others are still attempted; err names the first failed claim and why).
 * cluster_id is the cluster the claims are of: its bandwidth windows (sql/025) pace the mover,
 * here and in job_restore_volumes. */
int job_backup_volumes(struct job *job, struct k8s_client *k, long long cluster_id, const struct job_repository *repo,
		       const char *backup_name, char *const *namespaces, size_t n, const char *label_selector,
		       const cJSON *volume_methods, cJSON *volumes_out, char *err, size_t errlen);

/* After the restored claims are Bound in the target: restores each recorded volume's mover
 * snapshot into the directory of the PV bound to the claim (in the namespace namespace_map
 * gives, {"src": "dst"}, NULL or absent = the same). Entries of method "snapshot" carry no
 * files to copy: their claims were created with csi_restore_pvc_source's dataSource, and are
 * only checked to be Bound. Returns 0, or -1 when any volume failed (err names the first). */
int job_restore_volumes(struct job *job, struct k8s_client *target, long long cluster_id, const struct job_repository *repo,
			const cJSON *volumes, const cJSON *namespace_map, char *err, size_t errlen);

/* For the restore engine, while it writes a claim: the volumes.json entry of that claim (or
 * NULL), and whether the PVC object needs a dataSource. Returns 1 and sets *data_source (the
 * caller frees it) to {apiGroup, kind: VolumeSnapshot, name} when the entry is a "snapshot"
 * volume restored into the cluster and namespace it was taken in; 0 when the claim gets no
 * dataSource (its data, if any, comes from the mover); -1 with err when a snapshot volume
 * cannot be restored there (another cluster, or another namespace: a VolumeSnapshot lives in
 * its cluster and serves only claims of its own namespace; "snapshot+move" has no such limit). */
int csi_restore_pvc_source(const cJSON *volume, int same_cluster, const char *target_namespace,
			   cJSON **data_source, char *err, size_t errlen);

/* Runs the data mover on the repository alone (no volume): args[0] is its command ("prune",
 * "check"), the rest its options; --repo, --repo-id and --key-file are added. *done receives
 * its final JSON line (the caller frees it); check's problem lines are appended to problems
 * (an array, or NULL). The mover runs on the runner's machine whatever mover_launch says: it
 * reads no volume. 0, or -1 with err (the mover's exit and last error line). */
int job_repository_mover(struct job *job, const struct job_repository *repo, const char *const *args,
			 cJSON **done, cJSON *problems, char *err, size_t errlen);

#endif
