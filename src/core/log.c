#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *log_program = "stowage";

void log_set_program(const char *name)
{
	log_program = name;
}

size_t log_escape(const char *in, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)in;
	size_t n = 0;

	if (!outlen)
		return 0;
	for (; *p; p++) {
		char esc[8];
		size_t len = 0;

		if (*p == '\n' || *p == '\r' || *p == '\t') {
			esc[len++] = '\\';
			esc[len++] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
		} else if (*p < 0x20 || *p == 0x7f || (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)) {
			/* C0 controls, DEL, and the C1 controls in UTF-8 (U+0080..U+009F, 0xc2 0x80..0x9f) */
			int two = *p == 0xc2;

			for (int i = 0; i <= two; i++) {
				esc[len++] = '\\';
				esc[len++] = 'x';
				esc[len++] = hex[p[i] >> 4];
				esc[len++] = hex[p[i] & 15];
			}
			p += two;
		} else {
			esc[len++] = (char)*p;
		}
		if (n + len >= outlen)
			break;
		for (size_t i = 0; i < len; i++)
			out[n++] = esc[i];
	}
	out[n] = '\0';
	return n;
}

/* Whatever came from outside (a tenant's API server, an S3 endpoint, a path on a volume) may be
 * in the message: no control character reaches the log, so no line can forge another. */
static void log_line(const char *level, const char *fmt, va_list ap)
{
	char msg[2048], safe[4 * 2048];

	vsnprintf(msg, sizeof msg, fmt, ap);
	log_escape(msg, safe, sizeof safe);
	fprintf(stderr, "%s[%ld]: %s: %s\n", log_program, (long)getpid(), level, safe);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("info", fmt, ap);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("warning", fmt, ap);
	va_end(ap);
}

void log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("error", fmt, ap);
	va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("fatal", fmt, ap);
	va_end(ap);
	exit(1);
}
