/* Running a job's hooks at one of its hook points (pre-backup, post-backup, post-restore):
 * each hook of the plan's list in order, in a fresh sandbox, its log lines in the job log and
 * its outcome in the job's result. Hooks run inside the runner process and rely on the
 * sandbox's limits (memory, instructions, time; docs/hooks.md): RLIMIT_AS would bound the
 * whole runner, not one script, so there is no OS-level limit per hook. */
#ifndef STOWAGE_RUNNER_JOB_HOOKS_H
#define STOWAGE_RUNNER_JOB_HOOKS_H

#include "job.h"
#include "lua_sandbox.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* The defaults of lua_memory_limit, lua_instruction_limit and lua_time_limit_ms. */
#define JOB_HOOKS_MEMORY_DEFAULT (64L << 20)
#define JOB_HOOKS_INSTRUCTIONS_DEFAULT 50000000L
#define JOB_HOOKS_TIME_MS_DEFAULT 60000L
#define JOB_HOOKS_JOB_TIME_MS (30L * 60 * 1000)	/* all hooks of one job together */
#define JOB_HOOKS_PER_POINT 17		/* 16 from the library and an inline script, as the wizards allow */
#define JOB_HOOKS_LOG_LINES 1000	/* lines of one hook written to the job log */
#define JOB_HOOKS_RESULT_LINES 20	/* last lines kept in the job's result */

/* Runs hooks, a plan's array of {"hook_id": n} or {"inline": "...lua..."} entries, each with
 * optional "params" (an object, the script's global `params`) and "phase" (the entry runs only
 * at that phase), once in each namespace of context's "namespaces" array, in order: each run's
 * own namespace is that one, the others granted too. Their global `job` is context (plan,
 * cluster, backup, namespaces, ...) with "phase" and "namespace" set, and source_namespace or
 * target_namespace, when context has it, set to the run's namespace. Library hooks are read by
 * id within the job's organisation. Appends one entry per hook run to job->result's "hooks"
 * array: {name, phase, namespace, state (succeeded, failed, continued), duration_ms, log (last
 * lines), error}. Returns -1 with err when a hook failed and its on_failure is "fail" (the
 * default; nothing later runs, in this namespace or the next) or the job was cancelled, 0
 * otherwise (a failed hook with on_failure = "continue" leaves a warning in the log). */
int job_run_hooks(struct job *job, const char *phase, const cJSON *hooks, struct k8s_client *k,
		  const cJSON *context, char *err, size_t errlen);

/* The hook limits of the configuration file at path (NULL: the defaults). */
int job_hooks_limits(const char *config_path, struct lua_sandbox_limits *out, char *err, size_t errlen);

#endif
