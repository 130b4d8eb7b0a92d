/* libFuzzer target: S3's XML replies come from a server a tenant chose. */
#include "s3_xml.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_s3_xml_visit(const char *path, const char *text, void *ud)
{
	size_t *total = ud;

	*total += strlen(path) + strlen(text);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	size_t total = 0;

	s3_xml_walk((const char *)data, size, fuzz_s3_xml_visit, &total, err, sizeof err);
	return 0;
}
