/* The pipe between the runner and a hook process: messages of a 4-byte big-endian length and
 * that many bytes of JSON. The hook process asks ({"call": request}), logs ({"log": line}) and
 * ends ({"result": ...}); the runner answers each call ({"reply": ...} or {"error": ...}).
 * Also the codecs both sides share: a k8s_error as JSON, bytes as base64. */
#ifndef STOWAGE_HOOK_LINK_H
#define STOWAGE_HOOK_LINK_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "k8s_client.h"

#define HOOK_LINK_MAX_FROM_HOOK (16u << 20)	/* what the runner reads from a hook process */
#define HOOK_LINK_MAX_TO_HOOK (256u << 20)	/* what a hook process reads from the runner */

/* Writes one message. deadline_ms: as for hook_link_recv; past it the send gives up, -1 with
 * errno ETIMEDOUT (the runner's end is non-blocking: a hook process that stops reading cannot
 * hold it). 0, or -1 with errno. */
int hook_link_send(int fd, const cJSON *msg, long deadline_ms);
/* Reads one message of at most max bytes. deadline_ms: a CLOCK_MONOTONIC time in ms after which
 * the read gives up (0: none; fd must then be blocking). 0, or -1 with err in words
 * ("the hook process closed its pipe", "... sent a message of N bytes", ...). */
int hook_link_recv(int fd, size_t max, long deadline_ms, cJSON **msg, char *err, size_t errlen);

cJSON *hook_link_error_json(const struct k8s_error *err);
void hook_link_error_parse(const cJSON *v, struct k8s_error *err);

/* base64 of len bytes (NUL-terminated; caller frees), and back: NULL when s is not base64. */
char *hook_link_base64(const char *data, size_t len);
char *hook_link_unbase64(const char *s, size_t *len);

#endif
