#include "lua_k8s.h"
#include "hook_link.h"
#include "http_retry.h"
#include "k8s_exec.h"
#include "lua_convert.h"
#include "strbuf.h"

#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LUA_K8S_MAX_WRITES 1000		/* a dry run records at most this many writes */
#define LUA_K8S_MAX_REPLICAS 10000
#define LUA_K8S_LIST_PAGE 500

struct lua_k8s {
	struct k8s_client *client;
	int link[2];			/* a hook process: {in, out} to the runner; {-1, -1} otherwise */
	char *ns;
	char **granted;
	size_t ngranted;
	int dry_run;
	int discovered;			/* the script's view of the kinds: 0 not yet, 1 done, -1 failed */
	struct k8s_resource_list types;
	char discovery_error[600];
	int served_discovered;		/* the kinds lua_k8s_serve checks calls against */
	struct k8s_resource_list served;
	struct k8s_error served_error;
	cJSON *writes;
};

/* What a call names: apiVersion split, kind, the namespace it reaches. */
struct k8s_target {
	char group[254];
	char version[64];
	const char *api_version;
	const char *kind;
	const char *ns;
	const struct k8s_resource_type *type;	/* NULL in a dry run that could not discover */
};

static int k8s_exec_result_parse(const cJSON *reply, size_t max, struct k8s_exec_result *r);

static struct lua_k8s *k8s_of(lua_State *L)
{
	return lua_sandbox_ctx(L);
}

/* ---- errors and pushing ---- */

/* Passes on an error caught by a protected call made from C, as the sandbox would have. */
static int k8s_rethrow(lua_State *L, int status)
{
	lua_sandbox_check_limits(L);
	if (status == LUA_ERRMEM)
		return lua_sandbox_memory_error(L, 0);
	return lua_error(L);
}

static int k8s_raise(lua_State *L, const char *fn, const struct k8s_error *err)
{
	char words[700];

	lua_sandbox_check_limits(L);	/* a request cut short by the deadline is the time limit */
	k8s_error_describe(err, words, sizeof words);
	return luaL_error(L, "k8s.%s: %s", fn, words);
}

static int k8s_push_json_unprotected(lua_State *L)
{
	lua_convert_push_cjson(L, lua_touserdata(L, 1));
	return 1;
}

/* Pushes v and frees it, also when Lua raises while building the value. */
static void k8s_push_json_take(lua_State *L, cJSON *v)
{
	int status;

	lua_pushcfunction(L, k8s_push_json_unprotected);
	lua_pushlightuserdata(L, v);
	status = lua_pcall(L, 1, 1, 0);
	cJSON_Delete(v);
	if (status != LUA_OK)
		k8s_rethrow(L, status);
}

/* Bytes a cJSON tree holds, roughly (node overhead and strings). */
static size_t k8s_json_size(const cJSON *v)
{
	size_t n = sizeof *v + (v->string ? strlen(v->string) + 1 : 0) +
		   (cJSON_IsString(v) && v->valuestring ? strlen(v->valuestring) + 1 : 0);

	for (const cJSON *c = v->child; c; c = c->next)
		n += k8s_json_size(c);
	return n;
}

static cJSON *k8s_op(const char *op)
{
	cJSON *req = cJSON_CreateObject();

	cJSON_AddStringToObject(req, "op", op);
	return req;
}

/* Before a call: the limits. */
static void k8s_begin(lua_State *L)
{
	lua_sandbox_check_limits(L);
}

/* One call on the cluster, made by lua_k8s_serve: here, or in the runner when this is a hook
 * process. Takes req; raises nothing. 0 with *reply, or -1 with err. */
static int k8s_call(lua_State *L, struct lua_k8s *k, cJSON *req, cJSON **reply, struct k8s_error *err)
{
	long left = lua_sandbox_remaining_ms(L);
	cJSON *msg;
	char why[256];
	int rc;

	*reply = NULL;
	if (left != LONG_MAX)
		cJSON_AddNumberToObject(req, "left_ms", (double)left);
	if (k->link[0] < 0) {
		rc = lua_k8s_serve(k, req, reply, err);
		cJSON_Delete(req);
		return rc;
	}
	msg = cJSON_CreateObject();
	cJSON_AddItemToObject(msg, "call", req);
	rc = hook_link_send(k->link[1], msg, 0);
	cJSON_Delete(msg);
	if (rc == 0)
		rc = hook_link_recv(k->link[0], HOOK_LINK_MAX_TO_HOOK, 0, &msg, why, sizeof why);
	else
		snprintf(why, sizeof why, "cannot write to the runner: %s", strerror(errno));
	if (rc < 0) {
		memset(err, 0, sizeof *err);
		snprintf(err->message, sizeof err->message, "%s", why);
		return -1;
	}
	if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(msg, "reply"))) {
		*reply = cJSON_DetachItemFromObjectCaseSensitive(msg, "reply");
		rc = 0;
	} else {
		hook_link_error_parse(cJSON_GetObjectItemCaseSensitive(msg, "error"), err);
		rc = -1;
	}
	cJSON_Delete(msg);
	return rc;
}

/* reply's item key, taken out of it; reply is freed. */
static cJSON *k8s_take(cJSON *reply, const char *key)
{
	cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(reply, key);

	cJSON_Delete(reply);
	return v ? v : cJSON_CreateNull();
}

/* ---- arguments ---- */

static const char *k8s_check_string(lua_State *L, int idx, const char *fn, const char *what, size_t max)
{
	size_t len;
	const char *s;

	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "k8s.%s: %s must be a string, got %s", fn, what, luaL_typename(L, idx));
	s = lua_tolstring(L, idx, &len);
	if (len == 0 || len > max || strlen(s) != len)
		luaL_error(L, "k8s.%s: %s must be 1 to %d characters without NUL bytes", fn, what, (int)max);
	return s;
}

static int k8s_chars_in(const char *s, const char *allowed)
{
	return s[strspn(s, allowed)] == '\0';
}

#define LOWER_DNS "abcdefghijklmnopqrstuvwxyz0123456789-."

static const char *k8s_check_name(lua_State *L, int idx, const char *fn, const char *what)
{
	const char *s = k8s_check_string(L, idx, fn, what, 253);

	if (strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		luaL_error(L, "k8s.%s: %s \"%s\" is not an object name", fn, what, s);
	return s;
}

/* An options table at idx (absent or nil: none); refuses keys other than those allowed. */
static void k8s_check_options(lua_State *L, int idx, const char *fn, const char *const *allowed)
{
	if (lua_isnoneornil(L, idx))
		return;
	if (!lua_istable(L, idx))
		luaL_error(L, "k8s.%s: options must be a table, got %s", fn, luaL_typename(L, idx));
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int known = 0;

		lua_pop(L, 1);
		for (size_t i = 0; lua_type(L, -1) == LUA_TSTRING && allowed[i]; i++)
			known |= strcmp(lua_tostring(L, -1), allowed[i]) == 0;
		if (!known) {
			lua_pop(L, 1);
			luaL_error(L, "k8s.%s: unknown option (the options are %s%s%s)", fn, allowed[0],
				   allowed[1] ? ", " : "", allowed[1] ? allowed[1] : "");
		}
	}
}

/* The string option key of the table at idx, or NULL when absent. */
static const char *k8s_option(lua_State *L, int idx, const char *fn, const char *key, size_t max)
{
	const char *s;

	if (lua_isnoneornil(L, idx))
		return NULL;
	lua_pushstring(L, key);
	lua_rawget(L, idx);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return NULL;
	}
	s = k8s_check_string(L, -1, fn, key, max);
	lua_pop(L, 1);	/* the table still holds the string */
	return s;
}

static int k8s_namespace_allowed(const struct lua_k8s *k, const char *ns)
{
	if (strcmp(ns, k->ns) == 0)
		return 1;
	for (size_t i = 0; i < k->ngranted; i++)
		if (strcmp(ns, k->granted[i]) == 0)
			return 1;
	return 0;
}

/* The namespace a call reaches: ns (NULL: the hook's own), refused outside the scope. */
static const char *k8s_scope_namespace(lua_State *L, struct lua_k8s *k, const char *fn, const char *ns)
{
	if (!ns)
		return k->ns;
	if (!k8s_chars_in(ns, LOWER_DNS) || strlen(ns) > 63)
		luaL_error(L, "k8s.%s: namespace \"%s\" is not a namespace name", fn, ns);
	if (!k8s_namespace_allowed(k, ns))
		luaL_error(L, "k8s.%s: namespace \"%s\" is outside this hook's scope (it may reach \"%s\"%s)",
			   fn, ns, k->ns, k->ngranted ? " and the namespaces granted to it" : "");
	return ns;
}

static void k8s_parse_api_version(lua_State *L, const char *fn, const char *av, struct k8s_target *t)
{
	const char *slash = strchr(av, '/');
	const char *version = slash ? slash + 1 : av;
	size_t glen = slash ? (size_t)(slash - av) : 0;

	if ((slash && (glen == 0 || glen >= sizeof t->group)) || !*version || strlen(version) >= sizeof t->version ||
	    strchr(version, '/') || !k8s_chars_in(version, "abcdefghijklmnopqrstuvwxyz0123456789"))
		luaL_error(L, "k8s.%s: apiVersion \"%s\" is not group/version or version (\"apps/v1\", \"v1\")", fn, av);
	memcpy(t->group, av, glen);
	t->group[glen] = '\0';
	if (!k8s_chars_in(t->group, LOWER_DNS))
		luaL_error(L, "k8s.%s: apiVersion \"%s\" has an invalid group", fn, av);
	snprintf(t->version, sizeof t->version, "%s", version);
	t->api_version = av;
}

static void k8s_load_discovery(lua_State *L, struct lua_k8s *k)
{
	struct k8s_error err;
	cJSON *reply, *types, *t;

	if (k->discovered)
		return;
	if (k8s_call(L, k, k8s_op("discover"), &reply, &err) < 0) {
		k->discovered = -1;
		k8s_error_describe(&err, k->discovery_error, sizeof k->discovery_error);
		return;
	}
	types = k8s_take(reply, "types");
	k->types.items = xcalloc((size_t)cJSON_GetArraySize(types) + 1, sizeof *k->types.items);
	cJSON_ArrayForEach(t, types) {
		struct k8s_resource_type *r = &k->types.items[k->types.n];
		const char *f[4] = { "group", "version", "kind", "plural" };
		char *dst[4] = { r->group, r->version, r->kind, r->plural };
		size_t len[4] = { sizeof r->group, sizeof r->version, sizeof r->kind, sizeof r->plural };
		int ok = 1;

		for (int i = 0; i < 4; i++) {
			const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, f[i]));

			ok = ok && v && strlen(v) < len[i];
			if (ok)
				memcpy(dst[i], v, strlen(v) + 1);
		}
		r->namespaced = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "namespaced"));
		if (ok)
			k->types.n++;
	}
	cJSON_Delete(types);
	k->discovered = 1;
}

/* Resolves kind in the target's group through discovery. In a dry run, a cluster that cannot
 * be asked leaves t->type NULL instead of failing, so that writes are still recorded. */
static void k8s_resolve(lua_State *L, struct lua_k8s *k, const char *fn, struct k8s_target *t, int write)
{
	k8s_load_discovery(L, k);
	lua_sandbox_check_limits(L);
	t->type = NULL;
	if (k->discovered < 0) {
		if (write && k->dry_run)
			return;
		luaL_error(L, "k8s.%s: cannot look up kind %s: %s", fn, t->kind, k->discovery_error);
	}
	for (size_t i = 0; i < k->types.n; i++)
		if (strcmp(k->types.items[i].group, t->group) == 0 && strcmp(k->types.items[i].kind, t->kind) == 0)
			t->type = &k->types.items[i];
	if (!t->type)
		luaL_error(L, "k8s.%s: the cluster serves no kind %s in %s", fn, t->kind,
			   *t->group ? t->group : "the core group");
	if (write && !t->type->namespaced)
		luaL_error(L, "k8s.%s: %s is cluster-scoped; hooks may read such objects but not change them",
			   fn, t->kind);
}

static const char *const k8s_ns_only[] = { "namespace", NULL };

/* apiVersion and kind at idx and idx+1, and the namespace option of the table at opt (0: none),
 * whose keys must be among allowed. */
static void k8s_target(lua_State *L, struct lua_k8s *k, const char *fn, int idx, int opt,
		       const char *const *allowed, int write, struct k8s_target *t)
{
	memset(t, 0, sizeof *t);
	k8s_parse_api_version(L, fn, k8s_check_string(L, idx, fn, "apiVersion", 317), t);
	t->kind = k8s_check_string(L, idx + 1, fn, "kind", 63);
	if (!k8s_chars_in(t->kind, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))
		luaL_error(L, "k8s.%s: kind \"%s\" is not a kind name (\"ConfigMap\")", fn, t->kind);
	if (opt)
		k8s_check_options(L, opt, fn, allowed);
	t->ns = k8s_scope_namespace(L, k, fn, opt ? k8s_option(L, opt, fn, "namespace", 63) : NULL);
	k8s_resolve(L, k, fn, t, write);
}

/* A call on the target's objects: {"op", "group", "version", "plural", "namespace", "name"}. */
static cJSON *k8s_request(const char *op, const char *group, const char *version, const char *plural,
			  const char *ns, const char *name)
{
	cJSON *req = k8s_op(op);

	cJSON_AddStringToObject(req, "group", group);
	cJSON_AddStringToObject(req, "version", version);
	cJSON_AddStringToObject(req, "plural", plural);
	cJSON_AddStringToObject(req, "namespace", ns);
	if (name)
		cJSON_AddStringToObject(req, "name", name);
	return req;
}

static cJSON *k8s_target_request(const char *op, const struct k8s_target *t, const char *name)
{
	return k8s_request(op, t->group, t->version, t->type->plural, t->ns, name);
}

/* ---- dry-run records ---- */

/* Called before anything is allocated, so that k8s_record itself never raises. */
static void k8s_check_room(lua_State *L, const struct lua_k8s *k, const char *fn)
{
	if (cJSON_GetArraySize(k->writes) >= LUA_K8S_MAX_WRITES)
		luaL_error(L, "k8s.%s: a dry run records at most %d writes", fn, LUA_K8S_MAX_WRITES);
}

static cJSON *k8s_record(struct lua_k8s *k, const char *fn, const char *api_version, const char *kind,
			 const char *ns, const char *name)
{
	cJSON *w = cJSON_CreateObject();

	cJSON_AddStringToObject(w, "verb", fn);
	if (api_version)
		cJSON_AddStringToObject(w, "apiVersion", api_version);
	if (kind)
		cJSON_AddStringToObject(w, "kind", kind);
	cJSON_AddStringToObject(w, "namespace", ns);
	cJSON_AddStringToObject(w, "name", name);
	cJSON_AddItemToArray(k->writes, w);
	return w;
}

/* The table at idx as JSON within the memory the script has left; raises when it cannot be. */
static cJSON *k8s_table_to_json(lua_State *L, int idx, const char *fn, const char *what)
{
	char err[300];
	cJSON *v = NULL;
	int rc;

	if (!lua_istable(L, idx))
		luaL_error(L, "k8s.%s: %s must be a table, got %s", fn, what, luaL_typename(L, idx));
	rc = lua_convert_to_cjson(L, idx, lua_sandbox_remaining_memory(L), &v, err, sizeof err);
	if (rc == -2)
		lua_sandbox_memory_error(L, 0);
	if (rc < 0)
		luaL_error(L, "k8s.%s: %s: %s", fn, what, err);
	if (!cJSON_IsObject(v)) {
		cJSON_Delete(v);
		luaL_error(L, "k8s.%s: %s must be an object (a table with string keys)", fn, what);
	}
	return v;
}

/* ---- reads ---- */

/* k8s.get(apiVersion, kind, name [, {namespace=}]) -> object, or nil and "NotFound: ..." */
static int k8s_lua_get(lua_State *L)
{
	struct lua_k8s *k = k8s_of(L);
	struct k8s_target t;
	struct k8s_error err;
	const char *name;
	cJSON *obj = NULL;
	int rc;

	k8s_begin(L);
	name = k8s_check_name(L, 3, "get", "name");
	k8s_target(L, k, "get", 1, 4, k8s_ns_only, 0, &t);
	rc = k8s_call(L, k, k8s_target_request("get", &t, name), &obj, &err);
	if (rc < 0 && err.http_status == 404) {
		lua_sandbox_check_limits(L);
		lua_pushnil(L);
		lua_pushfstring(L, "NotFound: %s", err.message);
		return 2;
	}
	if (rc < 0)
		return k8s_raise(L, "get", &err);
	k8s_push_json_take(L, k8s_take(obj, "object"));
	return 1;
}

struct k8s_collect {
	cJSON *items;
	size_t bytes, budget;
	int over;
};

static int k8s_collect_item(cJSON *obj, void *ud)
{
	struct k8s_collect *c = ud;

	if (!obj) {	/* the listing restarts */
		cJSON_Delete(c->items);
		c->items = cJSON_CreateArray();
		c->bytes = 0;
		return 0;
	}
	c->bytes += k8s_json_size(obj);
	if (c->bytes > c->budget) {
		c->over = 1;
		return 1;
	}
	cJSON_AddItemToArray(c->items, cJSON_Duplicate(obj, 1));
	return 0;
}

/* k8s.list(apiVersion, kind [, {labelSelector=, namespace=}]) -> array of objects */
static int k8s_lua_list(lua_State *L)
{
	static const char *const opts[] = { "labelSelector", "namespace", NULL };
	struct lua_k8s *k = k8s_of(L);
	struct k8s_target t;
	struct k8s_error err;
	const char *selector;
	cJSON *req, *reply;

	k8s_begin(L);
	k8s_target(L, k, "list", 1, 3, opts, 0, &t);
	selector = k8s_option(L, 3, "list", "labelSelector", 1024);
	req = k8s_target_request("list", &t, NULL);
	if (selector)
		cJSON_AddStringToObject(req, "labelSelector", selector);
	/* the Lua copy needs the other half */
	cJSON_AddNumberToObject(req, "budget", (double)(lua_sandbox_remaining_memory(L) / 2));
	if (k8s_call(L, k, req, &reply, &err) < 0) {
		if (strcmp(err.reason, "TooLarge") == 0)
			return lua_sandbox_memory_error(L, 0);
		return k8s_raise(L, "list", &err);
	}
	k8s_push_json_take(L, k8s_take(reply, "items"));
	return 1;
}

/* ---- writes ---- */

/* k8s.create(object) -> the object created (in a dry run, the object as it would be sent) */
static int k8s_lua_create(lua_State *L)
{
	static const char *const fields[] = { "apiVersion", "kind", "metadata" };
	struct lua_k8s *k = k8s_of(L);
	struct k8s_target t;
	struct k8s_error err;
	cJSON *obj, *meta, *req, *created = NULL;
	const char *name;
	int rc;

	k8s_begin(L);
	lua_settop(L, 1);
	if (!lua_istable(L, 1))
		return luaL_error(L, "k8s.create: object must be a table, got %s", luaL_typename(L, 1));
	for (int i = 0; i < 3; i++) {	/* raw reads: 2 apiVersion, 3 kind, 4 metadata */
		lua_pushstring(L, fields[i]);
		lua_rawget(L, 1);
	}
	if (!lua_istable(L, 4))
		return luaL_error(L, "k8s.create: the object needs a metadata table with a name");
	lua_pushliteral(L, "name");
	lua_rawget(L, 4);		/* 5 */
	lua_createtable(L, 0, 1);	/* 6: the options k8s_target reads the namespace from */
	lua_pushliteral(L, "namespace");
	lua_rawget(L, 4);
	lua_setfield(L, 6, "namespace");
	name = k8s_check_name(L, 5, "create", "metadata.name");
	k8s_target(L, k, "create", 2, 6, k8s_ns_only, 1, &t);
	if (k->dry_run)
		k8s_check_room(L, k, "create");
	obj = k8s_table_to_json(L, 1, "create", "object");
	/* Nothing below raises until obj is freed. */
	meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	cJSON_DeleteItemFromObjectCaseSensitive(meta, "namespace");
	cJSON_AddStringToObject(meta, "namespace", t.ns);
	if (k->dry_run) {
		cJSON_AddItemToObject(k8s_record(k, "create", t.api_version, t.kind, t.ns, name), "body",
				      cJSON_Duplicate(obj, 1));
		k8s_push_json_take(L, obj);
		return 1;
	}
	req = k8s_target_request("create", &t, NULL);
	cJSON_AddItemToObject(req, "body", obj);
	rc = k8s_call(L, k, req, &created, &err);
	if (rc < 0)
		return k8s_raise(L, "create", &err);
	k8s_push_json_take(L, k8s_take(created, "object"));
	return 1;
}

/* k8s.patch(apiVersion, kind, name, patch [, {namespace=}]) -> the patched object (nil in a dry run) */
static int k8s_lua_patch(lua_State *L)
{
	struct lua_k8s *k = k8s_of(L);
	struct k8s_target t;
	struct k8s_error err;
	const char *name;
	cJSON *patch, *req, *patched = NULL;
	int rc;

	k8s_begin(L);
	name = k8s_check_name(L, 3, "patch", "name");
	if (!lua_istable(L, 4))
		return luaL_error(L, "k8s.patch: patch must be a table, got %s", luaL_typename(L, 4));
	k8s_target(L, k, "patch", 1, 5, k8s_ns_only, 1, &t);
	if (k->dry_run)
		k8s_check_room(L, k, "patch");
	patch = k8s_table_to_json(L, 4, "patch", "patch");
	if (k->dry_run) {
		cJSON_AddItemToObject(k8s_record(k, "patch", t.api_version, t.kind, t.ns, name), "body", patch);
		return 0;
	}
	req = k8s_target_request("patch", &t, name);
	cJSON_AddItemToObject(req, "body", patch);
	rc = k8s_call(L, k, req, &patched, &err);
	if (rc < 0)
		return k8s_raise(L, "patch", &err);
	k8s_push_json_take(L, k8s_take(patched, "object"));
	return 1;
}

/* k8s.delete(apiVersion, kind, name [, {namespace=}]) -> true, or false when it did not exist */
static int k8s_lua_delete(lua_State *L)
{
	struct lua_k8s *k = k8s_of(L);
	struct k8s_target t;
	struct k8s_error err;
	const char *name;
	cJSON *reply;
	int rc;

	k8s_begin(L);
	name = k8s_check_name(L, 3, "delete", "name");
	k8s_target(L, k, "delete", 1, 4, k8s_ns_only, 1, &t);
	if (k->dry_run) {
		k8s_check_room(L, k, "delete");
		k8s_record(k, "delete", t.api_version, t.kind, t.ns, name);
		lua_pushboolean(L, 1);
		return 1;
	}
	rc = k8s_call(L, k, k8s_target_request("delete", &t, name), &reply, &err);
	cJSON_Delete(reply);
	if (rc < 0 && err.http_status != 404)
		return k8s_raise(L, "delete", &err);
	lua_pushboolean(L, rc == 0);
	return 1;
}

/* The workload kinds scale and wait_ready know, all in apps/v1. */
static const char *k8s_workload_plural(lua_State *L, const char *fn, int idx)
{
	const char *kind = k8s_check_string(L, idx, fn, "kind", 63);

	if (strcmp(kind, "Deployment") == 0)
		return "deployments";
	if (strcmp(kind, "StatefulSet") == 0)
		return "statefulsets";
	if (strcmp(kind, "ReplicaSet") == 0 && strcmp(fn, "scale") == 0)
		return "replicasets";
	luaL_error(L, "k8s.%s: kind must be Deployment or StatefulSet%s, got \"%s\"", fn,
		   strcmp(fn, "scale") == 0 ? " (or ReplicaSet)" : "", kind);
	return NULL;
}

static lua_Integer k8s_check_integer(lua_State *L, int idx, const char *fn, const char *what,
				     lua_Integer min, lua_Integer max)
{
	lua_Integer v;

	if (!lua_isinteger(L, idx))
		luaL_error(L, "k8s.%s: %s must be an integer, got %s", fn, what, luaL_typename(L, idx));
	v = lua_tointeger(L, idx);
	if (v < min || v > max)
		luaL_error(L, "k8s.%s: %s must be from %d to %d", fn, what, (int)min, (int)max);
	return v;
}

static const char *k8s_namespace_option(lua_State *L, struct lua_k8s *k, const char *fn, int idx)
{
	k8s_check_options(L, idx, fn, k8s_ns_only);
	return k8s_scope_namespace(L, k, fn, k8s_option(L, idx, fn, "namespace", 63));
}

/* k8s.scale(kind, name, replicas [, {namespace=}]) */
static int k8s_lua_scale(lua_State *L)
{
	struct lua_k8s *k = k8s_of(L);
	struct k8s_error err;
	const char *plural, *name, *ns;
	lua_Integer replicas;
	cJSON *req, *reply;
	int rc;

	k8s_begin(L);
	plural = k8s_workload_plural(L, "scale", 1);
	name = k8s_check_name(L, 2, "scale", "name");
	replicas = k8s_check_integer(L, 3, "scale", "replicas", 0, LUA_K8S_MAX_REPLICAS);
	ns = k8s_namespace_option(L, k, "scale", 4);
	if (k->dry_run) {
		k8s_check_room(L, k, "scale");
		cJSON_AddNumberToObject(k8s_record(k, "scale", "apps/v1", lua_tostring(L, 1), ns, name),
					"replicas", (double)replicas);
		return 0;
	}
	req = k8s_request("patch", "apps", "v1", plural, ns, name);
	cJSON_AddNumberToObject(cJSON_AddObjectToObject(cJSON_AddObjectToObject(req, "body"), "spec"), "replicas",
				(double)replicas);
	rc = k8s_call(L, k, req, &reply, &err);
	cJSON_Delete(reply);
	if (rc < 0)
		return k8s_raise(L, "scale", &err);
	return 0;
}

struct k8s_readiness {
	char state[128];
};

static long long k8s_int_at(const cJSON *obj, const char *a, const char *b, long long def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, a), b);

	return cJSON_IsNumber(v) ? (long long)v->valuedouble : def;
}

/* Ready: the controller has seen the latest spec and every wanted replica exists and is ready. */
static int k8s_ready(const cJSON *obj, void *ud)
{
	struct k8s_readiness *r = ud;
	long long want, ready, have, generation, observed;

	if (!obj) {
		snprintf(r->state, sizeof r->state, "it does not exist");
		return 0;
	}
	want = k8s_int_at(obj, "spec", "replicas", 1);
	ready = k8s_int_at(obj, "status", "readyReplicas", 0);
	have = k8s_int_at(obj, "status", "replicas", 0);
	generation = k8s_int_at(obj, "metadata", "generation", 0);
	observed = k8s_int_at(obj, "status", "observedGeneration", 0);
	snprintf(r->state, sizeof r->state, "%lld of %lld replicas ready", ready, want);
	return observed >= generation && ready == want && have == want;
}

/* k8s.wait_ready(kind, name, timeout_ms [, {namespace=}]) -> true, or false and the last state */
static int k8s_lua_wait_ready(lua_State *L)
{
	struct lua_k8s *k = k8s_of(L);
	struct k8s_readiness r = { "not checked" };
	struct k8s_error err;
	const char *plural, *name, *ns;
	lua_Integer timeout;
	const char *state;
	cJSON *req, *reply;
	int ready;

	k8s_begin(L);
	plural = k8s_workload_plural(L, "wait_ready", 1);
	name = k8s_check_name(L, 2, "wait_ready", "name");
	timeout = k8s_check_integer(L, 3, "wait_ready", "timeout_ms", 1, 86400000);
	ns = k8s_namespace_option(L, k, "wait_ready", 4);
	if (timeout > lua_sandbox_remaining_ms(L))
		timeout = lua_sandbox_remaining_ms(L);
	req = k8s_request("wait_ready", "apps", "v1", plural, ns, name);
	cJSON_AddNumberToObject(req, "timeout_ms", (double)timeout);
	if (k8s_call(L, k, req, &reply, &err) < 0)
		return k8s_raise(L, "wait_ready", &err);
	ready = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ready"));
	state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(reply, "state"));
	snprintf(r.state, sizeof r.state, "%s", state ? state : "unknown");
	cJSON_Delete(reply);
	lua_sandbox_check_limits(L);
	lua_pushboolean(L, ready);
	if (ready)
		return 1;
	lua_pushfstring(L, "%s %s not ready after %d ms: %s", lua_tostring(L, 1), name, (int)timeout, r.state);
	return 2;
}

/* ---- exec ---- */

static void k8s_push_exec_table(lua_State *L, const struct k8s_exec_result *r)
{
	lua_createtable(L, 0, 4);
	lua_pushinteger(L, r->exit_code);
	lua_setfield(L, -2, "exit_code");
	lua_pushlstring(L, r->out, r->out_len);
	lua_setfield(L, -2, "stdout");
	lua_pushlstring(L, r->err, r->err_len);
	lua_setfield(L, -2, "stderr");
	lua_pushboolean(L, r->truncated);
	lua_setfield(L, -2, "truncated");
}

static int k8s_push_exec_unprotected(lua_State *L)
{
	k8s_push_exec_table(L, lua_touserdata(L, 1));
	return 1;
}

/* The argv array at idx, as strings that stay on the Lua stack (in the table). */
static size_t k8s_check_argv(lua_State *L, int idx, const char **argv)
{
	lua_Integer n;

	if (!lua_istable(L, idx))
		luaL_error(L, "k8s.exec: argv must be a table of strings, got %s", luaL_typename(L, idx));
	n = (lua_Integer)lua_rawlen(L, idx);
	if (n < 1 || n > K8S_EXEC_MAX_ARGS)
		luaL_error(L, "k8s.exec: argv must hold 1 to %d strings", K8S_EXEC_MAX_ARGS);
	for (lua_Integer i = 1; i <= n; i++) {
		char what[32];

		lua_rawgeti(L, idx, i);
		snprintf(what, sizeof what, "argv[%lld]", (long long)i);
		argv[i - 1] = k8s_check_string(L, -1, "exec", what, K8S_EXEC_MAX_ARG_LEN);
		lua_pop(L, 1);
	}
	return (size_t)n;
}

/* k8s.exec(pod, container|nil, argv [, {namespace=, timeout_ms=}]) -> {exit_code, stdout, stderr, truncated} */
static int k8s_lua_exec(lua_State *L)
{
	static const char *const opts[] = { "namespace", "timeout_ms", NULL };
	struct lua_k8s *k = k8s_of(L);
	const char *argv[K8S_EXEC_MAX_ARGS];
	struct k8s_exec_result res;
	struct k8s_error err;
	const char *pod, *container = NULL, *ns;
	long timeout = lua_sandbox_remaining_ms(L);
	size_t argc, out_max;
	cJSON *req, *reply, *a;
	int rc, status;

	k8s_begin(L);
	pod = k8s_check_name(L, 1, "exec", "pod");
	if (!lua_isnil(L, 2))
		container = k8s_check_name(L, 2, "exec", "container");
	argc = k8s_check_argv(L, 3, argv);
	k8s_check_options(L, 4, "exec", opts);
	ns = k8s_scope_namespace(L, k, "exec", k8s_option(L, 4, "exec", "namespace", 63));
	if (lua_istable(L, 4)) {
		lua_pushliteral(L, "timeout_ms");
		lua_rawget(L, 4);
		if (!lua_isnil(L, -1)) {
			lua_Integer t = k8s_check_integer(L, -1, "exec", "timeout_ms", 1, 86400000);

			timeout = t < timeout ? (long)t : timeout;
		}
		lua_pop(L, 1);
	}
	if (k->dry_run) {
		cJSON *w;

		k8s_check_room(L, k, "exec");
		w = k8s_record(k, "exec", NULL, "Pod", ns, pod);
		a = cJSON_AddArrayToObject(w, "argv");
		if (container)
			cJSON_AddStringToObject(w, "container", container);
		for (size_t i = 0; i < argc; i++)
			cJSON_AddItemToArray(a, cJSON_CreateString(argv[i]));
		memset(&res, 0, sizeof res);
		res.out = res.err = (char *)"";
		k8s_push_exec_table(L, &res);
		return 1;
	}
	out_max = lua_sandbox_remaining_memory(L) / 4;
	if (out_max > LUA_K8S_EXEC_OUTPUT_MAX)
		out_max = LUA_K8S_EXEC_OUTPUT_MAX;
	req = k8s_op("exec");
	cJSON_AddStringToObject(req, "namespace", ns);
	cJSON_AddStringToObject(req, "pod", pod);
	if (container)
		cJSON_AddStringToObject(req, "container", container);
	a = cJSON_AddArrayToObject(req, "argv");
	for (size_t i = 0; i < argc; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(argv[i]));
	cJSON_AddNumberToObject(req, "timeout_ms", (double)timeout);
	cJSON_AddNumberToObject(req, "out_max", (double)out_max);
	if (k8s_call(L, k, req, &reply, &err) < 0)
		return k8s_raise(L, "exec", &err);
	rc = k8s_exec_result_parse(reply, out_max, &res);
	cJSON_Delete(reply);
	if (rc < 0) {
		memset(&err, 0, sizeof err);
		snprintf(err.message, sizeof err.message, "the runner's answer is not an exec result");
		return k8s_raise(L, "exec", &err);
	}
	lua_pushcfunction(L, k8s_push_exec_unprotected);
	lua_pushlightuserdata(L, &res);
	status = lua_pcall(L, 1, 1, 0);
	k8s_exec_result_free(&res);
	if (status != LUA_OK)
		return k8s_rethrow(L, status);
	return 1;
}

/* ---- calls on the cluster: lua_k8s_serve ---- */

/* An exec reply: {"exit_code", "stdout", "stderr" (base64), "truncated"}; each output at most max. */
static int k8s_exec_result_parse(const cJSON *reply, size_t max, struct k8s_exec_result *r)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(reply, "exit_code");
	const char *out = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(reply, "stdout"));
	const char *err = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(reply, "stderr"));

	memset(r, 0, sizeof *r);
	if (!cJSON_IsNumber(code) || !out || !err)
		return -1;
	r->exit_code = (int)code->valuedouble;
	r->truncated = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "truncated"));
	r->out = hook_link_unbase64(out, &r->out_len);
	r->err = hook_link_unbase64(err, &r->err_len);
	if (!r->out || !r->err || r->out_len > max || r->err_len > max) {
		k8s_exec_result_free(r);
		return -1;
	}
	return 0;
}

static int serve_fail(struct k8s_error *err, long status, const char *reason, const char *fmt, const char *arg)
{
	memset(err, 0, sizeof *err);
	err->http_status = status;
	snprintf(err->reason, sizeof err->reason, "%s", reason);
	snprintf(err->message, sizeof err->message, fmt, arg);
	return -1;
}

static const char *serve_string(const cJSON *req, const char *key, size_t max)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, key));

	return v && *v && strlen(v) <= max ? v : NULL;
}

static long serve_number(const cJSON *req, const char *key, long min, long max, long def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, key);

	if (!cJSON_IsNumber(v))
		return def;
	return v->valuedouble < (double)min ? min : v->valuedouble > (double)max ? max : (long)v->valuedouble;
}

/* What a call reaches, checked against the cluster's own discovery and the scope: a namespaced
 * type in a namespace of the scope, or a cluster-scoped one for reads. The path is built here. */
static int serve_target(struct lua_k8s *k, const cJSON *req, int write, const struct k8s_resource_type **type,
			const char **ns, char **path, struct k8s_error *err)
{
	const char *group = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "group"));
	const char *version = serve_string(req, "version", 63);
	const char *plural = serve_string(req, "plural", 127);
	const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "name"));

	*ns = serve_string(req, "namespace", 63);
	if (!group || !version || !plural || (name && (!*name || strlen(name) > 253 || strchr(name, '/') ||
						       strcmp(name, ".") == 0 || strcmp(name, "..") == 0)))
		return serve_fail(err, 400, "BadRequest", "%s", "a call names no valid resource");
	*type = k8s_resource_find(&k->served, group, plural);
	if (!*type || strcmp((*type)->version, version) != 0)
		return serve_fail(err, 404, "NotFound", "the cluster serves no resource %s at that version", plural);
	if (!(*type)->namespaced) {
		if (write)
			return serve_fail(err, 403, "Forbidden", "%s is cluster-scoped; hooks may read such objects "
				       "but not change them", (*type)->kind);
		*ns = NULL;
	} else if (!*ns || !k8s_namespace_allowed(k, *ns)) {
		return serve_fail(err, 403, "Forbidden", "namespace \"%s\" is outside this hook's scope",
				  *ns ? *ns : "");
	}
	*path = k8s_resource_path(group, version, plural, *ns, name);
	return 0;
}

static int serve_discovery(struct lua_k8s *k, struct k8s_error *err)
{
	if (!k->served_discovered) {
		if (!k->client)
			serve_fail(&k->served_error, 0, "", "%s", "no cluster to ask");
		else if (k8s_discover(k->client, K8S_DISCOVERY_AUTO, &k->served, &k->served_error) < 0)
			k8s_resource_list_free(&k->served);
		else
			memset(&k->served_error, 0, sizeof k->served_error);
		k->served_discovered = 1;
	}
	if (k->served_error.message[0]) {
		*err = k->served_error;
		return -1;
	}
	return 0;
}

static cJSON *serve_types(const struct k8s_resource_list *list)
{
	cJSON *reply = cJSON_CreateObject(), *types = cJSON_AddArrayToObject(reply, "types");

	for (size_t i = 0; i < list->n; i++) {
		cJSON *t = cJSON_CreateObject();

		cJSON_AddStringToObject(t, "group", list->items[i].group);
		cJSON_AddStringToObject(t, "version", list->items[i].version);
		cJSON_AddStringToObject(t, "kind", list->items[i].kind);
		cJSON_AddStringToObject(t, "plural", list->items[i].plural);
		cJSON_AddBoolToObject(t, "namespaced", list->items[i].namespaced);
		cJSON_AddItemToArray(types, t);
	}
	return reply;
}

static cJSON *serve_wrap(const char *key, cJSON *v)
{
	cJSON *reply = cJSON_CreateObject();

	cJSON_AddItemToObject(reply, key, v ? v : cJSON_CreateNull());
	return reply;
}

static int serve_exec(struct lua_k8s *k, const cJSON *req, cJSON **reply, struct k8s_error *err)
{
	const char *ns = serve_string(req, "namespace", 63), *pod = serve_string(req, "pod", 253);
	const char *container = serve_string(req, "container", 253);
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(req, "argv"), *a;
	const char *argv[K8S_EXEC_MAX_ARGS];
	struct k8s_exec_result res;
	size_t argc = 0;
	char *out, *errs;

	if (!ns || !pod || !cJSON_IsArray(list))
		return serve_fail(err, 400, "BadRequest", "%s", "an exec call names no pod or command");
	if (!k8s_namespace_allowed(k, ns))
		return serve_fail(err, 403, "Forbidden", "namespace \"%s\" is outside this hook's scope", ns);
	cJSON_ArrayForEach(a, list) {
		if (argc == K8S_EXEC_MAX_ARGS || !cJSON_IsString(a) || strlen(a->valuestring) > K8S_EXEC_MAX_ARG_LEN)
			return serve_fail(err, 400, "BadRequest", "%s", "an exec call's command is not a list of strings");
		argv[argc++] = a->valuestring;
	}
	if (argc == 0)
		return serve_fail(err, 400, "BadRequest", "%s", "an exec call's command is empty");
	/* within the hook's time left too: lua_k8s_serve made it the client's deadline, which
	 * k8s_exec keeps */
	if (k8s_exec(k->client, ns, pod, container, argv, argc, serve_number(req, "timeout_ms", 1, 86400000, 1),
		     (size_t)serve_number(req, "out_max", 0, LUA_K8S_EXEC_OUTPUT_MAX, 0), &res, err) < 0) {
		k8s_exec_result_free(&res);
		return -1;
	}
	*reply = cJSON_CreateObject();
	cJSON_AddNumberToObject(*reply, "exit_code", res.exit_code);
	out = hook_link_base64(res.out, res.out_len);
	errs = hook_link_base64(res.err, res.err_len);
	cJSON_AddStringToObject(*reply, "stdout", out);
	cJSON_AddStringToObject(*reply, "stderr", errs);
	cJSON_AddBoolToObject(*reply, "truncated", res.truncated);
	free(out);
	free(errs);
	k8s_exec_result_free(&res);
	return 0;
}

int lua_k8s_serve(struct lua_k8s *k, const cJSON *req, cJSON **reply, struct k8s_error *err)
{
	const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "op"));
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(req, "body");
	const struct k8s_resource_type *type;
	const char *ns;
	char *path = NULL;
	cJSON *obj = NULL;
	long left = serve_number(req, "left_ms", 0, 86400000, -1);
	int rc, write;

	*reply = NULL;
	if (!op)
		return serve_fail(err, 400, "BadRequest", "%s", "a call names no operation");
	/* The hook process's library records a dry run's writes instead of sending them, but a
	 * process that broke out of Lua sends what it likes: the runner refuses them on its own. */
	if (k->dry_run && (strcmp(op, "create") == 0 || strcmp(op, "patch") == 0 || strcmp(op, "delete") == 0 ||
			   strcmp(op, "exec") == 0))
		return serve_fail(err, 403, "Forbidden", "%s", "a dry run makes no writes");
	if (serve_discovery(k, err) < 0)
		return -1;
	if (k->client)
		k8s_client_set_deadline(k->client, left < 0 ? 0 : http_retry_now_ms() + left);
	if (strcmp(op, "discover") == 0) {
		*reply = serve_types(&k->served);
		return 0;
	}
	if (strcmp(op, "exec") == 0)
		return serve_exec(k, req, reply, err);
	write = strcmp(op, "create") == 0 || strcmp(op, "patch") == 0 || strcmp(op, "delete") == 0 ||
		strcmp(op, "wait_ready") == 0;
	if (!write && strcmp(op, "get") != 0 && strcmp(op, "list") != 0)
		return serve_fail(err, 400, "BadRequest", "no operation %s", op);
	if (serve_target(k, req, write, &type, &ns, &path, err) < 0)
		return -1;
	if (strcmp(op, "get") == 0) {
		rc = k8s_get(k->client, path, &obj, err);
		*reply = rc == 0 ? serve_wrap("object", obj) : NULL;
	} else if (strcmp(op, "list") == 0) {
		struct k8s_collect c = { 0 };
		const char *selector = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "labelSelector"));

		c.items = cJSON_CreateArray();
		c.budget = (size_t)serve_number(req, "budget", 0, HOOK_LINK_MAX_TO_HOOK / 2, 0);
		rc = k8s_list(k->client, type, ns, selector, LUA_K8S_LIST_PAGE, k8s_collect_item, &c, err);
		if (rc < 0 && c.over)
			serve_fail(err, 0, "TooLarge", "%s", "the listing is larger than the memory the script has left");
		*reply = rc == 0 ? serve_wrap("items", c.items) : NULL;
		if (rc < 0)
			cJSON_Delete(c.items);
	} else if (strcmp(op, "create") == 0 && cJSON_IsObject(body) && !cJSON_GetObjectItemCaseSensitive(req, "name")) {
		cJSON *copy = cJSON_Duplicate(body, 1), *meta = cJSON_GetObjectItemCaseSensitive(copy, "metadata");

		/* the object lands where the scope was checked, whatever its metadata says */
		cJSON_DeleteItemFromObjectCaseSensitive(meta, "namespace");
		if (cJSON_IsObject(meta))
			cJSON_AddStringToObject(meta, "namespace", ns);
		rc = k8s_create(k->client, path, copy, &obj, err);
		cJSON_Delete(copy);
		*reply = rc == 0 ? serve_wrap("object", obj) : NULL;
	} else if (strcmp(op, "patch") == 0 && cJSON_IsObject(body)) {
		char *text = cJSON_PrintUnformatted(body);

		rc = k8s_patch(k->client, path, K8S_PATCH_MERGE, text, &obj, err);
		free(text);
		*reply = rc == 0 ? serve_wrap("object", obj) : NULL;
	} else if (strcmp(op, "delete") == 0) {
		rc = k8s_delete(k->client, path, "Background", err);
		*reply = rc == 0 ? cJSON_CreateObject() : NULL;
	} else if (strcmp(op, "wait_ready") == 0 && strcmp(type->group, "apps") == 0 &&
		   (strcmp(type->plural, "deployments") == 0 || strcmp(type->plural, "statefulsets") == 0)) {
		struct k8s_readiness r = { "not checked" };

		rc = k8s_wait(k->client, path, k8s_ready, &r, serve_number(req, "timeout_ms", 1, 86400000, 1), err);
		if (rc < 0 && strcmp(err->reason, "Timeout") == 0)
			rc = 1;
		if (rc >= 0) {
			*reply = cJSON_CreateObject();
			cJSON_AddBoolToObject(*reply, "ready", rc == 0);
			cJSON_AddStringToObject(*reply, "state", r.state);
			rc = 0;
		}
	} else {
		rc = serve_fail(err, 400, "BadRequest", "a %s call with arguments it does not take", op);
	}
	free(path);
	return rc;
}

static const luaL_Reg k8s_functions[] = {
	{ "get", k8s_lua_get },
	{ "list", k8s_lua_list },
	{ "create", k8s_lua_create },
	{ "patch", k8s_lua_patch },
	{ "delete", k8s_lua_delete },
	{ "scale", k8s_lua_scale },
	{ "wait_ready", k8s_lua_wait_ready },
	{ "exec", k8s_lua_exec },
	{ NULL, NULL },
};

/* ---- objects ---- */

struct lua_k8s *lua_k8s_new(const struct lua_k8s_scope *scope)
{
	struct lua_k8s *k = xcalloc(1, sizeof *k);

	k->client = scope->client;
	k->link[0] = scope->link ? scope->link[0] : -1;
	k->link[1] = scope->link ? scope->link[1] : -1;
	k->ns = xstrdup(scope->namespace);
	k->dry_run = scope->dry_run;
	for (size_t i = 0; scope->granted && scope->granted[i]; i++) {
		k->granted = xrealloc(k->granted, (k->ngranted + 1) * sizeof *k->granted);
		k->granted[k->ngranted++] = xstrdup(scope->granted[i]);
	}
	k->writes = cJSON_CreateArray();
	return k;
}

void lua_k8s_free(struct lua_k8s *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->ngranted; i++)
		free(k->granted[i]);
	free(k->granted);
	free(k->ns);
	k8s_resource_list_free(&k->types);
	k8s_resource_list_free(&k->served);
	cJSON_Delete(k->writes);
	if (k->client)
		k8s_client_set_deadline(k->client, 0);
	free(k);
}

const cJSON *lua_k8s_writes(const struct lua_k8s *k)
{
	return k->writes;
}

int lua_k8s_run(struct lua_k8s *k, const struct lua_sandbox_limits *limits, const cJSON *job,
		const cJSON *params, const char *chunkname, const char *source, size_t len,
		lua_sandbox_log_fn log_fn, void *log_ctx, struct lua_sandbox_result *out)
{
	struct lua_sandbox *sb = lua_sandbox_new(limits, log_fn, log_ctx);
	cJSON *empty = cJSON_CreateObject();
	int rc;

	if (!sb) {
		memset(out, 0, sizeof *out);
		snprintf(out->error, sizeof out->error, "the hook limits are invalid (see the runner's log)");
		cJSON_Delete(empty);
		return -1;
	}
	lua_sandbox_add_library(sb, "k8s", k8s_functions, k);
	lua_sandbox_set_global_json(sb, "job", job ? job : empty);
	lua_sandbox_set_global_json(sb, "params", params ? params : empty);
	rc = lua_sandbox_run(sb, chunkname, source, len, out);
	if (k->client)
		k8s_client_set_deadline(k->client, 0);
	lua_sandbox_free(sb);
	cJSON_Delete(empty);
	return rc;
}
