/* The order a restore creates objects in: what an object needs must exist before it. CRDs
 * first (their custom resources come last, once the CRD is served), then namespaces, storage,
 * configuration and identities, RBAC, services, workloads, and everything else. Objects of one
 * tier do not depend on each other, so a tier is created in parallel. */
#ifndef STOWAGE_RESTORE_ORDER_H
#define STOWAGE_RESTORE_ORDER_H

#include <stddef.h>

enum restore_tier {
	RESTORE_TIER_CRDS,
	RESTORE_TIER_NAMESPACES,
	RESTORE_TIER_STORAGE_CLASSES,
	RESTORE_TIER_PERSISTENT_VOLUMES,
	RESTORE_TIER_PERSISTENT_VOLUME_CLAIMS,
	RESTORE_TIER_SECRETS,
	RESTORE_TIER_CONFIG_MAPS,
	RESTORE_TIER_SERVICE_ACCOUNTS,
	RESTORE_TIER_ROLES,
	RESTORE_TIER_CLUSTER_ROLES,
	RESTORE_TIER_ROLE_BINDINGS,
	RESTORE_TIER_CLUSTER_ROLE_BINDINGS,
	RESTORE_TIER_SERVICES,
	RESTORE_TIER_WORKLOADS,
	RESTORE_TIER_REST,
	RESTORE_TIER_COUNT
};

/* A resource type the restore knows by name: built-in Kubernetes types. */
struct restore_type {
	const char *group;	/* "" for the core group */
	const char *resource;	/* plural, as in URLs */
	const char *kind;
	enum restore_tier tier;
	int rank;		/* order inside the tier: workloads controllers first, pods last */
};

/* The known type, or NULL for a type the restore treats as "the rest" (custom resources, ...). */
const struct restore_type *restore_type_find(const char *group, const char *resource);
enum restore_tier restore_tier_of(const char *group, const char *resource);
/* "crds", "namespaces", ..., "workloads", "rest": the phase name of a tier. */
const char *restore_tier_name(enum restore_tier tier);

/* One object's place in the order. */
struct restore_order_key {
	const char *group;
	const char *resource;
	const char *ns;
	const char *name;
};

/* Sorts idx[0..n) (indexes into keys) into creation order: by tier, rank, then group,
 * resource, namespace and name so that the order does not depend on the archive's. */
void restore_order_sort(const struct restore_order_key *keys, size_t *idx, size_t n);

#endif
