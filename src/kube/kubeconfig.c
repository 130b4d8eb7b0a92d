#include "kubeconfig.h"
#include "strbuf.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct kc {
	yaml_document_t doc;
	char *err;
	size_t errlen;
};

static int kc_fail(struct kc *k, const yaml_node_t *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int kc_fail(struct kc *k, const yaml_node_t *at, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (at)
		snprintf(k->err, k->errlen, "kubeconfig line %lu: %s", (unsigned long)at->start_mark.line + 1, msg);
	else
		snprintf(k->err, k->errlen, "kubeconfig: %s", msg);
	return -1;
}

static const char *kc_scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static yaml_node_t *kc_get(struct kc *k, const yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		const char *name = kc_scalar(yaml_document_get_node(&k->doc, p->key));

		if (name && strcmp(name, key) == 0)
			return yaml_document_get_node(&k->doc, p->value);
	}
	return NULL;
}

static const char *kc_get_str(struct kc *k, const yaml_node_t *map, const char *key)
{
	return kc_scalar(kc_get(k, map, key));
}

/* The `what` mapping (cluster, context, user) of the entry of list `list` named name. */
static yaml_node_t *kc_find_named(struct kc *k, const yaml_node_t *root, const char *list,
				  const char *what, const char *name, const yaml_node_t *from)
{
	yaml_node_t *seq = kc_get(k, root, list), *body;
	struct strbuf names = STRBUF_INIT;

	if (!seq || seq->type != YAML_SEQUENCE_NODE) {
		kc_fail(k, root, "no \"%s\" list", list);
		return NULL;
	}
	for (yaml_node_item_t *i = seq->data.sequence.items.start; i < seq->data.sequence.items.top; i++) {
		yaml_node_t *entry = yaml_document_get_node(&k->doc, *i);
		const char *n = kc_get_str(k, entry, "name");

		if (!n)
			continue;
		if (strcmp(n, name) == 0) {
			strbuf_release(&names);
			body = kc_get(k, entry, what);
			if (!body || body->type != YAML_MAPPING_NODE)
				kc_fail(k, entry, "%s \"%s\" has no \"%s\" mapping", what, name, what);
			return body && body->type == YAML_MAPPING_NODE ? body : NULL;
		}
		if (names.len < 200)
			strbuf_addf(&names, "%s\"%s\"", names.len ? ", " : "", n);
	}
	kc_fail(k, from ? from : seq, "%s \"%s\" not found (%s: %s)", what, name, list,
		names.len ? names.buf : "none");
	strbuf_release(&names);
	return NULL;
}

static char *kc_read_file(struct kc *k, const yaml_node_t *at, const char *what, const char *path)
{
	struct strbuf sb = STRBUF_INIT;

	if (strbuf_read_file(&sb, path, KUBECONFIG_MAX_BYTES) < 0) {
		if (errno == EFBIG)
			kc_fail(k, at, "%s file \"%s\" is larger than 1 MiB", what, path);
		else
			kc_fail(k, at, "cannot read %s file \"%s\"", what, path);
		strbuf_release(&sb);
		return NULL;
	}
	return strbuf_take(&sb);
}

static char *kc_base64(const char *in)
{
	size_t len = strlen(in);
	unsigned char *out = xmalloc(len / 4 * 3 + 4);
	EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
	int n = 0, m = 0;

	EVP_DecodeInit(ctx);
	if (EVP_DecodeUpdate(ctx, out, &n, (const unsigned char *)in, (int)len) < 0 ||
	    EVP_DecodeFinal(ctx, out + n, &m) < 0) {
		EVP_ENCODE_CTX_free(ctx);
		free(out);
		return NULL;
	}
	EVP_ENCODE_CTX_free(ctx);
	out[n + m] = '\0';
	return (char *)out;
}

/* 1 when pem holds at least one X.509 certificate. */
static int kc_pem_has_cert(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, (int)strlen(pem));
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	int ok = x != NULL;

	X509_free(x);
	BIO_free(b);
	return ok;
}

static int kc_cluster(struct kc *k, const yaml_node_t *cluster, const char *name,
		      const struct kubeconfig_options *opt, struct k8s_cluster_conf *conf)
{
	const char *server = kc_get_str(k, cluster, "server");
	const char *ca_data = kc_get_str(k, cluster, "certificate-authority-data");
	const char *ca_file = kc_get_str(k, cluster, "certificate-authority");
	const char *insecure = kc_get_str(k, cluster, "insecure-skip-tls-verify");

	if (!server || strncmp(server, "https://", 8) != 0)
		return kc_fail(k, cluster, "cluster \"%s\": server must be an https:// URL", name);
	if (insecure && strcmp(insecure, "true") == 0)
		return kc_fail(k, cluster, "cluster \"%s\" sets insecure-skip-tls-verify; Stowage verifies TLS: "
			       "give the cluster's CA (certificate-authority-data)", name);
	if (ca_data) {
		conf->ca_pem = kc_base64(ca_data);
		if (!conf->ca_pem)
			return kc_fail(k, kc_get(k, cluster, "certificate-authority-data"),
				       "cluster \"%s\": certificate-authority-data is not valid base64", name);
	} else if (ca_file) {
		if (!opt->allow_files)
			return kc_fail(k, kc_get(k, cluster, "certificate-authority"),
				       "cluster \"%s\" names a CA file (certificate-authority); an uploaded kubeconfig "
				       "must carry certificate-authority-data", name);
		conf->ca_pem = kc_read_file(k, kc_get(k, cluster, "certificate-authority"), "certificate-authority", ca_file);
		if (!conf->ca_pem)
			return -1;
	}
	if (conf->ca_pem && !kc_pem_has_cert(conf->ca_pem))
		return kc_fail(k, cluster, "cluster \"%s\": its certificate authority is not a PEM certificate", name);
	conf->api_url = xstrdup(server);
	return 0;
}

static int kc_user(struct kc *k, const yaml_node_t *user, const char *name,
		   const struct kubeconfig_options *opt, struct k8s_cluster_conf *conf)
{
	const char *token = kc_get_str(k, user, "token");
	const char *token_file = kc_get_str(k, user, "tokenFile");

	if (kc_get(k, user, "client-certificate-data") || kc_get(k, user, "client-certificate") ||
	    kc_get(k, user, "client-key-data"))
		if (!token && !token_file)
			return kc_fail(k, user, "user \"%s\" uses client certificates; Stowage needs a bearer token", name);
	if (kc_get(k, user, "exec"))
		return kc_fail(k, user, "user \"%s\" runs an exec plugin for credentials; Stowage needs a bearer token "
			       "(for example a service account token)", name);
	if (kc_get(k, user, "auth-provider"))
		return kc_fail(k, user, "user \"%s\" uses an auth provider; Stowage needs a bearer token", name);
	if (token_file && !token) {
		if (!opt->allow_files)
			return kc_fail(k, kc_get(k, user, "tokenFile"),
				       "user \"%s\" names a token file (tokenFile); an uploaded kubeconfig must carry the token", name);
		conf->token = kc_read_file(k, kc_get(k, user, "tokenFile"), "tokenFile", token_file);
		if (!conf->token)
			return -1;
		conf->token[strcspn(conf->token, "\r\n")] = '\0';
	} else if (token && *token) {
		conf->token = xstrdup(token);
	}
	if (!conf->token || !*conf->token)
		return kc_fail(k, user, "user \"%s\" has no token%s; Stowage needs a bearer token", name,
			       kc_get(k, user, "username") ? " (it uses a user name and password)" : "");
	return 0;
}

static int kc_select(struct kc *k, const struct kubeconfig_options *opt, struct k8s_cluster_conf *conf,
		     char *context_out, size_t context_len)
{
	yaml_node_t *root = yaml_document_get_root_node(&k->doc), *ctx, *cluster, *user;
	const char *name = opt->context, *cluster_name, *user_name;

	if (!root || root->type != YAML_MAPPING_NODE)
		return kc_fail(k, root, "not a kubeconfig (expected a mapping with clusters, contexts and users)");
	if (!name || !*name)
		name = kc_get_str(k, root, "current-context");
	if (!name || !*name)
		return kc_fail(k, root, "no context chosen and no current-context set");
	ctx = kc_find_named(k, root, "contexts", "context", name,
			    opt->context && *opt->context ? NULL : kc_get(k, root, "current-context"));
	if (!ctx)
		return -1;
	cluster_name = kc_get_str(k, ctx, "cluster");
	user_name = kc_get_str(k, ctx, "user");
	if (!cluster_name || !user_name)
		return kc_fail(k, ctx, "context \"%s\" must name a cluster and a user", name);
	cluster = kc_find_named(k, root, "clusters", "cluster", cluster_name, kc_get(k, ctx, "cluster"));
	if (!cluster || kc_cluster(k, cluster, cluster_name, opt, conf) < 0)
		return -1;
	user = kc_find_named(k, root, "users", "user", user_name, kc_get(k, ctx, "user"));
	if (!user || kc_user(k, user, user_name, opt, conf) < 0)
		return -1;
	if (context_out && context_len)
		snprintf(context_out, context_len, "%s", name);
	return 0;
}

/* Aliases could expand a small file into a huge tree ("billion laughs"): refuse them. */
static int kc_reject_aliases(struct kc *k, const char *yaml, size_t len)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	int rc = 0;

	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	for (;;) {
		if (!yaml_parser_parse(&parser, &ev)) {
			snprintf(k->err, k->errlen, "kubeconfig line %lu: %s", (unsigned long)parser.problem_mark.line + 1,
				 parser.problem ? parser.problem : "not valid YAML");
			rc = -1;
			break;
		}
		if (ev.type == YAML_ALIAS_EVENT) {
			snprintf(k->err, k->errlen, "kubeconfig line %lu: YAML aliases (*name) are not accepted",
				 (unsigned long)ev.start_mark.line + 1);
			rc = -1;
		}
		if (ev.type == YAML_STREAM_END_EVENT || ev.type == YAML_DOCUMENT_END_EVENT)
			rc = rc ? rc : 1;
		yaml_event_delete(&ev);
		if (rc)
			break;
	}
	yaml_parser_delete(&parser);
	return rc < 0 ? -1 : 0;
}

int kubeconfig_parse(const char *yaml, size_t len, const struct kubeconfig_options *opt,
		     struct k8s_cluster_conf *conf, char *context_out, size_t context_len,
		     char *err, size_t errlen)
{
	static const struct kubeconfig_options defaults = { NULL, 0 };
	struct kc k = { .err = err, .errlen = errlen };
	yaml_parser_t parser;
	int rc;

	memset(conf, 0, sizeof *conf);
	if (!opt)
		opt = &defaults;
	if (len > (size_t)KUBECONFIG_MAX_BYTES) {
		snprintf(err, errlen, "kubeconfig: larger than 1 MiB");
		return -1;
	}
	if (memchr(yaml, '\0', len)) {
		snprintf(err, errlen, "kubeconfig: not a text file (it contains NUL bytes)");
		return -1;
	}
	if (kc_reject_aliases(&k, yaml, len) < 0)
		return -1;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&parser, &k.doc)) {
		snprintf(err, errlen, "kubeconfig line %lu: %s", (unsigned long)parser.problem_mark.line + 1,
			 parser.problem ? parser.problem : "not valid YAML");
		yaml_parser_delete(&parser);
		return -1;
	}
	yaml_parser_delete(&parser);
	rc = kc_select(&k, opt, conf, context_out, context_len);
	yaml_document_delete(&k.doc);
	if (rc < 0)
		kubeconfig_conf_free(conf);
	return rc;
}

void kubeconfig_conf_free(struct k8s_cluster_conf *conf)
{
	if (conf->token) {
		OPENSSL_cleanse(conf->token, strlen(conf->token));
		free(conf->token);
	}
	free(conf->api_url);
	free(conf->ca_pem);
	memset(conf, 0, sizeof *conf);
}
