/* stowage: the command-line client of Stowage's JSON API, in the manner of velero and kubectl
 * (verbs and nouns, -o json, --wait). It holds an API token, nothing else: every check is the
 * server's. Exit status: 0 done, 1 failed (a request, or a job that did not succeed), 2 usage. */
#include "cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 2
#define HOOK_FILE_MAX (1u << 20)
#define MAX_POSITIONAL 4

struct options {
	const char *positional[MAX_POSITIONAL];
	int npositional;
	int json;		/* -o json */
	int wait;		/* --wait */
	int follow;		/* --follow */
	const char *token;	/* login --token */
	const char *from_backup, *target, *namespace_mappings, *existing_policy, *plan, *kind, *state;
	const char *server;	/* --server: instead of the configured URL */
	double poll_seconds;
};

static struct cli_config config;

static const char usage_text[] =
	"Usage: stowage COMMAND [ARGS] [-o table|json]\n"
	"\n"
	"  login URL [--token TOKEN]       store the server and an API token (else STOWAGE_TOKEN, or read from stdin)\n"
	"  clusters                        list clusters\n"
	"  repositories                    list backup repositories\n"
	"  plans                           list backup plans\n"
	"  backups [--plan PLAN]           list the backups that can be restored\n"
	"  backup run PLAN [--wait]        run a backup plan now\n"
	"  restore create [NAME] --from-backup ID --target CLUSTER [--namespace-mappings src:dst,...]\n"
	"                 [--existing-resource-policy skip|update] [--wait]\n"
	"                                  create a restore plan of a backup and run it\n"
	"  restore run PLAN [--wait]       run an existing restore plan\n"
	"  migrate PLAN [--wait]           pre-check and run a migration plan\n"
	"  jobs [--kind KIND] [--state STATE]\n"
	"                                  list the newest jobs\n"
	"  job get ID                      one job: state, phase, progress, error\n"
	"  job logs ID [--follow]          a job's log; --follow until the job ends\n"
	"  hooks check FILE                compile a Lua hook on the server and show its syntax error\n"
	"\n"
	"The server and token come from `stowage login` ($XDG_CONFIG_HOME/stowage/config), or from\n"
	"STOWAGE_URL and STOWAGE_TOKEN. A plan or cluster is named by its name or its id.\n"
	"Exit status: 0 done, 1 failed (a refused request, a job that did not succeed), 2 usage.\n";

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "stowage: ");
	fprintf(stderr, fmt, arg ? arg : "");
	fprintf(stderr, "\nRun `stowage --help` for usage.\n");
	return EXIT_USAGE;
}

/* ---- talking to the server ---- */

/* Prints the server's error for a reply that is not 2xx/303: its message and the fields'. */
static void print_reply_error(const char *what, const struct cli_reply *reply)
{
	cJSON *root = cJSON_ParseWithLength(reply->body.buf ? reply->body.buf : "", reply->body.len);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
	const cJSON *form = cJSON_GetObjectItemCaseSensitive(root, "form_error");
	const cJSON *fields = cJSON_GetObjectItemCaseSensitive(root, "fields"), *f;
	struct strbuf out = STRBUF_INIT;

	strbuf_addf(&out, "stowage: %s: ", what);
	if (cJSON_IsString(msg))
		cli_escape_terminal(&out, msg->valuestring, 500);
	else if (cJSON_IsString(form))
		cli_escape_terminal(&out, form->valuestring, 500);
	else
		strbuf_addstr(&out, "the server refused");
	strbuf_addf(&out, " (HTTP %ld)\n", reply->status);
	cJSON_ArrayForEach(f, fields) {
		const cJSON *fe = cJSON_GetObjectItemCaseSensitive(f, "error");
		if (cJSON_IsString(fe)) {
			strbuf_addstr(&out, "  ");
			cli_escape_terminal(&out, fe->valuestring, 500);
			strbuf_addch(&out, '\n');
		}
	}
	if (!cJSON_IsString(msg) && cJSON_IsString(form)) {
		const cJSON *ce = cJSON_GetObjectItemCaseSensitive(root, "check_error");
		if (cJSON_IsString(ce)) {
			strbuf_addstr(&out, "  ");
			cli_escape_terminal(&out, ce->valuestring, 500);
			strbuf_addch(&out, '\n');
		}
	}
	fputs(out.buf, stderr);
	strbuf_release(&out);
	cJSON_Delete(root);
}

/* The request a page waits for ({"live_pending": {"id": N}}: a runner is reading the cluster),
 * or 0. */
static long long pending_request(const struct cli_reply *reply)
{
	cJSON *root = reply->status == 200 ? cJSON_ParseWithLength(reply->body.buf ? reply->body.buf : "", reply->body.len)
					   : NULL;
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "live_pending"), "id");
	long long n = cJSON_IsNumber(id) ? (long long)id->valuedouble : 0;

	cJSON_Delete(root);
	return n;
}

/* Waits until runner request id is answered (a runner checks the cluster for the server: its
 * web workers connect to none), at most two minutes. */
static int await_request(long long id, char *err, size_t errlen)
{
	char path[64];

	snprintf(path, sizeof path, "/requests/%lld/state", id);
	for (int i = 0; i < 600; i++) {
		struct cli_reply reply;
		if (cli_request(&config, "GET", path, NULL, &reply, err, errlen) < 0)
			return -1;
		cJSON *root = cJSON_ParseWithLength(reply.body.buf ? reply.body.buf : "", reply.body.len);
		int answered = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "request"),
									      "answered"));
		cJSON_Delete(root);
		cli_reply_free(&reply);
		if (answered)
			return 0;
		usleep(200000);
	}
	snprintf(err, errlen, "no runner answered request %lld within two minutes", id);
	return -1;
}

/* method path; the reply's JSON when its status is one of ok_status (or any 2xx when 0), else
 * NULL after saying why. *status gets the status when not NULL. A form that first needs a
 * runner's reading of the cluster is sent again once the runner has answered. */
static cJSON *api(const char *method, const char *path, const cJSON *body, long ok_status, long *status)
{
	struct cli_reply reply;
	char err[512], what[300];
	cJSON *root;
	long long pending;

	for (int round = 0;; round++) {
		if (cli_request(&config, method, path, body, &reply, err, sizeof err) < 0) {
			fprintf(stderr, "stowage: %s\n", err);
			return NULL;
		}
		if (strcmp(method, "POST") != 0 || round == 10 || !(pending = pending_request(&reply)))
			break;
		cli_reply_free(&reply);
		if (await_request(pending, err, sizeof err) < 0) {
			fprintf(stderr, "stowage: %s %s: %s\n", method, path, err);
			return NULL;
		}
	}
	if (status)
		*status = reply.status;
	snprintf(what, sizeof what, "%s %s", method, path);
	if (ok_status ? reply.status != ok_status : (reply.status < 200 || reply.status > 299)) {
		if (reply.status == 401)
			fprintf(stderr, "stowage: the server refused the token (HTTP 401): run `stowage login` with a valid one\n");
		else
			print_reply_error(what, &reply);
		cli_reply_free(&reply);
		return NULL;
	}
	root = cJSON_ParseWithLength(reply.body.buf ? reply.body.buf : "", reply.body.len);
	if (!root)
		fprintf(stderr, "stowage: %s: the answer is not JSON (is %s a Stowage server?)\n", what, config.url);
	cli_reply_free(&reply);
	return root;
}

/* The id at the end of a 303's {"redirect": "/jobs/42"}, or 0. */
static long long redirect_id(const cJSON *reply, const char *prefix)
{
	const cJSON *loc = cJSON_GetObjectItemCaseSensitive(reply, "redirect");
	size_t n = strlen(prefix);

	if (!cJSON_IsString(loc) || strncmp(loc->valuestring, prefix, n) != 0)
		return 0;
	return strtoll(loc->valuestring + n, NULL, 10);
}

static int print_json(const cJSON *value)
{
	char *text = cJSON_Print(value);

	puts(text);
	free(text);
	return 0;
}

/* GET path and print its member list: as a table, or as JSON. */
static int list(const struct options *o, const char *path, const char *member, const struct cli_column *cols, size_t n)
{
	cJSON *root = api("GET", path, NULL, 200, NULL);
	const cJSON *items;

	if (!root)
		return 1;
	items = cJSON_GetObjectItemCaseSensitive(root, member);
	if (o->json)
		print_json(cJSON_IsArray(items) ? items : root);
	else
		cli_table_print(stdout, items, cols, n);
	cJSON_Delete(root);
	return 0;
}

/* The id of the item of GET path's member list named by ref (its name, or its id); 0 after
 * saying none or several match. */
static long long resolve(const char *path, const char *member, const char *noun, const char *ref)
{
	cJSON *root = api("GET", path, NULL, 200, NULL);
	const cJSON *item;
	long long found = 0, by_id = 0;
	char *end;

	if (!root)
		return 0;
	errno = 0;
	long long want = strtoll(ref, &end, 10);
	int numeric = !errno && *ref && !*end && want > 0;
	cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(root, member)) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "id");
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "name");
		if (!cJSON_IsNumber(id))
			continue;
		if (cJSON_IsString(name) && strcmp(name->valuestring, ref) == 0)
			found = (long long)id->valuedouble;
		if (numeric && (long long)id->valuedouble == want)
			by_id = want;
	}
	cJSON_Delete(root);
	if (!found)
		found = by_id;
	if (!found) {
		struct strbuf out = STRBUF_INIT;
		cli_escape_terminal(&out, ref, 100);
		fprintf(stderr, "stowage: there is no %s %s\n", noun, out.buf);
		strbuf_release(&out);
	}
	return found;
}

/* ---- waiting for a job ---- */

static void sleep_seconds(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static const char *job_string(const cJSON *job, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(job, key);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static double job_number(const cJSON *job, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(job, key);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* One line of progress: "job 42 backup running: copying volumes 37% (12/40 items, 1.2 MiB)". */
static void job_progress_line(struct strbuf *out, const cJSON *job)
{
	strbuf_addf(out, "job %lld %s ", (long long)job_number(job, "id"), job_string(job, "kind"));
	cli_escape_terminal(out, job_string(job, "state"), 20);
	if (*job_string(job, "phase")) {
		strbuf_addstr(out, ": ");
		cli_escape_terminal(out, job_string(job, "phase"), 60);
	}
	strbuf_addf(out, " %.0f%% (%.0f/%.0f items", job_number(job, "percent"), job_number(job, "items_done"),
		    job_number(job, "items_total"));
	if (job_number(job, "items_failed") > 0)
		strbuf_addf(out, ", %.0f failed", job_number(job, "items_failed"));
	strbuf_addstr(out, ", ");
	cli_escape_terminal(out, job_string(job, "bytes_done_text"), 20);
	strbuf_addch(out, ')');
	if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(job, "queue_position")))
		strbuf_addf(out, ", number %.0f in the cluster's queue", job_number(job, "queue_position"));
}

/* The job object of GET /jobs/:id, or with progress of GET /jobs/:id/progress (the job's row
 * alone: what a poll needs); NULL after saying why. Caller deletes *root. */
static const cJSON *job_fetch(long long id, int progress, cJSON **root)
{
	char path[64];

	snprintf(path, sizeof path, "/jobs/%lld%s", id, progress ? "/progress" : "");
	*root = api("GET", path, NULL, 200, NULL);
	return *root ? cJSON_GetObjectItemCaseSensitive(*root, "job") : NULL;
}

static int job_succeeded(const cJSON *job)
{
	return strcmp(job_string(job, "state"), "succeeded") == 0;
}

/* Polls the job until it ends, showing progress on a terminal (one rewritten line) or a line per
 * change elsewhere; prints the outcome. 0 when it succeeded, 1 otherwise. */
static int job_wait(const struct options *o, long long id)
{
	int tty = isatty(STDERR_FILENO);
	struct strbuf line = STRBUF_INIT, last = STRBUF_INIT;
	int rc = 1;

	for (;;) {
		cJSON *root;
		const cJSON *job = job_fetch(id, 1, &root);
		if (!job) {
			cJSON_Delete(root);
			break;
		}
		strbuf_reset(&line);
		job_progress_line(&line, job);
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(job, "active"))) {
			if (tty)
				fputs("\r\033[K", stderr);
			rc = job_succeeded(job) ? 0 : 1;
			struct strbuf end = STRBUF_INIT;
			strbuf_addf(&end, "Job %lld %s", id, "");
			cli_escape_terminal(&end, job_string(job, "state"), 20);
			if (*job_string(job, "duration")) {
				strbuf_addstr(&end, " after ");
				cli_escape_terminal(&end, job_string(job, "duration"), 30);
			}
			strbuf_addf(&end, ": %.0f items, %.0f failed, ", job_number(job, "items_done"),
				    job_number(job, "items_failed"));
			cli_escape_terminal(&end, job_string(job, "bytes_done_text"), 20);
			if (*job_string(job, "error")) {
				strbuf_addstr(&end, ". Error: ");
				cli_escape_terminal(&end, job_string(job, "error"), 1000);
			}
			fprintf(stderr, "%s.\n", end.buf);
			if (rc)
				fprintf(stderr, "Run `stowage job logs %lld` for its log.\n", id);
			strbuf_release(&end);
			if (o->json) {
				/* the whole job, with its phases and counts, as `job get` prints it */
				cJSON *whole;
				const cJSON *full = job_fetch(id, 0, &whole);
				if (full)
					print_json(full);
				else
					rc = 1;
				cJSON_Delete(whole);
			}
			cJSON_Delete(root);
			break;
		}
		if (tty) {
			fprintf(stderr, "\r\033[K%s", line.buf);
			fflush(stderr);
		} else if (!last.buf || strcmp(last.buf, line.buf) != 0) {
			fprintf(stderr, "%s\n", line.buf);
		}
		strbuf_reset(&last);
		strbuf_addstr(&last, line.buf);
		cJSON_Delete(root);
		sleep_seconds(o->poll_seconds);
	}
	strbuf_release(&line);
	strbuf_release(&last);
	return rc;
}

/* After a POST that queued job id: wait for it, or say how to watch it. */
static int job_started(const struct options *o, long long id, const char *what)
{
	if (!id) {
		fprintf(stderr, "stowage: the server did not say which job it started\n");
		return 1;
	}
	if (o->wait) {
		fprintf(stderr, "%s: job %lld queued. Waiting for it to finish; Ctrl-C stops waiting, not the job.\n", what, id);
		return job_wait(o, id);
	}
	if (o->json) {
		cJSON *v = cJSON_CreateObject();
		cJSON_AddNumberToObject(v, "job_id", (double)id);
		print_json(v);
		cJSON_Delete(v);
	} else {
		printf("%s: job %lld queued. Watch it with `stowage job get %lld` or `stowage job logs %lld --follow`.\n",
		       what, id, id, id);
	}
	return 0;
}

/* ---- the commands ---- */

static int cmd_clusters(const struct options *o)
{
	static const struct cli_column cols[] = {
		{ "ID", "id" }, { "NAME", "name" }, { "STATUS", "status" }, { "VERSION", "k8s_version" },
		{ "API SERVER", "api_url" }, { "CHECKED", "last_checked" },
	};
	return list(o, "/clusters", "clusters", cols, sizeof cols / sizeof cols[0]);
}

static int cmd_repositories(const struct options *o)
{
	static const struct cli_column cols[] = {
		{ "ID", "id" }, { "NAME", "name" }, { "TYPE", "kind" }, { "BUCKET", "bucket" }, { "PREFIX", "prefix" },
		{ "STATUS", "status" }, { "CHECKED", "last_checked" },
	};
	return list(o, "/repositories", "repositories", cols, sizeof cols / sizeof cols[0]);
}

static int cmd_plans(const struct options *o)
{
	static const struct cli_column cols[] = {
		{ "ID", "id" }, { "NAME", "name" }, { "CLUSTER", "cluster" }, { "NAMESPACES", "namespaces" },
		{ "REPOSITORY", "repository" }, { "SCHEDULE", "schedule" }, { "RETENTION (DAYS)", "retention_days" },
		{ "LAST JOB", "last_job_state" },
	};
	return list(o, "/backup-plans", "plans", cols, sizeof cols / sizeof cols[0]);
}

static int cmd_jobs(const struct options *o)
{
	static const struct cli_column cols[] = {
		{ "ID", "id" }, { "KIND", "kind" }, { "PLAN", "plan" }, { "STATE", "state" }, { "PHASE", "phase" },
		{ "PROGRESS", "percent" }, { "ITEMS", "items_done" }, { "FAILED", "items_failed" },
		{ "BYTES", "bytes_done_text" }, { "STARTED (UTC)", "started_at" }, { "DURATION", "duration" },
	};
	struct strbuf path = STRBUF_INIT;
	CURL *curl = curl_easy_init();
	int rc;

	strbuf_addstr(&path, "/jobs?");
	if (o->kind) {
		char *k = curl_easy_escape(curl, o->kind, 0);
		strbuf_addf(&path, "kind=%s&", k);
		curl_free(k);
	}
	if (o->state) {
		char *s = curl_easy_escape(curl, o->state, 0);
		strbuf_addf(&path, "state=%s", s);
		curl_free(s);
	}
	curl_easy_cleanup(curl);
	rc = list(o, path.buf, "jobs", cols, sizeof cols / sizeof cols[0]);
	strbuf_release(&path);
	return rc;
}

/* Every restorable backup: the succeeded or partially failed backup jobs of each plan. */
static int cmd_backups(const struct options *o)
{
	static const struct cli_column cols[] = {
		{ "BACKUP", "backup_id" }, { "PLAN", "plan" }, { "STATE", "state" }, { "STARTED (UTC)", "started_at" },
		{ "FINISHED (UTC)", "finished_at" }, { "ITEMS", "items_done" }, { "FAILED", "items_failed" },
		{ "BYTES", "bytes_done_text" }, { "JOB", "id" },
	};
	cJSON *root = api("GET", "/jobs?kind=backup", NULL, 200, NULL), *out = cJSON_CreateArray();
	const cJSON *job;
	long long plan = 0;

	if (o->plan && !(plan = resolve("/backup-plans", "plans", "backup plan", o->plan))) {
		cJSON_Delete(root);
		cJSON_Delete(out);
		return 1;
	}
	if (!root) {
		cJSON_Delete(out);
		return 1;
	}
	cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(root, "jobs")) {
		const char *state = job_string(job, "state");
		if (job_number(job, "backup_id") <= 0 || (plan && (long long)job_number(job, "backup_plan_id") != plan))
			continue;
		if (strcmp(state, "succeeded") != 0 && strcmp(state, "partially_failed") != 0)
			continue;
		cJSON_AddItemToArray(out, cJSON_Duplicate(job, 1));
	}
	if (o->json)
		print_json(out);
	else
		cli_table_print(stdout, out, cols, sizeof cols / sizeof cols[0]);
	cJSON_Delete(out);
	cJSON_Delete(root);
	return 0;
}

static int cmd_backup_run(const struct options *o)
{
	long long plan = resolve("/backup-plans", "plans", "backup plan", o->positional[0]);
	char path[64];
	cJSON *body, *reply;
	int rc;

	if (!plan)
		return 1;
	snprintf(path, sizeof path, "/backup-plans/%lld/backup", plan);
	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "confirm", "yes");
	reply = api("POST", path, body, 303, NULL);
	cJSON_Delete(body);
	if (!reply)
		return 1;
	rc = job_started(o, redirect_id(reply, "/jobs/"), "Backup");
	cJSON_Delete(reply);
	return rc;
}

static int restore_activate(const struct options *o, long long plan)
{
	char path[64];
	cJSON *body = cJSON_CreateObject(), *reply;
	int rc;

	snprintf(path, sizeof path, "/restore-plans/%lld/activate", plan);
	cJSON_AddStringToObject(body, "confirm", "yes");
	reply = api("POST", path, body, 303, NULL);
	cJSON_Delete(body);
	if (!reply)
		return 1;
	rc = job_started(o, redirect_id(reply, "/jobs/"), "Restore");
	cJSON_Delete(reply);
	return rc;
}

static int cmd_restore_run(const struct options *o)
{
	long long plan = resolve("/restore-plans", "plans", "restore plan", o->positional[0]);

	return plan ? restore_activate(o, plan) : 1;
}

/* The backup plan of backup id (from its backup job), or 0 after saying so. */
static long long backup_plan_of(long long backup)
{
	cJSON *root = api("GET", "/jobs?kind=backup", NULL, 200, NULL);
	const cJSON *job;
	long long plan = 0;

	cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(root, "jobs"))
		if ((long long)job_number(job, "backup_id") == backup && job_number(job, "backup_plan_id") > 0)
			plan = (long long)job_number(job, "backup_plan_id");
	if (root && !plan)
		fprintf(stderr, "stowage: there is no backup %lld among the newest jobs (see `stowage backups`)\n", backup);
	cJSON_Delete(root);
	return plan;
}

static int cmd_restore_create(const struct options *o)
{
	char *end, name[64], id[24];
	long long backup, plan, cluster, restore;
	struct strbuf map = STRBUF_INIT;
	cJSON *body, *reply;

	if (!o->from_backup || !o->target)
		return usage_error("restore create needs --from-backup ID and --target CLUSTER%s", "");
	errno = 0;
	backup = strtoll(o->from_backup, &end, 10);
	if (errno || *end || backup <= 0)
		return usage_error("--from-backup: %s is not a backup id (see `stowage backups`)", o->from_backup);
	if (!(plan = backup_plan_of(backup)) || !(cluster = resolve("/clusters", "clusters", "cluster", o->target)))
		return 1;
	if (o->npositional > 0)
		snprintf(name, sizeof name, "%s", o->positional[0]);
	else
		snprintf(name, sizeof name, "restore-%lld-%ld", backup, (long)time(NULL));
	for (const char *p = o->namespace_mappings ? o->namespace_mappings : ""; *p; p += strcspn(p, ","), p += *p == ',') {
		strbuf_add(&map, p, strcspn(p, ","));
		strbuf_addch(&map, '\n');
	}
	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "name", name);
	cJSON_AddNumberToObject(body, "target_cluster_id", (double)cluster);
	cJSON_AddStringToObject(body, "namespace_map", map.buf ? map.buf : "");
	cJSON_AddStringToObject(body, "existing_policy", o->existing_policy ? o->existing_policy : "skip");
	cJSON_AddNumberToObject(body, "backup_plan_id", (double)plan);
	snprintf(id, sizeof id, "%lld", backup);
	cJSON_AddStringToObject(body, "backup_id", id);
	strbuf_release(&map);
	reply = api("POST", "/restore-plans", body, 303, NULL);
	cJSON_Delete(body);
	if (!reply)
		return 1;
	restore = redirect_id(reply, "/restore-plans/");
	cJSON_Delete(reply);
	if (!restore) {
		fprintf(stderr, "stowage: the server did not say which restore plan it created\n");
		return 1;
	}
	fprintf(stderr, "Restore plan %s (%lld) created.\n", name, restore);
	return restore_activate(o, restore);
}

static int cmd_migrate(const struct options *o)
{
	long long plan = resolve("/migrations", "migrations", "migration plan", o->positional[0]);
	char path[64];
	cJSON *body, *reply;
	long status = 0;
	int rc;

	if (!plan)
		return 1;
	snprintf(path, sizeof path, "/migrations/%lld/migrate", plan);
	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "confirm", "on");
	reply = api("POST", path, body, 303, &status);
	cJSON_Delete(body);
	if (!reply)
		return 1;
	rc = job_started(o, redirect_id(reply, "/jobs/"), "Migration");
	cJSON_Delete(reply);
	return rc;
}

static long long job_id_arg(const struct options *o)
{
	char *end;
	long long id;

	errno = 0;
	id = strtoll(o->positional[0], &end, 10);
	return errno || *end || id <= 0 ? 0 : id;
}

static int cmd_job_get(const struct options *o)
{
	long long id = job_id_arg(o);
	cJSON *root;
	const cJSON *job;
	struct strbuf line = STRBUF_INIT;

	if (!id)
		return usage_error("job get: %s is not a job id", o->positional[0]);
	if (!(job = job_fetch(id, 0, &root))) {
		cJSON_Delete(root);
		return 1;
	}
	if (o->json) {
		print_json(root);
	} else {
		job_progress_line(&line, job);
		printf("%s\n", line.buf);
		if (*job_string(job, "error")) {
			strbuf_reset(&line);
			cli_escape_terminal(&line, job_string(job, "error"), 2000);
			printf("error: %s\n", line.buf);
		}
	}
	strbuf_release(&line);
	cJSON_Delete(root);
	return 0;
}

/* Writes the log text from offset on, its control characters escaped (newlines kept). */
static void print_log(const struct strbuf *text, size_t from)
{
	struct strbuf out = STRBUF_INIT;

	for (size_t pos = from; pos < text->len;) {
		size_t n = strcspn(text->buf + pos, "\n");
		char *line = xstrndup(text->buf + pos, n);
		cli_escape_terminal(&out, line, (size_t)-1);
		strbuf_addch(&out, '\n');
		free(line);
		pos += n + 1;
	}
	if (out.len)
		fwrite(out.buf, 1, out.len, stdout);
	fflush(stdout);
	strbuf_release(&out);
}

static int cmd_job_logs(const struct options *o)
{
	long long id = job_id_arg(o);
	char path[64], err[512];
	size_t printed = 0;

	if (!id)
		return usage_error("job logs: %s is not a job id", o->positional[0]);
	snprintf(path, sizeof path, "/jobs/%lld/log.txt", id);
	for (;;) {
		struct cli_reply reply;
		int active = 0;
		if (o->follow) {
			/* the state before the log: a job that ends in between shows its last lines */
			cJSON *root;
			const cJSON *job = job_fetch(id, 1, &root);
			if (!job) {
				cJSON_Delete(root);
				return 1;
			}
			active = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(job, "active"));
			cJSON_Delete(root);
		}
		if (cli_request(&config, "GET", path, NULL, &reply, err, sizeof err) < 0) {
			fprintf(stderr, "stowage: %s\n", err);
			return 1;
		}
		if (reply.status != 200) {
			print_reply_error(path, &reply);
			cli_reply_free(&reply);
			return 1;
		}
		/* only whole lines while the job runs; the log only grows */
		size_t upto = reply.body.len;
		while (active && upto > printed && reply.body.buf[upto - 1] != '\n')
			upto--;
		if (upto > printed) {
			struct strbuf part = STRBUF_INIT;
			strbuf_add(&part, reply.body.buf, upto);
			print_log(&part, printed);
			strbuf_release(&part);
			printed = upto;
		}
		cli_reply_free(&reply);
		if (!active)
			return 0;
		sleep_seconds(o->poll_seconds);
	}
}

static int cmd_hooks_check(const struct options *o)
{
	struct strbuf source = STRBUF_INIT, shown = STRBUF_INIT;
	struct cli_reply reply;
	char err[512];
	cJSON *body, *root;
	int rc = 1, loaded;

	cli_escape_terminal(&shown, o->positional[0], 200);
	loaded = strbuf_read_file(&source, o->positional[0], HOOK_FILE_MAX);
	if (loaded < 0 && errno != EFBIG) {
		fprintf(stderr, "stowage: %s: %s\n", shown.buf, strerror(errno));
		goto out;
	}
	if (loaded < 0 || memchr(source.buf, '\0', source.len)) {
		fprintf(stderr, "stowage: %s: not a hook (larger than 1 MiB, or binary)\n", shown.buf);
		goto out;
	}
	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "name", "check");
	cJSON_AddStringToObject(body, "source", source.buf ? source.buf : "");
	if (cli_request(&config, "POST", "/hooks/check", body, &reply, err, sizeof err) < 0) {
		cJSON_Delete(body);
		fprintf(stderr, "stowage: %s\n", err);
		goto out;
	}
	cJSON_Delete(body);
	root = cJSON_ParseWithLength(reply.body.buf ? reply.body.buf : "", reply.body.len);
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(root, "check_ok");
	const cJSON *bad = cJSON_GetObjectItemCaseSensitive(root, "check_error");
	if ((reply.status == 200 && cJSON_IsString(ok)) || (reply.status == 422 && cJSON_IsString(bad))) {
		struct strbuf msg = STRBUF_INIT;
		cli_escape_terminal(&msg, cJSON_IsString(ok) ? ok->valuestring : bad->valuestring, 2000);
		if (o->json) {
			cJSON *v = cJSON_CreateObject();
			cJSON_AddBoolToObject(v, "ok", cJSON_IsString(ok));
			cJSON_AddStringToObject(v, "message", cJSON_IsString(ok) ? ok->valuestring : bad->valuestring);
			print_json(v);
			cJSON_Delete(v);
		} else {
			fprintf(cJSON_IsString(ok) ? stdout : stderr, "%s: %s\n", shown.buf, msg.buf);
		}
		strbuf_release(&msg);
		rc = cJSON_IsString(ok) ? 0 : 1;
	} else {
		print_reply_error("POST /hooks/check", &reply);
	}
	cJSON_Delete(root);
	cli_reply_free(&reply);
out:
	strbuf_release(&shown);
	strbuf_release(&source);
	return rc;
}

/* The token for login: --token, STOWAGE_TOKEN, or a line from stdin (not echoed on a terminal). */
static char *login_token(const struct options *o)
{
	const char *env = getenv("STOWAGE_TOKEN");
	char line[512];
	struct termios old, quiet;
	int tty = isatty(STDIN_FILENO), echo_off = 0;

	if (o->token)
		return xstrdup(o->token);
	if (env && *env)
		return xstrdup(env);
	if (tty) {
		fprintf(stderr, "API token (from the console's API tokens page): ");
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			echo_off = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
		}
	}
	char *got = fgets(line, sizeof line, stdin);
	if (echo_off) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (!got)
		return NULL;
	line[strcspn(line, "\r\n")] = '\0';
	char *token = xstrdup(line);
	memset(line, 0, sizeof line);
	return token;
}

static int cmd_login(const struct options *o)
{
	const char *url = o->positional[0];
	struct strbuf path = STRBUF_INIT, shown = STRBUF_INIT;
	char err[512];
	cJSON *me;
	int rc = 1;

	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
		return usage_error("login: %s is not an http:// or https:// URL", url);
	cli_config_free(&config);
	config.url = xstrndup(url, strlen(url) - (url[strlen(url) - 1] == '/'));
	config.token = login_token(o);
	if (!config.token || strncmp(config.token, "stw_", 4) != 0) {
		fprintf(stderr, "stowage: login needs an API token (stw_...), from the console's API tokens page\n");
		return 1;
	}
	/* the token must work before it is stored */
	if (!(me = api("GET", "/", NULL, 200, NULL)))
		return 1;
	if (cli_config_path(&path, err, sizeof err) < 0 || cli_config_save(path.buf, &config, err, sizeof err) < 0) {
		fprintf(stderr, "stowage: %s\n", err);
	} else {
		const cJSON *org = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(me, "org"), "name");
		const cJSON *role = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(me, "me"), "role");
		cli_escape_terminal(&shown, cJSON_IsString(org) ? org->valuestring : "?", 100);
		strbuf_addstr(&shown, " as ");
		cli_escape_terminal(&shown, cJSON_IsString(role) ? role->valuestring : "?", 20);
		printf("Logged in to %s (organisation %s); saved in %s\n", config.url, shown.buf, path.buf);
		rc = 0;
	}
	cJSON_Delete(me);
	strbuf_release(&shown);
	strbuf_release(&path);
	return rc;
}

/* ---- the command table and the arguments ---- */

struct command {
	const char *verb, *noun;	/* "backup", "run"; noun NULL for one-word commands */
	int (*run)(const struct options *o);
	int min_args, max_args;
	const char *flags;		/* the flags it takes, space-separated */
	int needs_login;
};

static const struct command commands[] = {
	{ "login", NULL, cmd_login, 1, 1, "--token", 0 },
	{ "clusters", NULL, cmd_clusters, 0, 0, "", 1 },
	{ "repositories", NULL, cmd_repositories, 0, 0, "", 1 },
	{ "plans", NULL, cmd_plans, 0, 0, "", 1 },
	{ "backups", NULL, cmd_backups, 0, 0, "--plan", 1 },
	{ "backup", "run", cmd_backup_run, 1, 1, "--wait", 1 },
	{ "restore", "create", cmd_restore_create, 0, 1,
	  "--from-backup --target --namespace-mappings --existing-resource-policy --wait", 1 },
	{ "restore", "run", cmd_restore_run, 1, 1, "--wait", 1 },
	{ "migrate", NULL, cmd_migrate, 1, 1, "--wait", 1 },
	{ "jobs", NULL, cmd_jobs, 0, 0, "--kind --state", 1 },
	{ "job", "get", cmd_job_get, 1, 1, "", 1 },
	{ "job", "logs", cmd_job_logs, 1, 1, "--follow", 1 },
	{ "hooks", "check", cmd_hooks_check, 1, 1, "", 1 },
};

static int flag_allowed(const struct command *c, const char *flag)
{
	size_t n = strlen(flag);

	for (const char *p = c->flags; (p = strstr(p, flag)); p += n)
		if ((p == c->flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return 1;
	return 0;
}

/* The value slot of a flag that takes one, or NULL. */
static const char **flag_value(struct options *o, const char *flag)
{
	static const struct { const char *flag; size_t offset; } valued[] = {
		{ "--token", offsetof(struct options, token) },
		{ "--from-backup", offsetof(struct options, from_backup) },
		{ "--target", offsetof(struct options, target) },
		{ "--namespace-mappings", offsetof(struct options, namespace_mappings) },
		{ "--existing-resource-policy", offsetof(struct options, existing_policy) },
		{ "--plan", offsetof(struct options, plan) },
		{ "--kind", offsetof(struct options, kind) },
		{ "--state", offsetof(struct options, state) },
	};
	for (size_t i = 0; i < sizeof valued / sizeof valued[0]; i++)
		if (strcmp(flag, valued[i].flag) == 0)
			return (const char **)(void *)((char *)o + valued[i].offset);
	return NULL;
}

static int parse_args(int argc, char **argv, const struct command **cmd, struct options *o)
{
	const char *words[2] = { NULL, NULL };
	int nwords = 0;
	const char *pos[MAX_POSITIONAL + 2];
	int npos = 0;
	const char *flags[32];
	char names[32][64];	/* the flags' names without their "=value" */
	int nflags = 0;

	memset(o, 0, sizeof *o);
	o->poll_seconds = 1.0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 || strncmp(a, "--output=", 9) == 0 ||
		    strncmp(a, "-o", 2) == 0) {
			const char *v = strncmp(a, "--output=", 9) == 0 ? a + 9 : (a[1] == 'o' && a[2]) ? a + 2 :
					i + 1 < argc ? argv[++i] : "";
			if (strcmp(v, "json") == 0)
				o->json = 1;
			else if (strcmp(v, "table") != 0)
				return usage_error("-o: %s is not an output format (table, json)", v);
			continue;
		}
		if (strcmp(a, "--server") == 0 || strncmp(a, "--server=", 9) == 0) {
			o->server = a[8] == '=' ? a + 9 : i + 1 < argc ? argv[++i] : "";
			continue;
		}
		if (strncmp(a, "--", 2) == 0) {
			const char *eq = strchr(a, '=');
			size_t n = eq ? (size_t)(eq - a) : strlen(a);
			if (nflags == 32 || n >= sizeof names[0])
				return usage_error("unknown flag %s", a);
			char *name = names[nflags];
			memcpy(name, a, n);
			name[n] = '\0';
			const char **slot = flag_value(o, name);
			if (!slot && strcmp(name, "--wait") != 0 && strcmp(name, "--follow") != 0)
				return usage_error("unknown flag %s", a);
			flags[nflags] = a;
			if (slot) {
				const char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
				if (!v)
					return usage_error("%s needs a value", a);
				*slot = v;
			} else if (eq) {
				return usage_error("%s takes no value", a);
			}
			nflags++;
			o->wait |= strcmp(name, "--wait") == 0;
			o->follow |= strcmp(name, "--follow") == 0;
			continue;
		}
		if (a[0] == '-' && a[1])
			return usage_error("unknown flag %s", a);
		if (npos == MAX_POSITIONAL + 2)
			return usage_error("too many arguments (%s)", a);
		pos[npos++] = a;
	}
	if (npos == 0)
		return usage_error("no command%s", "");
	words[0] = pos[0];
	words[1] = npos > 1 ? pos[1] : NULL;
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		const struct command *c = &commands[i];
		if (strcmp(c->verb, words[0]) != 0)
			continue;
		if (c->noun && (!words[1] || strcmp(c->noun, words[1]) != 0))
			continue;
		*cmd = c;
		nwords = c->noun ? 2 : 1;
		break;
	}
	if (!*cmd)
		return usage_error("unknown command %s", pos[0]);
	for (int i = nwords; i < npos; i++) {
		if (o->npositional == MAX_POSITIONAL)
			return usage_error("too many arguments (%s)", pos[i]);
		o->positional[o->npositional++] = pos[i];
	}
	if (o->npositional < (*cmd)->min_args || o->npositional > (*cmd)->max_args)
		return usage_error("%s: wrong number of arguments", (*cmd)->verb);
	for (int i = 0; i < nflags; i++)
		if (!flag_allowed(*cmd, names[i]))
			return usage_error("this command takes no %s", flags[i]);
	if (o->existing_policy && strcmp(o->existing_policy, "skip") != 0 && strcmp(o->existing_policy, "update") != 0)
		return usage_error("--existing-resource-policy: %s is not skip or update", o->existing_policy);
	return 0;
}

int main(int argc, char **argv)
{
	const struct command *cmd = NULL;
	struct options o;
	struct strbuf path = STRBUF_INIT;
	char err[512];
	int rc;

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "help") == 0) {
			fputs(usage_text, stdout);
			return 0;
		}
	if (argc < 2) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if ((rc = parse_args(argc, argv, &cmd, &o)) != 0)
		return rc;
	if (getenv("STOWAGE_POLL_SECONDS"))
		o.poll_seconds = atof(getenv("STOWAGE_POLL_SECONDS")) > 0.05 ? atof(getenv("STOWAGE_POLL_SECONDS")) : 0.05;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (cmd->needs_login) {
		if (cli_config_path(&path, err, sizeof err) < 0 || cli_config_load(path.buf, &config, err, sizeof err) < 0) {
			fprintf(stderr, "stowage: %s\n", err);
			rc = 1;
			goto out;
		}
		if (getenv("STOWAGE_URL") && *getenv("STOWAGE_URL")) {
			free(config.url);
			config.url = xstrdup(getenv("STOWAGE_URL"));
		}
		if (o.server) {
			free(config.url);
			config.url = xstrdup(o.server);
		}
		if (getenv("STOWAGE_TOKEN") && *getenv("STOWAGE_TOKEN")) {
			cli_config_free(&(struct cli_config){ NULL, config.token });
			config.token = xstrdup(getenv("STOWAGE_TOKEN"));
		}
		if (!config.url || !*config.url || !config.token || !*config.token) {
			fprintf(stderr, "stowage: not logged in: run `stowage login URL` (or set STOWAGE_URL and STOWAGE_TOKEN)\n");
			rc = 1;
			goto out;
		}
		size_t n = strlen(config.url);
		if (n && config.url[n - 1] == '/')
			config.url[n - 1] = '\0';
	}
	rc = cmd->run(&o);
out:
	cli_config_free(&config);
	strbuf_release(&path);
	curl_global_cleanup();
	return rc;
}
