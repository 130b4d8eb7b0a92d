/* Drives the volume functions of the runner (src/runner/job_volumes.h, volume_snapshot_csi.h,
 * mover_pod.h) against the test environment, with a job of the real database filled in here
 * the way the runner fills it: tests/integration/test_volumes.py runs it and checks what it
 * did in the clusters, in MinIO and in the database. Commands:
 *
 *   itest_volumes backup BACKUP_NAME NAMESPACES METHODS_JSON   volumes JSON on stdout
 *   itest_volumes restore VOLUMES_FILE NAMESPACE_MAP_JSON
 *   itest_volumes validate [DRIVER]                             csi_snapshot_validate
 *   itest_volumes datasource VOLUMES_FILE INDEX SAME_CLUSTER NAMESPACE
 *   itest_volumes pod NAMESPACE PVC NODE    creates the mover pod and secret, prints
 *                                           "created NAME", waits for a line on stdin, follows
 *                                           the pod for 3 s, deletes both, prints the result
 *
 * Environment: DATABASE_URL, ORG_ID, JOB_ID, CLUSTER_ID, API_URL, CA_FILE, TOKEN, S3_ENDPOINT,
 * S3_REGION, S3_ACCESS_KEY, S3_SECRET_KEY, S3_BUCKET, REPO_ID, REPO_PREFIX (may be empty),
 * MASTER_KEY_HEX, MOVER_PATH, RUNNER_CONFIG (optional: the runner's configuration file). */
#include "job.h"
#include "job_volumes.h"
#include "mover_pod.h"
#include "volume_snapshot_csi.h"
#include "db.h"
#include "strbuf.h"
#include "itest_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *parse(const char *what, const char *text)
{
	cJSON *o = cJSON_Parse(text);

	if (!o) {
		fprintf(stderr, "itest_volumes: %s is not JSON\n", what);
		exit(2);
	}
	return o;
}

static struct k8s_client *cluster(void)
{
	struct k8s_cluster_conf conf = { 0 };
	struct k8s_client *k;
	char err[512];

	conf.api_url = need_env("API_URL");
	conf.token = need_env("TOKEN");
	conf.ca_pem = slurp(need_env("CA_FILE"));
	if (getenv("K8S_TIMEOUT_MS"))
		conf.timeout_ms = atol(getenv("K8S_TIMEOUT_MS"));
	k = k8s_client_new(&conf, NULL, err, sizeof err);
	free(conf.ca_pem);
	if (!k) {
		fprintf(stderr, "itest_volumes: %s\n", err);
		exit(2);
	}
	return k;
}

static void repository(struct job_repository *repo)
{
	struct s3_conf conf = { 0 };
	char err[512];

	conf.endpoint = need_env("S3_ENDPOINT");
	conf.region = need_env("S3_REGION");
	conf.bucket = need_env("S3_BUCKET");
	conf.access_key = need_env("S3_ACCESS_KEY");
	conf.secret_key = need_env("S3_SECRET_KEY");
	conf.path_style = 1;
	memset(repo, 0, sizeof *repo);
	repo->s3 = s3_client_new(&conf, NULL, err, sizeof err);
	if (!repo->s3) {
		fprintf(stderr, "itest_volumes: %s\n", err);
		exit(2);
	}
	repo->id = atoll(need_env("REPO_ID"));
	repo->bucket = xstrdup(conf.bucket);
	repo->prefix = xstrdup(getenv("REPO_PREFIX") ? getenv("REPO_PREFIX") : "");	/* may be empty */
}

static void master_key(uint8_t key[AEAD_KEY_LEN])
{
	const char *hex = need_env("MASTER_KEY_HEX");

	if (strlen(hex) != AEAD_KEY_LEN * 2) {
		fprintf(stderr, "itest_volumes: MASTER_KEY_HEX must be 64 hex digits\n");
		exit(2);
	}
	for (int i = 0; i < AEAD_KEY_LEN; i++)
		sscanf(hex + 2 * i, "%2hhx", &key[i]);
}

static int cmd_backup(struct job *job, int argc, char **argv)
{
	struct k8s_client *k = cluster();
	struct job_repository repo;
	cJSON *methods, *out = cJSON_CreateArray();
	char *namespaces[16], *list, err[2048] = "", *text;
	size_t n = 0;
	int rc;

	if (argc != 3)
		return 2;
	repository(&repo);
	methods = parse("METHODS_JSON", argv[2]);
	list = xstrdup(argv[1]);
	for (char *save = NULL, *ns = strtok_r(list, ",", &save); ns && n < 16; ns = strtok_r(NULL, ",", &save))
		namespaces[n++] = ns;
	rc = job_backup_volumes(job, k, job->cluster_id, &repo, argv[0], namespaces, n, NULL, methods, out, err, sizeof err);
	text = cJSON_Print(out);
	printf("%s\n", text);
	free(text);
	if (rc < 0)
		fprintf(stderr, "job_backup_volumes: %s\n", err);
	free(list);
	cJSON_Delete(methods);
	cJSON_Delete(out);
	job_repository_close(&repo);
	k8s_client_free(k);
	return rc < 0 ? 1 : 0;
}

static int cmd_restore(struct job *job, int argc, char **argv)
{
	struct k8s_client *k = cluster();
	struct job_repository repo;
	char *text, err[2048] = "";
	cJSON *volumes, *map;
	int rc;

	if (argc != 2)
		return 2;
	repository(&repo);
	text = slurp(argv[0]);
	volumes = parse("VOLUMES_FILE", text);
	map = parse("NAMESPACE_MAP_JSON", argv[1]);
	rc = job_restore_volumes(job, k, job->cluster_id, &repo, volumes, map, 0, err, sizeof err);
	if (rc < 0)
		fprintf(stderr, "job_restore_volumes: %s\n", err);
	free(text);
	cJSON_Delete(volumes);
	cJSON_Delete(map);
	job_repository_close(&repo);
	k8s_client_free(k);
	return rc < 0 ? 1 : 0;
}

static int cmd_validate(int argc, char **argv)
{
	struct k8s_client *k = cluster();
	char err[2048] = "";
	int rc = csi_snapshot_validate(k, "itest", argc > 0 ? argv[0] : NULL, err, sizeof err);

	printf("%s\n", rc == 0 ? "ok" : err);
	k8s_client_free(k);
	return rc < 0 ? 1 : 0;
}

static int cmd_datasource(int argc, char **argv)
{
	char *text, err[1024] = "";
	cJSON *volumes, *ds = NULL;
	int rc;

	if (argc != 4)
		return 2;
	text = slurp(argv[0]);
	volumes = parse("VOLUMES_FILE", text);
	rc = csi_restore_pvc_source(cJSON_GetArrayItem(volumes, atoi(argv[1])), atoi(argv[2]), argv[3], &ds, err, sizeof err);
	if (rc < 0) {
		printf("error: %s\n", err);
	} else if (rc == 0) {
		printf("none\n");
	} else {
		char *s = cJSON_PrintUnformatted(ds);

		printf("%s\n", s);
		free(s);
	}
	cJSON_Delete(ds);
	cJSON_Delete(volumes);
	free(text);
	return rc < 0 ? 1 : 0;
}

static void print_line(const cJSON *line, void *ud)
{
	char *s = cJSON_PrintUnformatted(line);

	(void)ud;
	printf("line %s\n", s);
	free(s);
}

static int cmd_pod(struct job *job, int argc, char **argv)
{
	static const char *const args[] = { "backup", "--repo", "s3://bucket/data", "--repo-id", "1",
					    "--key-file", MOVER_POD_KEY_FILE, "--source", MOVER_POD_MOUNT, NULL };
	struct k8s_client *k = cluster();
	uint8_t key[AEAD_KEY_LEN];
	char name[64], err[1024] = "", line[16];
	cJSON *done = NULL;
	int rc;

	if (argc != 3)
		return 2;
	memcpy(key, job->ctx->master_key, sizeof key);
	snprintf(name, sizeof name, "stowage-mover-%lld-1", job->id);
	struct mover_pod_spec spec = {
		.ns = argv[0], .name = name, .pvc = argv[1], .node = argv[2], .image = "stowage/mover:test",
		.restore = 0, .args = args, .access_key = need_env("S3_ACCESS_KEY"),
		.secret_key = need_env("S3_SECRET_KEY"), .key = key,
	};
	if (mover_pod_create(k, &spec, err, sizeof err) < 0) {
		printf("create failed: %s\n", err);
		return 1;
	}
	printf("created %s\n", name);
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		line[0] = '\0';
	rc = mover_pod_follow(k, &spec, 3000, print_line, NULL, NULL, &done, err, sizeof err);
	printf("follow %s: %s\n", rc == 0 ? "ok" : "failed", rc == 0 ? "" : err);
	cJSON_Delete(done);
	rc = mover_pod_delete(k, &spec, err, sizeof err);
	printf("delete %s: %s\n", rc == 0 ? "ok" : "failed", rc == 0 ? "" : err);
	k8s_client_free(k);
	return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct runner_context ctx = { 0 };
	struct job job = { 0 };
	char err[512];
	int rc;

	if (argc < 2) {
		fprintf(stderr, "usage: itest_volumes backup|restore|validate|datasource|pod ...\n");
		return 2;
	}
	if (strcmp(argv[1], "validate") == 0)
		return cmd_validate(argc - 2, argv + 2);
	if (strcmp(argv[1], "datasource") == 0)
		return cmd_datasource(argc - 2, argv + 2);
	master_key(ctx.master_key);
	ctx.mover_path = need_env("MOVER_PATH");
	ctx.config_path = getenv("RUNNER_CONFIG");
	ctx.work_dir = "/tmp";
	job.ctx = &ctx;
	job.id = atoll(need_env("JOB_ID"));
	job.org_id = atoll(need_env("ORG_ID"));
	job.cluster_id = atoll(need_env("CLUSTER_ID"));
	snprintf(job.kind, sizeof job.kind, "backup");
	job.result = cJSON_CreateObject();
	job.db = db_connect(need_env("DATABASE_URL"), "itest_volumes", err, sizeof err);
	if (!job.db) {
		fprintf(stderr, "itest_volumes: %s\n", err);
		return 2;
	}
	if (strcmp(argv[1], "backup") == 0)
		rc = cmd_backup(&job, argc - 2, argv + 2);
	else if (strcmp(argv[1], "restore") == 0)
		rc = cmd_restore(&job, argc - 2, argv + 2);
	else if (strcmp(argv[1], "pod") == 0)
		rc = cmd_pod(&job, argc - 2, argv + 2);
	else
		rc = 2;
	/* what job_finish would store: the result document */
	{
		char *r = cJSON_PrintUnformatted(job.result);

		fprintf(stderr, "result %s\n", r);
		free(r);
	}
	cJSON_Delete(job.result);
	PQfinish(job.db);
	return rc;
}
