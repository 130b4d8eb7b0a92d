/* Runs one hook in a stowage-hook process (src/hook/hook_main.c) and answers its calls on the
 * cluster through served, the caller's own lua_k8s for the cluster and scope: the runner's for
 * a job's hooks, the web worker's for a dry run. No tenant Lua runs in either. */
#ifndef STOWAGE_HOOK_PROCESS_H
#define STOWAGE_HOOK_PROCESS_H

#include "lua_k8s.h"

/* Like lua_k8s_run, in a process of its own started from hook_path. writes (may be NULL)
 * receives the writes a dry run recorded (an array, never NULL when asked for). A hook process that
 * crashes, is killed, breaks the protocol or overstays its time limit fails the hook in words
 * (out->error); nothing else. Returns 0 when the script completed, -1 otherwise. */
int hook_process_run(const char *hook_path, struct lua_k8s *served, const struct lua_k8s_scope *scope,
		     const struct lua_sandbox_limits *limits, const cJSON *job, const cJSON *params,
		     const char *chunkname, const char *source, lua_sandbox_log_fn log_fn, void *log_ctx,
		     struct lua_sandbox_result *out, cJSON **writes);

#endif
