/* AWS Signature Version 4 for request headers: pure functions, no I/O. The payload is always
 * signed by its SHA-256 (never UNSIGNED-PAYLOAD). */
#ifndef STOWAGE_SIGV4_H
#define STOWAGE_SIGV4_H

#include <stddef.h>
#include <time.h>

#include "strbuf.h"

#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* A query parameter or a header, unencoded. */
struct sigv4_pair {
	const char *name;
	const char *value;
};

struct sigv4_request {
	const char *method;
	const char *path;			/* unencoded: "/bucket/a key"; encoded here, '/' kept */
	const struct sigv4_pair *query;		/* any order; sorted here */
	size_t nquery;
	const struct sigv4_pair *headers;	/* every header to sign, Host included */
	size_t nheaders;
	const char *payload_sha256;		/* 64 lowercase hex digits */
	const char *amz_date;			/* "20130524T000000Z" */
	const char *region;
	const char *service;
	const char *access_key;
	const char *secret_key;
};

struct sigv4_signature {
	char *canonical_request;
	char *string_to_sign;
	char signature[65];
	char *authorization;			/* the Authorization header's value */
};

/* Returns 0, or -1 when a field is missing or the date is not "YYYYMMDDTHHMMSSZ". */
int sigv4_sign(const struct sigv4_request *req, struct sigv4_signature *out);
void sigv4_signature_free(struct sigv4_signature *sig);

/* S3's URI encoding: every byte but A-Z a-z 0-9 - . _ ~ becomes %XX (upper case); '/' is
 * kept when keep_slash (object key in a path), encoded otherwise (query values). */
void sigv4_uri_encode(struct strbuf *out, const char *s, size_t len, int keep_slash);
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);
void sigv4_hex(const unsigned char *bytes, size_t len, char *out);
/* "YYYYMMDDTHHMMSSZ" in UTC. */
void sigv4_amz_date(time_t t, char out[17]);

#endif
