#include "lua_sandbox.h"
#include "lua_convert.h"
#include "log.h"
#include "strbuf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <lualib.h>

#define HOOK_INTERVAL 1000		/* instructions between two count-hook calls */
#define LOG_LINE_MAX 4096		/* bytes of one logged line; the rest is cut */
#define LOG_TOTAL_MAX (1024 * 1024)	/* bytes one run may log */
#define SYNTAX_MEMORY (64 * 1024 * 1024)
#define SYNTAX_TIME_MS 250		/* a syntax check's compile time; see syntax_read */
#define SYNTAX_CHUNK 1024		/* bytes the parser gets between two looks at the clock */
/* A C call cannot be interrupted by the count hook, so pattern functions refuse work whose
 * worst case exceeds this many matcher steps: about half a second here (5 ns a step). */
#define PATTERN_STEP_LIMIT 1e8
#define PATTERN_MAX_LEN 256
/* Past the deadline the allocator refuses growth of this size or more: a C call that builds
 * a large result (string.upper of 30 MB) then fails before doing the work, where the hook,
 * which only runs between instructions, would let hundreds of them through. */
#define LATE_ALLOC_MIN (16 * 1024)

enum sandbox_limit { LIMIT_NONE, LIMIT_MEMORY, LIMIT_INSTRUCTIONS, LIMIT_TIME };

struct sandbox_library {
	char *name;
	const luaL_Reg *fns;
	void *ctx;
};

struct sandbox_global {
	char *name;
	cJSON *value;
};

struct lua_sandbox {
	struct lua_sandbox_limits limits;
	lua_sandbox_log_fn log_fn;
	void *log_ctx;
	struct sandbox_library *libs;
	size_t nlibs;
	struct sandbox_global *globals;
	size_t nglobals;
	/* State of the current run. */
	size_t mem_used, mem_peak;
	uint64_t instructions;
	int hook_interval;
	long long start_ns, deadline_ns;
	int running;			/* between lua_newstate and the end of the script */
	int refused_late;		/* the allocator refused growth after the deadline */
	enum sandbox_limit limit;
	char limit_msg[256];
	size_t log_bytes;
};

/* Names scripts see from us; libraries and globals added by callers may not take them. */
static const char *const sandbox_reserved[] = {
	"assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print",
	"rawequal", "rawget", "rawlen", "rawset", "select", "setmetatable", "tonumber",
	"tostring", "type", "xpcall", "_G", "_VERSION", "string", "table", "math", "utf8",
	"json", "yaml", "log", "sleep", "on_failure", NULL,
};

/* What survives of each standard library: an allow-list, so that a newer Lua adding a
 * function does not silently widen the sandbox. */
static const char *const base_allowed[] = {
	"assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print",
	"rawequal", "rawget", "rawlen", "rawset", "select", "setmetatable", "tonumber",
	"tostring", "type", "xpcall", "_G", "_VERSION", NULL,
};
static const char *const string_allowed[] = {
	"byte", "char", "find", "format", "gmatch", "gsub", "len", "lower", "match", "rep",
	"reverse", "sub", "upper", NULL,
};
static const char *const table_allowed[] = {
	"concat", "insert", "pack", "remove", "sort", "unpack", NULL,
};
static const char *const math_allowed[] = {
	"abs", "acos", "asin", "atan", "ceil", "cos", "deg", "exp", "floor", "fmod", "huge",
	"log", "max", "maxinteger", "min", "mininteger", "modf", "pi", "rad", "random", "sin",
	"sqrt", "tan", "tointeger", "type", "ult", NULL,
};
static const char *const utf8_allowed[] = {
	"char", "charpattern", "codepoint", "codes", "len", "offset", NULL,
};

/* ---- clock, allocator, limits -------------------------------------------------------- */

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Lua 5.4: when ptr is NULL, osize holds the type of the new object, not a size. Growth past
 * the cap is refused; shrinking and freeing never are. */
static void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct lua_sandbox *sb = ud;
	void *p;

	if (!ptr)
		osize = 0;
	if (nsize == 0) {
		free(ptr);
		sb->mem_used -= osize;
		return NULL;
	}
	if (nsize > osize && nsize - osize > sb->limits.memory_bytes - sb->mem_used)
		return NULL;
	if (nsize > osize && nsize >= LATE_ALLOC_MIN && sb->running && now_ns() >= sb->deadline_ns) {
		sb->refused_late = 1;
		return NULL;
	}
	p = realloc(ptr, nsize);
	if (!p)
		return NULL;
	sb->mem_used = sb->mem_used - osize + nsize;
	if (sb->mem_used > sb->mem_peak)
		sb->mem_peak = sb->mem_used;
	return p;
}

/* The sandbox of a state we created, or NULL for any other state. */
static struct lua_sandbox *sandbox_of(lua_State *L)
{
	void *ud;

	return lua_getallocf(L, &ud) == sandbox_alloc ? ud : NULL;
}

static void sandbox_hook(lua_State *L, lua_Debug *ar);

/* Records the first limit hit, with where the script was, and makes the hook fire on every
 * instruction from now on: whatever the script catches, the next instruction fails again. */
static void sandbox_set_limit(lua_State *L, struct lua_sandbox *sb, enum sandbox_limit limit,
			      lua_Debug *ar, const char *detail)
{
	char where[128] = "";
	int n = 0;

	if (sb->limit == LIMIT_NONE) {
		sb->limit = limit;
		if (ar && lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
			snprintf(where, sizeof where, " at %s:%d", ar->short_src, ar->currentline);
		if (limit == LIMIT_MEMORY)
			n = snprintf(sb->limit_msg, sizeof sb->limit_msg, "limit: memory limit of %zu bytes exceeded",
				     sb->limits.memory_bytes);
		else if (limit == LIMIT_INSTRUCTIONS)
			n = snprintf(sb->limit_msg, sizeof sb->limit_msg, "limit: instruction budget of %llu exceeded",
				     (unsigned long long)sb->limits.instructions);
		else
			n = snprintf(sb->limit_msg, sizeof sb->limit_msg, "limit: time limit of %ld ms exceeded",
				     sb->limits.time_ms);
		snprintf(sb->limit_msg + n, sizeof sb->limit_msg - n, "%s%s", where, detail ? detail : "");
	}
	lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, 1);
}

/* A failed allocation ends the script: as the memory limit, or as the time limit when the
 * allocator refused it for being past the deadline. */
static void sandbox_set_allocation_limit(lua_State *L, struct lua_sandbox *sb)
{
	sandbox_set_limit(L, sb, sb->refused_late ? LIMIT_TIME : LIMIT_MEMORY, NULL, NULL);
}

static int sandbox_raise_limit(lua_State *L, struct lua_sandbox *sb)
{
	lua_pushstring(L, sb->limit_msg);
	return lua_error(L);
}

/* Where the Lua code that called the running C function is. */
static lua_Debug *caller_of(lua_State *L, lua_Debug *ar)
{
	return lua_getstack(L, 1, ar) ? ar : NULL;
}

static void sandbox_hook(lua_State *L, lua_Debug *ar)
{
	struct lua_sandbox *sb = sandbox_of(L);

	if (sb->limit == LIMIT_NONE) {
		sb->instructions += (uint64_t)sb->hook_interval;
		if (sb->instructions > sb->limits.instructions)
			sandbox_set_limit(L, sb, LIMIT_INSTRUCTIONS, ar, NULL);
		else if (now_ns() >= sb->deadline_ns)
			sandbox_set_limit(L, sb, LIMIT_TIME, ar, NULL);
		else
			return;
	}
	sandbox_raise_limit(L, sb);
}

void lua_sandbox_check_limits(lua_State *L)
{
	struct lua_sandbox *sb = sandbox_of(L);
	lua_Debug ar;

	if (!sb)
		return;
	if (sb->limit == LIMIT_NONE && now_ns() >= sb->deadline_ns)
		sandbox_set_limit(L, sb, LIMIT_TIME, caller_of(L, &ar), NULL);
	if (sb->limit != LIMIT_NONE)
		sandbox_raise_limit(L, sb);
}

int lua_sandbox_memory_error(lua_State *L, size_t wanted)
{
	struct lua_sandbox *sb = sandbox_of(L);
	lua_Debug ar;
	char detail[64] = "";

	if (!sb)
		return luaL_error(L, "not enough memory");
	if (wanted)
		snprintf(detail, sizeof detail, " (%zu more bytes wanted)", wanted);
	sandbox_set_limit(L, sb, LIMIT_MEMORY, caller_of(L, &ar), detail);
	return sandbox_raise_limit(L, sb);
}

long lua_sandbox_remaining_ms(lua_State *L)
{
	struct lua_sandbox *sb = sandbox_of(L);
	long long left;

	if (!sb)
		return LONG_MAX;
	left = sb->deadline_ns - now_ns();
	return left > 0 ? (long)((left + 999999) / 1000000) : 0;	/* 0 only once passed */
}

size_t lua_sandbox_remaining_memory(lua_State *L)
{
	struct lua_sandbox *sb = sandbox_of(L);

	return sb ? sb->limits.memory_bytes - sb->mem_used : SIZE_MAX;
}

void *lua_sandbox_ctx(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

/* luaL_error with printf's formats (lua_pushfstring knows no %zu, %lld or %e). */
static int sandbox_errorf(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int sandbox_errorf(lua_State *L, const char *fmt, ...)
{
	char msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return luaL_error(L, "%s", msg);
}

/* ---- replaced base functions --------------------------------------------------------- */

/* After a protected call: limit errors go on up (the hook is already re-armed), the rest is
 * returned to the script as pcall would. base counts the slots below pcall's status. */
static int sandbox_after_pcall(lua_State *L, int status, int base)
{
	struct lua_sandbox *sb = sandbox_of(L);

	if (status == LUA_OK)
		return lua_gettop(L) - base;
	if (status == LUA_ERRMEM)
		sandbox_set_allocation_limit(L, sb);
	if (sb->limit != LIMIT_NONE)
		return lua_error(L);
	lua_pushboolean(L, 0);
	lua_pushvalue(L, -2);
	return 2;
}

static int sandbox_pcall(lua_State *L)
{
	luaL_checkany(L, 1);
	lua_pushboolean(L, 1);
	lua_insert(L, 1);
	return sandbox_after_pcall(L, lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 0), 0);
}

/* Lua calls a message handler before unwinding, so for an error raised by our hook it would
 * run inside the hook, where Lua switches hooks off: a looping handler would never stop. The
 * script's handler therefore sees only the script's own errors. */
static int sandbox_message_handler(lua_State *L)
{
	if (sandbox_of(L)->limit != LIMIT_NONE)
		return 1;
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

static int sandbox_xpcall(lua_State *L)
{
	int n = lua_gettop(L);

	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_pushvalue(L, 2);
	lua_pushcclosure(L, sandbox_message_handler, 1);
	lua_replace(L, 2);
	lua_pushboolean(L, 1);
	lua_pushvalue(L, 1);
	lua_rotate(L, 3, 2);	/* f, handler, true, f, args... */
	return sandbox_after_pcall(L, lua_pcall(L, n - 2, LUA_MULTRET, 2), 2);
}

/* tostring without addresses: "table", "function"; __tostring still applies. */
static const char *push_tostring(lua_State *L, int idx)
{
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
	case LUA_TBOOLEAN:
	case LUA_TNUMBER:
	case LUA_TSTRING:
		return luaL_tolstring(L, idx, NULL);
	case LUA_TLIGHTUSERDATA:
		if (!lua_touserdata(L, idx)) {
			lua_pushliteral(L, "null");
			return lua_tostring(L, -1);
		}
		break;
	default:
		break;
	}
	if (luaL_callmeta(L, idx, "__tostring")) {
		if (!lua_isstring(L, -1))
			luaL_error(L, "'__tostring' must return a string");
		return lua_tostring(L, -1);
	}
	lua_pushstring(L, luaL_typename(L, idx));
	return lua_tostring(L, -1);
}

static int sandbox_tostring(lua_State *L)
{
	luaL_checkany(L, 1);
	push_tostring(L, 1);
	return 1;
}

/* Finalizers run inside lua_close and the garbage collector with the hook switched off, so a
 * looping one would hang the runner: no object may get one. Lua marks an object for
 * finalization only when __gc is present at setmetatable time, so checking here suffices. */
static int sandbox_setmetatable(lua_State *L)
{
	if (lua_type(L, 2) == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "setmetatable: __gc metamethods are not available in hooks");
		lua_pop(L, 1);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

/* ---- print, log, sleep --------------------------------------------------------------- */

static void sandbox_log_line(struct lua_sandbox *sb, const char *s, size_t n)
{
	char line[LOG_LINE_MAX + 4];
	size_t k = n > LOG_LINE_MAX ? LOG_LINE_MAX : n;

	if (sb->log_bytes > LOG_TOTAL_MAX)
		return;
	sb->log_bytes += k + 1;
	if (sb->log_bytes > LOG_TOTAL_MAX) {
		sb->log_fn(sb->log_ctx, "[further output dropped: a hook may log at most 1 MiB]");
		return;
	}
	/* Control characters could fake lines or terminal output in the job log. */
	for (size_t i = 0; i < k; i++)
		line[i] = ((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f ? '?' : s[i];
	strcpy(line + k, n > k ? "..." : "");
	sb->log_fn(sb->log_ctx, line);
}

static int sandbox_print(lua_State *L)
{
	struct lua_sandbox *sb = sandbox_of(L);
	int n = lua_gettop(L);
	luaL_Buffer b;
	const char *s, *end;
	size_t len;

	luaL_buffinit(L, &b);
	for (int i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, '\t');
		push_tostring(L, i);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	if (!sb->log_fn)
		return 0;
	s = lua_tolstring(L, -1, &len);
	end = s + len;
	do {
		const char *nl = memchr(s, '\n', (size_t)(end - s));

		sandbox_log_line(sb, s, (size_t)((nl ? nl : end) - s));
		s = nl ? nl + 1 : end;
	} while (s < end);
	return 0;
}

static int sandbox_sleep(lua_State *L)
{
	struct lua_sandbox *sb = sandbox_of(L);
	lua_Number ms = luaL_checknumber(L, 1);
	long long until;
	struct timespec ts;
	lua_Debug ar;

	luaL_argcheck(L, ms >= 0 && ms <= 86400000, 1, "must be milliseconds from 0 to 86400000");
	lua_sandbox_check_limits(L);
	until = now_ns() + (long long)(ms * 1e6);
	if (until > sb->deadline_ns) {
		char detail[96];

		snprintf(detail, sizeof detail, " (sleep(%.0f) would end after the deadline)", ms);
		sandbox_set_limit(L, sb, LIMIT_TIME, caller_of(L, &ar), detail);
		return sandbox_raise_limit(L, sb);
	}
	ts.tv_sec = until / 1000000000LL;
	ts.tv_nsec = until % 1000000000LL;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
	return 0;
}

/* ---- bounded string and table functions ---------------------------------------------- */

/* For the bounded C functions below: they check the deadline first, since the hook may be
 * up to a thousand instructions away and each of them can take a while. */
static int call_original(lua_State *L)
{
	lua_sandbox_check_limits(L);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

/* Functions that walk a whole string without allocating (utf8.len of 60 MB, tonumber of a
 * long string): only the deadline check in front. */
static int sandbox_checked(lua_State *L)
{
	return call_original(L);
}

/* string.rep builds its result in one C call: refuse one larger than the memory left before
 * copying anything. */
static int sandbox_string_rep(lua_State *L)
{
	size_t len, seplen;
	lua_Integer n;
	double total;

	luaL_checklstring(L, 1, &len);
	n = luaL_checkinteger(L, 2);
	luaL_optlstring(L, 3, "", &seplen);
	total = n > 0 ? (double)len * (double)n + (double)seplen * (double)(n - 1) : 0;
	if (total > (double)lua_sandbox_remaining_memory(L))
		return lua_sandbox_memory_error(L, total >= (double)SIZE_MAX ? SIZE_MAX : (size_t)total);
	return call_original(L);
}

/* string.format: no %p (an address), and tables, functions and the like print as
 * tostring does here. Widths are already bounded to two digits by Lua 5.4. */
static int sandbox_string_format(lua_State *L)
{
	size_t len;
	const char *f = luaL_checklstring(L, 1, &len);

	for (size_t i = 0; i + 1 < len; i++) {
		if (f[i] != '%')
			continue;
		i++;
		if (f[i] == '%')
			continue;
		while (i < len && strchr("-+ #0123456789.", f[i]) && f[i])
			i++;
		if (i < len && f[i] == 'p')
			return luaL_error(L, "string.format: %%p is not available in hooks");
	}
	for (int i = 2; i <= lua_gettop(L); i++) {
		int t = lua_type(L, i);

		if (t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TUSERDATA || t == LUA_TTHREAD ||
		    t == LUA_TLIGHTUSERDATA) {
			push_tostring(L, i);
			lua_replace(L, i);
		}
	}
	return call_original(L);
}

/* Backtracking items of a Lua pattern: *, +, - (unless only closing captures follow), %b and
 * back-references; q counts '?', each of which can double the work. */
static int pattern_repetitions(const char *p, size_t m, int *q)
{
	int k = 0;

	*q = 0;
	for (size_t i = 0; i < m; i++) {
		size_t j;

		switch (p[i]) {
		case '%':
			if (i + 1 < m && (p[i + 1] == 'b' || isdigit((unsigned char)p[i + 1])))
				k++;
			i += p[i + 1] == 'b' ? 3 : 1;
			break;
		case '[':
			i += i + 1 < m && p[i + 1] == '^' ? 2 : 1;
			do {
				if (p[i] == '%')
					i++;
				i++;
			} while (i < m && p[i] != ']');
			break;
		case '?':
			(*q)++;
			break;
		case '*':
		case '+':
		case '-':
			for (j = i + 1; j < m && p[j] == ')'; j++)
				;
			k += j < m;	/* a trailing repetition never backtracks */
			break;
		default:
			break;
		}
	}
	return k;
}

/* Worst-case steps of matching pattern p against n bytes: about n^e / e! with e the number of
 * repetitions (plus one for the start positions of an unanchored search). anchors: 0 for
 * gmatch, where a leading '^' is a literal and every start position is still tried. */
static double pattern_cost(const char *p, size_t m, size_t n, int plain, int anchors)
{
	int q, k, e;
	double cost;

	if (plain)	/* memchr and memcmp: far cheaper per byte than the matcher */
		return (double)n * (double)m / 64;
	k = pattern_repetitions(p, m, &q);
	e = k + (!anchors || m == 0 || p[0] != '^');
	cost = k == 0 ? (double)m + 1 : 1;
	for (int i = 1; i <= e; i++)
		cost *= (double)(n + 1) / i;
	for (int i = 0; i < q; i++)
		cost *= 2;
	return cost;
}

static int pattern_has_specials(const char *p, size_t m)
{
	for (size_t i = 0; i < m; i++)
		if (p[i] && strchr("^$*+?.([%-", p[i]))
			return 1;
	return 0;
}

static int sandbox_pattern_call(lua_State *L, const char *fn, int find, int anchors)
{
	size_t n, m;
	const char *p;
	double cost;
	int plain;

	luaL_checklstring(L, 1, &n);
	p = luaL_checklstring(L, 2, &m);
	plain = find && (lua_toboolean(L, 4) || !pattern_has_specials(p, m));
	if (!plain && m > PATTERN_MAX_LEN)
		return luaL_error(L, "%s: patterns longer than %d bytes are not available in hooks", fn,
				  PATTERN_MAX_LEN);
	cost = pattern_cost(p, m, n, plain, anchors);
	if (cost > PATTERN_STEP_LIMIT)
		return sandbox_errorf(L, "%s: this pattern on %zu bytes could take %.0e steps (at most %.0e "
				  "in hooks); shorten the text or use fewer repetitions", fn, n, cost,
				  PATTERN_STEP_LIMIT);
	return call_original(L);
}

static int sandbox_string_find(lua_State *L) { return sandbox_pattern_call(L, "string.find", 1, 1); }
static int sandbox_string_match(lua_State *L) { return sandbox_pattern_call(L, "string.match", 0, 1); }
static int sandbox_string_gmatch(lua_State *L) { return sandbox_pattern_call(L, "string.gmatch", 0, 0); }
static int sandbox_string_gsub(lua_State *L) { return sandbox_pattern_call(L, "string.gsub", 0, 1); }

/* table.insert, remove, sort and concat loop in C over a length a __len metamethod may make
 * up; they get no more elements than the table really holds. */
static void table_check_range(lua_State *L, const char *fn, lua_Integer first, lua_Integer last)
{
	lua_Unsigned raw = lua_rawlen(L, 1);

	if (last >= first && (lua_Unsigned)last - (lua_Unsigned)first >= raw)
		sandbox_errorf(L, "%s: range %lld..%lld is longer than the table (%llu elements)", fn,
			   (long long)first, (long long)last, (unsigned long long)raw);
}

/* #t of the table argument, checked; with the deadline check call_original would make. */
static lua_Integer table_checked_length(lua_State *L, const char *fn)
{
	lua_Integer n;

	lua_sandbox_check_limits(L);
	n = luaL_len(L, 1);
	table_check_range(L, fn, 1, n);
	return n;
}

/* table.insert and remove as Lua 5.4 has them (ltablib.c), over the length checked here: the
 * originals would ask __len again, and a second answer larger than the first would have them
 * move elements in C for as long as it says (2^62 times). */
static int sandbox_table_insert(lua_State *L)
{
	lua_Integer e, pos;

	if (lua_type(L, 1) != LUA_TTABLE)
		return call_original(L);
	e = luaL_intop(+, table_checked_length(L, "table.insert"), 1);	/* the first empty element */
	switch (lua_gettop(L)) {
	case 2:
		pos = e;
		break;
	case 3:
		pos = luaL_checkinteger(L, 2);
		luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
		for (lua_Integer i = e; i > pos; i--) {
			lua_geti(L, 1, i - 1);
			lua_seti(L, 1, i);
		}
		break;
	default:
		return luaL_error(L, "wrong number of arguments to 'insert'");
	}
	lua_seti(L, 1, pos);
	return 0;
}

static int sandbox_table_remove(lua_State *L)
{
	lua_Integer size, pos;

	if (lua_type(L, 1) != LUA_TTABLE)
		return call_original(L);
	size = table_checked_length(L, "table.remove");
	pos = luaL_optinteger(L, 2, size);
	if (pos != size)
		luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2, "position out of bounds");
	lua_geti(L, 1, pos);
	for (; pos < size; pos++) {
		lua_geti(L, 1, pos + 1);
		lua_seti(L, 1, pos);
	}
	lua_pushnil(L);
	lua_seti(L, 1, pos);
	return 1;
}

/* The original sort asks __len itself: a length checked here could be followed by a second,
 * larger answer, and with a C comparator (rawequal) sort would scan 2^31 elements in C. So a
 * table whose length a metamethod makes up is refused; without one the length is what the
 * table holds. Hooks sort plain arrays. */
static int sandbox_table_sort(lua_State *L)
{
	if (lua_type(L, 1) == LUA_TTABLE && luaL_getmetafield(L, 1, "__len") != LUA_TNIL)
		return luaL_error(L, "table.sort: tables with a __len metamethod cannot be sorted in hooks");
	return call_original(L);
}

static int sandbox_table_concat(lua_State *L)
{
	if (lua_type(L, 1) == LUA_TTABLE) {
		lua_Integer first = luaL_optinteger(L, 3, 1);
		lua_Integer last = lua_isnoneornil(L, 4) ? luaL_len(L, 1) : luaL_checkinteger(L, 4);

		table_check_range(L, "table.concat", first, last);
		/* the range checked: the original reads __len again and would take its answer */
		lua_settop(L, 4);
		lua_pushinteger(L, last);
		lua_replace(L, 4);
	}
	return call_original(L);
}

/* ---- building the state -------------------------------------------------------------- */

static int name_in(const char *name, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(name, *list) == 0)
			return 1;
	return 0;
}

/* Removes every field of the table on top whose name is not allowed. */
static void filter_table(lua_State *L, const char *const *allowed)
{
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING || !name_in(lua_tostring(L, -1), allowed)) {
			lua_pushvalue(L, -1);
			lua_pushnil(L);
			lua_rawset(L, -4);
		}
	}
}

static void open_filtered(lua_State *L, const char *name, lua_CFunction open,
			  const char *const *allowed)
{
	luaL_requiref(L, name, open, 1);
	filter_table(L, allowed);
	lua_pop(L, 1);
}

/* Replaces table[name] (table on top) with fn, which gets the original as upvalue 1. */
static void wrap_field(lua_State *L, const char *name, lua_CFunction fn)
{
	lua_getfield(L, -1, name);
	lua_pushcclosure(L, fn, 1);
	lua_setfield(L, -2, name);
}

static void set_field(lua_State *L, const char *name, lua_CFunction fn)
{
	lua_pushcfunction(L, fn);
	lua_setfield(L, -2, name);
}

/* math.random's state is seeded from time and the address of the state (which randomseed()
 * would even return): reseed it from the kernel so that nothing about our memory leaks. */
static void reseed_random(lua_State *L)
{
	lua_Integer seed[2] = { 0, 0 };

	if (getrandom(seed, sizeof seed, 0) != (ssize_t)sizeof seed)
		seed[0] = (lua_Integer)now_ns();
	lua_getglobal(L, LUA_MATHLIBNAME);
	lua_getfield(L, -1, "randomseed");
	lua_pushinteger(L, seed[0]);
	lua_pushinteger(L, seed[1]);
	lua_call(L, 2, 0);
	lua_pop(L, 1);
}

static void open_safe_libraries(lua_State *L)
{
	open_filtered(L, LUA_GNAME, luaopen_base, base_allowed);
	open_filtered(L, LUA_STRLIBNAME, luaopen_string, string_allowed);
	open_filtered(L, LUA_TABLIBNAME, luaopen_table, table_allowed);
	luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
	lua_pop(L, 1);
	reseed_random(L);
	lua_getglobal(L, LUA_MATHLIBNAME);
	filter_table(L, math_allowed);
	lua_pop(L, 1);
	open_filtered(L, LUA_UTF8LIBNAME, luaopen_utf8, utf8_allowed);

	lua_pushglobaltable(L);
	set_field(L, "pcall", sandbox_pcall);
	set_field(L, "xpcall", sandbox_xpcall);
	set_field(L, "tostring", sandbox_tostring);
	set_field(L, "print", sandbox_print);
	set_field(L, "log", sandbox_print);
	set_field(L, "sleep", sandbox_sleep);
	wrap_field(L, "setmetatable", sandbox_setmetatable);
	wrap_field(L, "tonumber", sandbox_checked);
	lua_pop(L, 1);

	lua_getglobal(L, LUA_UTF8LIBNAME);
	wrap_field(L, "len", sandbox_checked);
	wrap_field(L, "offset", sandbox_checked);
	wrap_field(L, "codepoint", sandbox_checked);
	lua_pop(L, 1);

	lua_getglobal(L, LUA_STRLIBNAME);
	wrap_field(L, "rep", sandbox_string_rep);
	wrap_field(L, "format", sandbox_string_format);
	wrap_field(L, "find", sandbox_string_find);
	wrap_field(L, "match", sandbox_string_match);
	wrap_field(L, "gmatch", sandbox_string_gmatch);
	wrap_field(L, "gsub", sandbox_string_gsub);
	lua_pop(L, 1);

	lua_getglobal(L, LUA_TABLIBNAME);
	wrap_field(L, "insert", sandbox_table_insert);
	wrap_field(L, "remove", sandbox_table_remove);
	wrap_field(L, "sort", sandbox_table_sort);
	wrap_field(L, "concat", sandbox_table_concat);
	lua_pop(L, 1);

	/* getmetatable("") would hand out the metatable every string shares. */
	lua_pushliteral(L, "");
	lua_getmetatable(L, -1);
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 2);
}

static int sandbox_setup(lua_State *L)
{
	struct lua_sandbox *sb = sandbox_of(L);

	open_safe_libraries(L);
	lua_convert_open(L);
	for (size_t i = 0; i < sb->nlibs; i++) {
		lua_newtable(L);
		lua_pushlightuserdata(L, sb->libs[i].ctx);
		luaL_setfuncs(L, sb->libs[i].fns, 1);
		lua_setglobal(L, sb->libs[i].name);
	}
	for (size_t i = 0; i < sb->nglobals; i++) {
		lua_convert_push_cjson(L, sb->globals[i].value);
		lua_setglobal(L, sb->globals[i].name);
	}
	return 0;
}

/* Loads source as a text chunk named "=chunkname" (so messages say "hook.lua:3:"). */
static int sandbox_load(lua_State *L, const char *chunkname, const char *source, size_t len)
{
	char name[128];

	snprintf(name, sizeof name, "=%s", chunkname ? chunkname : "hook");
	if (len > 0 && source[0] == LUA_SIGNATURE[0]) {
		lua_pushfstring(L, "%s: precompiled Lua bytecode is not accepted; upload the script's source text",
				name + 1);
		return LUA_ERRSYNTAX;
	}
	return luaL_loadbufferx(L, source, len, name, "t");
}

/* Reads the global on_failure without running script code (raw access). */
static int read_on_failure(lua_State *L)
{
	int *result = lua_touserdata(L, 1);
	const char *s;

	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
	lua_pushliteral(L, "on_failure");
	lua_rawget(L, -2);
	s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	if (lua_isnil(L, -1) || (s && strcmp(s, "fail") == 0))
		*result = 0;
	else if (s && strcmp(s, "continue") == 0)
		*result = 1;
	else
		*result = -1;
	return 0;
}

static void sandbox_finish(lua_State *L, struct lua_sandbox *sb, int status,
			   struct lua_sandbox_result *out)
{
	int on_failure = 0;

	if (status == LUA_ERRMEM)
		sandbox_set_allocation_limit(L, sb);
	if (sb->limit != LIMIT_NONE)
		snprintf(out->error, sizeof out->error, "%s", sb->limit_msg);
	else if (status != LUA_OK && lua_type(L, -1) == LUA_TSTRING)
		snprintf(out->error, sizeof out->error, "%s", lua_tostring(L, -1));
	else if (status != LUA_OK)
		snprintf(out->error, sizeof out->error, "(error object is a %s value)", luaL_typename(L, -1));
	out->ok = status == LUA_OK && sb->limit == LIMIT_NONE;

	lua_pushcfunction(L, read_on_failure);
	lua_pushlightuserdata(L, &on_failure);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK)
		on_failure = 0;
	out->continue_on_failure = on_failure == 1;
	if (on_failure < 0 && out->ok) {
		out->ok = 0;
		snprintf(out->error, sizeof out->error, "on_failure must be \"continue\" or \"fail\"");
	}
}

/* The message handler of a script's run. error("text") gets the script's line from Lua, but an
 * error raised with a table (or any value but a string) and one raised by a library function
 * (string.format's "bad argument") carry none: they get the line of the innermost Lua function
 * on the stack, the script's line that raised them. Nothing of the script runs here. */
static int sandbox_error_position(lua_State *L)
{
	const char *msg = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : NULL;
	lua_Debug ar;

	if (sandbox_of(L)->limit != LIMIT_NONE)
		return 1;	/* a limit: its own words, and nothing more may run */

	for (int level = 1; lua_getstack(L, level, &ar); level++) {
		size_t n;

		if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0)
			continue;
		n = strlen(ar.short_src);
		if (msg && strncmp(msg, ar.short_src, n) == 0 && msg[n] == ':' && isdigit((unsigned char)msg[n + 1]))
			return 1;	/* it names its line already */
		if (msg)
			lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, msg);
		else
			lua_pushfstring(L, "%s:%d: error raised with a %s value, not a message", ar.short_src,
					ar.currentline, luaL_typename(L, 1));
		return 1;
	}
	if (!msg)
		lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	return 1;
}

int lua_sandbox_run(struct lua_sandbox *sb, const char *chunkname, const char *source,
		    size_t len, struct lua_sandbox_result *out)
{
	lua_State *L;
	int status;

	memset(out, 0, sizeof *out);
	sb->mem_used = sb->mem_peak = 0;
	sb->instructions = 0;
	sb->limit = LIMIT_NONE;
	sb->limit_msg[0] = '\0';
	sb->refused_late = 0;
	sb->log_bytes = 0;
	sb->start_ns = now_ns();
	sb->deadline_ns = sb->start_ns + sb->limits.time_ms * 1000000LL;
	L = lua_newstate(sandbox_alloc, sb);
	if (!L) {
		snprintf(out->error, sizeof out->error, "limit: memory limit of %zu bytes exceeded",
			 sb->limits.memory_bytes);
		return -1;
	}
	lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, sb->hook_interval);
	sb->running = 1;
	lua_pushcfunction(L, sandbox_setup);
	status = lua_pcall(L, 0, 0, 0);
	if (status == LUA_OK)
		status = sandbox_load(L, chunkname, source, len);
	if (status == LUA_OK) {
		lua_pushcfunction(L, sandbox_error_position);
		lua_insert(L, -2);
		status = lua_pcall(L, 0, 0, -2);
	}
	sb->running = 0;
	sandbox_finish(L, sb, status, out);
	lua_close(L);
	out->memory_peak = sb->mem_peak;
	out->instructions = sb->instructions;
	out->elapsed_ms = (long)((now_ns() - sb->start_ns) / 1000000);
	return out->ok ? 0 : -1;
}

/* ---- sandbox objects ----------------------------------------------------------------- */

struct lua_sandbox *lua_sandbox_new(const struct lua_sandbox_limits *limits,
				    lua_sandbox_log_fn log_fn, void *log_ctx)
{
	struct lua_sandbox *sb;

	if (limits->memory_bytes < LUA_SANDBOX_MIN_MEMORY || limits->instructions == 0 ||
	    limits->time_ms <= 0) {
		log_error("lua sandbox: limits need memory of at least %d bytes, instructions > 0 and "
			  "time_ms > 0 (got %zu, %llu, %ld)", LUA_SANDBOX_MIN_MEMORY, limits->memory_bytes,
			  (unsigned long long)limits->instructions, limits->time_ms);
		return NULL;
	}
	sb = xcalloc(1, sizeof *sb);
	sb->limits = *limits;
	sb->log_fn = log_fn;
	sb->log_ctx = log_ctx;
	sb->hook_interval = limits->instructions < HOOK_INTERVAL ? (int)limits->instructions : HOOK_INTERVAL;
	return sb;
}

static int identifier_valid(const char *s)
{
	if (!isalpha((unsigned char)*s) && *s != '_')
		return 0;
	while (*++s)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return 0;
	return 1;
}

/* A name for a new global: an identifier nobody has taken. Anything else is our bug. */
static void check_new_global(const struct lua_sandbox *sb, const char *name)
{
	int taken = name_in(name, sandbox_reserved);

	for (size_t i = 0; i < sb->nlibs; i++)
		taken |= strcmp(sb->libs[i].name, name) == 0;
	for (size_t i = 0; i < sb->nglobals; i++)
		taken |= strcmp(sb->globals[i].name, name) == 0;
	if (!identifier_valid(name) || taken) {
		log_error("lua sandbox: global name \"%s\" is %s", name, taken ? "taken" : "not an identifier");
		abort();
	}
}

void lua_sandbox_add_library(struct lua_sandbox *sb, const char *name, const luaL_Reg *fns,
			     void *ctx)
{
	check_new_global(sb, name);
	sb->libs = xrealloc(sb->libs, (sb->nlibs + 1) * sizeof *sb->libs);
	sb->libs[sb->nlibs++] = (struct sandbox_library){ xstrdup(name), fns, ctx };
}

void lua_sandbox_set_global_json(struct lua_sandbox *sb, const char *name, const cJSON *value)
{
	cJSON *copy = cJSON_Duplicate(value, 1);

	check_new_global(sb, name);
	if (!copy) {
		log_error("lua sandbox: out of memory copying global \"%s\"", name);
		abort();
	}
	sb->globals = xrealloc(sb->globals, (sb->nglobals + 1) * sizeof *sb->globals);
	sb->globals[sb->nglobals++] = (struct sandbox_global){ xstrdup(name), copy };
}

void lua_sandbox_free(struct lua_sandbox *sb)
{
	if (!sb)
		return;
	for (size_t i = 0; i < sb->nlibs; i++)
		free(sb->libs[i].name);
	for (size_t i = 0; i < sb->nglobals; i++) {
		free(sb->globals[i].name);
		cJSON_Delete(sb->globals[i].value);
	}
	free(sb->libs);
	free(sb->globals);
	free(sb);
}

/* ---- syntax check -------------------------------------------------------------------- */

static int is_word(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* Column (1-based) of the token in Lua's "... near 'x'" on the given line of source, or 0. */
static int syntax_column(const char *source, size_t len, int line, const char *msg)
{
	const char *near = strstr(msg, "near '"), *p = source, *end = source + len, *eol;
	char token[64];
	size_t tlen;

	for (int l = 1; l < line && p < end; l++) {
		p = memchr(p, '\n', (size_t)(end - p));
		p = p ? p + 1 : end;
	}
	eol = memchr(p, '\n', (size_t)(end - p));
	eol = eol ? eol : end;
	if (strstr(msg, "near <eof>"))
		return (int)(eol - p) + 1;
	if (!near)
		return 0;
	near += strlen("near '");
	tlen = strlen(near);
	if (tlen == 0 || tlen > sizeof token)
		return 0;
	tlen--;		/* without the closing quote */
	memcpy(token, near, tlen);
	/* The parser stopped at this token, so the rest of the line after it is rarely long:
	 * its last whole occurrence on the line is the best guess. */
	for (size_t off = (size_t)(eol - p) >= tlen ? (size_t)(eol - p) - tlen + 1 : 0; tlen && off-- > 0;) {
		const char *s = p + off;

		if (memcmp(s, token, tlen) == 0 && !(is_word(token[0]) && s > p && is_word(s[-1])) &&
		    !(is_word(token[tlen - 1]) && s + tlen < eol && is_word(s[tlen])))
			return (int)off + 1;
	}
	return 0;
}

/* Lua's parser resolves every name by walking the locals of each enclosing function, so a
 * crafted script compiles slowly: 128 nested functions of 128 locals each, then one global
 * referenced over and over, is seconds within 256 KiB (and 47 s in the 2 MiB of a request
 * body). A syntax check runs in the request of a web worker, so the parser gets the text a chunk
 * at a time and the end of the text once the check's time is up. */
struct syntax_reader {
	const char *next;
	size_t left;
	long long deadline_ns;
	int late;
};

static const char *syntax_read(lua_State *L, void *ud, size_t *size)
{
	struct syntax_reader *rd = ud;
	const char *chunk = rd->next;

	(void)L;
	*size = 0;
	if (rd->left == 0)
		return NULL;
	if (now_ns() > rd->deadline_ns) {
		rd->late = 1;
		return NULL;
	}
	*size = rd->left < SYNTAX_CHUNK ? rd->left : SYNTAX_CHUNK;
	rd->next += *size;
	rd->left -= *size;
	return chunk;
}

int lua_sandbox_check_syntax(const char *chunkname, const char *source, size_t len, int *line,
			     int *column, char *msg, size_t msglen)
{
	struct lua_sandbox sb = { .limits = { SYNTAX_MEMORY, 1, 1 } };
	struct syntax_reader rd = { source, len, now_ns() + SYNTAX_TIME_MS * 1000000LL, 0 };
	lua_State *L = lua_newstate(sandbox_alloc, &sb);
	const char *err, *p;
	char name[128];
	int status;

	*line = 0;
	*column = 0;
	if (!L) {
		snprintf(msg, msglen, "not enough memory");
		return -1;
	}
	snprintf(name, sizeof name, "=%s", chunkname ? chunkname : "hook");
	if (len > 0 && source[0] == LUA_SIGNATURE[0])
		status = sandbox_load(L, chunkname, source, len);	/* its refusal, in words */
	else
		status = lua_load(L, syntax_read, &rd, name, "t");
	if (rd.late) {
		/* whatever the parser made of the text it got, the rest was never read */
		snprintf(msg, msglen, "the script took more than %d ms to compile: too many nested functions "
			 "and locals for one script", SYNTAX_TIME_MS);
		lua_close(L);
		return -1;
	}
	if (status == LUA_OK) {
		lua_close(L);
		msg[0] = '\0';
		return 0;
	}
	err = status == LUA_ERRMEM ? "script too large to check" : lua_tostring(L, -1);
	/* "name:LINE: message"; the name may itself hold colons */
	p = chunkname && strncmp(err, chunkname, strlen(chunkname)) == 0 ? err + strlen(chunkname)
									 : strchr(err, ':');
	if (p && isdigit((unsigned char)p[1])) {
		*line = atoi(p + 1);
		p = strchr(p + 1, ':');
		err = p ? p + 1 + (p[1] == ' ') : err;
	}
	snprintf(msg, msglen, "%s", err);
	*column = *line > 0 ? syntax_column(source, len, *line, msg) : 0;
	lua_close(L);
	return -1;
}
