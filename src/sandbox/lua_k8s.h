/* The Kubernetes library of hooks (the global `k8s`), scoped to one cluster and one namespace:
 * get, list, create, patch (merge patch), delete, scale, wait_ready and exec. A script names
 * objects by apiVersion, kind and name; kinds are resolved through discovery, once per
 * lua_k8s. Another namespace is refused unless the caller granted it; cluster-scoped kinds may
 * be read, never written. Every call checks the sandbox's limits first and bounds its network
 * time by the time the script has left. In a dry run, writes (create, patch, delete, scale,
 * exec) are recorded and not made; reads are real. See docs/hooks.md for the API by example. */
#ifndef STOWAGE_LUA_K8S_H
#define STOWAGE_LUA_K8S_H

#include <cjson/cJSON.h>

#include "k8s_client.h"
#include "lua_sandbox.h"

#define LUA_K8S_EXEC_OUTPUT_MAX (1u << 20)	/* stdout and stderr each, per exec call */

struct lua_k8s_scope {
	struct k8s_client *client;	/* NULL: reads fail; in a dry run writes are still recorded */
	const char *namespace;		/* the namespace calls default to; required */
	const char *const *granted;	/* further namespaces the script may reach, NULL-terminated */
	int dry_run;
	const int *link;		/* a hook process: {in, out} fds to the runner, which makes
					 * every call on the cluster (hook_link.h); NULL: made here */
};

struct lua_k8s;

/* Copies the scope's strings; the client is borrowed and must outlive the lua_k8s. */
struct lua_k8s *lua_k8s_new(const struct lua_k8s_scope *scope);
void lua_k8s_free(struct lua_k8s *k);
/* The writes a dry run recorded, in order: [{verb, apiVersion, kind, namespace, name, body|argv}].
 * Borrowed; empty outside dry runs. */
const cJSON *lua_k8s_writes(const struct lua_k8s *k);

/* Makes one call of the library on the cluster: req as the hook library builds it
 * ({"op": "get", "group", "version", "plural", "namespace", "name", ...}), checked again here
 * against the cluster's discovery and the scope, as the runner does for a hook process. In a
 * dry run create, patch, delete and exec are refused (403) before anything is asked.
 * 0 with *reply, or -1 with err. */
int lua_k8s_serve(struct lua_k8s *k, const cJSON *req, cJSON **reply, struct k8s_error *err);

/* Runs one hook in a fresh sandbox with limits: the library `k8s` bound to k, the globals `job`
 * (job, may be NULL) and `params` (params, may be NULL: an empty table), print/log lines to
 * log_fn. Returns lua_sandbox_run's result; -1 with out->error also when limits are invalid. */
int lua_k8s_run(struct lua_k8s *k, const struct lua_sandbox_limits *limits, const cJSON *job,
		const cJSON *params, const char *chunkname, const char *source, size_t len,
		lua_sandbox_log_fn log_fn, void *log_ctx, struct lua_sandbox_result *out);

#endif
