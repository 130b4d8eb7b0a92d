/* The Kubernetes client against a real kube-apiserver (scripts/testenv's "source" cluster,
 * and the "target" cluster's CA as a wrong one). TAP on stdout. Reads SOURCE_API_URL,
 * SOURCE_CA_FILE, SOURCE_ADMIN_TOKEN, SOURCE_LIMITED_TOKEN, SOURCE_KUBECONFIG, TARGET_CA_FILE. */
#include "k8s_client.h"
#include "kubeconfig.h"
#include "strbuf.h"
#include "check.h"
#include "itest_env.h"

#include <openssl/rand.h>
#include <stdlib.h>

static struct k8s_cluster_conf conf;
static char ns[64];

static struct k8s_client *client(const struct k8s_cluster_conf *c)
{
	char err[256] = "";
	struct k8s_client *k = k8s_client_new(c, NULL, err, sizeof err);

	if (!k)
		printf("# k8s_client_new: %s\n", err);
	return k;
}

static void words(const struct k8s_error *e, char *buf, size_t len)
{
	k8s_error_describe(e, buf, len);
	printf("# error in words: %s\n", buf);
}

static cJSON *json(const char *text)
{
	cJSON *j = cJSON_Parse(text);

	if (!j) {
		printf("Bail out! bad JSON in the test: %s\n", text);
		exit(1);
	}
	return j;
}

static void test_version(void)
{
	struct k8s_client *k = client(&conf);
	struct k8s_error e;
	char v[64] = "";

	CHECK(k != NULL);
	CHECK_INTEQ(k8s_version(k, v, sizeof v, &e), 0);
	CHECK(strncmp(v, "v1.", 3) == 0);
	printf("# server %s\n", v);
	k8s_client_free(k);
}

static void test_kubeconfig_import(void)
{
	char *yaml = slurp(need_env("SOURCE_KUBECONFIG"));
	struct kubeconfig_options files = { NULL, 1 }, upload = { NULL, 0 };
	struct k8s_cluster_conf kc;
	struct k8s_client *k;
	struct k8s_error e;
	char ctx[64] = "", err[512] = "", v[64] = "";

	CHECK_INTEQ(kubeconfig_parse(yaml, strlen(yaml), &files, &kc, ctx, sizeof ctx, err, sizeof err), 0);
	CHECK_STREQ(kc.api_url, conf.api_url);
	k = client(&kc);
	CHECK(k != NULL);
	if (k)
		CHECK_INTEQ(k8s_version(k, v, sizeof v, &e), 0);
	k8s_client_free(k);
	kubeconfig_conf_free(&kc);
	/* The same file uploaded must not make us read the server's files. */
	CHECK_INTEQ(kubeconfig_parse(yaml, strlen(yaml), &upload, &kc, NULL, 0, err, sizeof err), -1);
	printf("# %s\n", err);
	CHECK(strstr(err, "certificate-authority-data") != NULL);
	free(yaml);
}

/* The CRD's group is named after the test namespace, so that a run never meets a leftover. */
static const char crd_format[] =
	"{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
	"\"metadata\":{\"name\":\"widgets.%s.stowage.dev\"},"
	"\"spec\":{\"group\":\"%s.stowage.dev\",\"scope\":\"Namespaced\","
	"\"names\":{\"plural\":\"widgets\",\"singular\":\"widget\",\"kind\":\"Widget\"},"
	"\"versions\":["
	"{\"name\":\"v1alpha1\",\"served\":true,\"storage\":false,\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"x-kubernetes-preserve-unknown-fields\":true}}},"
	"{\"name\":\"v1\",\"served\":true,\"storage\":true,\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"x-kubernetes-preserve-unknown-fields\":true}},"
	"\"subresources\":{\"status\":{}}}]}}";

static int crd_established(const cJSON *obj, void *ud)
{
	const cJSON *c;

	(void)ud;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "status"), "conditions")) {
		const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "type"));
		const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "status"));

		if (type && status && strcmp(type, "Established") == 0 && strcmp(status, "True") == 0)
			return 1;
	}
	return 0;
}

static char crd_group[80];

static int discovery_has_widgets(struct k8s_client *k, struct k8s_resource_list *list)
{
	struct k8s_error e;

	if (k8s_discover(k, K8S_DISCOVERY_AUTO, list, &e) < 0)
		return -1;
	return k8s_resource_find(list, crd_group, "widgets") != NULL;
}

static void test_discovery_lists_a_new_crd(void)
{
	struct k8s_client *k = client(&conf);
	struct k8s_resource_list list = { 0 }, legacy = { 0 };
	const struct k8s_resource_type *t;
	struct k8s_error e;
	char *crds = k8s_resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions", NULL, NULL);
	char name[120], text[sizeof crd_format + 200], *path;
	cJSON *obj;
	int found = 0;

	snprintf(crd_group, sizeof crd_group, "%s.stowage.dev", ns);
	snprintf(name, sizeof name, "widgets.%s", crd_group);
	snprintf(text, sizeof text, crd_format, ns, ns);
	obj = json(text);
	path = k8s_resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions", NULL, name);

	if (!k) {
		CHECK(0);
		return;
	}
	CHECK_INTEQ(k8s_create(k, crds, obj, NULL, &e), 0);
	CHECK_INTEQ(k8s_wait(k, path, crd_established, NULL, 30000, &e), 0);
	/* Discovery catches up with a new CRD a moment after it is established. */
	for (int i = 0; i < 50 && (found = discovery_has_widgets(k, &list)) == 0; i++) {
		k8s_resource_list_free(&list);
		struct timespec ts = { 0, 200000000 };
		nanosleep(&ts, NULL);
	}
	CHECK_INTEQ(found, 1);
	t = k8s_resource_find(&list, crd_group, "widgets");
	if (t) {
		CHECK_STREQ(t->version, "v1");
		CHECK_STREQ(t->kind, "Widget");
		CHECK(t->namespaced);
		CHECK((t->verbs & (K8S_VERB_LIST | K8S_VERB_CREATE | K8S_VERB_DELETE)) ==
		      (K8S_VERB_LIST | K8S_VERB_CREATE | K8S_VERB_DELETE));
	}
	t = k8s_resource_find(&list, "", "configmaps");
	CHECK(t && strcmp(t->version, "v1") == 0 && t->namespaced && strcmp(t->kind, "ConfigMap") == 0);
	t = k8s_resource_find(&list, "", "namespaces");
	CHECK(t && !t->namespaced);
	t = k8s_resource_find(&list, "apps", "deployments");
	CHECK(t && strcmp(t->version, "v1") == 0 && strcmp(t->kind, "Deployment") == 0);
	for (size_t i = 0; i < list.n; i++)
		CHECK(strchr(list.items[i].plural, '/') == NULL);
	printf("# %zu resource types served\n", list.n);
	/* Kubernetes 1.34 serves aggregated discovery; the older walk must find the same types. */
	CHECK_INTEQ(list.aggregated, 1);
	CHECK_INTEQ(k8s_discover(k, K8S_DISCOVERY_LEGACY, &legacy, &e), 0);
	CHECK_INTEQ(legacy.aggregated, 0);
	CHECK_INTEQ(legacy.n, list.n);
	for (size_t i = 0; i < list.n; i++) {
		const struct k8s_resource_type *a = &list.items[i];
		const struct k8s_resource_type *b = k8s_resource_find(&legacy, a->group, a->plural);

		if (!b || strcmp(a->version, b->version) || strcmp(a->kind, b->kind) ||
		    a->namespaced != b->namespaced || a->verbs != b->verbs) {
			printf("# %s/%s differs between aggregated and legacy discovery\n", a->group, a->plural);
			CHECK(0);
		}
	}
	k8s_resource_list_free(&legacy);
	k8s_resource_list_free(&list);
	CHECK_INTEQ(k8s_delete(k, path, NULL, &e), 0);
	cJSON_Delete(obj);
	free(crds);
	free(path);
	k8s_client_free(k);
}

struct seen {
	int count, restarts;
};

static int count_object(cJSON *obj, void *ud)
{
	struct seen *s = ud;

	if (!obj) {
		s->restarts++;
		s->count = 0;
		return 0;
	}
	if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, "kind")), "ConfigMap") == 0)
		s->count++;
	return 0;
}

static void test_list_pages_of_configmaps(void)
{
	struct k8s_client *k = client(&conf);
	static const struct k8s_resource_type cm = { "", "v1", "ConfigMap", "configmaps", 1, K8S_VERB_LIST };
	struct k8s_error e;
	char *path = k8s_resource_path("", "v1", "configmaps", ns, NULL);
	struct seen s = { 0, 0 };

	if (!k) {
		CHECK(0);
		return;
	}
	for (int i = 0; i < 25; i++) {
		char text[200];
		cJSON *obj;

		snprintf(text, sizeof text, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"page-%02d\","
			 "\"labels\":{\"itest\":\"page\"}},\"data\":{\"i\":\"%d\"}}", i, i);
		obj = json(text);
		CHECK_INTEQ(k8s_create(k, path, obj, NULL, &e), 0);
		cJSON_Delete(obj);
	}
	CHECK_INTEQ(k8s_list(k, &cm, ns, "itest=page", 10, count_object, &s, &e), 0);
	CHECK_INTEQ(s.count, 25);
	s.count = 0;
	CHECK_INTEQ(k8s_list(k, &cm, ns, "itest=other", 10, count_object, &s, &e), 0);
	CHECK_INTEQ(s.count, 0);
	free(path);
	k8s_client_free(k);
}

static void test_create_patch_replace_delete(void)
{
	struct k8s_client *k = client(&conf);
	struct k8s_error e;
	char *coll = k8s_resource_path("", "v1", "configmaps", ns, NULL);
	char *path = k8s_resource_path("", "v1", "configmaps", ns, "round-trip");
	cJSON *obj = json("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"round-trip\"},\"data\":{\"a\":\"1\"}}");
	cJSON *got = NULL, *stale = NULL;
	char w[700];

	if (!k) {
		CHECK(0);
		return;
	}
	CHECK_INTEQ(k8s_create(k, coll, obj, &stale, &e), 0);
	CHECK_INTEQ(k8s_create(k, coll, obj, NULL, &e), -1);
	CHECK_STREQ(e.reason, "AlreadyExists");
	words(&e, w, sizeof w);
	CHECK(strncmp(w, "AlreadyExists: ", 15) == 0);

	CHECK_INTEQ(k8s_patch(k, path, K8S_PATCH_MERGE, "{\"data\":{\"a\":\"2\"}}", NULL, &e), 0);
	CHECK_INTEQ(k8s_patch(k, path, K8S_PATCH_JSON, "[{\"op\":\"add\",\"path\":\"/data/b\",\"value\":\"3\"}]", &got, &e), 0);
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(got, "data"), "a")), "2");
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(got, "data"), "b")), "3");
	CHECK_INTEQ(k8s_patch(k, path, K8S_PATCH_JSON, "[{\"op\":\"test\",\"path\":\"/data/a\",\"value\":\"9\"}]", NULL, &e), -1);
	words(&e, w, sizeof w);

	/* Replace with the current resourceVersion works; with a stale one it is a Conflict. */
	cJSON_ReplaceItemInObjectCaseSensitive(got, "data", json("{\"c\":\"4\"}"));
	CHECK_INTEQ(k8s_replace(k, path, got, NULL, &e), 0);
	cJSON_Delete(got);
	CHECK_INTEQ(k8s_get(k, path, &got, &e), 0);
	CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(got, "data"), "a") == NULL);
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(got, "data"), "c")), "4");
	CHECK_INTEQ(k8s_replace(k, path, stale, NULL, &e), -1);
	CHECK_STREQ(e.reason, "Conflict");
	CHECK_INTEQ(e.http_status, 409);
	words(&e, w, sizeof w);

	CHECK_INTEQ(k8s_delete(k, path, "Sideways", &e), -1);
	CHECK_INTEQ(k8s_delete(k, path, "Background", &e), 0);
	cJSON_Delete(got);
	CHECK_INTEQ(k8s_get(k, path, &got, &e), -1);
	CHECK_INTEQ(e.http_status, 404);
	CHECK_STREQ(e.reason, "NotFound");
	words(&e, w, sizeof w);
	cJSON_Delete(obj);
	cJSON_Delete(stale);
	free(coll);
	free(path);
	k8s_client_free(k);
}

static int never(const cJSON *obj, void *ud)
{
	(void)obj;
	(void)ud;
	return 0;
}

static void test_wait_times_out(void)
{
	struct k8s_client *k = client(&conf);
	struct k8s_error e;
	char *path = k8s_resource_path("", "v1", "namespaces", NULL, ns);

	CHECK_INTEQ(k8s_wait(k, path, never, NULL, 1000, &e), -1);
	CHECK_STREQ(e.reason, "Timeout");
	free(path);
	k8s_client_free(k);
}

static void test_limited_token_forbidden_in_words(void)
{
	struct k8s_cluster_conf limited = conf;
	struct k8s_client *k;
	struct k8s_error e;
	char w[700];
	cJSON *got = NULL;

	limited.token = need_env("SOURCE_LIMITED_TOKEN");
	k = client(&limited);
	CHECK_INTEQ(k8s_get(k, "/api/v1/namespaces/kube-system/secrets", &got, &e), -1);
	CHECK_INTEQ(e.http_status, 403);
	words(&e, w, sizeof w);
	CHECK(strncmp(w, "forbidden (403): ", 17) == 0 && strstr(w, "secrets") != NULL);
	CHECK(strstr(w, limited.token) == NULL);
	k8s_client_free(k);

	limited.token = "not-a-token";
	k = client(&limited);
	CHECK_INTEQ(k8s_get(k, "/api/v1/namespaces", &got, &e), -1);
	words(&e, w, sizeof w);
	CHECK_STREQ(w, "token rejected (401 Unauthorized)");
	k8s_client_free(k);
}

static void test_transport_failures_in_words(void)
{
	struct k8s_cluster_conf bad = conf;
	struct k8s_client *k;
	struct k8s_error e;
	char w[700], v[64];

	bad.ca_pem = slurp(need_env("TARGET_CA_FILE"));
	k = client(&bad);
	CHECK_INTEQ(k8s_version(k, v, sizeof v, &e), -1);
	words(&e, w, sizeof w);
	CHECK(strncmp(w, "TLS verification failed: ", 25) == 0);
	k8s_client_free(k);
	free(bad.ca_pem);

	bad = conf;
	bad.api_url = "https://127.0.0.1:1";
	k = client(&bad);
	CHECK_INTEQ(k8s_version(k, v, sizeof v, &e), -1);
	words(&e, w, sizeof w);
	CHECK_STREQ(w, "connection refused to 127.0.0.1:1");
	k8s_client_free(k);

	/* The allow-list refuses an API server outside it before any connection. */
	{
		struct net_allow allow;
		char err[256] = "";

		CHECK_INTEQ(net_allow_parse("10.0.0.0/8", &allow, err, sizeof err), 0);
		CHECK(k8s_client_new(&conf, &allow, err, sizeof err) == NULL);
		printf("# %s\n", err);
		CHECK(strstr(err, "loopback (127.0.0.0/8), which is always refused unless allowed_private_networks names it") != NULL);
		/* allowed_networks naming loopback is not enough: the deny list holds until opted out of */
		CHECK_INTEQ(net_allow_parse("127.0.0.0/8", &allow, err, sizeof err), 0);
		CHECK(k8s_client_new(&conf, &allow, err, sizeof err) == NULL);
		printf("# %s\n", err);
		CHECK(strstr(err, "always refused unless allowed_private_networks names it") != NULL);
		CHECK_INTEQ(net_allow_opt_in(&allow, "127.0.0.0/8", err, sizeof err), 0);	/* loopback: opted in */
		k = k8s_client_new(&conf, &allow, err, sizeof err);
		CHECK(k != NULL && k8s_version(k, v, sizeof v, &e) == 0);
		k8s_client_free(k);
	}

	bad = conf;
	bad.api_url = "https://no-such-cluster.invalid:6443";
	k = client(&bad);
	CHECK_INTEQ(k8s_version(k, v, sizeof v, &e), -1);
	words(&e, w, sizeof w);
	CHECK_STREQ(w, "cannot resolve host no-such-cluster.invalid");
	k8s_client_free(k);
}

static void namespace_setup(int create)
{
	struct k8s_client *k = client(&conf);
	struct k8s_error e;
	char text[200], *path;
	cJSON *obj;

	if (!create) {
		path = k8s_resource_path("", "v1", "namespaces", NULL, ns);
		k8s_delete(k, path, "Background", &e);
		free(path);
		k8s_client_free(k);
		return;
	}
	snprintf(text, sizeof text, "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"%s\"}}", ns);
	obj = json(text);
	if (!k || k8s_create(k, "/api/v1/namespaces", obj, NULL, &e) < 0) {
		k8s_error_describe(&e, text, sizeof text);
		printf("Bail out! cannot create namespace %s: %s\n", ns, text);
		exit(1);
	}
	cJSON_Delete(obj);
	k8s_client_free(k);
}

int main(void)
{
	unsigned char rnd[4];
	int rc;

	conf.api_url = need_env("SOURCE_API_URL");
	conf.token = need_env("SOURCE_ADMIN_TOKEN");
	conf.ca_pem = slurp(need_env("SOURCE_CA_FILE"));
	conf.timeout_ms = 10000;
	RAND_bytes(rnd, sizeof rnd);
	snprintf(ns, sizeof ns, "itest-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
	printf("# namespace %s on %s\n", ns, conf.api_url);
	namespace_setup(1);

	RUN(test_version);
	RUN(test_kubeconfig_import);
	RUN(test_discovery_lists_a_new_crd);
	RUN(test_list_pages_of_configmaps);
	RUN(test_create_patch_replace_delete);
	RUN(test_wait_times_out);
	RUN(test_limited_token_forbidden_in_words);
	RUN(test_transport_failures_in_words);
	rc = check_done();
	namespace_setup(0);
	free(conf.ca_pem);
	return rc;
}
