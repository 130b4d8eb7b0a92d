/* Feeds untrusted bytes to the manifest parsers: the first byte picks header or entry. */
#include "snapshot_manifest.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];

	if (size < 1)
		return 0;
	if (data[0] & 1) {
		struct manifest_header h;
		if (manifest_header_parse((const char *)data + 1, size - 1, &h, err, sizeof err) == 0) {
			char *json = manifest_header_json(&h);
			struct manifest_header again;
			/* what we accept we can write back, and read again */
			if (manifest_header_parse(json, strlen(json), &again, err, sizeof err) != 0)
				abort();
			manifest_header_free(&again);
			free(json);
			manifest_header_free(&h);
		}
	} else {
		struct manifest_entry e;
		if (manifest_entry_parse((const char *)data + 1, size - 1, &e, err, sizeof err) == 0) {
			char *json = manifest_entry_json(&e);
			struct manifest_entry again;
			if (manifest_entry_parse(json, strlen(json), &again, err, sizeof err) != 0 ||
			    strcmp(again.path, e.path) != 0 || again.size != e.size || again.nchunks != e.nchunks)
				abort();
			manifest_entry_free(&again);
			free(json);
			manifest_entry_free(&e);
		}
	}
	return 0;
}
