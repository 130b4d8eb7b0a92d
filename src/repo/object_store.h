/* The storage a repository lives in, as a small vtable: put, ranged get, head, list by prefix,
 * delete. Keys are '/'-separated relative names ("repo/data/packs/ab/abcd..."). Every backend
 * is safe to call from several threads at once and makes put atomic: a reader sees the old
 * object, the whole new one, or nothing, never a part. */
#ifndef STOWAGE_OBJECT_STORE_H
#define STOWAGE_OBJECT_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "rate_window.h"
#include "strbuf.h"

struct object_info {
	uint64_t size;
	time_t mtime;	/* when the object was last written, by the store's clock */
};

struct object_store;

/* Called once per key under the prefix; a non-zero return stops the listing and is returned. */
typedef int (*object_store_list_cb)(const char *key, const struct object_info *info, void *arg);

/* Every operation returns 0 or -1 with err filled, except head (1 exists, 0 absent, -1 error)
 * and get, which returns OBJECT_STORE_NOT_FOUND for a missing object so callers can tell it
 * from an I/O failure. */
#define OBJECT_STORE_NOT_FOUND (-2)

struct object_store_ops {
	/* sha256: the SHA-256 of data when the caller has it already (an S3 store signs it as
	 * the payload's hash instead of hashing data again), or NULL */
	int (*put)(struct object_store *os, const char *key, const void *data, size_t len,
		   const uint8_t *sha256, char *err, size_t errlen);
	/* Appends bytes [offset, offset+len) to out; len 0 means to the end of the object. */
	int (*get)(struct object_store *os, const char *key, uint64_t offset, uint64_t len,
		   struct strbuf *out, char *err, size_t errlen);
	int (*head)(struct object_store *os, const char *key, struct object_info *info,
		    char *err, size_t errlen);
	int (*list)(struct object_store *os, const char *prefix, object_store_list_cb cb, void *arg,
		    char *err, size_t errlen);
	int (*del)(struct object_store *os, const char *key, char *err, size_t errlen);
	void (*close)(struct object_store *os);
};

struct object_store {
	const struct object_store_ops *ops;
};

/* Opens a store from a URL: "file:///abs/path" (a local directory; created if missing) or
 * "s3://bucket[/prefix][?endpoint=URL&region=R&path_style=1]" (see object_store_s3.c). */
struct object_store *object_store_open(const char *url, char *err, size_t errlen);
struct object_store *object_store_dir_open(const char *root, char *err, size_t errlen);
struct object_store *object_store_s3_open(const char *url, char *err, size_t errlen);
void object_store_close(struct object_store *os);
/* inner with its puts paced by the upload schedule and the bytes its gets bring by the download
 * schedule (object_store_limit.c). Takes inner and both schedules (left empty); closing it
 * closes inner. on_rate (may be NULL) hears each change of a direction's rate in force. */
struct object_store *object_store_limited(struct object_store *inner, struct rate_schedule *up,
					  struct rate_schedule *down,
					  void (*on_rate)(int direction, uint64_t bytes_per_second, time_t at, void *ud),
					  void *ud);
/* Milliseconds a limited store's callers waited for the rate so far (0 for any other store). */
long object_store_limited_wait_ms(struct object_store *os);

/* A key is 1..1024 bytes of [A-Za-z0-9._-] segments joined by '/', none empty or starting
 * with '.', so no backend needs to escape one and none can leave its root. */
int object_key_valid(const char *key);

static inline int object_put(struct object_store *os, const char *key, const void *data, size_t len,
			     char *err, size_t errlen)
{
	return os->ops->put(os, key, data, len, NULL, err, errlen);
}

/* object_put of data whose SHA-256 the caller has computed (a pack, named by it). */
static inline int object_put_hashed(struct object_store *os, const char *key, const void *data, size_t len,
				    const uint8_t sha256[32], char *err, size_t errlen)
{
	return os->ops->put(os, key, data, len, sha256, err, errlen);
}

static inline int object_get(struct object_store *os, const char *key, uint64_t offset, uint64_t len,
			     struct strbuf *out, char *err, size_t errlen)
{
	return os->ops->get(os, key, offset, len, out, err, errlen);
}

static inline int object_head(struct object_store *os, const char *key, struct object_info *info,
			      char *err, size_t errlen)
{
	return os->ops->head(os, key, info, err, errlen);
}

static inline int object_list(struct object_store *os, const char *prefix, object_store_list_cb cb,
			      void *arg, char *err, size_t errlen)
{
	return os->ops->list(os, prefix, cb, arg, err, errlen);
}

static inline int object_delete(struct object_store *os, const char *key, char *err, size_t errlen)
{
	return os->ops->del(os, key, err, errlen);
}

#endif
