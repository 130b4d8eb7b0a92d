/* What a walk over tenant JSON costs, counted rather than timed: cJSON keeps an array or object
 * as a linked list, so an index or a key is answered by walking links, and a loop that asks
 * one per item is quadratic. A test that includes this header (in one file) and links with
 * $(CJSON_STEPS_WRAP) routes those calls of the code under test through the wrappers below,
 * which add the links each one walks to cjson_steps; the test then bounds the count, which
 * no machine's speed or load changes.
 *
 *   cjson_steps = 0;
 *   restore_transform_apply(&t, "", "configmaps", obj);   // 4000 owner references
 *   CHECK(cjson_steps <= 4000);
 */
#ifndef STOWAGE_CJSON_STEPS_H
#define STOWAGE_CJSON_STEPS_H

#include <cjson/cJSON.h>

static long cjson_steps;

cJSON *__real_cJSON_GetArrayItem(const cJSON *array, int index);
cJSON *__wrap_cJSON_GetArrayItem(const cJSON *array, int index);
int __real_cJSON_GetArraySize(const cJSON *array);
int __wrap_cJSON_GetArraySize(const cJSON *array);
void __real_cJSON_DeleteItemFromArray(cJSON *array, int which);
void __wrap_cJSON_DeleteItemFromArray(cJSON *array, int which);

cJSON *__wrap_cJSON_GetArrayItem(const cJSON *array, int index)
{
	cjson_steps += index > 0 ? index : 0;
	return __real_cJSON_GetArrayItem(array, index);
}

int __wrap_cJSON_GetArraySize(const cJSON *array)
{
	int n = __real_cJSON_GetArraySize(array);

	cjson_steps += n;
	return n;
}

void __wrap_cJSON_DeleteItemFromArray(cJSON *array, int which)
{
	cjson_steps += which > 0 ? which : 0;
	__real_cJSON_DeleteItemFromArray(array, which);
}

/* the links walked to the member found, or all of them */
cJSON *__real_cJSON_GetObjectItemCaseSensitive(const cJSON *object, const char *string);
cJSON *__wrap_cJSON_GetObjectItemCaseSensitive(const cJSON *object, const char *string);

cJSON *__wrap_cJSON_GetObjectItemCaseSensitive(const cJSON *object, const char *string)
{
	cJSON *found = __real_cJSON_GetObjectItemCaseSensitive(object, string);

	for (const cJSON *x = object ? object->child : NULL; x && x != found; x = x->next)
		cjson_steps++;
	return found;
}

/* on two objects each member of one is looked up by name in the other (counted for the top
 * level only); on two arrays a walk of both */
cJSON_bool __real_cJSON_Compare(const cJSON *a, const cJSON *b, cJSON_bool case_sensitive);
cJSON_bool __wrap_cJSON_Compare(const cJSON *a, const cJSON *b, cJSON_bool case_sensitive);

cJSON_bool __wrap_cJSON_Compare(const cJSON *a, const cJSON *b, cJSON_bool case_sensitive)
{
	if (cJSON_IsObject(a) && cJSON_IsObject(b))
		cjson_steps += (long)__real_cJSON_GetArraySize(a) * __real_cJSON_GetArraySize(b);
	else if (cJSON_IsArray(a) && cJSON_IsArray(b))
		cjson_steps += __real_cJSON_GetArraySize(a);
	return __real_cJSON_Compare(a, b, case_sensitive);
}

#endif
