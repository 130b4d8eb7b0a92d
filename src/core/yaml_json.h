/* YAML documents as cJSON trees and back (libyaml, the YAML 1.2 core schema), within a budget:
 * what a tenant uploads (resource modifiers, hooks' yaml.decode) and what is shown as YAML. */
#ifndef STOWAGE_YAML_JSON_H
#define STOWAGE_YAML_JSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

#define YAML_JSON_MAX_DEPTH 64

/* Parses one YAML document into a new cJSON tree. Returns 0, -1 with err ("line 3 column 5:
 * ..."), or -2 when the tree would exceed budget bytes. */
int yaml_json_parse(const char *text, size_t len, size_t budget, cJSON **out, char *err,
		    size_t errlen);
/* Prints v as a YAML document into a new NUL-terminated string (free()). Returns 0, -1 with err,
 * or -2 when the text would exceed limit bytes. */
int yaml_json_print(const cJSON *v, size_t limit, char **out, char *err, size_t errlen);

#endif
