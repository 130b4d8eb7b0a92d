/* The little HTTP that stowage-metrics speaks: one GET per connection, then close. */
#ifndef STOWAGE_METRICS_HTTP_H
#define STOWAGE_METRICS_HTTP_H

#include <stddef.h>

#define METRICS_REQUEST_MAX 8192

/* Reads the request head in buf[0..len): 0 when it is not complete yet; 200 with the path in
 * path (query string dropped) for a GET or HEAD (*head set for HEAD); else the status to answer
 * (400 malformed, 405 another method, 414 path too long, 431 head over METRICS_REQUEST_MAX). */
int metrics_request_parse(const char *buf, size_t len, char *path, size_t pathlen, int *head);

#endif
