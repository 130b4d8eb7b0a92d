#include "hook_confine.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define HOOK_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define HOOK_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "hook_confine: no seccomp architecture for this CPU"
#endif

/* What the Lua sandbox, the C library's allocator and stdio, and the pipe to the runner need.
 * tgkill (abort() and raise() use it) is allowed apart, only on the process itself. */
static const long hook_allowed[] = {
	SYS_read, SYS_write, SYS_writev, SYS_close, SYS_fstat, SYS_newfstatat, SYS_lseek,
	SYS_mmap, SYS_munmap, SYS_mremap, SYS_mprotect, SYS_brk, SYS_madvise,
	SYS_rt_sigreturn, SYS_rt_sigprocmask, SYS_sigaltstack, SYS_restart_syscall,
	SYS_clock_gettime, SYS_clock_nanosleep, SYS_nanosleep, SYS_futex, SYS_sched_yield,
	SYS_getrandom, SYS_getpid, SYS_gettid, SYS_exit, SYS_exit_group,
#ifdef SYS_poll
	SYS_poll,
#endif
	SYS_ppoll,
};

#define NALLOWED (sizeof hook_allowed / sizeof hook_allowed[0])

int hook_confine(size_t address_space, long cpu_seconds, char *err, size_t errlen)
{
	struct sock_filter filter[NALLOWED + 9];
	struct sock_fprog prog = { .len = (unsigned short)(NALLOWED + 9), .filter = filter };
	struct rlimit cpu = { (rlim_t)cpu_seconds, (rlim_t)cpu_seconds + 1 }, none = { 0, 0 };
	struct rlimit files = { 3, 3 }, as = { (rlim_t)address_space, (rlim_t)address_space };
	size_t n = 0;

	filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, HOOK_AUDIT_ARCH, 1, 0);
	filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	for (size_t i = 0; i < NALLOWED; i++)	/* a match jumps over the rest to ALLOW */
		filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)hook_allowed[i],
							   (unsigned char)(NALLOWED - i + 3), 0);
	/* The hook runs under the runner's uid: tgkill on any other process would let it kill or
	 * stop the runner. Its thread group must be this process (the kernel reads the pid_t from
	 * the low 32 bits of the argument, which come first on these little-endian machines). */
	filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_tgkill, 0, 2);
	filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
	filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)getpid(), 1, 0);
	filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	if (setrlimit(RLIMIT_CPU, &cpu) < 0 || setrlimit(RLIMIT_NOFILE, &files) < 0 ||
	    setrlimit(RLIMIT_FSIZE, &none) < 0 || setrlimit(RLIMIT_CORE, &none) < 0 ||
	    (address_space && setrlimit(RLIMIT_AS, &as) < 0)) {
		snprintf(err, errlen, "setrlimit: %s", strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
		snprintf(err, errlen, "seccomp: %s", strerror(errno));
		return -1;
	}
	return 0;
}
