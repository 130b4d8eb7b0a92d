/* libFuzzer target: the first byte picks a parser (urlencoded, cookies, path check, Accept and
 * Content-Type), the rest is its input. Checks the invariants callers rely on. */
#include "http_parse.h"
#include "strbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_list(const struct kv_list *l)
{
	for (size_t i = 0; i < l->count; i++) {
		const struct kv *kv = &l->items[i];
		if (kv->value[kv->value_len] != '\0' || strlen(kv->value) != kv->value_len ||
		    !kv->key[0] || strlen(kv->key) > HTTP_MAX_KEY || !utf8_valid(kv->value, kv->value_len) ||
		    kv_get(l, kv->key) == NULL)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kv_list l = { 0 };
	char err[256];
	char *text;

	if (size < 1)
		return 0;
	text = xstrndup((const char *)data + 1, size - 1);	/* NUL-terminated: stops at a NUL */
	switch (data[0] % 4) {
	case 0:
		/* The raw bytes, NULs included. */
		if (http_parse_urlencoded((const char *)data + 1, size - 1, 32, &l, err, sizeof err) == 0)
			check_list(&l);
		else if (l.count != 0)
			abort();
		break;
	case 1:
		if (http_parse_cookies(text, &l, err, sizeof err) == 0 && l.count > HTTP_MAX_COOKIES)
			abort();
		break;
	case 2:
		if (http_path_check(text, err, sizeof err) == 0 &&
		    (text[0] != '/' || strstr(text, "..") || strstr(text, "//") || strchr(text, '%')))
			abort();
		break;
	case 3:
		(void)http_accepts_json(text);
		(void)http_media_type_is(text, "multipart/form-data");
		break;
	}
	kv_list_free(&l);
	free(text);
	return 0;
}
