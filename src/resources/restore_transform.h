/* What a restore changes in a backed-up object before it creates it in the target cluster.
 * Pure functions on cJSON objects: no I/O, so they are unit-tested and fuzzed directly.
 *
 * - Fields the API server owns are removed: metadata.uid, resourceVersion, creationTimestamp,
 *   managedFields, generation, selfLink, deletionTimestamp (and its grace period), status.
 * - ownerReferences to objects this restore recreates are dropped (their uids change; the
 *   owners' controllers adopt the objects again).
 * - Namespaces are renamed by the plan's map wherever one is named.
 * - Storage classes are renamed wherever one is named: claims, volumes, StatefulSet claim
 *   templates (the class chosen for the set's claims first) and the ephemeral claim templates of
 *   pod templates: the plan's map first, then the target cluster's change-storage-class
 *   ConfigMap, else unchanged.
 * - StorageClasses lose their is-default-class annotations unless keep_default_class is set: a
 *   restore never makes a second default class in the target.
 * - Services lose their cluster IPs and health-check node port; node ports stay if still free.
 * - Volumes lose the uid of their claim; claims lose their binding annotations and keep
 *   volumeName only when the volume is restored too, so that the pair binds again, or name the
 *   volume the plan chose for them (claim_volume_map); otherwise they are provisioned anew.
 * - Every object gets the labels stowage.dev/backup and stowage.dev/restore. */
#ifndef STOWAGE_RESTORE_TRANSFORM_H
#define STOWAGE_RESTORE_TRANSFORM_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define RESTORE_LABEL_BACKUP "stowage.dev/backup"
#define RESTORE_LABEL_RESTORE "stowage.dev/restore"

/* A sorted set of strings (uids, names). */
struct restore_names {
	char **v;
	size_t n, cap;
	int sorted;
};

void restore_names_add(struct restore_names *s, const char *name);
/* Sorts the set and drops repeats (so adding is cheap: a name may be added many times); call
 * after the last add, before lookups or walking v. */
void restore_names_seal(struct restore_names *s);
int restore_names_has(const struct restore_names *s, const char *name);
void restore_names_free(struct restore_names *s);

/* 1 when port is free in the target (and now taken by the caller's service), 0 when in use. */
typedef int (*restore_node_port_fn)(long port, void *ud);
typedef void (*restore_warn_fn)(const char *message, void *ud);

struct restore_transform {
	const cJSON *namespace_map;		/* {"source-ns": "target-ns"}, or NULL */
	const cJSON *storage_class_map;		/* the plan's {"old": "new"}, or NULL */
	const cJSON *cluster_class_map;		/* the target's change-storage-class ConfigMap data, or NULL */
	const cJSON *claim_class_map;		/* {"<source-ns>/<claim>": "class"}: a migration's choice
						 * per claim, before every other map; or NULL */
	const cJSON *claim_volume_map;		/* {"<source-ns>/<claim>": "pv"}: the volume the plan
						 * binds this claim to; or NULL */
	int keep_default_class;			/* leave is-default-class on restored StorageClasses */
	const char *backup_name;
	const char *restore_id;
	const struct restore_names *restored_uids;	/* source uids of the objects this restore creates */
	const struct restore_names *restored_volumes;	/* names of the PersistentVolumes it creates */
	restore_node_port_fn node_port_take;	/* NULL: every node port is dropped */
	void *node_port_ud;
	restore_warn_fn warn;			/* NULL: warnings are not reported */
	void *warn_ud;
};

/* Why every cluster holds obj already, made by the API server itself, or NULL: the default RBAC
 * objects (label kubernetes.io/bootstrapping=rbac-defaults), the system-* PriorityClasses, the
 * APIServices served by the API server itself (no spec.service), the flow-control objects it
 * keeps up to date (apf.kubernetes.io/autoupdate-spec=true). Neither backed up nor restored. */
const char *restore_builtin_reason(const char *group, const char *resource, const cJSON *obj);

/* Why an object is left out of a restore (its owner recreates it, the cluster does), or NULL. */
const char *restore_skip_reason(const char *group, const char *resource, const cJSON *obj);

/* "Complete" or "Failed" when obj is a Job that had finished when it was backed up (recreating
 * it would run it again), else NULL. */
const char *restore_job_finished(const char *group, const char *resource, const cJSON *obj);

/* The target name of a namespace, or of a storage class; the name itself when no map names it. */
const char *restore_namespace_target(const struct restore_transform *t, const char *ns);
const char *restore_storage_class_target(const struct restore_transform *t, const char *cls);

/* Rewrites obj in place for creation in the target cluster. */
void restore_transform_apply(const struct restore_transform *t, const char *group, const char *resource,
			     cJSON *obj);

/* A valid label value for any name: the name when it is one, else its first 57 characters and
 * a 6-digit hash (as Velero does), so that different long names stay apart. */
void restore_label_value(const char *name, char out[64]);

/* Checks a plan's map: an object of strings, each key and value a DNS label (namespaces) or
 * subdomain (storage classes). err names the field, key and reason. */
int restore_map_check(const cJSON *map, const char *field, int dns_label, char *err, size_t errlen);

#endif
