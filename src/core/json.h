/* Reading members of a parsed JSON object (cJSON) without a NULL check at every use. */
#ifndef STOWAGE_JSON_H
#define STOWAGE_JSON_H

#include <cjson/cJSON.h>

/* The string member name of o, or "" when o has none or it is not a string. */
const char *json_str(const cJSON *o, const char *name);
/* The number member name of o, or 0 when o has none or it is not a number. */
double json_num(const cJSON *o, const char *name);
/* 1 when the array arr holds the string s, else 0 (arr NULL or not an array: 0). */
int json_array_has(const cJSON *arr, const char *s);
/* Drops the items of arr from index n on, in one walk (a loop of cJSON_DeleteItemFromArray,
 * asking the size each time, walks the whole list per item). */
void json_array_truncate(cJSON *arr, int n);
/* Drops every string item of arr that repeats one before it; the rest keep their order. By
 * sorting: n log n however many there are. */
void json_array_unique(cJSON *arr);

#endif
