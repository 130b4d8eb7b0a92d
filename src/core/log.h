/* One line per event on stderr: "<program>[pid]: <level>: <message>". Control characters in
 * the message (newline, escape sequences, C1 controls) are written escaped, so text that came
 * from outside cannot start a forged line or drive a terminal. */
#ifndef STOWAGE_LOG_H
#define STOWAGE_LOG_H

#include <stddef.h>

void log_set_program(const char *name);
/* in with \n \r \t and \xNN for every other control character into out (always terminated,
 * cut at outlen - 1 on an escape's boundary); returns the length written. */
size_t log_escape(const char *in, char *out, size_t outlen);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs and exits with status 1: for start-up failures only. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
