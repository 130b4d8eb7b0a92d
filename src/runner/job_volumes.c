/* Persistent-volume data of a job: see job_volumes.h. */
#include "job_volumes.h"
#include "aead.h"
#include "config.h"
#include "log.h"
#include "mover_pod.h"
#include "rate_window.h"
#include "strbuf.h"
#include "volume_snapshot_csi.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

extern char **environ;

#define MOVER_THREADS "2"
#define SNAPSHOT_TIMEOUT_MS (10 * 60 * 1000L)
#define BIND_TIMEOUT_MS (5 * 60 * 1000L)
/* A claim of a class the cluster lacks may still bind to a PersistentVolume of that class name
 * that someone makes by hand: it is given this long before the restore says it never binds. */
#define MISSING_CLASS_GRACE_MS (20 * 1000L)
#define POD_TIMEOUT_MS (24 * 3600 * 1000L)
/* How far ahead a mover run's bandwidth schedule reaches: past a pod's timeout; after it the
 * last rate holds. */
#define RATE_HORIZON_S (2 * 86400L)

/* ---- how and where the mover runs ---- */

struct mover_target {
	struct job *job;
	int pod;			/* mover_launch = pod */
	int host_network;		/* mover_pod_host_network = yes */
	char image[512];
	char roots[1024];		/* mover_local_root: where mover_launch = local may read and write */
	char url[1024];			/* s3://bucket/<prefix>data?endpoint=...&region=...&path_style=1 */
	char repo_id[24];
	struct s3_conf s3;		/* borrowed from the repository's client: the keys */
	uint8_t key[AEAD_KEY_LEN];	/* the mover's key: derived per repository */
	/* the bandwidth windows of the cluster the mover runs against (sql/025), in its zone */
	struct rate_rule rules[RATE_RULES_MAX];
	size_t nrules;
	struct time_zone *zone;
};

static const char *json_str(const cJSON *o, const char *a, const char *b)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);

	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* mover_launch, mover_image and, for local, mover_single_tenant and mover_local_root from the
 * runner's configuration file. local copies directories of this machine that a tenant's API
 * server names, so it must be asked for by name, for one tenant, below named roots only. */
static int launch_settings(struct mover_target *t, char *err, size_t errlen)
{
	const char *path = t->job->ctx->config_path, *launch, *single, *roots;
	struct config cfg;
	int rc = 0;

	if (!path) {
		snprintf(err, errlen, "the runner has no configuration file, so mover_launch is not set: "
			 "the data mover does not run");
		return -1;
	}
	if (config_load(&cfg, path, err, errlen) < 0)
		return -1;
	launch = config_get(&cfg, "mover_launch", NULL);
	single = config_get(&cfg, "mover_single_tenant", "no");
	roots = config_get(&cfg, "mover_local_root", "");
	snprintf(t->image, sizeof t->image, "%s", config_get(&cfg, "mover_image", ""));
	snprintf(t->roots, sizeof t->roots, "%s", roots);
	t->pod = launch && strcmp(launch, "pod") == 0;
	t->host_network = strcmp(config_get(&cfg, "mover_pod_host_network", "no"), "yes") == 0;
	if (!launch) {
		snprintf(err, errlen, "%s: mover_launch is not set: set mover_launch = pod (with mover_image), or, "
			 "for a single-tenant deployment only, mover_launch = local with mover_single_tenant = yes "
			 "and mover_local_root", path);
		rc = -1;
	} else if (!t->pod && strcmp(launch, "local") != 0) {
		snprintf(err, errlen, "%s: mover_launch: \"%s\" is neither local nor pod", path, launch);
		rc = -1;
	} else if (t->pod && !t->image[0]) {
		snprintf(err, errlen, "%s: mover_launch = pod needs mover_image (the data mover's image)", path);
		rc = -1;
	} else if (!t->pod && strcmp(single, "yes") != 0) {
		snprintf(err, errlen, "%s: mover_launch = local is refused: it copies directories of the runner's own "
			 "machine that a tenant's cluster names, so it is for single-tenant deployments only "
			 "(mover_single_tenant = yes, not set); a hosted deployment sets mover_launch = pod", path);
		rc = -1;
	} else if (!t->pod && (roots[0] != '/' || strlen(roots) >= sizeof t->roots)) {
		snprintf(err, errlen, "%s: mover_launch = local needs mover_local_root, the absolute directories "
			 "below which volumes may be read and written", path);
		rc = -1;
	}
	config_free(&cfg);
	return rc;
}

static void mover_target_close(struct mover_target *t);

/* The bandwidth windows of cluster_id and its time zone. A zone this machine cannot read fails
 * the job in words rather than moving data unlimited. */
static int limits_load(struct mover_target *t, long long cluster_id, char *err, size_t errlen)
{
	char id[24];
	const char *params[] = { id };
	PGresult *res;
	int rc = 0;

	if (!cluster_id)
		return 0;
	snprintf(id, sizeof id, "%lld", cluster_id);
	res = job_query(t->job, "SELECT c.time_zone, r.direction, r.bytes_per_second, r.days, r.start_minute, r.end_minute "
			"FROM clusters c LEFT JOIN cluster_bandwidth_rules r ON r.cluster_id = c.id WHERE c.id = $1 "
			"ORDER BY r.position", 1, params, err, errlen);
	if (!res)
		return -1;
	for (int i = 0; i < PQntuples(res) && t->nrules < RATE_RULES_MAX; i++) {
		struct rate_rule *r = &t->rules[t->nrules];
		const char *dir = PQgetvalue(res, i, 1);

		if (PQgetisnull(res, i, 1))
			continue;
		r->directions = strcmp(dir, "upload") == 0 ? RATE_UPLOAD : strcmp(dir, "download") == 0 ? RATE_DOWNLOAD : RATE_BOTH;
		r->bytes_per_second = strtoull(PQgetvalue(res, i, 2), NULL, 10);
		r->days = (unsigned)atoi(PQgetvalue(res, i, 3));
		r->start_min = atoi(PQgetvalue(res, i, 4));
		r->end_min = atoi(PQgetvalue(res, i, 5));
		t->nrules++;
	}
	if (t->nrules) {
		char why[256];

		t->zone = time_zone_load(PQgetvalue(res, 0, 0), why, sizeof why);
		if (!t->zone) {
			snprintf(err, errlen, "cluster %lld: its bandwidth windows are in time zone %s, which this runner "
				 "cannot read: %s; nothing was copied", cluster_id, PQgetvalue(res, 0, 0), why);
			rc = -1;
		}
	}
	PQclear(res);
	return rc;
}

/* The mover's key is not the runner's master key, which also opens every tenant's secrets:
 * it is derived for this one repository, so a mover pod's Secret exposes one repository. */
static int mover_target_open(struct job *job, long long cluster_id, const struct job_repository *repo,
			     struct mover_target *t, char *err, size_t errlen)
{
	struct strbuf url = STRBUF_INIT;
	char purpose[64];

	memset(t, 0, sizeof *t);
	t->job = job;
	if (launch_settings(t, err, errlen) < 0 || limits_load(t, cluster_id, err, errlen) < 0)
		return -1;
	s3_client_conf(repo->s3, &t->s3);
	strbuf_addf(&url, "s3://%s/%sdata?region=%s", repo->bucket, repo->prefix, t->s3.region);
	if (t->s3.endpoint)
		strbuf_addf(&url, "&endpoint=%s", t->s3.endpoint);
	if (t->s3.path_style)
		strbuf_addstr(&url, "&path_style=1");
	/* the addresses the runner checked against the allowed networks: the mover connects to
	 * those and never resolves the endpoint's host again (no DNS rebinding in between) */
	if (t->s3.resolve && *t->s3.resolve)
		strbuf_addf(&url, "&resolve=%s", t->s3.resolve);
	if (url.len >= sizeof t->url) {
		snprintf(err, errlen, "repository %lld: its URL for the data mover is too long", repo->id);
		strbuf_release(&url);
		mover_target_close(t);
		return -1;
	}
	snprintf(t->url, sizeof t->url, "%s", url.buf);
	strbuf_release(&url);
	snprintf(t->repo_id, sizeof t->repo_id, "%lld", repo->id);
	snprintf(purpose, sizeof purpose, "mover:repository:%lld", repo->id);
	if (aead_derive_key(job->ctx->master_key, purpose, t->key) < 0) {
		snprintf(err, errlen, "repository %lld: cannot derive the data mover's key", repo->id);
		mover_target_close(t);
		return -1;
	}
	return 0;
}

static void mover_target_close(struct mover_target *t)
{
	OPENSSL_cleanse(t->key, sizeof t->key);
	if (t->zone)
		time_zone_free(t->zone);
	t->zone = NULL;
}

/* ---- progress over all volumes ---- */

struct volumes_progress {
	struct job *job;
	long volumes_done, volumes_total;
	long long bytes_before;		/* of the volumes already finished */
	long long cur_done, cur_total;
	long long bytes, files;		/* totals for job->result */
	int restore;			/* and for a restore, what the mover wrote: */
	long long files_written, bytes_written, files_unchanged, removed;
	struct timespec start;
};

static void on_mover_line(const cJSON *line, void *ud)
{
	struct volumes_progress *p = ud;
	const cJSON *done = cJSON_GetObjectItemCaseSensitive(line, "bytes_done");
	const cJSON *total = cJSON_GetObjectItemCaseSensitive(line, "bytes_total");
	const char *phase = json_str(line, "phase", NULL), *dir = json_str(line, "direction", NULL);
	const cJSON *bps = cJSON_GetObjectItemCaseSensitive(line, "bytes_per_second");

	if (phase && strcmp(phase, "rate") == 0 && dir && cJSON_IsNumber(bps) &&
	    (strcmp(dir, "upload") == 0 || strcmp(dir, "download") == 0)) {
		char rate[32] = "unlimited";

		/* the mover's words, so checked: a number in the limits' range, a known direction */
		if (bps->valuedouble >= RATE_MIN && bps->valuedouble <= RATE_MAX)
			rate_format((uint64_t)bps->valuedouble, rate, sizeof rate);
		job_log(p->job, "info", "data mover: %s rate now %s (the cluster's bandwidth windows)", dir, rate);
		return;
	}
	if (!cJSON_IsNumber(done) || !cJSON_IsNumber(total))
		return;
	p->cur_done = (long long)done->valuedouble;
	p->cur_total = (long long)total->valuedouble;
	job_progress(p->job, JOB_VOLUMES_PHASE, p->volumes_done, p->volumes_total, p->bytes_before + p->cur_done,
		     p->bytes_before + p->cur_total);
}

static int on_cancel(void *ud)
{
	struct volumes_progress *p = ud;

	return job_cancel_requested(p->job);
}

static long elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* One volume finished: count it, and keep job->result["volumes"] current. */
static void progress_volume_done(struct volumes_progress *p, long long bytes, long long files)
{
	cJSON *r = cJSON_CreateObject();
	long ms = elapsed_ms(&p->start);

	p->volumes_done++;
	p->bytes_before += bytes;
	p->cur_done = p->cur_total = 0;
	p->bytes += bytes;
	p->files += files;
	cJSON_AddNumberToObject(r, "volumes", (double)p->volumes_done);
	cJSON_AddNumberToObject(r, "bytes", (double)p->bytes);
	cJSON_AddNumberToObject(r, "files", (double)p->files);
	cJSON_AddNumberToObject(r, "duration_ms", (double)ms);
	cJSON_AddNumberToObject(r, "throughput_mb_s", ms > 0 ? (double)p->bytes / 1e6 / ((double)ms / 1000) : 0);
	if (p->restore) {
		cJSON_AddNumberToObject(r, "files_written", (double)p->files_written);
		cJSON_AddNumberToObject(r, "bytes_written", (double)p->bytes_written);
		cJSON_AddNumberToObject(r, "files_unchanged", (double)p->files_unchanged);
		cJSON_AddNumberToObject(r, "removed", (double)p->removed);
	}
	if (!p->job->result || !cJSON_ReplaceItemInObjectCaseSensitive(p->job->result, "volumes", r))
		if (!p->job->result || !cJSON_AddItemToObject(p->job->result, "volumes", r))
			cJSON_Delete(r);
	job_progress(p->job, JOB_VOLUMES_PHASE, p->volumes_done, p->volumes_total, p->bytes_before, p->bytes_before);
}

/* ---- the local launch path: a child process ---- */

static const char *exit_words(int code)
{
	switch (code) {
	case 1: return "failed";
	case 2: return "usage error";
	case 3: return "repository data missing or failing verification";
	case 4: return "repository busy: a prune holds its lock; retry later";
	case 127: return "cannot be run";
	default: return "failed";
	}
}

/* "stowage-mover[42]: error: restore x: ..." -> "restore x: ..." */
static const char *mover_message(const char *line)
{
	const char *p = strstr(line, "]: ");

	if (p && strncmp(line, "stowage-mover[", 14) == 0)
		line = p + 3;
	if (strncmp(line, "error: ", 7) == 0)
		line += 7;
	return line;
}

struct child_out {
	struct strbuf buf;
	int fd;
};

/* Hands out each complete line of fd's new bytes; 0 at end of file. */
static int read_lines(struct child_out *o, void (*fn)(const char *line, void *ud), void *ud)
{
	char chunk[4096];
	ssize_t n = read(o->fd, chunk, sizeof chunk);
	char *nl;

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : 0;
	if (n == 0) {
		if (o->buf.len)
			fn(o->buf.buf, ud);
		strbuf_reset(&o->buf);
		return 0;
	}
	strbuf_add(&o->buf, chunk, (size_t)n);
	while ((nl = memchr(o->buf.buf, '\n', o->buf.len)) != NULL) {
		size_t len = (size_t)(nl - o->buf.buf) + 1;

		*nl = '\0';
		fn(o->buf.buf, ud);
		memmove(o->buf.buf, o->buf.buf + len, o->buf.len - len);
		o->buf.len -= len;
		o->buf.buf[o->buf.len] = '\0';
	}
	return 1;
}

struct child_state {
	struct volumes_progress *p;
	const char *claim;		/* what the mover works on, for messages: "claim ns/pvc" */
	cJSON *done;
	cJSON *problems;		/* check's {"problem": "..."} lines, or NULL */
	char last_error[768];
};

static void on_stdout(const char *line, void *ud)
{
	struct child_state *st = ud;
	cJSON *o = cJSON_Parse(line);

	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return;
	}
	on_mover_line(o, st->p);
	if (st->problems && json_str(o, "problem", NULL)) {
		if (cJSON_GetArraySize(st->problems) < 1000)
			cJSON_AddItemToArray(st->problems, cJSON_CreateString(json_str(o, "problem", NULL)));
		cJSON_Delete(o);
		return;
	}
	if (json_str(o, "phase", NULL) && strcmp(json_str(o, "phase", NULL), "done") == 0) {
		cJSON_Delete(st->done);
		st->done = o;
		return;
	}
	cJSON_Delete(o);
}

static void on_stderr(const char *line, void *ud)
{
	struct child_state *st = ud;

	if (!*line)
		return;
	snprintf(st->last_error, sizeof st->last_error, "%s", mover_message(line));
	job_log(st->p->job, strstr(line, ": error: ") ? "error" : "warning", "%s: data mover: %s", st->claim,
		mover_message(line));
}

/* The child's environment: ours without any AWS_* variable, plus the repository's keys. */
static char **child_env(const struct mover_target *t)
{
	size_t n = 0, k = 0;
	char **env;
	struct strbuf sb = STRBUF_INIT;

	while (environ[n])
		n++;
	env = xcalloc(n + 3, sizeof *env);
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "AWS_", 4) != 0)
			env[k++] = xstrdup(environ[i]);
	strbuf_addf(&sb, "AWS_ACCESS_KEY_ID=%s", t->s3.access_key);
	env[k++] = strbuf_take(&sb);
	strbuf_addf(&sb, "AWS_SECRET_ACCESS_KEY=%s", t->s3.secret_key);
	env[k++] = strbuf_take(&sb);
	return env;
}

static void child_env_free(char **env)
{
	for (size_t i = 0; env[i]; i++) {
		OPENSSL_cleanse(env[i], strlen(env[i]));
		free(env[i]);
	}
	free(env);
}

/* The key goes through a pipe: 64 hex digits fit in the pipe's buffer, so it is written whole
 * before the child starts and never touches a disk. */
static int key_pipe(const struct mover_target *t, int fds[2])
{
	char hex[AEAD_KEY_LEN * 2 + 1];
	ssize_t n;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	for (int i = 0; i < AEAD_KEY_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", t->key[i]);
	n = write(fds[1], hex, AEAD_KEY_LEN * 2);
	OPENSSL_cleanse(hex, sizeof hex);
	close(fds[1]);
	if (n != AEAD_KEY_LEN * 2) {
		close(fds[0]);
		return -1;
	}
	return 0;
}

/* The child gets the key on fd 3 and the volume's directory, opened by the runner, on fd 4. */
static int run_local(const struct mover_target *t, const char *claim, int dir_fd, const char *const *args,
		     struct volumes_progress *p, cJSON **done, cJSON *problems, char *err, size_t errlen)
{
	const char *mover = t->job->ctx->mover_path ? t->job->ctx->mover_path : "stowage-mover";
	struct child_state st = { .p = p, .claim = claim, .problems = problems };
	struct child_out out = { STRBUF_INIT, -1 }, errs = { STRBUF_INIT, -1 };
	int keyp[2], outp[2], errp[2], status, open_fds = 2, cancelled = 0;
	const char *argv[48];
	size_t argc = 0;
	char **env;
	pid_t pid;

	*done = NULL;
	argv[argc++] = mover;
	for (; *args && argc < 47; args++)
		argv[argc++] = *args;
	argv[argc] = NULL;
	if (key_pipe(t, keyp) < 0) {
		snprintf(err, errlen, "%s: cannot pass the key to the data mover: %s", claim, strerror(errno));
		return -1;
	}
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "%s: pipe: %s", claim, strerror(errno));
		close(keyp[0]);
		return -1;
	}
	env = child_env(t);
	pid = fork();
	if (pid == 0) {
		/* the child: fd 3 the key, 1 and 2 the pipes, nothing else inherited */
		if (dup2(outp[1], 1) < 0 || dup2(errp[1], 2) < 0)
			_exit(127);
		int k = fcntl(keyp[0], F_DUPFD_CLOEXEC, 10), d = dir_fd < 0 ? -1 : fcntl(dir_fd, F_DUPFD_CLOEXEC, 10);

		/* above 10 first, so neither dup2 lands on the other's source */
		if (k < 0 || (dir_fd >= 0 && d < 0) || dup2(k, 3) < 0 || (d >= 0 && dup2(d, 4) < 0))
			_exit(127);
		close_range(5, ~0U, 0);
		execvpe(mover, (char *const *)argv, env);
		dprintf(2, "stowage-mover[%d]: error: cannot run %s: %s\n", (int)getpid(), mover, strerror(errno));
		_exit(127);
	}
	child_env_free(env);
	close(keyp[0]);
	close(outp[1]);
	close(errp[1]);
	if (pid < 0) {
		snprintf(err, errlen, "%s: cannot start the data mover: %s", claim, strerror(errno));
		close(outp[0]);
		close(errp[0]);
		return -1;
	}
	out.fd = outp[0];
	errs.fd = errp[0];
	while (open_fds > 0) {
		struct pollfd pf[2] = { { out.fd, POLLIN, 0 }, { errs.fd, POLLIN, 0 } };

		if (poll(pf, 2, 1000) < 0 && errno != EINTR)
			break;
		if (out.fd >= 0 && (pf[0].revents & (POLLIN | POLLHUP)) && !read_lines(&out, on_stdout, &st)) {
			close(out.fd);
			out.fd = -1;
			open_fds--;
		}
		if (errs.fd >= 0 && (pf[1].revents & (POLLIN | POLLHUP)) && !read_lines(&errs, on_stderr, &st)) {
			close(errs.fd);
			errs.fd = -1;
			open_fds--;
		}
		if (!cancelled && job_cancel_requested(p->job)) {
			cancelled = 1;
			kill(pid, SIGTERM);
		}
	}
	if (out.fd >= 0)
		close(out.fd);
	if (errs.fd >= 0)
		close(errs.fd);
	strbuf_release(&out.buf);
	strbuf_release(&errs.buf);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (cancelled) {
		snprintf(err, errlen, "%s: the data mover was stopped: the job was cancelled", claim);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && st.done) {
		*done = st.done;
		return 0;
	} else if (WIFEXITED(status)) {
		snprintf(err, errlen, "%s: data mover exited %d (%s): %s", claim, WEXITSTATUS(status),
			 exit_words(WEXITSTATUS(status)), st.last_error[0] ? st.last_error : "no error line");
	} else {
		snprintf(err, errlen, "%s: data mover killed by signal %d", claim,
			 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	}
	cJSON_Delete(st.done);
	return -1;
}

/* ---- claims and their volumes ---- */

struct volume {
	char ns[64], pvc[254], pv[254], storage_class[254], size[64], node[254], driver[254];
	char dir[4096];			/* hostPath or local.path: the local launch path's source */
	cJSON *access_modes;		/* the claim's, borrowed */
};

/* The PV's directory on this machine (hostPath or local) and CSI driver. */
static void volume_from_pv(struct volume *v, const cJSON *pv)
{
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(pv, "spec");
	const char *dir = json_str(spec, "hostPath", "path");
	const cJSON *terms, *term;

	if (!dir)
		dir = json_str(spec, "local", "path");
	snprintf(v->dir, sizeof v->dir, "%s", dir ? dir : "");
	snprintf(v->driver, sizeof v->driver, "%s", json_str(spec, "csi", "driver") ? json_str(spec, "csi", "driver") : "");
	if (!v->storage_class[0] && json_str(spec, "storageClassName", NULL))
		snprintf(v->storage_class, sizeof v->storage_class, "%s", json_str(spec, "storageClassName", NULL));
	/* a local PV names its node */
	terms = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(spec, "nodeAffinity"), "required"), "nodeSelectorTerms");
	cJSON_ArrayForEach(term, terms) {
		const cJSON *e;

		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(term, "matchExpressions")) {
			const cJSON *values = cJSON_GetObjectItemCaseSensitive(e, "values");
			const char *key = json_str(e, "key", NULL);

			if (key && strcmp(key, "kubernetes.io/hostname") == 0 && cJSON_GetArraySize(values) == 1 &&
			    cJSON_IsString(cJSON_GetArrayItem(values, 0)))
				snprintf(v->node, sizeof v->node, "%s", cJSON_GetArrayItem(values, 0)->valuestring);
		}
	}
}

static void describe(const char *what, const struct k8s_error *ke, char *err, size_t errlen)
{
	char words[600];

	k8s_error_describe(ke, words, sizeof words);
	snprintf(err, errlen, "%s: %s", what, words);
}

static int read_pv(struct k8s_client *k, struct volume *v, char *err, size_t errlen)
{
	char *path = k8s_resource_path("", "v1", "persistentvolumes", NULL, v->pv);
	struct k8s_error ke;
	cJSON *pv = NULL;
	int rc = k8s_get(k, path, &pv, &ke);

	free(path);
	if (rc < 0) {
		char what[600];

		snprintf(what, sizeof what, "claim %s/%s: its PersistentVolume %s", v->ns, v->pvc, v->pv);
		describe(what, &ke, err, errlen);
		return -1;
	}
	volume_from_pv(v, pv);
	cJSON_Delete(pv);
	return 0;
}

/* The node of a running pod that mounts the claim: a ReadWriteOnce volume is attached there,
 * so a mover pod must run there too. */
static void node_of_user(struct k8s_client *k, struct volume *v)
{
	char *path = k8s_resource_path("", "v1", "pods", v->ns, NULL);
	struct k8s_error ke;
	cJSON *pods = NULL, *pod;

	if (k8s_get(k, path, &pods, &ke) == 0)
		cJSON_ArrayForEach(pod, cJSON_GetObjectItemCaseSensitive(pods, "items")) {
			const cJSON *vol;
			const char *node = json_str(pod, "spec", "nodeName");

			cJSON_ArrayForEach(vol, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pod, "spec"), "volumes")) {
				const char *claim = json_str(vol, "persistentVolumeClaim", "claimName");

				if (node && claim && strcmp(claim, v->pvc) == 0 && !v->node[0])
					snprintf(v->node, sizeof v->node, "%s", node);
			}
		}
	cJSON_Delete(pods);
	free(path);
}

/* Fills v from a claim object; 0 bound, 1 not bound (skipped), -1 error. */
static int volume_from_claim(struct k8s_client *k, const cJSON *pvc, struct volume *v, char *err, size_t errlen)
{
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(pvc, "spec");
	const char *name = json_str(pvc, "metadata", "name"), *ns = json_str(pvc, "metadata", "namespace");
	const char *pv = json_str(spec, "volumeName", NULL), *phase = json_str(pvc, "status", "phase");
	const char *size;

	memset(v, 0, sizeof *v);
	if (!name || !ns) {
		snprintf(err, errlen, "a PersistentVolumeClaim without a name or namespace");
		return -1;
	}
	snprintf(v->ns, sizeof v->ns, "%s", ns);
	snprintf(v->pvc, sizeof v->pvc, "%s", name);
	if (!pv || !phase || strcmp(phase, "Bound") != 0)
		return 1;
	snprintf(v->pv, sizeof v->pv, "%s", pv);
	snprintf(v->storage_class, sizeof v->storage_class, "%s",
		 json_str(spec, "storageClassName", NULL) ? json_str(spec, "storageClassName", NULL) : "");
	size = json_str(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "resources"), "requests"),
			"storage", NULL);
	snprintf(v->size, sizeof v->size, "%s", size ? size : "");
	v->access_modes = cJSON_GetObjectItemCaseSensitive(spec, "accessModes");
	if (read_pv(k, v, err, errlen) < 0)
		return -1;
	node_of_user(k, v);
	return 0;
}

/* The one of t->roots that dir lies strictly below, dir relative to it in rel. */
static int local_root_of(const struct mover_target *t, const char *dir, char *root, size_t rootlen,
			 const char **rel)
{
	const char *p = t->roots;

	while (*p) {
		size_t len = strcspn(p, ", \t");

		if (len && len < rootlen) {
			size_t n = len;

			while (n > 1 && p[n - 1] == '/')
				n--;
			memcpy(root, p, n);
			root[n] = '\0';
			if (strncmp(dir, root, n) == 0 && dir[n] == '/' && dir[n + 1]) {
				*rel = dir + n + 1;
				return 0;
			}
		}
		p += len;
		p += strspn(p, ", \t");
	}
	return -1;
}

/* Opens the PV's directory for the local launch path, only strictly below mover_local_root,
 * through no symlink and no "..": a tenant's API server names the path, so it is hostile. */
static int local_dir_open(const struct mover_target *t, const struct volume *v, char *err, size_t errlen)
{
	struct open_how how = { .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	char root[1024];
	const char *rel = NULL, *why = NULL;
	int root_fd, fd;

	if (!v->dir[0]) {
		snprintf(err, errlen, "claim %s/%s: PersistentVolume %s has neither hostPath nor local.path, so the data "
			 "mover cannot reach it from this machine: set mover_launch = pod", v->ns, v->pvc, v->pv);
		return -1;
	}
	if (v->dir[0] != '/')
		why = "it is not an absolute path";
	else if (strstr(v->dir, "/../") || strstr(v->dir, "/./") || strstr(v->dir, "//") ||
		 (strlen(v->dir) >= 3 && strcmp(v->dir + strlen(v->dir) - 3, "/..") == 0) ||
		 (strlen(v->dir) >= 2 && strcmp(v->dir + strlen(v->dir) - 2, "/.") == 0))
		why = "it has a \".\" or \"..\" component or an empty one";
	else if (local_root_of(t, v->dir, root, sizeof root, &rel) < 0)
		why = "it is not below mover_local_root";
	if (why) {
		snprintf(err, errlen, "claim %s/%s: the directory \"%.1024s\" of PersistentVolume %s is refused: %s; "
			 "nothing was copied", v->ns, v->pvc, v->dir, v->pv, why);
		return -1;
	}
	root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0) {
		snprintf(err, errlen, "mover_local_root %s: %s", root, strerror(errno));
		return -1;
	}
	fd = (int)syscall(SYS_openat2, root_fd, rel, &how, sizeof how);
	if (fd < 0) {
		int e = errno;

		snprintf(err, errlen, "claim %s/%s: the directory \"%.1024s\" of PersistentVolume %s is refused: %s; "
			 "nothing was copied", v->ns, v->pvc, v->dir, v->pv,
			 e == ELOOP ? "a symlink lies on its way" : e == EXDEV ? "it leads out of mover_local_root" :
			 e == ENOTDIR ? "it is not a directory" : e == ENOENT ? "it does not exist on this machine" :
			 strerror(e));
	}
	close(root_fd);
	return fd;
}

/* ---- running the mover for one volume ---- */

/* Runs `mover <command> --repo ... --key-file K <extra...>` against the volume, locally or as
 * a pod. index numbers the pod within the job. */
static int run_mover(const struct mover_target *t, struct k8s_client *k, const struct volume *v, int restore,
		     const char *const *extra, int index, struct volumes_progress *p, cJSON **done,
		     char *err, size_t errlen)
{
	const char *args[40];
	char claim[400], pod_name[64], *rates[2] = { NULL, NULL };
	size_t n = 0;
	int rc;

	snprintf(claim, sizeof claim, "claim %s/%s", v->ns, v->pvc);
	args[n++] = restore ? "restore" : "backup";
	args[n++] = "--repo";
	args[n++] = t->url;
	args[n++] = "--repo-id";
	args[n++] = t->repo_id;
	args[n++] = "--key-file";
	args[n++] = t->pod ? MOVER_POD_KEY_FILE : "/dev/fd/3";
	args[n++] = restore ? "--target" : "--source";
	args[n++] = t->pod ? MOVER_POD_MOUNT : "/dev/fd/4";	/* local: the directory opened below */
	args[n++] = "--threads";
	args[n++] = MOVER_THREADS;
	for (; *extra && n < 35; extra++)
		args[n++] = *extra;
	/* the cluster's windows as rates from now on, which the mover follows by its own clock */
	for (int d = 0; d < 2 && t->nrules; d++) {
		struct rate_schedule s;
		time_t now = time(NULL);

		rate_schedule_build(t->rules, t->nrules, d ? RATE_DOWNLOAD : RATE_UPLOAD, t->zone, now,
				    now + RATE_HORIZON_S, &s);
		if (!rate_schedule_unlimited(&s)) {
			rates[d] = rate_schedule_format(&s);
			args[n++] = d ? "--rate-download" : "--rate-upload";
			args[n++] = rates[d];
		}
		rate_schedule_free(&s);
	}
	args[n] = NULL;
	if (!t->pod) {
		int dir_fd = local_dir_open(t, v, err, errlen);

		rc = dir_fd < 0 ? -1 : run_local(t, claim, dir_fd, args, p, done, NULL, err, errlen);
		if (dir_fd >= 0)
			close(dir_fd);
		free(rates[0]);
		free(rates[1]);
		return rc;
	}
	snprintf(pod_name, sizeof pod_name, "stowage-mover-%lld-%d", t->job->id, index);
	struct mover_pod_spec spec = {
		.ns = v->ns, .name = pod_name, .pvc = v->pvc, .node = v->node, .image = t->image,
		.restore = restore, .args = args, .access_key = t->s3.access_key,
		.secret_key = t->s3.secret_key, .key = t->key, .host_network = t->host_network,
	};
	rc = mover_pod_run(k, &spec, POD_TIMEOUT_MS, on_mover_line, on_cancel, p, done, err, errlen);
	free(rates[0]);
	free(rates[1]);
	if (rc < 0) {
		char inner[1024];

		snprintf(inner, sizeof inner, "%s", err);
		snprintf(err, errlen, "%s: %s", claim, inner);
		return -1;
	}
	return 0;
}

/* ---- backup ---- */

/* The job's log line for one volume done: which claim, how, files, bytes, how long. */
static void volume_logged(struct job *job, const char *verb, const char *ns, const char *pvc, const char *method,
			  const cJSON *entry, long ms)
{
	const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(entry, "bytes");
	const cJSON *files = cJSON_GetObjectItemCaseSensitive(entry, "files");
	const cJSON *fresh = cJSON_GetObjectItemCaseSensitive(entry, "bytes_new");
	const char *snap = json_str(entry, "snapshot_id", NULL);
	const char *vs = json_str(entry, "volume_snapshot", "name");
	char newpart[64] = "";

	if (cJSON_IsNumber(fresh) && strcmp(verb, "backed up") == 0)
		snprintf(newpart, sizeof newpart, " (%lld new)", (long long)fresh->valuedouble);
	if (cJSON_IsNumber(bytes))
		job_log(job, "info", "claim %s/%s: %s by %s: %lld files, %lld bytes%s in %.1f s%s%s", ns, pvc, verb, method,
			cJSON_IsNumber(files) ? (long long)files->valuedouble : 0LL, (long long)bytes->valuedouble, newpart,
			(double)ms / 1000, snap && *snap ? ", data mover snapshot " : "", snap && *snap ? snap : "");
	else
		job_log(job, "info", "claim %s/%s: %s by %s in %.1f s%s%s", ns, pvc, verb, method, (double)ms / 1000,
			vs ? ", VolumeSnapshot " : "", vs ? vs : "");
}

static cJSON *volume_entry(const struct volume *v, const char *method)
{
	cJSON *e = cJSON_CreateObject();

	cJSON_AddStringToObject(e, "namespace", v->ns);
	cJSON_AddStringToObject(e, "pvc", v->pvc);
	cJSON_AddStringToObject(e, "pv", v->pv);
	cJSON_AddStringToObject(e, "storage_class", v->storage_class);
	cJSON_AddStringToObject(e, "size", v->size);
	if (v->node[0])
		cJSON_AddStringToObject(e, "node", v->node);
	cJSON_AddStringToObject(e, "method", method);
	return e;
}

static void snapshot_name(char *out, size_t len, const char *backup, const char *pvc)
{
	size_t n;

	snprintf(out, len < 254 ? len : 254, "stowage-%.120s-%.120s", backup, pvc);
	n = strlen(out);
	while (n && (out[n - 1] == '-' || out[n - 1] == '.'))
		out[--n] = '\0';
}

/* Backs up the files of v under the tags of claim ns/pvc: v itself, or for "snapshot+move"
 * the temporary claim restored from its snapshot. */
static int backup_filesystem(const struct mover_target *t, struct k8s_client *k, const struct volume *v,
			     const char *tag_pvc, int index, struct volumes_progress *p, cJSON *entry,
			     char *err, size_t errlen)
{
	char cluster[48], ns[80], pvc[270];
	const char *extra[] = { "--tag", cluster, "--tag", ns, "--tag", pvc, NULL };
	struct timespec start;
	cJSON *done = NULL;
	long long bytes, files;

	/* one line of snapshots per claim: the parent of a backup is the last one of the same claim */
	snprintf(cluster, sizeof cluster, "cluster=%lld", t->job->cluster_id);
	snprintf(ns, sizeof ns, "namespace=%s", v->ns);
	snprintf(pvc, sizeof pvc, "pvc=%s", tag_pvc);
	clock_gettime(CLOCK_MONOTONIC, &start);
	if (run_mover(t, k, v, 0, extra, index, p, &done, err, errlen) < 0)
		return -1;
	bytes = (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(done, "bytes"));
	files = (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(done, "files"));
	cJSON_AddStringToObject(entry, "snapshot_id", json_str(done, "snapshot_id", NULL) ? json_str(done, "snapshot_id", NULL) : "");
	cJSON_AddNumberToObject(entry, "bytes", (double)bytes);
	cJSON_AddNumberToObject(entry, "files", (double)files);
	cJSON_AddNumberToObject(entry, "bytes_new", cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(done, "bytes_new")));
	cJSON_AddNumberToObject(entry, "chunks", cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(done, "chunks")));
	cJSON_AddNumberToObject(entry, "chunks_new", cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(done, "chunks_new")));
	cJSON_AddNumberToObject(entry, "duration_ms", (double)elapsed_ms(&start));
	if (cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(done, "rate_wait_ms")) > 0)
		cJSON_AddNumberToObject(entry, "rate_wait_ms",
					cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(done, "rate_wait_ms")));
	cJSON_Delete(done);
	progress_volume_done(p, bytes, files);
	return 0;
}

static int backup_snapshot(const struct mover_target *t, struct k8s_client *k, const struct volume *v,
			   const char *backup_name, const char *cluster, struct csi_snapshot *snap, cJSON *entry,
			   char *err, size_t errlen)
{
	char name[254];
	struct timespec start;

	if (!v->driver[0]) {
		snprintf(err, errlen, "claim %s/%s: PersistentVolume %s is not a CSI volume, so it cannot be snapshotted: "
			 "choose the filesystem copy for it", v->ns, v->pvc, v->pv);
		return -1;
	}
	(void)t;
	clock_gettime(CLOCK_MONOTONIC, &start);
	snapshot_name(name, sizeof name, backup_name, v->pvc);
	if (csi_snapshot_create(k, cluster, v->ns, v->pvc, v->driver, name, SNAPSHOT_TIMEOUT_MS, snap, err, errlen) < 0)
		return -1;
	cJSON_AddItemToObject(entry, "volume_snapshot", csi_snapshot_to_json(snap));
	cJSON_AddNumberToObject(entry, "duration_ms", (double)elapsed_ms(&start));
	return 0;
}

/* The temporary claim of "snapshot+move": restored from the snapshot, beside the original. */
static cJSON *move_claim_object(const struct volume *v, const struct csi_snapshot *snap, const char *name)
{
	cJSON *o = cJSON_CreateObject(), *meta, *spec, *ds;

	cJSON_AddStringToObject(o, "apiVersion", "v1");
	cJSON_AddStringToObject(o, "kind", "PersistentVolumeClaim");
	meta = cJSON_AddObjectToObject(o, "metadata");
	cJSON_AddStringToObject(meta, "name", name);
	cJSON_AddStringToObject(meta, "namespace", v->ns);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(meta, "labels"), "app.kubernetes.io/managed-by", "stowage");
	spec = cJSON_AddObjectToObject(o, "spec");
	if (v->storage_class[0])
		cJSON_AddStringToObject(spec, "storageClassName", v->storage_class);
	if (v->access_modes)
		cJSON_AddItemToObject(spec, "accessModes", cJSON_Duplicate(v->access_modes, 1));
	cJSON_AddStringToObject(cJSON_AddObjectToObject(cJSON_AddObjectToObject(spec, "resources"), "requests"),
				"storage", snap->restore_size[0] ? snap->restore_size : v->size);
	ds = cJSON_AddObjectToObject(spec, "dataSource");
	cJSON_AddStringToObject(ds, "apiGroup", CSI_SNAPSHOT_GROUP);
	cJSON_AddStringToObject(ds, "kind", "VolumeSnapshot");
	cJSON_AddStringToObject(ds, "name", snap->name);
	return o;
}

static int claim_bound(const cJSON *obj, void *ud)
{
	const char *phase = json_str(obj, "status", "phase");

	(void)ud;
	if (!obj)
		return -1;
	return phase && strcmp(phase, "Bound") == 0 ? 1 : 0;
}

/* Waits until claim ns/name is Bound and fills v from it. */
static int wait_bound(struct k8s_client *k, const char *ns, const char *name, struct volume *v,
		      char *err, size_t errlen)
{
	char *path = k8s_resource_path("", "v1", "persistentvolumeclaims", ns, name);
	struct k8s_error ke;
	cJSON *pvc = NULL;
	char what[400];
	int rc = -1;

	snprintf(what, sizeof what, "claim %s/%s", ns, name);
	if (k8s_wait(k, path, claim_bound, NULL, BIND_TIMEOUT_MS, &ke) < 0) {
		if (strcmp(ke.reason, "Timeout") == 0)
			snprintf(err, errlen, "%s: not Bound after %ld s (no volume provisioned for it)", what, BIND_TIMEOUT_MS / 1000);
		else if (ke.reason[0])
			describe(what, &ke, err, errlen);
		else
			snprintf(err, errlen, "%s: does not exist", what);
		goto out;
	}
	if (k8s_get(k, path, &pvc, &ke) < 0) {
		describe(what, &ke, err, errlen);
		goto out;
	}
	rc = volume_from_claim(k, pvc, v, err, errlen) == 0 ? 0 : -1;
	if (rc < 0 && !err[0])
		snprintf(err, errlen, "%s: no longer Bound", what);
out:
	cJSON_Delete(pvc);
	free(path);
	return rc;
}

static int backup_snapshot_move(const struct mover_target *t, struct k8s_client *k, const struct volume *v,
				const char *backup_name, const char *cluster, int index,
				struct volumes_progress *p, cJSON *entry, char *err, size_t errlen)
{
	struct csi_snapshot snap;
	struct volume moved;
	struct k8s_error ke;
	char name[64], *coll, *path;
	cJSON *claim;
	int rc = -1;

	if (backup_snapshot(t, k, v, backup_name, cluster, &snap, entry, err, errlen) < 0)
		return -1;
	snprintf(name, sizeof name, "stowage-move-%lld-%d", t->job->id, index);
	coll = k8s_resource_path("", "v1", "persistentvolumeclaims", v->ns, NULL);
	path = k8s_resource_path("", "v1", "persistentvolumeclaims", v->ns, name);
	claim = move_claim_object(v, &snap, name);
	if (k8s_create(k, coll, claim, NULL, &ke) < 0 && strcmp(ke.reason, "AlreadyExists") != 0) {
		char what[1024];

		snprintf(what, sizeof what, "claim %s/%s: creating its temporary claim %s from VolumeSnapshot %s",
			 v->ns, v->pvc, name, snap.name);
		describe(what, &ke, err, errlen);
		goto out;
	}
	if (wait_bound(k, v->ns, name, &moved, err, errlen) < 0)
		goto out;
	rc = backup_filesystem(t, k, &moved, v->pvc, index, p, entry, err, errlen);
out:
	if (k8s_delete(k, path, NULL, &ke) < 0 && ke.http_status != 404)
		job_log(t->job, "warning", "claim %s/%s: the temporary claim %s was not deleted", v->ns, v->pvc, name);
	cJSON_Delete(claim);
	free(coll);
	free(path);
	return rc;
}

struct claim_list {
	cJSON *items;
};

static int collect_claim(cJSON *obj, void *ud)
{
	struct claim_list *l = ud;

	if (!obj) {
		cJSON_Delete(l->items);
		l->items = cJSON_CreateArray();
		return 0;
	}
	cJSON_AddItemToArray(l->items, cJSON_Duplicate(obj, 1));
	return 0;
}

static const char *method_of(const cJSON *methods, const char *ns, const char *pvc)
{
	char key[400];

	snprintf(key, sizeof key, "%s/%s", ns, pvc);
	const char *m = json_str(methods, key, NULL);
	return m ? m : "filesystem";
}

static int method_valid(const char *m)
{
	return strcmp(m, "filesystem") == 0 || strcmp(m, "snapshot") == 0 || strcmp(m, "snapshot+move") == 0;
}

static void volume_failed(struct job *job, const struct volume *v, const char *why, char *err, size_t errlen,
			  int *failed)
{
	job_item(job, "failed", "stowage.dev", "volumedata", v->ns, v->pvc, why);
	job_log(job, "error", "%s", why);
	if (!*failed)
		snprintf(err, errlen, "%s", why);
	(*failed)++;
}

int job_backup_volumes(struct job *job, struct k8s_client *k, long long cluster_id, const struct job_repository *repo,
		       const char *backup_name, char *const *namespaces, size_t n, const char *label_selector,
		       const cJSON *volume_methods, cJSON *volumes_out, char *err, size_t errlen)
{
	static const struct k8s_resource_type pvc_type = { "", "v1", "PersistentVolumeClaim",
							   "persistentvolumeclaims", 1, K8S_VERB_LIST };
	struct volumes_progress p = { .job = job };
	struct claim_list claims = { cJSON_CreateArray() };
	struct mover_target t;
	char cluster[64], why[2048];
	int failed = 0, index = 0, backed_up = 0;
	cJSON *pvc;

	if (!cJSON_IsArray(volumes_out)) {
		snprintf(err, errlen, "volumes_out: must be a JSON array");
		cJSON_Delete(claims.items);
		return -1;
	}
	snprintf(cluster, sizeof cluster, "%lld", job->cluster_id);
	for (size_t i = 0; i < n; i++) {
		struct k8s_error ke;

		if (k8s_list(k, &pvc_type, namespaces[i], label_selector, 500, collect_claim, &claims, &ke) < 0) {
			char what[128];

			snprintf(what, sizeof what, "listing the claims of namespace %s", namespaces[i]);
			describe(what, &ke, err, errlen);
			cJSON_Delete(claims.items);
			return -1;
		}
	}
	p.volumes_total = cJSON_GetArraySize(claims.items);
	/* no claim, no mover: a namespace without volumes backs up on a runner that moves no data */
	memset(&t, 0, sizeof t);
	if (p.volumes_total && mover_target_open(job, cluster_id, repo, &t, err, errlen) < 0) {
		cJSON_Delete(claims.items);
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &p.start);
	job_progress(job, JOB_VOLUMES_PHASE, 0, p.volumes_total, 0, 0);
	cJSON_ArrayForEach(pvc, claims.items) {
		struct volume v;
		const char *method;
		struct csi_snapshot snap;
		cJSON *entry;
		int rc;

		why[0] = '\0';
		if (job_cancel_requested(job)) {
			if (!failed++)
				snprintf(err, errlen, "the job was cancelled: volumes not backed up");
			break;
		}
		rc = volume_from_claim(k, pvc, &v, why, sizeof why);
		if (rc == 1) {
			job_log(job, "warning", "claim %s/%s is not Bound: it has no data to back up", v.ns, v.pvc);
			job_item(job, "skipped", "stowage.dev", "volumedata", v.ns, v.pvc, "not Bound");
			p.volumes_done++;
			continue;
		}
		if (rc < 0) {
			volume_failed(job, &v, why, err, errlen, &failed);
			p.volumes_done++;
			continue;
		}
		method = method_of(volume_methods, v.ns, v.pvc);
		if (!method_valid(method)) {
			snprintf(why, sizeof why, "claim %s/%s: method \"%s\" is none of filesystem, snapshot, snapshot+move",
				 v.ns, v.pvc, method);
			volume_failed(job, &v, why, err, errlen, &failed);
			p.volumes_done++;
			continue;
		}
		entry = volume_entry(&v, method);
		index++;
		struct timespec one;
		clock_gettime(CLOCK_MONOTONIC, &one);
		if (strcmp(method, "filesystem") == 0)
			rc = backup_filesystem(&t, k, &v, v.pvc, index, &p, entry, why, sizeof why);
		else if (strcmp(method, "snapshot") == 0)
			rc = backup_snapshot(&t, k, &v, backup_name, cluster, &snap, entry, why, sizeof why);
		else
			rc = backup_snapshot_move(&t, k, &v, backup_name, cluster, index, &p, entry, why, sizeof why);
		if (rc < 0) {
			cJSON_Delete(entry);
			volume_failed(job, &v, why, err, errlen, &failed);
			p.volumes_done++;
			continue;
		}
		if (strcmp(method, "snapshot") == 0)
			progress_volume_done(&p, 0, 0);
		volume_logged(job, "backed up", v.ns, v.pvc, method, entry, elapsed_ms(&one));
		backed_up++;
		cJSON_AddItemToArray(volumes_out, entry);
		snprintf(why, sizeof why, "%s", method);
		job_item(job, "backed_up", "stowage.dev", "volumedata", v.ns, v.pvc, why);
	}
	job_progress_flush(job);
	job_log(job, failed ? "warning" : "info", "volume data: %d of %ld claims backed up, %lld files, %lld bytes in %.1f s",
		backed_up, (long)p.volumes_total, p.files, p.bytes, (double)elapsed_ms(&p.start) / 1000);
	cJSON_Delete(claims.items);
	mover_target_close(&t);
	if (failed > 1) {
		size_t len = strlen(err);

		snprintf(err + len, errlen - len, " (and %d more volumes failed)", failed - 1);
	}
	return failed ? -1 : 0;
}

/* ---- restore ---- */

int csi_restore_pvc_source(const cJSON *volume, int same_cluster, const char *target_namespace,
			   cJSON **data_source, char *err, size_t errlen)
{
	const char *method = json_str(volume, "method", NULL);
	struct csi_snapshot snap;

	*data_source = NULL;
	if (!volume || !method || strcmp(method, "snapshot") != 0)
		return 0;
	if (csi_snapshot_from_json(cJSON_GetObjectItemCaseSensitive(volume, "volume_snapshot"), &snap, err, errlen) < 0)
		return -1;
	if (!same_cluster) {
		snprintf(err, errlen, "claim %s/%s was backed up as a volume snapshot, which exists only in the cluster it "
			 "was taken in: restore it there, or back it up with \"snapshot+move\" to restore it anywhere",
			 snap.ns, json_str(volume, "pvc", NULL) ? json_str(volume, "pvc", NULL) : "?");
		return -1;
	}
	if (strcmp(snap.ns, target_namespace) != 0) {
		snprintf(err, errlen, "claim %s/%s was backed up as a volume snapshot, which serves claims of namespace %s "
			 "only, not %s: restore it into %s, or back it up with \"snapshot+move\"", snap.ns,
			 json_str(volume, "pvc", NULL) ? json_str(volume, "pvc", NULL) : "?", snap.ns, target_namespace, snap.ns);
		return -1;
	}
	*data_source = cJSON_CreateObject();
	cJSON_AddStringToObject(*data_source, "apiGroup", CSI_SNAPSHOT_GROUP);
	cJSON_AddStringToObject(*data_source, "kind", "VolumeSnapshot");
	cJSON_AddStringToObject(*data_source, "name", snap.name);
	return 1;
}

/* A count of the mover's final line: a number from 0 to 10^15, otherwise 0 (its output is
 * only as trustworthy as the volume it ran on). */
static long long done_count(const cJSON *done, const char *key)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(done, key);

	return cJSON_IsNumber(n) && n->valuedouble >= 0 && n->valuedouble < 1e15 ? (long long)n->valuedouble : 0;
}

static int restore_one(const struct mover_target *t, struct k8s_client *k, const cJSON *e, const cJSON *namespace_map,
		       int mirror, int index, struct volumes_progress *p, char *why, size_t whylen, struct volume *v)
{
	const char *ns = json_str(e, "namespace", NULL), *pvc = json_str(e, "pvc", NULL);
	const char *method = json_str(e, "method", NULL), *snapshot = json_str(e, "snapshot_id", NULL);
	const char *target_ns;
	long long bytes = (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "bytes"));
	long long files = (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "files"));
	char snap_arg[128];
	const char *extra[] = { "--snapshot", snap_arg, mirror ? "--mirror" : NULL, NULL };
	cJSON *done = NULL;

	memset(v, 0, sizeof *v);
	if (!ns || !pvc || !method || strlen(ns) >= sizeof v->ns || strlen(pvc) >= sizeof v->pvc) {
		snprintf(why, whylen, "volumes entry %d: namespace, pvc and method must be strings", index);
		return -1;
	}
	target_ns = json_str(namespace_map, ns, NULL) ? json_str(namespace_map, ns, NULL) : ns;
	snprintf(v->ns, sizeof v->ns, "%s", target_ns);
	snprintf(v->pvc, sizeof v->pvc, "%s", pvc);
	if (!method_valid(method)) {
		snprintf(why, whylen, "claim %s/%s: method \"%s\" is none of filesystem, snapshot, snapshot+move", ns, pvc, method);
		return -1;
	}
	if (strcmp(method, "snapshot") != 0 && (!snapshot || !*snapshot || strlen(snapshot) >= 100)) {
		snprintf(why, whylen, "claim %s/%s: the backup records no data mover snapshot for it", ns, pvc);
		return -1;
	}
	if (wait_bound(k, target_ns, pvc, v, why, whylen) < 0)
		return -1;
	if (strcmp(method, "snapshot") == 0) {
		progress_volume_done(p, 0, 0);
		return 0;	/* the claim's dataSource brought the data */
	}
	snprintf(snap_arg, sizeof snap_arg, "%s", snapshot);
	if (run_mover(t, k, v, 1, extra, index, p, &done, why, whylen) < 0)
		return -1;
	p->files_written += done_count(done, "files_written");
	p->bytes_written += done_count(done, "bytes_written");
	p->files_unchanged += done_count(done, "files_unchanged");
	p->removed += done_count(done, "removed");
	cJSON_Delete(done);
	progress_volume_done(p, bytes, files);
	return 0;
}

/* ---- waiting for the restored claims, all at once ---- */

struct claim_wait {
	char ns[64], pvc[254];
	int state;		/* 0 waiting, 1 Bound, -1 will not bind (why says so) */
	int told;		/* the cause of the wait is in the job's log */
	char why[700];
};

/* Why claim pvc (not Bound) waits: 1 and why when it never binds by itself, 2 when it very
 * likely never does (its class is missing), 0 and why (maybe empty) when something may still
 * bind it (a provisioner, an administrator's volume). */
static int claim_diagnose(struct k8s_client *k, const cJSON *pvc, char *why, size_t len)
{
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(pvc, "spec");
	const char *pv = json_str(spec, "volumeName", NULL), *cls = json_str(spec, "storageClassName", NULL);
	struct k8s_error ke;
	cJSON *obj = NULL;
	char *path;
	int rc = 0;

	why[0] = '\0';
	if (pv && *pv) {
		path = k8s_resource_path("", "v1", "persistentvolumes", NULL, pv);
		if (k8s_get(k, path, &obj, &ke) < 0) {
			if (ke.http_status == 404) {
				snprintf(why, len, "it is bound by name (spec.volumeName) to PersistentVolume %s, which does not exist", pv);
				rc = 1;
			}
		} else {
			const char *phase = json_str(obj, "status", "phase");
			const cJSON *ref = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "spec"), "claimRef");
			const char *rns = json_str(ref, "namespace", NULL), *rname = json_str(ref, "name", NULL);
			const char *ns = json_str(pvc, "metadata", "namespace"), *name = json_str(pvc, "metadata", "name");
			if (phase && (strcmp(phase, "Released") == 0 || strcmp(phase, "Failed") == 0)) {
				snprintf(why, len, "it is bound by name (spec.volumeName) to PersistentVolume %s, which is %s: the "
					 "volume still belongs to the deleted claim it was bound to, so it binds no other until its "
					 "spec.claimRef is cleared", pv, phase);
				rc = 1;
			} else if (rns && rname && ns && name && (strcmp(rns, ns) != 0 || strcmp(rname, name) != 0)) {
				snprintf(why, len, "it is bound by name (spec.volumeName) to PersistentVolume %s, which is reserved "
					 "for claim %s/%s", pv, rns, rname);
				rc = 1;
			}
		}
		cJSON_Delete(obj);
		free(path);
		return rc;
	}
	if (!cls || !*cls) {
		snprintf(why, len, "it names no StorageClass, so only a PersistentVolume made for it binds it");
		return 0;
	}
	path = k8s_resource_path("storage.k8s.io", "v1", "storageclasses", NULL, cls);
	if (k8s_get(k, path, &obj, &ke) < 0) {
		if (ke.http_status == 404) {
			snprintf(why, len, "its StorageClass %s does not exist in the cluster: map it to one of the cluster's "
				 "classes in the plan", cls);
			rc = 2;
		}
	} else {
		const char *prov = json_str(obj, "provisioner", NULL);
		if (prov && strcmp(prov, "kubernetes.io/no-provisioner") == 0)
			snprintf(why, len, "its StorageClass %s has no provisioner (kubernetes.io/no-provisioner): only a "
				 "PersistentVolume made for it by hand binds it", cls);
		else
			snprintf(why, len, "StorageClass %s: waiting for its provisioner (%s) to make a volume", cls,
				 prov ? prov : "none named");
	}
	cJSON_Delete(obj);
	free(path);
	return rc;
}

/* Waits for every claim of the volume record at once, with one deadline for all; diagnoses the
 * ones that do not bind and says why in the job's log within seconds. Returns the claims. */
static struct claim_wait *wait_claims(struct job *job, struct k8s_client *k, const cJSON *volumes,
				      const cJSON *namespace_map, size_t *count)
{
	size_t n = (size_t)cJSON_GetArraySize(volumes), waiting;
	struct claim_wait *w = xcalloc(n ? n : 1, sizeof *w);
	struct timespec start;
	const cJSON *e;
	size_t i = 0;

	cJSON_ArrayForEach(e, volumes) {
		const char *ns = json_str(e, "namespace", NULL), *pvc = json_str(e, "pvc", NULL);
		const char *target_ns = ns && json_str(namespace_map, ns, NULL) ? json_str(namespace_map, ns, NULL) : ns;
		if (!target_ns || !pvc || strlen(target_ns) >= sizeof w[i].ns || strlen(pvc) >= sizeof w[i].pvc)
			w[i].state = -1;	/* restore_one says why */
		else {
			snprintf(w[i].ns, sizeof w[i].ns, "%s", target_ns);
			snprintf(w[i].pvc, sizeof w[i].pvc, "%s", pvc);
		}
		i++;
	}
	*count = n;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		waiting = 0;
		for (i = 0; i < n; i++) {
			char *path;
			cJSON *pvc = NULL;
			struct k8s_error ke;

			if (w[i].state != 0)
				continue;
			path = k8s_resource_path("", "v1", "persistentvolumeclaims", w[i].ns, w[i].pvc);
			if (k8s_get(k, path, &pvc, &ke) < 0) {
				if (ke.http_status == 404) {
					snprintf(w[i].why, sizeof w[i].why, "claim %s/%s: does not exist (it was not restored)",
						 w[i].ns, w[i].pvc);
					w[i].state = -1;
				}
			} else if (json_str(pvc, "status", "phase") && strcmp(json_str(pvc, "status", "phase"), "Bound") == 0) {
				w[i].state = 1;
			} else {
				char cause[600];
				int fatal = claim_diagnose(k, pvc, cause, sizeof cause);
				if (fatal == 2 && elapsed_ms(&start) < MISSING_CLASS_GRACE_MS)
					fatal = 0;
				if (fatal) {
					snprintf(w[i].why, sizeof w[i].why, "claim %s/%s: not Bound: %.500s", w[i].ns, w[i].pvc, cause);
					w[i].state = -1;
				} else {
					if (cause[0] && !w[i].told) {
						job_log(job, "info", "waiting for claim %s/%s to be Bound: %s", w[i].ns, w[i].pvc, cause);
						w[i].told = 1;
					}
					snprintf(w[i].why, sizeof w[i].why, "%s", cause);
					waiting++;
				}
			}
			cJSON_Delete(pvc);
			free(path);
		}
		if (!waiting || job_cancel_requested(job))
			break;
		/* the job page's phase says what the restore waits for (the log says why, per claim) */
		char phase[64];
		snprintf(phase, sizeof phase, "%s: waiting for %zu claim%s to be Bound", JOB_VOLUMES_PHASE, waiting,
			 waiting == 1 ? "" : "s");
		job_progress(job, phase, 0, (long)n, 0, 0);
		if (elapsed_ms(&start) > BIND_TIMEOUT_MS) {
			for (i = 0; i < n; i++) {
				char cause[700];
				if (w[i].state != 0)
					continue;
				snprintf(cause, sizeof cause, "%s", w[i].why);
				snprintf(w[i].why, sizeof w[i].why, "claim %s/%s: not Bound after %ld s: %.400s", w[i].ns, w[i].pvc,
					 BIND_TIMEOUT_MS / 1000, cause[0] ? cause : "no volume was provisioned for it");
				w[i].state = -1;
			}
			break;
		}
		usleep(500 * 1000);
	}
	return w;
}

int job_restore_volumes(struct job *job, struct k8s_client *target, long long cluster_id, const struct job_repository *repo,
			const cJSON *volumes, const cJSON *namespace_map, int mirror, char *err, size_t errlen)
{
	struct volumes_progress p = { .job = job, .restore = 1 };
	struct mover_target t;
	const cJSON *e;
	char why[2048];
	int failed = 0, index = 0, restored = 0;

	if (!cJSON_IsArray(volumes)) {
		snprintf(err, errlen, "volumes: must be a JSON array (the backup's <name>-volumes.json)");
		return -1;
	}
	if (namespace_map && !cJSON_IsObject(namespace_map)) {
		snprintf(err, errlen, "namespace_map: must be a JSON object {\"source\": \"target\"}");
		return -1;
	}
	if (mover_target_open(job, cluster_id, repo, &t, err, errlen) < 0)
		return -1;
	p.volumes_total = cJSON_GetArraySize(volumes);
	clock_gettime(CLOCK_MONOTONIC, &p.start);
	job_progress(job, JOB_VOLUMES_PHASE, 0, p.volumes_total, 0, 0);
	size_t nwait;
	struct claim_wait *waits = wait_claims(job, target, volumes, namespace_map, &nwait);
	job_progress(job, JOB_VOLUMES_PHASE, 0, p.volumes_total, 0, 0);
	cJSON_ArrayForEach(e, volumes) {
		struct volume v;

		why[0] = '\0';
		index++;
		if ((size_t)index <= nwait && waits[index - 1].state < 0 && waits[index - 1].why[0]) {
			memset(&v, 0, sizeof v);
			snprintf(v.ns, sizeof v.ns, "%s", waits[index - 1].ns);
			snprintf(v.pvc, sizeof v.pvc, "%s", waits[index - 1].pvc);
			volume_failed(job, &v, waits[index - 1].why, err, errlen, &failed);
			p.volumes_done++;
			continue;
		}
		if (job_cancel_requested(job)) {
			if (!failed++)
				snprintf(err, errlen, "the job was cancelled: volumes not restored");
			break;
		}
		struct timespec one;
		clock_gettime(CLOCK_MONOTONIC, &one);
		if (restore_one(&t, target, e, namespace_map, mirror, index, &p, why, sizeof why, &v) < 0) {
			volume_failed(job, &v, why, err, errlen, &failed);
			p.volumes_done++;
			continue;
		}
		job_item(job, "created", "stowage.dev", "volumedata", v.ns, v.pvc, json_str(e, "method", NULL));
		volume_logged(job, "restored", v.ns, v.pvc, json_str(e, "method", NULL), e, elapsed_ms(&one));
		restored++;
	}
	job_log(job, failed ? "warning" : "info", "volume data: %d of %ld claims restored, %lld files, %lld bytes in %.1f s",
		restored, (long)p.volumes_total, p.files, p.bytes, (double)elapsed_ms(&p.start) / 1000);
	job_progress_flush(job);
	mover_target_close(&t);
	free(waits);
	if (failed > 1) {
		size_t len = strlen(err);

		snprintf(err + len, errlen - len, " (and %d more volumes failed)", failed - 1);
	}
	return failed ? -1 : 0;
}

/* ---- the repository as a whole: prune, check ---- */

int job_repository_mover(struct job *job, const struct job_repository *repo, const char *const *args,
			 cJSON **done, cJSON *problems, char *err, size_t errlen)
{
	struct mover_target t;
	struct volumes_progress p = { .job = job };
	const char *argv[40];
	char what[64];
	size_t n = 0;
	int rc;

	*done = NULL;
	if (mover_target_open(job, 0, repo, &t, err, errlen) < 0)
		return -1;
	snprintf(what, sizeof what, "repository %lld", repo->id);
	argv[n++] = *args++;
	argv[n++] = "--repo";
	argv[n++] = t.url;
	argv[n++] = "--repo-id";
	argv[n++] = t.repo_id;
	argv[n++] = "--key-file";
	argv[n++] = "/dev/fd/3";
	for (; *args && n < 39; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	clock_gettime(CLOCK_MONOTONIC, &p.start);
	/* No volume is read or written: the mover runs here, whatever mover_launch says, with the
	 * repository's key and nothing of the tenant's clusters. */
	rc = run_local(&t, what, -1, argv, &p, done, problems, err, errlen);
	mover_target_close(&t);
	return rc;
}
