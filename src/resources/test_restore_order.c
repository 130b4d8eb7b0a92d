/* restore_order: a mixed set comes out in dependency order, whatever order it went in. */
#include "check.h"
#include "restore_order.h"

static const struct restore_order_key mixed[] = {
	{ "fixtures.stowage.dev", "widgets", "shop", "sprocket" },
	{ "", "pods", "shop", "lonely" },
	{ "apps", "deployments", "shop", "wordpress" },
	{ "networking.k8s.io", "ingresses", "shop", "wordpress" },
	{ "rbac.authorization.k8s.io", "clusterrolebindings", "", "crb" },
	{ "", "services", "shop", "wordpress" },
	{ "", "configmaps", "shop", "b" },
	{ "", "configmaps", "shop", "a" },
	{ "", "secrets", "shop", "s" },
	{ "apps", "statefulsets", "shop", "mysql" },
	{ "batch", "cronjobs", "shop", "nightly" },
	{ "rbac.authorization.k8s.io", "rolebindings", "shop", "rb" },
	{ "rbac.authorization.k8s.io", "roles", "shop", "r" },
	{ "rbac.authorization.k8s.io", "clusterroles", "", "cr" },
	{ "", "serviceaccounts", "shop", "sa" },
	{ "", "persistentvolumeclaims", "shop", "data" },
	{ "", "persistentvolumes", "", "pv" },
	{ "storage.k8s.io", "storageclasses", "", "fast" },
	{ "", "namespaces", "", "shop" },
	{ "apiextensions.k8s.io", "customresourcedefinitions", "", "widgets.fixtures.stowage.dev" },
	{ "apps", "daemonsets", "shop", "agent" },
	{ "batch", "jobs", "shop", "once" },
	{ "apps", "replicasets", "shop", "rs" },
};

static const char *const expected[] = {
	"customresourcedefinitions", "namespaces", "storageclasses", "persistentvolumes",
	"persistentvolumeclaims", "secrets", "configmaps", "configmaps", "serviceaccounts", "roles",
	"clusterroles", "rolebindings", "clusterrolebindings", "services", "deployments",
	"statefulsets", "daemonsets", "cronjobs", "jobs", "replicasets", "pods",
	"widgets", "ingresses",
};

static void test_mixed_set_in_dependency_order(void)
{
	size_t n = sizeof mixed / sizeof mixed[0], idx[sizeof mixed / sizeof mixed[0]];

	CHECK_INTEQ(n, sizeof expected / sizeof expected[0]);
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	restore_order_sort(mixed, idx, n);
	for (size_t i = 0; i < n; i++)
		CHECK_STREQ(mixed[idx[i]].resource, expected[i]);
	/* within a type, by name: "a" before "b" */
	CHECK_STREQ(mixed[idx[6]].name, "a");
	CHECK_STREQ(mixed[idx[7]].name, "b");
}

static void test_order_does_not_depend_on_input_order(void)
{
	size_t n = sizeof mixed / sizeof mixed[0], fwd[sizeof mixed / sizeof mixed[0]], rev[sizeof mixed / sizeof mixed[0]];

	for (size_t i = 0; i < n; i++) {
		fwd[i] = i;
		rev[i] = n - 1 - i;
	}
	restore_order_sort(mixed, fwd, n);
	restore_order_sort(mixed, rev, n);
	for (size_t i = 0; i < n; i++)
		CHECK_INTEQ(fwd[i], rev[i]);
}

static void test_tiers(void)
{
	CHECK_INTEQ(restore_tier_of("apiextensions.k8s.io", "customresourcedefinitions"), RESTORE_TIER_CRDS);
	CHECK_INTEQ(restore_tier_of("", "pods"), RESTORE_TIER_WORKLOADS);
	CHECK_INTEQ(restore_tier_of("example.com", "pods"), RESTORE_TIER_REST);	/* a CRD named like a core type */
	CHECK_INTEQ(restore_tier_of("fixtures.stowage.dev", "widgets"), RESTORE_TIER_REST);
	CHECK_STREQ(restore_tier_name(RESTORE_TIER_CRDS), "crds");
	CHECK_STREQ(restore_tier_name(RESTORE_TIER_REST), "rest");
	CHECK_STREQ(restore_type_find("", "configmaps")->kind, "ConfigMap");
	CHECK(restore_type_find("", "widgets") == NULL);
}

int main(void)
{
	RUN(test_mixed_set_in_dependency_order);
	RUN(test_order_does_not_depend_on_input_order);
	RUN(test_tiers);
	return check_done();
}
