/* Arbitrary bytes as a hook script under small limits. Besides the sanitizers, checks that a
 * run never allocates past the cap and never overstays the deadline by more than the slack
 * one uninterruptible C call may take (patterns are bounded to about 0.5 s unsanitized).
 * The overstay is measured in this thread's CPU time: on a loaded machine the wall clock also
 * counts time the scheduler gave to other processes, which says nothing about the sandbox. */
#include "lua_sandbox.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FUZZ_MEMORY (8u << 20)
#define FUZZ_TIME_MS 200
#define FUZZ_SLACK_MS 5000

static long thread_cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void drop_log(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

static int fuzz_answer(lua_State *L)
{
	lua_pushinteger(L, *(int *)lua_sandbox_ctx(L));
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct lua_sandbox_limits limits = { FUZZ_MEMORY, 200000, FUZZ_TIME_MS };
	static const luaL_Reg fns[] = { { "answer", fuzz_answer }, { NULL, NULL } };
	static int answer = 42;
	struct lua_sandbox *sb = lua_sandbox_new(&limits, drop_log, NULL);
	cJSON *job = cJSON_Parse("{\"name\":\"fuzz\",\"items\":[1,2,3],\"empty\":{}}");
	struct lua_sandbox_result res;
	int line, column;
	char msg[256];

	lua_sandbox_add_library(sb, "k8s", fns, &answer);
	lua_sandbox_set_global_json(sb, "job", job);
	cJSON_Delete(job);
	long cpu_ms = thread_cpu_ms();

	lua_sandbox_run(sb, "fuzz.lua", (const char *)data, size, &res);
	cpu_ms = thread_cpu_ms() - cpu_ms;
	if (res.memory_peak > FUZZ_MEMORY || cpu_ms > FUZZ_TIME_MS + FUZZ_SLACK_MS ||
	    (!res.ok && res.error[0] == '\0')) {
		fprintf(stderr, "fuzz_lua_sandbox: peak %zu bytes, %ld ms (%ld ms of CPU), ok %d, error \"%s\"\n",
			res.memory_peak, res.elapsed_ms, cpu_ms, res.ok, res.error);
		abort();
	}
	lua_sandbox_free(sb);
	if (lua_sandbox_check_syntax("fuzz.lua", (const char *)data, size, &line, &column, msg, sizeof msg) == 0 &&
	    (line || column || msg[0]))
		abort();
	return 0;
}
