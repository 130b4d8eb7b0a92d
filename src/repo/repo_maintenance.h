/* Repository upkeep: check that every snapshot's data is there (and, with read_data, that it
 * decrypts and hashes right), and prune snapshots and the packs no snapshot uses.
 *
 * The prune rule, safe while backups run:
 *  - a snapshot is deleted only when not kept and older than the grace period;
 *  - a pack with an index is deleted only when no remaining snapshot uses any chunk in it,
 *    it is older than the grace period, and no backup holds a fresh lock (a running backup
 *    may reuse any indexed chunk); its index goes first;
 *  - a pack without an index is deleted once older than the grace period, backups or not:
 *    a live backup writes the index right after the pack, so an old index-less pack was left
 *    by one that died, and no backup can reuse its chunks.
 * Backups wait while a prune holds its lock; see repo_lock.h. */
#ifndef STOWAGE_REPO_MAINTENANCE_H
#define STOWAGE_REPO_MAINTENANCE_H

#include <stdint.h>
#include <time.h>

#include "chunk_store.h"

#define PRUNE_GRACE_DEFAULT (24 * 3600)

/* Receives one line per problem found; may be NULL. */
typedef void (*repo_report_cb)(const char *line, void *arg);

/* Returns the number of problems (0 when healthy) or -1 when the check itself failed. */
long repo_check(struct chunk_store *cs, int read_data, repo_report_cb report, void *arg,
		char *err, size_t errlen);
/* The same for the snapshots named (one backup's volumes): each must exist, and every chunk
 * its files need must be listed and its pack present; with read_data every pack is read and
 * authenticated too, and a corrupt chunk is reported with the files that need it. */
long repo_check_snapshots(struct chunk_store *cs, const char *const *ids, size_t n, int read_data,
			  repo_report_cb report, void *arg, char *err, size_t errlen);

struct prune_options {
	const char *const *keep;	/* snapshot ids to keep; NULL keeps every snapshot */
	size_t nkeep;
	time_t grace;			/* seconds; objects younger are never deleted */
	time_t lock_stale;		/* 0 means REPO_LOCK_STALE_DEFAULT */
};

struct prune_result {
	uint64_t snapshots_deleted, snapshots_kept;
	uint64_t packs_deleted, packs_kept, bytes_freed;
	int backups_running;		/* unreferenced indexed packs were left for a later prune */
};

int repo_prune(struct chunk_store *cs, const struct prune_options *opt, struct prune_result *res,
	       char *err, size_t errlen);

#endif
