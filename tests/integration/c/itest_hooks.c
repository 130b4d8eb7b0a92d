/* The hook API and the reference hooks against a real kube-apiserver (scripts/testenv's "source"
 * cluster, with the fixture application in HOOKS_NAMESPACE and kwok simulating its pods). exec
 * goes through the API server to kwok, which runs the command as a local process in
 * HOOKS_EXEC_DIR (no container exists): what it proves is our side of the protocol, the API
 * server's upgrade and kwok's answers. TAP on stdout. Reads SOURCE_API_URL, SOURCE_CA_FILE,
 * SOURCE_ADMIN_TOKEN, HOOKS_NAMESPACE, HOOKS_EXEC_DIR, HOOKS_LUA_DIR. */
#include "check.h"
#include "k8s_client.h"
#include "lua_k8s.h"
#include "strbuf.h"
#include "itest_env.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct k8s_client *client;
static const char *ns, *exec_dir, *lua_dir;
static const struct lua_sandbox_limits limits = { 32 << 20, 50000000, 120000 };

static void print_log(void *ctx, const char *line)
{
	(void)ctx;
	printf("#   log: %s\n", line);
}

/* Runs src; returns 0 when it succeeded (its error is printed otherwise). writes, when not
 * NULL, receives a copy of the dry run's writes. */
static int run(const char *src, int dry_run, const char *params_json, const char *phase, cJSON **writes)
{
	static const char *const granted[] = { "kube-public", NULL };
	struct lua_k8s_scope scope = { .client = client, .namespace = ns, .granted = granted, .dry_run = dry_run };
	struct lua_k8s *k = lua_k8s_new(&scope);
	struct lua_sandbox_result res;
	cJSON *params = params_json ? cJSON_Parse(params_json) : NULL;
	cJSON *job = cJSON_CreateObject();
	int rc;

	cJSON_AddStringToObject(job, "phase", phase ? phase : "pre-backup");
	rc = lua_k8s_run(k, &limits, job, params, "hook.lua", src, strlen(src), print_log, NULL, &res);
	if (rc < 0)
		printf("# hook failed: %s\n", res.error);
	if (writes)
		*writes = cJSON_Duplicate(lua_k8s_writes(k), 1);
	lua_k8s_free(k);
	cJSON_Delete(params);
	cJSON_Delete(job);
	return rc;
}

static int run_file(const char *file, const char *params_json, const char *phase)
{
	char path[512];
	char *src;
	int rc;

	snprintf(path, sizeof path, "%s/%s", lua_dir, file);
	src = slurp(path);
	rc = run(src, 0, params_json, phase, NULL);
	free(src);
	return rc;
}

static cJSON *get(const char *path)
{
	struct k8s_error err;
	cJSON *obj = NULL;

	k8s_client_set_deadline(client, 0);
	if (k8s_get(client, path, &obj, &err) < 0)
		return NULL;
	return obj;
}

static long long replicas_of(const char *plural, const char *name, const char *field)
{
	char *p = k8s_resource_path("apps", "v1", plural, ns, name);
	cJSON *d = get(p);
	const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(d, strcmp(field, "replicas") ? "status" : "spec"), field);
	long long n = cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;

	free(p);
	cJSON_Delete(d);
	return n;
}

/* list, create, patch, get, delete of a ConfigMap; the scope (granted and refused namespaces,
 * cluster-scoped kinds read-only); a custom resource found through discovery. */
static void test_configmap_lifecycle(void)
{
	struct strbuf src = STRBUF_INIT;
	char *p = k8s_resource_path("", "v1", "configmaps", ns, "hook-made");
	cJSON *cm;

	strbuf_addf(&src, "local job_ns = '%s'\n", ns);
	strbuf_addstr(&src, "assert(#k8s.list('v1', 'ConfigMap', {labelSelector = 'hooktest=yes'}) == 0)\n"
		      "local cm = k8s.create({apiVersion = 'v1', kind = 'ConfigMap',\n"
		      "  metadata = {name = 'hook-made', labels = {hooktest = 'yes'}}, data = {a = '1', b = '2'}})\n"
		      "assert(cm.metadata.uid and cm.metadata.namespace == job_ns)\n"
		      "local listed = k8s.list('v1', 'ConfigMap', {labelSelector = 'hooktest=yes'})\n"
		      "assert(#listed == 1 and listed[1].metadata.name == 'hook-made' and listed[1].kind == 'ConfigMap')\n"
		      "local patched = k8s.patch('v1', 'ConfigMap', 'hook-made', {data = {a = json.null, c = '3'}})\n"
		      "assert(patched.data.a == nil and patched.data.b == '2' and patched.data.c == '3')\n"
		      "assert(k8s.get('v1', 'ConfigMap', 'hook-made').data.c == '3')\n"
		      "local ok, e = pcall(k8s.create, {apiVersion = 'v1', kind = 'ConfigMap', metadata = {name = 'hook-made'}})\n"
		      "assert(not ok and e:find('AlreadyExists', 1, true), e)\n");
	CHECK_INTEQ(run(src.buf, 0, NULL, NULL, NULL), 0);
	cm = get(p);
	CHECK(cm != NULL);
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(cm, "data"), "c")), "3");
	CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(cm, "data"), "a") == NULL);
	cJSON_Delete(cm);
	CHECK_INTEQ(run("assert(k8s.delete('v1', 'ConfigMap', 'hook-made') == true)\n"
			"assert(k8s.delete('v1', 'ConfigMap', 'hook-made') == false)\n"
			"local gone, why = k8s.get('v1', 'ConfigMap', 'hook-made')\n"
			"assert(gone == nil and why:find('^NotFound'), why)\n"
			"assert(#k8s.list('v1', 'ConfigMap', {namespace = 'kube-public'}) >= 0)\n"
			"local refused, msg = pcall(k8s.list, 'v1', 'ConfigMap', {namespace = 'kube-system'})\n"
			"assert(not refused and msg:find('outside this hook', 1, true), msg)\n"
			"assert(#k8s.list('v1', 'Namespace') > 0)\n"
			"local w, werr = pcall(k8s.delete, 'v1', 'Namespace', 'default')\n"
			"assert(not w and werr:find('cluster-scoped', 1, true), werr)\n"
			"assert(k8s.get('fixtures.stowage.dev/v1', 'Widget', 'sprocket'))\n",
			0, NULL, NULL, NULL), 0);
	cm = get(p);
	CHECK(cm == NULL);
	cJSON_Delete(cm);
	free(p);
	strbuf_release(&src);
}

static void test_dry_run_changes_nothing(void)
{
	cJSON *writes = NULL;
	char *p = k8s_resource_path("", "v1", "configmaps", ns, "dry-made");

	CHECK_INTEQ(run("k8s.create({apiVersion = 'v1', kind = 'ConfigMap', metadata = {name = 'dry-made'}})\n"
			"k8s.scale('Deployment', 'wordpress', 5)\n"
			"assert(k8s.get('apps/v1', 'Deployment', 'wordpress').spec.replicas == 1)\n"
			"assert(k8s.get('v1', 'ConfigMap', 'dry-made') == nil)\n",
			1, NULL, NULL, &writes), 0);
	CHECK_INTEQ(cJSON_GetArraySize(writes), 2);
	CHECK(get(p) == NULL);
	CHECK_INTEQ(replicas_of("deployments", "wordpress", "replicas"), 1);
	cJSON_Delete(writes);
	free(p);
}

static void test_scale_and_wait_ready(void)
{
	CHECK_INTEQ(run("k8s.scale('Deployment', 'wordpress', 3)\n"
			"local ok, why = k8s.wait_ready('Deployment', 'wordpress', 60000)\n"
			"assert(ok, why)\n"
			"local d = k8s.get('apps/v1', 'Deployment', 'wordpress')\n"
			"assert(d.status.readyReplicas == 3, d.status.readyReplicas)\n",
			0, NULL, NULL, NULL), 0);
	CHECK_INTEQ(replicas_of("deployments", "wordpress", "readyReplicas"), 3);
	/* A wait that cannot succeed in time says where it stood. */
	CHECK_INTEQ(run("k8s.scale('Deployment', 'wordpress', 1)\n"
			"local ok, why = k8s.wait_ready('Deployment', 'no-such-app', 500)\n"
			"assert(not ok and why:find('does not exist', 1, true), why)\n"
			"assert(k8s.wait_ready('Deployment', 'wordpress', 60000))\n",
			0, NULL, NULL, NULL), 0);
	CHECK_INTEQ(replicas_of("deployments", "wordpress", "readyReplicas"), 1);
}

static void test_exec(void)
{
	struct strbuf src = STRBUF_INIT;

	strbuf_addstr(&src, "local pods = k8s.list('v1', 'Pod', {labelSelector = 'app=wordpress'})\n"
		      "local pod = pods[1].metadata.name\n"
		      "local r = k8s.exec(pod, 'wordpress', {'sh', '-c', 'echo out; echo err >&2; exit 3'})\n"
		      "assert(r.exit_code == 3, r.exit_code)\n"
		      "assert(r.stdout == 'out\\n', r.stdout)\n"
		      "assert(r.stderr == 'err\\n', r.stderr)\n"
		      "r = k8s.exec(pod, nil, {'printf', '%s', 'fine'})\n"
		      "assert(r.exit_code == 0 and r.stdout == 'fine' and r.stderr == '' and not r.truncated)\n"
		      "r = k8s.exec(pod, nil, {'head', '-c', '3000000', '/dev/zero'})\n"
		      "assert(r.exit_code == 0 and r.truncated and #r.stdout == 1048576, #r.stdout)\n"
		      "local ok, e = pcall(k8s.exec, pod, nil, {'sleep', '5'}, {timeout_ms = 300})\n"
		      "assert(not ok and e:find('Timeout', 1, true), e)\n"
		      "ok, e = pcall(k8s.exec, 'no-such-pod', nil, {'true'})\n"
		      "assert(not ok and e:find('NotFound', 1, true), e)\n");
	CHECK_INTEQ(run(src.buf, 0, NULL, NULL, NULL), 0);
	strbuf_release(&src);
}

static void test_reference_scale_down_up(void)
{
	CHECK_INTEQ(run_file("scale-down.lua", NULL, NULL), 0);
	CHECK_INTEQ(replicas_of("deployments", "wordpress", "replicas"), 0);
	CHECK_INTEQ(replicas_of("statefulsets", "mysql", "replicas"), 0);
	CHECK_INTEQ(replicas_of("statefulsets", "mysql", "readyReplicas"), -1);	/* absent when 0 */
	CHECK_INTEQ(run_file("scale-up.lua", NULL, NULL), 0);
	CHECK_INTEQ(replicas_of("deployments", "wordpress", "readyReplicas"), 1);
	CHECK_INTEQ(replicas_of("statefulsets", "mysql", "readyReplicas"), 2);
	CHECK_INTEQ(run_file("wait-deployments-ready.lua", "{\"timeout_ms\": 60000}", NULL), 0);
}

static void test_reference_rewrite_ingress_host(void)
{
	char *ing = k8s_resource_path("networking.k8s.io", "v1", "ingresses", ns, "wordpress");
	char *cmp = k8s_resource_path("", "v1", "configmaps", ns, "wordpress-config");
	cJSON *obj;

	CHECK_INTEQ(run("k8s.patch('v1', 'ConfigMap', 'wordpress-config', {data = {\n"
			"  WP_HOME = 'https://blog.fixture.example', WP_SITEURL = 'https://blog.fixture.example/wp'}})\n",
			0, NULL, NULL, NULL), 0);
	CHECK_INTEQ(run_file("rewrite-ingress-host.lua", "{\"old_domain\": \"fixture.example\", "
			     "\"new_domain\": \"restored.example\", \"configmap\": \"wordpress-config\"}", "post-restore"), 0);
	obj = get(ing);
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(
		cJSON_GetObjectItem(obj, "spec"), "rules"), 0), "host")), "blog.restored.example");
	cJSON_Delete(obj);
	obj = get(cmp);
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(obj, "data"), "WP_SITEURL")),
		    "https://blog.restored.example/wp");
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(obj, "data"), "WORDPRESS_DB_NAME")),
		    "wordpress");
	cJSON_Delete(obj);
	CHECK_INTEQ(run_file("rewrite-ingress-host.lua", "{\"old_domain\": \"fixture.example\"}", "post-restore"), -1);
	free(ing);
	free(cmp);
}

/* What a hook process whose sandbox was broken could send the runner: calls built by hand.
 * lua_k8s_serve checks each against the cluster's discovery and the scope on its own. */
static int serve(const char *json, struct k8s_error *err, cJSON **reply)
{
	struct lua_k8s_scope scope = { .client = client, .namespace = ns };
	struct lua_k8s *k = lua_k8s_new(&scope);
	cJSON *req = cJSON_Parse(json);
	int rc = lua_k8s_serve(k, req, reply, err);

	cJSON_Delete(req);
	lua_k8s_free(k);
	return rc;
}

static void test_runner_refuses_crafted_calls(void)
{
	struct k8s_error err;
	cJSON *reply = NULL;
	char buf[1024];

	CHECK_INTEQ(serve("{\"op\":\"get\",\"group\":\"\",\"version\":\"v1\",\"plural\":\"secrets\","
			  "\"namespace\":\"kube-system\",\"name\":\"x\"}", &err, &reply), -1);
	CHECK(strstr(err.message, "namespace \"kube-system\" is outside this hook's scope") != NULL);
	CHECK_INTEQ(serve("{\"op\":\"delete\",\"group\":\"\",\"version\":\"v1\",\"plural\":\"namespaces\","
			  "\"namespace\":\"\",\"name\":\"default\"}", &err, &reply), -1);
	CHECK(strstr(err.message, "cluster-scoped; hooks may read such objects but not change them") != NULL);
	CHECK_INTEQ(serve("{\"op\":\"get\",\"group\":\"\",\"version\":\"v1\",\"plural\":\"configmaps\","
			  "\"namespace\":\"x/../../kube-system\",\"name\":\"a\"}", &err, &reply), -1);
	CHECK(strstr(err.message, "outside this hook's scope") != NULL);
	CHECK_INTEQ(serve("{\"op\":\"get\",\"group\":\"\",\"version\":\"v1\",\"plural\":\"pods\","
			  "\"namespace\":\"x\",\"name\":\"../../../namespaces/kube-system/secrets/y\"}",
			  &err, &reply), -1);
	CHECK(strstr(err.message, "names no valid resource") != NULL);
	CHECK_INTEQ(serve("{\"op\":\"exec\",\"namespace\":\"kube-system\",\"pod\":\"p\",\"argv\":[\"sh\"]}",
			  &err, &reply), -1);
	CHECK(strstr(err.message, "outside this hook's scope") != NULL);
	CHECK_INTEQ(serve("{\"op\":\"proxy\"}", &err, &reply), -1);
	CHECK(strstr(err.message, "no operation proxy") != NULL);
	/* an object created with another namespace in its metadata lands in the hook's own */
	snprintf(buf, sizeof buf, "{\"op\":\"create\",\"group\":\"\",\"version\":\"v1\",\"plural\":\"configmaps\","
		 "\"namespace\":\"%s\",\"body\":{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
		 "{\"name\":\"crafted-%d\",\"namespace\":\"kube-system\"}}}", ns, (int)getpid());
	CHECK_INTEQ(serve(buf, &err, &reply), 0);
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(reply, "object"), "metadata"), "namespace")), ns);
	cJSON_Delete(reply);
	snprintf(buf, sizeof buf, "{\"op\":\"delete\",\"group\":\"\",\"version\":\"v1\",\"plural\":\"configmaps\","
		 "\"namespace\":\"%s\",\"name\":\"crafted-%d\"}", ns, (int)getpid());
	reply = NULL;
	CHECK_INTEQ(serve(buf, &err, &reply), 0);
	cJSON_Delete(reply);
}

int main(void)
{
	struct k8s_cluster_conf conf = { 0 };
	char err[256];

	conf.api_url = need_env("SOURCE_API_URL");
	conf.token = need_env("SOURCE_ADMIN_TOKEN");
	conf.ca_pem = slurp(need_env("SOURCE_CA_FILE"));
	ns = need_env("HOOKS_NAMESPACE");
	exec_dir = need_env("HOOKS_EXEC_DIR");
	lua_dir = need_env("HOOKS_LUA_DIR");
	client = k8s_client_new(&conf, NULL, err, sizeof err);
	if (!client) {
		printf("Bail out! %s\n", err);
		return 1;
	}
	RUN(test_configmap_lifecycle);
	RUN(test_dry_run_changes_nothing);
	RUN(test_scale_and_wait_ready);
	RUN(test_exec);
	RUN(test_reference_scale_down_up);
	RUN(test_reference_rewrite_ingress_host);
	RUN(test_runner_refuses_crafted_calls);
	k8s_client_free(client);
	free(conf.ca_pem);
	return check_done();
}
