/* What the C programs that tests/integration and bench/ drive are given: settings in the
 * environment (from the Python side, or scripts/testenv's env file) and files those name. A
 * missing one ends the program with TAP's "Bail out!" naming it. */
#ifndef STOWAGE_ITEST_ENV_H
#define STOWAGE_ITEST_ENV_H

#include "strbuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The variable's value; unset or empty ends the program. */
static inline char *need_env(const char *name)
{
	char *v = getenv(name);

	if (!v || !*v) {
		printf("Bail out! %s is not set\n", name);
		exit(2);
	}
	return v;
}

/* The whole file, NUL-terminated; one that cannot be read ends the program. */
static inline char *slurp(const char *path)
{
	struct strbuf sb = STRBUF_INIT;

	if (strbuf_read_file(&sb, path, SIZE_MAX) < 0) {
		printf("Bail out! cannot read %s: %s\n", path, strerror(errno));
		exit(2);
	}
	return strbuf_take(&sb);
}

#endif
