/* Converts values between Lua, cJSON, JSON text and YAML text: the one place values cross
 * the sandbox boundary, so one set of rules applies everywhere.
 *
 *   Lua -> JSON: nil and json.null -> null; booleans; integers up to 10^15 in magnitude;
 *   finite floats (NaN and inf refused; printed with 15 significant digits); strings that are valid UTF-8 without NUL bytes;
 *   a table is an array when it was made by json.array() or decoded from an array, or when
 *   its keys are exactly 1..n (n > 0); an object when all its keys are strings; so an empty
 *   table is the object {} unless marked with json.array(). Anything else, a table that
 *   contains itself, or nesting deeper than LUA_CONVERT_MAX_DEPTH is an error naming the path.
 *   JSON -> Lua: null -> json.null, whole numbers up to 2^53 -> integers, arrays -> tables
 *   marked as arrays (so that [] stays [] when encoded again).
 *   YAML: the JSON data model read with the YAML 1.2 core schema; aliases, more than one
 *   document and non-scalar keys are refused; .inf and .nan are refused like NaN in JSON.
 *
 * Data built outside the Lua heap (cJSON trees, text) is charged against a byte budget that
 * the caller takes from lua_sandbox_remaining_memory(). */
#ifndef STOWAGE_LUA_CONVERT_H
#define STOWAGE_LUA_CONVERT_H

#include <stddef.h>

#include <cjson/cJSON.h>
#include <lua.h>

#define LUA_CONVERT_MAX_DEPTH 64

/* Sets the globals json (encode, decode, array, null) and yaml (encode, decode). */
void lua_convert_open(lua_State *L);

/* The value at idx as a new cJSON tree. Never raises a Lua error. Returns 0, -1 when the value
 * cannot be represented (err names the path and reason), -2 when the tree would exceed budget
 * bytes. */
int lua_convert_to_cjson(lua_State *L, int idx, size_t budget, cJSON **out, char *err,
			 size_t errlen);
/* Pushes v as a Lua value. May raise (memory, nesting deeper than LUA_CONVERT_MAX_DEPTH). */
void lua_convert_push_cjson(lua_State *L, const cJSON *v);

#endif
