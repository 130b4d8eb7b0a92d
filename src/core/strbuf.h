/* A growable byte buffer, always NUL-terminated. Allocation failure aborts: a worker that
 * cannot allocate a few KiB cannot do anything useful, and callers stay simple. */
#ifndef STOWAGE_STRBUF_H
#define STOWAGE_STRBUF_H

#include <stddef.h>

struct strbuf {
	char *buf;
	size_t len;
	size_t cap;
};

#define STRBUF_INIT { NULL, 0, 0 }

void strbuf_grow(struct strbuf *sb, size_t extra);
void strbuf_add(struct strbuf *sb, const void *data, size_t len);
void strbuf_addstr(struct strbuf *sb, const char *s);
void strbuf_addch(struct strbuf *sb, char c);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_reset(struct strbuf *sb);
/* Hands the string to the caller (never NULL) and leaves sb empty. */
char *strbuf_take(struct strbuf *sb);
void strbuf_release(struct strbuf *sb);
/* Appends the whole of the file at path, at most max bytes of it (SIZE_MAX: all). 0, or -1 with
 * errno (the open's or the read's; EFBIG when the file holds more than max) and sb as it was. */
int strbuf_read_file(struct strbuf *sb, const char *path, size_t max);

/* Allocation helpers that abort on failure. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Writes a sentence into a caller's err buffer (nothing when err is NULL or errlen 0). */
void err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
char *xstrndup(const char *s, size_t n);

#endif
