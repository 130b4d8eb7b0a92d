/* Runs one tenant's Lua 5.4 hook in a fresh, capped lua_State: a memory cap enforced by our
 * allocator, an instruction budget and a wall-clock deadline enforced by a count hook that a
 * script's pcall cannot swallow, and only the safe parts of the standard library. This is a
 * security boundary: see docs/hooks.md for what scripts can and cannot do, and why. */
#ifndef STOWAGE_LUA_SANDBOX_H
#define STOWAGE_LUA_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <lua.h>
#include <lauxlib.h>

struct lua_sandbox_limits {
	size_t memory_bytes;	/* everything the state allocates; at least LUA_SANDBOX_MIN_MEMORY */
	uint64_t instructions;	/* VM instructions, counted in steps of up to 1000 */
	long time_ms;		/* wall clock from the start of lua_sandbox_run */
};

#define LUA_SANDBOX_MIN_MEMORY (256 * 1024)

struct lua_sandbox_result {
	int ok;
	/* The script's global on_failure: 1 for "continue", 0 for "fail" or unset. Read after the
	 * run, also when the script failed after setting it. */
	int continue_on_failure;
	/* "limit: instruction budget of N exceeded at hook.lua:12", or the script's own error
	 * with its position ("hook.lua:3: no such deployment"). Empty when ok. */
	char error[512];
	size_t memory_peak;	/* bytes, including the state's own few dozen KiB */
	uint64_t instructions;
	long elapsed_ms;
};

/* Called once per line a script prints or logs; the line holds no newline and no control
 * characters other than tab. */
typedef void (*lua_sandbox_log_fn)(void *ctx, const char *line);

struct lua_sandbox;

/* NULL (and a logged reason) when a limit is zero or the memory cap is below the minimum. */
struct lua_sandbox *lua_sandbox_new(const struct lua_sandbox_limits *limits,
				    lua_sandbox_log_fn log_fn, void *log_ctx);
/* Registers fns as the global table `name` (e.g. "k8s"). Each function reaches ctx through
 * lua_sandbox_ctx(L). Must be called before lua_sandbox_run; fns must outlive the sandbox.
 * A name that is not an identifier or that is already taken is a programming error: abort. */
void lua_sandbox_add_library(struct lua_sandbox *sb, const char *name, const luaL_Reg *fns,
			     void *ctx);
/* Sets the global `name` (e.g. "job") to a copy of value, converted like json.decode. */
void lua_sandbox_set_global_json(struct lua_sandbox *sb, const char *name, const cJSON *value);
/* Runs source in a fresh state. Returns 0 when the script completed, -1 otherwise; out is
 * filled either way. May be called more than once; every run starts from scratch. */
int lua_sandbox_run(struct lua_sandbox *sb, const char *chunkname, const char *source,
		    size_t len, struct lua_sandbox_result *out);
void lua_sandbox_free(struct lua_sandbox *sb);

/* For C functions registered by lua_sandbox_add_library: their library's ctx. */
void *lua_sandbox_ctx(lua_State *L);
/* Milliseconds left before the deadline (0 when passed); LONG_MAX outside a sandbox. C
 * functions that wait (HTTP calls, polling) bound their waits with it. */
long lua_sandbox_remaining_ms(lua_State *L);
/* Bytes the state may still allocate; SIZE_MAX outside a sandbox. C functions that build
 * data outside the Lua heap (cJSON trees, HTTP bodies) keep them within it. */
size_t lua_sandbox_remaining_memory(lua_State *L);
/* Raises the limit error if the deadline has passed or a limit was already hit. C functions
 * call it before and after anything slow. Raising a limit error from C with
 * lua_sandbox_memory_error() makes it uncatchable like the others. */
void lua_sandbox_check_limits(lua_State *L);
int lua_sandbox_memory_error(lua_State *L, size_t wanted);

/* Syntax check without running: 0 when source compiles, else -1 with the line, a best-effort
 * column (of the token named in "near 'x'", 0 when unknown) and Lua's message without the
 * "chunk:line:" prefix. */
int lua_sandbox_check_syntax(const char *chunkname, const char *source, size_t len, int *line,
			     int *column, char *msg, size_t msglen);

#endif
