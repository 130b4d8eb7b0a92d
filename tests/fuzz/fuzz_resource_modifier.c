/* libFuzzer target: a restore plan's resource modifiers are a tenant's text. The input is the
 * rules document, then a line "---json", then an object as JSON: the rules are parsed and, when
 * valid, applied to that object under a few resource types and to a fixed Deployment. */
#include "resource_modifier.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const deployment = "{\"metadata\":{\"name\":\"web\",\"labels\":{\"a\":\"b\"}},\"spec\":"
	"{\"replicas\":1,\"template\":{\"spec\":{\"containers\":[{\"image\":\"docker.io/x\"}]}}}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *sep, err[512];
	struct resource_modifiers *m;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	sep = strstr(text, "\n---json\n");
	if (sep)
		*sep = '\0';
	m = resource_modifiers_parse(text, strlen(text), err, sizeof err);
	if (m) {
		cJSON *objs[2] = { cJSON_Parse(deployment), sep ? cJSON_Parse(sep + 9) : NULL };
		for (int i = 0; i < 2; i++) {
			if (!objs[i])
				continue;
			cJSON *before = cJSON_Duplicate(objs[i], 1), *changes = cJSON_CreateArray();
			resource_modifiers_apply(m, "apps", "deployments", "shop", objs[i], err, sizeof err);
			resource_modifiers_apply(m, "", "pods", "", objs[i], err, sizeof err);
			resource_modifiers_diff(before, objs[i], changes, 20);	/* the wizard's preview */
			cJSON_Delete(changes);
			cJSON_Delete(before);
			cJSON_Delete(objs[i]);
		}
	}
	resource_modifiers_free(m);
	free(text);
	return 0;
}
