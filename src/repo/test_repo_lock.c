/* The local-directory object store's contract (object_store.h) and the repository locks that
 * backups and prune take through it (repo_lock.h). */
#include "object_store.h"
#include "chunk_store.h"
#include "repo_lock.h"
#include "check.h"

#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

static const uint8_t master[AEAD_KEY_LEN] = "0123456789abcdef0123456789abcdef";

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

struct listing {
	char keys[16][128];
	uint64_t sizes[16];
	int n;
};

static int collect(const char *key, const struct object_info *info, void *arg)
{
	struct listing *l = arg;

	if (l->n < 16) {
		snprintf(l->keys[l->n], sizeof l->keys[0], "%s", key);
		l->sizes[l->n++] = info->size;
	}
	return 0;
}

static int stop_at_first(const char *key, const struct object_info *info, void *arg)
{
	(void)key;
	(void)info;
	(*(int *)arg)++;
	return 7;
}

static void test_dir_store_contract(void)
{
	char tmpl[] = "/tmp/stowage-os-XXXXXX", *dir = mkdtemp(tmpl), err[256], path[512];
	struct object_store *os = object_store_dir_open(dir, err, sizeof err);
	struct strbuf out = STRBUF_INIT;
	struct object_info info;
	struct listing l = { 0 };
	int calls = 0;

	CHECK(os != NULL);
	CHECK_INTEQ(object_put(os, "repo/data/ab/abc", "hello, world", 12, err, sizeof err), 0);
	CHECK_INTEQ(object_put(os, "repo/data/cd/cde", "x", 1, err, sizeof err), 0);
	CHECK_INTEQ(object_put(os, "repo/index", "", 0, err, sizeof err), 0);
	/* ranged reads append; length 0 reads to the end */
	CHECK_INTEQ(object_get(os, "repo/data/ab/abc", 7, 5, &out, err, sizeof err), 0);
	CHECK_INTEQ(object_get(os, "repo/data/ab/abc", 5, 0, &out, err, sizeof err), 0);
	CHECK(out.len == 12 && memcmp(out.buf, "world, world", 12) == 0);
	CHECK_INTEQ(object_get(os, "repo/data/ab/none", 0, 0, &out, err, sizeof err), OBJECT_STORE_NOT_FOUND);
	CHECK_INTEQ(object_head(os, "repo/data/ab/abc", &info, err, sizeof err), 1);
	CHECK(info.size == 12 && labs((long)(time(NULL) - info.mtime)) < 60);
	CHECK_INTEQ(object_head(os, "repo/data/ab/none", &info, err, sizeof err), 0);
	/* a put replaces the whole object */
	CHECK_INTEQ(object_put(os, "repo/data/ab/abc", "bye", 3, err, sizeof err), 0);
	CHECK_INTEQ(object_head(os, "repo/data/ab/abc", &info, err, sizeof err), 1);
	CHECK(info.size == 3);
	/* listing by prefix: every key below it, none of the temporary files */
	snprintf(path, sizeof path, "%s/repo/data/ab/.tmp-left-by-a-crash", dir);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	CHECK_INTEQ(object_list(os, "repo/data/", collect, &l, err, sizeof err), 0);
	CHECK_INTEQ(l.n, 2);
	CHECK((strcmp(l.keys[0], "repo/data/ab/abc") == 0 && strcmp(l.keys[1], "repo/data/cd/cde") == 0) ||
	      (strcmp(l.keys[1], "repo/data/ab/abc") == 0 && strcmp(l.keys[0], "repo/data/cd/cde") == 0));
	CHECK_INTEQ(object_list(os, "repo/", stop_at_first, &calls, err, sizeof err), 7);
	CHECK_INTEQ(calls, 1);
	/* delete; deleting what is gone is not an error */
	CHECK_INTEQ(object_delete(os, "repo/data/cd/cde", err, sizeof err), 0);
	CHECK_INTEQ(object_head(os, "repo/data/cd/cde", &info, err, sizeof err), 0);
	CHECK_INTEQ(object_delete(os, "repo/data/cd/cde", err, sizeof err), 0);
	/* no key leaves the root */
	CHECK_INTEQ(object_put(os, "../escaped", "x", 1, err, sizeof err), -1);
	CHECK(strstr(err, "not a valid key") != NULL);
	CHECK_INTEQ(object_put(os, "repo/.hidden", "x", 1, err, sizeof err), -1);
	CHECK_INTEQ(object_put(os, "/etc/passwd", "x", 1, err, sizeof err), -1);
	CHECK_INTEQ(object_put(os, "repo//double", "x", 1, err, sizeof err), -1);
	CHECK(!object_key_valid("") && !object_key_valid("a/") && !object_key_valid("a b") && object_key_valid("a/b-c_d.e"));
	snprintf(path, sizeof path, "%s/../escaped", dir);
	CHECK(access(path, F_OK) != 0);
	strbuf_release(&out);
	object_store_close(os);
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Ages every lock object by `seconds`, as if its writer had stopped refreshing it. */
static void age_locks(const char *dir, long seconds)
{
	char path[512];
	struct listing l = { 0 };
	char err[256];
	struct object_store *os = object_store_dir_open(dir, err, sizeof err);

	object_list(os, "", collect, &l, err, sizeof err);
	for (int i = 0; i < l.n; i++) {
		if (!strstr(l.keys[i], "/locks/"))
			continue;
		struct utimbuf t = { time(NULL) - seconds, time(NULL) - seconds };
		snprintf(path, sizeof path, "%s/%s", dir, l.keys[i]);
		utime(path, &t);
	}
	object_store_close(os);
}

static void test_backups_and_prune_keep_apart(void)
{
	char tmpl[] = "/tmp/stowage-lock-XXXXXX", *dir = mkdtemp(tmpl), err[256];
	struct object_store *os = object_store_dir_open(dir, err, sizeof err);
	struct chunk_store *cs = NULL;
	struct repo_lock *b1 = NULL, *b2 = NULL, *p = NULL, *p2 = NULL;
	int running = -1;

	CHECK_INTEQ(chunk_store_open(&cs, os, "repo1", master, NULL, err, sizeof err), 0);
	/* backups share the repository */
	CHECK_INTEQ(repo_lock_acquire(cs, REPO_LOCK_BACKUP, 600, 0, &b1, NULL, err, sizeof err), 0);
	CHECK_INTEQ(repo_lock_acquire(cs, REPO_LOCK_BACKUP, 600, 0, &b2, NULL, err, sizeof err), 0);
	/* a prune is told that backups run (and must then delete nothing) */
	CHECK_INTEQ(repo_lock_acquire(cs, REPO_LOCK_PRUNE, 600, 0, &p, &running, err, sizeof err), 0);
	CHECK_INTEQ(running, 1);
	repo_lock_release(p);
	repo_lock_release(b1);
	repo_lock_release(b2);
	CHECK_INTEQ(repo_lock_acquire(cs, REPO_LOCK_PRUNE, 600, 0, &p, &running, err, sizeof err), 0);
	CHECK_INTEQ(running, 0);
	/* while the prune holds its lock a backup waits, then gives up in words */
	CHECK_INTEQ(repo_lock_acquire(cs, REPO_LOCK_BACKUP, 600, 0, &b1, NULL, err, sizeof err), REPO_LOCK_BUSY);
	CHECK(b1 == NULL);
	CHECK_STREQ(err, "repository busy: a prune has held its lock for longer than 0 s");
	/* and leaves no lock of its own behind: a second prune sees no backup */
	CHECK_INTEQ(repo_lock_acquire(cs, REPO_LOCK_PRUNE, 600, 0, &p2, &running, err, sizeof err), 0);
	CHECK_INTEQ(running, 0);
	repo_lock_release(p2);
	/* a prune lock nobody refreshed for longer than stale_after no longer holds backups back */
	age_locks(dir, 700);
	CHECK_INTEQ(repo_lock_acquire(cs, REPO_LOCK_BACKUP, 600, 0, &b1, NULL, err, sizeof err), 0);
	repo_lock_release(p);
	/* nor does a stale backup lock hold a prune back */
	age_locks(dir, 700);
	CHECK_INTEQ(repo_lock_acquire(cs, REPO_LOCK_PRUNE, 600, 0, &p, &running, err, sizeof err), 0);
	CHECK_INTEQ(running, 0);
	repo_lock_release(p);
	repo_lock_release(b1);
	chunk_store_close(cs);
	object_store_close(os);
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_a_lock_not_refreshed_in_time_is_refused(void)
{
	char tmpl[] = "/tmp/stowage-lock-XXXXXX", *dir = mkdtemp(tmpl), err[256] = "";
	struct object_store *os = object_store_dir_open(dir, err, sizeof err);
	struct chunk_store *cs = NULL;
	struct repo_lock *b = NULL;

	CHECK_INTEQ(chunk_store_open(&cs, os, "repo1", master, NULL, err, sizeof err), 0);
	CHECK_INTEQ(repo_lock_acquire(cs, REPO_LOCK_BACKUP, 1, 0, &b, NULL, err, sizeof err), 0);
	CHECK_INTEQ(repo_lock_check(b, err, sizeof err), 0);
	sleep(2);
	CHECK_INTEQ(repo_lock_check(b, err, sizeof err), -1);
	CHECK(strncmp(err, "repository lock went stale", 26) == 0);
	/* a refresh writes it again, and it holds */
	CHECK_INTEQ(repo_lock_refresh(b, err, sizeof err), 0);
	CHECK_INTEQ(repo_lock_check(b, err, sizeof err), 0);
	repo_lock_release(b);
	chunk_store_close(cs);
	object_store_close(os);
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	RUN(test_dir_store_contract);
	RUN(test_backups_and_prune_keep_apart);
	RUN(test_a_lock_not_refreshed_in_time_is_refused);
	return check_done();
}
