/* libFuzzer target: a kubeconfig is uploaded by a tenant. Files are never read (as for an
 * upload). */
#include "kubeconfig.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kubeconfig_options opt = { NULL, 0 };
	struct k8s_cluster_conf conf;
	char err[512], ctx[64];

	if (kubeconfig_parse((const char *)data, size, &opt, &conf, ctx, sizeof ctx, err, sizeof err) == 0)
		kubeconfig_conf_free(&conf);
	return 0;
}
