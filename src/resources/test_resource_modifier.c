#include "resource_modifier.h"
#include "check.h"
#include "cjson_steps.h"

#include <stdlib.h>

static struct resource_modifiers *parse(const char *text, char *err, size_t errlen)
{
	return resource_modifiers_parse(text, strlen(text), err, errlen);
}

static cJSON *deployment(void)
{
	return cJSON_Parse("{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web-front\","
			   "\"namespace\":\"shop\",\"labels\":{\"tier\":\"web\",\"env\":\"prod\"},\"annotations\":{\"team\":\"a\","
			   "\"keep\":\"yes\"}},\"spec\":{\"replicas\":3,\"template\":{\"spec\":{\"containers\":[{\"name\":\"app\","
			   "\"image\":\"docker.io/library/nginx:1.25\"},{\"name\":\"side\",\"image\":\"quay.io/x/y:1\"}],"
			   "\"initContainers\":[{\"name\":\"init\",\"image\":\"docker.io/library/busybox\"}]}}}}");
}

static char *at(cJSON *obj, const char *path)
{
	static char buf[256];
	cJSON *v = obj;
	char *copy = strdup(path), *save = NULL;

	for (char *tok = strtok_r(copy, "/", &save); tok && v; tok = strtok_r(NULL, "/", &save))
		v = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, atoi(tok)) : cJSON_GetObjectItemCaseSensitive(v, tok);
	free(copy);
	if (!v)
		return strcpy(buf, "(none)");
	char *text = cJSON_PrintUnformatted(v);
	snprintf(buf, sizeof buf, "%s", text);
	free(text);
	return buf;
}

static void test_velero_shaped_rules_apply(void)
{
	char err[400] = "";
	struct resource_modifiers *m = parse(
		"version: v1\n"
		"resourceModifierRules:\n"
		"- conditions:\n"
		"    groupResource: deployments.apps\n"
		"    resourceNameRegex: \"^web-.*$\"\n"
		"    namespaces: [shop]\n"
		"    labelSelector:\n"
		"      matchLabels: {tier: web}\n"
		"      matchExpressions: [{key: env, operator: In, values: [prod, staging]}]\n"
		"    matches: [{path: /spec/replicas, value: \"3\"}]\n"
		"  patches:\n"
		"  - {operation: replace, path: /spec/replicas, value: \"0\"}\n"
		"  - {operation: add, path: /metadata/labels/restored, value: \"yes\"}\n"
		"  - {operation: add, path: /spec/template/spec/containers/-, value: '{\"name\":\"log\",\"image\":\"docker.io/library/fluent\"}'}\n"
		"  - {operation: copy, from: /metadata/labels/tier, path: /metadata/annotations/tier}\n"
		"  - {operation: move, from: /metadata/annotations/keep, path: /metadata/annotations/kept}\n"
		"  - {operation: test, path: /kind, value: Deployment}\n"
		"  mergePatches:\n"
		"  - patchData: '{\"metadata\": {\"annotations\": {\"team\": null, \"owner\": \"platform\"}}}'\n"
		"  imageRewrites:\n"
		"  - {from: docker.io/library/, to: registry.example.com/mirror/}\n"
		"- conditions: {groupResource: \"*.apps\"}\n"
		"  patches: [{operation: remove, path: /spec/template/spec/initContainers}]\n"
		"- conditions: {groupResource: pods}\n"
		"  patches: [{operation: remove, path: /spec}]\n", err, sizeof err);
	cJSON *d = deployment();

	CHECK(m != NULL);
	if (!m) {
		printf("# %s\n", err);
		cJSON_Delete(d);
		return;
	}
	CHECK_INTEQ(resource_modifiers_count(m), 3);
	CHECK_INTEQ(resource_modifiers_apply(m, "apps", "deployments", "shop", d, err, sizeof err), 2);
	CHECK_STREQ(at(d, "spec/replicas"), "0");
	CHECK_STREQ(at(d, "metadata/labels/restored"), "\"yes\"");
	CHECK_STREQ(at(d, "metadata/annotations"), "{\"tier\":\"web\",\"kept\":\"yes\",\"owner\":\"platform\"}");
	CHECK_STREQ(at(d, "spec/template/spec/containers/0/image"), "\"registry.example.com/mirror/nginx:1.25\"");
	CHECK_STREQ(at(d, "spec/template/spec/containers/1/image"), "\"quay.io/x/y:1\"");
	CHECK_STREQ(at(d, "spec/template/spec/containers/2/image"), "\"registry.example.com/mirror/fluent\"");
	CHECK_STREQ(at(d, "spec/template/spec/initContainers"), "(none)");
	cJSON_Delete(d);

	/* a condition that does not hold: nothing changes */
	d = deployment();
	CHECK_INTEQ(resource_modifiers_apply(m, "apps", "deployments", "blog", d, err, sizeof err), 1);	/* only *.apps */
	CHECK_STREQ(at(d, "spec/replicas"), "3");
	cJSON_Delete(d);
	d = deployment();
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(d, "spec"), "replicas", cJSON_CreateNumber(2));
	CHECK_INTEQ(resource_modifiers_apply(m, "apps", "deployments", "shop", d, err, sizeof err), 1);
	CHECK_STREQ(at(d, "spec/replicas"), "2");
	cJSON_Delete(d);
	/* a core resource and a cluster-scoped object */
	d = cJSON_Parse("{\"metadata\":{\"name\":\"p\"},\"spec\":{\"a\":1}}");
	CHECK_INTEQ(resource_modifiers_apply(m, "", "pods", "shop", d, err, sizeof err), 1);
	CHECK_STREQ(at(d, "spec"), "(none)");
	cJSON_Delete(d);
	resource_modifiers_free(m);
}

static void test_a_patch_that_cannot_apply_fails_the_object(void)
{
	char err[400] = "";
	struct resource_modifiers *m = parse("{\"version\":\"v1\",\"resourceModifierRules\":[{\"conditions\":"
					     "{\"groupResource\":\"*\"},\"patches\":[{\"operation\":\"test\",\"path\":\"/kind\","
					     "\"value\":\"Deployment\"},{\"operation\":\"replace\",\"path\":\"/spec/paused\","
					     "\"value\":\"true\"}]}]}", err, sizeof err);
	cJSON *d = deployment(), *cm = cJSON_Parse("{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"}}");

	CHECK(m != NULL);
	CHECK_INTEQ(resource_modifiers_apply(m, "apps", "deployments", "shop", d, err, sizeof err), -1);
	CHECK_STREQ(err, "resource modifier rule 1, patch 2 (replace): /spec/paused: there is nothing there to replace");
	CHECK_INTEQ(resource_modifiers_apply(m, "", "configmaps", "shop", cm, err, sizeof err), -1);
	CHECK_STREQ(err, "resource modifier rule 1, patch 1 (test): /kind: test failed: the value differs");
	cJSON_Delete(d);
	cJSON_Delete(cm);
	resource_modifiers_free(m);
}

static void test_pointer_escapes_and_arrays(void)
{
	char err[400] = "";
	struct resource_modifiers *m = parse(
		"version: v1\nresourceModifierRules:\n- conditions: {groupResource: services}\n  patches:\n"
		"  - {operation: add, path: /metadata/annotations/example.com~1team, value: a}\n"
		"  - {operation: add, path: /metadata/annotations/x~0y, value: b}\n"
		"  - {operation: add, path: /spec/ports/0, value: '{\"port\": 1}'}\n"
		"  - {operation: remove, path: /spec/ports/2}\n", err, sizeof err);
	cJSON *svc = cJSON_Parse("{\"metadata\":{\"name\":\"s\",\"annotations\":{}},\"spec\":{\"ports\":[{\"port\":80},{\"port\":443}]}}");

	CHECK(m != NULL);
	CHECK_INTEQ(resource_modifiers_apply(m, "", "services", "shop", svc, err, sizeof err), 1);
	CHECK_STREQ(at(svc, "metadata/annotations"), "{\"example.com/team\":\"a\",\"x~y\":\"b\"}");
	CHECK_STREQ(at(svc, "spec/ports"), "[{\"port\":1},{\"port\":80}]");
	cJSON_Delete(svc);
	resource_modifiers_free(m);
}

static void test_bad_rules_are_refused_in_words(void)
{
	static const struct { const char *text, *want; } cases[] = {
		{ "version: v2\nresourceModifierRules: []\n", "version: must be v1" },
		{ "version: v1\nresourceModifierRules:\n- patches: [{operation: add, path: /a, value: 1}]\n",
		  "resourceModifierRules[0].conditions: must be a map" },
		{ "version: v1\nresourceModifierRules:\n- conditions: {namespaces: [a]}\n  patches: []\n",
		  "resourceModifierRules[0].conditions.groupResource: required: a resource[.group] such as deployments.apps, or *" },
		{ "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches: [{operation: repalce, path: /a, value: 1}]\n",
		  "resourceModifierRules[0].patches[0].operation: must be one of add, remove, replace, copy, move, test" },
		{ "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches: [{operation: add, path: a, value: 1}]\n",
		  "resourceModifierRules[0].patches[0].path: required: a JSON Pointer such as /spec/replicas" },
		{ "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches: [{operation: move, path: /a}]\n",
		  "resourceModifierRules[0].patches[0].from: required for move: a JSON Pointer" },
		{ "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods, resourceNameRegex: \"(\"}\n  patches: []\n",
		  "resourceModifierRules[0].conditions.resourceNameRegex: not a POSIX extended regular expression: " },
		{ "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  strategicPatches: [{patchData: x}]\n",
		  "resourceModifierRules[0].strategicPatches: is not a field here (strategicPatches are not supported)" },
		{ "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n",
		  "resourceModifierRules[0]: changes nothing: give patches, mergePatches or imageRewrites" },
		{ "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  mergePatches: [{patchData: '[1]'}]\n",
		  "resourceModifierRules[0].mergePatches[0].patchData: must be a map (a merge patch of the object)" },
		{ "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods, labelSelector: {matchExpressions: [{key: a, operator: Has}]}}\n  patches: []\n",
		  "resourceModifierRules[0].conditions.labelSelector.matchExpressions: each needs a key and an operator: In, NotIn, Exists or DoesNotExist" },
		{ "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  imageRewrites: [{from: '', to: x}]\n",
		  "resourceModifierRules[0].imageRewrites: each must be {from, to}: an image prefix such as docker.io/library/ and what replaces it" },
		{ "- just\n- a list\n", "resource modifiers: must be a map with version and resourceModifierRules" },
		{ "version: v1\nresourceModifierRules: [\n", "resource modifiers: " },
	};

	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char err[400] = "";
		struct resource_modifiers *m = parse(cases[i].text, err, sizeof err);
		CHECK(m == NULL);
		if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
			printf("# case %zu: got \"%s\"\n#   want \"%s\"\n", i, err, cases[i].want);
		CHECK(strncmp(err, cases[i].want, strlen(cases[i].want)) == 0);
		resource_modifiers_free(m);
	}
	/* nothing at all is no rules */
	char err[64];
	struct resource_modifiers *m = parse("  \n", err, sizeof err);
	CHECK(m != NULL && resource_modifiers_count(m) == 0);
	resource_modifiers_free(m);
}

/* The preview's diff names each changed field by its pointer, with the values before and after. */
static void test_diff_names_what_a_rule_changed(void)
{
	char err[256];
	struct resource_modifiers *m = parse("version: v1\nresourceModifierRules:\n- conditions: {groupResource: deployments.apps}\n"
					     "  imageRewrites: [{from: docker.io/library/, to: reg.example/m/}]\n"
					     "  mergePatches: [{patchData: '{\"metadata\": {\"annotations\": {\"team\": null, \"a/b\": \"x\"}}}'}]\n",
					     err, sizeof err);
	cJSON *before = deployment(), *after = cJSON_Duplicate(before, 1), *changes = cJSON_CreateArray();

	CHECK(m != NULL);
	CHECK(resource_modifiers_apply(m, "apps", "deployments", "shop", after, err, sizeof err) == 1);
	CHECK(resource_modifiers_diff(before, after, changes, 50) == 4);
	char *text = cJSON_PrintUnformatted(changes);
	CHECK(strstr(text, "{\"path\":\"/metadata/annotations/team\",\"before\":\"\\\"a\\\"\",\"after\":\"\"}") != NULL);
	CHECK(strstr(text, "\"path\":\"/metadata/annotations/a~1b\",\"before\":\"\"") != NULL);
	CHECK(strstr(text, "{\"path\":\"/spec/template/spec/containers/0/image\",\"before\":\"\\\"docker.io/library/nginx:1.25\\\"\","
			   "\"after\":\"\\\"reg.example/m/nginx:1.25\\\"\"}") != NULL);
	CHECK(strstr(text, "initContainers/0/image") != NULL);
	CHECK(strstr(text, "containers/1") == NULL);	/* quay.io is left alone */
	free(text);
	/* bounded, and nothing when nothing changed */
	cJSON_Delete(changes);
	changes = cJSON_CreateArray();
	CHECK(resource_modifiers_diff(before, after, changes, 2) == 2);
	cJSON_Delete(changes);
	changes = cJSON_CreateArray();
	CHECK(resource_modifiers_diff(before, before, changes, 50) == 0);
	cJSON_Delete(changes);
	cJSON_Delete(before);
	cJSON_Delete(after);
	resource_modifiers_free(m);
}

/* The preview diffs a tenant's objects: a ConfigMap of 40000 keys took seconds of a request lane
 * when each key was looked up by name and each level compared whole. Counted, not timed: one
 * merge of the keys sorted, with what changed named as before, in the first object's order and
 * then what the second adds. */
static void test_diff_of_a_large_object_is_one_walk(void)
{
	enum { N = 2000 };
	cJSON *before = cJSON_CreateObject(), *after = cJSON_CreateObject(), *changes = cJSON_CreateArray();
	cJSON *was = cJSON_AddObjectToObject(before, "data"), *is = cJSON_AddObjectToObject(after, "data");
	char k[16];

	for (int i = 0; i < N; i++) {
		snprintf(k, sizeof k, "k%d", i);
		cJSON_AddStringToObject(was, k, "v");
		snprintf(k, sizeof k, "k%d", N - 1 - i);	/* the other order */
		if (N - 1 - i != 11)
			cJSON_AddStringToObject(is, k, N - 1 - i == 7 ? "w" : "v");
	}
	cJSON_AddStringToObject(is, "new", "v");
	cjson_steps = 0;
	CHECK(resource_modifiers_diff(before, after, changes, 50) == 3);
	CHECK(cjson_steps <= 10 * N);	/* by name: N * N */
	char *text = cJSON_PrintUnformatted(changes);
	CHECK_STREQ(text, "[{\"path\":\"/data/k7\",\"before\":\"\\\"v\\\"\",\"after\":\"\\\"w\\\"\"},"
			  "{\"path\":\"/data/k11\",\"before\":\"\\\"v\\\"\",\"after\":\"\"},"
			  "{\"path\":\"/data/new\",\"before\":\"\",\"after\":\"\\\"v\\\"\"}]");
	free(text);
	cJSON_Delete(changes);
	changes = cJSON_CreateArray();
	cjson_steps = 0;
	CHECK(resource_modifiers_diff(before, before, changes, 50) == 0);
	CHECK(cjson_steps <= 10 * N);
	cJSON_Delete(changes);
	cJSON_Delete(before);
	cJSON_Delete(after);
}

int main(void)
{
	RUN(test_diff_names_what_a_rule_changed);
	RUN(test_diff_of_a_large_object_is_one_walk);
	RUN(test_velero_shaped_rules_apply);
	RUN(test_a_patch_that_cannot_apply_fails_the_object);
	RUN(test_pointer_escapes_and_arrays);
	RUN(test_bad_rules_are_refused_in_words);
	return check_done();
}
