/* A hook in its own process: the real stowage-hook of this build, and programs standing in for
 * a hook process that crashes, hangs or talks nonsense. Each must end the hook in words. */
#include "hook_process.h"
#include "check.h"
#include "strbuf.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct lua_sandbox_limits limits = { 8 << 20, 10000000, 300 };

static void collect(void *ctx, const char *line)
{
	strbuf_addstr(ctx, line);
	strbuf_addch(ctx, '\n');
}

static int run(const char *path, const char *source, struct strbuf *log, struct lua_sandbox_result *res)
{
	struct lua_k8s_scope scope = { .namespace = "shop" };
	struct lua_k8s *served = lua_k8s_new(&scope);
	int rc = hook_process_run(path, served, &scope, &limits, NULL, NULL, "hook.lua", source, collect, log, res,
				  NULL);

	lua_k8s_free(served);
	return rc;
}

static void test_real_hook_process(void)
{
	struct strbuf log = STRBUF_INIT;
	struct lua_sandbox_result res;

	CHECK_INTEQ(run("./stowage-hook", "print('a\\27b', job.x == nil)\non_failure = 'continue'\n"
			"k8s.get('v1', 'ConfigMap', 'x')", &log, &res), -1);
	CHECK_STREQ(log.buf, "a?b\ttrue\n");
	CHECK_STREQ(res.error, "hook.lua:3: k8s.get: cannot look up kind ConfigMap: no cluster to ask");
	CHECK_INTEQ(res.continue_on_failure, 1);
	strbuf_reset(&log);
	CHECK_INTEQ(run("./stowage-hook", "log('done')", &log, &res), 0);
	CHECK_INTEQ(res.ok, 1);
	CHECK_STREQ(log.buf, "done\n");
	strbuf_release(&log);
}

static void test_broken_hook_processes(void)
{
	struct strbuf log = STRBUF_INIT;
	struct lua_sandbox_result res;

	CHECK_INTEQ(run("/bin/false", "", &log, &res), -1);
	CHECK(strstr(res.error, "the hook process ended (exit status 1) before its result") != NULL);
	CHECK_INTEQ(run("/nonexistent/stowage-hook", "", &log, &res), -1);
	CHECK(strstr(res.error, "the hook process ended (exit status 127)") != NULL);
	/* gone before it read its script, larger than a pipe holds: the write fails (EPIPE) instead of
	 * a SIGPIPE ending this process, which in production is the runner or a web worker */
	struct strbuf big = STRBUF_INIT;
	for (int i = 0; i < 20000; i++)
		strbuf_addstr(&big, "-- padding\n");
	CHECK_INTEQ(run("/bin/true", big.buf, &log, &res), -1);
	CHECK_STREQ(res.error, "the hook process ended (exit status 0) before its result: it did not take the script: "
		    "Broken pipe");
	strbuf_release(&big);
	/* "yes AS CPU" writes "AS CPU\n" forever: a length prefix of about a gigabyte */
	CHECK_INTEQ(run("/usr/bin/yes", "", &log, &res), -1);
	CHECK(strstr(res.error, "the hook process was stopped: the hook pipe carried a message of") != NULL);
	CHECK(strstr(res.error, "bytes (at most 16777216)") != NULL);
	/* "sleep AS CPU" sleeps for the CPU seconds: past the time limit and the grace */
	CHECK_INTEQ(run("/bin/sleep", "", &log, &res), -1);
	CHECK_STREQ(res.error, "limit: the hook process did not finish within its time limit and was stopped");
	CHECK(res.elapsed_ms >= 300);
	strbuf_release(&log);
}

/* A process that asks and stops reading: answers fill the pipe (64 KiB), and a runner that
 * waited on the pipe without a deadline would wait forever. Both the script (more than a pipe
 * holds, to a process that never reads it) and the answers must end at the time limit. */
static void test_hook_process_that_stops_reading(void)
{
	/* 3000 calls of 21 bytes; each answer (no cluster to ask) is about 80 bytes */
	static const char script[] = "#!/bin/sh\n"
				     "i=0\n"
				     "while [ $i -lt 3000 ]; do printf '\\000\\000\\000\\025{\"call\":{\"op\":\"get\"}}'; "
				     "i=$((i + 1)); done\n"
				     "exec sleep 60\n";
	char path[] = "/tmp/stowage-test-hook-XXXXXX";
	struct strbuf log = STRBUF_INIT, big = STRBUF_INIT;
	struct lua_sandbox_result res;
	int fd = mkstemp(path);

	CHECK(fd >= 0 && write(fd, script, sizeof script - 1) == (ssize_t)(sizeof script - 1));
	CHECK(fchmod(fd, 0700) == 0);
	close(fd);
	CHECK_INTEQ(run(path, "", &log, &res), -1);
	CHECK_STREQ(res.error, "limit: the hook process did not finish within its time limit and was stopped");
	unlink(path);

	for (int i = 0; i < 20000; i++)
		strbuf_addstr(&big, "-- padding\n");
	CHECK_INTEQ(run("/bin/sleep", big.buf, &log, &res), -1);
	CHECK_STREQ(res.error, "limit: the hook process did not finish within its time limit and was stopped");
	strbuf_release(&big);
	strbuf_release(&log);
}

int main(void)
{
	/* as the runner does: a hook process that dies before reading is an EPIPE, not our end */
	signal(SIGPIPE, SIG_IGN);
	/* a runner stuck on a hook process would hang this test: end it instead */
	alarm(120);
	RUN(test_real_hook_process);
	RUN(test_broken_hook_processes);
	RUN(test_hook_process_that_stops_reading);
	return check_done();
}
