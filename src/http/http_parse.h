/* Parsing of untrusted request data with limits: query strings and urlencoded bodies, cookies,
 * multipart/form-data uploads, request paths, Accept and Content-Type headers. Pure functions on
 * buffers, so each can be fuzzed. Errors fill err with the field or offset and the reason. */
#ifndef STOWAGE_HTTP_PARSE_H
#define STOWAGE_HTTP_PARSE_H

#include <stddef.h>

#define HTTP_MAX_KEY 128		/* bytes in a field name */
#define HTTP_MAX_COOKIES 64
#define HTTP_MAX_BOUNDARY 70		/* RFC 2046 */
#define HTTP_MAX_PART_HEADERS 8192	/* bytes in one multipart part's header block */
#define HTTP_MAX_FILENAME 255
#define HTTP_MAX_PATH 1024

struct kv {
	char *key;
	char *value;		/* NUL-terminated; may also contain NUL bytes (multipart) */
	size_t value_len;
	char *filename;		/* multipart file parts only, else NULL */
};

struct kv_list {
	struct kv *items;
	size_t count, cap;
};

void kv_list_free(struct kv_list *l);
/* The first value of key, or NULL. */
const char *kv_get(const struct kv_list *l, const char *key);
size_t kv_count(const struct kv_list *l, const char *key);
/* Appends a copy of key and value (value_len bytes). */
void kv_add(struct kv_list *l, const char *key, const char *value, size_t value_len);

/* application/x-www-form-urlencoded and query strings: '&'-separated, '+' is space, %XX decoded.
 * -1 on a malformed %-escape, a decoded NUL, invalid UTF-8, more than max_fields fields, a key
 * longer than 128 bytes or an empty key. On error the fields added by this call are removed. */
int http_parse_urlencoded(const char *buf, size_t len, size_t max_fields, struct kv_list *out,
			  char *err, size_t errlen);
/* Cookie header "a=b; c=d" (NULL is no cookies). Invalid pairs are skipped; more than 64 valid
 * pairs is an error. */
int http_parse_cookies(const char *header, struct kv_list *out, char *err, size_t errlen);
/* multipart/form-data (RFC 7578). content_type is the whole header, with its boundary parameter
 * quoted or not. Each part gives its name, its filename when it is a file, and its raw bytes. */
int http_parse_multipart(const char *buf, size_t len, const char *content_type, size_t max_fields,
			 struct kv_list *out, char *err, size_t errlen);
/* A request path as nginx passes it (already decoded): starts with '/', no "..", no "//", no
 * control characters, no '%', valid UTF-8, at most 1024 bytes. 0, or -1 with the reason. */
int http_path_check(const char *path, char *err, size_t errlen);
/* Whether the Accept header asks for JSON: application/json appears and text/html does not come
 * before it. */
int http_accepts_json(const char *accept);
/* Whether the media type of content_type is type, ignoring parameters and case. */
int http_media_type_is(const char *content_type, const char *type);
/* Whether s[0..len) is well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF). */
int utf8_valid(const char *s, size_t len);

#endif
