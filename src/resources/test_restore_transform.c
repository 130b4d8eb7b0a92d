/* restore_transform: each rule on small objects, as a backup holds them. */
#include "check.h"
#include "cjson_steps.h"
#include "restore_transform.h"
#include "strbuf.h"

#include <stdlib.h>

static cJSON *parse(const char *json)
{
	cJSON *o = cJSON_Parse(json);

	if (!o) {
		printf("# bad fixture: %s\n", json);
		abort();
	}
	return o;
}

/* The value at a dotted path ("metadata.labels.x"); array items by index ("spec.ports.0"). */
static const cJSON *at(const cJSON *o, const char *path)
{
	char *copy = xstrdup(path), *save = NULL;

	for (char *k = strtok_r(copy, ".", &save); k && o; k = strtok_r(NULL, ".", &save)) {
		if (cJSON_IsArray(o))
			o = cJSON_GetArrayItem(o, atoi(k));
		else
			o = cJSON_GetObjectItemCaseSensitive(o, k);
	}
	free(copy);
	return o;
}

static const char *str_at(const cJSON *o, const char *path)
{
	return cJSON_GetStringValue(at(o, path));
}

/* slash-separated, because label and annotation keys hold dots */
static const char *key_at(const cJSON *o, const char *a, const char *b, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(at(at(o, a), b), key));
}

struct warnings {
	int n;
	char last[512];
};

static void collect_warning(const char *message, void *ud)
{
	struct warnings *w = ud;

	w->n++;
	snprintf(w->last, sizeof w->last, "%s", message);
}

static struct restore_transform base(void)
{
	static cJSON *ns_map;

	if (!ns_map)
		ns_map = parse("{\"shop\": \"shop-copy\"}");
	return (struct restore_transform){ .namespace_map = ns_map, .backup_name = "nightly-1", .restore_id = "42" };
}

static void test_strips_server_fields(void)
{
	struct restore_transform t = base();
	cJSON *o = parse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\",\"namespace\":\"other\","
			 "\"uid\":\"u1\",\"resourceVersion\":\"7\",\"creationTimestamp\":\"2024-01-01T00:00:00Z\","
			 "\"managedFields\":[{}],\"generation\":3,\"selfLink\":\"/x\",\"deletionTimestamp\":\"t\","
			 "\"deletionGracePeriodSeconds\":30,\"annotations\":{\"keep\":\"me\"}},"
			 "\"data\":{\"k\":\"v\"},\"status\":{\"phase\":\"x\"}}");

	restore_transform_apply(&t, "", "configmaps", o);
	const cJSON *meta = at(o, "metadata");
	CHECK_INTEQ(cJSON_GetArraySize(meta), 4);	/* name, namespace, annotations, labels */
	CHECK(!at(meta, "uid") && !at(meta, "resourceVersion") && !at(meta, "creationTimestamp"));
	CHECK(!at(meta, "managedFields") && !at(meta, "generation") && !at(meta, "selfLink"));
	CHECK(!at(meta, "deletionTimestamp") && !at(meta, "deletionGracePeriodSeconds"));
	CHECK(!at(o, "status"));
	CHECK_STREQ(str_at(o, "data.k"), "v");
	CHECK_STREQ(str_at(o, "metadata.annotations.keep"), "me");
	CHECK_STREQ(str_at(o, "metadata.namespace"), "other");	/* not in the map: unchanged */
	cJSON_Delete(o);
}

static void test_labels_added(void)
{
	struct restore_transform t = base();
	cJSON *o = parse("{\"kind\":\"Secret\",\"metadata\":{\"name\":\"s\",\"labels\":{\"app\":\"shop\","
			 "\"stowage.dev/restore\":\"1\"}}}");
	cJSON *bare = parse("{\"kind\":\"Namespace\",\"metadata\":{\"name\":\"n\",\"labels\":\"not an object\"}}");
	char v[64];

	restore_transform_apply(&t, "", "secrets", o);
	CHECK_STREQ(key_at(o, "metadata", "labels", "app"), "shop");
	CHECK_STREQ(key_at(o, "metadata", "labels", RESTORE_LABEL_BACKUP), "nightly-1");
	CHECK_STREQ(key_at(o, "metadata", "labels", RESTORE_LABEL_RESTORE), "42");
	CHECK_INTEQ(cJSON_GetArraySize(at(o, "metadata.labels")), 3);
	restore_transform_apply(&t, "", "namespaces", bare);
	CHECK_STREQ(key_at(bare, "metadata", "labels", RESTORE_LABEL_BACKUP), "nightly-1");

	/* a backup name too long for a label value: 57 characters and a hash, distinct names apart */
	const char *long1 = "a-very-long-backup-name.with.dots-that-goes-on-and-on-past-63.characters-1";
	const char *long2 = "a-very-long-backup-name.with.dots-that-goes-on-and-on-past-63.characters-2";
	char v2[64];
	restore_label_value(long1, v);
	restore_label_value(long2, v2);
	CHECK_INTEQ(strlen(v), 63);
	CHECK(strncmp(v, long1, 57) == 0);
	CHECK(strcmp(v, v2) != 0);
	restore_label_value("-bad start", v);
	CHECK(v[0] != '-' && strchr(v, ' ') == NULL);
	cJSON_Delete(o);
	cJSON_Delete(bare);
}

static void test_namespace_map_everywhere(void)
{
	struct restore_transform t = base();
	cJSON *ns = parse("{\"kind\":\"Namespace\",\"metadata\":{\"name\":\"shop\",\"labels\":{\"kubernetes.io/metadata.name\":\"shop\"}}}");
	cJSON *cm = parse("{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\",\"namespace\":\"shop\",\"annotations\":"
			  "{\"meta.helm.sh/release-namespace\":\"shop\",\"kubernetes.io/service-account.namespace\":\"shop\"}}}");
	cJSON *rb = parse("{\"kind\":\"RoleBinding\",\"metadata\":{\"name\":\"r\",\"namespace\":\"shop\"},"
			  "\"subjects\":[{\"kind\":\"ServiceAccount\",\"name\":\"a\",\"namespace\":\"shop\"},"
			  "{\"kind\":\"ServiceAccount\",\"name\":\"b\",\"namespace\":\"elsewhere\"},{\"kind\":\"User\",\"name\":\"u\"}]}");
	cJSON *crb = parse("{\"kind\":\"ClusterRoleBinding\",\"metadata\":{\"name\":\"r\"},"
			   "\"subjects\":[{\"kind\":\"ServiceAccount\",\"name\":\"a\",\"namespace\":\"shop\"}]}");
	cJSON *pv = parse("{\"kind\":\"PersistentVolume\",\"metadata\":{\"name\":\"pv1\"},\"spec\":{\"claimRef\":"
			  "{\"namespace\":\"shop\",\"name\":\"data\",\"uid\":\"u\",\"resourceVersion\":\"9\"}}}");
	cJSON *np = parse("{\"kind\":\"NetworkPolicy\",\"metadata\":{\"name\":\"n\",\"namespace\":\"shop\"},\"spec\":{"
			  "\"ingress\":[{\"from\":[{\"namespaceSelector\":{\"matchLabels\":{\"kubernetes.io/metadata.name\":\"shop\"}}}]}],"
			  "\"egress\":[{\"to\":[{\"namespaceSelector\":{\"matchLabels\":{\"kubernetes.io/metadata.name\":\"shop\"}}}]}]}}");

	restore_transform_apply(&t, "", "namespaces", ns);
	CHECK_STREQ(str_at(ns, "metadata.name"), "shop-copy");
	CHECK_STREQ(key_at(ns, "metadata", "labels", "kubernetes.io/metadata.name"), "shop-copy");
	restore_transform_apply(&t, "", "configmaps", cm);
	CHECK_STREQ(str_at(cm, "metadata.namespace"), "shop-copy");
	CHECK_STREQ(key_at(cm, "metadata", "annotations", "meta.helm.sh/release-namespace"), "shop-copy");
	CHECK_STREQ(key_at(cm, "metadata", "annotations", "kubernetes.io/service-account.namespace"), "shop-copy");
	restore_transform_apply(&t, "rbac.authorization.k8s.io", "rolebindings", rb);
	CHECK_STREQ(str_at(rb, "metadata.namespace"), "shop-copy");
	CHECK_STREQ(str_at(rb, "subjects.0.namespace"), "shop-copy");
	CHECK_STREQ(str_at(rb, "subjects.1.namespace"), "elsewhere");
	CHECK(!at(rb, "subjects.2.namespace"));
	restore_transform_apply(&t, "rbac.authorization.k8s.io", "clusterrolebindings", crb);
	CHECK_STREQ(str_at(crb, "subjects.0.namespace"), "shop-copy");
	CHECK(!at(crb, "metadata.namespace"));
	restore_transform_apply(&t, "", "persistentvolumes", pv);
	CHECK_STREQ(str_at(pv, "spec.claimRef.namespace"), "shop-copy");
	CHECK_STREQ(str_at(pv, "spec.claimRef.name"), "data");
	CHECK(!at(pv, "spec.claimRef.uid") && !at(pv, "spec.claimRef.resourceVersion"));
	restore_transform_apply(&t, "networking.k8s.io", "networkpolicies", np);
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(at(np, "spec.ingress.0.from.0.namespaceSelector.matchLabels"),
							     "kubernetes.io/metadata.name")), "shop-copy");
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(at(np, "spec.egress.0.to.0.namespaceSelector.matchLabels"),
							     "kubernetes.io/metadata.name")), "shop-copy");
	cJSON_Delete(ns);
	cJSON_Delete(cm);
	cJSON_Delete(rb);
	cJSON_Delete(crb);
	cJSON_Delete(pv);
	cJSON_Delete(np);
}

static const char *class_after(const struct restore_transform *t, const char *resource)
{
	static char out[3][128];
	cJSON *o;

	if (strcmp(resource, "persistentvolumeclaims") == 0)
		o = parse("{\"kind\":\"PersistentVolumeClaim\",\"metadata\":{\"name\":\"d\",\"namespace\":\"x\",\"annotations\":"
			  "{\"volume.beta.kubernetes.io/storage-class\":\"fast-ssd\"}},\"spec\":{\"storageClassName\":\"fast-ssd\"}}");
	else if (strcmp(resource, "persistentvolumes") == 0)
		o = parse("{\"kind\":\"PersistentVolume\",\"metadata\":{\"name\":\"p\"},\"spec\":{\"storageClassName\":\"fast-ssd\"}}");
	else
		o = parse("{\"kind\":\"StatefulSet\",\"metadata\":{\"name\":\"s\",\"namespace\":\"x\"},\"spec\":{\"volumeClaimTemplates\":"
			  "[{\"metadata\":{\"name\":\"data\"},\"spec\":{\"storageClassName\":\"fast-ssd\"}}]}}");
	restore_transform_apply(t, strcmp(resource, "statefulsets") == 0 ? "apps" : "", resource, o);
	if (strcmp(resource, "statefulsets") == 0)
		snprintf(out[0], sizeof out[0], "%s", str_at(o, "spec.volumeClaimTemplates.0.spec.storageClassName"));
	else
		snprintf(out[0], sizeof out[0], "%s", str_at(o, "spec.storageClassName"));
	if (strcmp(resource, "persistentvolumeclaims") == 0 &&
	    strcmp(out[0], key_at(o, "metadata", "annotations", "volume.beta.kubernetes.io/storage-class")) != 0)
		snprintf(out[0], sizeof out[0], "annotation disagrees: %s", key_at(o, "metadata", "annotations",
										  "volume.beta.kubernetes.io/storage-class"));
	cJSON_Delete(o);
	return out[0];
}

static void test_storage_class_precedence(void)
{
	struct restore_transform t = base();
	cJSON *plan = parse("{\"fast-ssd\": \"standard-nfs\"}");
	cJSON *cluster = parse("{\"fast-ssd\": \"from-configmap\", \"other\": \"x\"}");
	const char *resources[] = { "persistentvolumeclaims", "persistentvolumes", "statefulsets" };

	for (int i = 0; i < 3; i++) {
		t.storage_class_map = NULL;
		t.cluster_class_map = NULL;
		CHECK_STREQ(class_after(&t, resources[i]), "fast-ssd");		/* no map */
		t.cluster_class_map = cluster;
		CHECK_STREQ(class_after(&t, resources[i]), "from-configmap");	/* the ConfigMap */
		t.storage_class_map = plan;
		CHECK_STREQ(class_after(&t, resources[i]), "standard-nfs");	/* the plan wins */
	}
	/* a plan map that does not name the class leaves the ConfigMap's word */
	cJSON *unrelated = parse("{\"slow\": \"standard-nfs\"}");
	t.storage_class_map = unrelated;
	CHECK_STREQ(restore_storage_class_target(&t, "fast-ssd"), "from-configmap");
	CHECK_STREQ(restore_storage_class_target(&t, "gold"), "gold");
	cJSON_Delete(plan);
	cJSON_Delete(cluster);
	cJSON_Delete(unrelated);
}

static void test_claim_class_choice_wins(void)
{
	struct restore_transform t = base();
	cJSON *plan = parse("{\"fast-ssd\": \"standard-nfs\"}");
	cJSON *choice = parse("{\"shop/data\": \"gold\"}");
	cJSON *data = parse("{\"kind\":\"PersistentVolumeClaim\",\"metadata\":{\"name\":\"data\",\"namespace\":\"shop\","
			    "\"annotations\":{\"volume.beta.kubernetes.io/storage-class\":\"fast-ssd\"}},"
			    "\"spec\":{\"storageClassName\":\"fast-ssd\"}}");
	cJSON *logs = parse("{\"kind\":\"PersistentVolumeClaim\",\"metadata\":{\"name\":\"logs\",\"namespace\":\"shop\"},"
			    "\"spec\":{\"storageClassName\":\"fast-ssd\"}}");

	t.storage_class_map = plan;
	t.claim_class_map = choice;
	restore_transform_apply(&t, "", "persistentvolumeclaims", data);
	restore_transform_apply(&t, "", "persistentvolumeclaims", logs);
	CHECK_STREQ(str_at(data, "spec.storageClassName"), "gold");			/* chosen for this claim */
	CHECK(!cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
		      cJSON_GetObjectItemCaseSensitive(data, "metadata"), "annotations"), "volume.beta.kubernetes.io/storage-class"));
	CHECK_STREQ(str_at(logs, "spec.storageClassName"), "standard-nfs");		/* not chosen: the map */
	cJSON_Delete(plan);
	cJSON_Delete(choice);
	cJSON_Delete(data);
	cJSON_Delete(logs);
}

/* A claim whose volume is not restored is provisioned anew, unless the plan names a volume for it. */
static void test_claim_bound_to_the_volume_the_plan_names(void)
{
	struct restore_transform t = base();
	cJSON *pick = parse("{\"shop/data\": \"spare-volume-1\"}");
	cJSON *data = parse("{\"kind\":\"PersistentVolumeClaim\",\"metadata\":{\"name\":\"data\",\"namespace\":\"shop\"},"
			    "\"spec\":{\"storageClassName\":\"fast-ssd\",\"volumeName\":\"shop-data\"}}");
	cJSON *logs = parse("{\"kind\":\"PersistentVolumeClaim\",\"metadata\":{\"name\":\"logs\",\"namespace\":\"shop\"},"
			    "\"spec\":{\"storageClassName\":\"fast-ssd\",\"volumeName\":\"shop-logs\"}}");

	t.claim_volume_map = pick;
	restore_transform_apply(&t, "", "persistentvolumeclaims", data);
	restore_transform_apply(&t, "", "persistentvolumeclaims", logs);
	CHECK_STREQ(str_at(data, "spec.volumeName"), "spare-volume-1");
	CHECK(!at(logs, "spec.volumeName"));		/* its old volume is not restored: a new one */
	cJSON_Delete(pick);
	cJSON_Delete(data);
	cJSON_Delete(logs);
}

/* No restored StorageClass becomes the target's default, unless asked. */
static void test_storage_class_never_default(void)
{
	struct restore_transform t = base();
	const char *json = "{\"kind\":\"StorageClass\",\"metadata\":{\"name\":\"gold\",\"annotations\":{"
			   "\"storageclass.kubernetes.io/is-default-class\":\"true\","
			   "\"storageclass.beta.kubernetes.io/is-default-class\":\"true\",\"team\":\"storage\"}},"
			   "\"provisioner\":\"example.com/gold\"}";
	cJSON *sc = parse(json), *kept = parse(json);

	restore_transform_apply(&t, "storage.k8s.io", "storageclasses", sc);
	CHECK(!key_at(sc, "metadata", "annotations", "storageclass.kubernetes.io/is-default-class"));
	CHECK(!key_at(sc, "metadata", "annotations", "storageclass.beta.kubernetes.io/is-default-class"));
	CHECK_STREQ(key_at(sc, "metadata", "annotations", "team"), "storage");
	t.keep_default_class = 1;
	restore_transform_apply(&t, "storage.k8s.io", "storageclasses", kept);
	CHECK_STREQ(key_at(kept, "metadata", "annotations", "storageclass.kubernetes.io/is-default-class"), "true");
	cJSON_Delete(sc);
	cJSON_Delete(kept);
}

/* A class is mapped wherever one is named: StatefulSet claim templates and ephemeral volumes. */
static void test_class_mapped_in_templates(void)
{
	struct restore_transform t = base();
	cJSON *plan = parse("{\"fast-ssd\": \"standard-nfs\"}");
	cJSON *choice = parse("{\"shop/data-mysql-0\": \"gold\", \"shop/data-mysql-1\": \"gold\"}");
	cJSON *sts = parse("{\"kind\":\"StatefulSet\",\"metadata\":{\"name\":\"mysql\",\"namespace\":\"shop\"},"
			   "\"spec\":{\"volumeClaimTemplates\":[{\"metadata\":{\"name\":\"data\"},\"spec\":{\"storageClassName\":\"fast-ssd\"}},"
			   "{\"metadata\":{\"name\":\"logs\"},\"spec\":{\"storageClassName\":\"fast-ssd\"}}],"
			   "\"template\":{\"spec\":{\"volumes\":[{\"name\":\"scratch\",\"ephemeral\":{\"volumeClaimTemplate\":"
			   "{\"spec\":{\"storageClassName\":\"fast-ssd\"}}}}]}}}}");
	cJSON *cron = parse("{\"kind\":\"CronJob\",\"metadata\":{\"name\":\"r\",\"namespace\":\"shop\"},\"spec\":{\"jobTemplate\":"
			    "{\"spec\":{\"template\":{\"spec\":{\"volumes\":[{\"name\":\"tmp\",\"ephemeral\":{\"volumeClaimTemplate\":"
			    "{\"spec\":{\"storageClassName\":\"fast-ssd\"}}}}]}}}}}}");

	t.storage_class_map = plan;
	t.claim_class_map = choice;
	restore_transform_apply(&t, "apps", "statefulsets", sts);
	restore_transform_apply(&t, "batch", "cronjobs", cron);
	CHECK_STREQ(str_at(sts, "spec.volumeClaimTemplates.0.spec.storageClassName"), "gold");	/* its claims' choice */
	CHECK_STREQ(str_at(sts, "spec.volumeClaimTemplates.1.spec.storageClassName"), "standard-nfs");	/* the map */
	CHECK_STREQ(str_at(sts, "spec.template.spec.volumes.0.ephemeral.volumeClaimTemplate.spec.storageClassName"),
		    "standard-nfs");
	CHECK_STREQ(str_at(cron, "spec.jobTemplate.spec.template.spec.volumes.0.ephemeral.volumeClaimTemplate.spec.storageClassName"),
		    "standard-nfs");
	cJSON_Delete(plan);
	cJSON_Delete(choice);
	cJSON_Delete(sts);
	cJSON_Delete(cron);
}

static void test_finished_jobs(void)
{
	cJSON *done = parse("{\"kind\":\"Job\",\"status\":{\"conditions\":[{\"type\":\"SuccessCriteriaMet\",\"status\":\"True\"},"
			    "{\"type\":\"Complete\",\"status\":\"True\"}]}}");
	cJSON *failed = parse("{\"kind\":\"Job\",\"status\":{\"conditions\":[{\"type\":\"Failed\",\"status\":\"True\"}]}}");
	cJSON *running = parse("{\"kind\":\"Job\",\"status\":{\"active\":1,\"conditions\":[{\"type\":\"Complete\",\"status\":\"False\"}]}}");

	CHECK_STREQ(restore_job_finished("batch", "jobs", done), "Complete");
	CHECK_STREQ(restore_job_finished("batch", "jobs", failed), "Failed");
	CHECK(restore_job_finished("batch", "jobs", running) == NULL);
	CHECK(restore_job_finished("", "configmaps", done) == NULL);
	cJSON_Delete(done);
	cJSON_Delete(failed);
	cJSON_Delete(running);
}

static int ports_free_above_30100(long port, void *ud)
{
	(void)ud;
	return port > 30100;
}

static void test_service_ips_and_node_ports(void)
{
	struct restore_transform t = base();
	struct warnings w = { 0 };
	cJSON *svc = parse("{\"kind\":\"Service\",\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\"},\"spec\":{\"type\":\"NodePort\","
			   "\"clusterIP\":\"10.96.0.12\",\"clusterIPs\":[\"10.96.0.12\"],\"healthCheckNodePort\":31999,"
			   "\"ports\":[{\"port\":80,\"nodePort\":30080},{\"port\":443,\"nodePort\":30443}]}}");
	cJSON *headless = parse("{\"kind\":\"Service\",\"metadata\":{\"name\":\"db\"},\"spec\":{\"clusterIP\":\"None\","
				"\"clusterIPs\":[\"None\"],\"ports\":[{\"port\":3306}]}}");

	t.node_port_take = ports_free_above_30100;
	t.warn = collect_warning;
	t.warn_ud = &w;
	restore_transform_apply(&t, "", "services", svc);
	CHECK(!at(svc, "spec.clusterIP") && !at(svc, "spec.clusterIPs") && !at(svc, "spec.healthCheckNodePort"));
	CHECK(!at(svc, "spec.ports.0.nodePort"));			/* in use: dropped */
	CHECK_INTEQ(at(svc, "spec.ports.1.nodePort")->valuedouble, 30443);	/* free: kept */
	CHECK_INTEQ(w.n, 1);
	CHECK(strstr(w.last, "shop-copy/web") && strstr(w.last, "30080"));
	/* a node port no port can be (from a tampered or broken backup) is dropped, not converted */
	cJSON *odd = parse("{\"kind\":\"Service\",\"metadata\":{\"name\":\"odd\"},\"spec\":{"
			   "\"ports\":[{\"port\":80,\"nodePort\":3e82},{\"port\":81,\"nodePort\":-5}]}}");
	restore_transform_apply(&t, "", "services", odd);
	CHECK(!at(odd, "spec.ports.0.nodePort") && !at(odd, "spec.ports.1.nodePort"));
	cJSON_Delete(odd);
	restore_transform_apply(&t, "", "services", headless);
	CHECK_STREQ(str_at(headless, "spec.clusterIP"), "None");
	CHECK_STREQ(str_at(headless, "spec.clusterIPs.0"), "None");
	cJSON_Delete(svc);
	cJSON_Delete(headless);
}

static void test_claims_rebind_only_to_restored_volumes(void)
{
	struct restore_transform t = base();
	struct restore_names volumes = { 0 };
	const char *json = "{\"kind\":\"PersistentVolumeClaim\",\"metadata\":{\"name\":\"d\",\"namespace\":\"shop\",\"annotations\":{"
			   "\"pv.kubernetes.io/bind-completed\":\"yes\",\"pv.kubernetes.io/bound-by-controller\":\"yes\","
			   "\"volume.kubernetes.io/selected-node\":\"n1\",\"keep\":\"1\"}},\"spec\":{\"volumeName\":\"%s\"}}";
	char buf[1024];

	restore_names_add(&volumes, "pv-restored");
	restore_names_add(&volumes, "another");
	restore_names_seal(&volumes);
	t.restored_volumes = &volumes;
	snprintf(buf, sizeof buf, json, "pv-restored");
	cJSON *rebinds = parse(buf);
	snprintf(buf, sizeof buf, json, "pv-elsewhere");
	cJSON *unbound = parse(buf);
	restore_transform_apply(&t, "", "persistentvolumeclaims", rebinds);
	restore_transform_apply(&t, "", "persistentvolumeclaims", unbound);
	CHECK_STREQ(str_at(rebinds, "spec.volumeName"), "pv-restored");
	CHECK(!at(unbound, "spec.volumeName"));
	CHECK(!key_at(rebinds, "metadata", "annotations", "pv.kubernetes.io/bind-completed"));
	CHECK(!key_at(rebinds, "metadata", "annotations", "pv.kubernetes.io/bound-by-controller"));
	CHECK(!key_at(rebinds, "metadata", "annotations", "volume.kubernetes.io/selected-node"));
	CHECK_STREQ(key_at(rebinds, "metadata", "annotations", "keep"), "1");
	cJSON_Delete(rebinds);
	cJSON_Delete(unbound);
	restore_names_free(&volumes);
}

static void test_owner_references(void)
{
	struct restore_transform t = base();
	struct restore_names uids = { 0 };
	cJSON *o = parse("{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\",\"ownerReferences\":["
			 "{\"kind\":\"Widget\",\"name\":\"w\",\"uid\":\"restored-uid\"},"
			 "{\"kind\":\"Thing\",\"name\":\"t\",\"uid\":\"live-uid\"}]}}");
	cJSON *only = parse("{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\",\"ownerReferences\":["
			    "{\"kind\":\"Widget\",\"name\":\"w\",\"uid\":\"restored-uid\"}]}}");

	for (int i = 0; i < 40; i++) {
		char u[32];
		snprintf(u, sizeof u, "uid-%02d", i);
		restore_names_add(&uids, u);
	}
	restore_names_add(&uids, "restored-uid");
	restore_names_seal(&uids);
	t.restored_uids = &uids;
	restore_transform_apply(&t, "", "configmaps", o);
	CHECK_INTEQ(cJSON_GetArraySize(at(o, "metadata.ownerReferences")), 1);
	CHECK_STREQ(str_at(o, "metadata.ownerReferences.0.uid"), "live-uid");
	restore_transform_apply(&t, "", "configmaps", only);
	CHECK(!at(only, "metadata.ownerReferences"));
	CHECK(restore_names_has(&uids, "uid-17") && !restore_names_has(&uids, "uid-40"));
	cJSON_Delete(o);
	cJSON_Delete(only);
	restore_names_free(&uids);
}

/* A tenant's object can carry millions of owner references ("{}" is three bytes of 8 MiB): they
 * are removed in one walk, not by index (each index walks the list again: hours of CPU). Counted,
 * not timed; the references left keep their order. */
static void test_owner_references_removed_in_one_walk(void)
{
	enum { N = 4000 };
	struct restore_transform t = base();
	struct restore_names uids = { 0 };
	cJSON *o = parse("{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\",\"ownerReferences\":[]}}");
	cJSON *refs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "metadata"), "ownerReferences");

	for (int i = 0; i < N; i++) {
		char u[32];
		snprintf(u, sizeof u, "%s-%d", i % 2 ? "live" : "restored", i / 2);
		cJSON *ref = cJSON_CreateObject();
		cJSON_AddStringToObject(ref, "uid", u);
		cJSON_AddItemToArray(refs, ref);
		if (i % 2 == 0)
			restore_names_add(&uids, u);
	}
	restore_names_seal(&uids);
	t.restored_uids = &uids;
	cjson_steps = 0;
	restore_transform_apply(&t, "", "configmaps", o);
	CHECK(cjson_steps <= N);	/* by index: N * N / 2 */
	CHECK_INTEQ(cJSON_GetArraySize(refs), N / 2);
	CHECK_STREQ(str_at(o, "metadata.ownerReferences.0.uid"), "live-0");
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(refs->child->prev, "uid")), "live-1999");
	cJSON_Delete(o);
	restore_names_free(&uids);
}

static void test_skipped_objects(void)
{
	cJSON *owned_pod = parse("{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"ownerReferences\":[{\"kind\":\"ReplicaSet\","
				 "\"name\":\"rs\",\"uid\":\"u\",\"controller\":true}]}}");
	cJSON *bare_pod = parse("{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"ownerReferences\":[{\"kind\":\"X\",\"name\":\"x\","
				"\"uid\":\"u\"}]},\"spec\":{\"nodeName\":\"source-node-0\",\"priority\":0}}");
	cJSON *rs_deploy = parse("{\"kind\":\"ReplicaSet\",\"metadata\":{\"name\":\"r\",\"ownerReferences\":[{\"kind\":\"Deployment\","
				 "\"name\":\"d\",\"uid\":\"u\",\"controller\":true}]}}");
	cJSON *rs_alone = parse("{\"kind\":\"ReplicaSet\",\"metadata\":{\"name\":\"r\"}}");
	cJSON *job_cron = parse("{\"kind\":\"Job\",\"metadata\":{\"name\":\"j\",\"ownerReferences\":[{\"kind\":\"CronJob\","
				"\"name\":\"c\",\"uid\":\"u\",\"controller\":true}]}}");
	cJSON *job_alone = parse("{\"kind\":\"Job\",\"metadata\":{\"name\":\"j\"},\"spec\":{\"selector\":{\"matchLabels\":"
				 "{\"batch.kubernetes.io/controller-uid\":\"old\"}},\"template\":{\"metadata\":{\"labels\":"
				 "{\"batch.kubernetes.io/controller-uid\":\"old\",\"controller-uid\":\"old\",\"job-name\":\"j\"}}}}}");
	cJSON *any = parse("{\"kind\":\"X\",\"metadata\":{\"name\":\"e\"}}");
	struct restore_transform t = base();

	CHECK(restore_skip_reason("", "pods", owned_pod) != NULL);
	CHECK(restore_skip_reason("", "pods", bare_pod) == NULL);	/* an owner, but not a controller */
	CHECK(restore_skip_reason("apps", "replicasets", rs_deploy) != NULL);
	CHECK(restore_skip_reason("apps", "replicasets", rs_alone) == NULL);
	CHECK(restore_skip_reason("batch", "jobs", job_cron) != NULL);
	CHECK(restore_skip_reason("batch", "jobs", job_alone) == NULL);
	CHECK(restore_skip_reason("apps", "controllerrevisions", job_cron) != NULL);	/* a controller owns it */
	CHECK(restore_skip_reason("apps", "controllerrevisions", any) == NULL);
	CHECK(restore_skip_reason("", "endpoints", any) != NULL);
	CHECK(restore_skip_reason("discovery.k8s.io", "endpointslices", any) != NULL);
	CHECK(restore_skip_reason("", "events", any) != NULL);
	CHECK(restore_skip_reason("events.k8s.io", "events", any) != NULL);
	CHECK(restore_skip_reason("", "configmaps", any) == NULL);
	CHECK(restore_skip_reason("example.com", "endpoints", any) == NULL);
	/* what every cluster makes itself: never restored over the target's own */
	cJSON *view = parse("{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":\"view\",\"labels\":"
			    "{\"kubernetes.io/bootstrapping\":\"rbac-defaults\"}}}");
	cJSON *critical = parse("{\"kind\":\"PriorityClass\",\"metadata\":{\"name\":\"system-node-critical\"}}");
	cJSON *local_api = parse("{\"kind\":\"APIService\",\"metadata\":{\"name\":\"v1.apps\"},\"spec\":{\"group\":\"apps\"}}");
	cJSON *served_api = parse("{\"kind\":\"APIService\",\"metadata\":{\"name\":\"v1beta1.metrics.k8s.io\"},"
				  "\"spec\":{\"service\":{\"namespace\":\"kube-system\",\"name\":\"metrics\"}}}");
	CHECK(restore_skip_reason("rbac.authorization.k8s.io", "clusterroles", view) != NULL);
	CHECK(restore_skip_reason("rbac.authorization.k8s.io", "clusterroles", any) == NULL);
	CHECK(restore_skip_reason("scheduling.k8s.io", "priorityclasses", critical) != NULL);
	CHECK(restore_skip_reason("scheduling.k8s.io", "priorityclasses", any) == NULL);
	CHECK(restore_skip_reason("apiregistration.k8s.io", "apiservices", local_api) != NULL);
	CHECK(restore_skip_reason("apiregistration.k8s.io", "apiservices", served_api) == NULL);
	cJSON_Delete(view);
	cJSON_Delete(critical);
	cJSON_Delete(local_api);
	cJSON_Delete(served_api);

	restore_transform_apply(&t, "", "pods", bare_pod);
	CHECK(!at(bare_pod, "spec.nodeName") && !at(bare_pod, "spec.priority"));
	restore_transform_apply(&t, "batch", "jobs", job_alone);
	CHECK(!at(job_alone, "spec.selector"));
	CHECK(!key_at(job_alone, "spec", "template", "metadata") ||
	      !cJSON_GetObjectItem(at(job_alone, "spec.template.metadata.labels"), "controller-uid"));
	CHECK(!cJSON_GetObjectItem(at(job_alone, "spec.template.metadata.labels"), "batch.kubernetes.io/controller-uid"));
	CHECK(cJSON_GetObjectItem(at(job_alone, "spec.template.metadata.labels"), "job-name"));
	cJSON_Delete(owned_pod);
	cJSON_Delete(bare_pod);
	cJSON_Delete(rs_deploy);
	cJSON_Delete(rs_alone);
	cJSON_Delete(job_cron);
	cJSON_Delete(job_alone);
	cJSON_Delete(any);
}

static void test_plan_maps_checked(void)
{
	char err[256];
	cJSON *good = parse("{\"shop\": \"shop-2\"}");
	cJSON *bad_key = parse("{\"Shop\": \"shop-2\"}");
	cJSON *bad_value = parse("{\"shop\": 3}");
	cJSON *dotted = parse("{\"fast.ssd\": \"std.nfs\"}");
	cJSON *array = parse("[]");

	CHECK_INTEQ(restore_map_check(good, "namespace_map", 1, err, sizeof err), 0);
	CHECK_INTEQ(restore_map_check(NULL, "namespace_map", 1, err, sizeof err), 0);
	CHECK_INTEQ(restore_map_check(bad_key, "namespace_map", 1, err, sizeof err), -1);
	CHECK(strstr(err, "namespace_map: \"Shop\" is not a namespace name") != NULL);
	CHECK_INTEQ(restore_map_check(bad_value, "namespace_map", 1, err, sizeof err), -1);
	CHECK(strstr(err, "the value for \"shop\"") != NULL);
	CHECK_INTEQ(restore_map_check(dotted, "namespace_map", 1, err, sizeof err), -1);
	CHECK_INTEQ(restore_map_check(dotted, "storage_class_map", 0, err, sizeof err), 0);
	CHECK_INTEQ(restore_map_check(array, "storage_class_map", 0, err, sizeof err), -1);
	CHECK_STREQ(err, "storage_class_map: must be an object of names");
	cJSON_Delete(good);
	cJSON_Delete(bad_key);
	cJSON_Delete(bad_value);
	cJSON_Delete(dotted);
	cJSON_Delete(array);
}

static void test_names_seal_drops_repeats(void)
{
	struct restore_names s = { 0 };

	for (int round = 0; round < 3; round++) {
		restore_names_add(&s, "shop");
		restore_names_add(&s, "blog");
		restore_names_add(&s, "shop");
	}
	restore_names_seal(&s);
	CHECK_INTEQ((int)s.n, 2);
	CHECK_STREQ(s.v[0], "blog");
	CHECK_STREQ(s.v[1], "shop");
	CHECK(restore_names_has(&s, "shop") && !restore_names_has(&s, "cart"));
	restore_names_free(&s);
	restore_names_seal(&s);	/* an empty set too */
	CHECK_INTEQ((int)s.n, 0);
}

int main(void)
{
	RUN(test_names_seal_drops_repeats);
	RUN(test_strips_server_fields);
	RUN(test_claim_class_choice_wins);
	RUN(test_claim_bound_to_the_volume_the_plan_names);
	RUN(test_storage_class_never_default);
	RUN(test_class_mapped_in_templates);
	RUN(test_finished_jobs);
	RUN(test_labels_added);
	RUN(test_namespace_map_everywhere);
	RUN(test_storage_class_precedence);
	RUN(test_service_ips_and_node_ports);
	RUN(test_claims_rebind_only_to_restored_volumes);
	RUN(test_owner_references);
	RUN(test_owner_references_removed_in_one_walk);
	RUN(test_skipped_objects);
	RUN(test_plan_maps_checked);
	return check_done();
}
