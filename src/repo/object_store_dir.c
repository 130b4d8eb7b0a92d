/* A repository in a local directory: one file per key. Writes go to a hidden temporary file
 * beside the target, are fsynced and renamed into place, so a crash leaves the old object or
 * the new one. Temporary names start with '.', which no valid key segment does, so listings
 * never show them. */
#include "object_store.h"
#include "strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct dir_store {
	struct object_store base;
	char *root;
};

static atomic_uint dir_tmp_counter;

static char *dir_path(struct dir_store *ds, const char *key)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "%s/%s", ds->root, key);
	return strbuf_take(&sb);
}

static int check_key(const char *key, char *err, size_t errlen)
{
	if (object_key_valid(key))
		return 0;
	snprintf(err, errlen, "object key \"%s\": not a valid key", key);
	return -1;
}

/* mkdir -p for the directories above path (path itself is a file). */
static int make_parents(char *path)
{
	for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		int rc = mkdir(path, 0700);
		*p = '/';
		if (rc < 0 && errno != EEXIST)
			return -1;
	}
	return 0;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int fsync_parent(char *path)
{
	char *slash = strrchr(path, '/');
	int fd, rc;

	*slash = '\0';
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*slash = '/';
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static int dir_put(struct object_store *os, const char *key, const void *data, size_t len,
		   const uint8_t *sha256, char *err, size_t errlen)
{
	(void)sha256;
	struct dir_store *ds = (struct dir_store *)os;
	char *path, *slash;
	struct strbuf tmp = STRBUF_INIT;
	int fd, rc = -1;

	if (check_key(key, err, errlen) < 0)
		return -1;
	path = dir_path(ds, key);
	slash = strrchr(path, '/');
	strbuf_add(&tmp, path, (size_t)(slash - path));
	strbuf_addf(&tmp, "/.tmp-%ld-%u", (long)getpid(), atomic_fetch_add(&dir_tmp_counter, 1));
	if (make_parents(path) < 0) {
		snprintf(err, errlen, "put %s: creating directories: %s", key, strerror(errno));
		goto out;
	}
	fd = open(tmp.buf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "put %s: %s", key, strerror(errno));
		goto out;
	}
	if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		snprintf(err, errlen, "put %s: writing: %s", key, strerror(errno));
		close(fd);
		unlink(tmp.buf);
		goto out;
	}
	close(fd);
	if (rename(tmp.buf, path) < 0 || fsync_parent(path) < 0) {
		snprintf(err, errlen, "put %s: renaming into place: %s", key, strerror(errno));
		unlink(tmp.buf);
		goto out;
	}
	rc = 0;
out:
	strbuf_release(&tmp);
	free(path);
	return rc;
}

static int dir_get(struct object_store *os, const char *key, uint64_t offset, uint64_t len,
		   struct strbuf *out, char *err, size_t errlen)
{
	struct dir_store *ds = (struct dir_store *)os;
	struct stat st;
	char *path;
	int fd;

	if (check_key(key, err, errlen) < 0)
		return -1;
	path = dir_path(ds, key);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0) {
		snprintf(err, errlen, "object %s: %s", key, errno == ENOENT ? "not found" : strerror(errno));
		return errno == ENOENT ? OBJECT_STORE_NOT_FOUND : -1;
	}
	if (fstat(fd, &st) < 0 || offset > (uint64_t)st.st_size ||
	    (len && len > (uint64_t)st.st_size - offset)) {
		snprintf(err, errlen, "object %s: range %llu+%llu is outside the object",
			 key, (unsigned long long)offset, (unsigned long long)len);
		close(fd);
		return -1;
	}
	if (!len)
		len = (uint64_t)st.st_size - offset;
	strbuf_grow(out, len);
	while (len) {
		ssize_t n = pread(fd, out->buf + out->len, len, (off_t)offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "object %s: reading: %s", key, n < 0 ? strerror(errno) : "short read");
			close(fd);
			return -1;
		}
		out->len += (size_t)n;
		offset += (uint64_t)n;
		len -= (uint64_t)n;
	}
	out->buf[out->len] = '\0';
	close(fd);
	return 0;
}

static int dir_head(struct object_store *os, const char *key, struct object_info *info,
		    char *err, size_t errlen)
{
	struct dir_store *ds = (struct dir_store *)os;
	struct stat st;
	char *path;
	int rc;

	if (check_key(key, err, errlen) < 0)
		return -1;
	path = dir_path(ds, key);
	rc = stat(path, &st);
	free(path);
	if (rc < 0 && errno == ENOENT)
		return 0;
	if (rc < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "object %s: %s", key, rc < 0 ? strerror(errno) : "not a regular file");
		return -1;
	}
	if (info) {
		info->size = (uint64_t)st.st_size;
		info->mtime = st.st_mtime;
	}
	return 1;
}

/* A temporary file a day old belongs to a writer that died before its rename: listing
 * removes it, as nothing else ever will. */
#define TEMP_ABANDONED_SECONDS (24 * 3600)

static void dir_reap_temp(struct dir_store *ds, struct strbuf *key, size_t base, const char *name)
{
	struct strbuf path = STRBUF_INIT;
	struct stat st;

	if (strncmp(name, ".tmp-", 5) != 0)
		return;
	strbuf_addf(&path, "%s/%.*s%s%s", ds->root, (int)base, key->buf ? key->buf : "", base ? "/" : "", name);
	if (lstat(path.buf, &st) == 0 && S_ISREG(st.st_mode) && time(NULL) - st.st_mtime > TEMP_ABANDONED_SECONDS)
		unlink(path.buf);
	strbuf_release(&path);
}

/* Lists dir (a key prefix ending at a '/' boundary, or "") recursively, reporting the keys
 * that start with prefix. */
static int dir_list_walk(struct dir_store *ds, struct strbuf *key, const char *prefix,
			 object_store_list_cb cb, void *arg, char *err, size_t errlen)
{
	size_t base = key->len;
	struct dirent *de;
	DIR *d;
	char *path;
	int rc = 0;

	path = key->len ? dir_path(ds, key->buf) : xstrdup(ds->root);
	d = opendir(path);
	free(path);
	if (!d) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		snprintf(err, errlen, "listing %s: %s", key->len ? key->buf : "/", strerror(errno));
		return -1;
	}
	while (rc == 0 && (de = readdir(d))) {
		struct stat st;

		if (de->d_name[0] == '.') {
			dir_reap_temp(ds, key, base, de->d_name);
			continue;
		}
		key->len = base;
		if (base)
			strbuf_addch(key, '/');
		strbuf_addstr(key, de->d_name);
		if (strncmp(key->buf, prefix, key->len < strlen(prefix) ? key->len : strlen(prefix)) != 0)
			continue;
		path = dir_path(ds, key->buf);
		if (lstat(path, &st) < 0) {
			free(path);
			continue;	/* deleted while we listed */
		}
		free(path);
		if (S_ISDIR(st.st_mode)) {
			rc = dir_list_walk(ds, key, prefix, cb, arg, err, errlen);
		} else if (S_ISREG(st.st_mode) && strncmp(key->buf, prefix, strlen(prefix)) == 0) {
			struct object_info info = { (uint64_t)st.st_size, st.st_mtime };
			rc = cb(key->buf, &info, arg);
		}
	}
	closedir(d);
	key->len = base;
	if (key->buf)
		key->buf[base] = '\0';
	return rc;
}

static int dir_list(struct object_store *os, const char *prefix, object_store_list_cb cb, void *arg,
		    char *err, size_t errlen)
{
	struct dir_store *ds = (struct dir_store *)os;
	struct strbuf key = STRBUF_INIT;
	const char *slash = strrchr(prefix, '/');
	int rc;

	/* Start at the deepest directory the prefix names, not at the root. */
	if (slash) {
		strbuf_add(&key, prefix, (size_t)(slash - prefix));
		if (!object_key_valid(key.buf)) {
			snprintf(err, errlen, "listing \"%s\": not a valid key prefix", prefix);
			strbuf_release(&key);
			return -1;
		}
	}
	rc = dir_list_walk(ds, &key, prefix, cb, arg, err, errlen);
	strbuf_release(&key);
	return rc;
}

static int dir_del(struct object_store *os, const char *key, char *err, size_t errlen)
{
	struct dir_store *ds = (struct dir_store *)os;
	char *path;
	int rc;

	if (check_key(key, err, errlen) < 0)
		return -1;
	path = dir_path(ds, key);
	rc = unlink(path);
	free(path);
	if (rc < 0 && errno != ENOENT) {
		snprintf(err, errlen, "delete %s: %s", key, strerror(errno));
		return -1;
	}
	return 0;
}

static void dir_close(struct object_store *os)
{
	struct dir_store *ds = (struct dir_store *)os;

	free(ds->root);
	free(ds);
}

static const struct object_store_ops dir_ops = {
	dir_put, dir_get, dir_head, dir_list, dir_del, dir_close,
};

struct object_store *object_store_dir_open(const char *root, char *err, size_t errlen)
{
	struct dir_store *ds;
	size_t n = strlen(root);

	while (n > 1 && root[n - 1] == '/')
		n--;
	if (n == 0 || root[0] != '/') {
		snprintf(err, errlen, "repository directory \"%s\": must be an absolute path", root);
		return NULL;
	}
	if (mkdir(root, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "repository directory %s: %s", root, strerror(errno));
		return NULL;
	}
	ds = xcalloc(1, sizeof *ds);
	ds->base.ops = &dir_ops;
	ds->root = xstrndup(root, n);
	return &ds->base;
}
