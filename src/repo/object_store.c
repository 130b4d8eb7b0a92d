#include "object_store.h"

#include <stdio.h>
#include <string.h>

int object_key_valid(const char *key)
{
	size_t n = strlen(key), seg = 0;

	if (n == 0 || n > 1024)
		return 0;
	for (size_t i = 0; i <= n; i++) {
		char c = key[i];

		if (c == '/' || c == '\0') {
			if (seg == 0)
				return 0;
			seg = 0;
			continue;
		}
		if (seg == 0 && c == '.')
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
		seg++;
	}
	return 1;
}

struct object_store *object_store_open(const char *url, char *err, size_t errlen)
{
	if (strncmp(url, "file://", 7) == 0) {
		if (url[7] != '/') {
			snprintf(err, errlen, "repository URL %s: file:// needs an absolute path (file:///dir)", url);
			return NULL;
		}
		return object_store_dir_open(url + 7, err, errlen);
	}
	if (strncmp(url, "s3://", 5) == 0)
		return object_store_s3_open(url, err, errlen);
	snprintf(err, errlen, "repository URL %s: unsupported scheme (expected file:///path or s3://bucket/prefix)", url);
	return NULL;
}

void object_store_close(struct object_store *os)
{
	if (os)
		os->ops->close(os);
}
