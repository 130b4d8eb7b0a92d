/* What the sandbox costs: the same work in a lua_sandbox and in a plain, unrestricted
 * luaL_newstate + luaL_openlibs state (the named peer), measured in the same run.
 *
 *   create+run+free of an empty script, per operation
 *   json.encode + json.decode of a 100-key object, per round trip (one state, many trips)
 *   a hook as a job runs it: in its own stowage-hook process (start, confine, run, exit),
 *   against the same script run with lua_k8s_run in this process (STOWAGE_HOOK names the
 *   program; default ./stowage-hook, as from the build directory)
 */
#include "hook_process.h"
#include "lua_convert.h"
#include "lua_sandbox.h"

#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EMPTY_RUNS 5000
#define ROUND_TRIPS 5000
#define HOOK_RUNS 200
#define REPEATS 7	/* interleaved; the best of each is reported, the machine is shared */

static const char round_trip_script[] =
	"local obj = {}\n"
	"for i = 1, 100 do obj['key' .. i] = i % 2 == 0 and i or ('value ' .. i) end\n"
	"for i = 1, ROUNDS do\n"
	"  local back = json.decode(json.encode(obj))\n"
	"  assert(back.key100 == 100)\n"
	"end\n";

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void must(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "lua_sandbox_bench: %s failed\n", what);
		exit(1);
	}
}

static const struct lua_sandbox_limits bench_limits = { 64u << 20, 1000000000, 600000 };

static double sandbox_empty_us(void)
{
	struct lua_sandbox_result res;
	double t0 = now_us();

	for (int i = 0; i < EMPTY_RUNS; i++) {
		struct lua_sandbox *sb = lua_sandbox_new(&bench_limits, NULL, NULL);

		must(lua_sandbox_run(sb, "bench.lua", "", 0, &res) == 0, "sandbox empty run");
		lua_sandbox_free(sb);
	}
	return (now_us() - t0) / EMPTY_RUNS;
}

static double plain_empty_us(void)
{
	double t0 = now_us();

	for (int i = 0; i < EMPTY_RUNS; i++) {
		lua_State *L = luaL_newstate();

		luaL_openlibs(L);
		must(luaL_loadbufferx(L, "", 0, "=bench.lua", "t") == LUA_OK && lua_pcall(L, 0, 0, 0) == LUA_OK,
		     "plain empty run");
		lua_close(L);
	}
	return (now_us() - t0) / EMPTY_RUNS;
}

static char *round_trip_source(void)
{
	static char src[sizeof round_trip_script + 16];
	char rounds[16];
	const char *at = strstr(round_trip_script, "ROUNDS");

	snprintf(rounds, sizeof rounds, "%d", ROUND_TRIPS);
	snprintf(src, sizeof src, "%.*s%s%s", (int)(at - round_trip_script), round_trip_script, rounds,
		 at + strlen("ROUNDS"));
	return src;
}

static double sandbox_round_trip_us(const char *src)
{
	struct lua_sandbox *sb = lua_sandbox_new(&bench_limits, NULL, NULL);
	struct lua_sandbox_result res;
	double t0 = now_us();

	if (lua_sandbox_run(sb, "bench.lua", src, strlen(src), &res) != 0) {
		fprintf(stderr, "lua_sandbox_bench: %s\n", res.error);
		exit(1);
	}
	lua_sandbox_free(sb);
	return (now_us() - t0) / ROUND_TRIPS;
}

static double plain_round_trip_us(const char *src)
{
	lua_State *L = luaL_newstate();
	double t0 = now_us();

	luaL_openlibs(L);
	lua_convert_open(L);
	must(luaL_loadbufferx(L, src, strlen(src), "=bench.lua", "t") == LUA_OK && lua_pcall(L, 0, 0, 0) == LUA_OK,
	     "plain round trip");
	lua_close(L);
	return (now_us() - t0) / ROUND_TRIPS;
}

static double hook_us(int in_process)
{
	struct lua_k8s_scope scope = { .namespace = "bench" };
	struct lua_k8s *k = lua_k8s_new(&scope);
	const char *path = getenv("STOWAGE_HOOK") ? getenv("STOWAGE_HOOK") : "./stowage-hook";
	struct lua_sandbox_result res;
	double t0 = now_us();

	for (int i = 0; i < HOOK_RUNS; i++) {
		int rc = in_process ? lua_k8s_run(k, &bench_limits, NULL, NULL, "bench.lua", "log('x')", 8, NULL, NULL, &res)
				    : hook_process_run(path, k, &scope, &bench_limits, NULL, NULL, "bench.lua", "log('x')",
						       NULL, NULL, &res, NULL);

		if (rc != 0) {
			fprintf(stderr, "lua_sandbox_bench: hook run: %s\n", res.error);
			exit(1);
		}
	}
	lua_k8s_free(k);
	return (now_us() - t0) / HOOK_RUNS;
}

int main(void)
{
	const char *src = round_trip_source();
	double se = 1e300, pe = 1e300, sr = 1e300, pr = 1e300, hp = 1e300, hi = 1e300;

	for (int i = 0; i < REPEATS; i++) {
		se = fmin(se, sandbox_empty_us());
		pe = fmin(pe, plain_empty_us());
		sr = fmin(sr, sandbox_round_trip_us(src));
		pr = fmin(pr, plain_round_trip_us(src));
		hp = fmin(hp, hook_us(0));
		hi = fmin(hi, hook_us(1));
	}

	printf("%-44s %10s %10s %8s\n", "operation", "sandbox", "plain", "ratio");
	printf("%-44s %8.2f us %7.2f us %7.2fx\n", "create+run+free, empty script", se, pe, se / pe);
	printf("%-44s %8.2f us %7.2f us %7.2fx\n", "json encode+decode, 100-key object", sr, pr, sr / pr);
	printf("%-44s %8.0f us %7.0f us %7.2fx\n", "one hook: own process vs this process", hp, hi, hp / hi);
	printf("peer: luaL_newstate + luaL_openlibs (Lua %s), same json library\n", LUA_VERSION_MAJOR "." LUA_VERSION_MINOR);
	return 0;
}
