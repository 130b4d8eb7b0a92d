#include "backup_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct backup_archive {
	struct archive *ar;
	int fd;
	time_t mtime;
	struct strbuf path;	/* scratch for entry paths */
};

static int segment_byte_is_plain(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("-._:@+~=", c) != NULL);
}

int backup_archive_escape_segment(const char *s, struct strbuf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	int dots_only = s[strspn(s, ".")] == '\0';

	if (!*s)
		return -1;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (segment_byte_is_plain(*p) && !(dots_only && *p == '.')) {
			strbuf_addch(out, (char)*p);
			continue;
		}
		strbuf_addch(out, '%');
		strbuf_addch(out, hex[*p >> 4]);
		strbuf_addch(out, hex[*p & 15]);
	}
	return 0;
}

void backup_archive_group_resource(const char *group, const char *resource, struct strbuf *out)
{
	strbuf_addstr(out, resource);
	if (group && *group) {
		strbuf_addch(out, '.');
		strbuf_addstr(out, group);
	}
}

int backup_archive_object_path(const char *group, const char *resource, const char *version,
			       const char *ns, const char *name, struct strbuf *out,
			       char *err, size_t errlen)
{
	struct strbuf gr = STRBUF_INIT;
	int rc = -1;

	strbuf_reset(out);
	if (!resource || !*resource || !name || !*name) {
		snprintf(err, errlen, "an object without a %s cannot be archived", name && *name ? "resource" : "name");
		return -1;
	}
	backup_archive_group_resource(group, resource, &gr);
	strbuf_addstr(out, "resources/");
	if (backup_archive_escape_segment(gr.buf, out) < 0)
		goto out;
	strbuf_addch(out, '/');
	if (version && *version) {
		backup_archive_escape_segment(version, out);
		strbuf_addstr(out, "-preferredversion/");
	}
	if (ns && *ns) {
		strbuf_addstr(out, "namespaces/");
		backup_archive_escape_segment(ns, out);
		strbuf_addch(out, '/');
	} else {
		strbuf_addstr(out, "cluster/");
	}
	backup_archive_escape_segment(name, out);
	strbuf_addstr(out, ".json");
	rc = 0;
out:
	strbuf_release(&gr);
	return rc;
}

static int archive_failed(struct archive *ar, const char *what, char *err, size_t errlen)
{
	const char *msg = archive_error_string(ar);

	snprintf(err, errlen, "%s: %s", what, msg ? msg : "unknown libarchive error");
	return -1;
}

/* One regular file entry. */
static int archive_add_entry(struct archive *ar, const char *path, time_t mtime, const void *data,
			     size_t len, char *err, size_t errlen)
{
	struct archive_entry *e = archive_entry_new();
	const char *p = data;
	int rc = 0;

	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)len);
	archive_entry_set_mtime(e, mtime, 0);
	if (archive_write_header(ar, e) != ARCHIVE_OK)
		rc = archive_failed(ar, path, err, errlen);
	while (rc == 0 && len > 0) {
		la_ssize_t n = archive_write_data(ar, p, len);
		if (n <= 0) {
			rc = archive_failed(ar, path, err, errlen);
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	archive_entry_free(e);
	return rc;
}

struct backup_archive *backup_archive_create(const char *path, char *err, size_t errlen)
{
	struct backup_archive *a = xcalloc(1, sizeof *a);

	a->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (a->fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(a);
		return NULL;
	}
	a->mtime = time(NULL);
	a->ar = archive_write_new();
	/* pax where ustar cannot hold a long path, as Go's archive/tar does for Velero */
	if (archive_write_add_filter_gzip(a->ar) != ARCHIVE_OK ||
	    archive_write_set_format_pax_restricted(a->ar) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a->ar, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(a->ar, a->fd) != ARCHIVE_OK) {
		archive_failed(a->ar, path, err, errlen);
		backup_archive_abandon(a);
		return NULL;
	}
	if (archive_add_entry(a->ar, "metadata/version", a->mtime, BACKUP_FORMAT_VERSION,
			      strlen(BACKUP_FORMAT_VERSION), err, errlen) < 0) {
		backup_archive_abandon(a);
		return NULL;
	}
	return a;
}

int backup_archive_add_object(struct backup_archive *a, const char *group, const char *version,
			      const char *resource, const char *ns, const char *name,
			      const void *json, size_t len, char *err, size_t errlen)
{
	if (backup_archive_object_path(group, resource, NULL, ns, name, &a->path, err, errlen) < 0 ||
	    archive_add_entry(a->ar, a->path.buf, a->mtime, json, len, err, errlen) < 0)
		return -1;
	if (backup_archive_object_path(group, resource, version, ns, name, &a->path, err, errlen) < 0 ||
	    archive_add_entry(a->ar, a->path.buf, a->mtime, json, len, err, errlen) < 0)
		return -1;
	return 0;
}

int backup_archive_finish(struct backup_archive *a, int64_t *bytes, char *err, size_t errlen)
{
	struct stat st;
	int rc = 0;

	if (archive_write_close(a->ar) != ARCHIVE_OK)
		rc = archive_failed(a->ar, "finishing the archive", err, errlen);
	if (rc == 0 && fsync(a->fd) < 0) {
		snprintf(err, errlen, "finishing the archive: %s", strerror(errno));
		rc = -1;
	}
	if (rc == 0 && fstat(a->fd, &st) < 0) {
		snprintf(err, errlen, "finishing the archive: %s", strerror(errno));
		rc = -1;
	}
	if (rc == 0)
		*bytes = st.st_size;
	backup_archive_abandon(a);
	return rc;
}

void backup_archive_abandon(struct backup_archive *a)
{
	if (!a)
		return;
	archive_write_free(a->ar);	/* closes first if still open; the fd stays ours */
	if (a->fd >= 0)
		close(a->fd);
	strbuf_release(&a->path);
	free(a);
}

static la_ssize_t gzip_to_strbuf(struct archive *ar, void *ud, const void *buf, size_t len)
{
	(void)ar;
	strbuf_add(ud, buf, len);
	return (la_ssize_t)len;
}

int backup_gzip(const void *data, size_t len, struct strbuf *out, char *err, size_t errlen)
{
	struct archive *ar = archive_write_new();
	int rc = 0;

	strbuf_reset(out);
	if (archive_write_add_filter_gzip(ar) != ARCHIVE_OK ||
	    archive_write_set_format_raw(ar) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(ar, 1) != ARCHIVE_OK ||
	    archive_write_open(ar, out, NULL, gzip_to_strbuf, NULL) != ARCHIVE_OK)
		rc = archive_failed(ar, "gzip", err, errlen);
	if (rc == 0)
		rc = archive_add_entry(ar, "data", time(NULL), data, len, err, errlen);
	if (rc == 0 && archive_write_close(ar) != ARCHIVE_OK)
		rc = archive_failed(ar, "gzip", err, errlen);
	archive_write_free(ar);
	return rc;
}
