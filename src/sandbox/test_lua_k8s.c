/* The hook API without a cluster: argument checks, the namespace scope, dry-run records made
 * without any network, a client pointed at a closed port failing in words; the WebSocket
 * frames and exec statuses of k8s_exec on byte vectors (RFC 6455's own examples); and an exec
 * against a scripted server (tests/loopback_server.h) bounded by the client's deadline. */
#include "check.h"
#include "http_retry.h"
#include "k8s_exec.h"
#include "loopback_server.h"
#include "lua_k8s.h"
#include "strbuf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const struct lua_sandbox_limits limits = { 8 << 20, 10000000, 10000 };

struct run {
	struct lua_sandbox_result res;
	struct strbuf log;
	cJSON *writes;
	int rc;
};

static void collect_log(void *ctx, const char *line)
{
	struct strbuf *sb = ctx;

	strbuf_addf(sb, "%s\n", line);
}

static const char *const granted[] = { "shop-restored", NULL };

static void run_hook(struct run *r, struct k8s_client *client, int dry_run, const char *src)
{
	struct lua_k8s_scope scope = { .client = client, .namespace = "shop", .granted = granted, .dry_run = dry_run };
	struct lua_k8s *k = lua_k8s_new(&scope);
	cJSON *job = cJSON_Parse("{\"phase\":\"pre-backup\",\"plan\":\"nightly\"}");
	cJSON *params = cJSON_Parse("{\"old_domain\":\"a.test\"}");

	memset(r, 0, sizeof *r);
	r->rc = lua_k8s_run(k, &limits, job, params, "hook.lua", src, strlen(src), collect_log, &r->log, &r->res);
	r->writes = cJSON_Duplicate(lua_k8s_writes(k), 1);
	lua_k8s_free(k);
	cJSON_Delete(job);
	cJSON_Delete(params);
}

static void run_free(struct run *r)
{
	strbuf_release(&r->log);
	cJSON_Delete(r->writes);
}

/* The script must fail with an error containing want, having recorded `writes` writes. */
static void expect_error_after(const char *src, const char *want, int writes)
{
	struct run r;

	run_hook(&r, NULL, 1, src);
	CHECK(r.rc < 0);
	if (!strstr(r.res.error, want))
		printf("# script: %s\n#   error: %s\n#   want:  %s\n", src, r.res.error, want);
	CHECK(strstr(r.res.error, want) != NULL);
	CHECK_INTEQ(cJSON_GetArraySize(r.writes), writes);
	run_free(&r);
}

static void expect_error(const char *src, const char *want)
{
	expect_error_after(src, want, 0);
}

static void test_wrong_argument_types(void)
{
	expect_error("k8s.get(1, 'ConfigMap', 'x')", "k8s.get: apiVersion must be a string, got number");
	expect_error("k8s.get('v1', nil, 'x')", "k8s.get: kind must be a string, got nil");
	expect_error("k8s.get('v1', 'ConfigMap', {})", "k8s.get: name must be a string, got table");
	expect_error("k8s.get('v1', 'ConfigMap', '')", "k8s.get: name must be 1 to 253 characters");
	expect_error("k8s.get('v1', 'ConfigMap', 'a/b')", "k8s.get: name \"a/b\" is not an object name");
	expect_error("k8s.get('apps/v1/x', 'Deployment', 'web')", "k8s.get: apiVersion \"apps/v1/x\" is not group/version");
	expect_error("k8s.get('v1', 'Config Map', 'x')", "kind \"Config Map\" is not a kind name");
	expect_error("k8s.list('v1', 'ConfigMap', {selector='a=b'})", "k8s.list: unknown option (the options are labelSelector, namespace)");
	expect_error("k8s.list('v1', 'ConfigMap', 'app=web')", "k8s.list: options must be a table, got string");
	expect_error("k8s.create('x')", "k8s.create: object must be a table, got string");
	expect_error("k8s.create({apiVersion='v1', kind='ConfigMap'})", "k8s.create: the object needs a metadata table");
	expect_error("k8s.create({apiVersion='v1', kind='ConfigMap', metadata={}})", "k8s.create: metadata.name must be a string, got nil");
	expect_error("k8s.create({apiVersion='v1', kind='ConfigMap', metadata={name='x'}, data={f=print}})",
		     "k8s.create: object: a function value cannot be represented at $.data.f");
	expect_error("k8s.patch('v1', 'ConfigMap', 'x', 'data')", "k8s.patch: patch must be a table, got string");
	expect_error("k8s.scale('Pod', 'web', 1)", "k8s.scale: kind must be Deployment or StatefulSet (or ReplicaSet), got \"Pod\"");
	expect_error("k8s.scale('Deployment', 'web', 1.5)", "k8s.scale: replicas must be an integer, got number");
	expect_error("k8s.scale('Deployment', 'web', -1)", "k8s.scale: replicas must be from 0 to 10000");
	expect_error("k8s.wait_ready('Deployment', 'web', 0)", "k8s.wait_ready: timeout_ms must be from 1 to 86400000");
	expect_error("k8s.exec('db-0', nil, 'mysql')", "k8s.exec: argv must be a table of strings, got string");
	expect_error("k8s.exec('db-0', nil, {})", "k8s.exec: argv must hold 1 to 64 strings");
	expect_error("k8s.exec('db-0', nil, {'mysql', 3})", "k8s.exec: argv[2] must be a string, got number");
	expect_error("k8s.exec('db-0', nil, {'true'}, {timeout=3})", "k8s.exec: unknown option");
}

static void test_other_namespace_refused(void)
{
	expect_error("k8s.get('v1', 'ConfigMap', 'x', {namespace='kube-system'})",
		     "k8s.get: namespace \"kube-system\" is outside this hook's scope");
	expect_error("k8s.delete('v1', 'ConfigMap', 'x', {namespace='kube-system'})",
		     "k8s.delete: namespace \"kube-system\" is outside this hook's scope");
	expect_error("k8s.scale('Deployment', 'web', 0, {namespace='other'})", "outside this hook's scope");
	expect_error("k8s.exec('db-0', nil, {'true'}, {namespace='other'})", "outside this hook's scope");
	expect_error("k8s.create({apiVersion='v1', kind='ConfigMap', metadata={name='x', namespace='other'}})",
		     "k8s.create: namespace \"other\" is outside this hook's scope");
	expect_error("k8s.list('v1', 'ConfigMap', {namespace='Bad_NS'})", "is not a namespace name");
}

static void test_dry_run_records_writes_without_network(void)
{
	struct run r;
	const cJSON *w;

	run_hook(&r, NULL, 1,
		 "local cm = k8s.create({apiVersion='v1', kind='ConfigMap', metadata={name='flag'}, data={a='1'}})\n"
		 "assert(cm.metadata.namespace == 'shop')\n"
		 "k8s.patch('v1', 'ConfigMap', 'flag', {data={a=json.null, b='2'}})\n"
		 "assert(k8s.delete('v1', 'ConfigMap', 'flag', {namespace='shop-restored'}) == true)\n"
		 "k8s.scale('Deployment', 'web', 0)\n"
		 "local r = k8s.exec('db-0', 'mysql', {'mysql', '-e', 'FLUSH TABLES'})\n"
		 "assert(r.exit_code == 0 and r.stdout == '' and r.truncated == false)\n"
		 "log(job.phase, job.plan, params.old_domain)\n");
	CHECK_INTEQ(r.rc, 0);
	CHECK_STREQ(r.res.error, "");
	CHECK_STREQ(r.log.buf, "pre-backup\tnightly\ta.test\n");
	CHECK_INTEQ(cJSON_GetArraySize(r.writes), 5);
	w = cJSON_GetArrayItem(r.writes, 0);
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(w, "verb")), "create");
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(w, "namespace")), "shop");
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(w, "body"), "data"), "a")), "1");
	w = cJSON_GetArrayItem(r.writes, 1);
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(w, "verb")), "patch");
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(w, "body"), "data"), "a")));
	w = cJSON_GetArrayItem(r.writes, 2);
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(w, "verb")), "delete");
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(w, "namespace")), "shop-restored");
	w = cJSON_GetArrayItem(r.writes, 3);
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(w, "kind")), "Deployment");
	CHECK_INTEQ(cJSON_GetNumberValue(cJSON_GetObjectItem(w, "replicas")), 0);
	w = cJSON_GetArrayItem(r.writes, 4);
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(w, "container")), "mysql");
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(w, "argv"), 2)), "FLUSH TABLES");
	run_free(&r);

	/* Reads are real: without a cluster they fail, also in a dry run. */
	expect_error("k8s.get('v1', 'ConfigMap', 'x')", "k8s.get: cannot look up kind ConfigMap: no cluster to ask");
	expect_error("k8s.wait_ready('Deployment', 'web', 1000)", "k8s.wait_ready: no cluster to ask");
	/* Too many writes: the run fails rather than growing without bound. */
	expect_error_after("for i = 1, 2000 do k8s.delete('v1', 'ConfigMap', 'x' .. i) end",
			   "k8s.delete: a dry run records at most 1000 writes", 1000);
}

/* A listening socket on a free loopback port, its URL in url: a connection it takes is a
 * request the client began. */
static int listen_loopback(char *url, size_t urllen)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) < 0)
		return -1;
	snprintf(url, urllen, "https://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
	return fd;
}

static int connections_taken(int fd)
{
	int n = 0, c;

	while ((c = accept(fd, NULL, NULL)) >= 0) {
		close(c);
		n++;
	}
	return n;
}

/* What the runner serves a hook process in a dry run: the library there records writes, but a
 * process that broke out of Lua sends its own calls. The runner refuses every write before it
 * asks the cluster anything (discovery included); reads still go out. */
static void test_dry_run_serve_refuses_writes(void)
{
	static const char *const calls[] = {
		"{\"op\":\"delete\",\"group\":\"\",\"version\":\"v1\",\"plural\":\"configmaps\",\"namespace\":\"shop\",\"name\":\"victim\"}",
		"{\"op\":\"patch\",\"group\":\"\",\"version\":\"v1\",\"plural\":\"configmaps\",\"namespace\":\"shop\",\"name\":\"victim\","
		"\"body\":{\"data\":{\"pwned\":\"1\"}}}",
		"{\"op\":\"create\",\"group\":\"\",\"version\":\"v1\",\"plural\":\"configmaps\",\"namespace\":\"shop\","
		"\"body\":{\"metadata\":{\"name\":\"victim\"}}}",
		"{\"op\":\"exec\",\"namespace\":\"shop\",\"pod\":\"db-0\",\"argv\":[\"sh\",\"-c\",\"rm -rf /data\"]}",
	};
	char url[64], err_text[256];
	int fd = listen_loopback(url, sizeof url);
	struct k8s_cluster_conf conf = { .api_url = url, .token = "t", .timeout_ms = 500 };
	struct k8s_client *c = k8s_client_new(&conf, NULL, err_text, sizeof err_text);
	struct lua_k8s_scope scope = { .client = c, .namespace = "shop", .dry_run = 1 };
	struct lua_k8s *k = lua_k8s_new(&scope);
	struct k8s_error err;
	cJSON *req, *reply;

	CHECK(fd >= 0 && c != NULL);
	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
		req = cJSON_Parse(calls[i]);
		CHECK_INTEQ(lua_k8s_serve(k, req, &reply, &err), -1);
		CHECK(reply == NULL);
		CHECK_INTEQ(err.http_status, 403);
		CHECK_STREQ(err.message, "a dry run makes no writes");
		cJSON_Delete(req);
	}
	CHECK_INTEQ(connections_taken(fd), 0);
	/* the listener does see a request: a read goes out (and fails, nobody answers TLS) */
	req = cJSON_Parse("{\"op\":\"discover\",\"left_ms\":200}");
	CHECK_INTEQ(lua_k8s_serve(k, req, &reply, &err), -1);
	CHECK(connections_taken(fd) >= 1);
	cJSON_Delete(req);
	lua_k8s_free(k);
	k8s_client_free(c);
	close(fd);
}

static void test_closed_port_fails_in_words(void)
{
	struct k8s_cluster_conf conf = { .api_url = "https://127.0.0.1:1", .token = "t", .timeout_ms = 2000 };
	char err[256];
	struct k8s_client *c = k8s_client_new(&conf, NULL, err, sizeof err);
	struct run r;

	CHECK(c != NULL);
	run_hook(&r, c, 0, "local ok, e = pcall(k8s.get, 'v1', 'ConfigMap', 'x')\n"
			   "log(e)\n"
			   "k8s.exec('db-0', nil, {'true'})\n");
	CHECK(r.rc < 0);
	CHECK(strstr(r.log.buf, "k8s.get: cannot look up kind ConfigMap: connection refused to 127.0.0.1:1") != NULL);
	CHECK(strstr(r.res.error, "hook.lua:3: k8s.exec: connection refused to 127.0.0.1:1") != NULL);
	run_free(&r);
	k8s_client_free(c);
}

static void test_time_limit_stops_calls(void)
{
	static const struct lua_sandbox_limits short_limits = { 8 << 20, 10000000, 300 };
	struct lua_k8s_scope scope = { .namespace = "shop", .dry_run = 1 };
	struct lua_k8s *k = lua_k8s_new(&scope);
	struct lua_sandbox_result res;
	const char *src = "while true do pcall(k8s.scale, 'Deployment', 'web', 1) end";

	CHECK(lua_k8s_run(k, &short_limits, NULL, NULL, "hook.lua", src, strlen(src), NULL, NULL, &res) < 0);
	CHECK(strstr(res.error, "limit:") != NULL);
	lua_k8s_free(k);
}

/* RFC 6455 section 5.7. */
static void test_frame_vectors(void)
{
	uint8_t hello[] = { 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
	uint8_t masked[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	const uint8_t mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
	uint8_t out[WS_MAX_HEADER + 70000], *big;
	struct ws_frame f;
	const char *why = NULL;

	CHECK_INTEQ(ws_frame_decode(hello, sizeof hello, &f, &why), 7);
	CHECK(f.fin && f.opcode == WS_TEXT && f.len == 5 && memcmp(f.payload, "Hello", 5) == 0);
	CHECK_INTEQ(ws_frame_decode(masked, sizeof masked, &f, &why), 11);
	CHECK(f.len == 5 && memcmp(f.payload, "Hello", 5) == 0);
	CHECK_INTEQ(ws_frame_encode(WS_TEXT, "Hello", 5, mask, out), 11);
	CHECK(memcmp(out, (uint8_t[]){ 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 }, 11) == 0);
	/* Incomplete input asks for more, byte by byte. */
	for (size_t n = 0; n < sizeof hello; n++)
		CHECK_INTEQ(ws_frame_decode(hello, n, &f, &why), 0);

	/* 256 bytes: a 16-bit length; 65536 bytes: a 64-bit length. */
	big = calloc(1, 65536);
	CHECK_INTEQ(ws_frame_encode(WS_BINARY, big, 256, mask, out), 2 + 2 + 4 + 256);
	CHECK(out[0] == 0x82 && out[1] == (0x80 | 126) && out[2] == 0x01 && out[3] == 0x00);
	CHECK_INTEQ(ws_frame_decode(out, 2 + 2 + 4 + 256, &f, &why), 264);
	CHECK(f.len == 256 && f.payload[255] == 0);
	CHECK_INTEQ(ws_frame_encode(WS_BINARY, big, 65536, mask, out), 2 + 8 + 4 + 65536);
	CHECK(out[1] == (0x80 | 127) && out[7] == 0x01 && out[8] == 0 && out[9] == 0);
	CHECK_INTEQ(ws_frame_decode(out, 2 + 8 + 4 + 65536, &f, &why), 2 + 8 + 4 + 65536);
	CHECK(f.len == 65536 && f.payload[0] == 0 && f.payload[65535] == 0);
	free(big);

	/* Malformed: reserved bits, oversized, fragmented control frames. */
	uint8_t rsv[] = { 0xc1, 0x00 };
	CHECK_INTEQ(ws_frame_decode(rsv, sizeof rsv, &f, &why), -1);
	CHECK_STREQ(why, "reserved bits set in a WebSocket frame");
	uint8_t huge[] = { 0x82, 0x7f, 0, 0, 0, 1, 0, 0, 0, 0 };
	CHECK_INTEQ(ws_frame_decode(huge, sizeof huge, &f, &why), -1);
	CHECK_STREQ(why, "a WebSocket frame larger than 4 MiB");
	uint8_t ping[] = { 0x09, 0x00 };
	CHECK_INTEQ(ws_frame_decode(ping, sizeof ping, &f, &why), -1);

	/* An exec stream message: channel byte 1 (stdout) then the bytes. */
	uint8_t msg[] = { 0x82, 0x04, 0x01, 'o', 'k', '\n' };
	CHECK_INTEQ(ws_frame_decode(msg, sizeof msg, &f, &why), 6);
	CHECK(f.payload[0] == 1 && f.len == 4);
}

static void test_exec_status(void)
{
	char msg[256];
	const char *ok = "{\"metadata\":{},\"status\":\"Success\"}";
	const char *three = "{\"status\":\"Failure\",\"message\":\"command terminated with non-zero exit code: exit status 3\","
			    "\"reason\":\"NonZeroExitCode\",\"details\":{\"causes\":[{\"reason\":\"ExitCode\",\"message\":\"3\"}]}}";
	const char *notfound = "{\"status\":\"Failure\",\"message\":\"exec: \\\"nosuch\\\": executable file not found\","
			       "\"reason\":\"InternalError\"}";

	CHECK_INTEQ(k8s_exec_status_code(ok, strlen(ok), msg, sizeof msg), 0);
	CHECK_INTEQ(k8s_exec_status_code(three, strlen(three), msg, sizeof msg), 3);
	CHECK_INTEQ(k8s_exec_status_code(notfound, strlen(notfound), msg, sizeof msg), -1);
	CHECK_STREQ(msg, "exec: \"nosuch\": executable file not found");
	const char *kwok = "{\"status\":\"Failure\",\"message\":\"Internal error occurred: error executing command in container: "
			   "cmd wait: sh -c exit 7: exit status 7\",\"reason\":\"InternalError\"}";
	CHECK_INTEQ(k8s_exec_status_code(kwok, strlen(kwok), msg, sizeof msg), 7);
	CHECK_INTEQ(k8s_exec_status_code("nope", 4, msg, sizeof msg), -1);
	CHECK_STREQ(msg, "the command's status is not JSON");
}

/* Discovery with nothing in it, and an exec that prints "hi" and succeeds: "h", then 10000
 * empty continuations (20 KB: more than one read of 16 KiB), then the rest. */
static void answer_exec(const struct loopback_request *rq, struct strbuf *out, void *ud)
{
	static const char frames[] = "\x82\x15\x03{\"status\":\"Success\"}" "\x88\x00";
	unsigned char digest[SHA_DIGEST_LENGTH];
	char key[128], accept[64];
	struct strbuf k = STRBUF_INIT;

	(void)ud;
	if (!strstr(rq->target, "/exec?") || loopback_header(rq, "Sec-WebSocket-Key", key, sizeof key) < 0) {
		const char *empty = "{\"kind\":\"APIGroupDiscoveryList\",\"items\":[]}";

		loopback_reply(out, 200, "Content-Type: application/json\r\n", empty, strlen(empty));
		return;
	}
	strbuf_addf(&k, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
	SHA1((const unsigned char *)k.buf, k.len, digest);
	EVP_EncodeBlock((unsigned char *)accept, digest, sizeof digest);
	strbuf_release(&k);
	strbuf_addf(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		    "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n", accept);
	strbuf_add(out, "\x02\x02\x01h", 4);
	for (int i = 0; i < 10000; i++)
		strbuf_add(out, "\x00\x00", 2);
	strbuf_add(out, "\x80\x02i\n", 4);
	strbuf_add(out, frames, sizeof frames - 1);
}

static void test_exec_keeps_the_clients_deadline(void)
{
	struct loopback_server srv;
	struct k8s_cluster_conf conf = { .token = "t" };
	const char *argv[] = { "true" };
	struct k8s_exec_result res;
	struct k8s_error e;
	struct k8s_client *c;
	struct lua_k8s *k;
	cJSON *req, *reply = NULL;
	char err[256];

	CHECK_INTEQ(loopback_server_start(&srv, 1, answer_exec, NULL), 0);
	conf.api_url = srv.url;
	conf.ca_pem = srv.ca_pem;
	c = k8s_client_new(&conf, NULL, err, sizeof err);
	CHECK(c != NULL);
	CHECK_INTEQ(k8s_exec(c, "shop", "db-0", NULL, argv, 1, 10000, 1024, &res, &e), 0);
	CHECK_STREQ(res.out, "hi\n");
	CHECK_INTEQ(res.exit_code, 0);
	k8s_exec_result_free(&res);
	/* a deadline of the client's, here already past, ends an exec that asked for a day */
	k8s_client_set_deadline(c, http_retry_now_ms() - 1);
	CHECK_INTEQ(k8s_exec(c, "shop", "db-0", NULL, argv, 1, 86400000, 1024, &res, &e), -1);
	CHECK_STREQ(e.reason, "Timeout");
	CHECK_INTEQ(atomic_load(&srv.requests), 1);
	k8s_exec_result_free(&res);
	k8s_client_set_deadline(c, 0);

	/* a hook's exec: the time the hook has left (left_ms, the runner's count) bounds it */
	k = lua_k8s_new(&(struct lua_k8s_scope){ .client = c, .namespace = "shop" });
	req = cJSON_Parse("{\"op\":\"exec\",\"namespace\":\"shop\",\"pod\":\"db-0\",\"argv\":[\"true\"],"
			  "\"timeout_ms\":86400000,\"left_ms\":10000}");
	CHECK_INTEQ(lua_k8s_serve(k, req, &reply, &e), 0);
	CHECK_INTEQ(cJSON_GetNumberValue(cJSON_GetObjectItem(reply, "exit_code")), 0);
	cJSON_Delete(reply);
	reply = NULL;
	cJSON_SetNumberValue(cJSON_GetObjectItem(req, "left_ms"), 0);
	CHECK_INTEQ(lua_k8s_serve(k, req, &reply, &e), -1);
	CHECK_STREQ(e.reason, "Timeout");
	CHECK(reply == NULL);
	cJSON_Delete(req);
	lua_k8s_free(k);
	k8s_client_free(c);
	loopback_server_stop(&srv);
}

int main(void)
{
	RUN(test_wrong_argument_types);
	RUN(test_other_namespace_refused);
	RUN(test_dry_run_records_writes_without_network);
	RUN(test_dry_run_serve_refuses_writes);
	RUN(test_closed_port_fails_in_words);
	RUN(test_time_limit_stops_calls);
	RUN(test_frame_vectors);
	RUN(test_exec_status);
	RUN(test_exec_keeps_the_clients_deadline);
	return check_done();
}
