/* An S3 client (AWS and S3-compatible stores such as MinIO) over libcurl, signed with SigV4.
 * Every payload is signed by its SHA-256, which the server checks against the bytes it
 * receives (no Content-MD5 beside it: it would check the same thing, slower); large uploads go in
 * parallel multipart parts with memory bounded by (threads + 1) * part size; any failure
 * aborts the upload so no partial object becomes visible. Retryable failures (5xx, SlowDown,
 * a reset connection) are retried with the shared backoff policy (http_retry.h). */
#ifndef STOWAGE_S3_CLIENT_H
#define STOWAGE_S3_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "net_allow.h"
#include "strbuf.h"

struct s3_conf {
	char *endpoint;		/* NULL = AWS https://s3.<region>.amazonaws.com */
	char *region;		/* NULL = us-east-1 */
	char *bucket;
	char *access_key;
	char *secret_key;
	int path_style;		/* https://host/bucket/key rather than https://bucket.host/key */
	long timeout_ms;	/* connect timeout, and how long a transfer may stall; 0 = 30 s */
	long op_timeout_ms;	/* total deadline of one request, however it trickles; 0 = 15 min */
	char *ca_pem;		/* NULL = the system's CA store */
	char *resolve;		/* "host:port:addr,..." pinned by whoever checked the endpoint against the
				 * allowed networks (the runner, for the data mover): used when the
				 * client is made without a net_allow, so the host is not resolved again */
};

struct s3_error {
	long http_status;
	char code[64];		/* NoSuchBucket, AccessDenied, SignatureDoesNotMatch, ... */
	char message[512];	/* the server's message, or the failure in words */
	int curl_code;
	char bucket[64];
};

struct s3_object_info {
	const char *key;
	int64_t size;
	const char *etag;		/* as the server sent it, quotes included */
	const char *last_modified;	/* as the server sent it */
};

/* A non-zero return stops the listing (or download), and the call returns -1 with code
 * "Stopped". */
typedef int (*s3_list_fn)(const struct s3_object_info *obj, void *ud);
typedef int (*s3_write_fn)(const void *data, size_t len, void *ud);
/* Fills up to len bytes; returns the count, 0 at the end, -1 on a read error. */
typedef long (*s3_read_fn)(void *buf, size_t len, void *ud);

#define S3_PART_SIZE_MIN (8L << 20)
#define S3_PART_SIZE_MAX (64L << 20)
#define S3_UPLOAD_THREADS 4

struct s3_client;

/* allow: NULL, or the networks the endpoint must resolve into (checked here, then pinned). */
struct s3_client *s3_client_new(const struct s3_conf *conf, const struct net_allow *allow,
				char *err, size_t errlen);
void s3_client_free(struct s3_client *c);
/* The settings the client was made with, borrowed (valid while c lives): for handing the same
 * store to a child process, the data mover, through its environment. */
void s3_client_conf(const struct s3_client *c, struct s3_conf *out);

int s3_head(struct s3_client *c, const char *key, int64_t *size, char *etag, size_t etaglen,
	    struct s3_error *err);
/* The whole object into out (reset first); fails with code "TooLarge" past cap bytes. */
int s3_get_mem(struct s3_client *c, const char *key, size_t cap, struct strbuf *out,
	       struct s3_error *err);
/* Bytes [offset, offset + length) (length -1: to the end) streamed to fn, in order. A whole
 * object over 16 MiB is read by parallel ranged GETs of the version HEAD saw ("PreconditionFailed"
 * if it is replaced meanwhile); a smaller one in one stream, checked against its ETag (MD5) when
 * that is one: "BadDigest" on mismatch. */
int s3_get_stream(struct s3_client *c, const char *key, int64_t offset, int64_t length,
		  s3_write_fn fn, void *ud, struct s3_error *err);
int s3_put_mem(struct s3_client *c, const char *key, const void *data, size_t len,
	       struct s3_error *err);
/* s3_put_mem with the data's SHA-256 in hex already computed (NULL: computed here); it is
 * signed as x-amz-content-sha256, which the server checks against the bytes it receives. */
int s3_put_mem_hashed(struct s3_client *c, const char *key, const void *data, size_t len,
		      const char *sha256_hex, struct s3_error *err);
/* Reads fn to its end; multipart when the data is larger than one part. size_hint (-1 when
 * unknown) only chooses the part size: 8 MiB, larger for objects over 80 GB, 64 MiB at most. */
int s3_put_stream(struct s3_client *c, const char *key, s3_read_fn fn, void *ud,
		  int64_t size_hint, struct s3_error *err);
/* Creates the client's bucket in its region; one that we already own counts as created. */
int s3_create_bucket(struct s3_client *c, struct s3_error *err);
/* Deleting a missing key succeeds (S3 semantics). */
int s3_delete(struct s3_client *c, const char *key, struct s3_error *err);
/* ListObjectsV2 under prefix, page_size keys a request (1..1000), following continuation
 * tokens until the end. fn sees only keys that start with prefix and are not empty: another
 * fails the listing ("MalformedReply", naming the key). */
int s3_list(struct s3_client *c, const char *prefix, int page_size, s3_list_fn fn, void *ud,
	    struct s3_error *err);

/* What the repository page runs: put, read back, compare and delete "stowage-probe/<random>". */
int s3_probe(const struct s3_conf *conf, const struct net_allow *allow, struct s3_error *err);

/* The error in words: "bucket X does not exist", "access denied", ... */
void s3_error_describe(const struct s3_error *err, char *buf, size_t buflen);

#endif
