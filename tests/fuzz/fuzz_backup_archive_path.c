/* libFuzzer target: the archive path of an object whose group, resource, version, namespace
 * and name come from a cluster. Whatever they hold, the path stays under resources/, has the
 * expected segments, and none of them is empty, "." or "..". */
#include "backup_archive.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Up to five NUL-separated fields of the input; missing ones are "". */
static void split_fields(const char *buf, size_t size, const char *f[5])
{
	size_t i = 0;

	for (int k = 0; k < 5; k++) {
		f[k] = i < size ? buf + i : "";
		while (i < size && buf[i])
			i++;
		i++;
	}
}

static void check_path(const char *p, int versioned, int namespaced)
{
	int segments = 0;
	const char *s = p;

	if (strncmp(p, "resources/", 10) != 0)
		abort();
	for (;;) {
		const char *end = strchr(s, '/');
		size_t len = end ? (size_t)(end - s) : strlen(s);

		if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
			abort();
		segments++;
		if (!end)
			break;
		s = end + 1;
	}
	/* resources/<gr>/[<v>-preferredversion/](namespaces/<ns>|cluster)/<name>.json */
	if (segments != 4 + versioned + namespaced)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	const char *f[5];
	struct strbuf out = STRBUF_INIT;
	char err[256];

	memcpy(buf, data, size);
	buf[size] = '\0';
	split_fields(buf, size, f);
	if (backup_archive_object_path(f[0], f[1], f[2], f[3], f[4], &out, err, sizeof err) == 0)
		check_path(out.buf, *f[2] != '\0', *f[3] != '\0');
	else if (*f[1] && *f[4])
		abort();	/* only an empty resource or name is refused */
	strbuf_release(&out);
	free(buf);
	return 0;
}
