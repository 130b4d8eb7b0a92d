#include "volume_snapshot.h"
#include "repo_maintenance.h"
#include "snapshot_store.h"
#include "check.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#define MIB (1024u * 1024)
#define BIG_SIZE (256u * MIB)

static const uint8_t master[AEAD_KEY_LEN] = "fedcba9876543210fedcba9876543210";
static char base[64], src[128], repo[128];

static uint64_t rng = 88172645463325252ull;
static unsigned nthreads = 2;	/* what the runner passes; tests try others */

static void random_fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		p[i] = (uint8_t)(rng >> 32);
	}
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		printf("# cannot write %s\n", path);
		exit(2);
	}
	fchmod(fd, mode);
	close(fd);
}

static void set_mtime(const char *path, time_t sec, long nsec)
{
	struct timespec t[2] = { { sec, nsec }, { sec, nsec } };

	utimensat(AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW);
}

static void pwrite_random(const char *path, off_t off, size_t len)
{
	uint8_t *buf = malloc(len);
	int fd = open(path, O_WRONLY);

	random_fill(buf, len);
	if (fd < 0 || pwrite(fd, buf, len, off) != (ssize_t)len)
		exit(2);
	close(fd);
	free(buf);
}

/* A volume with every kind of thing a restore must bring back exactly. */
static void make_tree(void)
{
	char path[512];
	uint8_t buf[4096];
	static const char *const odd[] = { "with space", "\xc3\xbcnic\xc3\xb8" "d\xc3\xa9-\xe6\x96\x87\xe4\xbb\xb6",
					   "new\nline", "tab\tand\\backslash", "-leading-dash", "a.b" };
	int fd;

	mkdir(src, 0755);
	for (int d = 0; d < 20; d++) {
		snprintf(path, sizeof path, "%s/dir%02d", src, d);
		mkdir(path, 0755);
		for (int f = 0; f < 100; f++) {
			size_t len = (size_t)((d * 100 + f) * 37 % 4096);
			snprintf(path, sizeof path, "%s/dir%02d/file%03d", src, d, f);
			random_fill(buf, len);
			write_file(path, buf, len, f % 3 ? 0644 : 0600);
			set_mtime(path, 1600000000 + d * 100 + f, 123456789);
		}
		snprintf(path, sizeof path, "%s/dir%02d", src, d);
		set_mtime(path, 1600000000, 5);
	}
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", src, odd[i]);
		write_file(path, odd[i], strlen(odd[i]), 0640);
	}
	snprintf(path, sizeof path, "%s/a", src);
	mkdir(path, 0700);
	snprintf(path, sizeof path, "%s/a/exec", src);
	write_file(path, "#!/bin/sh\n", 10, 0755);
	snprintf(path, sizeof path, "%s/a/link-rel", src);
	symlink("exec", path);
	snprintf(path, sizeof path, "%s/a/link-abs", src);
	symlink("/etc/hostname", path);
	snprintf(path, sizeof path, "%s/a/link-dangling", src);
	symlink("../nowhere/\xe2\x98\x83", path);
	set_mtime(path, 1500000000, 42);
	snprintf(path, sizeof path, "%s/a", src);
	set_mtime(path, 1500000001, 0);
	snprintf(path, sizeof path, "%s/readonly", src);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/readonly/ro-file", src);
	write_file(path, "read only", 9, 0400);
	if (geteuid() == 0)
		chown(path, 1234, 5678);
	snprintf(path, sizeof path, "%s/readonly", src);
	chmod(path, 0555);
	snprintf(path, sizeof path, "%s/empty", src);
	write_file(path, "", 0, 0644);

	/* 256 MiB with a hole: 24 MiB of data, a 224 MiB hole, 8 MiB of data */
	snprintf(path, sizeof path, "%s/big.img", src);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ftruncate(fd, BIG_SIZE);
	close(fd);
	pwrite_random(path, 0, 24 * MIB);
	pwrite_random(path, BIG_SIZE - 8 * MIB, 8 * MIB);
	set_mtime(src, 1700000000, 999);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One line per entry: path, type, mode, owner, mtime, size, and a SHA-256 of the content or
 * the link target. Two trees are equal when their walks are. */
static void checksum_walk(const char *root, const char *rel, struct strbuf *out)
{
	char path[4096], **names = NULL;
	size_t n = 0, cap = 0;
	struct stat st;
	DIR *d;
	struct dirent *de;

	snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
	if (lstat(path, &st) < 0) {
		strbuf_addf(out, "%s: missing\n", rel);
		return;
	}
	strbuf_addf(out, "[%s] %o %u:%u %lld.%09ld", rel, (unsigned)st.st_mode, st.st_uid, st.st_gid,
		    (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	if (S_ISLNK(st.st_mode)) {
		char target[4096];
		ssize_t len = readlink(path, target, sizeof target - 1);
		target[len > 0 ? len : 0] = '\0';
		strbuf_addf(out, " -> %s\n", target);
		return;
	}
	if (S_ISREG(st.st_mode)) {
		uint8_t digest[EVP_MAX_MD_SIZE], *buf = malloc(MIB);
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		int fd = open(path, O_RDONLY);
		ssize_t r;

		EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
		while (fd >= 0 && (r = read(fd, buf, MIB)) > 0)
			EVP_DigestUpdate(ctx, buf, (size_t)r);
		EVP_DigestFinal_ex(ctx, digest, NULL);
		EVP_MD_CTX_free(ctx);
		close(fd);
		free(buf);
		strbuf_addf(out, " %lld ", (long long)st.st_size);
		for (int i = 0; i < 8; i++)
			strbuf_addf(out, "%02x", digest[i]);
		strbuf_addch(out, '\n');
		return;
	}
	strbuf_addch(out, '\n');
	d = opendir(path);
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = realloc(names, cap * sizeof *names);
		}
		names[n++] = strdup(de->d_name);
	}
	if (d)
		closedir(d);
	if (n)
		qsort(names, n, sizeof *names, name_cmp);
	for (size_t i = 0; i < n; i++) {
		char sub[4096];
		snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", names[i]);
		checksum_walk(root, sub, out);
		free(names[i]);
	}
	free(names);
}

static int trees_equal(const char *a, const char *b)
{
	struct strbuf x = STRBUF_INIT, y = STRBUF_INIT;
	int same;

	checksum_walk(a, "", &x);
	checksum_walk(b, "", &y);
	same = x.len == y.len && memcmp(x.buf, y.buf, x.len) == 0;
	if (!same) {
		/* print the first differing line */
		size_t i = 0, start = 0;
		while (i < x.len && i < y.len && x.buf[i] == y.buf[i])
			if (x.buf[i++] == '\n')
				start = i;
		printf("# trees differ at:\n#  %.200s\n#  %.200s\n", x.buf + start, y.buf + start);
	}
	strbuf_release(&x);
	strbuf_release(&y);
	return same;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

static void rm_rf(const char *path)
{
	char ro[512];

	/* make read-only directories writable again, so they can be emptied */
	snprintf(ro, sizeof ro, "chmod -R u+w '%s' 2>/dev/null", path);
	if (system(ro) != 0)
		printf("# chmod failed\n");
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct chunk_store *open_repo(struct object_store **os, const char *repo_id,
				     const struct chunk_store_options *opt)
{
	char err[512] = "";
	struct chunk_store *cs = NULL;

	*os = object_store_dir_open(repo, err, sizeof err);
	if (!*os || chunk_store_open(&cs, *os, repo_id, master, opt, err, sizeof err) < 0)
		printf("# open repo: %s\n", err);
	return cs;
}

static void close_repo(struct object_store *os, struct chunk_store *cs)
{
	chunk_store_close(cs);
	object_store_close(os);
}

static const struct manifest_tag tags[] = { { "volume", "ns/data" } };

struct progress_seen {
	struct volume_progress last;
	int calls;
};

static void on_progress(const struct volume_progress *p, void *arg)
{
	struct progress_seen *ps = arg;

	ps->last = *p;
	ps->calls++;
}

static int backup(const char *repo_id, const struct chunk_store_options *opt, struct volume_backup_result *res,
		  char *err, size_t errlen)
{
	struct object_store *os;
	struct chunk_store *cs = open_repo(&os, repo_id, opt);
	struct progress_seen ps = { { 0, 0, 0, 0 }, 0 };
	struct volume_backup_options bo = { .source = src, .tags = tags, .ntags = 1, .threads = nthreads,
					    .progress = on_progress, .progress_arg = &ps };
	int rc;

	if (!cs)
		return -1;
	rc = volume_backup(cs, &bo, res, err, errlen);
	if (rc == 0) {
		CHECK(ps.calls >= 2);
		CHECK_INTEQ(ps.last.files_done, ps.last.files_total);
		CHECK_INTEQ(ps.last.bytes_done, ps.last.bytes_total);
	}
	close_repo(os, cs);
	return rc;
}

static int restore_into(const char *repo_id, const char *id, const char *target, int mirror,
			struct volume_restore_result *res, char *err, size_t errlen)
{
	struct object_store *os;
	struct chunk_store *cs = open_repo(&os, repo_id, NULL);
	struct progress_seen ps = { { 0, 0, 0, 0 }, 0 };
	struct volume_restore_options ro = { .snapshot_id = id, .target = target, .threads = nthreads,
					     .progress = on_progress, .progress_arg = &ps, .mirror = mirror };
	int rc = cs ? volume_restore(cs, &ro, res, err, errlen) : -1;

	if (rc == 0) {
		CHECK(ps.calls >= 1);
		CHECK_INTEQ(ps.last.files_done, ps.last.files_total);
		CHECK_INTEQ(ps.last.bytes_done, ps.last.bytes_total);
	}
	close_repo(os, cs);
	return rc;
}

static int restore(const char *repo_id, const char *id, const char *target, char *err, size_t errlen)
{
	return restore_into(repo_id, id, target, 0, NULL, err, errlen);
}

static void print_problem(const char *line, void *arg)
{
	(void)arg;
	printf("# check: %s\n", line);
}

static long check_repo(const char *repo_id, int read_data)
{
	struct object_store *os;
	struct chunk_store *cs = open_repo(&os, repo_id, NULL);
	char err[512];
	long problems = cs ? repo_check(cs, read_data, print_problem, NULL, err, sizeof err) : -1;

	close_repo(os, cs);
	return problems;
}

/* One backup's snapshots only (stowage-mover check --snapshots), as a verify job asks. */
static long check_snapshots(const char *repo_id, const char *const *ids, size_t n, int read_data)
{
	struct object_store *os;
	struct chunk_store *cs = open_repo(&os, repo_id, NULL);
	char err[512];
	long problems = cs ? repo_check_snapshots(cs, ids, n, read_data, print_problem, NULL, err, sizeof err) : -1;

	close_repo(os, cs);
	return problems;
}

static int count_cb(const char *key, const struct object_info *info, void *arg)
{
	(void)key;
	(void)info;
	(*(int *)arg)++;
	return 0;
}

static int count_objects(const char *prefix)
{
	char err[256];
	int n = 0;
	struct object_store *os = object_store_dir_open(repo, err, sizeof err);

	object_list(os, prefix, count_cb, &n, err, sizeof err);
	object_store_close(os);
	return n;
}

static char first_id[SNAPSHOT_ID_LEN + 1], latest_id[SNAPSHOT_ID_LEN + 1];
static uint64_t first_written;

static void test_round_trip_of_a_whole_volume(void)
{
	struct volume_backup_result res;
	char err[1024] = "", target[256], path[512];
	struct stat st;

	CHECK_INTEQ(backup("vol", NULL, &res, err, sizeof err), 0);
	printf("# first backup: %llu files, %llu bytes, %llu read, %llu written in %llu packs\n",
	       (unsigned long long)res.files, (unsigned long long)res.bytes, (unsigned long long)res.bytes_read,
	       (unsigned long long)res.store.bytes_written, (unsigned long long)res.store.packs_written);
	CHECK_INTEQ(res.files, 2000 + 6 + 1 + 1 + 1 + 1);
	CHECK_INTEQ(res.symlinks, 3);
	CHECK(snapshot_id_valid(res.id));
	CHECK_STREQ(res.parent, "");
	/* the hole was neither read nor stored */
	CHECK(res.bytes_read < 40 * MIB);
	strcpy(first_id, res.id);
	strcpy(latest_id, res.id);
	first_written = res.store.bytes_written;

	snprintf(target, sizeof target, "%s/restore1", base);
	CHECK_INTEQ(restore("vol", res.id, target, err, sizeof err), 0);
	CHECK_STREQ(err, "");
	CHECK(trees_equal(src, target));
	snprintf(path, sizeof path, "%s/big.img", target);
	CHECK_INTEQ(stat(path, &st), 0);
	CHECK_INTEQ(st.st_size, BIG_SIZE);
	CHECK((uint64_t)st.st_blocks * 512 < 64 * MIB);	/* still sparse */
	rm_rf(target);
	CHECK_INTEQ(check_repo("vol", 1), 0);
}

static void test_second_backup_of_unchanged_tree_writes_almost_nothing(void)
{
	struct volume_backup_result res;
	char err[1024] = "";

	CHECK_INTEQ(backup("vol", NULL, &res, err, sizeof err), 0);
	printf("# unchanged: %llu of %llu files reused, %llu bytes read, %llu written\n",
	       (unsigned long long)res.files_unchanged, (unsigned long long)res.files,
	       (unsigned long long)res.bytes_read, (unsigned long long)res.store.bytes_written);
	CHECK_STREQ(res.parent, latest_id);
	CHECK_INTEQ(res.files_unchanged, res.files);
	CHECK_INTEQ(res.bytes_read, 0);
	CHECK(res.store.bytes_written * 100 < first_written);
	strcpy(latest_id, res.id);
}

static void test_one_mib_changed_writes_few_chunks(void)
{
	struct volume_backup_result res;
	char err[1024] = "", path[512], target[256];

	snprintf(path, sizeof path, "%s/big.img", src);
	pwrite_random(path, 12 * MIB, MIB);
	CHECK_INTEQ(backup("vol", NULL, &res, err, sizeof err), 0);
	printf("# 1 MiB changed: %llu new chunks, %llu new bytes, %llu files read\n",
	       (unsigned long long)res.store.chunks_new, (unsigned long long)res.store.bytes_new,
	       (unsigned long long)(res.files - res.files_unchanged));
	CHECK_INTEQ(res.files - res.files_unchanged, 1);
	CHECK(res.store.chunks_new <= 6);	/* data chunks around the edit, and the tree's */
	CHECK(res.store.bytes_new < 10 * MIB);
	strcpy(latest_id, res.id);
	snprintf(target, sizeof target, "%s/restore2", base);
	CHECK_INTEQ(restore("vol", res.id, target, err, sizeof err), 0);
	CHECK(trees_equal(src, target));
	rm_rf(target);
}

/* Same size, same mtime (put back after the write), new content: only the ctime tells, and
 * the file must be read again rather than taken from the parent. */
static void test_new_ctime_alone_means_read_again(void)
{
	struct volume_backup_result res;
	char err[1024] = "", path[512], target[256];
	struct stat before, after;

	snprintf(path, sizeof path, "%s/dir05/file010", src);
	CHECK_INTEQ(stat(path, &before), 0);
	usleep(20000);	/* past the file system's clock tick */
	pwrite_random(path, 0, (size_t)before.st_size);
	set_mtime(path, before.st_mtim.tv_sec, before.st_mtim.tv_nsec);
	CHECK_INTEQ(stat(path, &after), 0);
	CHECK_INTEQ(after.st_size, before.st_size);
	CHECK(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
	CHECK(after.st_ctim.tv_sec != before.st_ctim.tv_sec || after.st_ctim.tv_nsec != before.st_ctim.tv_nsec);
	sleep(1);	/* snapshot ids order by the second: the parent must be the latest */
	CHECK_INTEQ(backup("vol", NULL, &res, err, sizeof err), 0);
	CHECK_STREQ(res.parent, latest_id);
	CHECK_INTEQ(res.files - res.files_unchanged, 1);
	CHECK_INTEQ(res.bytes_read, before.st_size);
	strcpy(latest_id, res.id);
	snprintf(target, sizeof target, "%s/restore3", base);
	CHECK_INTEQ(restore("vol", res.id, target, err, sizeof err), 0);
	CHECK(trees_equal(src, target));
	rm_rf(target);
}

/* A large file's chunks are stored by every thread and files are restored several at a time:
 * whatever the thread count, the same snapshot and the same tree (modes, times, symlinks,
 * holes) come back. */
static void test_any_thread_count_gives_the_same_tree(void)
{
	static const unsigned counts[] = { 1, 4, 2 };
	struct volume_backup_result res;
	char err[1024] = "", path[512], target[256];
	struct stat st;

	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		nthreads = counts[i];
		snprintf(path, sizeof path, "%s/big.img", src);
		set_mtime(path, 1700000000 + (time_t)i, 0);	/* read it again: 32 MiB over several batches */
		sleep(1);
		CHECK_INTEQ(backup("vol", NULL, &res, err, sizeof err), 0);
		CHECK_STREQ(err, "");
		CHECK_STREQ(res.parent, latest_id);
		CHECK_INTEQ(res.files - res.files_unchanged, 1);
		CHECK_INTEQ(res.bytes_read, 32 * MIB);
		CHECK(res.store.chunks_new <= 2);	/* the same chunks: only the tree is new */
		strcpy(latest_id, res.id);
		snprintf(target, sizeof target, "%s/restore-threads", base);
		CHECK_INTEQ(restore("vol", res.id, target, err, sizeof err), 0);
		CHECK(trees_equal(src, target));
		snprintf(path, sizeof path, "%s/big.img", target);
		CHECK_INTEQ(stat(path, &st), 0);
		CHECK((uint64_t)st.st_blocks * 512 < 64 * MIB);	/* still sparse */
		rm_rf(target);
	}
	nthreads = 2;
}

static int list_ids_cb(const char *id, const struct object_info *info, void *arg)
{
	(void)id;
	(void)info;
	(*(int *)arg)++;
	return 0;
}

static int count_snapshots(const char *repo_id)
{
	struct object_store *os;
	struct chunk_store *cs = open_repo(&os, repo_id, NULL);
	char err[256];
	int n = 0;

	snapshot_list(cs, list_ids_cb, &n, err, sizeof err);
	close_repo(os, cs);
	return n;
}

static void test_interrupted_backup_then_prune(void)
{
	struct chunk_store_options hook = { .pack_target = 4 * MIB, .stop_after_packs = 2 };
	struct volume_backup_result res;
	char err[1024] = "", path[512], target[256];
	struct object_store *os;
	struct chunk_store *cs;
	struct prune_result pr;
	const char *keep[] = { latest_id };
	struct prune_options po = { .keep = keep, .nkeep = 1, .grace = 0 };
	int snapshots = count_snapshots("vol"), packs, indexes;

	snprintf(path, sizeof path, "%s/new-data", src);
	write_file(path, "", 0, 0644);
	pwrite_random(path, 0, 20 * MIB);
	CHECK(backup("vol", &hook, &res, err, sizeof err) < 0);
	CHECK(strstr(err, "stop_after_packs") != NULL);
	CHECK_INTEQ(count_snapshots("vol"), snapshots);		/* no manifest was written */
	packs = count_objects("vol/data/packs/");
	indexes = count_objects("vol/data/index/");
	CHECK(packs > indexes);		/* packs written after the "crash" have no index */

	/* a grace period protects the orphan */
	po.grace = 3600;
	cs = open_repo(&os, "vol", NULL);
	CHECK_INTEQ(repo_prune(cs, &po, &pr, err, sizeof err), 0);
	close_repo(os, cs);
	CHECK_INTEQ(pr.packs_deleted, 0);
	CHECK_INTEQ(pr.snapshots_deleted, 0);

	CHECK_INTEQ(backup("vol", NULL, &res, err, sizeof err), 0);
	strcpy(latest_id, res.id);
	CHECK_INTEQ(count_snapshots("vol"), snapshots + 1);

	/* grace 0: the orphan goes, and so do the first snapshots and packs only they used */
	po.grace = 0;
	cs = open_repo(&os, "vol", NULL);
	CHECK_INTEQ(repo_prune(cs, &po, &pr, err, sizeof err), 0);
	close_repo(os, cs);
	printf("# prune: %llu snapshots and %llu packs deleted, %llu packs kept\n",
	       (unsigned long long)pr.snapshots_deleted, (unsigned long long)pr.packs_deleted,
	       (unsigned long long)pr.packs_kept);
	CHECK_INTEQ(pr.snapshots_deleted, snapshots);
	CHECK(pr.packs_deleted >= 1);	/* the orphan; packs still partly used stay */
	CHECK_INTEQ(count_snapshots("vol"), 1);
	CHECK_INTEQ(count_objects("vol/data/packs/"), count_objects("vol/data/index/"));
	CHECK_INTEQ(count_objects("vol/locks/"), 0);
	CHECK_INTEQ(check_repo("vol", 1), 0);
	snprintf(target, sizeof target, "%s/restore3", base);
	CHECK_INTEQ(restore("vol", latest_id, target, err, sizeof err), 0);
	CHECK(trees_equal(src, target));
	rm_rf(target);
}

/* The path of the pack that holds the first chunk of a file in a snapshot. */
static void data_pack_of_file(const char *repo_id, const char *id, const char *file, char *path, size_t len)
{
	struct object_store *os;
	struct chunk_store *cs = open_repo(&os, repo_id, NULL);
	struct manifest_header h;
	struct manifest_entry e;
	struct tree_reader *tr;
	char err[512], hex[CHUNK_ID_HEX] = "";

	CHECK_INTEQ(snapshot_read(cs, id, &h, err, sizeof err), 0);
	tr = tree_reader_new(cs, &h);
	while (tree_reader_next(tr, &e, err, sizeof err) == 1) {
		if (strcmp(e.path, file) == 0 && e.nchunks)
			chunk_store_pack_hex(cs, (size_t)chunk_store_pack_of(cs, e.chunks[0].id), hex);
		manifest_entry_free(&e);
	}
	tree_reader_free(tr);
	manifest_header_free(&h);
	close_repo(os, cs);
	snprintf(path, len, "%s/%s/data/packs/%.2s/%s", repo, repo_id, hex, hex);
}

static void test_tampered_and_missing_data_name_the_file(void)
{
	struct volume_backup_result res;
	char err[1024] = "", path[600], target[256], saved_src[128];
	int fd;
	uint8_t b;

	/* a one-file volume in its own repository: its only pack holds that file */
	strcpy(saved_src, src);
	snprintf(src, sizeof src, "%s/small", base);
	mkdir(src, 0755);
	snprintf(path, sizeof path, "%s/precious file\n.db", src);
	write_file(path, "important bytes", 15, 0644);
	CHECK_INTEQ(backup("small", NULL, &res, err, sizeof err), 0);
	strcpy(src, saved_src);

	data_pack_of_file("small", res.id, "precious file\n.db", path, sizeof path);
	fd = open(path, O_RDWR);
	CHECK(pread(fd, &b, 1, 30) == 1);
	b ^= 1;
	CHECK(pwrite(fd, &b, 1, 30) == 1);
	close(fd);

	snprintf(target, sizeof target, "%s/restore-bad", base);
	CHECK_INTEQ(restore("small", res.id, target, err, sizeof err), CHUNK_STORE_CORRUPT);
	printf("# %s\n", err);
	CHECK(strncmp(err, "restore precious file\\n.db: chunk ", 34) == 0);
	CHECK(strstr(err, "authentication failed") != NULL);
	CHECK_INTEQ(check_repo("small", 0), 0);	/* the pack is there... */
	CHECK_INTEQ(check_repo("small", 1), 2);	/* ...but its chunk is bad: the pack and the file */
	{
		const char *mine[] = { res.id }, *unknown[] = { "20990101T000000Z-0123456789abcdef" }, *bad[] = { "../x" };
		CHECK_INTEQ(check_snapshots("small", mine, 1, 0), 0);
		CHECK_INTEQ(check_snapshots("small", mine, 1, 1), 2);	/* the same two lines for its snapshot */
		CHECK_INTEQ(check_snapshots("small", unknown, 1, 0), 1);	/* a snapshot that is not there */
		CHECK_INTEQ(check_snapshots("small", bad, 1, 0), 1);	/* not an id: refused, never a key */
	}

	unlink(path);
	CHECK_INTEQ(restore("small", res.id, target, err, sizeof err), CHUNK_STORE_CORRUPT);
	printf("# %s\n", err);
	CHECK(strstr(err, "precious file\\n.db") != NULL);
	CHECK(strstr(err, "missing") != NULL);
	CHECK(check_repo("small", 0) > 0);
	rm_rf(target);
}

/* A pack cut short after the backup (a hostile or broken bucket): the restore, whose reader
 * fetches windows of several chunks, fails naming the file and the truncation, and writes
 * nothing beside its target. */
static void test_truncated_pack_fails_in_words(void)
{
	struct volume_backup_result res;
	char err[1024] = "", path[600], target[256], saved_src[128];
	struct stat st;
	DIR *d;
	struct dirent *de;
	int entries = 0;

	strcpy(saved_src, src);
	snprintf(src, sizeof src, "%s/cut", base);
	mkdir(src, 0755);
	snprintf(path, sizeof path, "%s/several chunks", src);
	write_file(path, "", 0, 0644);
	pwrite_random(path, 0, 12 * MIB);
	CHECK_INTEQ(backup("cut", NULL, &res, err, sizeof err), 0);
	strcpy(src, saved_src);

	data_pack_of_file("cut", res.id, "several chunks", path, sizeof path);
	CHECK_INTEQ(stat(path, &st), 0);
	CHECK_INTEQ(truncate(path, st.st_size / 2), 0);
	snprintf(target, sizeof target, "%s/cut-restore/inside", base);
	snprintf(path, sizeof path, "%s/cut-restore", base);
	CHECK_INTEQ(mkdir(path, 0755), 0);
	CHECK_INTEQ(restore("cut", res.id, target, err, sizeof err), CHUNK_STORE_CORRUPT);
	printf("# %s\n", err);
	CHECK(strncmp(err, "restore several chunks: chunk ", 30) == 0);
	CHECK(strstr(err, "is truncated") != NULL);
	d = opendir(path);
	while (d && (de = readdir(d)))
		entries += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	if (d)
		closedir(d);
	CHECK_INTEQ(entries, 1);	/* the target alone */
	rm_rf(path);
}

/* A migration's cutover: the target already holds an earlier copy (and some strays, one a
 * symlink out of the volume where the snapshot has a directory); --mirror makes it the
 * snapshot exactly, writing only the files that changed and never following the symlink. */
static void test_mirror_writes_only_what_changed(void)
{
	struct volume_backup_result b;
	struct volume_restore_result r = { 0 };
	char err[1024] = "", target[256], path[600], outside[256];
	struct stat st;

	snprintf(target, sizeof target, "%s/mirror", base);
	CHECK_INTEQ(restore_into("vol", latest_id, target, 0, &r, err, sizeof err), 0);
	CHECK_INTEQ(r.files_unchanged, 0);
	uint64_t full = r.bytes_written;

	/* the source changes: one file rewritten, one removed, one added */
	snprintf(path, sizeof path, "%s/dir00/file001", src);
	write_file(path, "changed", 7, 0644);
	snprintf(path, sizeof path, "%s/dir01/file002", src);
	unlink(path);
	snprintf(path, sizeof path, "%s/dir02/added", src);
	write_file(path, "added", 5, 0600);
	CHECK_INTEQ(backup("vol", NULL, &b, err, sizeof err), 0);

	/* strays in the target, and dir04 replaced by a symlink to a directory outside it */
	snprintf(path, sizeof path, "%s/stray", target);
	write_file(path, "stray", 5, 0644);
	snprintf(path, sizeof path, "%s/straydir", target);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/straydir/inner", target);
	write_file(path, "x", 1, 0644);
	snprintf(outside, sizeof outside, "%s/outside", base);
	mkdir(outside, 0755);
	snprintf(path, sizeof path, "%s/keep", outside);
	write_file(path, "keep", 4, 0644);
	snprintf(path, sizeof path, "%s/dir04", target);
	rm_rf(path);
	CHECK_INTEQ(symlink(outside, path), 0);

	CHECK_INTEQ(restore_into("vol", b.id, target, 1, &r, err, sizeof err), 0);
	printf("# mirror: %llu files written (%llu bytes, the full restore wrote %llu), %llu unchanged, %llu removed\n",
	       (unsigned long long)r.files_written, (unsigned long long)r.bytes_written, (unsigned long long)full,
	       (unsigned long long)r.files_unchanged, (unsigned long long)r.removed);
	CHECK_STREQ(err, "");
	CHECK(trees_equal(src, target));
	CHECK_INTEQ(r.files_written, 2 + 100);	/* changed, added, and dir04's files again */
	CHECK_INTEQ(r.files_unchanged, b.files - 102);
	CHECK_INTEQ(r.removed, 4);		/* the removed file, stray, straydir, the symlink */
	CHECK(r.bytes_written * 10 < full);
	strcpy(latest_id, b.id);
	snprintf(path, sizeof path, "%s/keep", outside);
	CHECK_INTEQ(stat(path, &st), 0);	/* the symlink was removed, not followed */
	rm_rf(target);
}

static void test_manifest_is_bound_to_its_id(void)
{
	struct object_store *os;
	struct chunk_store *cs = open_repo(&os, "vol", NULL);
	struct manifest_header h;
	char err[512], from[600], to[600], fake[SNAPSHOT_ID_LEN + 1];

	snapshot_id_new(fake);
	snprintf(from, sizeof from, "%s/vol/data/snapshots/%s.json.enc", repo, latest_id);
	snprintf(to, sizeof to, "%s/vol/data/snapshots/%s.json.enc", repo, fake);
	CHECK_INTEQ(link(from, to), 0);
	CHECK_INTEQ(snapshot_read(cs, fake, &h, err, sizeof err), CHUNK_STORE_CORRUPT);
	CHECK(strstr(err, "authentication failed") != NULL);
	unlink(to);
	CHECK_INTEQ(snapshot_read(cs, latest_id, &h, err, sizeof err), 0);
	manifest_header_free(&h);
	close_repo(os, cs);
}

static int prune_repo(const char *repo_id, time_t grace, struct prune_result *pr)
{
	struct object_store *os;
	struct chunk_store *cs = open_repo(&os, repo_id, NULL);
	struct prune_options po = { .keep = NULL, .grace = grace };
	char err[512] = "";
	int rc = repo_prune(cs, &po, pr, err, sizeof err);

	if (rc)
		printf("# prune: %s\n", err);
	close_repo(os, cs);
	return rc;
}

/* While a backup runs, prune removes index-less packs (no backup can reuse them) but keeps
 * unreferenced indexed ones (a running backup may be about to reference them). */
static void test_prune_spares_what_a_running_backup_may_reuse(void)
{
	struct chunk_store_options hook = { .pack_target = 1, .stop_after_packs = 1 };
	struct volume_backup_result res;
	struct prune_result pr;
	char err[1024] = "", saved_src[128], path[512], lock[600];
	int packs, indexes;

	strcpy(saved_src, src);
	snprintf(src, sizeof src, "%s/gc-src", base);
	mkdir(src, 0755);
	snprintf(path, sizeof path, "%s/kept", src);
	write_file(path, "kept", 4, 0644);
	CHECK_INTEQ(backup("gc", NULL, &res, err, sizeof err), 0);
	snprintf(path, sizeof path, "%s/new", src);
	write_file(path, "", 0, 0644);
	pwrite_random(path, 0, 12 * MIB);
	/* every chunk its own pack; the second and later packs lose their index */
	CHECK(backup("gc", &hook, &res, err, sizeof err) < 0);
	strcpy(src, saved_src);
	packs = count_objects("gc/data/packs/");
	indexes = count_objects("gc/data/index/");
	CHECK(packs > indexes);

	/* a fresh lock of a backup that is (as far as prune can tell) running */
	snprintf(lock, sizeof lock, "%s/gc/locks/backup-0000000000000001", repo);
	write_file(lock, "{}", 2, 0600);
	CHECK_INTEQ(prune_repo("gc", 0, &pr), 0);
	CHECK_INTEQ(pr.backups_running, 1);
	CHECK_INTEQ(pr.packs_deleted, packs - indexes);
	CHECK_INTEQ(count_objects("gc/data/index/"), indexes);
	CHECK_INTEQ(count_objects("gc/data/packs/"), indexes);

	/* once the backup is gone, the indexed pack nobody references goes too */
	unlink(lock);
	CHECK_INTEQ(prune_repo("gc", 0, &pr), 0);
	CHECK_INTEQ(pr.backups_running, 0);
	CHECK(pr.packs_deleted >= 1);
	CHECK(count_objects("gc/data/index/") < indexes);
	CHECK_INTEQ(count_objects("gc/data/packs/"), count_objects("gc/data/index/"));
	CHECK_INTEQ(check_repo("gc", 1), 0);
}

/* Files are created with their permission bits and chmod'ed only when the umask would take
 * some or they carry set-id or sticky bits: each of those must still come back exact. */
static void test_modes_the_umask_takes_and_set_id_bits_come_back(void)
{
	static const mode_t modes[] = { 0666, 0777, 04755, 02750, 01644, 0640, 0444 };
	char saved[sizeof src], path[512], target[256], err[1024] = "";
	struct volume_backup_result res;
	mode_t old = umask(022);

	memcpy(saved, src, sizeof src);
	snprintf(src, sizeof src, "%s/modes-src", base);
	mkdir(src, 0755);
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		snprintf(path, sizeof path, "%s/m%04o", src, (unsigned)modes[i]);
		write_file(path, "mode", 4, modes[i]);
		chmod(path, modes[i]);	/* the umask does not touch an explicit chmod */
	}
	CHECK_INTEQ(backup("modes", NULL, &res, err, sizeof err), 0);
	snprintf(target, sizeof target, "%s/modes-restore", base);
	CHECK_INTEQ(restore("modes", res.id, target, err, sizeof err), 0);
	CHECK_STREQ(err, "");
	CHECK(trees_equal(src, target));
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		struct stat st;
		snprintf(path, sizeof path, "%s/m%04o", target, (unsigned)modes[i]);
		CHECK_INTEQ(stat(path, &st), 0);
		CHECK_INTEQ(st.st_mode & 07777, modes[i]);
	}
	rm_rf(target);
	rm_rf(src);
	memcpy(src, saved, sizeof src);
	umask(old);
}

int main(void)
{
	char tmpl[] = "/tmp/stowage-vol-XXXXXX";

	if (!mkdtemp(tmpl))
		return 2;
	snprintf(base, sizeof base, "%s", tmpl);
	snprintf(src, sizeof src, "%s/src", base);
	snprintf(repo, sizeof repo, "%s/repo", base);
	make_tree();
	RUN(test_round_trip_of_a_whole_volume);
	RUN(test_second_backup_of_unchanged_tree_writes_almost_nothing);
	RUN(test_one_mib_changed_writes_few_chunks);
	RUN(test_new_ctime_alone_means_read_again);
	RUN(test_any_thread_count_gives_the_same_tree);
	RUN(test_modes_the_umask_takes_and_set_id_bits_come_back);
	RUN(test_mirror_writes_only_what_changed);
	RUN(test_interrupted_backup_then_prune);
	RUN(test_tampered_and_missing_data_name_the_file);
	RUN(test_truncated_pack_fails_in_words);
	RUN(test_manifest_is_bound_to_its_id);
	RUN(test_prune_spares_what_a_running_backup_may_reuse);
	rm_rf(base);
	return check_done();
}
