/* Import of a kubeconfig file (YAML): the server, CA and bearer token of one context. Users
 * that authenticate otherwise (client certificates, exec plugins, auth providers) are refused
 * with a message that says so; paths inside the file are read only when the caller allows it,
 * since an uploaded file must not make us read files of the server. */
#ifndef STOWAGE_KUBECONFIG_H
#define STOWAGE_KUBECONFIG_H

#include <stddef.h>

#include "k8s_client.h"

#define KUBECONFIG_MAX_BYTES (1L << 20)

struct kubeconfig_options {
	const char *context;	/* NULL: the file's current-context */
	int allow_files;	/* read certificate-authority and tokenFile paths (never for an upload) */
};

/* conf receives malloc'd api_url, token and ca_pem (NULL when the file names no CA); free
 * them with kubeconfig_conf_free. context_out (may be NULL) receives the context's name.
 * Errors name the YAML line. */
int kubeconfig_parse(const char *yaml, size_t len, const struct kubeconfig_options *opt,
		     struct k8s_cluster_conf *conf, char *context_out, size_t context_len,
		     char *err, size_t errlen);
void kubeconfig_conf_free(struct k8s_cluster_conf *conf);

#endif
