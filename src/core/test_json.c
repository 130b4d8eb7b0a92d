#include "json.h"
#include "check.h"

#include <stdlib.h>

static void test_truncate_keeps_the_first_items(void)
{
	cJSON *a = cJSON_Parse("[\"a\",\"b\",\"c\",\"d\"]");

	json_array_truncate(a, 5);
	CHECK_INTEQ(cJSON_GetArraySize(a), 4);
	json_array_truncate(a, 2);
	CHECK_INTEQ(cJSON_GetArraySize(a), 2);
	CHECK(json_array_has(a, "b") && !json_array_has(a, "c"));
	/* the list stays whole: an item added after goes at its end */
	cJSON_AddItemToArray(a, cJSON_CreateString("e"));
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetArrayItem(a, 2)), "e");
	json_array_truncate(a, 0);
	CHECK_INTEQ(cJSON_GetArraySize(a), 0);
	cJSON_AddItemToArray(a, cJSON_CreateString("f"));
	CHECK_INTEQ(cJSON_GetArraySize(a), 1);
	cJSON_Delete(a);
}

static void test_unique_keeps_the_first_of_each_in_order(void)
{
	cJSON *a = cJSON_Parse("[\"b\",\"a\",\"b\",1,\"c\",\"a\",\"a\",\"d\",\"b\"]");
	char *text;

	json_array_unique(a);
	text = cJSON_PrintUnformatted(a);
	CHECK_STREQ(text, "[\"b\",\"a\",1,\"c\",\"d\"]");
	free(text);
	cJSON_AddItemToArray(a, cJSON_CreateString("e"));
	CHECK_INTEQ(cJSON_GetArraySize(a), 6);
	cJSON_Delete(a);
}

int main(void)
{
	RUN(test_unique_keeps_the_first_of_each_in_order);
	RUN(test_truncate_keeps_the_first_items);
	return check_done();
}
