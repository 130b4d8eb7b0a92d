/* What a hook process may do once confined: read and write the descriptors it already holds,
 * manage its memory, read the clock, sleep and exit. No file is opened, no socket, no process
 * started: a seccomp filter kills the process on any other system call. Resource limits cap
 * its address space, CPU time and descriptors. Irreversible. */
#ifndef STOWAGE_HOOK_CONFINE_H
#define STOWAGE_HOOK_CONFINE_H

#include <stddef.h>

/* 0, or -1 with err in words. address_space 0 leaves it unlimited (sanitizer builds, whose
 * shadow memory needs terabytes of address space). */
int hook_confine(size_t address_space, long cpu_seconds, char *err, size_t errlen);

#endif
