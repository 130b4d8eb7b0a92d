/* The migration pre-check: the source cluster's PVCs and the target's namespace, classes and
 * volumes, as the runner asks them, each cluster a scripted HTTPS server on loopback
 * (tests/loopback_server.h) whose answers are the test's input. */
#include "migrate_precheck.h"
#include "strbuf.h"
#include "check.h"
#include "loopback_server.h"

#include <stdlib.h>
#include <string.h>

/* What each cluster holds, by path: 200 with {} for a path listed, 404 otherwise; a path in
 * forbid answers 403. */
struct cluster {
	struct loopback_server srv;
	const char *const *exists;
	const char *forbid;
	const char *const *pages;	/* the source's PVC list pages, in order */
	int expire_once;		/* the first request with a continue token answers 410 */
	struct strbuf seen;
	struct k8s_client *client;
	const char *own_uid;		/* passed to migrate_precheck */
};

static void json_reply(struct strbuf *out, int status, const char *json)
{
	loopback_reply(out, status, "Content-Type: application/json\r\n", json, strlen(json));
}

static void answer(const struct loopback_request *rq, struct strbuf *out, void *ud)
{
	struct cluster *c = ud;
	const char *cont = strstr(rq->target, "&continue=");

	strbuf_addf(&c->seen, "%s\n", rq->target);
	if (c->forbid && strncmp(rq->target, c->forbid, strlen(c->forbid)) == 0) {
		json_reply(out, 403, "{\"kind\":\"Status\",\"reason\":\"Forbidden\",\"message\":\"not allowed here\"}");
		return;
	}
	if (strstr(rq->target, "/persistentvolumeclaims?limit=")) {
		int page = cont ? atoi(cont + 10) : 0;

		if (cont && c->expire_once) {
			c->expire_once = 0;
			json_reply(out, 410, "{\"kind\":\"Status\",\"reason\":\"Expired\",\"message\":\"compacted\"}");
		} else if (c->pages && c->pages[page]) {
			json_reply(out, 200, c->pages[page]);
		} else {
			json_reply(out, 200, "{\"items\":[]}");
		}
		return;
	}
	for (const char *const *p = c->exists; p && *p; p++)
		if (strcmp(rq->target, *p) == 0) {
			json_reply(out, 200, "{\"metadata\":{\"uid\":\"ns-uid-1\"}}");
			return;
		}
	json_reply(out, 404, "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"message\":\"not found\"}");
}

static void cluster_start(struct cluster *c)
{
	struct k8s_cluster_conf conf = { .token = "t" };
	char err[256];

	c->seen = (struct strbuf)STRBUF_INIT;
	strbuf_addstr(&c->seen, "");
	if (loopback_server_start(&c->srv, 1, answer, c) < 0) {
		printf("Bail out! cannot start a loopback server\n");
		exit(1);
	}
	conf.api_url = c->srv.url;
	conf.ca_pem = c->srv.ca_pem;
	c->client = k8s_client_new(&conf, NULL, err, sizeof err);
	if (!c->client) {
		printf("Bail out! k8s_client_new: %s\n", err);
		exit(1);
	}
}

static void cluster_stop(struct cluster *c)
{
	k8s_client_free(c->client);
	loopback_server_stop(&c->srv);
	strbuf_release(&c->seen);
}

/* Runs the pre-check of namespace "shop" as the runner does; conflicts as one string. */
static int precheck(struct cluster *src, struct cluster *tgt, const char *classes_json, struct strbuf *conflicts,
		    char *err, size_t errlen)
{
	cJSON *classes = classes_json ? cJSON_Parse(classes_json) : cJSON_CreateObject();
	cJSON *list = cJSON_CreateArray(), *item;
	int rc;

	cluster_start(src);
	cluster_start(tgt);
	err[0] = '\0';
	rc = migrate_precheck(src->client, tgt->client, "shop", tgt->own_uid, classes, list, err, errlen);
	strbuf_reset(conflicts);
	strbuf_addstr(conflicts, "");
	cJSON_ArrayForEach(item, list)
		strbuf_addf(conflicts, "%s\n", cJSON_GetStringValue(item));
	cJSON_Delete(list);
	cJSON_Delete(classes);
	return rc;
}

static int count(const char *haystack, const char *needle)
{
	int n = 0;

	for (const char *p = haystack; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static const char *const two_claims[] = {
	"{\"items\":["
	"{\"metadata\":{\"name\":\"data\"},\"spec\":{\"storageClassName\":\"fast\",\"volumeName\":\"pv-data\"}},"
	"{\"metadata\":{\"name\":\"logs\"},\"spec\":{\"storageClassName\":\"fast\"}}],"
	"\"metadata\":{\"continue\":\"1\"}}",
	"{\"items\":["
	"{\"metadata\":{\"name\":\"cache\"},\"spec\":{\"volumeName\":\"\"}},"
	"{\"metadata\":{\"name\":\"media\"},\"spec\":{\"storageClassName\":\"slow\",\"volumeName\":\"pv-media\"}}]}",
	NULL,
};

static void test_nothing_in_the_way(void)
{
	static const char *const target_has[] = {
		"/apis/storage.k8s.io/v1/storageclasses/fast", "/apis/storage.k8s.io/v1/storageclasses/slow", NULL,
	};
	struct cluster src = { .pages = two_claims }, tgt = { .exists = target_has };
	struct strbuf conflicts = STRBUF_INIT;
	char err[512];

	CHECK_INTEQ(precheck(&src, &tgt, NULL, &conflicts, err, sizeof err), 0);
	CHECK_STREQ(conflicts.buf, "");
	CHECK_STREQ(err, "");
	/* the source is only listed, both pages; the target only asked */
	CHECK_STREQ(src.seen.buf, "/api/v1/namespaces/shop/persistentvolumeclaims?limit=500\n"
				  "/api/v1/namespaces/shop/persistentvolumeclaims?limit=500&continue=1\n");
	/* each class asked once, however many claims use it; a claim without a volume asks none */
	CHECK_STREQ(tgt.seen.buf, "/api/v1/namespaces/shop\n"
				  "/apis/storage.k8s.io/v1/storageclasses/fast\n"
				  "/api/v1/persistentvolumes/pv-data\n"
				  "/apis/storage.k8s.io/v1/storageclasses/slow\n"
				  "/api/v1/persistentvolumes/pv-media\n");
	cluster_stop(&src);
	cluster_stop(&tgt);
	strbuf_release(&conflicts);
}

static void test_conflicts_are_found(void)
{
	static const char *const target_has[] = {
		"/api/v1/namespaces/shop", "/api/v1/persistentvolumes/pv-media",
		"/apis/storage.k8s.io/v1/storageclasses/fast", NULL,
	};
	struct cluster src = { .pages = two_claims }, tgt = { .exists = target_has };
	struct strbuf conflicts = STRBUF_INIT;
	char err[512];

	/* the plan moves logs to class "gold", which the target lacks; "data" keeps "fast" */
	CHECK_INTEQ(precheck(&src, &tgt, "{\"shop/logs\":\"gold\",\"other/data\":\"gold\"}", &conflicts, err,
			     sizeof err), 0);
	CHECK_STREQ(conflicts.buf,
		    "namespace shop already exists in the target cluster\n"
		    "StorageClass gold, needed by PVC shop/logs, does not exist in the target cluster\n"
		    "StorageClass slow, needed by PVC shop/media, does not exist in the target cluster\n"
		    "PersistentVolume pv-media (bound to PVC shop/media) already exists in the target cluster\n");
	CHECK_INTEQ(count(tgt.seen.buf, "storageclasses/gold"), 1);
	cluster_stop(&src);
	cluster_stop(&tgt);
	strbuf_release(&conflicts);
}

static void test_a_list_that_starts_over_reports_each_conflict_once(void)
{
	static const char *const target_has[] = { "/api/v1/persistentvolumes/pv-data", NULL };
	struct cluster src = { .pages = two_claims, .expire_once = 1 }, tgt = { .exists = target_has };
	struct strbuf conflicts = STRBUF_INIT;
	char err[512];

	CHECK_INTEQ(precheck(&src, &tgt, NULL, &conflicts, err, sizeof err), 0);
	/* the first page was seen twice; its findings count once, and the second page's too */
	CHECK_INTEQ(count(src.seen.buf, "&continue=1"), 2);
	CHECK_STREQ(conflicts.buf,
		    "StorageClass fast, needed by PVC shop/data, does not exist in the target cluster\n"
		    "PersistentVolume pv-data (bound to PVC shop/data) already exists in the target cluster\n"
		    "StorageClass slow, needed by PVC shop/media, does not exist in the target cluster\n");
	cluster_stop(&src);
	cluster_stop(&tgt);
	strbuf_release(&conflicts);
}

static void test_hostile_claims(void)
{
	static const char *const odd[] = {
		"{\"items\":["
		"{\"metadata\":{\"name\":7},\"spec\":{\"storageClassName\":\"never-asked\"}},"
		"{\"spec\":{\"storageClassName\":\"never-asked\"}},"
		"{\"metadata\":{\"name\":\"x\"},\"spec\":{\"storageClassName\":\"../../../api/v1/namespaces/kube-system\","
		"\"volumeName\":\"a?b#c\"}},"
		"{\"metadata\":{\"name\":\"y\"},\"spec\":{\"storageClassName\":[\"fast\"],\"volumeName\":{\"x\":1}}},"
		"\"not an object\"]}",
		NULL,
	};
	struct cluster src = { .pages = odd }, tgt = { 0 };
	struct strbuf conflicts = STRBUF_INIT;
	char err[512];

	CHECK_INTEQ(precheck(&src, &tgt, NULL, &conflicts, err, sizeof err), 0);
	CHECK(strstr(tgt.seen.buf, "never-asked") == NULL);
	/* names from the source stay inside their path segment */
	CHECK(strstr(tgt.seen.buf, "/apis/storage.k8s.io/v1/storageclasses/..%2F..%2F..%2Fapi%2Fv1%2Fnamespaces%2Fkube-system\n") != NULL);
	CHECK(strstr(tgt.seen.buf, "/api/v1/persistentvolumes/a%3Fb%23c\n") != NULL);
	CHECK_INTEQ(count(tgt.seen.buf, "\n"), 3);
	CHECK_INTEQ(count(conflicts.buf, "\n"), 1);
	CHECK(strstr(conflicts.buf, "PVC shop/x") != NULL);
	cluster_stop(&src);
	cluster_stop(&tgt);
	strbuf_release(&conflicts);
}

/* A cutover finds the namespace its plan's pre-copy made (by uid) and goes on; a namespace of
 * the same name with another uid (made by somebody else) is still a conflict. */
static void test_a_namespace_of_an_earlier_pre_copy_is_no_conflict(void)
{
	static const char *const target_has[] = { "/api/v1/namespaces/shop", NULL };
	struct cluster src = { 0 }, tgt = { .exists = target_has, .own_uid = "ns-uid-1" };
	struct strbuf conflicts = STRBUF_INIT;
	char err[512];

	CHECK_INTEQ(precheck(&src, &tgt, NULL, &conflicts, err, sizeof err), 0);
	CHECK_STREQ(conflicts.buf, "");
	cluster_stop(&src);
	cluster_stop(&tgt);
	tgt = (struct cluster){ .exists = target_has, .own_uid = "ns-uid-2" };
	src = (struct cluster){ 0 };
	CHECK_INTEQ(precheck(&src, &tgt, NULL, &conflicts, err, sizeof err), 0);
	CHECK_STREQ(conflicts.buf, "namespace shop already exists in the target cluster\n");
	cluster_stop(&src);
	cluster_stop(&tgt);
	strbuf_release(&conflicts);
}

static void test_a_cluster_that_cannot_say_fails_the_check(void)
{
	struct cluster src = { .pages = two_claims }, tgt = { .forbid = "/api/v1/namespaces/shop" };
	struct strbuf conflicts = STRBUF_INIT;
	char err[512];

	/* the target cannot say whether the namespace exists: no answer, and nothing listed */
	CHECK_INTEQ(precheck(&src, &tgt, NULL, &conflicts, err, sizeof err), -1);
	CHECK(strstr(err, "forbidden (403): not allowed here") != NULL);
	CHECK_STREQ(src.seen.buf, "");
	cluster_stop(&src);
	cluster_stop(&tgt);

	/* the source cannot list: the error says so */
	src = (struct cluster){ .forbid = "/api/v1/namespaces/shop/persistentvolumeclaims" };
	tgt = (struct cluster){ 0 };
	CHECK_INTEQ(precheck(&src, &tgt, NULL, &conflicts, err, sizeof err), -1);
	CHECK_STREQ(err, "listing the PVCs of shop in the source: forbidden (403): not allowed here");
	cluster_stop(&src);
	cluster_stop(&tgt);

	/* the target cannot say whether a class exists: its words, not the listing's */
	src = (struct cluster){ .pages = two_claims };
	tgt = (struct cluster){ .forbid = "/apis/storage.k8s.io/v1/storageclasses/slow" };
	CHECK_INTEQ(precheck(&src, &tgt, NULL, &conflicts, err, sizeof err), -1);
	CHECK_STREQ(err, "forbidden (403): not allowed here");
	cluster_stop(&src);
	cluster_stop(&tgt);
	strbuf_release(&conflicts);
}

int main(void)
{
	RUN(test_nothing_in_the_way);
	RUN(test_conflicts_are_found);
	RUN(test_a_list_that_starts_over_reports_each_conflict_once);
	RUN(test_hostile_claims);
	RUN(test_a_cluster_that_cannot_say_fails_the_check);
	RUN(test_a_namespace_of_an_earlier_pre_copy_is_no_conflict);
	return check_done();
}
