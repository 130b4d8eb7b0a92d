/* A scripted HTTP or HTTPS server on 127.0.0.1, in a thread of the unit test that starts it,
 * for the clients of tenant servers (k8s_client, s3_client). It answers whatever the test's
 * handler writes: a tenant's server is not ours, so what it says (errors, odd headers, endless
 * lists, giant or deeply nested replies) is the clients' input, and this is how a unit test
 * feeds it. Real servers are driven by the integration tests (itest_k8s, itest_s3).
 *
 *   static void answer(const struct loopback_request *rq, struct strbuf *out, void *ud)
 *   { loopback_reply(out, 200, NULL, "{}", 2); }
 *   struct loopback_server srv;
 *   loopback_server_start(&srv, 1, answer, NULL);   // srv.url, srv.ca_pem (TLS)
 *   ...
 *   loopback_server_stop(&srv);
 *
 * One connection at a time, one request per connection ("Connection: close"). */
#ifndef STOWAGE_LOOPBACK_SERVER_H
#define STOWAGE_LOOPBACK_SERVER_H

#include "strbuf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

struct loopback_request {
	char method[16];
	char target[8192];		/* path and query, as sent */
	char host[256];			/* the Host header */
	char header_block[16384];	/* every header line, as sent */
	struct strbuf body;
};

typedef void (*loopback_handler)(const struct loopback_request *rq, struct strbuf *reply, void *ud);

struct loopback_server {
	int fd, port;
	char url[64];			/* http(s)://127.0.0.1:port */
	char *ca_pem;			/* TLS: the server's self-signed certificate, to trust */
	SSL_CTX *ctx;
	pthread_t thread;
	loopback_handler fn;
	void *ud;
	atomic_int stop, requests;
};

/* A whole reply: status line, Content-Length, Connection: close, extra_headers (each line ending
 * in "\r\n", or NULL), then the body. */
static inline void loopback_reply(struct strbuf *out, int status, const char *extra_headers,
				  const void *body, size_t len)
{
	strbuf_addf(out, "HTTP/1.1 %d Scripted\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
		    status, len, extra_headers ? extra_headers : "");
	strbuf_add(out, body, len);
}

/* The value of header name in rq (case-insensitive) into out; 0, or -1 when absent. */
static inline int loopback_header(const struct loopback_request *rq, const char *name, char *out, size_t outlen)
{
	size_t n = strlen(name);

	for (const char *line = rq->header_block; *line;) {
		const char *end = strstr(line, "\r\n");
		size_t len = end ? (size_t)(end - line) : strlen(line);

		if (len > n && line[n] == ':' && strncasecmp(line, name, n) == 0) {
			const char *v = line + n + 1;

			while (*v == ' ')
				v++;
			snprintf(out, outlen, "%.*s", (int)(len - (size_t)(v - line)), v);
			return 0;
		}
		line += len + (end ? 2 : 0);
	}
	return -1;
}

static inline int loopback_io(SSL *ssl, int fd, void *buf, size_t len, int writing)
{
	if (ssl)
		return writing ? SSL_write(ssl, buf, (int)len) : SSL_read(ssl, buf, (int)len);
	return (int)(writing ? send(fd, buf, len, MSG_NOSIGNAL) : recv(fd, buf, len, 0));
}

/* Reads one request; 0, or -1 when the client went away or sent something unreadable. */
static inline int loopback_read_request(SSL *ssl, int fd, struct loopback_request *rq)
{
	struct strbuf in = STRBUF_INIT;
	char buf[16384], *end = NULL, *line;
	size_t head = 0, want = 0;
	int n;

	while (!end) {
		if ((n = loopback_io(ssl, fd, buf, sizeof buf, 0)) <= 0 || in.len > 65536)
			goto fail;
		strbuf_add(&in, buf, (size_t)n);
		end = strstr(in.buf, "\r\n\r\n");
	}
	head = (size_t)(end - in.buf) + 4;
	if (sscanf(in.buf, "%15s %8191s", rq->method, rq->target) != 2)
		goto fail;
	line = strstr(in.buf, "\r\n") + 2;
	snprintf(rq->header_block, sizeof rq->header_block, "%.*s", (int)(end + 2 - line), line);
	if (loopback_header(rq, "Host", rq->host, sizeof rq->host) < 0)
		rq->host[0] = '\0';
	if (loopback_header(rq, "Content-Length", buf, sizeof buf) == 0)
		want = strtoul(buf, NULL, 10);
	while (in.len - head < want) {
		if ((n = loopback_io(ssl, fd, buf, sizeof buf, 0)) <= 0)
			goto fail;
		strbuf_add(&in, buf, (size_t)n);
	}
	strbuf_add(&rq->body, in.buf + head, want);
	strbuf_release(&in);
	return 0;
fail:
	strbuf_release(&in);
	return -1;
}

static inline void *loopback_serve(void *arg)
{
	struct loopback_server *s = arg;

	for (;;) {
		int fd = accept(s->fd, NULL, NULL);
		struct loopback_request *rq;
		struct strbuf reply = STRBUF_INIT;
		SSL *ssl = NULL;

		if (fd < 0)
			continue;
		if (atomic_load(&s->stop)) {
			close(fd);
			break;
		}
		rq = calloc(1, sizeof *rq);
		if (s->ctx) {
			ssl = SSL_new(s->ctx);
			SSL_set_fd(ssl, fd);
			if (SSL_accept(ssl) != 1)
				goto done;
		}
		if (loopback_read_request(ssl, fd, rq) < 0)
			goto done;
		atomic_fetch_add(&s->requests, 1);
		s->fn(rq, &reply, s->ud);
		/* the client may refuse the rest of a reply (a limit): stop writing then */
		for (size_t off = 0; off < reply.len;) {
			size_t chunk = reply.len - off < 65536 ? reply.len - off : 65536;
			int n = loopback_io(ssl, fd, reply.buf + off, chunk, 1);

			if (n <= 0)
				break;
			off += (size_t)n;
		}
		if (ssl)
			SSL_shutdown(ssl);
done:
		SSL_free(ssl);
		ERR_clear_error();
		shutdown(fd, SHUT_RDWR);
		close(fd);
		strbuf_release(&reply);
		strbuf_release(&rq->body);
		free(rq);
	}
	return NULL;
}

/* A fresh key and a self-signed certificate for IP 127.0.0.1. */
static inline int loopback_tls(struct loopback_server *s)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem;
	long len;
	int ok = key != NULL;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1");
	ok = ok && ext && X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
	ok = ok && ext && X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ok = ok && X509_sign(x, key, EVP_sha256()) > 0 && PEM_write_bio_X509(bio, x);
	s->ctx = SSL_CTX_new(TLS_server_method());
	ok = ok && s->ctx && SSL_CTX_use_certificate(s->ctx, x) == 1 && SSL_CTX_use_PrivateKey(s->ctx, key) == 1;
	len = BIO_get_mem_data(bio, &pem);
	s->ca_pem = ok ? strndup(pem, (size_t)len) : NULL;
	BIO_free(bio);
	X509_free(x);
	EVP_PKEY_free(key);
	return ok ? 0 : -1;
}

/* 0 with the server listening on a free port, or -1. */
static inline int loopback_server_start(struct loopback_server *s, int tls, loopback_handler fn, void *ud)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t salen = sizeof sa;

	memset(s, 0, sizeof *s);
	signal(SIGPIPE, SIG_IGN);	/* a client that hangs up mid-reply is a test case, not a crash */
	s->fn = fn;
	s->ud = ud;
	if (tls && loopback_tls(s) < 0)
		return -1;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s->fd, 16) < 0 ||
	    getsockname(s->fd, (struct sockaddr *)&sa, &salen) < 0)
		return -1;
	s->port = ntohs(sa.sin_port);
	snprintf(s->url, sizeof s->url, "%s://127.0.0.1:%d", tls ? "https" : "http", s->port);
	return pthread_create(&s->thread, NULL, loopback_serve, s) == 0 ? 0 : -1;
}

static inline void loopback_server_stop(struct loopback_server *s)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons((uint16_t)s->port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	atomic_store(&s->stop, 1);
	/* wakes the accept() with a connection of our own */
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
		pthread_join(s->thread, NULL);
	if (fd >= 0)
		close(fd);
	close(s->fd);
	SSL_CTX_free(s->ctx);
	free(s->ca_pem);
}

#endif
