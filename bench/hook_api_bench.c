/* What the hook API costs, against the test environment's real API server:
 *
 *   one hook run (fresh sandbox with the k8s library, empty script) vs a plain
 *   luaL_newstate + luaL_openlibs + close (the named peer), per run;
 *   one k8s.get of a ConfigMap from a script (kind already discovered) vs the same GET with
 *   libcurl alone on one reused connection (the named peer), per call.
 *
 * Reads SOURCE_API_URL, SOURCE_CA_FILE, SOURCE_ADMIN_TOKEN. Best of REPEATS interleaved rounds
 * (the machine is shared). */
#include "k8s_client.h"
#include "lua_k8s.h"
#include "strbuf.h"
#include "itest_env.h"

#include <curl/curl.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RUNS 2000
#define GETS 300
#define REPEATS 5

static const struct lua_sandbox_limits limits = { 64u << 20, 1000000000, 600000 };

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static double hook_run_us(struct k8s_client *c)
{
	struct lua_k8s_scope scope = { .client = c, .namespace = "default" };
	struct lua_sandbox_result res;
	double t0 = now_us();

	for (int i = 0; i < RUNS; i++) {
		struct lua_k8s *k = lua_k8s_new(&scope);

		lua_k8s_run(k, &limits, NULL, NULL, "bench.lua", "", 0, NULL, NULL, &res);
		lua_k8s_free(k);
	}
	return (now_us() - t0) / RUNS;
}

static double plain_state_us(void)
{
	double t0 = now_us();

	for (int i = 0; i < RUNS; i++) {
		lua_State *L = luaL_newstate();

		luaL_openlibs(L);
		if (luaL_dostring(L, ""))
			exit(1);
		lua_close(L);
	}
	return (now_us() - t0) / RUNS;
}

/* One run that discovers the kinds with its first call, then one timed run of GETS calls (its
 * sandbox start-up, a few dozen microseconds, is spread over them). */
static double k8s_get_us(struct k8s_client *c)
{
	static const char first[] = "assert(k8s.get('v1', 'ConfigMap', 'kube-root-ca.crt'))";
	struct lua_k8s_scope scope = { .client = c, .namespace = "default" };
	struct lua_k8s *k = lua_k8s_new(&scope);
	struct lua_sandbox_result res;
	char src[256];
	double t0;

	snprintf(src, sizeof src, "for i = 1, %d do assert(k8s.get('v1', 'ConfigMap', 'kube-root-ca.crt')) end", GETS);
	lua_k8s_run(k, &limits, NULL, NULL, "bench.lua", first, strlen(first), NULL, NULL, &res);
	t0 = now_us();
	if (res.ok)
		lua_k8s_run(k, &limits, NULL, NULL, "bench.lua", src, strlen(src), NULL, NULL, &res);
	t0 = (now_us() - t0) / GETS;
	lua_k8s_free(k);
	if (!res.ok) {
		fprintf(stderr, "hook_api_bench: %s\n", res.error);
		exit(1);
	}
	return t0;
}

static size_t sink(char *data, size_t size, size_t n, void *ud)
{
	(void)data;
	*(size_t *)ud += size * n;
	return size * n;
}

static double curl_get_us(const char *url, const char *token, const char *ca)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = NULL;
	struct strbuf auth = STRBUF_INIT, full = STRBUF_INIT;
	struct curl_blob blob = { (void *)ca, strlen(ca), CURL_BLOB_COPY };
	size_t got = 0;
	double t0;

	strbuf_addf(&auth, "Authorization: Bearer %s", token);
	hdr = curl_slist_append(hdr, auth.buf);
	hdr = curl_slist_append(hdr, "Accept: application/json");
	strbuf_addf(&full, "%s/api/v1/namespaces/default/configmaps/kube-root-ca.crt", url);
	curl_easy_setopt(h, CURLOPT_URL, full.buf);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_perform(h);	/* connect once, like the client's reused connection */
	t0 = now_us();
	for (int i = 0; i < GETS; i++)
		if (curl_easy_perform(h) != CURLE_OK) {
			fprintf(stderr, "hook_api_bench: curl GET failed\n");
			exit(1);
		}
	t0 = (now_us() - t0) / GETS;
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	strbuf_release(&auth);
	strbuf_release(&full);
	return t0;
}

static double min_of(double a, double b)
{
	return a < b ? a : b;
}

int main(void)
{
	struct k8s_cluster_conf conf = { 0 };
	double run = 1e18, plain = 1e18, get = 1e18, raw = 1e18;
	struct k8s_client *c;
	char err[256];

	conf.api_url = need_env("SOURCE_API_URL");
	conf.token = need_env("SOURCE_ADMIN_TOKEN");
	conf.ca_pem = slurp(need_env("SOURCE_CA_FILE"));
	c = k8s_client_new(&conf, NULL, err, sizeof err);
	if (!c) {
		fprintf(stderr, "hook_api_bench: %s\n", err);
		return 1;
	}
	for (int r = 0; r < REPEATS; r++) {
		run = min_of(run, hook_run_us(c));
		plain = min_of(plain, plain_state_us());
		get = min_of(get, k8s_get_us(c));
		raw = min_of(raw, curl_get_us(conf.api_url, conf.token, conf.ca_pem));
	}
	printf("hook run (sandbox + k8s library, empty script): %8.1f us   plain Lua state: %8.1f us   ratio %.2f\n",
	       run, plain, run / plain);
	printf("k8s.get of a ConfigMap from a hook:             %8.1f us   libcurl GET alone: %6.1f us   ratio %.2f\n",
	       get, raw, get / raw);
	k8s_client_free(c);
	free(conf.ca_pem);
	return 0;
}
