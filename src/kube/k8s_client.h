/* A Kubernetes API client over libcurl and cJSON: bearer token, a per-cluster CA, one reused
 * connection, retries of 429/5xx (and of dropped connections on idempotent verbs) with the
 * shared backoff policy (http_retry.h). The token is never logged or put in an error. */
#ifndef STOWAGE_K8S_CLIENT_H
#define STOWAGE_K8S_CLIENT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "net_allow.h"

struct k8s_cluster_conf {
	char *api_url;			/* https://host:port */
	char *token;
	char *ca_pem;			/* NULL = the system's CA store */
	int insecure_skip_verify;	/* never set by default */
	long timeout_ms;		/* connect timeout and the limit of one request; 0 = 30 s */
};

struct k8s_error {
	long http_status;
	char reason[64];		/* Status.reason: Forbidden, NotFound, AlreadyExists, Conflict, ... */
	char message[512];		/* Status.message, or the transport failure in words */
	int curl_code;
	long retry_after_ms;		/* a refusal's Retry-After, capped at K8S_RETRY_AFTER_MAX_MS; -1 none */
};

/* The longest a server's Retry-After is honoured: a larger (hostile) one is cut to this. */
#define K8S_RETRY_AFTER_MAX_MS 10000L

enum k8s_verb {
	K8S_VERB_GET = 1 << 0,
	K8S_VERB_LIST = 1 << 1,
	K8S_VERB_WATCH = 1 << 2,
	K8S_VERB_CREATE = 1 << 3,
	K8S_VERB_UPDATE = 1 << 4,
	K8S_VERB_PATCH = 1 << 5,
	K8S_VERB_DELETE = 1 << 6,
	K8S_VERB_DELETECOLLECTION = 1 << 7,
};

/* One served resource type, at its group's preferred version. */
struct k8s_resource_type {
	char group[256];		/* "" for the core group */
	char version[64];
	char kind[128];
	char plural[128];
	int namespaced;
	unsigned verbs;			/* enum k8s_verb bits */
};

struct k8s_resource_list {
	struct k8s_resource_type *items;
	size_t n;
	int aggregated;			/* 1 when the server answered with aggregated discovery */
};

enum k8s_discovery_mode {
	K8S_DISCOVERY_AUTO,		/* aggregated discovery when offered (two requests) */
	K8S_DISCOVERY_LEGACY,		/* one request per group version, as servers before 1.26 need */
};

enum k8s_patch_type { K8S_PATCH_MERGE, K8S_PATCH_JSON };

/* Called once per listed object (kind and apiVersion filled in). obj NULL means the listing
 * had to restart from the beginning (its continue token expired): forget what was seen.
 * A non-zero return stops the listing; the call then fails with reason "Stopped". */
typedef int (*k8s_object_fn)(cJSON *obj, void *ud);
/* For k8s_wait: 1 done, 0 not yet, -1 give up. obj is NULL while the object does not exist. */
typedef int (*k8s_condition_fn)(const cJSON *obj, void *ud);

struct k8s_client;

/* allow: NULL, or the networks the API server must resolve into (checked here, then pinned). */
struct k8s_client *k8s_client_new(const struct k8s_cluster_conf *conf, const struct net_allow *allow,
				  char *err, size_t errlen);
void k8s_client_free(struct k8s_client *c);

/* Bounds every later request by deadline_ms (on http_retry_now_ms()'s clock): a request's
 * timeout ends by then, no retry starts past it, and past it a request fails with reason
 * "Timeout" at once. 0 removes the bound. Hooks use it to keep calls within their time limit. */
void k8s_client_set_deadline(struct k8s_client *c, long deadline_ms);
/* The bound set by k8s_client_set_deadline, 0 for none: for what the client does not speak
 * itself (k8s_exec) to keep it too. */
long k8s_client_deadline(const struct k8s_client *c);
/* on: a push back (k8s_error_pushback) comes back to the caller at once, with its Retry-After
 * in err->retry_after_ms, instead of being waited out here: for a caller that paces many
 * clients together and can be cancelled while it waits (the restore). Off by default: the
 * client waits out 429s itself, each wait capped at K8S_RETRY_AFTER_MAX_MS. */
void k8s_client_return_pushback(struct k8s_client *c, int on);
/* For what the client does not speak itself (exec over WebSocket, k8s_exec.c): sets the curl
 * easy handle h up with the client's TLS verification and pinned address, and returns the API
 * server's URL (no trailing slash). *auth_header receives the "Authorization: Bearer ..." line,
 * which must never be logged. */
const char *k8s_client_raw_setup(struct k8s_client *c, void *h, const char **auth_header);

/* The path of a resource, collection (name NULL) or namespace-wide collection, with every
 * segment URL-escaped: /api/v1/namespaces/ns/configmaps/name or /apis/g/v/... */
char *k8s_resource_path(const char *group, const char *version, const char *plural,
			const char *ns, const char *name);

/* GET /version's gitVersion, "v1.34.4". */
int k8s_version(struct k8s_client *c, char *out, size_t outlen, struct k8s_error *err);
/* Every resource type served (subresources left out), core and every group at its preferred
 * version; aggregated discovery when the server offers it. The caller frees the list. */
int k8s_discover(struct k8s_client *c, enum k8s_discovery_mode mode, struct k8s_resource_list *out,
		 struct k8s_error *err);
void k8s_resource_list_free(struct k8s_resource_list *list);
const struct k8s_resource_type *k8s_resource_find(const struct k8s_resource_list *list,
						  const char *group, const char *plural);

int k8s_get(struct k8s_client *c, const char *path, cJSON **out, struct k8s_error *err);
/* GET of a body that is not JSON (a pod's log): *out (the caller frees it) receives the body,
 * NUL-terminated, and *len its length. */
int k8s_get_text(struct k8s_client *c, const char *path, char **out, size_t *len, struct k8s_error *err);
/* ns NULL: all namespaces (or a cluster-scoped type); selector NULL: every object. */
int k8s_list(struct k8s_client *c, const struct k8s_resource_type *type, const char *ns,
	     const char *label_selector, int page_size, k8s_object_fn fn, void *ud,
	     struct k8s_error *err);
/* out (may be NULL) receives the object the server returns; the caller frees it. */
int k8s_create(struct k8s_client *c, const char *collection_path, const cJSON *obj, cJSON **out,
	       struct k8s_error *err);
int k8s_replace(struct k8s_client *c, const char *path, const cJSON *obj, cJSON **out,
		struct k8s_error *err);
int k8s_patch(struct k8s_client *c, const char *path, enum k8s_patch_type type, const char *patch,
	      cJSON **out, struct k8s_error *err);
/* propagation: NULL (the server's default), "Foreground", "Background" or "Orphan". */
int k8s_delete(struct k8s_client *c, const char *path, const char *propagation,
	       struct k8s_error *err);
/* Deletes the object at path only while its uid is uid (a 409 Conflict otherwise), in the
 * background: never an object of the same name made since. */
int k8s_delete_uid(struct k8s_client *c, const char *path, const char *uid, struct k8s_error *err);
/* Polls path with backoff until cond says done; reason "Timeout" after timeout_ms. */
int k8s_wait(struct k8s_client *c, const char *path, k8s_condition_fn cond, void *ud,
	     long timeout_ms, struct k8s_error *err);

/* 1 when the API server pushed back (too many requests: 429, or 503 Service Unavailable, as
 * API Priority and Fairness and max-requests-inflight answer): worth a retry, later, slower. */
int k8s_error_pushback(const struct k8s_error *err);

/* The error in the words a user needs: "token rejected (401 Unauthorized)", ... */
void k8s_error_describe(const struct k8s_error *err, char *buf, size_t buflen);

#endif
