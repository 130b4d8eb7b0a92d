/* The backup archive: a gzip-compressed tar in Velero's layout, written with libarchive, so that
 * Velero and our restore read the same files.
 *
 * What Velero 1.x writes (backup format "1.1.0", pkg/backup/item_backupper.go and
 * pkg/archive/filesystem.go) and what we write likewise:
 *
 *   metadata/version                                         "1.1.0"
 *   resources/<gr>/namespaces/<ns>/<name>.json               namespaced object
 *   resources/<gr>/cluster/<name>.json                       cluster-scoped object
 *   resources/<gr>/<version>-preferredversion/namespaces/<ns>/<name>.json
 *   resources/<gr>/<version>-preferredversion/cluster/<name>.json
 *
 * <gr> is the group-resource string: "<resource>.<group>", or "<resource>" alone for the core
 * group ("configmaps", "deployments.apps"). Velero writes an object read at its group's
 * preferred version twice: once without a version directory (what 1.0 readers and most tools
 * look at) and once under "<version>-preferredversion" (what the EnableAPIGroupVersions
 * restore picks from). We read every type at its preferred version, so every object has both.
 *
 * Path segments come from the cluster. Kubernetes names never hold '/' or '%', but a path
 * is only as safe as its least checked segment: every segment is escaped (below), so no
 * entry is absolute or climbs out with "..". */
#ifndef STOWAGE_BACKUP_ARCHIVE_H
#define STOWAGE_BACKUP_ARCHIVE_H

#include "strbuf.h"

#include <stddef.h>
#include <stdint.h>

#define BACKUP_FORMAT_VERSION "1.1.0"

struct backup_archive;

/* Appends s to out as one safe path segment: bytes other than letters, digits and "-._:@+~="
 * become %XX (so every valid Kubernetes name passes unchanged, as Velero writes it), and a
 * segment of dots only has its dots escaped. -1 for an empty segment. */
int backup_archive_escape_segment(const char *s, struct strbuf *out);

/* "configmaps", "deployments.apps": the directory of a type under resources/. */
void backup_archive_group_resource(const char *group, const char *resource, struct strbuf *out);

/* The entry path of an object; version NULL or "" for the path without a version directory,
 * else the "<version>-preferredversion" one. ns NULL or "" for a cluster-scoped object.
 * -1 with err filled when a segment is empty. */
int backup_archive_object_path(const char *group, const char *resource, const char *version,
			       const char *ns, const char *name, struct strbuf *out,
			       char *err, size_t errlen);

/* Creates the tar.gz at path (mode 0600) and writes metadata/version. */
struct backup_archive *backup_archive_create(const char *path, char *err, size_t errlen);
/* Adds one object's JSON at both of its paths. */
int backup_archive_add_object(struct backup_archive *a, const char *group, const char *version,
			      const char *resource, const char *ns, const char *name,
			      const void *json, size_t len, char *err, size_t errlen);
/* Writes the end of the archive and frees a; its size in *bytes. On failure the file is
 * incomplete: the caller deletes it. */
int backup_archive_finish(struct backup_archive *a, int64_t *bytes, char *err, size_t errlen);
/* Frees a without completing the file (after a failure or a cancellation). */
void backup_archive_abandon(struct backup_archive *a);

/* data gzip-compressed into out (reset first), as Velero stores its resource list and logs. */
int backup_gzip(const void *data, size_t len, struct strbuf *out, char *err, size_t errlen);

#endif
