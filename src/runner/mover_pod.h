/* The in-cluster launch path of the data mover (config `mover_launch = pod`): a Secret with the
 * repository's S3 keys and the mover's key, and a Pod on the volume's node that mounts the
 * claim and runs the mover image (docker/mover/Dockerfile). The runner follows the pod's log,
 * where the mover writes its JSON-lines progress, and deletes both objects afterwards, whatever
 * happened. The pod escalates no privilege: not privileged, allowPrivilegeEscalation false,
 * every capability dropped but the few file access needs (reading every file for a backup,
 * setting owners and modes for a restore), read-only root filesystem, RuntimeDefault seccomp. */
#ifndef STOWAGE_RUNNER_MOVER_POD_H
#define STOWAGE_RUNNER_MOVER_POD_H

#include "aead.h"
#include "k8s_client.h"

#include <cjson/cJSON.h>
#include <stdint.h>

#define MOVER_POD_MOUNT "/data"
#define MOVER_POD_KEY_FILE "/var/run/stowage/mover.key"

struct mover_pod_spec {
	const char *ns;			/* the claim's namespace: the pod and secret go there */
	const char *name;		/* the pod's and the secret's name (a DNS label) */
	const char *pvc;
	const char *node;		/* NULL: the scheduler chooses */
	const char *image;
	int restore;			/* 0: backup (the claim mounted read-only), 1: restore */
	const char *const *args;	/* the mover's arguments, NULL-terminated; the volume is at
					 * MOVER_POD_MOUNT and the key at MOVER_POD_KEY_FILE */
	const char *access_key, *secret_key;
	const uint8_t *key;		/* AEAD_KEY_LEN bytes: the mover's key */
	int host_network;		/* 1: the pod shares its node's network (mover_pod_host_network) */
};

/* The objects mover_pod_run creates (the caller frees them). */
cJSON *mover_pod_secret_object(const struct mover_pod_spec *s);
cJSON *mover_pod_object(const struct mover_pod_spec *s);

/* Called with each JSON line of the mover's output, in order, once each. */
typedef void (*mover_line_fn)(const cJSON *line, void *ud);

/* Creates the secret and the pod, follows the log until the pod ends (or timeout_ms, or
 * cancelled(ud) returns 1), and deletes both. Returns 0 when the mover succeeded, with *done
 * (the caller frees it) its final {"phase":"done",...} line; -1 with err naming the pod and
 * the mover's last error line, or why the pod did not run. */
int mover_pod_run(struct k8s_client *k, const struct mover_pod_spec *s, long timeout_ms,
		  mover_line_fn on_line, int (*cancelled)(void *ud), void *ud, cJSON **done,
		  char *err, size_t errlen);

/* The parts of mover_pod_run, for callers (and tests) that look in between. */
int mover_pod_create(struct k8s_client *k, const struct mover_pod_spec *s, char *err, size_t errlen);
int mover_pod_follow(struct k8s_client *k, const struct mover_pod_spec *s, long timeout_ms,
		     mover_line_fn on_line, int (*cancelled)(void *ud), void *ud, cJSON **done,
		     char *err, size_t errlen);
/* Deletes the pod and the secret; a missing one counts as deleted. */
int mover_pod_delete(struct k8s_client *k, const struct mover_pod_spec *s, char *err, size_t errlen);

#endif
