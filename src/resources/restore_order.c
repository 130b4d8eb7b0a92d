#include "restore_order.h"

#include <stdlib.h>
#include <string.h>

static const struct restore_type restore_types[] = {
	{ "apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition", RESTORE_TIER_CRDS, 0 },
	{ "", "namespaces", "Namespace", RESTORE_TIER_NAMESPACES, 0 },
	{ "storage.k8s.io", "storageclasses", "StorageClass", RESTORE_TIER_STORAGE_CLASSES, 0 },
	{ "", "persistentvolumes", "PersistentVolume", RESTORE_TIER_PERSISTENT_VOLUMES, 0 },
	{ "", "persistentvolumeclaims", "PersistentVolumeClaim", RESTORE_TIER_PERSISTENT_VOLUME_CLAIMS, 0 },
	{ "", "secrets", "Secret", RESTORE_TIER_SECRETS, 0 },
	{ "", "configmaps", "ConfigMap", RESTORE_TIER_CONFIG_MAPS, 0 },
	{ "", "serviceaccounts", "ServiceAccount", RESTORE_TIER_SERVICE_ACCOUNTS, 0 },
	{ "rbac.authorization.k8s.io", "roles", "Role", RESTORE_TIER_ROLES, 0 },
	{ "rbac.authorization.k8s.io", "clusterroles", "ClusterRole", RESTORE_TIER_CLUSTER_ROLES, 0 },
	{ "rbac.authorization.k8s.io", "rolebindings", "RoleBinding", RESTORE_TIER_ROLE_BINDINGS, 0 },
	{ "rbac.authorization.k8s.io", "clusterrolebindings", "ClusterRoleBinding", RESTORE_TIER_CLUSTER_ROLE_BINDINGS, 0 },
	{ "", "services", "Service", RESTORE_TIER_SERVICES, 0 },
	{ "apps", "deployments", "Deployment", RESTORE_TIER_WORKLOADS, 0 },
	{ "apps", "statefulsets", "StatefulSet", RESTORE_TIER_WORKLOADS, 1 },
	{ "apps", "daemonsets", "DaemonSet", RESTORE_TIER_WORKLOADS, 2 },
	{ "batch", "cronjobs", "CronJob", RESTORE_TIER_WORKLOADS, 3 },
	{ "batch", "jobs", "Job", RESTORE_TIER_WORKLOADS, 4 },
	{ "apps", "replicasets", "ReplicaSet", RESTORE_TIER_WORKLOADS, 5 },
	{ "", "pods", "Pod", RESTORE_TIER_WORKLOADS, 6 },
	/* Known so that their kind is checked; restored with the rest (or skipped). */
	{ "", "endpoints", "Endpoints", RESTORE_TIER_REST, 0 },
	{ "discovery.k8s.io", "endpointslices", "EndpointSlice", RESTORE_TIER_REST, 0 },
	{ "", "events", "Event", RESTORE_TIER_REST, 0 },
	{ "events.k8s.io", "events", "Event", RESTORE_TIER_REST, 0 },
	{ "networking.k8s.io", "ingresses", "Ingress", RESTORE_TIER_REST, 0 },
	{ "networking.k8s.io", "networkpolicies", "NetworkPolicy", RESTORE_TIER_REST, 0 },
	{ "policy", "poddisruptionbudgets", "PodDisruptionBudget", RESTORE_TIER_REST, 0 },
	{ "autoscaling", "horizontalpodautoscalers", "HorizontalPodAutoscaler", RESTORE_TIER_REST, 0 },
	{ "", "limitranges", "LimitRange", RESTORE_TIER_REST, 0 },
	{ "", "resourcequotas", "ResourceQuota", RESTORE_TIER_REST, 0 },
};

static const char *const restore_tier_names[RESTORE_TIER_COUNT] = {
	"crds", "namespaces", "storageclasses", "persistentvolumes", "persistentvolumeclaims",
	"secrets", "configmaps", "serviceaccounts", "roles", "clusterroles", "rolebindings",
	"clusterrolebindings", "services", "workloads", "rest",
};

const struct restore_type *restore_type_find(const char *group, const char *resource)
{
	for (size_t i = 0; i < sizeof restore_types / sizeof restore_types[0]; i++)
		if (strcmp(restore_types[i].group, group) == 0 && strcmp(restore_types[i].resource, resource) == 0)
			return &restore_types[i];
	return NULL;
}

enum restore_tier restore_tier_of(const char *group, const char *resource)
{
	const struct restore_type *t = restore_type_find(group, resource);

	return t ? t->tier : RESTORE_TIER_REST;
}

const char *restore_tier_name(enum restore_tier tier)
{
	return tier < RESTORE_TIER_COUNT ? restore_tier_names[tier] : "rest";
}

static int restore_rank_of(const char *group, const char *resource)
{
	const struct restore_type *t = restore_type_find(group, resource);

	return t ? t->rank : 0;
}

static int restore_order_cmp(const void *a, const void *b, void *ud)
{
	const struct restore_order_key *keys = ud;
	const struct restore_order_key *x = &keys[*(const size_t *)a], *y = &keys[*(const size_t *)b];
	int c;

	c = (int)restore_tier_of(x->group, x->resource) - (int)restore_tier_of(y->group, y->resource);
	if (c)
		return c;
	c = restore_rank_of(x->group, x->resource) - restore_rank_of(y->group, y->resource);
	if (c)
		return c;
	if ((c = strcmp(x->group, y->group)) || (c = strcmp(x->resource, y->resource)) ||
	    (c = strcmp(x->ns, y->ns)) || (c = strcmp(x->name, y->name)))
		return c;
	return *(const size_t *)a < *(const size_t *)b ? -1 : *(const size_t *)a > *(const size_t *)b;
}

void restore_order_sort(const struct restore_order_key *keys, size_t *idx, size_t n)
{
	if (n > 1)
		qsort_r(idx, n, sizeof *idx, restore_order_cmp, (void *)keys);
}
