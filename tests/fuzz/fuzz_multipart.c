/* libFuzzer target: the first line is the Content-Type header, the rest the multipart body. */
#include "http_parse.h"
#include "strbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	const char *nl = memchr(buf, '\n', size);
	struct kv_list l = { 0 };
	char err[256];
	char *content_type;
	size_t body;

	if (!nl)
		return 0;
	content_type = xstrndup(buf, (size_t)(nl - buf));
	body = (size_t)(nl - buf) + 1;
	if (http_parse_multipart(buf + body, size - body, content_type, 16, &l, err, sizeof err) == 0) {
		if (l.count > 16)
			abort();
		for (size_t i = 0; i < l.count; i++) {
			const struct kv *kv = &l.items[i];
			/* A value is a slice of the body, NUL-terminated after its length. */
			if (kv->value_len > size - body || kv->value[kv->value_len] != '\0' ||
			    !memmem(buf + body, size - body, kv->value, kv->value_len) || !kv->key[0])
				abort();
		}
	} else if (l.count != 0) {
		abort();
	}
	kv_list_free(&l);
	free(content_type);
	return 0;
}
