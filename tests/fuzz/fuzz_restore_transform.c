/* libFuzzer target: backed-up objects come from a repository anybody with its keys can write.
 * The input is a JSON array of objects (or one object): each goes through the skip rules and
 * the transformation under every resource type with special rules, with maps taken from the
 * input itself, then the whole set is put in creation order. */
#include "restore_order.h"
#include "restore_transform.h"
#include "strbuf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_types[][2] = {
	{ "", "services" }, { "", "persistentvolumes" }, { "", "persistentvolumeclaims" }, { "", "pods" },
	{ "", "namespaces" }, { "apps", "statefulsets" }, { "apps", "replicasets" }, { "batch", "jobs" },
	{ "rbac.authorization.k8s.io", "rolebindings" }, { "networking.k8s.io", "networkpolicies" },
	{ "apiextensions.k8s.io", "customresourcedefinitions" }, { "", "configmaps" }, { "x.example", "widgets" },
};
#define FUZZ_TYPES (sizeof fuzz_types / sizeof fuzz_types[0])

static int fuzz_every_other_port(long port, void *ud)
{
	(void)ud;
	return port % 2 == 0;
}

static void fuzz_warning(const char *message, void *ud)
{
	*(size_t *)ud += strlen(message);
}

static const char *fuzz_str(const cJSON *o, const char *key)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));

	return s ? s : "";
}

static void fuzz_one(const struct restore_transform *t, const cJSON *item, size_t type)
{
	cJSON *copy = cJSON_Duplicate(item, 1);
	char *out;

	(void)restore_skip_reason(fuzz_types[type][0], fuzz_types[type][1], copy);
	restore_transform_apply(t, fuzz_types[type][0], fuzz_types[type][1], copy);
	out = cJSON_PrintUnformatted(copy);
	free(out);
	cJSON_Delete(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *doc = cJSON_ParseWithLength((const char *)data, size), *item;
	struct restore_names uids = { 0 }, volumes = { 0 };
	struct restore_order_key *keys;
	size_t warned = 0, n = 0, *idx;
	char err[256], label[64];

	if (!doc)
		return 0;
	const cJSON *items = cJSON_IsArray(doc) ? doc : NULL;
	const cJSON *first = items ? cJSON_GetArrayItem(doc, 0) : doc;
	struct restore_transform t = {
		.namespace_map = cJSON_GetObjectItemCaseSensitive(first, "nsmap"),
		.storage_class_map = cJSON_GetObjectItemCaseSensitive(first, "scmap"),
		.cluster_class_map = cJSON_GetObjectItemCaseSensitive(first, "data"),
		.backup_name = fuzz_str(first, "kind"),
		.restore_id = "7",
		.restored_uids = &uids,
		.restored_volumes = &volumes,
		.node_port_take = fuzz_every_other_port,
		.warn = fuzz_warning,
		.warn_ud = &warned,
	};
	restore_map_check(t.namespace_map, "namespace_map", 1, err, sizeof err);
	restore_map_check(t.storage_class_map, "storage_class_map", 0, err, sizeof err);
	restore_label_value(t.backup_name, label);
	if (items) {
		cJSON_ArrayForEach(item, items) {
			const cJSON *meta = cJSON_GetObjectItemCaseSensitive(item, "metadata");
			restore_names_add(&uids, fuzz_str(meta, "uid"));
			restore_names_add(&volumes, fuzz_str(meta, "name"));
		}
	}
	restore_names_seal(&uids);
	restore_names_seal(&volumes);

	size_t count = items ? (size_t)cJSON_GetArraySize(items) : 1;
	keys = calloc(count ? count : 1, sizeof *keys);
	idx = calloc(count ? count : 1, sizeof *idx);
	for (item = items ? items->child : doc; item && n < count; item = items ? item->next : NULL, n++) {
		const cJSON *meta = cJSON_GetObjectItemCaseSensitive(item, "metadata");
		for (size_t type = 0; type < FUZZ_TYPES; type++)
			fuzz_one(&t, item, type);
		keys[n] = (struct restore_order_key){ fuzz_str(item, "apiVersion"), fuzz_str(item, "kind"),
						      fuzz_str(meta, "namespace"), fuzz_str(meta, "name") };
		idx[n] = n;
		if (!items)
			break;
	}
	restore_order_sort(keys, idx, items ? n : 1);
	free(keys);
	free(idx);
	restore_names_free(&uids);
	restore_names_free(&volumes);
	cJSON_Delete(doc);
	return 0;
}
