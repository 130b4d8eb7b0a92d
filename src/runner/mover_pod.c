/* The data mover as a pod: see mover_pod.h. */
#include "mover_pod.h"
#include "http_retry.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

static const char *json_str(const cJSON *o, const char *a, const char *b)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);

	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void add_base64(cJSON *data, const char *key, const void *bytes, size_t len)
{
	char *b64 = xmalloc(4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)b64, bytes, (int)len);
	cJSON_AddStringToObject(data, key, b64);
	OPENSSL_cleanse(b64, strlen(b64));
	free(b64);
}

static cJSON *labels(const struct mover_pod_spec *s)
{
	cJSON *l = cJSON_CreateObject();

	cJSON_AddStringToObject(l, "app.kubernetes.io/managed-by", "stowage");
	cJSON_AddStringToObject(l, "app.kubernetes.io/component", "data-mover");
	cJSON_AddStringToObject(l, "stowage.dev/pvc", s->pvc);
	return l;
}

/* apiVersion v1, kind and the metadata the Secret and the Pod share (name, namespace, labels). */
static void object_head(cJSON *o, const struct mover_pod_spec *s, const char *kind)
{
	cJSON *meta;

	cJSON_AddStringToObject(o, "apiVersion", "v1");
	cJSON_AddStringToObject(o, "kind", kind);
	meta = cJSON_AddObjectToObject(o, "metadata");
	cJSON_AddStringToObject(meta, "name", s->name);
	cJSON_AddStringToObject(meta, "namespace", s->ns);
	cJSON_AddItemToObject(meta, "labels", labels(s));
}

cJSON *mover_pod_secret_object(const struct mover_pod_spec *s)
{
	cJSON *o = cJSON_CreateObject(), *data;
	char hex[AEAD_KEY_LEN * 2 + 2];

	object_head(o, s, "Secret");
	cJSON_AddStringToObject(o, "type", "Opaque");
	cJSON_AddBoolToObject(o, "immutable", 1);
	data = cJSON_AddObjectToObject(o, "data");
	add_base64(data, "AWS_ACCESS_KEY_ID", s->access_key, strlen(s->access_key));
	add_base64(data, "AWS_SECRET_ACCESS_KEY", s->secret_key, strlen(s->secret_key));
	for (int i = 0; i < AEAD_KEY_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", s->key[i]);
	add_base64(data, "mover.key", hex, AEAD_KEY_LEN * 2);
	OPENSSL_cleanse(hex, sizeof hex);
	return o;
}

static cJSON *env_from_secret(const struct mover_pod_spec *s, const char *name)
{
	cJSON *e = cJSON_CreateObject(), *ref;

	cJSON_AddStringToObject(e, "name", name);
	ref = cJSON_AddObjectToObject(cJSON_AddObjectToObject(e, "valueFrom"), "secretKeyRef");
	cJSON_AddStringToObject(ref, "name", s->name);
	cJSON_AddStringToObject(ref, "key", name);
	return e;
}

static cJSON *string_array(const char *const *v)
{
	cJSON *a = cJSON_CreateArray();

	for (; v && *v; v++)
		cJSON_AddItemToArray(a, cJSON_CreateString(*v));
	return a;
}

/* Reading every file needs DAC_READ_SEARCH; writing owners, modes and times back needs
 * CHOWN, FOWNER and DAC_OVERRIDE. Nothing else. */
static cJSON *security_context(int restore)
{
	static const char *const backup_caps[] = { "DAC_READ_SEARCH", NULL };
	static const char *const restore_caps[] = { "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", NULL };
	static const char *const all[] = { "ALL", NULL };
	cJSON *sc = cJSON_CreateObject(), *caps;

	cJSON_AddBoolToObject(sc, "privileged", 0);
	cJSON_AddBoolToObject(sc, "allowPrivilegeEscalation", 0);
	cJSON_AddBoolToObject(sc, "readOnlyRootFilesystem", 1);
	cJSON_AddNumberToObject(sc, "runAsUser", 0);
	caps = cJSON_AddObjectToObject(sc, "capabilities");
	cJSON_AddItemToObject(caps, "drop", string_array(all));
	cJSON_AddItemToObject(caps, "add", string_array(restore ? restore_caps : backup_caps));
	cJSON_AddStringToObject(cJSON_AddObjectToObject(sc, "seccompProfile"), "type", "RuntimeDefault");
	return sc;
}

static cJSON *mount(const char *name, const char *path, int read_only)
{
	cJSON *m = cJSON_CreateObject();

	cJSON_AddStringToObject(m, "name", name);
	cJSON_AddStringToObject(m, "mountPath", path);
	cJSON_AddBoolToObject(m, "readOnly", read_only);
	return m;
}

static cJSON *container(const struct mover_pod_spec *s)
{
	cJSON *c = cJSON_CreateObject(), *env, *mounts, *res;

	cJSON_AddStringToObject(c, "name", "mover");
	cJSON_AddStringToObject(c, "image", s->image);
	cJSON_AddStringToObject(c, "imagePullPolicy", "IfNotPresent");
	cJSON_AddItemToObject(c, "command", string_array((const char *const[]){ "stowage-mover", NULL }));
	cJSON_AddItemToObject(c, "args", string_array(s->args));
	env = cJSON_AddArrayToObject(c, "env");
	cJSON_AddItemToArray(env, env_from_secret(s, "AWS_ACCESS_KEY_ID"));
	cJSON_AddItemToArray(env, env_from_secret(s, "AWS_SECRET_ACCESS_KEY"));
	mounts = cJSON_AddArrayToObject(c, "volumeMounts");
	cJSON_AddItemToArray(mounts, mount("data", MOVER_POD_MOUNT, !s->restore));
	cJSON_AddItemToArray(mounts, mount("mover-key", "/var/run/stowage", 1));
	cJSON_AddItemToObject(c, "securityContext", security_context(s->restore));
	res = cJSON_AddObjectToObject(c, "resources");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(res, "requests"), "memory", "256Mi");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(res, "limits"), "memory", "1Gi");
	return c;
}

cJSON *mover_pod_object(const struct mover_pod_spec *s)
{
	cJSON *o = cJSON_CreateObject(), *spec, *vols, *v, *src, *items, *item;

	object_head(o, s, "Pod");
	spec = cJSON_AddObjectToObject(o, "spec");
	if (s->node && *s->node)
		cJSON_AddStringToObject(spec, "nodeName", s->node);
	cJSON_AddStringToObject(spec, "restartPolicy", "Never");
	/* only where the repository's endpoint is on the node's own loopback (a test environment,
	 * an appliance with its store on every node): the runner's configuration must ask for it */
	if (s->host_network)
		cJSON_AddBoolToObject(spec, "hostNetwork", 1);
	cJSON_AddBoolToObject(spec, "automountServiceAccountToken", 0);
	cJSON_AddBoolToObject(spec, "enableServiceLinks", 0);
	cJSON_AddItemToArray(cJSON_AddArrayToObject(spec, "containers"), container(s));
	vols = cJSON_AddArrayToObject(spec, "volumes");
	v = cJSON_CreateObject();
	cJSON_AddStringToObject(v, "name", "data");
	src = cJSON_AddObjectToObject(v, "persistentVolumeClaim");
	cJSON_AddStringToObject(src, "claimName", s->pvc);
	cJSON_AddBoolToObject(src, "readOnly", !s->restore);
	cJSON_AddItemToArray(vols, v);
	v = cJSON_CreateObject();
	cJSON_AddStringToObject(v, "name", "mover-key");
	src = cJSON_AddObjectToObject(v, "secret");
	cJSON_AddStringToObject(src, "secretName", s->name);
	cJSON_AddNumberToObject(src, "defaultMode", 0400);
	items = cJSON_AddArrayToObject(src, "items");
	item = cJSON_CreateObject();
	cJSON_AddStringToObject(item, "key", "mover.key");
	cJSON_AddStringToObject(item, "path", "mover.key");
	cJSON_AddItemToArray(items, item);
	cJSON_AddItemToArray(vols, v);
	return o;
}

static void describe(const char *what, const char *name, const struct k8s_error *ke, char *err, size_t errlen)
{
	char words[600];

	k8s_error_describe(ke, words, sizeof words);
	snprintf(err, errlen, "%s %s: %s", what, name, words);
}

int mover_pod_create(struct k8s_client *k, const struct mover_pod_spec *s, char *err, size_t errlen)
{
	char *secrets = k8s_resource_path("", "v1", "secrets", s->ns, NULL);
	char *pods = k8s_resource_path("", "v1", "pods", s->ns, NULL);
	cJSON *secret = mover_pod_secret_object(s), *pod = mover_pod_object(s);
	struct k8s_error ke;
	int rc = -1;

	if (k8s_create(k, secrets, secret, NULL, &ke) < 0) {
		describe("creating the data mover's Secret", s->name, &ke, err, errlen);
		goto out;
	}
	if (k8s_create(k, pods, pod, NULL, &ke) < 0) {
		describe("creating the data mover's Pod", s->name, &ke, err, errlen);
		mover_pod_delete(k, s, NULL, 0);
		goto out;
	}
	rc = 0;
out:
	/* the secret's JSON holds the keys: wipe it */
	{
		char *text = cJSON_PrintUnformatted(secret);

		if (text) {
			OPENSSL_cleanse(text, strlen(text));
			cJSON_free(text);
		}
	}
	cJSON_Delete(secret);
	cJSON_Delete(pod);
	free(secrets);
	free(pods);
	return rc;
}

int mover_pod_delete(struct k8s_client *k, const struct mover_pod_spec *s, char *err, size_t errlen)
{
	char *pod = k8s_resource_path("", "v1", "pods", s->ns, s->name);
	char *secret = k8s_resource_path("", "v1", "secrets", s->ns, s->name);
	struct k8s_error ke;
	int rc = 0;

	if (k8s_delete(k, pod, "Background", &ke) < 0 && ke.http_status != 404) {
		if (err)
			describe("deleting the data mover's Pod", s->name, &ke, err, errlen);
		rc = -1;
	}
	if (k8s_delete(k, secret, NULL, &ke) < 0 && ke.http_status != 404) {
		if (err && rc == 0)
			describe("deleting the data mover's Secret", s->name, &ke, err, errlen);
		rc = -1;
	}
	free(pod);
	free(secret);
	return rc;
}

/* State of following one pod's log. */
struct follow {
	size_t seen;			/* bytes of the log already handed out */
	char last_error[512];		/* the last line that was not JSON: the mover's stderr */
	cJSON *done;
	mover_line_fn on_line;
	void *ud;
};

static void follow_lines(struct follow *f, const char *log, size_t len)
{
	while (f->seen < len) {
		const char *line = log + f->seen, *nl = memchr(line, '\n', len - f->seen);
		cJSON *o;

		if (!nl)
			return;	/* a partial line: next time */
		f->seen = (size_t)(nl - log) + 1;
		o = cJSON_ParseWithLength(line, (size_t)(nl - line));
		if (!cJSON_IsObject(o)) {
			if (nl > line)
				snprintf(f->last_error, sizeof f->last_error, "%.*s", (int)(nl - line), line);
			cJSON_Delete(o);
			continue;
		}
		if (f->on_line)
			f->on_line(o, f->ud);
		if (strcmp(json_str(o, "phase", NULL) ? json_str(o, "phase", NULL) : "", "done") == 0) {
			cJSON_Delete(f->done);
			f->done = o;
		} else {
			cJSON_Delete(o);
		}
	}
}

/* Why a pod that has not started never will: an image it cannot pull, a bad secret ref. */
static const char *pod_stuck(const cJSON *pod)
{
	const cJSON *cs;

	cJSON_ArrayForEach(cs, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pod, "status"),
								 "containerStatuses")) {
		const cJSON *waiting = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cs, "state"), "waiting");
		const char *reason = json_str(waiting, "reason", NULL);

		if (reason && (strcmp(reason, "ErrImagePull") == 0 || strcmp(reason, "ImagePullBackOff") == 0 ||
			       strcmp(reason, "InvalidImageName") == 0 || strcmp(reason, "CreateContainerConfigError") == 0 ||
			       strcmp(reason, "CreateContainerError") == 0))
			return json_str(waiting, "message", NULL) ? json_str(waiting, "message", NULL) : reason;
	}
	return NULL;
}

/* Whether the pod's condition type is "True". */
static int pod_condition_true(const cJSON *pod, const char *type)
{
	const cJSON *c;

	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pod, "status"), "conditions"))
		if (json_str(c, "type", NULL) && strcmp(json_str(c, "type", NULL), type) == 0)
			return json_str(c, "status", NULL) && strcmp(json_str(c, "status", NULL), "True") == 0;
	return 0;
}

/* A pod that is not Ready may sit on a node whose kubelet is gone: its status then never
 * changes again (the API server keeps the last one the kubelet sent) and a deletion is never
 * confirmed, so waiting for an end would wait for POD_TIMEOUT. Returns 1 with the node's words
 * in why when the pod's node says it is not Ready; 0 when it is, or cannot be read (a cluster
 * that does not let the runner read nodes keeps the time limit alone). */
static int node_not_ready(struct k8s_client *k, const cJSON *pod, char *why, size_t whylen)
{
	const char *node = json_str(pod, "spec", "nodeName");
	const cJSON *c;
	struct k8s_error ke;
	cJSON *obj = NULL;
	char *path;
	int rc = 0;

	if (!node || !*node || pod_condition_true(pod, "Ready"))
		return 0;
	path = k8s_resource_path("", "v1", "nodes", NULL, node);
	if (k8s_get(k, path, &obj, &ke) == 0) {
		cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "status"),
								     "conditions")) {
			const char *type = json_str(c, "type", NULL), *status = json_str(c, "status", NULL);

			if (!type || strcmp(type, "Ready") != 0 || (status && strcmp(status, "True") == 0))
				continue;
			snprintf(why, whylen, "its node %s is not ready (Ready %s: %s)", node, status ? status : "missing",
				 json_str(c, "message", NULL) ? json_str(c, "message", NULL) : "no message");
			rc = 1;
		}
	}
	cJSON_Delete(obj);
	free(path);
	return rc;
}

static int pod_exit_code(const cJSON *pod)
{
	const cJSON *cs;

	cJSON_ArrayForEach(cs, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pod, "status"),
								 "containerStatuses")) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cs, "state"), "terminated");
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(t, "exitCode");

		if (cJSON_IsNumber(code))
			return code->valueint;
	}
	return -1;
}

int mover_pod_follow(struct k8s_client *k, const struct mover_pod_spec *s, long timeout_ms,
		     mover_line_fn on_line, int (*cancelled)(void *ud), void *ud, cJSON **done,
		     char *err, size_t errlen)
{
	char *pod_path = k8s_resource_path("", "v1", "pods", s->ns, s->name);
	struct strbuf log_path = STRBUF_INIT;
	struct follow f = { .on_line = on_line, .ud = ud };
	long start = http_retry_now_ms(), delay = 250;
	char phase[32] = "Pending", why[400];
	int rc = -1;

	*done = NULL;
	strbuf_addf(&log_path, "%s/log?container=mover", pod_path);
	for (;;) {
		struct k8s_error ke;
		cJSON *pod = NULL;
		char *log = NULL;
		size_t len = 0;
		const char *stuck;

		if (k8s_get(k, pod_path, &pod, &ke) < 0) {
			if (ke.http_status == 404)
				snprintf(err, errlen, "data mover pod %s/%s was deleted before it ended (by someone, or with "
					 "its node); nothing of this run is offered for restore%s%s", s->ns, s->name,
					 f.last_error[0] ? "; its last line: " : "", f.last_error);
			else
				describe("data mover pod", s->name, &ke, err, errlen);
			break;
		}
		snprintf(phase, sizeof phase, "%s", json_str(pod, "status", "phase") ? json_str(pod, "status", "phase") : "Pending");
		if (strcmp(phase, "Pending") != 0 && k8s_get_text(k, log_path.buf, &log, &len, &ke) == 0)
			follow_lines(&f, log, len);
		free(log);
		if (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0) {
			int code = pod_exit_code(pod);

			if (strcmp(phase, "Succeeded") == 0 && f.done) {
				*done = f.done;
				f.done = NULL;
				rc = 0;
			} else {
				snprintf(err, errlen, "data mover pod %s/%s exited %d: %s", s->ns, s->name, code,
					 f.last_error[0] ? f.last_error : "no error line in its log");
			}
			cJSON_Delete(pod);
			break;
		}
		stuck = pod_stuck(pod);
		if (stuck) {
			snprintf(err, errlen, "data mover pod %s/%s cannot start: %s", s->ns, s->name, stuck);
			cJSON_Delete(pod);
			break;
		}
		if (node_not_ready(k, pod, why, sizeof why)) {
			snprintf(err, errlen, "data mover pod %s/%s: %s; nothing of this run is offered for restore%s%s",
				 s->ns, s->name, why, f.last_error[0] ? "; its last line: " : "", f.last_error);
			cJSON_Delete(pod);
			break;
		}
		cJSON_Delete(pod);
		if (cancelled && cancelled(ud)) {
			snprintf(err, errlen, "data mover pod %s/%s stopped: the job was cancelled", s->ns, s->name);
			break;
		}
		if (http_retry_now_ms() - start > timeout_ms) {
			snprintf(err, errlen, "data mover pod %s/%s: still %s after %ld s%s%s", s->ns, s->name, phase,
				 timeout_ms / 1000, f.last_error[0] ? "; last line: " : "", f.last_error);
			break;
		}
		http_retry_sleep_ms(delay);
		delay = delay * 2 > 2000 ? 2000 : delay * 2;
	}
	cJSON_Delete(f.done);
	strbuf_release(&log_path);
	free(pod_path);
	return rc;
}

int mover_pod_run(struct k8s_client *k, const struct mover_pod_spec *s, long timeout_ms,
		  mover_line_fn on_line, int (*cancelled)(void *ud), void *ud, cJSON **done,
		  char *err, size_t errlen)
{
	char cleanup[512];
	int rc;

	*done = NULL;
	if (mover_pod_create(k, s, err, errlen) < 0)
		return -1;
	rc = mover_pod_follow(k, s, timeout_ms, on_line, cancelled, ud, done, err, errlen);
	if (mover_pod_delete(k, s, cleanup, sizeof cleanup) < 0) {
		if (rc == 0)
			snprintf(err, errlen, "%s", cleanup);
		cJSON_Delete(*done);
		*done = NULL;
		return -1;
	}
	return rc;
}
