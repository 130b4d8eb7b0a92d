/* Opening a tenant's backup repository: its row, its secret key opened in memory only, an S3
 * client pinned to the allowed networks, and the key prefix everything goes under. The caller's
 * transaction must be bound to the organisation (db_tenant_begin). */
#ifndef STOWAGE_REPOSITORY_H
#define STOWAGE_REPOSITORY_H

#include "net_allow.h"
#include "s3_client.h"
#include "secret_store.h"

#include <libpq-fe.h>

struct repository {
	long long id;		/* the id its objects are sealed under (sql/013: seal_id, else the row's id):
				 * every key of the repository derives from it, never a database row */
	struct s3_client *s3;
	char *prefix;		/* "" or "team-a/" (always ends in '/' when not empty) */
	char *bucket;
};

int repository_open(PGconn *db, long long org_id, const struct secret_keyring *ring,
		    const struct net_allow *allow, long long repository_id, struct repository *repo,
		    char *err, size_t errlen);
void repository_close(struct repository *repo);
/* Deletes every object of backup `name` (metadata file first, so a half-deleted backup never
 * looks complete), returning the count deleted, or -1 with err. */
long repository_delete_backup(struct repository *repo, const char *name, char *err, size_t errlen);

#endif
