/* stowage-mover: backs a volume's directory up into a repository and restores it, checks and
 * prunes repositories. Progress and results go to stdout as JSON lines for the runner;
 * errors go to stderr, one line each. Exit codes: see usage(). */
#include "chunk_store.h"
#include "log.h"
#include "object_store.h"
#include "rate_window.h"
#include "repo_lock.h"
#include "repo_maintenance.h"
#include "snapshot_store.h"
#include "strbuf.h"
#include "volume_snapshot.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

enum exit_code {
	EXIT_OK = 0,
	EXIT_FAILED = 1,	/* the operation failed: I/O, permissions, store unreachable */
	EXIT_USAGE = 2,		/* bad command line */
	EXIT_DAMAGED = 3,	/* repository data missing or failing verification */
	EXIT_BUSY = 4,		/* a prune held the repository lock too long; retry later */
};

struct cli {
	const char *repo_url, *repo_id, *key_file;
	const char *source, *target, *snapshot;
	const char *keep, *keep_file;
	const char *snapshots;		/* check: only these, "ID,ID,..." */
	const char *rate_upload, *rate_download;	/* rate schedules (rate_window.h) */
	long share_part, share_parts;	/* check --read-data --share K/N */
	struct manifest_tag tags[MANIFEST_TAGS_MAX];
	size_t ntags;
	long threads, grace, lock_stale;
	int read_data;
};

static void usage(FILE *f)
{
	fputs("usage: stowage-mover COMMAND --repo file:///DIR --repo-id ID --key-file FILE [options]\n"
	      "  backup    --source DIR [--tag KEY=VALUE]... [--threads N]\n"
	      "  restore   --snapshot ID --target DIR [--threads N]\n"
	      "  snapshots\n"
	      "  check     [--read-data [--share K/N]] [--snapshots ID,ID,...]\n"
	      "  prune     [--keep ID,ID,... | --keep-file FILE] [--grace SECONDS] [--lock-stale SECONDS]\n"
	      "every command: [--rate-upload SCHEDULE] [--rate-download SCHEDULE], SCHEDULE being\n"
	      "  UNIX_TIME:BYTES_PER_SECOND,... (0 unlimited), each step holding until the next\n"
	      "exit codes: 0 ok, 1 failed, 2 usage, 3 repository data missing or corrupt, 4 repository busy\n", f);
}

static int exit_for(int rc)
{
	if (rc == CHUNK_STORE_CORRUPT)
		return EXIT_DAMAGED;
	if (rc == REPO_LOCK_BUSY)
		return EXIT_BUSY;
	return rc ? EXIT_FAILED : EXIT_OK;
}

/* One JSON object per line on stdout, flushed so the runner sees it at once. */
static void emit(cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);

	if (s) {
		flockfile(stdout);	/* whole lines: the rate's changes come from the store's threads */
		fputs(s, stdout);
		fputc('\n', stdout);
		fflush(stdout);
		funlockfile(stdout);
	}
	cJSON_free(s);
	cJSON_Delete(o);
}

static int parse_long(const char *opt, const char *s, long min, long max, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 10);
	if (errno || !*s || *end || *out < min || *out > max) {
		log_error("option --%s: \"%s\" is not a whole number from %ld to %ld", opt, s, min, max);
		return -1;
	}
	return 0;
}

static int parse_tag(struct cli *c, char *arg)
{
	char *eq = strchr(arg, '='), err[256];

	if (!eq) {
		log_error("option --tag: \"%s\" is not KEY=VALUE", arg);
		return -1;
	}
	*eq = '\0';
	if (manifest_tag_valid(arg, eq + 1, err, sizeof err) < 0) {
		log_error("option --tag: %s", err);
		return -1;
	}
	for (size_t i = 0; i < c->ntags; i++)
		if (strcmp(c->tags[i].key, arg) == 0) {
			log_error("option --tag: %s given twice", arg);
			return -1;
		}
	if (c->ntags == MANIFEST_TAGS_MAX) {
		log_error("option --tag: at most %d tags", MANIFEST_TAGS_MAX);
		return -1;
	}
	c->tags[c->ntags].key = arg;
	c->tags[c->ntags++].value = eq + 1;
	return 0;
}

static struct rate_schedule rate_up, rate_down;

/* {"phase":"rate","direction":"upload","bytes_per_second":N,"at":UNIX_TIME}: the rate in force
 * from now, 0 unlimited; the runner logs it. */
static void on_rate(int direction, uint64_t bps, time_t at, void *ud)
{
	cJSON *o = cJSON_CreateObject();

	(void)ud;
	cJSON_AddStringToObject(o, "phase", "rate");
	cJSON_AddStringToObject(o, "direction", direction == RATE_UPLOAD ? "upload" : "download");
	cJSON_AddNumberToObject(o, "bytes_per_second", (double)bps);
	cJSON_AddNumberToObject(o, "at", (double)at);
	emit(o);
}

/* The bandwidth schedules the runner computed from the cluster's windows. */
static int rate_schedules(const struct cli *c)
{
	char err[256];

	if (c->rate_upload && rate_schedule_parse(c->rate_upload, &rate_up, err, sizeof err) < 0) {
		log_error("option --rate-upload: %s", err);
		return -1;
	}
	if (c->rate_download && rate_schedule_parse(c->rate_download, &rate_down, err, sizeof err) < 0) {
		log_error("option --rate-download: %s", err);
		return -1;
	}
	return 0;
}

static int parse_args(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repo", required_argument, NULL, 'r' }, { "repo-id", required_argument, NULL, 'i' },
		{ "key-file", required_argument, NULL, 'k' }, { "source", required_argument, NULL, 's' },
		{ "target", required_argument, NULL, 't' }, { "snapshot", required_argument, NULL, 'n' },
		{ "tag", required_argument, NULL, 'g' }, { "threads", required_argument, NULL, 'j' },
		{ "read-data", no_argument, NULL, 'd' }, { "keep", required_argument, NULL, 'K' },
		{ "keep-file", required_argument, NULL, 'F' }, { "grace", required_argument, NULL, 'G' },
		{ "lock-stale", required_argument, NULL, 'L' }, { "help", no_argument, NULL, 'h' },
		{ "snapshots", required_argument, NULL, 'S' }, { "share", required_argument, NULL, 'P' },
		{ "rate-upload", required_argument, NULL, 'U' }, { "rate-download", required_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	c->grace = PRUNE_GRACE_DEFAULT;
	c->lock_stale = REPO_LOCK_STALE_DEFAULT;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'r': c->repo_url = optarg; break;
		case 'i': c->repo_id = optarg; break;
		case 'k': c->key_file = optarg; break;
		case 's': c->source = optarg; break;
		case 't': c->target = optarg; break;
		case 'n': c->snapshot = optarg; break;
		case 'd': c->read_data = 1; break;
		case 'K': c->keep = optarg; break;
		case 'F': c->keep_file = optarg; break;
		case 'S': c->snapshots = optarg; break;
		case 'U': c->rate_upload = optarg; break;
		case 'D': c->rate_download = optarg; break;
		case 'P': {
			char *slash = strchr(optarg, '/');
			if (!slash || slash == optarg) {
				log_error("option --share: \"%s\" is not K/N", optarg);
				return -1;
			}
			*slash = '\0';
			if (parse_long("share", slash + 1, 1, 256, &c->share_parts) < 0 ||
			    parse_long("share", optarg, 0, c->share_parts - 1, &c->share_part) < 0)
				return -1;
			break;
		}
		case 'g':
			if (parse_tag(c, optarg) < 0)
				return -1;
			break;
		case 'j':
			if (parse_long("threads", optarg, 1, 16, &c->threads) < 0)
				return -1;
			break;
		case 'G':
			if (parse_long("grace", optarg, 0, 365L * 86400, &c->grace) < 0)
				return -1;
			break;
		case 'L':
			if (parse_long("lock-stale", optarg, 0, 7L * 86400, &c->lock_stale) < 0)
				return -1;
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_OK);
		default:
			log_error("unknown option or missing value: %s", argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc) {
		log_error("unexpected argument: %s", argv[optind]);
		return -1;
	}
	if (rate_schedules(c) < 0)
		return -1;
	if (!c->repo_url || !c->repo_id || !c->key_file) {
		log_error("--repo, --repo-id and --key-file are required");
		return -1;
	}
	return 0;
}

static int require(const char *value, const char *name, const char *command)
{
	if (value)
		return 0;
	log_error("%s needs --%s", command, name);
	return -1;
}

/* ---- commands ---- */

static void on_progress(const struct volume_progress *p, void *arg)
{
	cJSON *o = cJSON_CreateObject();

	(void)arg;
	cJSON_AddStringToObject(o, "phase", "volume");
	cJSON_AddNumberToObject(o, "bytes_done", (double)p->bytes_done);
	cJSON_AddNumberToObject(o, "bytes_total", (double)p->bytes_total);
	cJSON_AddNumberToObject(o, "files_done", (double)p->files_done);
	cJSON_AddNumberToObject(o, "files_total", (double)p->files_total);
	emit(o);
}

static int cmd_backup(struct cli *c, struct chunk_store *cs, struct object_store *os)
{
	struct volume_backup_options opt = { .source = c->source, .tags = c->tags, .ntags = c->ntags,
					     .threads = (unsigned)c->threads, .progress = on_progress,
					     .lock_stale = c->lock_stale };
	struct volume_backup_result res;
	char err[1024];
	cJSON *o;
	int rc;

	if (require(c->source, "source", "backup") < 0)
		return EXIT_USAGE;
	rc = volume_backup(cs, &opt, &res, err, sizeof err);
	if (rc < 0) {
		log_error("%s", err);
		return exit_for(rc);
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "phase", "done");
	cJSON_AddStringToObject(o, "snapshot_id", res.id);
	if (res.parent[0])
		cJSON_AddStringToObject(o, "parent", res.parent);
	cJSON_AddNumberToObject(o, "files", (double)res.files);
	cJSON_AddNumberToObject(o, "dirs", (double)res.dirs);
	cJSON_AddNumberToObject(o, "symlinks", (double)res.symlinks);
	cJSON_AddNumberToObject(o, "bytes", (double)res.bytes);
	cJSON_AddNumberToObject(o, "files_unchanged", (double)res.files_unchanged);
	cJSON_AddNumberToObject(o, "bytes_read", (double)res.bytes_read);
	cJSON_AddNumberToObject(o, "bytes_new", (double)res.store.bytes_new);
	cJSON_AddNumberToObject(o, "chunks", (double)res.chunks);
	cJSON_AddNumberToObject(o, "chunks_new", (double)res.store.chunks_new);
	cJSON_AddNumberToObject(o, "bytes_written", (double)res.store.bytes_written);
	cJSON_AddNumberToObject(o, "packs_written", (double)res.store.packs_written);
	cJSON_AddNumberToObject(o, "rate_wait_ms", (double)object_store_limited_wait_ms(os));
	emit(o);
	return EXIT_OK;
}

static int cmd_restore(struct cli *c, struct chunk_store *cs, struct object_store *os)
{
	char err[1024];
	cJSON *o;
	int rc;

	if (require(c->snapshot, "snapshot", "restore") < 0 || require(c->target, "target", "restore") < 0)
		return EXIT_USAGE;
	{
	struct volume_restore_options opt = { .snapshot_id = c->snapshot, .target = c->target,
					      .threads = (unsigned)c->threads, .progress = on_progress };

	rc = volume_restore(cs, &opt, err, sizeof err);
	}
	if (rc < 0) {
		log_error("%s", err);
		return exit_for(rc);
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "phase", "done");
	cJSON_AddStringToObject(o, "snapshot_id", c->snapshot);
	cJSON_AddNumberToObject(o, "rate_wait_ms", (double)object_store_limited_wait_ms(os));
	emit(o);
	return EXIT_OK;
}

static void print_snapshot(struct chunk_store *cs, const char *id)
{
	struct manifest_header h;
	char err[512];
	cJSON *o, *tags;

	if (snapshot_read(cs, id, &h, err, sizeof err) < 0) {
		log_error("%s", err);
		return;
	}
	o = cJSON_CreateObject();
	tags = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", h.id);
	cJSON_AddNumberToObject(o, "time", (double)h.time_sec);
	if (h.parent[0])
		cJSON_AddStringToObject(o, "parent", h.parent);
	cJSON_AddStringToObject(o, "source", h.source);
	for (size_t i = 0; i < h.ntags; i++)
		cJSON_AddStringToObject(tags, h.tags[i].key, h.tags[i].value);
	cJSON_AddItemToObject(o, "tags", tags);
	cJSON_AddNumberToObject(o, "files", (double)h.files);
	cJSON_AddNumberToObject(o, "bytes", (double)h.bytes);
	emit(o);
	manifest_header_free(&h);
}

struct id_list {
	char **ids;
	size_t n, cap;
};

static int collect_id(const char *id, const struct object_info *info, void *arg)
{
	struct id_list *l = arg;

	(void)info;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->ids = xrealloc(l->ids, l->cap * sizeof *l->ids);
	}
	l->ids[l->n++] = xstrdup(id);
	return 0;
}

static int id_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Oldest first: ids begin with their UTC time. */
static int cmd_snapshots(struct chunk_store *cs)
{
	struct id_list l = { NULL, 0, 0 };
	char err[512];
	int rc = snapshot_list(cs, collect_id, &l, err, sizeof err);

	if (rc < 0)
		log_error("%s", err);
	if (l.n)
		qsort(l.ids, l.n, sizeof *l.ids, id_cmp);
	for (size_t i = 0; i < l.n; i++) {
		if (rc == 0)
			print_snapshot(cs, l.ids[i]);
		free(l.ids[i]);
	}
	free(l.ids);
	return rc < 0 ? EXIT_FAILED : EXIT_OK;
}

static void print_problem(const char *line, void *arg)
{
	cJSON *o = cJSON_CreateObject();

	(void)arg;
	cJSON_AddStringToObject(o, "problem", line);
	emit(o);
}

static int cmd_check(struct cli *c, struct chunk_store *cs)
{
	char err[512];
	char *list = c->snapshots ? xstrdup(c->snapshots) : NULL, *save = NULL, *tok;
	const char **ids = NULL;
	size_t n = 0;

	for (tok = list ? strtok_r(list, ",", &save) : NULL; tok; tok = strtok_r(NULL, ",", &save)) {
		ids = xrealloc(ids, (n + 1) * sizeof *ids);
		ids[n++] = tok;
	}
	if (c->share_parts)
		chunk_store_verify_share(cs, (unsigned)c->share_part, (unsigned)c->share_parts);
	long problems = list ? repo_check_snapshots(cs, ids, n, c->read_data, print_problem, NULL, err, sizeof err) :
			       repo_check(cs, c->read_data, print_problem, NULL, err, sizeof err);
	free(ids);
	free(list);
	cJSON *o;

	if (problems < 0) {
		log_error("check: %s", err);
		return EXIT_FAILED;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "phase", "done");
	cJSON_AddNumberToObject(o, "problems", (double)problems);
	emit(o);
	if (problems)
		log_error("check: %ld problems found", problems);
	return problems ? EXIT_DAMAGED : EXIT_OK;
}

/* Snapshot ids from "a,b,c" or a file of one id per line; each must be well-formed. */
static int keep_list(struct cli *c, char ***ids, size_t *n)
{
	struct strbuf text = STRBUF_INIT;
	char *save = NULL, *tok;
	const char *sep = c->keep ? "," : "\n";

	*ids = NULL;
	*n = 0;
	if (c->keep && c->keep_file) {
		log_error("prune: give --keep or --keep-file, not both");
		return -1;
	}
	if (c->keep) {
		strbuf_addstr(&text, c->keep);
	} else {
		FILE *f = fopen(c->keep_file, "r");
		char buf[4096];
		size_t r;

		if (!f) {
			log_error("prune: --keep-file %s: %s", c->keep_file, strerror(errno));
			return -1;
		}
		while ((r = fread(buf, 1, sizeof buf, f)) > 0)
			strbuf_add(&text, buf, r);
		fclose(f);
	}
	*ids = xcalloc(text.len / 2 + 2, sizeof **ids);
	for (tok = strtok_r(text.buf, sep, &save); tok; tok = strtok_r(NULL, sep, &save)) {
		size_t len = strlen(tok);
		while (len && (tok[len - 1] == '\r' || tok[len - 1] == ' '))
			tok[--len] = '\0';
		if (!len)
			continue;
		if (!snapshot_id_valid(tok)) {
			log_error("prune: \"%.64s\" is not a snapshot id", tok);
			for (size_t i = 0; i < *n; i++)
				free((*ids)[i]);
			free(*ids);
			strbuf_release(&text);
			return -1;
		}
		(*ids)[(*n)++] = xstrdup(tok);
	}
	strbuf_release(&text);
	return 0;
}

static int cmd_prune(struct cli *c, struct chunk_store *cs)
{
	struct prune_options opt = { .grace = c->grace, .lock_stale = c->lock_stale };
	struct prune_result res;
	char **ids = NULL, err[1024];
	size_t n = 0;
	cJSON *o;
	int rc;

	if ((c->keep || c->keep_file) && keep_list(c, &ids, &n) < 0)
		return EXIT_USAGE;
	if (c->keep || c->keep_file) {
		opt.keep = (const char *const *)ids;
		opt.nkeep = n;
	}
	rc = repo_prune(cs, &opt, &res, err, sizeof err);
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	if (rc < 0) {
		log_error("prune: %s", err);
		return exit_for(rc);
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "phase", "done");
	cJSON_AddNumberToObject(o, "snapshots_deleted", (double)res.snapshots_deleted);
	cJSON_AddNumberToObject(o, "snapshots_kept", (double)res.snapshots_kept);
	cJSON_AddNumberToObject(o, "packs_deleted", (double)res.packs_deleted);
	cJSON_AddNumberToObject(o, "packs_kept", (double)res.packs_kept);
	cJSON_AddNumberToObject(o, "bytes_freed", (double)res.bytes_freed);
	cJSON_AddBoolToObject(o, "backups_running", res.backups_running);
	emit(o);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	struct cli c = { 0 };
	struct object_store *os;
	struct chunk_store *cs;
	uint8_t master[AEAD_KEY_LEN];
	char err[1024];
	const char *cmd = argc > 1 ? argv[1] : "";
	int rc;

	log_set_program("stowage-mover");
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(cmd, "backup") && strcmp(cmd, "restore") && strcmp(cmd, "snapshots") &&
	    strcmp(cmd, "check") && strcmp(cmd, "prune")) {
		log_error("unknown command \"%s\"", cmd);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (parse_args(&c, argc - 1, argv + 1) < 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!repo_id_valid(c.repo_id)) {
		log_error("--repo-id \"%s\": must be 1 to 64 of [A-Za-z0-9._-], not starting with '.'", c.repo_id);
		return EXIT_USAGE;
	}
	if (master_key_load(c.key_file, master, err, sizeof err) < 0) {
		log_error("%s", err);
		return EXIT_FAILED;
	}
	os = object_store_open(c.repo_url, err, sizeof err);
	if (!os) {
		OPENSSL_cleanse(master, sizeof master);
		log_error("%s", err);
		return EXIT_FAILED;
	}
	/* no limiter at all unless a window limits: unlimited costs nothing */
	if (!rate_schedule_unlimited(&rate_up) || !rate_schedule_unlimited(&rate_down))
		os = object_store_limited(os, &rate_up, &rate_down, on_rate, NULL);
	rate_schedule_free(&rate_up);
	rate_schedule_free(&rate_down);
	rc = chunk_store_open(&cs, os, c.repo_id, master, NULL, err, sizeof err);
	OPENSSL_cleanse(master, sizeof master);
	if (rc < 0) {
		log_error("repository %s: %s", c.repo_id, err);
		object_store_close(os);
		return exit_for(rc);
	}
	if (strcmp(cmd, "backup") == 0)
		rc = cmd_backup(&c, cs, os);
	else if (strcmp(cmd, "restore") == 0)
		rc = cmd_restore(&c, cs, os);
	else if (strcmp(cmd, "snapshots") == 0)
		rc = cmd_snapshots(cs);
	else if (strcmp(cmd, "check") == 0)
		rc = cmd_check(&c, cs);
	else
		rc = cmd_prune(&c, cs);
	chunk_store_close(cs);
	object_store_close(os);
	return rc;
}
