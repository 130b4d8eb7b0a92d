#include "json.h"

#include <string.h>

const char *json_str(const cJSON *o, const char *name)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));

	return s ? s : "";
}

double json_num(const cJSON *o, const char *name)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsNumber(n) ? n->valuedouble : 0;
}

int json_array_has(const cJSON *arr, const char *s)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, arr)
		if (cJSON_IsString(v) && strcmp(v->valuestring, s) == 0)
			return 1;
	return 0;
}

void json_array_truncate(cJSON *arr, int n)
{
	cJSON *e = cJSON_GetArrayItem(arr, n), *next;

	for (; e; e = next) {
		next = e->next;
		cJSON_Delete(cJSON_DetachItemViaPointer(arr, e));
	}
}
