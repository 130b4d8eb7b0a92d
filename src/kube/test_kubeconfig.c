#include "kubeconfig.h"
#include "check.h"

#include <stdlib.h>
#include <unistd.h>

/* A self-signed CA certificate (prime256v1), base64 as kubeconfig files carry it. */
#define CA_DATA "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJrVENDQVRlZ0F3SUJBZ0lVZFpGMngxRW84c1ltdE1HMm12MEIzT0cxTndFd0NnWUlLb1pJemowRUF3SXcKSFRFYk1Ca0dBMVVFQXd3U2EzVmlaV052Ym1acFp5MTBaWE4wTFdOaE1DQVhEVEkyTVRFeU5URXlOVE0wTjFvWQpEekl4TWpZeE1UQXhNVEkxTXpRM1dqQWRNUnN3R1FZRFZRUUREQkpyZFdKbFkyOXVabWxuTFhSbGMzUXRZMkV3CldUQVRCZ2NxaGtqT1BRSUJCZ2dxaGtqT1BRTUJCd05DQUFRZW0yaUFzemVsUWF0ei8wdUVVUmJVYWM5YXc5SHEKU0RMVDBBSEpQTDdoUXdVRkZlVmFUajZMRTVRWlNZNFVBeXJxV0c3bnFvODRNT3JXOEszMThuaHdvMU13VVRBZApCZ05WSFE0RUZnUVVRbFhiWnFzQlpHSzlWVWFhRk84ZWVmU0J3Zmd3SHdZRFZSMGpCQmd3Rm9BVVFsWGJacXNCClpHSzlWVWFhRk84ZWVmU0J3Zmd3RHdZRFZSMFRBUUgvQkFVd0F3RUIvekFLQmdncWhrak9QUVFEQWdOSUFEQkYKQWlCR3VvM2dSNmdKNHFqbm5pbm0zWXhtczJGSmJHbC8vcWl3MjRrWDQyeXE4QUloQU1makJrZ1l3MTREdy9kUAo0cG00UEFhdlVHWDd4VlBnbEFwTG9lYVJtQ3pFCi0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K"

static int parse(const char *yaml, const char *context, int allow_files, struct k8s_cluster_conf *conf,
		 char *err, size_t errlen)
{
	struct kubeconfig_options opt = { context, allow_files };

	return kubeconfig_parse(yaml, strlen(yaml), &opt, conf, NULL, 0, err, errlen);
}

static const char two_contexts[] =
	"apiVersion: v1\n"
	"kind: Config\n"
	"clusters:\n"
	"- name: prod\n"
	"  cluster:\n"
	"    server: https://prod.example:6443\n"
	"    certificate-authority-data: " CA_DATA "\n"
	"- name: dev\n"
	"  cluster:\n"
	"    server: https://10.0.0.5:6443\n"
	"users:\n"
	"- name: robot\n"
	"  user:\n"
	"    token: abc.def\n"
	"- name: human\n"
	"  user:\n"
	"    client-certificate-data: AAAA\n"
	"    client-key-data: AAAA\n"
	"contexts:\n"
	"- name: prod-robot\n"
	"  context: {cluster: prod, user: robot, namespace: apps}\n"
	"- name: dev-human\n"
	"  context:\n"
	"    cluster: dev\n"
	"    user: human\n"
	"current-context: prod-robot\n";

static void test_current_context_with_ca_data(void)
{
	struct k8s_cluster_conf conf;
	struct kubeconfig_options opt = { NULL, 0 };
	char err[512] = "", ctx[64] = "";

	CHECK_INTEQ(kubeconfig_parse(two_contexts, strlen(two_contexts), &opt, &conf, ctx, sizeof ctx, err, sizeof err), 0);
	CHECK_STREQ(err, "");
	CHECK_STREQ(ctx, "prod-robot");
	CHECK_STREQ(conf.api_url, "https://prod.example:6443");
	CHECK_STREQ(conf.token, "abc.def");
	CHECK(conf.ca_pem && strncmp(conf.ca_pem, "-----BEGIN CERTIFICATE-----\n", 28) == 0);
	CHECK(!conf.insecure_skip_verify);
	kubeconfig_conf_free(&conf);
}

static void test_named_context_with_client_cert_user(void)
{
	struct k8s_cluster_conf conf;
	char err[512] = "";

	CHECK_INTEQ(parse(two_contexts, "dev-human", 0, &conf, err, sizeof err), -1);
	CHECK_STREQ(err, "kubeconfig line 17: user \"human\" uses client certificates; Stowage needs a bearer token");
	CHECK(conf.api_url == NULL && conf.token == NULL);
}

static void test_missing_context_and_names(void)
{
	struct k8s_cluster_conf conf;
	char err[512] = "";

	CHECK_INTEQ(parse(two_contexts, "staging", 0, &conf, err, sizeof err), -1);
	CHECK_STREQ(err, "kubeconfig line 20: context \"staging\" not found (contexts: \"prod-robot\", \"dev-human\")");
	CHECK_INTEQ(parse("clusters: []\nusers: []\ncontexts: []\n", NULL, 0, &conf, err, sizeof err), -1);
	CHECK_STREQ(err, "kubeconfig line 1: no context chosen and no current-context set");
	CHECK_INTEQ(parse("current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n"
			  "clusters:\n- name: other\n  cluster: {server: https://x}\nusers: []\n", NULL, 0, &conf, err, sizeof err), -1);
	CHECK_STREQ(err, "kubeconfig line 4: cluster \"c\" not found (clusters: \"other\")");
}

static void test_other_user_kinds_refused(void)
{
	struct k8s_cluster_conf conf;
	char err[512] = "";
	const char *head = "current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n"
			   "clusters:\n- name: c\n  cluster: {server: https://x}\nusers:\n- name: u\n  user:\n";
	char doc[1024];

	snprintf(doc, sizeof doc, "%s    exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}\n", head);
	CHECK_INTEQ(parse(doc, NULL, 0, &conf, err, sizeof err), -1);
	CHECK(strstr(err, "kubeconfig line 11: user \"u\" runs an exec plugin") == err);
	snprintf(doc, sizeof doc, "%s    auth-provider: {name: gcp}\n", head);
	CHECK_INTEQ(parse(doc, NULL, 0, &conf, err, sizeof err), -1);
	CHECK(strstr(err, "uses an auth provider; Stowage needs a bearer token") != NULL);
	snprintf(doc, sizeof doc, "%s    username: admin\n    password: secret\n", head);
	CHECK_INTEQ(parse(doc, NULL, 0, &conf, err, sizeof err), -1);
	CHECK(strstr(err, "has no token (it uses a user name and password)") != NULL);
	CHECK(strstr(err, "secret") == NULL);
	snprintf(doc, sizeof doc, "%s    tokenFile: /etc/shadow\n", head);
	CHECK_INTEQ(parse(doc, NULL, 0, &conf, err, sizeof err), -1);
	CHECK(strstr(err, "names a token file (tokenFile); an uploaded kubeconfig must carry the token") != NULL);
}

static void test_ca_file_only_when_allowed(void)
{
	struct k8s_cluster_conf conf;
	char err[512] = "", path[] = "/tmp/test_kubeconfig_caXXXXXX", doc[1024];
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	fputs("not a certificate\n", f);
	fclose(f);
	snprintf(doc, sizeof doc, "current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n"
		 "clusters:\n- name: c\n  cluster:\n    server: https://x\n    certificate-authority: %s\n"
		 "users:\n- name: u\n  user: {token: t}\n", path);
	CHECK_INTEQ(parse(doc, NULL, 0, &conf, err, sizeof err), -1);
	CHECK(strstr(err, "kubeconfig line 9: cluster \"c\" names a CA file (certificate-authority)") == err);
	/* Allowed, the file is read, and checked to be a certificate. */
	CHECK_INTEQ(parse(doc, NULL, 1, &conf, err, sizeof err), -1);
	CHECK_STREQ(err, "kubeconfig line 8: cluster \"c\": its certificate authority is not a PEM certificate");
	/* A file past 1 MiB is refused for its size, not read to its end. */
	CHECK_INTEQ(truncate(path, (1 << 20) + 1), 0);
	CHECK_INTEQ(parse(doc, NULL, 1, &conf, err, sizeof err), -1);
	CHECK(strstr(err, "certificate-authority file \"/tmp/test_kubeconfig_ca") != NULL);
	CHECK(strstr(err, "\" is larger than 1 MiB") != NULL);
	unlink(path);
	CHECK_INTEQ(parse(doc, NULL, 1, &conf, err, sizeof err), -1);
	CHECK(strstr(err, "cannot read certificate-authority file") != NULL);
}

static void test_insecure_and_bad_server_refused(void)
{
	struct k8s_cluster_conf conf;
	char err[512] = "";
	const char *tail = "current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n"
			   "users:\n- name: u\n  user: {token: t}\nclusters:\n- name: c\n  cluster:\n";
	char doc[1024];

	snprintf(doc, sizeof doc, "%s    server: https://x\n    insecure-skip-tls-verify: true\n", tail);
	CHECK_INTEQ(parse(doc, NULL, 0, &conf, err, sizeof err), -1);
	CHECK(strstr(err, "sets insecure-skip-tls-verify") != NULL);
	snprintf(doc, sizeof doc, "%s    server: http://x\n", tail);
	CHECK_INTEQ(parse(doc, NULL, 0, &conf, err, sizeof err), -1);
	CHECK_STREQ(err, "kubeconfig line 11: cluster \"c\": server must be an https:// URL");
	snprintf(doc, sizeof doc, "%s    server: https://x\n    certificate-authority-data: '!!!notbase64'\n", tail);
	CHECK_INTEQ(parse(doc, NULL, 0, &conf, err, sizeof err), -1);
	CHECK(strstr(err, "certificate-authority-data is not valid base64") != NULL);
}

static void test_aliases_junk_and_size(void)
{
	struct k8s_cluster_conf conf;
	char err[512] = "";
	char *big;

	CHECK_INTEQ(parse("a: &x [1, 2]\nb: *x\n", NULL, 0, &conf, err, sizeof err), -1);
	CHECK_STREQ(err, "kubeconfig line 2: YAML aliases (*name) are not accepted");
	CHECK_INTEQ(parse("clusters: [\n  unclosed\n", NULL, 0, &conf, err, sizeof err), -1);
	CHECK(strncmp(err, "kubeconfig line 3: ", 19) == 0);
	CHECK_INTEQ(parse("just a string\n", NULL, 0, &conf, err, sizeof err), -1);
	CHECK(strstr(err, "not a kubeconfig") != NULL);
	CHECK_INTEQ(parse("", NULL, 0, &conf, err, sizeof err), -1);
	CHECK_INTEQ(kubeconfig_parse("a: \0b", 5, NULL, &conf, NULL, 0, err, sizeof err), -1);
	CHECK_STREQ(err, "kubeconfig: not a text file (it contains NUL bytes)");
	big = calloc(1, KUBECONFIG_MAX_BYTES + 2);
	memset(big, '#', KUBECONFIG_MAX_BYTES + 1);
	CHECK_INTEQ(kubeconfig_parse(big, KUBECONFIG_MAX_BYTES + 1, NULL, &conf, NULL, 0, err, sizeof err), -1);
	CHECK_STREQ(err, "kubeconfig: larger than 1 MiB");
	free(big);
}

int main(void)
{
	RUN(test_current_context_with_ca_data);
	RUN(test_named_context_with_client_cert_user);
	RUN(test_missing_context_and_names);
	RUN(test_other_user_kinds_refused);
	RUN(test_ca_file_only_when_allowed);
	RUN(test_insecure_and_bad_server_refused);
	RUN(test_aliases_junk_and_size);
	return check_done();
}
