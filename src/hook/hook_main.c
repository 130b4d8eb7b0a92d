/* stowage-hook: runs one tenant's Lua hook in a process of its own, started by the runner for
 * each hook. It holds no master key, no database connection and nothing of another tenant: its
 * environment is empty, its descriptors are the pipe to the runner (0 in, 1 out) and stderr,
 * and it confines itself (hook_confine.h) before it reads the script. Every call the script
 * makes on the cluster goes to the runner, which checks it again and makes it.
 *
 * Usage: stowage-hook ADDRESS_SPACE_BYTES CPU_SECONDS
 * In:  {"limits": {memory, instructions, time_ms}, "namespace", "granted": [...], "dry_run",
 *       "job", "params", "chunk", "source"}
 * Out: {"log": line} per line, {"call": request} per call (answered), then {"result": {...},
 *      "writes": [...]} and exit 0. */
#include "hook_confine.h"
#include "hook_link.h"
#include "lua_k8s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int hook_fds[2] = { 0, 1 };

static void hook_log(void *ctx, const char *line)
{
	cJSON *msg = cJSON_CreateObject();

	(void)ctx;
	cJSON_AddStringToObject(msg, "log", line);
	hook_link_send(hook_fds[1], msg, 0);
	cJSON_Delete(msg);
}

static double number(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsNumber(v) && v->valuedouble > 0 ? v->valuedouble : 0;
}

int main(int argc, char **argv)
{
	struct lua_sandbox_limits limits;
	struct lua_k8s_scope scope = { .link = hook_fds };
	struct lua_sandbox_result res;
	const char *granted[65] = { NULL }, *source, *chunk;
	const cJSON *lim, *g;
	cJSON *init, *msg, *result;
	struct lua_k8s *k;
	size_t ngranted = 0;
	char err[256];

	if (argc != 3) {
		fprintf(stderr, "usage: stowage-hook ADDRESS_SPACE_BYTES CPU_SECONDS\n");
		return 2;
	}
	if (hook_confine((size_t)strtoull(argv[1], NULL, 10), strtol(argv[2], NULL, 10), err, sizeof err) < 0) {
		fprintf(stderr, "stowage-hook: cannot confine itself: %s\n", err);
		return 126;
	}
	if (hook_link_recv(hook_fds[0], HOOK_LINK_MAX_TO_HOOK, 0, &init, err, sizeof err) < 0) {
		fprintf(stderr, "stowage-hook: %s\n", err);
		return 2;
	}
	lim = cJSON_GetObjectItemCaseSensitive(init, "limits");
	limits.memory_bytes = (size_t)number(lim, "memory");
	limits.instructions = (uint64_t)number(lim, "instructions");
	limits.time_ms = (long)number(lim, "time_ms");
	scope.namespace = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(init, "namespace"));
	scope.dry_run = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(init, "dry_run"));
	cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(init, "granted"))
		if (cJSON_IsString(g) && ngranted < 64)
			granted[ngranted++] = g->valuestring;
	scope.granted = granted;
	source = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(init, "source"));
	chunk = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(init, "chunk"));
	if (!scope.namespace || !source || !chunk) {
		fprintf(stderr, "stowage-hook: the runner sent no namespace, chunk or source\n");
		return 2;
	}
	k = lua_k8s_new(&scope);
	lua_k8s_run(k, &limits, cJSON_GetObjectItemCaseSensitive(init, "job"),
		    cJSON_GetObjectItemCaseSensitive(init, "params"), chunk, source, strlen(source), hook_log, NULL, &res);
	msg = cJSON_CreateObject();
	result = cJSON_AddObjectToObject(msg, "result");
	cJSON_AddBoolToObject(result, "ok", res.ok);
	cJSON_AddBoolToObject(result, "continue_on_failure", res.continue_on_failure);
	cJSON_AddStringToObject(result, "error", res.error);
	cJSON_AddNumberToObject(result, "memory_peak", (double)res.memory_peak);
	cJSON_AddNumberToObject(result, "instructions", (double)res.instructions);
	cJSON_AddNumberToObject(result, "elapsed_ms", (double)res.elapsed_ms);
	cJSON_AddItemToObject(msg, "writes", cJSON_Duplicate(lua_k8s_writes(k), 1));
	hook_link_send(hook_fds[1], msg, 0);
	cJSON_Delete(msg);
	lua_k8s_free(k);
	cJSON_Delete(init);
	return 0;
}
