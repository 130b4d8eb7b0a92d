/* libFuzzer target: anyone who reaches the metrics listener sends it a request head. */
#include "metrics_http.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[256];
	int head = 0;
	int status = metrics_request_parse((const char *)data, size, path, sizeof path, &head);

	if (status == 200 && (path[0] != '/' || strlen(path) >= sizeof path))
		__builtin_trap();
	return 0;
}
