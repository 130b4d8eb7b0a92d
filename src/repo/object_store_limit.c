/* A store whose puts and gets are paced by rate schedules (bandwidth windows): puts count as
 * upload, the bytes gets bring as download. See object_store_limited in object_store.h. */
#include "object_store.h"
#include "token_bucket.h"

#include <stdlib.h>

struct limited_store {
	struct object_store base;
	struct object_store *inner;
	struct rate_schedule up, down;
	struct token_bucket up_bucket, down_bucket;
	void (*on_rate)(int direction, uint64_t bytes_per_second, time_t at, void *ud);
	void *ud;
};

static void up_rate(uint64_t bps, time_t at, void *ud)
{
	struct limited_store *l = ud;

	if (l->on_rate)
		l->on_rate(RATE_UPLOAD, bps, at, l->ud);
}

static void down_rate(uint64_t bps, time_t at, void *ud)
{
	struct limited_store *l = ud;

	if (l->on_rate)
		l->on_rate(RATE_DOWNLOAD, bps, at, l->ud);
}

static struct limited_store *limited(struct object_store *os)
{
	return (struct limited_store *)os;
}

static int lim_put(struct object_store *os, const char *key, const void *data, size_t len, const uint8_t *sha256,
		   char *err, size_t errlen)
{
	token_bucket_take(&limited(os)->up_bucket, len);
	return limited(os)->inner->ops->put(limited(os)->inner, key, data, len, sha256, err, errlen);
}

static int lim_get(struct object_store *os, const char *key, uint64_t offset, uint64_t len, struct strbuf *out,
		   char *err, size_t errlen)
{
	size_t before = out->len;
	int rc = object_get(limited(os)->inner, key, offset, len, out, err, errlen);

	if (out->len > before)
		token_bucket_take(&limited(os)->down_bucket, out->len - before);
	return rc;
}

static int lim_head(struct object_store *os, const char *key, struct object_info *info, char *err, size_t errlen)
{
	return object_head(limited(os)->inner, key, info, err, errlen);
}

static int lim_list(struct object_store *os, const char *prefix, object_store_list_cb cb, void *arg, char *err,
		    size_t errlen)
{
	return object_list(limited(os)->inner, prefix, cb, arg, err, errlen);
}

static int lim_del(struct object_store *os, const char *key, char *err, size_t errlen)
{
	return object_delete(limited(os)->inner, key, err, errlen);
}

static void lim_close(struct object_store *os)
{
	struct limited_store *l = limited(os);

	object_store_close(l->inner);
	token_bucket_destroy(&l->up_bucket);
	token_bucket_destroy(&l->down_bucket);
	rate_schedule_free(&l->up);
	rate_schedule_free(&l->down);
	free(l);
}

static const struct object_store_ops limited_ops = {
	.put = lim_put, .get = lim_get, .head = lim_head, .list = lim_list, .del = lim_del, .close = lim_close,
};

struct object_store *object_store_limited(struct object_store *inner, struct rate_schedule *up,
					  struct rate_schedule *down,
					  void (*on_rate)(int direction, uint64_t bytes_per_second, time_t at, void *ud),
					  void *ud)
{
	struct limited_store *l = xcalloc(1, sizeof *l);

	l->base.ops = &limited_ops;
	l->inner = inner;
	l->up = *up;
	l->down = *down;
	*up = (struct rate_schedule){ NULL, 0 };
	*down = (struct rate_schedule){ NULL, 0 };
	token_bucket_init(&l->up_bucket, &l->up);
	token_bucket_init(&l->down_bucket, &l->down);
	l->on_rate = on_rate;
	l->ud = ud;
	l->up_bucket.on_rate = up_rate;
	l->up_bucket.rate_ud = l;
	l->down_bucket.on_rate = down_rate;
	l->down_bucket.rate_ud = l;
	return &l->base;
}

long object_store_limited_wait_ms(struct object_store *os)
{
	struct limited_store *l;
	double s;

	if (os->ops != &limited_ops)
		return 0;
	l = limited(os);
	pthread_mutex_lock(&l->up_bucket.mu);
	s = l->up_bucket.waited;
	pthread_mutex_unlock(&l->up_bucket.mu);
	pthread_mutex_lock(&l->down_bucket.mu);
	s += l->down_bucket.waited;
	pthread_mutex_unlock(&l->down_bucket.mu);
	return (long)(s * 1000);
}
