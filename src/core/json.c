#include "json.h"
#include "strbuf.h"

#include <stdlib.h>
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

struct json_place {
	cJSON *item;
	size_t at;
};

static int json_place_cmp(const void *a, const void *b)
{
	const struct json_place *x = a, *y = b;
	int c = strcmp(x->item->valuestring, y->item->valuestring);

	return c ? c : (x->at > y->at) - (x->at < y->at);
}

void json_array_unique(cJSON *arr)
{
	size_t n = 0, at = 0;
	struct json_place *v;
	cJSON *e;

	cJSON_ArrayForEach(e, arr)
		n += cJSON_IsString(e);
	if (n < 2)
		return;
	v = xmalloc(n * sizeof *v);
	n = 0;
	cJSON_ArrayForEach(e, arr)
		if (cJSON_IsString(e))
			v[n++] = (struct json_place){ e, at++ };
	qsort(v, n, sizeof *v, json_place_cmp);
	for (size_t i = 1, first = 0; i < n; i++) {	/* the first of each run of equal strings stays */
		if (strcmp(v[first].item->valuestring, v[i].item->valuestring) == 0)
			cJSON_Delete(cJSON_DetachItemViaPointer(arr, v[i].item));
		else
			first = i;
	}
	free(v);
}
