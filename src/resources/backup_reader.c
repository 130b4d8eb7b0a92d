#include "backup_reader.h"
#include "restore_order.h"
#include "strbuf.h"
#include "hex.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKUP_PATH_MAX 1024
#define BACKUP_SEGMENT_MAX 253
#define BACKUP_VERSION_MAX 31

/* What a member's path says about the object inside it; points into a copy of the path. */
struct backup_member_path {
	char *group, *resource, *ns, *name;
};

struct backup_read {
	struct archive *a;
	const struct backup_limits *lim;
	struct backup_archive *out;
	struct strbuf data;
	uint64_t inflated;	/* bytes of every member so far, skipped ones too */
	size_t entries;
};

static void backup_limits_fill(const struct backup_limits *in, struct backup_limits *out)
{
	memset(out, 0, sizeof *out);
	if (in)
		*out = *in;
	if (!out->member_max)
		out->member_max = BACKUP_MEMBER_MAX_DEFAULT;
	if (!out->members_max)
		out->members_max = BACKUP_MEMBERS_MAX_DEFAULT;
	if (!out->total_max)
		out->total_max = BACKUP_TOTAL_MAX_DEFAULT;
	if (!out->inflated_max)
		out->inflated_max = BACKUP_INFLATED_MAX_DEFAULT;
	if (!out->entries_max)
		out->entries_max = BACKUP_ENTRIES_MAX_DEFAULT;
}

static int backup_cancelled(const struct backup_read *r, char *err, size_t errlen)
{
	if (r->lim->cancelled && r->lim->cancelled(r->lim->cancel_ud)) {
		snprintf(err, errlen, "reading the archive stopped: the job was cancelled");
		return 1;
	}
	return 0;
}

/* Counts a chunk of any member against the archive's inflated bytes. */
static int backup_inflated_add(struct backup_read *r, const char *path, size_t n, char *err, size_t errlen)
{
	r->inflated += n;
	if (r->inflated > r->lim->inflated_max) {
		snprintf(err, errlen, "archive member \"%.200s\": the archive inflates to more than %llu bytes; "
			 "stopped reading", path, (unsigned long long)r->lim->inflated_max);
		return -1;
	}
	return backup_cancelled(r, err, errlen) ? -1 : 0;
}

/* A member nobody reads still inflates: read through it, counting, rather than skip blind. */
static int backup_member_skip(struct backup_read *r, const char *path, char *err, size_t errlen)
{
	char buf[65536];
	la_ssize_t got;

	while ((got = archive_read_data(r->a, buf, sizeof buf)) > 0)
		if (backup_inflated_add(r, path, (size_t)got, err, errlen) < 0)
			return -1;
	if (got < 0) {
		snprintf(err, errlen, "archive member \"%.200s\": %s", path, archive_error_string(r->a));
		return -1;
	}
	return 0;
}

/* Decodes a segment in place (the writer escapes bytes outside "-._:@+~=" and letters and
 * digits as %XX), and checks that the result can name an object, namespace, type or group. */
static int backup_segment_decode(char *s)
{
	char *w = s;
	size_t n;

	for (const char *r = s; *r; r++) {
		if (*r != '%') {
			*w++ = *r;
			continue;
		}
		int hi = hex_digit((unsigned char)r[1]), lo = hi < 0 ? -1 : hex_digit((unsigned char)r[2]);
		if (lo < 0 || (hi == 0 && lo == 0))
			return -1;
		*w++ = (char)(hi << 4 | lo);
		r += 2;
	}
	*w = '\0';
	n = strlen(s);
	if (n == 0 || n > BACKUP_SEGMENT_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strchr(s, '/'))
		return -1;
	return 0;
}

/* Refuses what could escape a directory if anybody ever extracted the archive. */
static int backup_path_safe(const char *path, char *err, size_t errlen)
{
	const char *p = path;

	if (!*path || strlen(path) > BACKUP_PATH_MAX) {
		snprintf(err, errlen, "archive member \"%.100s\": the path is empty or longer than %d bytes",
			 path, BACKUP_PATH_MAX);
		return -1;
	}
	if (path[0] == '/') {
		snprintf(err, errlen, "archive member \"%.200s\": absolute paths are not allowed", path);
		return -1;
	}
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			snprintf(err, errlen, "archive member \"%.200s\": \"..\" is not allowed in a path", path);
			return -1;
		}
		p += n;
		if (*p)
			p++;
	}
	return 0;
}

/* 1 and fills mp for an object member; 0 for a member the restore does not read; -1 with err
 * for a malformed path under resources/. mp's strings point into copy (the caller frees it). */
static int backup_member_parse(const char *path, char **copy, struct backup_member_path *mp,
			       char *err, size_t errlen)
{
	char *seg[6], *save = NULL, *tok;
	int n = 0;

	*copy = NULL;
	if (strncmp(path, "resources/", 10) != 0)
		return 0;
	*copy = xstrdup(path);
	for (tok = strtok_r(*copy, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (n == 6)
			goto bad;
		seg[n++] = tok;
	}
	if (n < 3)
		goto bad;
	if (strstr(seg[2], "-preferredversion") && strlen(seg[2]) > 17 &&
	    strcmp(seg[2] + strlen(seg[2]) - 17, "-preferredversion") == 0) {
		/* Velero's copy of the same objects at the group's preferred version */
		free(*copy);
		*copy = NULL;
		return 0;
	}
	if (!(n == 5 && strcmp(seg[2], "namespaces") == 0) && !(n == 4 && strcmp(seg[2], "cluster") == 0))
		goto bad;
	size_t len = strlen(seg[n - 1]);
	if (len <= 5 || strcmp(seg[n - 1] + len - 5, ".json") != 0)
		goto bad;
	seg[n - 1][len - 5] = '\0';
	for (int i = 1; i < n; i++)
		if (backup_segment_decode(seg[i]) < 0)
			goto bad;
	mp->resource = seg[1];
	char *dot = strchr(seg[1], '.');
	if (dot) {
		*dot = '\0';
		mp->group = dot + 1;
		if (!*mp->group || !*mp->resource)
			goto bad;
	} else {
		mp->group = seg[1] + strlen(seg[1]);
	}
	mp->ns = n == 5 ? seg[3] : seg[1] + strlen(seg[1]);
	mp->name = seg[n - 1];
	return 1;
bad:
	snprintf(err, errlen, "archive member \"%.200s\": not resources/<resource>[.<group>]/namespaces/<namespace>/<name>.json "
		 "nor resources/<resource>[.<group>]/cluster/<name>.json", path);
	free(*copy);
	*copy = NULL;
	return -1;
}

/* Reads the current member into r->data, refusing more than max bytes whatever its header says. */
static int backup_member_read(struct backup_read *r, const char *path, size_t max, char *err, size_t errlen)
{
	char buf[65536];
	la_ssize_t got;

	strbuf_reset(&r->data);
	strbuf_addstr(&r->data, "");
	while ((got = archive_read_data(r->a, buf, sizeof buf)) > 0) {
		if (r->data.len + (size_t)got > max) {
			snprintf(err, errlen, "archive member \"%.200s\": larger than %zu bytes", path, max);
			return -1;
		}
		if (backup_inflated_add(r, path, (size_t)got, err, errlen) < 0)
			return -1;
		strbuf_add(&r->data, buf, (size_t)got);
	}
	if (got < 0) {
		snprintf(err, errlen, "archive member \"%.200s\": %s", path, archive_error_string(r->a));
		return -1;
	}
	return 0;
}

static int backup_version_read(struct backup_read *r, const char *path, char *err, size_t errlen)
{
	char *v;

	if (backup_member_read(r, path, BACKUP_VERSION_MAX, err, errlen) < 0)
		return -1;
	v = r->data.buf;
	v[strcspn(v, "\r\n")] = '\0';
	if (!(strcmp(v, "1") == 0 || strncmp(v, "1.", 2) == 0) || strspn(v, "0123456789.") != strlen(v)) {
		snprintf(err, errlen, "metadata/version: format \"%.31s\" is not supported (version 1 is)", v);
		return -1;
	}
	snprintf(r->out->version, sizeof r->out->version, "%s", v);
	return 0;
}

static const char *backup_string(const cJSON *obj, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

/* The object must say what its path says. */
static int backup_object_check(const cJSON *obj, const struct backup_member_path *mp, const char *path,
			       char *err, size_t errlen)
{
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	const char *api = backup_string(obj, "apiVersion"), *kind = backup_string(obj, "kind");
	const char *name = backup_string(meta, "name"), *ns = backup_string(meta, "namespace");
	const char *slash;
	const struct restore_type *known;
	size_t glen;

	if (!cJSON_IsObject(obj) || !cJSON_IsObject(meta) || !api || !*api || !kind || !*kind || !name) {
		snprintf(err, errlen, "archive member \"%.200s\": not a Kubernetes object (apiVersion, kind and "
			 "metadata.name are required)", path);
		return -1;
	}
	slash = strchr(api, '/');
	glen = slash ? (size_t)(slash - api) : 0;
	if (strlen(mp->group) != glen || strncmp(api, mp->group, glen) != 0) {
		snprintf(err, errlen, "archive member \"%.200s\": apiVersion \"%.100s\" is not of group \"%s\"",
			 path, api, mp->group);
		return -1;
	}
	if (strcmp(name, mp->name) != 0) {
		snprintf(err, errlen, "archive member \"%.200s\": metadata.name \"%.100s\" disagrees with the path",
			 path, name);
		return -1;
	}
	if (strcmp(ns ? ns : "", mp->ns) != 0) {
		snprintf(err, errlen, "archive member \"%.200s\": metadata.namespace \"%.100s\" disagrees with the path",
			 path, ns ? ns : "");
		return -1;
	}
	known = restore_type_find(mp->group, mp->resource);
	if (known && strcmp(kind, known->kind) != 0) {
		snprintf(err, errlen, "archive member \"%.200s\": kind \"%.100s\" is not the kind of %s (%s)",
			 path, kind, mp->resource, known->kind);
		return -1;
	}
	return 0;
}

static int backup_object_read(struct backup_read *r, const char *path, const struct backup_member_path *mp,
			      char *err, size_t errlen)
{
	struct backup_archive *out = r->out;
	cJSON *obj;

	if (out->n >= r->lim->members_max) {
		snprintf(err, errlen, "the archive holds more than %zu objects", r->lim->members_max);
		return -1;
	}
	if (backup_member_read(r, path, r->lim->member_max, err, errlen) < 0)
		return -1;
	if (out->bytes + r->data.len > r->lim->total_max) {
		snprintf(err, errlen, "the archive's objects add up to more than %llu bytes",
			 (unsigned long long)r->lim->total_max);
		return -1;
	}
	obj = cJSON_ParseWithLength(r->data.buf, r->data.len);
	if (!obj) {
		snprintf(err, errlen, "archive member \"%.200s\": not valid JSON", path);
		return -1;
	}
	if (backup_object_check(obj, mp, path, err, errlen) < 0) {
		cJSON_Delete(obj);
		return -1;
	}
	if (out->n == out->cap) {
		out->cap = out->cap ? out->cap * 2 : 64;
		out->objects = xrealloc(out->objects, out->cap * sizeof *out->objects);
	}
	struct backup_object *o = &out->objects[out->n];
	*o = (struct backup_object){ xstrdup(mp->group), xstrdup(mp->resource), xstrdup(mp->ns), xstrdup(mp->name), obj, 0 };
	out->n++;
	out->bytes += r->data.len;
	if (r->lim->each) {
		int rc = r->lim->each(o, r->data.buf, r->data.len, r->lim->each_ud, err, errlen);
		cJSON_Delete(o->obj);
		o->obj = NULL;
		if (rc)
			return -1;
	}
	return 0;
}

static int backup_entry_read(struct backup_read *r, struct archive_entry *e, char *err, size_t errlen)
{
	const char *path = archive_entry_pathname(e);
	struct backup_member_path mp;
	char *copy;
	int rc;

	if (!path) {
		snprintf(err, errlen, "an archive member has no readable path");
		return -1;
	}
	if (++r->entries > r->lim->entries_max) {
		snprintf(err, errlen, "the archive holds more than %zu members; stopped reading", r->lim->entries_max);
		return -1;
	}
	if (backup_cancelled(r, err, errlen))
		return -1;
	if (backup_path_safe(path, err, errlen) < 0)
		return -1;
	if (archive_entry_hardlink(e) || archive_entry_filetype(e) == AE_IFLNK) {
		snprintf(err, errlen, "archive member \"%.200s\": links are not allowed", path);
		return -1;
	}
	if (archive_entry_filetype(e) == AE_IFDIR)
		return 0;
	if (archive_entry_filetype(e) != AE_IFREG) {
		snprintf(err, errlen, "archive member \"%.200s\": only regular files are allowed", path);
		return -1;
	}
	if (strcmp(path, "metadata/version") == 0)
		return backup_version_read(r, path, err, errlen);
	rc = backup_member_parse(path, &copy, &mp, err, errlen);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return backup_member_skip(r, path, err, errlen);
	rc = backup_object_read(r, path, &mp, err, errlen);
	free(copy);
	return rc;
}

static int backup_object_cmp(const void *a, const void *b)
{
	const struct backup_object *x = a, *y = b;
	int c;

	if ((c = strcmp(x->group, y->group)) || (c = strcmp(x->resource, y->resource)) ||
	    (c = strcmp(x->ns, y->ns)))
		return c;
	return strcmp(x->name, y->name);
}

/* Sorted, so that an object stored twice (which copy wins?) is found and refused. */
static int backup_duplicates_refuse(struct backup_archive *out, char *err, size_t errlen)
{
	if (out->n > 1)
		qsort(out->objects, out->n, sizeof *out->objects, backup_object_cmp);
	for (size_t i = 1; i < out->n; i++) {
		const struct backup_object *o = &out->objects[i];
		if (backup_object_cmp(&out->objects[i - 1], o) == 0) {
			snprintf(err, errlen, "the archive holds %s%s%s %s%s%.200s twice", o->resource, *o->group ? "." : "",
				 o->group, o->ns, *o->ns ? "/" : "", o->name);
			return -1;
		}
	}
	return 0;
}

static int backup_read_all(struct archive *a, const struct backup_limits *lim, struct backup_archive *out,
			   char *err, size_t errlen)
{
	struct backup_limits limits;
	struct backup_read r = { a, &limits, out, STRBUF_INIT, 0, 0 };
	struct archive_entry *e;
	int rc = 0, st;

	backup_limits_fill(lim, &limits);
	while ((st = archive_read_next_header(a, &e)) == ARCHIVE_OK || st == ARCHIVE_WARN) {
		if (backup_entry_read(&r, e, err, errlen) < 0) {
			rc = -1;
			break;
		}
	}
	if (rc == 0 && st != ARCHIVE_EOF) {
		snprintf(err, errlen, "the archive is damaged: %s", archive_error_string(a));
		rc = -1;
	}
	if (rc == 0 && !out->version[0]) {
		snprintf(err, errlen, "the archive has no metadata/version: not a backup in Velero's layout");
		rc = -1;
	}
	if (rc == 0)
		rc = backup_duplicates_refuse(out, err, errlen);
	strbuf_release(&r.data);
	archive_read_free(a);
	if (rc < 0)
		backup_archive_free(out);
	return rc;
}

static struct archive *backup_archive_new(struct backup_archive *out)
{
	struct archive *a = archive_read_new();

	memset(out, 0, sizeof *out);
	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	return a;
}

int backup_reader_read_file(const char *path, const struct backup_limits *lim, struct backup_archive *out,
			    char *err, size_t errlen)
{
	struct archive *a = backup_archive_new(out);

	if (archive_read_open_filename(a, path, 65536) != ARCHIVE_OK) {
		snprintf(err, errlen, "%s: %s", path, archive_error_string(a));
		archive_read_free(a);
		return -1;
	}
	return backup_read_all(a, lim, out, err, errlen);
}

int backup_reader_read_memory(const void *data, size_t len, const struct backup_limits *lim,
			      struct backup_archive *out, char *err, size_t errlen)
{
	struct archive *a = backup_archive_new(out);

	if (archive_read_open_memory(a, data, len) != ARCHIVE_OK) {
		snprintf(err, errlen, "the archive cannot be read: %s", archive_error_string(a));
		archive_read_free(a);
		return -1;
	}
	return backup_read_all(a, lim, out, err, errlen);
}

void backup_archive_free(struct backup_archive *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->objects[i].group);
		free(a->objects[i].resource);
		free(a->objects[i].ns);
		free(a->objects[i].name);
		cJSON_Delete(a->objects[i].obj);
	}
	free(a->objects);
	memset(a, 0, sizeof *a);
}
