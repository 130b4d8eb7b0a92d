/* One line per event on stderr: "<program>[pid]: <level>: <message>". */
#ifndef STOWAGE_LOG_H
#define STOWAGE_LOG_H

void log_set_program(const char *name);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs and exits with status 1: for start-up failures only. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
