/* Runs a command in a pod's container through the API server's exec subresource: an HTTP/1.1
 * request upgraded to a WebSocket speaking v5.channel.k8s.io or v4.channel.k8s.io (a channel
 * byte before each message: 1 stdout, 2 stderr, 3 the final v1.Status). Debian's libcurl has no
 * WebSocket API, so curl sets up the TLS connection (same CA and pinned address as the client)
 * and the frames are read and written here. No stdin, no TTY. */
#ifndef STOWAGE_K8S_EXEC_H
#define STOWAGE_K8S_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "k8s_client.h"

#define K8S_EXEC_MAX_ARGS 64
#define K8S_EXEC_MAX_ARG_LEN 4096

struct k8s_exec_result {
	int exit_code;
	char *out, *err;		/* NUL-terminated; each at most output_max bytes */
	size_t out_len, err_len;
	int truncated;			/* 1 when output beyond output_max was dropped */
};

/* Runs argv (argc entries) in container (NULL: the pod's only or default container) of pod in
 * ns, for at most timeout_ms. 0 when the command ran to its end, whatever its exit code; -1 with
 * err when it could not be started or did not finish in time (reason "Timeout"). */
int k8s_exec(struct k8s_client *c, const char *ns, const char *pod, const char *container,
	     const char *const *argv, size_t argc, long timeout_ms, size_t output_max,
	     struct k8s_exec_result *out, struct k8s_error *err);
void k8s_exec_result_free(struct k8s_exec_result *r);

/* ---- WebSocket frames (RFC 6455), exposed for tests ---- */

enum { WS_CONTINUATION = 0, WS_TEXT = 1, WS_BINARY = 2, WS_CLOSE = 8, WS_PING = 9, WS_PONG = 10 };

#define WS_MAX_HEADER 14
#define WS_MAX_PAYLOAD (4u << 20)	/* a larger frame is refused: servers send small ones */

struct ws_frame {
	int fin;
	int opcode;
	const uint8_t *payload;		/* unmasked in place inside the decoded buffer */
	size_t len;
};

/* Writes one final client frame (masked with mask) into out, which holds at least
 * WS_MAX_HEADER + len bytes; returns the number of bytes written. */
size_t ws_frame_encode(int opcode, const void *payload, size_t len, const uint8_t mask[4], uint8_t *out);
/* Decodes the frame at the start of buf (unmasking a masked payload in place). Returns the
 * bytes it takes, 0 when buf does not hold all of it yet, -1 when it is malformed or larger
 * than WS_MAX_PAYLOAD (why says which). */
long ws_frame_decode(uint8_t *buf, size_t len, struct ws_frame *f, const char **why);

/* The exit code a v1.Status from channel 3 reports: 0 for Success, the ExitCode cause for
 * NonZeroExitCode (or "exit status N" ending an InternalError's message, as runtimes that pass
 * on Go's os/exec error say it), -1 when the command could not run (message says why). */
int k8s_exec_status_code(const char *json, size_t len, char *message, size_t msglen);

#endif
