/* The confinement of a hook process: each case forks, confines the child and has it try one
 * thing; the parent checks how the child ended. */
#include "hook_confine.h"
#include "check.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How a confined child running try() ended: its exit status, or 1000 + the signal. */
static int confined(void (*try)(void))
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		char err[256];

		if (hook_confine(0, 10, err, sizeof err) < 0) {
			dprintf(2, "# %s\n", err);
			_exit(99);
		}
		try();
		_exit(0);
	}
	waitpid(pid, &status, 0);
	return WIFSIGNALED(status) ? 1000 + WTERMSIG(status) : WEXITSTATUS(status);
}

static void try_nothing(void)
{
	struct timespec ts = { 0, 1000000 };
	char *p = malloc(1 << 20);

	memset(p, 1, 1 << 20);
	free(p);
	nanosleep(&ts, NULL);
	if (write(2, "", 0) < 0)
		_exit(3);
}

static void try_open(void)
{
	open("/etc/hostname", O_RDONLY);
	_exit(4);
}

static void try_socket(void)
{
	socket(AF_INET, SOCK_STREAM, 0);
	_exit(5);
}

static void try_fork(void)
{
	fork();
	_exit(6);
}

static void try_exec(void)
{
	execl("/bin/true", "true", (char *)NULL);
	_exit(7);
}

static void try_raise_nofile(void)
{
	struct rlimit r = { 1024, 1024 };

	setrlimit(RLIMIT_NOFILE, &r);
	_exit(8);
}

static pid_t victim;	/* stands in for the runner: another process of the same uid */

static void try_kill_victim(void)
{
	syscall(SYS_tgkill, victim, victim, SIGKILL);
	_exit(9);
}

static void try_raise(void)
{
	raise(SIGUSR1);
	_exit(10);
}

static void try_abort(void)
{
	abort();
}

static void test_allowed_work_runs(void)
{
	CHECK_INTEQ(confined(try_nothing), 0);
	/* signals to itself, as abort() and raise() send them */
	CHECK_INTEQ(confined(try_raise), 1000 + SIGUSR1);
	CHECK_INTEQ(confined(try_abort), 1000 + SIGABRT);
}

/* A hook that broke out of Lua signals the runner (same uid): it is killed, the runner lives. */
static void test_signal_to_another_process_kills(void)
{
	int status;

	victim = fork();
	if (victim == 0) {
		pause();
		_exit(0);
	}
	CHECK_INTEQ(confined(try_kill_victim), 1000 + SIGSYS);
	CHECK_INTEQ(waitpid(victim, &status, WNOHANG), 0);
	kill(victim, SIGKILL);
	waitpid(victim, &status, 0);
}

static void test_forbidden_calls_kill(void)
{
	CHECK_INTEQ(confined(try_open), 1000 + SIGSYS);
	CHECK_INTEQ(confined(try_socket), 1000 + SIGSYS);
	CHECK_INTEQ(confined(try_fork), 1000 + SIGSYS);
	CHECK_INTEQ(confined(try_exec), 1000 + SIGSYS);
	CHECK_INTEQ(confined(try_raise_nofile), 1000 + SIGSYS);
}

int main(void)
{
	RUN(test_allowed_work_runs);
	RUN(test_forbidden_calls_kill);
	RUN(test_signal_to_another_process_kills);
	return check_done();
}
