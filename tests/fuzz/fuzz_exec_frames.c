/* libFuzzer target: what an exec's WebSocket brings back comes from a tenant's API server (its
 * frames, and the v1.Status ending the command). The first byte picks which; frames are decoded
 * one after another as k8s_exec reads them, each inside the bytes it was given. */
#include "k8s_exec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		char message[256];
		int code = k8s_exec_status_code((const char *)data + 1, size - 1, message, sizeof message);

		if (code < -1 || code > 255 || strlen(message) >= sizeof message)
			abort();
		return 0;
	}

	uint8_t *buf = malloc(size - 1 ? size - 1 : 1);
	size_t at = 0;

	memcpy(buf, data + 1, size - 1);
	while (at < size - 1) {
		struct ws_frame f;
		const char *why = NULL;
		long used = ws_frame_decode(buf + at, size - 1 - at, &f, &why);

		if (used <= 0) {
			if (used < 0 && !why)
				abort();
			break;
		}
		/* a decoded frame lies inside what was given, its payload inside the frame */
		if ((size_t)used > size - 1 - at || f.payload < buf + at || f.payload + f.len > buf + at + used)
			abort();
		at += (size_t)used;
	}
	free(buf);
	return 0;
}
