/* Drives k8s_exec (the runner's exec client, used by hooks) against a real container for
 * tests/integration/test_real_node.py: one exec, its result as one JSON line on stdout.
 *
 *   API_URL=... TOKEN=... CA_FILE=... itest_exec NS POD CONTAINER|- TIMEOUT_MS OUTPUT_MAX ARG...
 *
 * Prints {"rc":0,"exit_code":N,"out":"...","err":"...","truncated":false} when the command ran
 * to its end, {"rc":-1,"reason":"...","message":"..."} when it could not start or finish. */
#include "k8s_client.h"
#include "k8s_exec.h"
#include "strbuf.h"
#include "itest_env.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct k8s_cluster_conf conf = { 0 };
	struct k8s_exec_result r = { 0 };
	struct k8s_error ke = { 0 };
	struct k8s_client *client;
	cJSON *o = cJSON_CreateObject();
	char err[256], *text;
	int rc;

	if (argc < 7) {
		fprintf(stderr, "usage: itest_exec NS POD CONTAINER|- TIMEOUT_MS OUTPUT_MAX ARG...\n");
		return 2;
	}
	conf.api_url = need_env("API_URL");
	conf.token = need_env("TOKEN");
	conf.ca_pem = slurp(need_env("CA_FILE"));
	client = k8s_client_new(&conf, NULL, err, sizeof err);
	if (!client) {
		fprintf(stderr, "itest_exec: %s\n", err);
		return 2;
	}
	rc = k8s_exec(client, argv[1], argv[2], strcmp(argv[3], "-") == 0 ? NULL : argv[3],
		      (const char *const *)argv + 6, (size_t)(argc - 6), atol(argv[4]), (size_t)atol(argv[5]), &r, &ke);
	cJSON_AddNumberToObject(o, "rc", rc);
	if (rc == 0) {
		cJSON_AddNumberToObject(o, "exit_code", r.exit_code);
		cJSON_AddStringToObject(o, "out", r.out ? r.out : "");
		cJSON_AddStringToObject(o, "err", r.err ? r.err : "");
		cJSON_AddBoolToObject(o, "truncated", r.truncated);
	} else {
		char words[600];

		k8s_error_describe(&ke, words, sizeof words);
		cJSON_AddStringToObject(o, "reason", ke.reason);
		cJSON_AddStringToObject(o, "message", words);
	}
	text = cJSON_PrintUnformatted(o);
	printf("%s\n", text);
	cJSON_free(text);
	cJSON_Delete(o);
	k8s_exec_result_free(&r);
	k8s_client_free(client);
	free(conf.ca_pem);
	return 0;
}
