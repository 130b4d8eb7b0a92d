#include "repo_lock.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

struct repo_lock {
	struct chunk_store *cs;
	char *key;
	enum repo_lock_kind kind;
	time_t stale_after, written;
};

static const char *const kind_names[] = { "backup", "prune" };

static int lock_write(struct repo_lock *l, char *err, size_t errlen)
{
	char body[128];
	time_t now = time(NULL);

	snprintf(body, sizeof body, "{\"kind\":\"%s\",\"pid\":%ld,\"time\":%lld}\n",
		 kind_names[l->kind], (long)getpid(), (long long)now);
	if (object_put(chunk_store_objects(l->cs), l->key, body, strlen(body), err, errlen) < 0)
		return -1;
	l->written = now;
	return 0;
}

struct lock_scan {
	const char *own;
	enum repo_lock_kind want;
	time_t stale_after, now;
	int found;
};

static int lock_scan_one(const char *key, const struct object_info *info, void *arg)
{
	struct lock_scan *ls = arg;
	const char *base = strrchr(key, '/') + 1;
	size_t n = strlen(kind_names[ls->want]);

	if (strcmp(key, ls->own) == 0 || strncmp(base, kind_names[ls->want], n) != 0 || base[n] != '-')
		return 0;
	if (ls->now - info->mtime < ls->stale_after)
		ls->found = 1;
	return 0;
}

static int lock_others(struct repo_lock *l, enum repo_lock_kind want, int *found, char *err, size_t errlen)
{
	struct strbuf prefix = STRBUF_INIT;
	struct lock_scan ls = { l->key, want, l->stale_after, time(NULL), 0 };
	int rc;

	chunk_store_key(l->cs, &prefix, "locks/");
	rc = object_list(chunk_store_objects(l->cs), prefix.buf, lock_scan_one, &ls, err, errlen);
	strbuf_release(&prefix);
	*found = ls.found;
	return rc;
}

int repo_lock_acquire(struct chunk_store *cs, enum repo_lock_kind kind, time_t stale_after,
		      time_t wait_seconds, struct repo_lock **out, int *backups_running,
		      char *err, size_t errlen)
{
	struct repo_lock *l = xcalloc(1, sizeof *l);
	struct strbuf key = STRBUF_INIT, suffix = STRBUF_INIT;
	time_t deadline = time(NULL) + wait_seconds;
	uint8_t r[8];
	int found;

	*out = NULL;
	RAND_bytes(r, sizeof r);
	strbuf_addf(&suffix, "locks/%s-%02x%02x%02x%02x%02x%02x%02x%02x", kind_names[kind],
		    r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
	chunk_store_key(cs, &key, suffix.buf);
	strbuf_release(&suffix);
	l->cs = cs;
	l->key = strbuf_take(&key);
	l->kind = kind;
	l->stale_after = stale_after;
	for (;;) {
		if (lock_write(l, err, errlen) < 0)
			goto fail;
		if (lock_others(l, kind == REPO_LOCK_BACKUP ? REPO_LOCK_PRUNE : REPO_LOCK_BACKUP,
				&found, err, errlen) < 0)
			goto fail;
		if (kind == REPO_LOCK_PRUNE) {
			*backups_running = found;
			break;
		}
		if (!found)
			break;
		/* a prune runs: step back so it can finish, and try again */
		object_delete(chunk_store_objects(cs), l->key, err, errlen);
		if (time(NULL) >= deadline) {
			snprintf(err, errlen, "repository busy: a prune has held its lock for longer than %lld s",
				 (long long)wait_seconds);
			free(l->key);
			free(l);
			return REPO_LOCK_BUSY;
		}
		sleep(2);
	}
	*out = l;
	return 0;
fail:
	{
		char ignored[256];
		object_delete(chunk_store_objects(cs), l->key, ignored, sizeof ignored);
	}
	free(l->key);
	free(l);
	return -1;
}

int repo_lock_refresh(struct repo_lock *l, char *err, size_t errlen)
{
	if (time(NULL) - l->written < l->stale_after / 4)
		return 0;
	return lock_write(l, err, errlen);
}

int repo_lock_check(struct repo_lock *l, char *err, size_t errlen)
{
	if (time(NULL) - l->written < l->stale_after)
		return 0;
	snprintf(err, errlen, "repository lock went stale (not refreshed for %lld s): refusing to write a snapshot that a prune may have broken",
		 (long long)(time(NULL) - l->written));
	return -1;
}

void repo_lock_release(struct repo_lock *l)
{
	char err[256];

	if (!l)
		return;
	object_delete(chunk_store_objects(l->cs), l->key, err, sizeof err);
	free(l->key);
	free(l);
}
