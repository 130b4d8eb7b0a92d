#include "resource_modifier.h"
#include "yaml_json.h"
#include "strbuf.h"
#include "json.h"

#include <fnmatch.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PER_RULE 100

enum patch_op { OP_ADD, OP_REMOVE, OP_REPLACE, OP_COPY, OP_MOVE, OP_TEST };
static const char *const op_names[] = { "add", "remove", "replace", "copy", "move", "test" };

struct json_patch {
	enum patch_op op;
	char *path, *from;
	cJSON *value;
};

struct modifier_rule {
	char *group_resource;
	int has_regex;
	regex_t name_regex;
	cJSON *namespaces;		/* array of strings, or NULL */
	cJSON *match_labels;		/* object of strings, or NULL */
	cJSON *match_expressions;	/* array, or NULL */
	cJSON *matches;			/* array of {path, value}, or NULL */
	struct json_patch *patches;
	size_t npatches;
	cJSON **merges;
	size_t nmerges;
	cJSON *image_rewrites;		/* array of {from, to}, or NULL */
};

struct resource_modifiers {
	struct modifier_rule *rules;
	size_t n;
};


/* ---- JSON Pointer (RFC 6901) ---- */

/* The next reference token of pointer *p, unescaped into tok; 0 at the end, -1 when malformed. */
static int ptr_next(const char **p, struct strbuf *tok)
{
	const char *s = *p;

	if (!*s)
		return 0;
	if (*s != '/')
		return -1;
	strbuf_reset(tok);
	for (s++; *s && *s != '/'; s++) {
		if (*s == '~') {
			if (s[1] != '0' && s[1] != '1')
				return -1;
			strbuf_addch(tok, s[1] == '0' ? '~' : '/');
			s++;
		} else {
			strbuf_addch(tok, *s);
		}
	}
	strbuf_addch(tok, '\0');
	tok->len--;
	*p = s;
	return 1;
}

static int ptr_valid(const char *p)
{
	struct strbuf tok = STRBUF_INIT;
	int rc;

	while ((rc = ptr_next(&p, &tok)) > 0)
		;
	strbuf_release(&tok);
	return rc == 0;
}

/* An array index token: "0", or digits without a leading zero; -1 otherwise. */
static long ptr_index(const char *tok)
{
	char *end;
	long v;

	if (!*tok || (tok[0] == '0' && tok[1]) || strspn(tok, "0123456789") != strlen(tok) || strlen(tok) > 9)
		return -1;
	v = strtol(tok, &end, 10);
	return v;
}

static cJSON *child(cJSON *c, const char *tok)
{
	if (cJSON_IsObject(c))
		return cJSON_GetObjectItemCaseSensitive(c, tok);
	if (cJSON_IsArray(c)) {
		long i = ptr_index(tok);
		return i < 0 ? NULL : cJSON_GetArrayItem(c, (int)i);
	}
	return NULL;
}

static cJSON *ptr_get(cJSON *root, const char *p)
{
	struct strbuf tok = STRBUF_INIT;
	cJSON *c = root;
	int rc;

	while (c && (rc = ptr_next(&p, &tok)) > 0)
		c = child(c, tok.buf);
	strbuf_release(&tok);
	return c;
}

/* The container that holds the pointer's last token, and that token; NULL when p is "" or a
 * container on the way does not exist. */
static cJSON *ptr_parent(cJSON *root, const char *p, struct strbuf *last)
{
	const char *slash = strrchr(p, '/');
	char *head;
	cJSON *parent;

	if (!slash)
		return NULL;
	head = xstrndup(p, (size_t)(slash - p));
	parent = ptr_get(root, head);
	free(head);
	ptr_next(&slash, last);
	return cJSON_IsObject(parent) || cJSON_IsArray(parent) ? parent : NULL;
}

/* ---- JSON Patch (RFC 6902) ---- */

static int patch_add(cJSON *root, const char *path, cJSON *value, char *err, size_t errlen)
{
	struct strbuf last = STRBUF_INIT;
	cJSON *parent = ptr_parent(root, path, &last);
	int rc = 0;

	if (!parent) {
		err_set(err, errlen, "%s: %s", path, *path ? "its parent does not exist" : "the whole object cannot be replaced");
		rc = -1;
	} else if (cJSON_IsObject(parent)) {
		if (cJSON_GetObjectItemCaseSensitive(parent, last.buf))
			cJSON_ReplaceItemInObjectCaseSensitive(parent, last.buf, value);
		else
			cJSON_AddItemToObject(parent, last.buf, value);
		value = NULL;
	} else {
		long i = strcmp(last.buf, "-") == 0 ? cJSON_GetArraySize(parent) : ptr_index(last.buf);
		if (i < 0 || i > cJSON_GetArraySize(parent)) {
			err_set(err, errlen, "%s: index %s is outside the array (%d items)", path, last.buf, cJSON_GetArraySize(parent));
			rc = -1;
		} else if (i == cJSON_GetArraySize(parent)) {
			cJSON_AddItemToArray(parent, value);
			value = NULL;
		} else {
			cJSON_InsertItemInArray(parent, (int)i, value);
			value = NULL;
		}
	}
	cJSON_Delete(value);
	strbuf_release(&last);
	return rc;
}

/* Takes the value at path out of root (the caller owns it); NULL when there is none. */
static cJSON *patch_detach(cJSON *root, const char *path)
{
	struct strbuf last = STRBUF_INIT;
	cJSON *parent = ptr_parent(root, path, &last), *v = NULL;

	if (parent && cJSON_IsObject(parent))
		v = cJSON_DetachItemFromObjectCaseSensitive(parent, last.buf);
	else if (parent && ptr_index(last.buf) >= 0 && ptr_index(last.buf) < cJSON_GetArraySize(parent))
		v = cJSON_DetachItemFromArray(parent, (int)ptr_index(last.buf));
	strbuf_release(&last);
	return v;
}

static int patch_apply(cJSON *root, const struct json_patch *p, char *err, size_t errlen)
{
	cJSON *v;

	switch (p->op) {
	case OP_ADD:
		return patch_add(root, p->path, cJSON_Duplicate(p->value, 1), err, errlen);
	case OP_REMOVE:
	case OP_REPLACE:
		if (!*p->path) {
			err_set(err, errlen, "the whole object cannot be %sd", op_names[p->op]);
			return -1;
		}
		if (!(v = patch_detach(root, p->path))) {
			err_set(err, errlen, "%s: there is nothing there to %s", p->path, op_names[p->op]);
			return -1;
		}
		cJSON_Delete(v);
		return p->op == OP_REMOVE ? 0 : patch_add(root, p->path, cJSON_Duplicate(p->value, 1), err, errlen);
	case OP_COPY:
		if (!(v = ptr_get(root, p->from))) {
			err_set(err, errlen, "%s: there is nothing there to copy", p->from);
			return -1;
		}
		return patch_add(root, p->path, cJSON_Duplicate(v, 1), err, errlen);
	case OP_MOVE: {
		size_t n = strlen(p->from);
		if (strncmp(p->path, p->from, n) == 0 && p->path[n] == '/') {
			err_set(err, errlen, "%s: cannot move %s into itself", p->path, p->from);
			return -1;
		}
		if (!*p->from || !(v = patch_detach(root, p->from))) {
			err_set(err, errlen, "%s: there is nothing there to move", p->from);
			return -1;
		}
		return patch_add(root, p->path, v, err, errlen);
	}
	case OP_TEST:
		if (!cJSON_Compare(ptr_get(root, p->path), p->value, 1)) {
			err_set(err, errlen, "%s: test failed: the value differs", p->path);
			return -1;
		}
		return 0;
	}
	return -1;
}

/* ---- JSON Merge Patch (RFC 7386) ---- */

static void merge_into(cJSON *target, const cJSON *patch)
{
	const cJSON *p;

	cJSON_ArrayForEach(p, patch) {
		cJSON *t = cJSON_GetObjectItemCaseSensitive(target, p->string);
		if (cJSON_IsNull(p)) {
			cJSON_DeleteItemFromObjectCaseSensitive(target, p->string);
		} else if (cJSON_IsObject(p)) {
			if (!cJSON_IsObject(t)) {
				t = cJSON_CreateObject();
				if (cJSON_GetObjectItemCaseSensitive(target, p->string))
					cJSON_ReplaceItemInObjectCaseSensitive(target, p->string, t);
				else
					cJSON_AddItemToObject(target, p->string, t);
			}
			merge_into(t, p);
		} else if (t) {
			cJSON_ReplaceItemInObjectCaseSensitive(target, p->string, cJSON_Duplicate(p, 1));
		} else {
			cJSON_AddItemToObject(target, p->string, cJSON_Duplicate(p, 1));
		}
	}
}

/* ---- conditions ---- */

static const char *meta_str(const cJSON *obj, const char *field)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), field));
}

static int labels_match(const struct modifier_rule *r, const cJSON *obj)
{
	const cJSON *labels = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "labels");
	const cJSON *want, *e;

	cJSON_ArrayForEach(want, r->match_labels) {
		const char *have = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(labels, want->string));
		if (!have || strcmp(have, want->valuestring) != 0)
			return 0;
	}
	cJSON_ArrayForEach(e, r->match_expressions) {
		const char *key = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "key"));
		const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "operator"));
		const cJSON *values = cJSON_GetObjectItemCaseSensitive(e, "values");
		const char *have = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(labels, key));
		int ok = strcmp(op, "In") == 0 ? have && json_array_has(values, have)
			: strcmp(op, "NotIn") == 0 ? !have || !json_array_has(values, have)
			: strcmp(op, "Exists") == 0 ? have != NULL
			: have == NULL;		/* DoesNotExist */
		if (!ok)
			return 0;
	}
	return 1;
}

static int rule_matches(const struct modifier_rule *r, const char *group, const char *resource, const char *ns,
			const cJSON *obj)
{
	struct strbuf gr = STRBUF_INIT;
	const char *name = meta_str(obj, "name");
	const cJSON *m;
	int ok;

	strbuf_addstr(&gr, resource);
	if (*group)
		strbuf_addf(&gr, ".%s", group);
	ok = fnmatch(r->group_resource, gr.buf, 0) == 0;
	strbuf_release(&gr);
	if (!ok || (r->has_regex && (!name || regexec(&r->name_regex, name, 0, NULL, 0) != 0)))
		return 0;
	if (r->namespaces && (!*ns || !json_array_has(r->namespaces, ns)))
		return 0;
	if ((r->match_labels || r->match_expressions) && !labels_match(r, obj))
		return 0;
	cJSON_ArrayForEach(m, r->matches) {
		const cJSON *v = ptr_get((cJSON *)obj, cJSON_GetObjectItemCaseSensitive(m, "path")->valuestring);
		const char *want = cJSON_GetObjectItemCaseSensitive(m, "value")->valuestring;
		char *text;
		if (!v)
			return 0;
		text = cJSON_IsString(v) ? NULL : cJSON_PrintUnformatted(v);
		ok = strcmp(text ? text : v->valuestring, want) == 0;
		free(text);
		if (!ok)
			return 0;
	}
	return 1;
}

/* ---- image rewrites ---- */

static int rewrite_containers(cJSON *spec, const cJSON *rewrites)
{
	static const char *const lists[] = { "containers", "initContainers", "ephemeralContainers" };
	int changed = 0;

	for (size_t l = 0; l < sizeof lists / sizeof *lists; l++) {
		cJSON *c;
		cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(spec, lists[l])) {
			const char *image = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "image"));
			const cJSON *rw;
			cJSON_ArrayForEach(rw, rewrites) {
				const char *from = cJSON_GetObjectItemCaseSensitive(rw, "from")->valuestring;
				const char *to = cJSON_GetObjectItemCaseSensitive(rw, "to")->valuestring;
				if (image && strncmp(image, from, strlen(from)) == 0) {
					struct strbuf sb = STRBUF_INIT;
					strbuf_addf(&sb, "%s%s", to, image + strlen(from));
					cJSON_ReplaceItemInObjectCaseSensitive(c, "image", cJSON_CreateString(sb.buf));
					strbuf_release(&sb);
					changed = 1;
					break;
				}
			}
		}
	}
	return changed;
}

/* Every pod spec an object carries: a Pod's, a workload's template, a CronJob's job template. */
static void rewrite_images(cJSON *obj, const cJSON *rewrites)
{
	cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
	cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "template"), "spec");
	cJSON *job = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "jobTemplate"), "spec");
	cJSON *jobpod = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(job, "template"), "spec");

	rewrite_containers(spec, rewrites);
	rewrite_containers(tmpl, rewrites);
	rewrite_containers(jobpod, rewrites);
}

int resource_modifiers_apply(const struct resource_modifiers *m, const char *group, const char *resource,
			     const char *ns, cJSON *obj, char *err, size_t errlen)
{
	int applied = 0;

	for (size_t i = 0; m && i < m->n; i++) {
		const struct modifier_rule *r = &m->rules[i];
		char why[400];
		if (!rule_matches(r, group, resource, ns ? ns : "", obj))
			continue;
		for (size_t k = 0; k < r->npatches; k++) {
			if (patch_apply(obj, &r->patches[k], why, sizeof why) < 0) {
				err_set(err, errlen, "resource modifier rule %zu, patch %zu (%s): %s", i + 1, k + 1,
				    op_names[r->patches[k].op], why);
				return -1;
			}
		}
		for (size_t k = 0; k < r->nmerges; k++)
			merge_into(obj, r->merges[k]);
		if (r->image_rewrites)
			rewrite_images(obj, r->image_rewrites);
		applied++;
	}
	return applied;
}

/* ---- parsing ---- */

struct where {
	char *err;
	size_t errlen;
	char at[160];
};

static int bad(struct where *w, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(struct where *w, const char *field, const char *fmt, ...)
{
	char why[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	err_set(w->err, w->errlen, "%s%s%s: %s", w->at, *field ? "." : "", field, why);
	return -1;
}

/* Refuses keys other than those named (NULL-terminated). */
static int only_keys(struct where *w, const cJSON *obj, const char *const *keys)
{
	const cJSON *c;

	cJSON_ArrayForEach(c, obj) {
		size_t i = 0;
		while (keys[i] && strcmp(keys[i], c->string) != 0)
			i++;
		if (!keys[i])
			return bad(w, c->string, "is not a field here (strategicPatches are not supported)");
	}
	return 0;
}

static int string_list(struct where *w, const cJSON *v, const char *field, cJSON **out)
{
	const cJSON *s;

	if (!v)
		return 0;
	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > MAX_PER_RULE)
		return bad(w, field, "must be a list of at most %d strings", MAX_PER_RULE);
	cJSON_ArrayForEach(s, v)
		if (!cJSON_IsString(s))
			return bad(w, field, "must be a list of strings");
	*out = cJSON_Duplicate(v, 1);
	return 0;
}

/* A patch value as Velero reads it: a string that is JSON other than a string is that JSON. */
static cJSON *patch_value(const cJSON *v)
{
	if (cJSON_IsString(v)) {
		const char *s = v->valuestring + strspn(v->valuestring, " \t\r\n");
		if (*s == '{' || *s == '[' || *s == '-' || (*s >= '0' && *s <= '9') || strcmp(s, "true") == 0 ||
		    strcmp(s, "false") == 0 || strcmp(s, "null") == 0) {
			cJSON *j = cJSON_Parse(s);
			if (j)
				return j;
		}
	}
	return cJSON_Duplicate(v, 1);
}

static int parse_conditions(struct where *w, const cJSON *c, struct modifier_rule *r)
{
	static const char *const keys[] = { "groupResource", "resourceNameRegex", "namespaces", "labelSelector",
					    "matches", NULL };
	const cJSON *gr = cJSON_GetObjectItemCaseSensitive(c, "groupResource");
	const cJSON *re = cJSON_GetObjectItemCaseSensitive(c, "resourceNameRegex");
	const cJSON *sel = cJSON_GetObjectItemCaseSensitive(c, "labelSelector");
	const cJSON *m, *e;
	size_t n = strlen(w->at);

	strncat(w->at, ".conditions", sizeof w->at - n - 1);
	if (!cJSON_IsObject(c))
		return bad(w, "", "must be a map");
	if (only_keys(w, c, keys) < 0)
		return -1;
	if (!cJSON_IsString(gr) || !*gr->valuestring || strlen(gr->valuestring) > 253)
		return bad(w, "groupResource", "required: a resource[.group] such as deployments.apps, or *");
	r->group_resource = xstrdup(gr->valuestring);
	if (re) {
		int rc;
		if (!cJSON_IsString(re) || strlen(re->valuestring) > 1024)
			return bad(w, "resourceNameRegex", "must be a regular expression of at most 1024 characters");
		if ((rc = regcomp(&r->name_regex, re->valuestring, REG_EXTENDED | REG_NOSUB)) != 0) {
			char why[200];
			regerror(rc, &r->name_regex, why, sizeof why);
			return bad(w, "resourceNameRegex", "not a POSIX extended regular expression: %s", why);
		}
		r->has_regex = 1;
	}
	if (string_list(w, cJSON_GetObjectItemCaseSensitive(c, "namespaces"), "namespaces", &r->namespaces) < 0)
		return -1;
	if (sel) {
		static const char *const skeys[] = { "matchLabels", "matchExpressions", NULL };
		const cJSON *ml = cJSON_GetObjectItemCaseSensitive(sel, "matchLabels");
		const cJSON *me = cJSON_GetObjectItemCaseSensitive(sel, "matchExpressions");
		if (!cJSON_IsObject(sel))
			return bad(w, "labelSelector", "must be a map of matchLabels and matchExpressions");
		if (only_keys(w, sel, skeys) < 0)
			return -1;
		if (ml) {
			if (!cJSON_IsObject(ml))
				return bad(w, "labelSelector.matchLabels", "must be a map of label to value");
			cJSON_ArrayForEach(m, ml)
				if (!cJSON_IsString(m))
					return bad(w, "labelSelector.matchLabels", "the value of %s must be a string", m->string);
			r->match_labels = cJSON_Duplicate(ml, 1);
		}
		if (me) {
			if (!cJSON_IsArray(me) || cJSON_GetArraySize(me) > MAX_PER_RULE)
				return bad(w, "labelSelector.matchExpressions", "must be a list");
			cJSON_ArrayForEach(e, me) {
				const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "operator"));
				const cJSON *values = cJSON_GetObjectItemCaseSensitive(e, "values");
				cJSON *ignored = NULL;
				if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "key")) || !op ||
				    (strcmp(op, "In") && strcmp(op, "NotIn") && strcmp(op, "Exists") && strcmp(op, "DoesNotExist")))
					return bad(w, "labelSelector.matchExpressions", "each needs a key and an operator: In, "
						   "NotIn, Exists or DoesNotExist");
				if (string_list(w, values, "labelSelector.matchExpressions.values", &ignored) < 0)
					return -1;
				cJSON_Delete(ignored);
			}
			r->match_expressions = cJSON_Duplicate(me, 1);
		}
	}
	if ((m = cJSON_GetObjectItemCaseSensitive(c, "matches"))) {
		if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) > MAX_PER_RULE)
			return bad(w, "matches", "must be a list of {path, value}");
		cJSON_ArrayForEach(e, m) {
			const cJSON *path = cJSON_GetObjectItemCaseSensitive(e, "path");
			const cJSON *value = cJSON_GetObjectItemCaseSensitive(e, "value");
			if (!cJSON_IsString(path) || !ptr_valid(path->valuestring) || !cJSON_IsString(value))
				return bad(w, "matches", "each needs a path (a JSON Pointer such as /spec/replicas) and a "
					   "value (text)");
		}
		r->matches = cJSON_Duplicate(m, 1);
	}
	w->at[n] = '\0';
	return 0;
}

static int parse_patches(struct where *w, const cJSON *list, struct modifier_rule *r)
{
	static const char *const keys[] = { "operation", "path", "from", "value", NULL };
	const cJSON *p;
	size_t n = strlen(w->at);

	if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) > MAX_PER_RULE)
		return bad(w, "patches", "must be a list of at most %d JSON patches", MAX_PER_RULE);
	r->patches = xcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *r->patches);
	cJSON_ArrayForEach(p, list) {
		const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "operation"));
		const cJSON *path = cJSON_GetObjectItemCaseSensitive(p, "path");
		const cJSON *from = cJSON_GetObjectItemCaseSensitive(p, "from");
		const cJSON *value = cJSON_GetObjectItemCaseSensitive(p, "value");
		struct json_patch *jp = &r->patches[r->npatches];
		size_t k = 0;

		snprintf(w->at + n, sizeof w->at - n, ".patches[%zu]", r->npatches);
		if (!cJSON_IsObject(p))
			return bad(w, "", "must be a map of operation, path, from, value");
		if (only_keys(w, p, keys) < 0)
			return -1;
		while (k < sizeof op_names / sizeof *op_names && (!op || strcmp(op, op_names[k]) != 0))
			k++;
		if (k == sizeof op_names / sizeof *op_names)
			return bad(w, "operation", "must be one of add, remove, replace, copy, move, test");
		if (!cJSON_IsString(path) || !ptr_valid(path->valuestring))
			return bad(w, "path", "required: a JSON Pointer such as /spec/replicas");
		if ((k == OP_COPY || k == OP_MOVE) && (!cJSON_IsString(from) || !ptr_valid(from->valuestring)))
			return bad(w, "from", "required for %s: a JSON Pointer", op);
		if ((k == OP_ADD || k == OP_REPLACE || k == OP_TEST) && !value)
			return bad(w, "value", "required for %s", op);
		jp->op = (enum patch_op)k;
		jp->path = xstrdup(path->valuestring);
		jp->from = from ? xstrdup(cJSON_GetStringValue(from) ? from->valuestring : "") : NULL;
		jp->value = value ? patch_value(value) : NULL;
		r->npatches++;
	}
	w->at[n] = '\0';
	return 0;
}

static int parse_merges(struct where *w, const cJSON *list, struct modifier_rule *r)
{
	const cJSON *p;
	size_t n = strlen(w->at);

	if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) > MAX_PER_RULE)
		return bad(w, "mergePatches", "must be a list of at most %d {patchData}", MAX_PER_RULE);
	r->merges = xcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *r->merges);
	cJSON_ArrayForEach(p, list) {
		const cJSON *data = cJSON_GetObjectItemCaseSensitive(p, "patchData");
		char why[300];
		cJSON *doc = NULL;

		snprintf(w->at + n, sizeof w->at - n, ".mergePatches[%zu]", r->nmerges);
		if (!cJSON_IsObject(p) || cJSON_GetArraySize(p) != 1 || !cJSON_IsString(data))
			return bad(w, "patchData", "required: the patch as YAML or JSON text");
		if (yaml_json_parse(data->valuestring, strlen(data->valuestring), RESOURCE_MODIFIERS_MAX_BYTES * 4,
					   &doc, why, sizeof why) != 0)
			return bad(w, "patchData", "%s", why);
		if (!cJSON_IsObject(doc)) {
			cJSON_Delete(doc);
			return bad(w, "patchData", "must be a map (a merge patch of the object)");
		}
		r->merges[r->nmerges++] = doc;
	}
	w->at[n] = '\0';
	return 0;
}

static int parse_rewrites(struct where *w, const cJSON *list, struct modifier_rule *r)
{
	const cJSON *p;

	if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) > MAX_PER_RULE)
		return bad(w, "imageRewrites", "must be a list of at most %d {from, to}", MAX_PER_RULE);
	cJSON_ArrayForEach(p, list) {
		const char *from = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "from"));
		const char *to = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "to"));
		if (!cJSON_IsObject(p) || cJSON_GetArraySize(p) != 2 || !from || !*from || !to || strlen(from) > 255 ||
		    strlen(to) > 255)
			return bad(w, "imageRewrites", "each must be {from, to}: an image prefix such as docker.io/library/ "
				   "and what replaces it");
	}
	r->image_rewrites = cJSON_Duplicate(list, 1);
	return 0;
}

static void rule_release(struct modifier_rule *r)
{
	free(r->group_resource);
	if (r->has_regex)
		regfree(&r->name_regex);
	cJSON_Delete(r->namespaces);
	cJSON_Delete(r->match_labels);
	cJSON_Delete(r->match_expressions);
	cJSON_Delete(r->matches);
	for (size_t i = 0; i < r->npatches; i++) {
		free(r->patches[i].path);
		free(r->patches[i].from);
		cJSON_Delete(r->patches[i].value);
	}
	free(r->patches);
	for (size_t i = 0; i < r->nmerges; i++)
		cJSON_Delete(r->merges[i]);
	free(r->merges);
	cJSON_Delete(r->image_rewrites);
}

void resource_modifiers_free(struct resource_modifiers *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		rule_release(&m->rules[i]);
	free(m->rules);
	free(m);
}

size_t resource_modifiers_count(const struct resource_modifiers *m)
{
	return m ? m->n : 0;
}

struct resource_modifiers *resource_modifiers_parse(const char *text, size_t len, char *err, size_t errlen)
{
	static const char *const top_keys[] = { "version", "resourceModifierRules", NULL };
	static const char *const rule_keys[] = { "conditions", "patches", "mergePatches", "imageRewrites", NULL };
	struct resource_modifiers *m = xcalloc(1, sizeof *m);
	struct where w = { err, errlen, "" };
	const cJSON *rules, *rule, *version;
	cJSON *doc = NULL;
	char why[300];

	if (strspn(text, " \t\r\n") == len)
		return m;
	if (len > RESOURCE_MODIFIERS_MAX_BYTES) {
		err_set(err, errlen, "resource modifiers: larger than %d KiB", RESOURCE_MODIFIERS_MAX_BYTES / 1024);
		goto fail;
	}
	if (yaml_json_parse(text, len, RESOURCE_MODIFIERS_MAX_BYTES * 4, &doc, why, sizeof why) != 0) {
		err_set(err, errlen, "resource modifiers: %s", why);
		goto fail;
	}
	version = cJSON_GetObjectItemCaseSensitive(doc, "version");
	rules = cJSON_GetObjectItemCaseSensitive(doc, "resourceModifierRules");
	if (!cJSON_IsObject(doc) || only_keys(&w, doc, top_keys) < 0) {
		if (!cJSON_IsObject(doc))
			err_set(err, errlen, "resource modifiers: must be a map with version and resourceModifierRules");
		goto fail;
	}
	if (!cJSON_IsString(version) || strcmp(version->valuestring, "v1") != 0) {
		err_set(err, errlen, "version: must be v1");
		goto fail;
	}
	if (!cJSON_IsArray(rules) || cJSON_GetArraySize(rules) > RESOURCE_MODIFIERS_MAX_RULES) {
		err_set(err, errlen, "resourceModifierRules: must be a list of at most %d rules", RESOURCE_MODIFIERS_MAX_RULES);
		goto fail;
	}
	m->rules = xcalloc((size_t)cJSON_GetArraySize(rules) + 1, sizeof *m->rules);
	cJSON_ArrayForEach(rule, rules) {
		struct modifier_rule *r = &m->rules[m->n++];
		const cJSON *v;
		snprintf(w.at, sizeof w.at, "resourceModifierRules[%zu]", m->n - 1);
		if (!cJSON_IsObject(rule)) {
			bad(&w, "", "must be a map of conditions and patches");
			goto fail;
		}
		if (only_keys(&w, rule, rule_keys) < 0 ||
		    parse_conditions(&w, cJSON_GetObjectItemCaseSensitive(rule, "conditions"), r) < 0)
			goto fail;
		if ((v = cJSON_GetObjectItemCaseSensitive(rule, "patches")) && parse_patches(&w, v, r) < 0)
			goto fail;
		if ((v = cJSON_GetObjectItemCaseSensitive(rule, "mergePatches")) && parse_merges(&w, v, r) < 0)
			goto fail;
		if ((v = cJSON_GetObjectItemCaseSensitive(rule, "imageRewrites")) && parse_rewrites(&w, v, r) < 0)
			goto fail;
		if (!r->npatches && !r->nmerges && !r->image_rewrites) {
			bad(&w, "", "changes nothing: give patches, mergePatches or imageRewrites");
			goto fail;
		}
	}
	cJSON_Delete(doc);
	return m;
fail:
	cJSON_Delete(doc);
	resource_modifiers_free(m);
	return NULL;
}

/* ---- what a rule changed ---- */

static void diff_text(cJSON *change, const char *key, const cJSON *v)
{
	char *text = v ? cJSON_PrintUnformatted(v) : NULL;

	if (text && strlen(text) > RESOURCE_DIFF_VALUE_MAX)
		strcpy(text + RESOURCE_DIFF_VALUE_MAX - 3, "...");
	cJSON_AddStringToObject(change, key, text ? text : "");
	free(text);
}

static void diff_add(struct strbuf *path, const cJSON *before, const cJSON *after, cJSON *changes, int max)
{
	cJSON *c;

	if (cJSON_GetArraySize(changes) >= max)
		return;
	c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "path", path->len ? path->buf : "/");
	diff_text(c, "before", before);
	diff_text(c, "after", after);
	cJSON_AddItemToArray(changes, c);
}

static void path_cut(struct strbuf *path, size_t len)
{
	path->len = len;
	if (path->buf)
		path->buf[len] = '\0';
}

/* A reference token onto path, escaped as RFC 6901 says ('~' as ~0, '/' as ~1). */
static void path_push(struct strbuf *path, const char *tok)
{
	strbuf_addch(path, '/');
	for (; *tok; tok++) {
		if (*tok == '~')
			strbuf_addstr(path, "~0");
		else if (*tok == '/')
			strbuf_addstr(path, "~1");
		else
			strbuf_addch(path, *tok);
	}
}

static void diff_walk(struct strbuf *path, const cJSON *a, const cJSON *b, cJSON *changes, int max);

struct diff_key {
	const char *key;
	size_t place;
	const cJSON *item;
};

static int diff_key_cmp(const void *x, const void *y)
{
	const struct diff_key *p = x, *q = y;
	int c = strcmp(p->key, q->key);

	return c ? c : (p->place > q->place) - (p->place < q->place);
}

/* An object's members sorted by key, and among equal keys by place (the first is the one a
 * lookup finds). */
static struct diff_key *diff_keys(const cJSON *obj, size_t *n)
{
	const cJSON *x;
	struct diff_key *k;
	size_t i = 0;

	*n = 0;
	cJSON_ArrayForEach(x, obj)
		(*n)++;
	k = xcalloc(*n + 1, sizeof *k);
	cJSON_ArrayForEach(x, obj) {
		k[i] = (struct diff_key){ x->string ? x->string : "", i, x };
		i++;
	}
	qsort(k, *n, sizeof *k, diff_key_cmp);
	return k;
}

/* a's members in a's order, each against b's of that key, then b's keys that a lacks. The keys
 * are matched by one merge of both sorted, not looked up by name: a lookup walks the object, and
 * the objects are the tenant's (a ConfigMap of 40000 keys was seconds of a request lane). */
static void diff_objects(struct strbuf *path, const cJSON *a, const cJSON *b, cJSON *changes, int max)
{
	size_t na, nb, i = 0, j = 0, keep = path->len;
	struct diff_key *ka = diff_keys(a, &na), *kb = diff_keys(b, &nb);
	const cJSON **in_b = xcalloc(na + 1, sizeof *in_b), *x;	/* by a's place */
	char *in_a = xcalloc(nb + 1, 1);			/* by b's place */

	while (i < na && j < nb) {
		int c = strcmp(ka[i].key, kb[j].key);
		const char *key = ka[i].key;

		if (c < 0)
			i++;
		else if (c > 0)
			j++;
		else {
			for (const cJSON *first = kb[j].item; i < na && strcmp(ka[i].key, key) == 0; i++)
				in_b[ka[i].place] = first;
			for (; j < nb && strcmp(kb[j].key, key) == 0; j++)
				in_a[kb[j].place] = 1;
		}
	}
	i = 0;
	cJSON_ArrayForEach(x, a) {
		path_push(path, x->string ? x->string : "");
		diff_walk(path, x, in_b[i++], changes, max);
		path_cut(path, keep);
	}
	j = 0;
	cJSON_ArrayForEach(x, b) {
		if (in_a[j++])
			continue;
		path_push(path, x->string ? x->string : "");
		diff_add(path, NULL, x, changes, max);
		path_cut(path, keep);
	}
	free(ka);
	free(kb);
	free(in_b);
	free(in_a);
}

/* Whether two containers are equal is what walking them finds: cJSON_Compare is never asked of
 * one, since on an object it looks every key up by name (quadratic) and the walk would ask it
 * again at each level below. */
static void diff_walk(struct strbuf *path, const cJSON *a, const cJSON *b, cJSON *changes, int max)
{
	size_t keep = path->len;

	if (cJSON_GetArraySize(changes) >= max)
		return;
	if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
		diff_objects(path, a, b, changes, max);
		return;
	}
	if (cJSON_IsArray(a) && cJSON_IsArray(b) && cJSON_GetArraySize(a) == cJSON_GetArraySize(b)) {
		int i = 0;
		for (const cJSON *y = b->child, *z = a->child; z && y; z = z->next, y = y->next, i++) {
			char n[16];
			snprintf(n, sizeof n, "%d", i);
			path_push(path, n);
			diff_walk(path, z, y, changes, max);
			path_cut(path, keep);
		}
		return;
	}
	/* of different types cJSON_Compare says so at once; arrays here differ in length */
	if (a && b && !cJSON_IsArray(a) && cJSON_Compare(a, b, 1))
		return;
	diff_add(path, a, b, changes, max);
}

int resource_modifiers_diff(const cJSON *before, const cJSON *after, cJSON *changes, int max)
{
	struct strbuf path = STRBUF_INIT;
	int had = cJSON_GetArraySize(changes);

	diff_walk(&path, before, after, changes, max);
	strbuf_release(&path);
	return cJSON_GetArraySize(changes) - had;
}
