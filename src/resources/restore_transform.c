#include "restore_transform.h"
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- sets of names ---- */

void restore_names_add(struct restore_names *s, const char *name)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 32;
		s->v = xrealloc(s->v, s->cap * sizeof *s->v);
	}
	s->v[s->n++] = xstrdup(name);
	s->sorted = 0;
}

static int restore_names_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void restore_names_seal(struct restore_names *s)
{
	size_t kept = s->n ? 1 : 0;

	if (s->n > 1)
		qsort(s->v, s->n, sizeof *s->v, restore_names_cmp);
	for (size_t i = 1; i < s->n; i++) {
		if (strcmp(s->v[kept - 1], s->v[i]) == 0)
			free(s->v[i]);
		else
			s->v[kept++] = s->v[i];
	}
	s->n = kept;
	s->sorted = 1;
}

int restore_names_has(const struct restore_names *s, const char *name)
{
	if (!s || !name || !s->n)
		return 0;
	if (!s->sorted) {
		for (size_t i = 0; i < s->n; i++)
			if (strcmp(s->v[i], name) == 0)
				return 1;
		return 0;
	}
	return bsearch(&name, s->v, s->n, sizeof *s->v, restore_names_cmp) != NULL;
}

void restore_names_free(struct restore_names *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof *s);
}

/* ---- small helpers ---- */

static cJSON *restore_get(const cJSON *obj, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static const char *restore_str(const cJSON *obj, const char *key)
{
	return cJSON_GetStringValue(restore_get(obj, key));
}

static int restore_is(const char *group, const char *resource, const char *g, const char *r)
{
	return strcmp(group, g) == 0 && strcmp(resource, r) == 0;
}

/* Replaces obj[key] by a string, when value differs from what is there. */
static void restore_set_str(cJSON *obj, const char *key, const char *value)
{
	const char *cur = restore_str(obj, key);

	if (cur && strcmp(cur, value) == 0)
		return;
	cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
	cJSON_AddStringToObject(obj, key, value);
}

/* Maps obj[key] in place when it is a string the map names. */
static void restore_map_field(cJSON *obj, const char *key, const char *(*target)(const struct restore_transform *, const char *),
			      const struct restore_transform *t)
{
	const char *cur = restore_str(obj, key);
	const char *to;

	if (!cur)
		return;
	to = target(t, cur);
	if (to != cur) {
		char *copy = xstrdup(to);
		restore_set_str(obj, key, copy);
		free(copy);
	}
}

static const char *restore_map_lookup(const cJSON *map, const char *from)
{
	const char *to = restore_str(map, from);

	return to && *to ? to : NULL;
}

const char *restore_namespace_target(const struct restore_transform *t, const char *ns)
{
	const char *to = ns && *ns ? restore_map_lookup(t->namespace_map, ns) : NULL;

	return to ? to : ns;
}

const char *restore_storage_class_target(const struct restore_transform *t, const char *cls)
{
	const char *to;

	if (!cls || !*cls)
		return cls;
	if ((to = restore_map_lookup(t->storage_class_map, cls)) != NULL)
		return to;
	if ((to = restore_map_lookup(t->cluster_class_map, cls)) != NULL)
		return to;
	return cls;
}

static void restore_warn(const struct restore_transform *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void restore_warn(const struct restore_transform *t, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!t->warn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	t->warn(msg, t->warn_ud);
}

/* ---- what is skipped ---- */

static const cJSON *restore_controller_owner(const cJSON *obj)
{
	const cJSON *ref;

	cJSON_ArrayForEach(ref, restore_get(restore_get(obj, "metadata"), "ownerReferences"))
		if (cJSON_IsTrue(restore_get(ref, "controller")))
			return ref;
	return NULL;
}

static int restore_owned_by(const cJSON *obj, const char *kind)
{
	const char *k = restore_str(restore_controller_owner(obj), "kind");

	return k && strcmp(k, kind) == 0;
}

const char *restore_builtin_reason(const char *group, const char *resource, const cJSON *obj)
{
	const cJSON *meta = restore_get(obj, "metadata");
	const char *name = restore_str(meta, "name");
	const char *boot = restore_str(restore_get(meta, "labels"), "kubernetes.io/bootstrapping");
	const char *apf = restore_str(restore_get(meta, "annotations"), "apf.kubernetes.io/autoupdate-spec");

	if (strcmp(group, "rbac.authorization.k8s.io") == 0 && boot && strcmp(boot, "rbac-defaults") == 0)
		return "a default RBAC object: every cluster's API server makes it itself";
	if (restore_is(group, resource, "scheduling.k8s.io", "priorityclasses") && name && strncmp(name, "system-", 7) == 0)
		return "a system PriorityClass: every cluster's API server makes it itself";
	if (restore_is(group, resource, "apiregistration.k8s.io", "apiservices") && !cJSON_IsObject(restore_get(restore_get(obj, "spec"), "service")))
		return "an API group the API server serves itself";
	if (strcmp(group, "flowcontrol.apiserver.k8s.io") == 0 && apf && strcmp(apf, "true") == 0)
		return "a built-in flow-control setting the API server keeps up to date";
	return NULL;
}

const char *restore_skip_reason(const char *group, const char *resource, const cJSON *obj)
{
	if (restore_is(group, resource, "", "pods") && restore_controller_owner(obj))
		return "owned by a controller, which recreates it";
	if (restore_is(group, resource, "apps", "replicasets") && restore_owned_by(obj, "Deployment"))
		return "owned by a Deployment, which recreates it";
	if (restore_is(group, resource, "batch", "jobs") && restore_owned_by(obj, "CronJob"))
		return "owned by a CronJob, which recreates it";
	/* restored before its StatefulSet's controller writes its own, a revision of the same name
	 * but another owner makes that controller fail ("field is immutable") and start no pod */
	if (restore_is(group, resource, "apps", "controllerrevisions") && restore_controller_owner(obj))
		return "owned by its StatefulSet or DaemonSet, which recreates it";
	if (restore_is(group, resource, "", "endpoints") || restore_is(group, resource, "discovery.k8s.io", "endpointslices"))
		return "endpoints are recreated by the cluster from their Service";
	if (restore_is(group, resource, "", "events") || restore_is(group, resource, "events.k8s.io", "events"))
		return "events are not restored";
	return restore_builtin_reason(group, resource, obj);
}

const char *restore_job_finished(const char *group, const char *resource, const cJSON *obj)
{
	const cJSON *c;

	if (!restore_is(group, resource, "batch", "jobs"))
		return NULL;
	cJSON_ArrayForEach(c, restore_get(restore_get(obj, "status"), "conditions")) {
		const char *type = restore_str(c, "type"), *status = restore_str(c, "status");
		if (type && status && strcmp(status, "True") == 0 && (strcmp(type, "Complete") == 0 || strcmp(type, "Failed") == 0))
			return strcmp(type, "Complete") == 0 ? "Complete" : "Failed";
	}
	return NULL;
}

/* ---- the transformation ---- */

static void restore_strip_metadata(cJSON *obj)
{
	static const char *const owned_by_server[] = {
		"uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink",
		"deletionTimestamp", "deletionGracePeriodSeconds",
	};
	cJSON *meta = restore_get(obj, "metadata");

	for (size_t i = 0; i < sizeof owned_by_server / sizeof owned_by_server[0]; i++)
		cJSON_DeleteItemFromObjectCaseSensitive(meta, owned_by_server[i]);
	cJSON_DeleteItemFromObjectCaseSensitive(obj, "status");
}

static void restore_owner_references(const struct restore_transform *t, cJSON *meta)
{
	cJSON *refs = restore_get(meta, "ownerReferences"), *ref, *next;

	if (!cJSON_IsArray(refs))
		return;
	/* by pointer, never by index: cJSON reaches item i by walking i links, and the list is the
	 * tenant's (millions of "{}" fit in one object) */
	for (ref = refs->child; ref; ref = next) {
		next = ref->next;
		if (restore_names_has(t->restored_uids, restore_str(ref, "uid")))
			cJSON_Delete(cJSON_DetachItemViaPointer(refs, ref));
	}
	if (!refs->child)
		cJSON_DeleteItemFromObjectCaseSensitive(meta, "ownerReferences");
}

/* Annotations whose value is a namespace name. */
static const char *const restore_namespace_annotations[] = {
	"kubernetes.io/service-account.namespace",
	"meta.helm.sh/release-namespace",
};

static void restore_namespace_selectors(const struct restore_transform *t, cJSON *rules, const char *peers)
{
	cJSON *rule, *peer;

	cJSON_ArrayForEach(rule, rules) {
		cJSON_ArrayForEach(peer, restore_get(rule, peers)) {
			cJSON *labels = restore_get(restore_get(peer, "namespaceSelector"), "matchLabels");
			restore_map_field(labels, "kubernetes.io/metadata.name", restore_namespace_target, t);
		}
	}
}

static void restore_namespaces(const struct restore_transform *t, const char *group, const char *resource, cJSON *obj)
{
	cJSON *meta = restore_get(obj, "metadata"), *spec = restore_get(obj, "spec"), *subject;
	cJSON *annotations = restore_get(meta, "annotations");

	restore_map_field(meta, "namespace", restore_namespace_target, t);
	for (size_t i = 0; i < sizeof restore_namespace_annotations / sizeof restore_namespace_annotations[0]; i++)
		restore_map_field(annotations, restore_namespace_annotations[i], restore_namespace_target, t);
	if (restore_is(group, resource, "", "namespaces")) {
		restore_map_field(meta, "name", restore_namespace_target, t);
		restore_map_field(restore_get(meta, "labels"), "kubernetes.io/metadata.name", restore_namespace_target, t);
	}
	if (restore_is(group, resource, "rbac.authorization.k8s.io", "rolebindings") ||
	    restore_is(group, resource, "rbac.authorization.k8s.io", "clusterrolebindings"))
		cJSON_ArrayForEach(subject, restore_get(obj, "subjects"))
			restore_map_field(subject, "namespace", restore_namespace_target, t);
	if (restore_is(group, resource, "", "persistentvolumes"))
		restore_map_field(restore_get(spec, "claimRef"), "namespace", restore_namespace_target, t);
	if (restore_is(group, resource, "networking.k8s.io", "networkpolicies")) {
		restore_namespace_selectors(t, restore_get(spec, "ingress"), "from");
		restore_namespace_selectors(t, restore_get(spec, "egress"), "to");
	}
	if (restore_is(group, resource, "apiextensions.k8s.io", "customresourcedefinitions"))
		restore_map_field(restore_get(restore_get(restore_get(restore_get(spec, "conversion"), "webhook"),
							  "clientConfig"), "service"), "namespace", restore_namespace_target, t);
}

#define RESTORE_LEGACY_CLASS_ANNOTATION "volume.beta.kubernetes.io/storage-class"

/* A claim or claim template: its class, by field and by the legacy annotation. */
static void restore_claim_class(const struct restore_transform *t, cJSON *claim)
{
	restore_map_field(restore_get(claim, "spec"), "storageClassName", restore_storage_class_target, t);
	restore_map_field(restore_get(restore_get(claim, "metadata"), "annotations"), RESTORE_LEGACY_CLASS_ANNOTATION,
			  restore_storage_class_target, t);
}

static void restore_claim(const struct restore_transform *t, cJSON *obj)
{
	static const char *const binding[] = {
		"pv.kubernetes.io/bind-completed", "pv.kubernetes.io/bound-by-controller",
		"volume.kubernetes.io/selected-node",
	};
	cJSON *annotations = restore_get(restore_get(obj, "metadata"), "annotations");
	cJSON *spec = restore_get(obj, "spec");

	for (size_t i = 0; i < sizeof binding / sizeof binding[0]; i++)
		cJSON_DeleteItemFromObjectCaseSensitive(annotations, binding[i]);
	if (!restore_names_has(t->restored_volumes, restore_str(spec, "volumeName")))
		cJSON_DeleteItemFromObjectCaseSensitive(spec, "volumeName");
	restore_claim_class(t, obj);
}

static void restore_volume(const struct restore_transform *t, cJSON *obj)
{
	cJSON *spec = restore_get(obj, "spec");
	cJSON *claim = restore_get(spec, "claimRef");

	cJSON_DeleteItemFromObjectCaseSensitive(claim, "uid");
	cJSON_DeleteItemFromObjectCaseSensitive(claim, "resourceVersion");
	restore_map_field(spec, "storageClassName", restore_storage_class_target, t);
	restore_map_field(restore_get(restore_get(obj, "metadata"), "annotations"), RESTORE_LEGACY_CLASS_ANNOTATION,
			  restore_storage_class_target, t);
}

static void restore_service(const struct restore_transform *t, cJSON *obj)
{
	cJSON *spec = restore_get(obj, "spec"), *port;
	const char *ip = restore_str(spec, "clusterIP");
	const char *ns = restore_str(restore_get(obj, "metadata"), "namespace");
	const char *name = restore_str(restore_get(obj, "metadata"), "name");

	if (!ip || strcmp(ip, "None") != 0) {
		cJSON_DeleteItemFromObjectCaseSensitive(spec, "clusterIP");
		cJSON_DeleteItemFromObjectCaseSensitive(spec, "clusterIPs");
	}
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "healthCheckNodePort");
	cJSON_ArrayForEach(port, restore_get(spec, "ports")) {
		cJSON *np = restore_get(port, "nodePort");
		if (!np)
			continue;
		/* A port number from storage is checked before it is converted: 3e82 is a JSON number too. */
		int valid = cJSON_IsNumber(np) && np->valuedouble >= 1 && np->valuedouble <= 65535;
		if (valid && t->node_port_take && t->node_port_take((long)np->valuedouble, t->node_port_ud))
			continue;
		if (valid)
			restore_warn(t, "Service %s/%s: node port %ld is in use in the target cluster; the cluster assigns another",
				     ns ? ns : "", name ? name : "", (long)np->valuedouble);
		cJSON_DeleteItemFromObjectCaseSensitive(port, "nodePort");
	}
}

/* The class chosen (claim_class_map) for a claim a StatefulSet made from template tmpl:
 * "<ns>/<tmpl>-<sts>-<ordinal>", or NULL. */
static const char *restore_template_choice(const struct restore_transform *t, const char *ns, const char *sts,
					   const char *tmpl)
{
	char prefix[600];
	size_t n;
	const cJSON *e;

	if (!ns || !sts || !tmpl)
		return NULL;
	n = (size_t)snprintf(prefix, sizeof prefix, "%s/%s-%s-", ns, tmpl, sts);
	if (n >= sizeof prefix)
		return NULL;
	cJSON_ArrayForEach(e, t->claim_class_map) {
		const char *rest = e->string + (strncmp(e->string, prefix, n) == 0 ? n : 0);
		if (rest != e->string && *rest && strspn(rest, "0123456789") == strlen(rest) && cJSON_IsString(e))
			return e->valuestring;
	}
	return NULL;
}

/* Claim templates name classes as claims do: the class chosen for the set's claims, else the maps. */
static void restore_stateful_set(const struct restore_transform *t, cJSON *obj, const char *source_ns)
{
	const char *name = restore_str(restore_get(obj, "metadata"), "name");
	cJSON *tmpl;

	cJSON_ArrayForEach(tmpl, restore_get(restore_get(obj, "spec"), "volumeClaimTemplates")) {
		const char *chosen = restore_template_choice(t, source_ns, name, restore_str(restore_get(tmpl, "metadata"), "name"));
		cJSON *spec = restore_get(tmpl, "spec");
		if (chosen && cJSON_IsObject(spec) && restore_str(spec, "storageClassName")) {
			restore_set_str(spec, "storageClassName", chosen);
			cJSON_DeleteItemFromObjectCaseSensitive(restore_get(restore_get(tmpl, "metadata"), "annotations"),
								RESTORE_LEGACY_CLASS_ANNOTATION);
		} else {
			restore_claim_class(t, tmpl);
		}
	}
}

/* Generic ephemeral volumes: a pod template's claim template names a class too. */
static void restore_ephemeral_classes(const struct restore_transform *t, cJSON *pod_spec)
{
	cJSON *vol;

	cJSON_ArrayForEach(vol, restore_get(pod_spec, "volumes"))
		restore_claim_class(t, restore_get(restore_get(vol, "ephemeral"), "volumeClaimTemplate"));
}

/* Wherever a pod spec sits: a pod's own, a workload's template, a CronJob's job template. */
static void restore_pod_specs(const struct restore_transform *t, cJSON *obj)
{
	cJSON *spec = restore_get(obj, "spec");

	restore_ephemeral_classes(t, spec);
	restore_ephemeral_classes(t, restore_get(restore_get(spec, "template"), "spec"));
	restore_ephemeral_classes(t, restore_get(restore_get(restore_get(restore_get(spec, "jobTemplate"), "spec"),
							 "template"), "spec"));
}

/* A restored class never becomes the target's default: the target has its own, or chooses. */
static void restore_storage_class(const struct restore_transform *t, cJSON *obj)
{
	cJSON *annotations = restore_get(restore_get(obj, "metadata"), "annotations");

	if (t->keep_default_class)
		return;
	cJSON_DeleteItemFromObjectCaseSensitive(annotations, "storageclass.kubernetes.io/is-default-class");
	cJSON_DeleteItemFromObjectCaseSensitive(annotations, "storageclass.beta.kubernetes.io/is-default-class");
}

/* A pod is scheduled again in the target: its node and computed priority belong to the source. */
static void restore_pod(cJSON *obj)
{
	cJSON *spec = restore_get(obj, "spec");

	cJSON_DeleteItemFromObjectCaseSensitive(spec, "nodeName");
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "priority");
}

/* A job's generated selector names its old uid, which the API server refuses on create. */
static void restore_job(cJSON *obj)
{
	cJSON *spec = restore_get(obj, "spec");
	cJSON *labels = restore_get(restore_get(restore_get(spec, "template"), "metadata"), "labels");

	if (cJSON_IsTrue(restore_get(spec, "manualSelector")))
		return;
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "selector");
	cJSON_DeleteItemFromObjectCaseSensitive(labels, "controller-uid");
	cJSON_DeleteItemFromObjectCaseSensitive(labels, "batch.kubernetes.io/controller-uid");
}

static void restore_labels(const struct restore_transform *t, cJSON *meta)
{
	cJSON *labels = restore_get(meta, "labels");
	char value[64];

	if (!cJSON_IsObject(labels)) {
		cJSON_DeleteItemFromObjectCaseSensitive(meta, "labels");
		labels = cJSON_AddObjectToObject(meta, "labels");
	}
	restore_label_value(t->backup_name ? t->backup_name : "", value);
	restore_set_str(labels, RESTORE_LABEL_BACKUP, value);
	restore_label_value(t->restore_id ? t->restore_id : "", value);
	restore_set_str(labels, RESTORE_LABEL_RESTORE, value);
}

/* A class chosen for this very claim (by its source namespace and name) wins over the maps. */
static void restore_claim_choice(const struct restore_transform *t, const char *key, cJSON *claim)
{
	const cJSON *cls = cJSON_GetObjectItemCaseSensitive(t->claim_class_map, key);
	cJSON *spec = restore_get(claim, "spec");

	if (!cJSON_IsString(cls) || !cJSON_IsObject(spec))
		return;
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "storageClassName");
	cJSON_AddStringToObject(spec, "storageClassName", cls->valuestring);
	cJSON_DeleteItemFromObjectCaseSensitive(restore_get(restore_get(claim, "metadata"), "annotations"),
						RESTORE_LEGACY_CLASS_ANNOTATION);
}

/* A volume the plan names for this very claim: the claim binds to it, whatever it named before. */
static void restore_claim_volume(const struct restore_transform *t, const char *key, cJSON *claim)
{
	const cJSON *pv = cJSON_GetObjectItemCaseSensitive(t->claim_volume_map, key);
	cJSON *spec = restore_get(claim, "spec");

	if (!cJSON_IsString(pv) || !*pv->valuestring || !cJSON_IsObject(spec))
		return;
	restore_set_str(spec, "volumeName", pv->valuestring);
}

void restore_transform_apply(const struct restore_transform *t, const char *group, const char *resource,
			     cJSON *obj)
{
	cJSON *meta = restore_get(obj, "metadata");
	char claim_key[512] = "", source_ns[254] = "";

	if (!cJSON_IsObject(obj) || !cJSON_IsObject(meta))
		return;
	if (cJSON_IsString(restore_get(meta, "namespace")))
		snprintf(source_ns, sizeof source_ns, "%s", restore_str(meta, "namespace"));
	if ((t->claim_class_map || t->claim_volume_map) && restore_is(group, resource, "", "persistentvolumeclaims")) {
		const cJSON *ns = restore_get(meta, "namespace"), *name = restore_get(meta, "name");
		if (cJSON_IsString(ns) && cJSON_IsString(name))
			snprintf(claim_key, sizeof claim_key, "%s/%s", ns->valuestring, name->valuestring);
	}
	restore_strip_metadata(obj);
	restore_owner_references(t, meta);
	restore_namespaces(t, group, resource, obj);
	if (restore_is(group, resource, "", "services"))
		restore_service(t, obj);
	else if (restore_is(group, resource, "", "persistentvolumes"))
		restore_volume(t, obj);
	else if (restore_is(group, resource, "", "persistentvolumeclaims")) {
		restore_claim(t, obj);
		if (*claim_key) {
			restore_claim_choice(t, claim_key, obj);
			restore_claim_volume(t, claim_key, obj);
		}
	}
	else if (restore_is(group, resource, "apps", "statefulsets"))
		restore_stateful_set(t, obj, source_ns);
	else if (restore_is(group, resource, "", "pods"))
		restore_pod(obj);
	else if (restore_is(group, resource, "batch", "jobs"))
		restore_job(obj);
	else if (restore_is(group, resource, "storage.k8s.io", "storageclasses"))
		restore_storage_class(t, obj);
	restore_pod_specs(t, obj);
	restore_labels(t, meta);
}

/* ---- names ---- */

static int restore_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int restore_label_value_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0)
		return 1;
	if (n > 63 || !restore_alnum(s[0]) || !restore_alnum(s[n - 1]))
		return 0;
	for (; *s; s++)
		if (!restore_alnum(*s) && *s != '-' && *s != '_' && *s != '.')
			return 0;
	return 1;
}

void restore_label_value(const char *name, char out[64])
{
	unsigned long h = 2166136261u;	/* FNV-1a */
	size_t n = 0;

	if (restore_label_value_ok(name)) {
		snprintf(out, 64, "%s", name);
		return;
	}
	for (const char *p = name; *p; p++)
		h = ((h ^ (unsigned char)*p) * 16777619u) & 0xffffffffu;
	/* keep the valid characters of the name, then the hash: always ends alphanumeric */
	for (const char *p = name; *p && n < 57; p++)
		if (restore_alnum(*p) || ((*p == '-' || *p == '_' || *p == '.') && n > 0))
			out[n++] = *p;
	snprintf(out + n, 64 - n, "%06lx", h & 0xffffff);
}

static int restore_dns_ok(const char *s, int label)
{
	size_t n = strlen(s);

	if (n == 0 || n > (label ? 63u : 253u) || !restore_alnum(s[0]) || !restore_alnum(s[n - 1]))
		return 0;
	for (; *s; s++) {
		if (*s >= 'A' && *s <= 'Z')
			return 0;
		if (!restore_alnum(*s) && *s != '-' && (label || *s != '.'))
			return 0;
	}
	return 1;
}

int restore_map_check(const cJSON *map, const char *field, int dns_label, char *err, size_t errlen)
{
	const cJSON *e;
	const char *what = dns_label ? "a namespace name (lowercase letters, digits and '-', at most 63)"
				     : "a storage class name (lowercase letters, digits, '-' and '.', at most 253)";

	if (!map)
		return 0;
	if (!cJSON_IsObject(map)) {
		snprintf(err, errlen, "%s: must be an object of names", field);
		return -1;
	}
	cJSON_ArrayForEach(e, map) {
		if (!restore_dns_ok(e->string, dns_label)) {
			snprintf(err, errlen, "%s: \"%.100s\" is not %s", field, e->string, what);
			return -1;
		}
		if (!cJSON_IsString(e) || !restore_dns_ok(e->valuestring, dns_label)) {
			snprintf(err, errlen, "%s: the value for \"%.100s\" is not %s", field, e->string, what);
			return -1;
		}
	}
	return 0;
}
