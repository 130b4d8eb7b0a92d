/* libFuzzer: arbitrary scripts calling the hook API in a dry run, with a client pointed at a
 * closed port (reads fail at once, writes are recorded). Nothing may crash, leak or hang. */
#include "k8s_client.h"
#include "lua_k8s.h"

#include <stddef.h>
#include <stdint.h>

static struct k8s_client *client;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct lua_sandbox_limits limits = { 4 << 20, 200000, 500 };
	static const char *const granted[] = { "other", NULL };
	struct lua_k8s_scope scope = { .namespace = "fuzz", .granted = granted, .dry_run = 1 };
	struct lua_sandbox_result res;
	struct lua_k8s *k;

	if (!client) {
		struct k8s_cluster_conf conf = { .api_url = "https://127.0.0.1:1", .token = "fuzz", .timeout_ms = 200 };
		char err[256];

		client = k8s_client_new(&conf, NULL, err, sizeof err);
	}
	scope.client = client;
	k = lua_k8s_new(&scope);
	lua_k8s_run(k, &limits, NULL, NULL, "fuzz.lua", (const char *)data, size, NULL, NULL, &res);
	lua_k8s_free(k);
	return 0;
}
