/* What stands in the way of a migration, found before anything is changed in either cluster. */
#ifndef STOWAGE_MIGRATE_PRECHECK_H
#define STOWAGE_MIGRATE_PRECHECK_H

#include "k8s_client.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* Appends to conflicts (an array of sentences) every reason namespace ns of src cannot move to
 * tgt: the namespace already exists there; a PersistentVolume bound to one of its claims exists
 * there under the same name; a StorageClass its claims would use there is missing.
 * storage_classes maps "<ns>/<pvc>" to the class chosen for the target. own_uid: the uid of the
 * namespace a pre-copy of the same plan created in the target (NULL: none); that namespace, and
 * only while it has that uid, is no conflict. Returns 0, or -1 with err when a cluster could not
 * be asked. */
int migrate_precheck(struct k8s_client *src, struct k8s_client *tgt, const char *ns, const char *own_uid,
		     const cJSON *storage_classes, cJSON *conflicts, char *err, size_t errlen);

#endif
