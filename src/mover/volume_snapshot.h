/* Backs a directory tree (a volume) up into a repository and restores it: files, directories,
 * symlinks, modes, owners (as root), mtimes and holes. Backups read, hash and store files on a
 * small thread pool with bounded queues; memory does not grow with the volume. A file whose
 * path, size, mtime, ctime and inode match the parent snapshot (the latest one with the same
 * tags) is not read again. */
#ifndef STOWAGE_VOLUME_SNAPSHOT_H
#define STOWAGE_VOLUME_SNAPSHOT_H

#include <stdint.h>
#include <time.h>

#include "chunk_store.h"
#include "snapshot_manifest.h"

struct volume_progress {
	uint64_t bytes_done, bytes_total, files_done, files_total;
};

typedef void (*volume_progress_cb)(const struct volume_progress *p, void *arg);

struct volume_backup_options {
	const char *source;
	const struct manifest_tag *tags;
	size_t ntags;
	unsigned threads;		/* readers; 0 means 2 */
	volume_progress_cb progress;	/* called at most once a second, and at the end */
	void *progress_arg;
	time_t lock_stale;		/* 0 means REPO_LOCK_STALE_DEFAULT */
};

struct volume_backup_result {
	char id[SNAPSHOT_ID_LEN + 1];
	char parent[SNAPSHOT_ID_LEN + 1];
	uint64_t files, dirs, symlinks, bytes;
	uint64_t files_unchanged;	/* taken from the parent without reading */
	uint64_t chunks;		/* chunk references of its files (new or already stored) */
	uint64_t bytes_read;
	struct chunk_store_stats store;
};

/* 0, -1, CHUNK_STORE_CORRUPT or REPO_LOCK_BUSY; err names the file and the reason. */
int volume_backup(struct chunk_store *cs, const struct volume_backup_options *opt,
		  struct volume_backup_result *res, char *err, size_t errlen);
struct volume_restore_options {
	const char *snapshot_id;
	const char *target;
	unsigned threads;		/* writers; 0 means 2 */
	volume_progress_cb progress;	/* at most once a second, and at the end */
	void *progress_arg;
	int mirror;			/* make target exactly the snapshot, writing only what changed:
					 * a file already there with the entry's size, mtime, mode (and
					 * owner, as root) is left as it is, and every name the snapshot
					 * lacks (or holds as another type) is removed first */
};

struct volume_restore_result {
	uint64_t files_written, bytes_written;	/* data bytes written (holes not counted) */
	uint64_t files_unchanged;		/* mirror: left as they were */
	uint64_t removed;			/* mirror: names removed (a directory counts once) */
};

/* Restores into target (created when missing; existing files of the same names are
 * replaced). Every chunk is checked against its id before it is written. res may be NULL. */
int volume_restore(struct chunk_store *cs, const struct volume_restore_options *opt,
		   struct volume_restore_result *res, char *err, size_t errlen);

#endif
