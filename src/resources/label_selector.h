/* Kubernetes label selectors (the grammar of k8s.io/apimachinery/pkg/labels.Parse): checked
 * before a plan stores one, so that the API server never refuses it at backup time.
 *
 *   selector    = requirement { "," requirement }
 *   requirement = key | "!" key | key ("=" | "==" | "!=") value
 *               | key ("in" | "notin") "(" value { "," value } ")" | key ("<" | ">") integer
 *   key         = [ DNS subdomain (<= 253) "/" ] name;  name = 1..63 of [A-Za-z0-9-_.], alphanumeric at both ends
 *   value       = "" or a name
 * Blanks between tokens are allowed, as the API server allows them. */
#ifndef STOWAGE_LABEL_SELECTOR_H
#define STOWAGE_LABEL_SELECTOR_H

#include <stddef.h>

/* 0 when sel is a valid selector (empty is: it selects everything), and *canonical (when not
 * NULL) is the same selector without blanks, to store and to send; the caller frees it.
 * -1 otherwise: err says which part is wrong and why, in words. */
int label_selector_check(const char *sel, char **canonical, char *err, size_t errlen);

/* 1 when an object's metadata.labels (an object of strings, or NULL) satisfy sel, 0 when not,
 * -1 when sel is not a valid selector. The empty selector matches everything. */
#include <cjson/cJSON.h>
int label_selector_match(const char *sel, const cJSON *labels);

#endif
