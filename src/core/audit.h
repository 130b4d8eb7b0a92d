/* The audit log: who did what, inside the caller's tenant transaction so that the record and
 * the change commit together or not at all. */
#ifndef STOWAGE_AUDIT_H
#define STOWAGE_AUDIT_H

#include <stddef.h>
#include <cjson/cJSON.h>
#include <libpq-fe.h>

/* action is "noun.verb" (cluster.create, member.invite); detail may be NULL. Never put a secret
 * in detail. 0 or -1 with err. */
int audit_record(PGconn *conn, const char *action, const char *target, const cJSON *detail,
		 char *err, size_t errlen);

#endif
