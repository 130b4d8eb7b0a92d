#include "hook_process.h"
#include "hook_link.h"
#include "http_retry.h"
#include "strbuf.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define HOOK_GRACE_MS 2000		/* past the script's time limit before the process is killed */
#define HOOK_LOG_LINE_MAX 4096

/* Sanitizer builds pass their options on, without the leak check (it needs ptrace, which the
 * hook's filter forbids). Nothing else of the runner's environment reaches the hook. */
static char **hook_env(void)
{
	static const char *const names[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS" };
	char **env = xcalloc(3, sizeof *env);
	size_t n = 0;

	for (size_t i = 0; i < 2; i++) {
		const char *v = getenv(names[i]);
		struct strbuf sb = STRBUF_INIT;

		if (!v)
			continue;
		strbuf_addf(&sb, "%s=%s%sdetect_leaks=0", names[i], v, *v ? ":" : "");
		env[n++] = xstrdup(sb.buf);
		strbuf_release(&sb);
	}
	return env;
}

/* hook_link_send to the hook process, giving up at deadline (ETIMEDOUT). A write to a pipe
 * whose reader is gone raises SIGPIPE, which would end the whole runner or web worker for one
 * hook process that died early: it is blocked in this thread while writing, and a SIGPIPE the
 * write caused is taken back before it is unblocked, so the send just fails (EPIPE) and the
 * hook fails in words. */
static int hook_send(int fd, const cJSON *msg, long deadline)
{
	static const struct timespec now = { 0, 0 };
	sigset_t pipe_only, old, pending;
	int rc, saved, was_pending;

	sigemptyset(&pipe_only);
	sigaddset(&pipe_only, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	rc = hook_link_send(fd, msg, deadline);
	saved = errno;
	if (rc < 0 && saved == EPIPE && !was_pending)
		sigtimedwait(&pipe_only, NULL, &now);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved;
	return rc;
}

static pid_t hook_spawn(const char *hook_path, const struct lua_sandbox_limits *limits, int *to, int *from)
{
	int in[2], out[2];
	char as[32], cpu[32];
	char **env;
	pid_t pid;

	if (pipe2(in, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return -1;
	}
	/* the script's memory, the replies it may hold, and the program itself */
#if defined(__SANITIZE_ADDRESS__)
	snprintf(as, sizeof as, "0");
#else
	snprintf(as, sizeof as, "%zu", limits->memory_bytes * 3 + (512u << 20));
#endif
	snprintf(cpu, sizeof cpu, "%ld", limits->time_ms / 1000 + 5);
	env = hook_env();
	pid = fork();
	if (pid == 0) {
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
			_exit(127);
		close_range(3, ~0U, 0);
		execve(hook_path, (char *const[]){ (char *)hook_path, as, cpu, NULL }, env);
		dprintf(2, "stowage-hook: cannot run %s: %s\n", hook_path, strerror(errno));
		_exit(127);
	}
	for (size_t i = 0; env[i]; i++)
		free(env[i]);
	free(env);
	close(in[0]);
	close(out[1]);
	if (pid < 0) {
		close(in[1]);
		close(out[0]);
		return -1;
	}
	*to = in[1];
	*from = out[0];
	/* both ends non-blocking: a process that stops writing or stops reading holds the runner
	 * only until the hook's deadline */
	fcntl(*from, F_SETFL, O_NONBLOCK);
	fcntl(*to, F_SETFL, O_NONBLOCK);
	return pid;
}

/* A line from the hook process, which may send anything: printable, bounded. */
static void hook_forward_log(const char *line, lua_sandbox_log_fn log_fn, void *log_ctx)
{
	char buf[HOOK_LOG_LINE_MAX + 1];
	size_t n = 0;

	for (; line[n] && n < HOOK_LOG_LINE_MAX; n++)
		buf[n] = (unsigned char)line[n] < 0x20 && line[n] != '\t' ? '?' : line[n] == 0x7f ? '?' : line[n];
	buf[n] = '\0';
	if (log_fn)
		log_fn(log_ctx, buf);
}

static void hook_read_result(const cJSON *r, struct lua_sandbox_result *out)
{
	const char *error = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "error"));
	const cJSON *v;

	out->ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok"));
	out->continue_on_failure = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "continue_on_failure"));
	snprintf(out->error, sizeof out->error, "%s", error ? error : "");
	if (!out->ok && !out->error[0])
		snprintf(out->error, sizeof out->error, "the hook failed without saying why");
	v = cJSON_GetObjectItemCaseSensitive(r, "memory_peak");
	out->memory_peak = cJSON_IsNumber(v) && v->valuedouble > 0 ? (size_t)v->valuedouble : 0;
	v = cJSON_GetObjectItemCaseSensitive(r, "instructions");
	out->instructions = cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t)v->valuedouble : 0;
}

/* stopped: 1 when the runner ended the process over why (its pipe said something wrong). */
static void hook_describe_end(int status, int timed_out, int stopped, const char *why,
			      struct lua_sandbox_result *out)
{
	if (stopped && !timed_out)
		snprintf(out->error, sizeof out->error, "the hook process was stopped: %s", why);
	else if (timed_out)
		snprintf(out->error, sizeof out->error, "limit: the hook process did not finish within its time "
			 "limit and was stopped");
	else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
		snprintf(out->error, sizeof out->error, "the hook process was stopped: it made a system call "
			 "hooks may not make");
	else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU)
		snprintf(out->error, sizeof out->error, "limit: the hook process used up its CPU time");
	else if (WIFSIGNALED(status))
		snprintf(out->error, sizeof out->error, "the hook process ended with signal %d (%s)",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(out->error, sizeof out->error, "the hook process ended (exit status %d) before its "
			 "result: %s", WIFEXITED(status) ? WEXITSTATUS(status) : -1, why);
}

int hook_process_run(const char *hook_path, struct lua_k8s *served, const struct lua_k8s_scope *scope,
		     const struct lua_sandbox_limits *limits, const cJSON *job, const cJSON *params,
		     const char *chunkname, const char *source, lua_sandbox_log_fn log_fn, void *log_ctx,
		     struct lua_sandbox_result *out, cJSON **writes)
{
	long start = http_retry_now_ms(), deadline = start + limits->time_ms + HOOK_GRACE_MS;
	cJSON *init = cJSON_CreateObject(), *lim, *granted, *msg = NULL;
	int to = -1, from = -1, status = 0, done = 0, timed_out = 0, stopped = 0, gone = 0, reaped = 0;
	char why[300] = "";
	pid_t pid;

	memset(out, 0, sizeof *out);
	if (writes)
		*writes = NULL;
	lim = cJSON_AddObjectToObject(init, "limits");
	cJSON_AddNumberToObject(lim, "memory", (double)limits->memory_bytes);
	cJSON_AddNumberToObject(lim, "instructions", (double)limits->instructions);
	cJSON_AddNumberToObject(lim, "time_ms", (double)limits->time_ms);
	cJSON_AddStringToObject(init, "namespace", scope->namespace);
	granted = cJSON_AddArrayToObject(init, "granted");
	for (size_t i = 0; scope->granted && scope->granted[i]; i++)
		cJSON_AddItemToArray(granted, cJSON_CreateString(scope->granted[i]));
	cJSON_AddBoolToObject(init, "dry_run", scope->dry_run);
	cJSON_AddItemToObject(init, "job", job ? cJSON_Duplicate(job, 1) : cJSON_CreateObject());
	cJSON_AddItemToObject(init, "params", params ? cJSON_Duplicate(params, 1) : cJSON_CreateObject());
	cJSON_AddStringToObject(init, "chunk", chunkname);
	cJSON_AddStringToObject(init, "source", source);
	pid = hook_spawn(hook_path, limits, &to, &from);
	if (pid < 0) {
		snprintf(out->error, sizeof out->error, "cannot start the hook process: %s", strerror(errno));
		cJSON_Delete(init);
		return -1;
	}
	if (hook_send(to, init, deadline) < 0) {
		gone = errno == EPIPE;
		timed_out = errno == ETIMEDOUT;
		snprintf(why, sizeof why, "it did not take the script: %s", strerror(errno));
	}
	cJSON_Delete(init);
	while (!why[0] && !done) {
		const cJSON *call;
		const char *line;

		if (hook_link_recv(from, HOOK_LINK_MAX_FROM_HOOK, deadline, &msg, why, sizeof why) < 0) {
			timed_out = http_retry_now_ms() >= deadline;
			stopped = !strstr(why, "closed it");	/* not the process's own end */
			break;
		}
		if ((line = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "log")))) {
			hook_forward_log(line, log_fn, log_ctx);
		} else if (cJSON_IsObject(call = cJSON_GetObjectItemCaseSensitive(msg, "call"))) {
			struct k8s_error err;
			cJSON *reply = NULL, *answer = cJSON_CreateObject(), *req = cJSON_Duplicate(call, 1);
			long left = deadline - HOOK_GRACE_MS - http_retry_now_ms();

			/* the runner's clock, not the process's word, bounds the call */
			cJSON_DeleteItemFromObjectCaseSensitive(req, "left_ms");
			cJSON_AddNumberToObject(req, "left_ms", (double)(left > 0 ? left : 1));
			if (lua_k8s_serve(served, req, &reply, &err) == 0)
				cJSON_AddItemToObject(answer, "reply", reply);
			else
				cJSON_AddItemToObject(answer, "error", hook_link_error_json(&err));
			cJSON_Delete(req);
			if (hook_send(to, answer, deadline) < 0) {
				timed_out = errno == ETIMEDOUT;
				snprintf(why, sizeof why, "it stopped reading its answers");
			}
			cJSON_Delete(answer);
		} else if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(msg, "result"))) {
			hook_read_result(cJSON_GetObjectItemCaseSensitive(msg, "result"), out);
			if (writes && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(msg, "writes")))
				*writes = cJSON_DetachItemFromObjectCaseSensitive(msg, "writes");
			done = 1;
		} else {
			snprintf(why, sizeof why, "it sent a message that is no log line, call or result");
			stopped = 1;
		}
		cJSON_Delete(msg);
		msg = NULL;
	}
	close(to);
	close(from);
	/* a process that closed its end is ending: its own exit status says more than our kill */
	for (long until = http_retry_now_ms() + (gone ? HOOK_GRACE_MS : 0); gone && http_retry_now_ms() < until;) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			reaped = 1;
			break;
		}
		http_retry_sleep_ms(10);
	}
	if (!reaped) {
		kill(pid, SIGKILL);	/* a process that sent its result has nothing more to say */
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	if (!done)
		hook_describe_end(status, timed_out, stopped, why, out);
	out->elapsed_ms = http_retry_now_ms() - start;
	if (writes && !*writes)
		*writes = cJSON_CreateArray();
	return out->ok ? 0 : -1;
}
