/* libFuzzer target: what a server (or whoever answers in its place) sends the `stowage` command
 * is printed as a table; and the config file parser. Checks that nothing printed holds a
 * control character. */
#include "cli.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct cli_column cols[] = { { "ID", "id" }, { "NAME", "name" }, { "STATE", "state" } };
	struct cli_config c = { 0 };
	char err[256], *buf = NULL;
	size_t len = 0;
	cJSON *root = cJSON_ParseWithLength((const char *)data, size);
	FILE *f = open_memstream(&buf, &len);

	cli_table_print(f, cJSON_IsArray(root) ? root : cJSON_GetObjectItemCaseSensitive(root, "items"), cols, 3);
	fclose(f);
	for (size_t i = 0; i < len; i++)
		if (((unsigned char)buf[i] < 0x20 && buf[i] != '\n') || (unsigned char)buf[i] == 0x7f)
			abort();
	free(buf);
	cJSON_Delete(root);
	cli_config_parse((const char *)data, size, &c, err, sizeof err);
	cli_config_free(&c);
	return 0;
}
