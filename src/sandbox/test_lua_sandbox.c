#include "lua_sandbox.h"
#include "check.h"
#include "strbuf.h"

#include <lualib.h>
#include <stdlib.h>

#define TEST_MEMORY (64u << 20)
/* A case asserts which limit trips, so the other limits are out of its reach whatever the
 * machine's speed or load: memory and instruction cases get ten minutes of wall clock, time
 * cases an instruction budget no loop of theirs reaches in that time. */
#define UNREACHABLE_MS (10L * 60 * 1000)
static const struct lua_sandbox_limits test_limits = { TEST_MEMORY, 10000000, UNREACHABLE_MS };
static const struct lua_sandbox_limits time_limits = { TEST_MEMORY, UINT64_C(1) << 60, 2000 };

static void capture_log(void *ctx, const char *line)
{
	strbuf_addstr(ctx, line);
	strbuf_addch(ctx, '\n');
}

/* Runs script in a fresh sandbox with limits; the log goes to log when given. */
static int run_limited(const char *script, const struct lua_sandbox_limits *limits,
		       struct lua_sandbox_result *res, struct strbuf *log)
{
	struct lua_sandbox *sb = lua_sandbox_new(limits, log ? capture_log : NULL, log);
	int rc = lua_sandbox_run(sb, "hook.lua", script, strlen(script), res);

	lua_sandbox_free(sb);
	return rc;
}

static int run_script(const char *script, struct lua_sandbox_result *res, struct strbuf *log)
{
	return run_limited(script, &test_limits, res, log);
}

/* Ways out of the sandbox, or ways to make it hang or blow up: each script must fail with an
 * error containing the substring. Add a row for every new idea. */
static const struct escape_case {
	const char *script;
	const char *error;
} escape_cases[] = {
	/* files, processes, loading code */
	{ "io.open('/etc/passwd')", "global 'io'" },
	{ "os.execute('id')", "global 'os'" },
	{ "require('os')", "global 'require'" },
	{ "dofile('/etc/passwd')", "global 'dofile'" },
	{ "loadfile('/etc/passwd')", "global 'loadfile'" },
	{ "load('return 1')", "global 'load'" },
	{ "load('\\27Lua\\84\\0\\25\\147\\r\\n\\26\\n')", "global 'load'" },
	{ "string.dump(print)", "field 'dump'" },
	{ "local _ENV = {print = print} os.exit(1)", "global 'os'" },
	{ "coroutine.wrap(function() while true do end end)()", "global 'coroutine'" },
	{ "collectgarbage('stop')", "global 'collectgarbage'" },
	{ "math.randomseed()", "field 'randomseed'" },
	{ "table.move({}, 1, 1e15, 2)", "field 'move'" },
	{ "string.pack('i4', 1)", "field 'pack'" },
	/* the registry and shared metatables */
	{ "debug.getregistry()", "global 'debug'" },
	{ "local seen = {}\n"
	  "local function visit(v)\n"
	  "  if type(v) ~= 'table' or seen[v] then return end\n"
	  "  seen[v] = true\n"
	  "  if rawget(v, '_LOADED') ~= nil or rawget(v, 2) == _G then error('registry reached') end\n"
	  "  visit(getmetatable(v))\n"
	  "  for k, x in next, v do visit(k) visit(x) end\n"
	  "end\n"
	  "visit(_G) visit(getmetatable('')) visit(getmetatable(json.decode('[1]')))\n"
	  "error('registry not reachable')", "registry not reachable" },
	{ "getmetatable('').__index = {upper = function() return 'x' end}", "index a boolean value" },
	{ "setmetatable(json.decode('[]'), {__index = os})", "cannot change a protected metatable" },
	/* memory */
	{ "local s = string.rep('x', 1 << 40)", "limit: memory limit of 67108864 bytes exceeded" },
	{ "local s = string.rep('', 1 << 62, 'x')", "memory limit of 67108864 bytes exceeded" },
	{ "local s = 'x' while true do s = s:rep(2) end", "memory limit of 67108864 bytes exceeded" },
	{ "local t = {} while true do t[#t + 1] = ('x'):rep(4096) end", "memory limit of 67108864 bytes exceeded" },
	{ "local s = 'x' while true do s = s .. s end", "memory limit of 67108864 bytes exceeded" },
	{ "local ok = pcall(string.rep, 'x', 1 << 40) return 'caught'", "memory limit" },
	{ "pcall(function() local s = 'x' while true do s = s .. s end end) local t = {} return t",
	  "memory limit" },
	{ "local t = {} for i = 1, 40 do t = {t, t} end json.encode(t)", "limit: memory limit" },
	/* time and instructions: loops, and loops that try to catch the limit */
	{ "while true do end", "limit: instruction budget of 10000000 exceeded at hook.lua:1" },
	{ "local n = 0\nwhile true do\n  n = n + 1\nend", "instruction budget of 10000000 exceeded at hook.lua:3" },
	{ "while true do pcall(function() while true do end end) end", "instruction budget" },
	{ "local ok = pcall(function() while true do end end) return 'survived'", "instruction budget" },
	{ "xpcall(function() while true do end end, function() while true do end end)", "instruction budget" },
	{ "while true do xpcall(function() while true do end end, print) end", "instruction budget" },
	{ "do local x <close> = setmetatable({}, {__close = function() while true do end end}) end",
	  "instruction budget" },
	/* C functions the hook cannot interrupt */
	{ "string.find(string.rep('a', 50000), '.-.-.-.-.-.-.-.-b')", "string.find: this pattern on 50000 bytes could take" },
	{ "string.gsub(string.rep('a', 20000), '(.-)b', 'x')", "could take" },
	{ "string.match(string.rep('a', 40), string.rep('a?', 40) .. string.rep('a', 40))", "could take" },
	{ "string.find('x', string.rep('%a', 300))", "patterns longer than 256 bytes" },
	/* in gmatch a leading '^' is a literal, not an anchor: every start position is tried */
	{ "for _ in ('^'):rep(20000):gmatch('^%^-x') do end", "string.gmatch: this pattern on 20000 bytes could take" },
	{ "local s = ('x'):rep(1e7) return s:find(('x'):rep(1e5) .. 'y', 1, true)", "string.find: this pattern on 10000000 bytes could take" },
	{ "local t = {} setmetatable(t, {__index = t}) return t.x", "chain too long" },
	{ "string.format('%099999d', 1)", "invalid conversion" },
	{ "string.format('%p', {})", "%p is not available" },
	{ "table.insert(setmetatable({}, {__len = function() return 1e15 end}), 1, 'x')", "longer than the table" },
	{ "table.sort(setmetatable({}, {__len = function() return 2^31 end, __index = type}))", "__len metamethod cannot be sorted" },
	{ "table.sort(setmetatable({}, {__len = function() return 0 end}), rawequal)", "__len metamethod cannot be sorted" },
	{ "table.concat({}, '', 1, 1e12)", "longer than the table" },
	/* finalizers would run inside lua_close, where no hook runs */
	{ "setmetatable({}, {__gc = function() while true do end end})", "__gc metamethods are not available" },
	{ "setmetatable({}, {__gc = false})", "__gc metamethods are not available" },
	/* stacks */
	{ "local function f() return 1 + f() end f()", "stack overflow|limit: memory limit" },
	{ "local t = setmetatable({}, {}) getmetatable(t).__index = function(t, k) return t[k] end return t.x",
	  "stack overflow" },
	{ "error(setmetatable({}, {__tostring = function() while true do end end}))",
	  "hook.lua:1: error raised with a table value, not a message" },	/* its __tostring never runs */
	/* addresses */
	{ "local s = tostring({}) .. tostring(print) .. string.format('%s', {}) .. tostring(json.null)\n"
	  "if s:find('0x') then error('address leaked: ' .. s) end error('no address: ' .. s)",
	  "no address: tablefunctiontablenull" },
};

/* Scripts that wait on the clock or spend their time in C calls: run under time_limits, where
 * only the clock can stop them (under ASan their instruction budget would take minutes). */
static const struct escape_case clock_cases[] = {
	{ "while true do yaml.decode('a: 1') end", "limit: " },
	{ "while true do json.encode({}) end", "limit: " },
	{ "while true do sleep(0) end", "limit: " },
	{ "while true do sleep(1) end", "limit: time limit of 2000 ms exceeded at hook.lua:1" },
	{ "sleep(5000)", "time limit of 2000 ms exceeded at hook.lua:1 (sleep(5000) would end after" },
	{ "local ok = pcall(sleep, 5000) return 'caught'", "time limit of 2000 ms" },
};

/* Whether error contains one of the '|'-separated alternatives of want. */
static int error_matches(const char *error, const char *want)
{
	char alt[256];

	while (*want) {
		size_t n = strcspn(want, "|");

		snprintf(alt, sizeof alt, "%.*s", (int)n, want);
		if (strstr(error, alt))
			return 1;
		want += n + (want[n] == '|');
	}
	return 0;
}

static void check_rows(const struct escape_case *cases, size_t n, const struct lua_sandbox_limits *limits)
{
	for (size_t i = 0; i < n; i++) {
		const struct escape_case *c = &cases[i];
		struct lua_sandbox_result res;

		CHECK_INTEQ(run_limited(c->script, limits, &res, NULL), -1);
		CHECK_INTEQ(res.ok, 0);
		if (!error_matches(res.error, c->error)) {
			printf("# row %zu: %s\n#   error: %s\n#   want:  %s\n", i, c->script, res.error, c->error);
			check_case_failed = 1;
		}
		CHECK(res.memory_peak <= TEST_MEMORY);
	}
}

static void test_lua_sandbox_escapes_fail(void)
{
	check_rows(escape_cases, sizeof escape_cases / sizeof escape_cases[0], &test_limits);
	check_rows(clock_cases, sizeof clock_cases / sizeof clock_cases[0], &time_limits);
}

/* table.insert and remove read the length once, concat uses the length it checked, and sort
 * refuses a made-up length: a __len that answers 0 and then a huge length (the reviewer's
 * len.lua) would otherwise have the originals loop in C (insert and remove 2^62 times, sort
 * with rawequal as its comparator 2^31), out of the count hook's reach. The scripts whose
 * second answer is small show it without hanging. */
static void test_lua_sandbox_table_length_read_once(void)
{
	static const char *const scripts[] = {
		"local n = 0\n"
		"local t = setmetatable({}, {__len = function() n = n + 1 return n == 1 and 0 or 3 end})\n"
		"table.insert(t, 1, 'x')\n"
		"assert(n == 1, 'insert read __len ' .. n .. ' times')\n"
		"assert(t[1] == 'x' and rawlen(t) == 1)\n",

		"local n = 0\n"
		"local t = setmetatable({'a'}, {__len = function() n = n + 1 return n == 1 and 0 or 3 end})\n"
		"assert(table.remove(t, 1) == 'a')\n"
		"assert(n == 1, 'remove read __len ' .. n .. ' times')\n"
		"assert(t[1] == nil)\n",

		"local n = 0\n"
		"local t = setmetatable({'a'}, {__len = function() n = n + 1 return n == 1 and 1 or 3 end,\n"
		"                               __index = function() return 'z' end})\n"
		"local s = table.concat(t)\n"
		"assert(s == 'a', 'concat went by a second __len: ' .. s)\n",

		"local n = 0\n"
		"local t = setmetatable({}, {__len = function() n = n + 1 return n == 1 and 0 or 3 end})\n"
		"pcall(table.sort, t, rawequal)\n"
		"assert(n == 0, 'sort read __len ' .. n .. ' times')\n",

		"local n = 0\n"
		"local t = setmetatable({}, {__len = function() n = n + 1 return n == 1 and 0 or math.maxinteger // 2 end})\n"
		"table.insert(t, 1, 'x')\n"
		"n = 0 table.remove(t, 1)\n"
		"n = 0 pcall(table.sort, t, rawequal)\n",
	};
	struct lua_sandbox_result res;

	for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
		CHECK_INTEQ(run_script(scripts[i], &res, NULL), 0);
		CHECK_STREQ(res.error, "");
	}
}

static void test_lua_sandbox_bytecode_refused(void)
{
	lua_State *plain = luaL_newstate();
	struct lua_sandbox_result res;
	size_t len;
	const char *code;
	struct lua_sandbox *sb = lua_sandbox_new(&test_limits, NULL, NULL);

	luaL_openlibs(plain);
	CHECK_INTEQ(luaL_dostring(plain, "return string.dump(function() return 1 end)"), 0);
	code = lua_tolstring(plain, -1, &len);
	CHECK_INTEQ(lua_sandbox_run(sb, "hook.lua", code, len, &res), -1);
	CHECK_STREQ(res.error, "hook.lua: precompiled Lua bytecode is not accepted; upload the script's source text");
	lua_sandbox_free(sb);
	lua_close(plain);
}

/* __gc set after setmetatable is never called (Lua marks objects at setmetatable time), so
 * closing the state cannot hang on it. A hang here would stop the test run. */
static void test_lua_sandbox_late_gc_never_runs(void)
{
	struct lua_sandbox_result res;

	CHECK_INTEQ(run_script("local mt = {} local t = setmetatable({}, mt)\n"
			       "mt.__gc = function() while true do end end t = nil", &res, NULL), 0);
	CHECK_STREQ(res.error, "");
}

static void test_lua_sandbox_within_limits_completes(void)
{
	struct lua_sandbox_result res;

	CHECK_INTEQ(run_script("local s = 0 for i = 1, 100000 do s = s + i end\n"
			       "assert(s == 5000050000)\n"
			       "local ok, err = pcall(error, 'plain errors are caught')\n"
			       "assert(not ok and err == 'plain errors are caught')\n"
			       "assert(select(2, xpcall(error, function(m) return 'handled ' .. m end, 'x')) == 'handled x')\n"
			       "assert(('key=value'):match('(%w+)=(%w+)') == 'key')\n"
			       "assert(table.concat({'a', 'b'}, ',') == 'a,b')\n"
			       "local t = {3, 1, 2} table.sort(t) table.insert(t, 4) assert(table.remove(t, 1) == 1)\n"
			       "assert(string.format('%5.1f|%s', 1.25, 'x') == '  1.2|x' or string.format('%5.1f', 1.25) == '  1.3')\n"
			       "assert(tostring(12) == '12' and tostring(nil) == 'nil')\n"
			       "assert(utf8.len('h\\u{e9}') == 2 and math.random(1, 6) <= 6)\n"
			       "sleep(10)\n", &res, NULL), 0);
	CHECK_STREQ(res.error, "");
	CHECK(res.instructions > 100000 && res.instructions < test_limits.instructions);
	CHECK(res.memory_peak > 0 && res.memory_peak <= TEST_MEMORY);
	CHECK(res.elapsed_ms >= 10);
}

static void test_lua_sandbox_error_names_line(void)
{
	struct lua_sandbox_result res;

	CHECK_INTEQ(run_script("local x = nil\nx.y = 1\n", &res, NULL), -1);
	CHECK_STREQ(res.error, "hook.lua:2: attempt to index a nil value (local 'x')");
	/* issue 11: a table raised, a library function's error, both name the script's line */
	CHECK_INTEQ(run_script("local t = {}\n\nerror({code = 3})", &res, NULL), -1);
	CHECK_STREQ(res.error, "hook.lua:3: error raised with a table value, not a message");
	CHECK_INTEQ(run_script("local n = 1\nlocal s = string.format('%d items', 'many')\n", &res, NULL), -1);
	CHECK(strncmp(res.error, "hook.lua:2: bad argument #2 to ", 31) == 0 && strstr(res.error, "(number expected, got string)"));
	CHECK_INTEQ(run_script("local function f(x)\n  return ('%d'):format(x)\nend\nf('x')\n", &res, NULL), -1);
	CHECK(strncmp(res.error, "hook.lua:2: bad argument #", 26) == 0);
	CHECK_INTEQ(run_script("error('plain', 0)", &res, NULL), -1);
	CHECK_STREQ(res.error, "hook.lua:1: plain");
	CHECK_INTEQ(run_script("local = 1", &res, NULL), -1);
	CHECK_STREQ(res.error, "hook.lua:1: <name> expected near '='");
}

static void test_lua_sandbox_print_and_log(void)
{
	struct lua_sandbox_result res;
	struct strbuf log = STRBUF_INIT;

	CHECK_INTEQ(run_script("print('a', 1, nil, {}, true)\nlog('two\\nlines\\27[31m')\nprint()", &res, &log), 0);
	CHECK_STREQ(log.buf, "a\t1\tnil\ttable\ttrue\ntwo\nlines?[31m\n\n");
	strbuf_reset(&log);
	CHECK_INTEQ(run_script("for i = 1, 300 do print(string.rep('x', 5000)) end", &res, &log), 0);
	CHECK(strstr(log.buf, "[further output dropped") != NULL);
	CHECK(log.len < 1100 * 1024);
	strbuf_release(&log);
}

static void test_lua_sandbox_json_yaml_round_trip(void)
{
	struct lua_sandbox_result res;

	CHECK_INTEQ(run_script(
		"local v = json.decode('{\"a\":[1,2.5,\"x\",true,null],\"b\":{},\"c\":[]}')\n"
		"assert(v.a[1] == 1 and math.type(v.a[1]) == 'integer' and v.a[2] == 2.5)\n"
		"assert(v.a[5] == json.null and getmetatable(v.a) == 'json.array')\n"
		"assert(json.encode(v.b) == '{}' and json.encode(v.c) == '[]' and json.encode(json.array()) == '[]')\n"
		"assert(json.encode({1, 2, 3}) == '[1,2,3]' and json.encode({k = 'v'}) == '{\"k\":\"v\"}')\n"
		"local back = json.decode(json.encode(v))\n"
		"assert(back.a[3] == 'x' and back.a[4] == true and back.a[5] == json.null)\n"
		"local y = yaml.decode('name: web\\nreplicas: 3\\nports: [80, 443]\\nlabel: \"true\"\\nnote: ~\\n')\n"
		"assert(y.name == 'web' and y.replicas == 3 and y.ports[2] == 443 and y.label == 'true' and y.note == json.null)\n"
		"local y2 = yaml.decode(yaml.encode(y))\n"
		"assert(y2.label == 'true' and y2.ports[1] == 80 and y2.note == json.null)\n"
		"assert(json.encode(yaml.decode('[]')) == '[]')\n"
		"local ok, err = pcall(json.encode, {1, 2, x = 3})\n"
		"assert(not ok and err:find('mixes array and object keys'))\n"
		"ok, err = pcall(json.decode, '{\"a\": }')\n"
		"assert(not ok and err:find('invalid JSON at byte 7'), err)\n"
		"ok, err = pcall(yaml.decode, 'a: &x 1\\nb: *x\\n')\n"
		"assert(not ok and err:find('aliases are not allowed'))\n", &res, NULL), 0);
	CHECK_STREQ(res.error, "");
}

static int counter_next(lua_State *L)
{
	int *counter = lua_sandbox_ctx(L);

	lua_pushinteger(L, ++*counter);
	return 1;
}

static void test_lua_sandbox_library_and_context(void)
{
	static const luaL_Reg counter_fns[] = { { "next", counter_next }, { NULL, NULL } };
	struct lua_sandbox *sb = lua_sandbox_new(&test_limits, NULL, NULL);
	cJSON *job = cJSON_Parse("{\"name\":\"nightly\",\"namespaces\":[\"a\",\"b\"],\"retain\":7}");
	const char *script = "assert(job.name == 'nightly' and job.namespaces[2] == 'b' and job.retain == 7)\n"
			     "assert(counter.next() + 1 == counter.next())\n"
			     "job.name = 'changed'";
	struct lua_sandbox_result res;
	int counter = 0;

	lua_sandbox_add_library(sb, "counter", counter_fns, &counter);
	lua_sandbox_set_global_json(sb, "job", job);
	cJSON_Delete(job);
	CHECK_INTEQ(lua_sandbox_run(sb, "hook.lua", script, strlen(script), &res), 0);
	CHECK_STREQ(res.error, "");
	CHECK_INTEQ(counter, 2);
	/* Every run starts from a fresh state and the original context. */
	CHECK_INTEQ(lua_sandbox_run(sb, "hook.lua", script, strlen(script), &res), 0);
	CHECK_INTEQ(counter, 4);
	script = "assert(changed == nil) changed = 1";
	CHECK_INTEQ(lua_sandbox_run(sb, "hook.lua", script, strlen(script), &res), 0);
	CHECK_INTEQ(lua_sandbox_run(sb, "hook.lua", script, strlen(script), &res), 0);
	lua_sandbox_free(sb);
}

static void test_lua_sandbox_on_failure(void)
{
	struct lua_sandbox_result res;

	CHECK_INTEQ(run_script("on_failure = 'continue'", &res, NULL), 0);
	CHECK_INTEQ(res.continue_on_failure, 1);
	CHECK_INTEQ(run_script("on_failure = 'continue'\nerror('pod not ready')", &res, NULL), -1);
	CHECK_INTEQ(res.continue_on_failure, 1);
	CHECK_STREQ(res.error, "hook.lua:2: pod not ready");
	CHECK_INTEQ(run_script("on_failure = 'continue' while true do end", &res, NULL), -1);
	CHECK_INTEQ(res.continue_on_failure, 1);
	CHECK_INTEQ(run_script("on_failure = 'continue' t = {} while true do t[#t + 1] = ('x'):rep(4096) end", &res, NULL), -1);
	CHECK(strstr(res.error, "memory limit") != NULL);
	CHECK_INTEQ(res.continue_on_failure, 1);
	CHECK_INTEQ(run_script("error('early') on_failure = 'continue'", &res, NULL), -1);
	CHECK_INTEQ(res.continue_on_failure, 0);
	CHECK_INTEQ(run_script("on_failure = 'fail' error('x')", &res, NULL), -1);
	CHECK_INTEQ(res.continue_on_failure, 0);
	CHECK_INTEQ(run_script("on_failure = 'ignore'", &res, NULL), -1);
	CHECK_STREQ(res.error, "on_failure must be \"continue\" or \"fail\"");
	CHECK_INTEQ(res.continue_on_failure, 0);
}

static void test_lua_sandbox_syntax_check(void)
{
	int line, column;
	char msg[256];
	const char *ok = "local a = 1\nreturn a\n";
	const char *bad = "local a = 1\nlocal b = = 2\n";
	const char *eof = "if x then\n  y = 1\n";
	const char *name = "print('x')\nlocal function f() retrun x end\n";

	CHECK_INTEQ(lua_sandbox_check_syntax("hook.lua", ok, strlen(ok), &line, &column, msg, sizeof msg), 0);
	CHECK_INTEQ(lua_sandbox_check_syntax("hook.lua", bad, strlen(bad), &line, &column, msg, sizeof msg), -1);
	CHECK_INTEQ(line, 2);
	CHECK_INTEQ(column, 11);
	CHECK_STREQ(msg, "unexpected symbol near '='");
	CHECK_INTEQ(lua_sandbox_check_syntax("my:hook.lua", eof, strlen(eof), &line, &column, msg, sizeof msg), -1);
	CHECK_INTEQ(line, 3);
	CHECK_STREQ(msg, "'end' expected (to close 'if' at line 1) near <eof>");
	CHECK_INTEQ(lua_sandbox_check_syntax("hook.lua", name, strlen(name), &line, &column, msg, sizeof msg), -1);
	CHECK_INTEQ(line, 2);
	CHECK_INTEQ(column, 27);
	CHECK_STREQ(msg, "syntax error near 'x'");
	CHECK_INTEQ(lua_sandbox_check_syntax("hook.lua", "\033Lua", 4, &line, &column, msg, sizeof msg), -1);
	CHECK(strstr(msg, "bytecode is not accepted") != NULL);
}

/* A script that Lua's parser takes long over: every reference to q walks the locals of 180
 * enclosing functions of 190 locals each (2 MiB of it took 47 s to compile). A check stops at
 * its time and says so; a long script without the trick, and an error past the first chunk the
 * parser is given, still come out right. */
static void test_lua_sandbox_syntax_check_has_a_time_limit(void)
{
	struct strbuf slow = STRBUF_INIT, plain = STRBUF_INIT;
	int line, column;
	char msg[256];

	for (int f = 0; f < 180; f++) {
		strbuf_addf(&slow, "local function f%d() local a1", f);
		for (int a = 2; a <= 190; a++)
			strbuf_addf(&slow, ",a%d", a);
		strbuf_addstr(&slow, "\n");
	}
	while (slow.len < 2 * 1024 * 1024)
		strbuf_addstr(&slow, "q=q ");
	for (int f = 0; f < 180; f++)
		strbuf_addstr(&slow, " end");
	CHECK_INTEQ(lua_sandbox_check_syntax("hook.lua", slow.buf, slow.len, &line, &column, msg, sizeof msg), -1);
	CHECK(strstr(msg, "took more than 250 ms to compile") != NULL);

	for (int i = 0; i < 20000; i++)
		strbuf_addf(&plain, "x%d = %d\n", i % 50, i);
	CHECK(plain.len > 200 * 1024);
	CHECK_INTEQ(lua_sandbox_check_syntax("hook.lua", plain.buf, plain.len, &line, &column, msg, sizeof msg), 0);
	strbuf_addstr(&plain, "local = 1\n");
	CHECK_INTEQ(lua_sandbox_check_syntax("hook.lua", plain.buf, plain.len, &line, &column, msg, sizeof msg), -1);
	CHECK_INTEQ(line, 20001);
	CHECK_STREQ(msg, "<name> expected near '='");
	strbuf_release(&slow);
	strbuf_release(&plain);
}

/* A C function that returns only at the deadline, as a slow API call would. */
static int clock_spin(lua_State *L)
{
	while (lua_sandbox_remaining_ms(L) > 0)
		;
	return 0;
}

/* After a C call that used up the time, the hook may be up to a thousand instructions away:
 * large allocations and the bounded C functions notice the deadline themselves. */
static void test_lua_sandbox_deadline_between_hooks(void)
{
	static const luaL_Reg clock_fns[] = { { "spin", clock_spin }, { NULL, NULL } };
	static const struct lua_sandbox_limits limits = { TEST_MEMORY, 10000000, 50 };
	static const struct {
		const char *script, *error;
	} cases[] = {
		{ "local big = ('x'):rep(100000) clock.spin() local s = big .. big", "limit: time limit of 50 ms exceeded" },
		{ "local big = ('a'):rep(1000) clock.spin() return big:find('.-b')", "limit: time limit of 50 ms exceeded at hook.lua:1" },
		{ "clock.spin() return json.encode({})", "limit: time limit of 50 ms exceeded at hook.lua:1" },
		{ "local big = ('a'):rep(1000) clock.spin() return utf8.len(big)", "limit: time limit of 50 ms exceeded at hook.lua:1" },
		{ "clock.spin() return tonumber('12')", "limit: time limit of 50 ms exceeded at hook.lua:1" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct lua_sandbox *sb = lua_sandbox_new(&limits, NULL, NULL);
		struct lua_sandbox_result res;

		lua_sandbox_add_library(sb, "clock", clock_fns, NULL);
		CHECK_INTEQ(lua_sandbox_run(sb, "hook.lua", cases[i].script, strlen(cases[i].script), &res), -1);
		CHECK_STREQ(res.error, cases[i].error);
		lua_sandbox_free(sb);
	}
}

static void test_lua_sandbox_rejects_bad_limits(void)
{
	struct lua_sandbox_limits small = { 1000, 1000, 1000 }, zero_time = { TEST_MEMORY, 1000, 0 };

	CHECK(lua_sandbox_new(&small, NULL, NULL) == NULL);
	CHECK(lua_sandbox_new(&zero_time, NULL, NULL) == NULL);
}

static void test_lua_sandbox_api_outside_sandbox(void)
{
	lua_State *L = luaL_newstate();

	CHECK_INTEQ(lua_sandbox_remaining_ms(L), LONG_MAX);
	CHECK(lua_sandbox_remaining_memory(L) == SIZE_MAX);
	lua_close(L);
}

int main(void)
{
	RUN(test_lua_sandbox_escapes_fail);
	RUN(test_lua_sandbox_table_length_read_once);
	RUN(test_lua_sandbox_bytecode_refused);
	RUN(test_lua_sandbox_late_gc_never_runs);
	RUN(test_lua_sandbox_within_limits_completes);
	RUN(test_lua_sandbox_error_names_line);
	RUN(test_lua_sandbox_print_and_log);
	RUN(test_lua_sandbox_json_yaml_round_trip);
	RUN(test_lua_sandbox_library_and_context);
	RUN(test_lua_sandbox_on_failure);
	RUN(test_lua_sandbox_syntax_check);
	RUN(test_lua_sandbox_syntax_check_has_a_time_limit);
	RUN(test_lua_sandbox_deadline_between_hooks);
	RUN(test_lua_sandbox_rejects_bad_limits);
	RUN(test_lua_sandbox_api_outside_sandbox);
	return check_done();
}
