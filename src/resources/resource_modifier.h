/* Resource modifiers: a restore plan's declarative rules that change objects before they are
 * created, in the shape of Velero's (version v1), so that a team's rules carry over:
 *
 *   version: v1
 *   resourceModifierRules:
 *   - conditions:
 *       groupResource: deployments.apps      # resource[.group]; shell wildcards: "*", "*.apps"
 *       resourceNameRegex: "^web-.*$"        # POSIX extended regex (Velero: Go's RE2)
 *       namespaces: [shop, blog]             # the object's namespace in the backup
 *       labelSelector: {matchLabels: {tier: web}, matchExpressions: [{key: env, operator: In, values: [prod]}]}
 *       matches: [{path: /spec/replicas, value: "3"}]   # JSON Pointer, value as text
 *     patches:                               # JSON Patch (RFC 6902): add remove replace copy move test
 *     - {operation: replace, path: /spec/replicas, value: "0"}
 *     mergePatches:                          # JSON Merge Patch (RFC 7386), YAML or JSON text
 *     - patchData: '{"metadata": {"annotations": {"team": null}}}'
 *     imageRewrites:                         # ours: a registry prefix rewritten in every container
 *     - {from: docker.io/library/, to: registry.example.com/mirror/}
 *
 * A patch value that is a string is read as JSON when it is a number, true, false, null, an
 * object or an array (as Velero does), else kept as the string. Rules apply in order; each
 * rule's JSON patches, then merge patches, then image rewrites. strategicPatches are refused in
 * words: they need each type's schema. Pure functions on cJSON: unit-tested and fuzzed. */
#ifndef STOWAGE_RESOURCE_MODIFIER_H
#define STOWAGE_RESOURCE_MODIFIER_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define RESOURCE_MODIFIERS_MAX_BYTES (256 * 1024)
#define RESOURCE_MODIFIERS_MAX_RULES 100

struct resource_modifiers;

/* Parses a rules document (YAML or JSON). NULL with err naming the rule, the field and the
 * reason ("resourceModifierRules[1].patches[0].operation: ..."). An empty text is no rules. */
struct resource_modifiers *resource_modifiers_parse(const char *text, size_t len, char *err, size_t errlen);
void resource_modifiers_free(struct resource_modifiers *m);
size_t resource_modifiers_count(const struct resource_modifiers *m);

/* Applies every matching rule to obj, an object of group/resource from namespace ns of the
 * backup ("" when cluster-scoped). Returns how many rules applied, or -1 with err when one
 * cannot (a path that does not exist, a failed test): the object must then not be created,
 * and obj may be half-changed. */
int resource_modifiers_apply(const struct resource_modifiers *m, const char *group, const char *resource,
			     const char *ns, cJSON *obj, char *err, size_t errlen);

/* What changed from before to after, for a preview: appends {path (JSON Pointer), before, after}
 * (the values as compact JSON text cut to RESOURCE_DIFF_VALUE_MAX bytes, "" when absent) to
 * changes, at most max of them. Objects are compared key by key, arrays of the same length
 * element by element, anything else as a whole. Returns how many it appended. */
#define RESOURCE_DIFF_VALUE_MAX 300
int resource_modifiers_diff(const cJSON *before, const cJSON *after, cJSON *changes, int max);

#endif
