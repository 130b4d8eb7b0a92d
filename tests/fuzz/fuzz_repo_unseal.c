/* libFuzzer target: every object in a repository's bucket can be replaced by the bucket's owner,
 * and the unsealer reads its framing (magic, segment lengths) before any tag is checked. The
 * first byte sets the size of the pieces the stream arrives in; with its top bit set, the rest is
 * sealed first and must open to itself, whatever the pieces. */
#include "repo_seal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sink(const void *data, size_t len, void *ud)
{
	strbuf_add(ud, data, len);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[AEAD_KEY_LEN] = { 7 };
	struct strbuf sealed = STRBUF_INIT, plain = STRBUF_INIT;
	struct repo_unsealer u;
	size_t piece;
	int rc = 0;

	if (size < 1)
		return 0;
	piece = (data[0] & 0x7f) + 1;
	if (data[0] & 0x80)
		repo_seal_mem(key, "o", data + 1, size - 1, &sealed);
	else
		strbuf_add(&sealed, data + 1, size - 1);
	repo_unsealer_init(&u, key, "o", sink, &plain);
	for (size_t at = 0; rc == 0 && at < sealed.len; at += piece)
		rc = repo_unsealer_feed(&u, sealed.buf + at, sealed.len - at < piece ? sealed.len - at : piece);
	if (rc == 0)
		rc = repo_unsealer_finish(&u);
	if (rc < 0 && !u.error[0])
		abort();
	if ((data[0] & 0x80) && (rc != 0 || plain.len != size - 1 || memcmp(plain.buf, data + 1, size - 1) != 0))
		abort();
	repo_unsealer_release(&u);
	strbuf_release(&sealed);
	strbuf_release(&plain);
	return 0;
}
