/* Reads a backup archive in Velero's layout (a tar.gz), into memory or one object at a time:
 *
 *   metadata/version                                         format version, "1" or "1.x.y"
 *   resources/<resource>[.<group>]/namespaces/<ns>/<name>.json
 *   resources/<resource>[.<group>]/cluster/<name>.json        cluster-scoped objects
 *
 * The archive comes from a repository anybody with its keys can write, so it is untrusted:
 * absolute paths, ".." and links are refused, sizes and counts are bounded while reading (not
 * from the headers' word), every object must be a JSON object whose apiVersion group, name and
 * namespace agree with its path (and its kind too for the built-in types), and an object may
 * appear only once. Other members (Velero's own metadata files, preferred-version copies) are
 * left unread. */
#ifndef STOWAGE_BACKUP_READER_H
#define STOWAGE_BACKUP_READER_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define BACKUP_MEMBER_MAX_DEFAULT (16u << 20)
#define BACKUP_MEMBERS_MAX_DEFAULT 500000u
#define BACKUP_TOTAL_MAX_DEFAULT (1ull << 30)
#define BACKUP_INFLATED_MAX_DEFAULT (2ull << 30)
#define BACKUP_ENTRIES_MAX_DEFAULT 1000000u

struct backup_object {
	char *group;		/* "" for the core group */
	char *resource;		/* plural */
	char *ns;		/* "" for a cluster-scoped object */
	char *name;
	cJSON *obj;		/* NULL when the read was given an each */
	size_t mark;		/* each's own (e.g. where it put the object); 0 otherwise */
};

/* An archive comes back from a tenant's repository: hostile. Fields left 0 take the defaults. */
struct backup_limits {
	size_t member_max;	/* bytes of one member, uncompressed */
	size_t members_max;	/* objects in the archive */
	uint64_t total_max;	/* bytes of every object together, uncompressed */
	uint64_t inflated_max;	/* bytes of every member together, the skipped ones too */
	size_t entries_max;	/* members of any kind: directories and skipped ones too */
	int (*cancelled)(void *ud);	/* asked between members and chunks: nonzero stops the read */
	void *cancel_ud;
	/* When set, called with each object as it is read (checked) and its JSON text; the reader
	 * then keeps only the object's names and the mark each sets (obj is freed when each
	 * returns). Nonzero stops the read (err is each's to fill). A restore keeps 100,000
	 * objects' names this way, not their bodies. */
	int (*each)(struct backup_object *o, const char *json, size_t len, void *ud, char *err, size_t errlen);
	void *each_ud;
};

struct backup_archive {
	char version[32];
	struct backup_object *objects;
	size_t n, cap;
	uint64_t bytes;		/* uncompressed bytes of the objects read */
};

/* lim NULL: the defaults above. On error the archive is left empty and err says which member
 * and why. */
int backup_reader_read_file(const char *path, const struct backup_limits *lim, struct backup_archive *out,
			    char *err, size_t errlen);
int backup_reader_read_memory(const void *data, size_t len, const struct backup_limits *lim,
			      struct backup_archive *out, char *err, size_t errlen);
void backup_archive_free(struct backup_archive *a);

#endif
