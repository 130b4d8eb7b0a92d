/* Running a job's hooks: see job_hooks.h. */
#include "job_hooks.h"
#include "config.h"
#include "hook_process.h"
#include "lua_k8s.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct hook_log {
	struct job *job;
	const char *name;
	long lines;
	cJSON *last;		/* the last JOB_HOOKS_RESULT_LINES lines */
};

static void hook_log_line(void *ctx, const char *line)
{
	struct hook_log *hl = ctx;

	if (hl->lines < JOB_HOOKS_LOG_LINES)
		job_log(hl->job, "info", "hook %s: %s", hl->name, line);
	else if (hl->lines == JOB_HOOKS_LOG_LINES)
		job_log(hl->job, "warning", "hook %s: more than %d lines; the rest is left out of the job log",
			hl->name, JOB_HOOKS_LOG_LINES);
	hl->lines++;
	cJSON_AddItemToArray(hl->last, cJSON_CreateString(line));
	if (cJSON_GetArraySize(hl->last) > JOB_HOOKS_RESULT_LINES)
		cJSON_DeleteItemFromArray(hl->last, 0);
}

int job_hooks_limits(const char *config_path, struct lua_sandbox_limits *out, char *err, size_t errlen)
{
	struct config cfg = { 0 };
	long mem = 0, instructions = 0, time_ms = 0;
	int rc;

	if (config_path && config_load(&cfg, config_path, err, errlen) < 0)
		return -1;
	rc = config_get_int(&cfg, "lua_memory_limit", JOB_HOOKS_MEMORY_DEFAULT, LUA_SANDBOX_MIN_MEMORY, 4L << 30,
			    &mem, err, errlen) < 0 ||
	     config_get_int(&cfg, "lua_instruction_limit", JOB_HOOKS_INSTRUCTIONS_DEFAULT, 1000, 100000000000L,
			    &instructions, err, errlen) < 0 ||
	     config_get_int(&cfg, "lua_time_limit_ms", JOB_HOOKS_TIME_MS_DEFAULT, 100, 3600000, &time_ms,
			    err, errlen) < 0 ? -1 : 0;
	config_free(&cfg);
	if (rc < 0)
		return -1;
	out->memory_bytes = (size_t)mem;
	out->instructions = (uint64_t)instructions;
	out->time_ms = time_ms;
	return 0;
}

/* The name and source of library hook id, read within the job's organisation. */
static int hook_load(struct job *job, double id, char **name, char **source, char *err, size_t errlen)
{
	char sid[32];
	const char *params[] = { sid };
	PGresult *res;

	snprintf(sid, sizeof sid, "%.0f", id);
	res = job_query(job, "SELECT h.name, v.source FROM hooks h JOIN hook_versions v "
			"ON v.hook_id = h.id AND v.version = h.current_version WHERE h.id = $1",
			1, params, err, errlen);
	if (!res)
		return -1;
	if (PQntuples(res) != 1) {
		snprintf(err, errlen, "hook %s no longer exists", sid);
		PQclear(res);
		return -1;
	}
	*name = xstrdup(PQgetvalue(res, 0, 0));
	*source = xstrdup(PQgetvalue(res, 0, 1));
	PQclear(res);
	return 0;
}

static long hook_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void hook_record(struct job *job, const char *name, const char *phase, const char *ns, int attempts,
			const char *state, long duration_ms, cJSON *last_lines, const char *error)
{
	cJSON *list, *h = cJSON_CreateObject();

	if (!job->result)
		job->result = cJSON_CreateObject();
	list = cJSON_GetObjectItemCaseSensitive(job->result, "hooks");
	if (!cJSON_IsArray(list)) {
		cJSON_DeleteItemFromObjectCaseSensitive(job->result, "hooks");
		list = cJSON_AddArrayToObject(job->result, "hooks");
	}
	cJSON_AddStringToObject(h, "name", name);
	cJSON_AddStringToObject(h, "phase", phase);
	cJSON_AddStringToObject(h, "namespace", ns);
	cJSON_AddNumberToObject(h, "attempts", attempts);
	cJSON_AddStringToObject(h, "state", state);
	cJSON_AddNumberToObject(h, "duration_ms", (double)duration_ms);
	cJSON_AddItemToObject(h, "log", last_lines);
	cJSON_AddStringToObject(h, "error", error);
	cJSON_AddItemToArray(list, h);
}

/* An entry's own policy: "timeout_s" (1..3600; never above the deployment's lua_time_limit_ms),
 * "retries" (0..5, after 1, 2, 4, 8, 16 s) and "on_error" ("fail" or "continue", over what the
 * script says). -1 with why when one is not of that form. */
struct hook_policy {
	long timeout_ms;	/* 0: the deployment's limit */
	int retries;
	const char *on_error;	/* NULL: the script's on_failure */
};

static int hook_policy_read(const cJSON *entry, int index, struct hook_policy *p, char *why, size_t whylen)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(entry, "timeout_s");
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(entry, "retries");
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(entry, "on_error");

	memset(p, 0, sizeof *p);
	if (t && (!cJSON_IsNumber(t) || t->valuedouble < 1 || t->valuedouble > 3600 || t->valuedouble != (long)t->valuedouble)) {
		snprintf(why, whylen, "entry %d of the hook list: timeout_s must be a whole number of seconds from 1 to 3600",
			 index + 1);
		return -1;
	}
	if (r && (!cJSON_IsNumber(r) || r->valuedouble < 0 || r->valuedouble > 5 || r->valuedouble != (int)r->valuedouble)) {
		snprintf(why, whylen, "entry %d of the hook list: retries must be a whole number from 0 to 5", index + 1);
		return -1;
	}
	if (e && (!cJSON_IsString(e) || (strcmp(e->valuestring, "fail") != 0 && strcmp(e->valuestring, "continue") != 0))) {
		snprintf(why, whylen, "entry %d of the hook list: on_error must be \"fail\" or \"continue\"", index + 1);
		return -1;
	}
	p->timeout_ms = t ? (long)t->valuedouble * 1000 : 0;
	p->retries = r ? (int)r->valuedouble : 0;
	p->on_error = e ? e->valuestring : NULL;
	return 0;
}

/* One entry of the list: 1 when it ran (or failed) and the job may go on, 0 when it is for
 * another phase, -1 when it failed and the job must stop (err says why). */
static int hook_run_entry(struct job *job, const char *phase, const cJSON *entry, int index,
			  struct lua_k8s *k, const struct lua_k8s_scope *scope,
			  const struct lua_sandbox_limits *limits, const cJSON *job_global, char *err, size_t errlen)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(entry, "hook_id");
	const char *inline_src = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(entry, "inline"));
	const char *only = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(entry, "phase"));
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(entry, "params");
	struct hook_log hl = { .job = job, .last = cJSON_CreateArray() };
	struct lua_sandbox_result res = { 0 };
	struct lua_sandbox_limits lim = *limits;
	struct hook_policy policy = { 0 };
	char *name = NULL, *source = NULL, chunk[80], why[600] = "";
	long start = hook_now_ms();
	int failed, stop, attempts = 0;

	/* An entry that names its phase runs only there; one that does not runs at its plan's own
	 * point (pre-backup for a backup plan, post-restore for a restore plan), never at
	 * post-backup or pre-restore, which exist for hooks that ask for them (resume a quiesced
	 * database; scale down what a restore will update). */
	if (only ? strcmp(only, phase) != 0 : strcmp(phase, "post-backup") == 0 || strcmp(phase, "pre-restore") == 0) {
		cJSON_Delete(hl.last);
		return 0;
	}
	if (cJSON_IsNumber(id)) {
		if (hook_load(job, id->valuedouble, &name, &source, why, sizeof why) < 0)
			snprintf(res.error, sizeof res.error, "%s", why);
	} else if (inline_src) {
		char n[32];

		snprintf(n, sizeof n, "inline-%d", index + 1);
		name = xstrdup(n);
		source = xstrdup(inline_src);
	} else {
		snprintf(res.error, sizeof res.error, "entry %d of the hook list names no hook_id or inline script", index + 1);
	}
	if (!name) {
		char n[32];

		snprintf(n, sizeof n, "hook-%d", index + 1);
		name = xstrdup(n);
	}
	if (params && !cJSON_IsObject(params)) {
		snprintf(res.error, sizeof res.error, "the params of hook %s must be an object", name);
		free(source);
		source = NULL;
	}
	hl.name = name;
	if (source && hook_policy_read(entry, index, &policy, res.error, sizeof res.error) < 0) {
		free(source);
		source = NULL;
	}
	if (policy.timeout_ms && policy.timeout_ms < lim.time_ms)
		lim.time_ms = policy.timeout_ms;
	for (int attempt = 0; source; attempt++) {
		snprintf(chunk, sizeof chunk, "%.70s.lua", name);
		job_log(job, "info", "hook %s: running at %s in namespace %s%s", name, phase, scope->namespace,
			attempt ? " again" : "");
		memset(&res, 0, sizeof res);
		hook_process_run(job->ctx->hook_path ? job->ctx->hook_path : "stowage-hook", k, scope, &lim,
				 job_global, params, chunk, source, hook_log_line, &hl, &res, NULL);
		attempts = attempt + 1;
		if (res.ok || attempt >= policy.retries || job_cancel_requested(job))
			break;
		long delay_s = 1L << attempt;
		job_log(job, "warning", "hook %s failed (attempt %d of %d): %s; trying again in %ld s", name, attempt + 1,
			policy.retries + 1, res.error, delay_s);
		sleep((unsigned)delay_s);
	}
	failed = !source || !res.ok;
	stop = failed && (policy.on_error ? strcmp(policy.on_error, "continue") != 0 : !res.continue_on_failure);
	if (failed)
		job_log(job, stop ? "error" : "warning", "hook %s failed%s: %s", name,
			stop ? "" : policy.on_error ? " (the plan's on_error = \"continue\": the job goes on)" :
			" (on_failure = \"continue\": the job goes on)", res.error);
	hook_record(job, name, phase, scope->namespace, attempts, !failed ? "succeeded" : stop ? "failed" : "continued",
		    hook_now_ms() - start, hl.last, failed ? res.error : "");
	if (stop)
		snprintf(err, errlen, "hook %s failed at %s: %s", name, phase, res.error);
	free(name);
	free(source);
	return stop ? -1 : 1;
}

/* The namespaces granted besides the hook's own, from context's "namespaces" (NULL-terminated). */
static const char **hook_granted(const cJSON *context)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(context, "namespaces"), *ns;
	const char **out = xcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *out);
	size_t n = 0;

	cJSON_ArrayForEach(ns, list)
		if (cJSON_IsString(ns))
			out[n++] = ns->valuestring;
	return out;
}

int job_run_hooks(struct job *job, const char *phase, const cJSON *hooks, struct k8s_client *k,
		  const cJSON *context, char *err, size_t errlen)
{
	struct lua_sandbox_limits limits;
	struct lua_k8s_scope scope = { .client = k };
	struct lua_k8s *lk;
	cJSON *job_global;
	const cJSON *entry, *ns;
	int rc = 0;

	if (!cJSON_IsArray(hooks) || cJSON_GetArraySize(hooks) == 0)
		return 0;
	if (cJSON_GetArraySize(hooks) > JOB_HOOKS_PER_POINT) {
		snprintf(err, errlen, "the plan lists %d hooks at %s; at most %d run at one point",
			 cJSON_GetArraySize(hooks), phase, JOB_HOOKS_PER_POINT);
		return -1;
	}
	if (job_hooks_limits(job->ctx ? job->ctx->config_path : NULL, &limits, err, errlen) < 0)
		return -1;
	scope.granted = hook_granted(context);
	cJSON_ArrayForEach(ns, cJSON_GetObjectItemCaseSensitive(context, "namespaces")) {
		int index = 0;
		if (!cJSON_IsString(ns))
			continue;
		scope.namespace = ns->valuestring;
		job_global = cJSON_Duplicate(context, 1);
		cJSON_DeleteItemFromObjectCaseSensitive(job_global, "phase");
		cJSON_AddStringToObject(job_global, "phase", phase);
		cJSON_DeleteItemFromObjectCaseSensitive(job_global, "namespace");
		cJSON_AddStringToObject(job_global, "namespace", ns->valuestring);
		for (int i = 0; i < 2; i++) {
			const char *key = i ? "target_namespace" : "source_namespace";
			if (cJSON_GetObjectItemCaseSensitive(job_global, key))
				cJSON_ReplaceItemInObjectCaseSensitive(job_global, key, cJSON_CreateString(ns->valuestring));
		}
		lk = lua_k8s_new(&scope);
		cJSON_ArrayForEach(entry, hooks) {
			/* post-backup hooks resume what pre-backup quiesced: a cancelled backup runs them too */
			if (strcmp(phase, "post-backup") != 0 && job_cancel_requested(job)) {
				snprintf(err, errlen, "cancelled before hook %d at %s", index + 1, phase);
				rc = -1;
				break;
			}
			struct lua_sandbox_limits left = limits;
			long start = hook_now_ms();

			if (job->hooks_ms >= JOB_HOOKS_JOB_TIME_MS) {
				snprintf(err, errlen, "the job's hooks have used their %ld minutes in total; hook %d at %s "
					 "does not run", JOB_HOOKS_JOB_TIME_MS / 60000, index + 1, phase);
				rc = -1;
				break;
			}
			if (left.time_ms > JOB_HOOKS_JOB_TIME_MS - job->hooks_ms)
				left.time_ms = JOB_HOOKS_JOB_TIME_MS - job->hooks_ms;
			rc = hook_run_entry(job, phase, entry, index++, lk, &scope, &left, job_global, err, errlen);
			job->hooks_ms += hook_now_ms() - start;
			if (rc < 0)
				break;
			rc = 0;
		}
		lua_k8s_free(lk);
		cJSON_Delete(job_global);
		if (rc < 0)
			break;
	}
	free((void *)scope.granted);
	return rc;
}
