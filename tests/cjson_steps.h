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

#endif
