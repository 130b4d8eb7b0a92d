/* Backups and prune keep out of each other's way through lock objects under <repo>/locks/.
 * Backups share the repository; prune deletes unreferenced packs only when no backup runs.
 * Each side writes its own lock first and lists the others after, so with a consistent store
 * at least one of two racing processes sees the other. A lock is fresh while its object is
 * younger than stale_after seconds; a running backup rewrites its lock well before that. */
#ifndef STOWAGE_REPO_LOCK_H
#define STOWAGE_REPO_LOCK_H

#include <time.h>

#include "chunk_store.h"

enum repo_lock_kind { REPO_LOCK_BACKUP, REPO_LOCK_PRUNE };

#define REPO_LOCK_STALE_DEFAULT 3600
/* Returned by repo_lock_acquire when a backup waited too long for a prune. */
#define REPO_LOCK_BUSY (-4)

struct repo_lock;

/* A backup waits (up to wait_seconds) while a fresh prune lock exists. A prune never waits:
 * *backups_running tells it whether a fresh backup lock exists. */
int repo_lock_acquire(struct chunk_store *cs, enum repo_lock_kind kind, time_t stale_after,
		      time_t wait_seconds, struct repo_lock **out, int *backups_running,
		      char *err, size_t errlen);
/* Rewrites the lock when a quarter of stale_after has passed since the last write. */
int repo_lock_refresh(struct repo_lock *lock, char *err, size_t errlen);
/* 0 while the lock has been kept fresh; -1 (with err) once it may have been seen as stale,
 * after which a prune may have deleted what this backup relies on. */
int repo_lock_check(struct repo_lock *lock, char *err, size_t errlen);
void repo_lock_release(struct repo_lock *lock);

#endif
