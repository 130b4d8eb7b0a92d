/* Stopping an application before a consistent migration and starting it again: its workloads'
 * replica counts and CronJob suspension, recorded so that exactly the original state returns. */
#ifndef STOWAGE_MIGRATE_WORKLOADS_H
#define STOWAGE_MIGRATE_WORKLOADS_H

#include "k8s_client.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* Scales the namespace's Deployments, StatefulSets and ReplicaSets (those no Deployment owns)
 * to zero and suspends its CronJobs. record (an object) receives
 * {"<namespace>": {"deployments.apps/<name>": 3, "cronjobs.batch/<name>": false, ...}}: the
 * original replica count, or the original suspend flag. Returns 0, or -1 with err; what was
 * stopped before a failure is in record, so the caller can start it again. */
int workloads_stop(struct k8s_client *k, const char *ns, cJSON *record, char *err, size_t errlen);
/* Waits until no pod of namespace ns is controlled by a ReplicaSet or a StatefulSet any more
 * (after workloads_stop: the application's processes have ended, so its volumes are no longer
 * written), for at most timeout_ms. Returns 0, or -1 with err naming the pods left. */
int workloads_wait_stopped(struct k8s_client *k, const char *ns, long timeout_ms, char *err, size_t errlen);
/* Puts back every workload of record's namespace ns_from into namespace ns_to of cluster k
 * (same namespace for the source, the mapped one for the target). Returns the number that could
 * not be put back; each failure is described in failures (an array, may be NULL). */
int workloads_start(struct k8s_client *k, const cJSON *record, const char *ns_from, const char *ns_to,
		    cJSON *failures);
/* Waits until every Deployment and StatefulSet of record's namespace ns that was recorded with
 * replicas has them all ready (observed at its current generation; a Deployment's available),
 * for at most timeout_ms. Returns 0, or -1 with err naming each workload not ready and its
 * counts (a crash loop never becomes ready). */
int workloads_wait_ready(struct k8s_client *k, const char *ns, const cJSON *record, long timeout_ms,
			 char *err, size_t errlen);
/* The number of replicas of every recorded workload as the cluster reports them now, for tests
 * and the job report: {"deployments.apps/web": 0, ...}. */
cJSON *workloads_current(struct k8s_client *k, const char *ns, const cJSON *record);

#endif
