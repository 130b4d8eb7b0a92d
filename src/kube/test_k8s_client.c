/* The Kubernetes client's reading of what an API server answers (Status errors, size and depth
 * limits, list pages and continue tokens, discovery) and its paths, against a scripted HTTPS
 * server on loopback (tests/loopback_server.h): the replies are the test's input. */
#include "k8s_client.h"
#include "strbuf.h"
#include "check.h"
#include "loopback_server.h"

#include <stdlib.h>
#include <string.h>

static struct loopback_server srv;

/* What the scripted server saw, for the checks. */
static struct strbuf seen_targets = STRBUF_INIT;
static char seen_auth[256], seen_accept[512];

static void remember(const struct loopback_request *rq)
{
	strbuf_addf(&seen_targets, "%s %s\n", rq->method, rq->target);
	loopback_header(rq, "Authorization", seen_auth, sizeof seen_auth);
	loopback_header(rq, "Accept", seen_accept, sizeof seen_accept);
}

static void json_reply(struct strbuf *out, int status, const char *json)
{
	loopback_reply(out, status, "Content-Type: application/json\r\n", json, strlen(json));
}

static struct k8s_client *start(loopback_handler fn)
{
	struct k8s_cluster_conf conf = { 0 };
	struct k8s_client *c;
	char err[256] = "", url[80];

	strbuf_reset(&seen_targets);
	seen_auth[0] = seen_accept[0] = '\0';
	if (loopback_server_start(&srv, 1, fn, NULL) < 0) {
		printf("Bail out! cannot start the loopback server\n");
		exit(1);
	}
	snprintf(url, sizeof url, "%s//", srv.url);	/* trailing slashes are dropped */
	conf.api_url = url;
	conf.token = "test-token-1";
	conf.ca_pem = srv.ca_pem;
	c = k8s_client_new(&conf, NULL, err, sizeof err);
	if (!c) {
		printf("Bail out! k8s_client_new: %s\n", err);
		exit(1);
	}
	return c;
}

static void stop(struct k8s_client *c)
{
	k8s_client_free(c);
	loopback_server_stop(&srv);
}

/* ---- without a server ---- */

static void test_client_new_refuses_bad_settings(void)
{
	struct k8s_cluster_conf conf = { .api_url = "https://127.0.0.1:6443", .token = "t" };
	char err[256];

	conf.api_url = "";
	CHECK(k8s_client_new(&conf, NULL, err, sizeof err) == NULL);
	CHECK(strstr(err, "API server URL") != NULL);
	conf.api_url = "http://127.0.0.1:6443";
	CHECK(k8s_client_new(&conf, NULL, err, sizeof err) == NULL);
	CHECK(strstr(err, "https://") != NULL);
	conf.api_url = "not a url at all";
	CHECK(k8s_client_new(&conf, NULL, err, sizeof err) == NULL);
	conf.api_url = "https://127.0.0.1:6443";
	conf.token = "";
	CHECK(k8s_client_new(&conf, NULL, err, sizeof err) == NULL);
	CHECK(strstr(err, "token") != NULL);
	conf.token = "abc\r\nX-Injected: 1";
	CHECK(k8s_client_new(&conf, NULL, err, sizeof err) == NULL);
	CHECK(strstr(err, "token") != NULL);
	CHECK(strstr(err, "X-Injected") == NULL);
	conf.token = "t";
	conf.timeout_ms = -1;
	CHECK(k8s_client_new(&conf, NULL, err, sizeof err) == NULL);
	CHECK(strstr(err, "timeout") != NULL);
	conf.timeout_ms = 0;
	struct k8s_client *c = k8s_client_new(&conf, NULL, err, sizeof err);
	CHECK(c != NULL);
	k8s_client_free(c);
}

static void test_resource_path_escapes_every_segment(void)
{
	char *p;

	p = k8s_resource_path("", "v1", "configmaps", "ns1", "cm1");
	CHECK_STREQ(p, "/api/v1/namespaces/ns1/configmaps/cm1");
	free(p);
	p = k8s_resource_path(NULL, "v1", "namespaces", NULL, NULL);
	CHECK_STREQ(p, "/api/v1/namespaces");
	free(p);
	p = k8s_resource_path("apps", "v1", "deployments", "", "");
	CHECK_STREQ(p, "/apis/apps/v1/deployments");
	free(p);
	/* a name from a tenant cannot climb out of its segment or add a query */
	p = k8s_resource_path("storage.k8s.io", "v1", "storageclasses", NULL, "../../x?y=1 z");
	CHECK_STREQ(p, "/apis/storage.k8s.io/v1/storageclasses/..%2F..%2Fx%3Fy%3D1%20z");
	free(p);
	p = k8s_resource_path("a/b", "v1", "things", "n/s", "x");
	CHECK_STREQ(p, "/apis/a%2Fb/v1/namespaces/n%2Fs/things/x");
	free(p);
}

static void test_error_describe_words(void)
{
	struct k8s_error e = { 0 };
	char buf[256];

	e.http_status = 401;
	snprintf(e.reason, sizeof e.reason, "Unauthorized");
	k8s_error_describe(&e, buf, sizeof buf);
	CHECK_STREQ(buf, "token rejected (401 Unauthorized)");
	e.http_status = 403;
	snprintf(e.message, sizeof e.message, "cannot list secrets");
	k8s_error_describe(&e, buf, sizeof buf);
	CHECK_STREQ(buf, "forbidden (403): cannot list secrets");
	e.http_status = 409;
	snprintf(e.reason, sizeof e.reason, "AlreadyExists");
	k8s_error_describe(&e, buf, sizeof buf);
	CHECK_STREQ(buf, "AlreadyExists: cannot list secrets");
	memset(&e, 0, sizeof e);
	e.curl_code = 7;
	snprintf(e.message, sizeof e.message, "connection refused by 10.0.0.1");
	k8s_error_describe(&e, buf, sizeof buf);
	CHECK_STREQ(buf, "connection refused by 10.0.0.1");
}

static void test_delete_refuses_unknown_propagation(void)
{
	struct k8s_cluster_conf conf = { .api_url = "https://127.0.0.1:1", .token = "t" };
	struct k8s_client *c = k8s_client_new(&conf, NULL, (char[64]){ 0 }, 64);
	struct k8s_error e;

	CHECK_INTEQ(k8s_delete(c, "/api/v1/namespaces/x", "Now", &e), -1);
	CHECK_STREQ(e.reason, "Invalid");
	CHECK_INTEQ(e.curl_code, 0);	/* refused before any connection */
	k8s_client_free(c);
}

/* ---- replies ---- */

static void answer_status(const struct loopback_request *rq, struct strbuf *out, void *ud)
{
	(void)ud;
	remember(rq);
	if (strcmp(rq->target, "/api/v1/namespaces/a/configmaps/x") == 0)
		json_reply(out, 409, "{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":\"AlreadyExists\","
			   "\"message\":\"configmaps \\\"x\\\" already exists\",\"code\":409}");
	else if (strcmp(rq->target, "/forbidden-html") == 0)
		loopback_reply(out, 403, NULL, "<html>nope</html>", 17);
	else if (strcmp(rq->target, "/not-json") == 0)
		json_reply(out, 200, "{\"kind\": ");
	else if (strcmp(rq->target, "/version") == 0)
		json_reply(out, 200, "{\"major\":\"1\"}");
	else
		json_reply(out, 404, "{}");
}

static void test_status_replies_become_errors(void)
{
	struct k8s_client *c = start(answer_status);
	struct k8s_error e;
	cJSON *obj = (cJSON *)&obj;
	char v[32];

	CHECK_INTEQ(k8s_get(c, "/api/v1/namespaces/a/configmaps/x", &obj, &e), -1);
	CHECK(obj == NULL);
	CHECK_INTEQ(e.http_status, 409);
	CHECK_STREQ(e.reason, "AlreadyExists");
	CHECK_STREQ(e.message, "configmaps \"x\" already exists");
	/* the token goes in the header, and the trailing slashes of the URL are gone */
	CHECK_STREQ(seen_auth, "Bearer test-token-1");
	CHECK(strstr(seen_targets.buf, "GET /api/v1/namespaces/a/configmaps/x\n") != NULL);

	/* not a Status: the reason comes from the status line, the message quotes the body */
	CHECK_INTEQ(k8s_get(c, "/forbidden-html", &obj, &e), -1);
	CHECK_INTEQ(e.http_status, 403);
	CHECK_STREQ(e.reason, "Forbidden");
	CHECK(strstr(e.message, "403") && strstr(e.message, "<html>nope</html>"));
	/* a Status with neither reason nor message */
	CHECK_INTEQ(k8s_get(c, "/elsewhere", &obj, &e), -1);
	CHECK_STREQ(e.reason, "NotFound");

	CHECK_INTEQ(k8s_get(c, "/not-json", &obj, &e), -1);
	CHECK_STREQ(e.reason, "MalformedReply");
	CHECK(obj == NULL);
	CHECK_INTEQ(k8s_version(c, v, sizeof v, &e), -1);
	CHECK_STREQ(e.reason, "MalformedReply");
	/* the token is never in an error */
	CHECK(strstr(e.message, "test-token-1") == NULL);
	stop(c);
}

static size_t giant_len;

static void answer_giant(const struct loopback_request *rq, struct strbuf *out, void *ud)
{
	char *body = malloc(giant_len);

	(void)ud;
	remember(rq);
	/* one JSON string of giant_len bytes in all */
	memset(body, 'a', giant_len);
	body[0] = body[giant_len - 1] = '"';
	loopback_reply(out, 200, "Content-Type: application/json\r\n", body, giant_len);
	free(body);
}

static void test_object_reply_size_limit(void)
{
	struct k8s_client *c = start(answer_giant);
	struct k8s_error e;
	cJSON *obj = NULL;
	char *text = NULL;
	size_t len = 0;

	giant_len = (8u << 20) - 16;
	CHECK_INTEQ(k8s_get(c, "/api/v1/namespaces/a/secrets/s", &obj, &e), 0);
	CHECK(cJSON_IsString(obj) && strlen(obj->valuestring) == giant_len - 2);
	cJSON_Delete(obj);
	obj = NULL;
	giant_len = (8u << 20) + 1;
	CHECK_INTEQ(k8s_get(c, "/api/v1/namespaces/a/secrets/s", &obj, &e), -1);
	CHECK_STREQ(e.reason, "TooLarge");
	CHECK(strstr(e.message, "8 MiB") != NULL);
	CHECK(obj == NULL);
	/* a log may be larger than one object */
	CHECK_INTEQ(k8s_get_text(c, "/api/v1/namespaces/a/pods/p/log", &text, &len, &e), 0);
	CHECK_INTEQ(len, giant_len);
	CHECK(text && text[len] == '\0');
	free(text);
	stop(c);
}

static int nest_depth;
static int nest_in_string;

static void answer_nested(const struct loopback_request *rq, struct strbuf *out, void *ud)
{
	struct strbuf body = STRBUF_INIT;

	(void)ud;
	remember(rq);
	if (nest_in_string) {
		/* brackets and escaped quotes inside a string are not nesting */
		strbuf_addstr(&body, "{\"a\":\"\\\"");
		for (int i = 0; i < nest_depth; i++)
			strbuf_addstr(&body, "[{");
		strbuf_addstr(&body, "\\\\\",\"b\":[1]}");
	} else {
		for (int i = 0; i < nest_depth; i++)
			strbuf_addch(&body, '[');
		for (int i = 0; i < nest_depth; i++)
			strbuf_addch(&body, ']');
	}
	json_reply(out, 200, body.buf);
	strbuf_release(&body);
}

static void test_depth_limit(void)
{
	struct k8s_client *c = start(answer_nested);
	struct k8s_error e;
	cJSON *obj = NULL;

	nest_in_string = 0;
	nest_depth = 128;
	CHECK_INTEQ(k8s_get(c, "/x", &obj, &e), 0);
	CHECK(cJSON_IsArray(obj));
	cJSON_Delete(obj);
	obj = NULL;
	nest_depth = 129;
	CHECK_INTEQ(k8s_get(c, "/x", &obj, &e), -1);
	CHECK_STREQ(e.reason, "TooDeep");
	CHECK(obj == NULL);
	nest_depth = 100000;
	CHECK_INTEQ(k8s_get(c, "/x", &obj, &e), -1);
	CHECK_STREQ(e.reason, "TooDeep");
	nest_in_string = 1;
	nest_depth = 1000;
	CHECK_INTEQ(k8s_get(c, "/x", &obj, &e), 0);
	CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(obj, "b")));
	cJSON_Delete(obj);
	stop(c);
}

static size_t many_values;

/* [0,0,...] of many_values zeros: 2 bytes a value, far within the byte cap */
static void answer_many_values(const struct loopback_request *rq, struct strbuf *out, void *ud)
{
	struct strbuf body = STRBUF_INIT;

	(void)ud;
	remember(rq);
	strbuf_addch(&body, '[');
	for (size_t i = 0; i < many_values; i++)
		strbuf_addstr(&body, i ? ",0" : "0");
	strbuf_addch(&body, ']');
	json_reply(out, 200, body.buf);
	strbuf_release(&body);
}

static void test_value_count_limit(void)
{
	struct k8s_client *c = start(answer_many_values);
	struct k8s_error e;
	cJSON *obj = NULL;

	/* one object: 256 Ki values ('[' and 256 Ki - 1 commas) pass, one more does not */
	many_values = 256u << 10;
	CHECK_INTEQ(k8s_get(c, "/api/v1/namespaces/a/configmaps/b", &obj, &e), 0);
	CHECK_INTEQ(cJSON_GetArraySize(obj), 256 << 10);
	cJSON_Delete(obj);
	obj = NULL;
	many_values++;
	CHECK_INTEQ(k8s_get(c, "/api/v1/namespaces/a/configmaps/b", &obj, &e), -1);
	CHECK_STREQ(e.reason, "TooManyValues");
	CHECK_STREQ(e.message, "the API server's reply holds more than 262144 JSON values (one object); stopped reading");
	CHECK(obj == NULL);
	/* a list page may hold 16 times as many */
	CHECK_INTEQ(k8s_get(c, "/api/v1/namespaces?limit=500", &obj, &e), 0);
	cJSON_Delete(obj);
	obj = NULL;
	many_values = (4u << 20) + 1;
	CHECK_INTEQ(k8s_get(c, "/api/v1/namespaces?limit=500", &obj, &e), -1);
	CHECK_STREQ(e.reason, "TooManyValues");
	CHECK_STREQ(e.message, "the API server's reply holds more than 4194304 JSON values (one list page); stopped reading");
	CHECK(obj == NULL);
	stop(c);
}

/* ---- lists ---- */

static int expire_tokens;	/* how many requests with a continue token answer 410 */
static int repeat_token;

static void answer_list(const struct loopback_request *rq, struct strbuf *out, void *ud)
{
	(void)ud;
	remember(rq);
	if (strstr(rq->target, "&continue=") && expire_tokens > 0) {
		expire_tokens--;
		json_reply(out, 410, "{\"kind\":\"Status\",\"reason\":\"Expired\",\"message\":\"too old resource version\"}");
	} else if (repeat_token) {
		json_reply(out, 200, "{\"items\":[{\"metadata\":{\"name\":\"r\"}}],\"metadata\":{\"continue\":\"same\"}}");
	} else if (strstr(rq->target, "/broken")) {
		json_reply(out, 200, "{\"items\":{\"metadata\":{}}}");
	} else if (!strstr(rq->target, "&continue=")) {
		json_reply(out, 200, "{\"kind\":\"ConfigMapList\",\"items\":[{\"metadata\":{\"name\":\"a\"}},"
			   "{\"kind\":\"Odd\",\"apiVersion\":\"odd/v9\",\"metadata\":{\"name\":\"b\"}}],"
			   "\"metadata\":{\"continue\":\"tok/1+=\"}}");
	} else if (strstr(rq->target, "&continue=tok%2F1%2B%3D")) {
		json_reply(out, 200, "{\"items\":[{\"metadata\":{\"name\":\"c\"}}],\"metadata\":{\"continue\":\"\"}}");
	} else {
		json_reply(out, 400, "{\"kind\":\"Status\",\"reason\":\"BadRequest\",\"message\":\"unknown token\"}");
	}
}

struct seen {
	struct strbuf names;
	int stop_at;		/* stop at this many objects (0: never) */
	int count;
	int refuse_restart;
};

static int collect(cJSON *obj, void *ud)
{
	struct seen *s = ud;
	const char *name, *kind, *api;

	if (!obj) {
		strbuf_addstr(&s->names, "RESTART ");
		return s->refuse_restart;
	}
	name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "name"));
	kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, "kind"));
	api = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, "apiVersion"));
	strbuf_addf(&s->names, "%s:%s:%s ", name ? name : "?", kind ? kind : "?", api ? api : "?");
	return s->stop_at && ++s->count >= s->stop_at;
}

static const struct k8s_resource_type configmaps = {
	.group = "", .version = "v1", .kind = "ConfigMap", .plural = "configmaps", .namespaced = 1,
};

static void test_list_follows_continue_tokens(void)
{
	struct k8s_client *c = start(answer_list);
	struct k8s_resource_type deployments = { .group = "apps", .version = "v1", .kind = "Deployment",
						 .plural = "deployments", .namespaced = 1 };
	struct seen s = { STRBUF_INIT, 0, 0, 0 };
	struct k8s_error e;

	expire_tokens = repeat_token = 0;
	CHECK_INTEQ(k8s_list(c, &configmaps, "ns1", "app=web,tier in (a b)", 2, collect, &s, &e), 0);
	/* kind and apiVersion filled in where the list leaves them out, kept where it does not */
	CHECK_STREQ(s.names.buf, "a:ConfigMap:v1 b:Odd:odd/v9 c:ConfigMap:v1 ");
	CHECK_STREQ(seen_targets.buf,
		    "GET /api/v1/namespaces/ns1/configmaps?limit=2&labelSelector=app%3Dweb%2Ctier%20in%20%28a%20b%29\n"
		    "GET /api/v1/namespaces/ns1/configmaps?limit=2&labelSelector=app%3Dweb%2Ctier%20in%20%28a%20b%29"
		    "&continue=tok%2F1%2B%3D\n");
	strbuf_reset(&s.names);
	strbuf_reset(&seen_targets);
	/* a cluster-wide list of a group's type, default page size */
	CHECK_INTEQ(k8s_list(c, &deployments, NULL, NULL, 0, collect, &s, &e), 0);
	CHECK_STREQ(s.names.buf, "a:Deployment:apps/v1 b:Odd:odd/v9 c:Deployment:apps/v1 ");
	CHECK(strncmp(seen_targets.buf, "GET /apis/apps/v1/deployments?limit=500\n", 40) == 0);
	strbuf_release(&s.names);
	stop(c);
}

static void test_list_restarts_when_its_token_expires(void)
{
	struct k8s_client *c = start(answer_list);
	struct seen s = { STRBUF_INIT, 0, 0, 0 };
	struct k8s_error e;

	repeat_token = 0;
	expire_tokens = 1;
	CHECK_INTEQ(k8s_list(c, &configmaps, "ns1", NULL, 2, collect, &s, &e), 0);
	CHECK_STREQ(s.names.buf, "a:ConfigMap:v1 b:Odd:odd/v9 RESTART a:ConfigMap:v1 b:Odd:odd/v9 c:ConfigMap:v1 ");
	/* a token that always expires: three fresh starts, then the 410 is the answer */
	strbuf_reset(&s.names);
	expire_tokens = 1000;
	CHECK_INTEQ(k8s_list(c, &configmaps, "ns1", NULL, 2, collect, &s, &e), -1);
	CHECK_INTEQ(e.http_status, 410);
	CHECK_STREQ(e.reason, "Expired");
	CHECK_STREQ(s.names.buf, "a:ConfigMap:v1 b:Odd:odd/v9 RESTART a:ConfigMap:v1 b:Odd:odd/v9 RESTART "
		    "a:ConfigMap:v1 b:Odd:odd/v9 RESTART a:ConfigMap:v1 b:Odd:odd/v9 ");
	/* the caller may refuse to start over */
	strbuf_reset(&s.names);
	expire_tokens = 1;
	s.refuse_restart = 1;
	CHECK_INTEQ(k8s_list(c, &configmaps, "ns1", NULL, 2, collect, &s, &e), -1);
	CHECK_STREQ(e.reason, "Stopped");
	CHECK_STREQ(s.names.buf, "a:ConfigMap:v1 b:Odd:odd/v9 RESTART ");
	strbuf_release(&s.names);
	stop(c);
}

static void test_list_refuses_hostile_pages(void)
{
	struct k8s_client *c = start(answer_list);
	struct k8s_resource_type broken = configmaps;
	struct seen s = { STRBUF_INIT, 0, 0, 0 };
	struct k8s_error e;
	int before;

	expire_tokens = 0;
	repeat_token = 1;
	CHECK_INTEQ(k8s_list(c, &configmaps, "ns1", NULL, 1, collect, &s, &e), -1);
	CHECK_STREQ(e.reason, "EndlessList");
	CHECK_INTEQ(atomic_load(&srv.requests), 2);
	repeat_token = 0;
	snprintf(broken.plural, sizeof broken.plural, "broken");
	CHECK_INTEQ(k8s_list(c, &broken, "ns1", NULL, 1, collect, &s, &e), -1);
	CHECK_STREQ(e.reason, "MalformedReply");
	/* the caller stops after the first object: no second page is asked for */
	strbuf_reset(&s.names);
	s.stop_at = 1;
	s.count = 0;
	before = atomic_load(&srv.requests);
	CHECK_INTEQ(k8s_list(c, &configmaps, "ns1", NULL, 2, collect, &s, &e), -1);
	CHECK_STREQ(e.reason, "Stopped");
	CHECK_STREQ(s.names.buf, "a:ConfigMap:v1 ");
	CHECK_INTEQ(atomic_load(&srv.requests) - before, 1);
	strbuf_release(&s.names);
	stop(c);
}

/* ---- discovery ---- */

static void answer_aggregated(const struct loopback_request *rq, struct strbuf *out, void *ud)
{
	(void)ud;
	remember(rq);
	if (strcmp(rq->target, "/api") == 0)
		json_reply(out, 200, "{\"kind\":\"APIGroupDiscoveryList\",\"items\":[{\"metadata\":{},\"versions\":["
			   "{\"version\":\"v1\",\"resources\":["
			   "{\"resource\":\"pods\",\"responseKind\":{\"kind\":\"Pod\"},\"scope\":\"Namespaced\","
			   "\"verbs\":[\"get\",\"list\",\"delete\",\"bogus\"]},"
			   "{\"resource\":\"pods/log\",\"responseKind\":{\"kind\":\"Pod\"},\"scope\":\"Namespaced\"},"
			   "{\"resource\":\"nodes\",\"responseKind\":{\"kind\":\"Node\"},\"scope\":\"Cluster\",\"verbs\":[\"list\"]},"
			   "{\"resource\":\"\",\"responseKind\":{\"kind\":\"Empty\"}},"
			   "{\"resource\":\"nokind\"}]}]}]}");
	else if (strcmp(rq->target, "/apis") == 0)
		json_reply(out, 200, "{\"kind\":\"APIGroupDiscoveryList\",\"items\":["
			   "{\"metadata\":{\"name\":\"apps\"},\"versions\":["
			   "{\"version\":\"v2\",\"freshness\":\"Stale\",\"resources\":[{\"resource\":\"stale\",\"responseKind\":{\"kind\":\"S\"}}]},"
			   "{\"version\":\"v1\",\"freshness\":\"Current\",\"resources\":[{\"resource\":\"deployments\","
			   "\"responseKind\":{\"kind\":\"Deployment\"},\"scope\":\"Namespaced\",\"verbs\":[\"create\",\"patch\"]}]},"
			   "{\"version\":\"v1beta1\",\"resources\":[{\"resource\":\"old\",\"responseKind\":{\"kind\":\"Old\"}}]}]}]}");
	else
		json_reply(out, 404, "{}");
}

static void test_discovery_aggregated(void)
{
	struct k8s_client *c = start(answer_aggregated);
	struct k8s_resource_list list;
	const struct k8s_resource_type *t;
	struct k8s_error e;

	CHECK_INTEQ(k8s_discover(c, K8S_DISCOVERY_AUTO, &list, &e), 0);
	CHECK_INTEQ(list.aggregated, 1);
	CHECK(strstr(seen_accept, "apidiscovery.k8s.io;v=v2") != NULL);
	CHECK_STREQ(seen_targets.buf, "GET /api\nGET /apis\n");
	/* subresources, nameless and kindless entries are left out; the stale and the less
	 * preferred versions too */
	CHECK_INTEQ(list.n, 3);
	t = k8s_resource_find(&list, "", "pods");
	CHECK(t && t->namespaced && strcmp(t->kind, "Pod") == 0 && strcmp(t->version, "v1") == 0);
	CHECK(t && t->verbs == (K8S_VERB_GET | K8S_VERB_LIST | K8S_VERB_DELETE));
	t = k8s_resource_find(&list, NULL, "nodes");
	CHECK(t && !t->namespaced && t->verbs == K8S_VERB_LIST);
	t = k8s_resource_find(&list, "apps", "deployments");
	CHECK(t && strcmp(t->version, "v1") == 0 && t->verbs == (K8S_VERB_CREATE | K8S_VERB_PATCH));
	CHECK(k8s_resource_find(&list, "apps", "stale") == NULL);
	CHECK(k8s_resource_find(&list, "apps", "old") == NULL);
	CHECK(k8s_resource_find(&list, "", "pods/log") == NULL);
	CHECK(k8s_resource_find(&list, "", "deployments") == NULL);
	k8s_resource_list_free(&list);
	CHECK(list.items == NULL && list.n == 0);
	stop(c);
}

static int legacy_forbid;

static void answer_legacy(const struct loopback_request *rq, struct strbuf *out, void *ud)
{
	(void)ud;
	remember(rq);
	if (strcmp(rq->target, "/api") == 0)
		json_reply(out, 200, "{\"kind\":\"APIVersions\",\"versions\":[\"v1\"]}");
	else if (strcmp(rq->target, "/api/v1") == 0)
		json_reply(out, 200, "{\"kind\":\"APIResourceList\",\"resources\":["
			   "{\"name\":\"configmaps\",\"kind\":\"ConfigMap\",\"namespaced\":true,\"verbs\":[\"get\",\"watch\"]},"
			   "{\"name\":\"configmaps/status\",\"kind\":\"ConfigMap\",\"namespaced\":true}]}");
	else if (strcmp(rq->target, "/apis") == 0)
		json_reply(out, 200, "{\"kind\":\"APIGroupList\",\"groups\":["
			   "{\"name\":\"apps\",\"preferredVersion\":{\"groupVersion\":\"apps/v1\",\"version\":\"v1\"}},"
			   "{\"name\":\"nopref\"},"
			   "{\"name\":\"metrics.k8s.io\",\"preferredVersion\":{\"groupVersion\":\"metrics.k8s.io/v1beta1\",\"version\":\"v1beta1\"}}]}");
	else if (strcmp(rq->target, "/apis/apps/v1") == 0)
		json_reply(out, 200, "{\"resources\":[{\"name\":\"deployments\",\"kind\":\"Deployment\",\"namespaced\":true,"
			   "\"verbs\":[\"deletecollection\"]}]}");
	else if (legacy_forbid)
		json_reply(out, 403, "{\"kind\":\"Status\",\"reason\":\"Forbidden\",\"message\":\"no\"}");
	else	/* an aggregated server that is down; Retry-After past the retry budget: no retry */
		loopback_reply(out, 503, "Retry-After: 3600\r\n", "down", 4);
}

static void test_discovery_legacy(void)
{
	struct k8s_client *c = start(answer_legacy);
	struct k8s_resource_list list;
	const struct k8s_resource_type *t;
	struct k8s_error e;

	legacy_forbid = 0;
	CHECK_INTEQ(k8s_discover(c, K8S_DISCOVERY_LEGACY, &list, &e), 0);
	CHECK_INTEQ(list.aggregated, 0);
	CHECK_STREQ(seen_accept, "application/json");
	CHECK_INTEQ(list.n, 2);
	t = k8s_resource_find(&list, "", "configmaps");
	CHECK(t && t->namespaced && t->verbs == (K8S_VERB_GET | K8S_VERB_WATCH));
	t = k8s_resource_find(&list, "apps", "deployments");
	CHECK(t && strcmp(t->version, "v1") == 0 && t->verbs == K8S_VERB_DELETECOLLECTION);
	/* the group that answered 503 is left out, asked once */
	CHECK(strstr(seen_targets.buf, "GET /apis/metrics.k8s.io/v1beta1\n") != NULL);
	CHECK(strstr(strstr(seen_targets.buf, "metrics.k8s.io") + 1, "metrics.k8s.io") == NULL);
	k8s_resource_list_free(&list);
	/* any other failure of a group fails discovery, and leaves no list behind */
	legacy_forbid = 1;
	CHECK_INTEQ(k8s_discover(c, K8S_DISCOVERY_LEGACY, &list, &e), -1);
	CHECK_INTEQ(e.http_status, 403);
	CHECK(list.items == NULL && list.n == 0);
	stop(c);
}

/* A push back (429) with a hostile Retry-After: a caller that paces itself gets it at once,
 * the wait it asks cut to K8S_RETRY_AFTER_MAX_MS (a garbage one: none named); the client on
 * its own retries it. */
static const char *pushback_after;
static int pushback_seen;

static void answer_pushback(const struct loopback_request *rq, struct strbuf *out, void *ud)
{
	char head[128];

	(void)ud;
	remember(rq);
	snprintf(head, sizeof head, "Content-Type: application/json\r\nRetry-After: %s\r\n", pushback_after);
	if (pushback_seen++ < 1 || strcmp(pushback_after, "0") != 0)
		loopback_reply(out, 429, head, "{\"kind\":\"Status\",\"reason\":\"TooManyRequests\",\"message\":\"slow down\"}", 66);
	else
		json_reply(out, 200, "{\"kind\":\"ConfigMap\"}");
}

static void test_pushback(void)
{
	struct k8s_client *c = start(answer_pushback);
	struct k8s_error e;
	cJSON *obj = NULL;

	k8s_client_return_pushback(c, 1);
	pushback_after = "86400";
	pushback_seen = 0;
	CHECK_INTEQ(k8s_get(c, "/api/v1/namespaces/a/configmaps/b", &obj, &e), -1);
	CHECK_INTEQ(pushback_seen, 1);
	CHECK(k8s_error_pushback(&e));
	CHECK_INTEQ(e.http_status, 429);
	CHECK_INTEQ(e.retry_after_ms, K8S_RETRY_AFTER_MAX_MS);
	pushback_after = "1e9 or so";
	CHECK_INTEQ(k8s_get(c, "/api/v1/namespaces/a/configmaps/b", &obj, &e), -1);
	CHECK_INTEQ(e.retry_after_ms, -1);
	/* on its own, the client waits it out */
	k8s_client_return_pushback(c, 0);
	pushback_after = "0";
	pushback_seen = 0;
	CHECK_INTEQ(k8s_get(c, "/api/v1/namespaces/a/configmaps/b", &obj, &e), 0);
	CHECK_INTEQ(pushback_seen, 2);
	cJSON_Delete(obj);
	stop(c);
}

int main(void)
{
	RUN(test_client_new_refuses_bad_settings);
	RUN(test_pushback);
	RUN(test_resource_path_escapes_every_segment);
	RUN(test_error_describe_words);
	RUN(test_delete_refuses_unknown_propagation);
	RUN(test_status_replies_become_errors);
	RUN(test_object_reply_size_limit);
	RUN(test_depth_limit);
	RUN(test_value_count_limit);
	RUN(test_list_follows_continue_tokens);
	RUN(test_list_restarts_when_its_token_expires);
	RUN(test_list_refuses_hostile_pages);
	RUN(test_discovery_aggregated);
	RUN(test_discovery_legacy);
	strbuf_release(&seen_targets);
	return check_done();
}
