/* stowage-migrate: applies sql/NNN_name.sql files in order, each once, each in its own
 * transaction, recorded in stowage_migrations. Two concurrent runs serialise on an advisory lock.
 *
 *   stowage-migrate -c stowage.conf [-s sql-dir] [--status]
 */
#include "config.h"
#include "db.h"
#include "log.h"
#include "strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIGRATION_LOCK_KEY "7301000001"

static int is_migration_name(const char *name)
{
	size_t len = strlen(name);

	if (len < 9 || strcmp(name + len - 4, ".sql") != 0)
		return 0;
	for (int i = 0; i < 3; i++)
		if (name[i] < '0' || name[i] > '9')
			return 0;
	return name[3] == '_';
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **list_migrations(const char *dir, size_t *count)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;

	if (!d)
		log_fatal("%s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (!is_migration_name(e->d_name))
			continue;
		names = xrealloc(names, (n + 1) * sizeof *names);
		names[n++] = xstrdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof *names, cmp_names);
	*count = n;
	return names;
}

static char *read_file(const char *path)
{
	struct strbuf sb = STRBUF_INIT;

	if (strbuf_read_file(&sb, path, SIZE_MAX) < 0)
		log_fatal("%s: %s", path, strerror(errno));
	return strbuf_take(&sb);
}

static int migration_applied(PGconn *conn, const char *name)
{
	char err[512];
	const char *params[] = { name };
	PGresult *res = db_exec(conn, "SELECT 1 FROM public.stowage_migrations WHERE name = $1",
				1, params, err, sizeof err);
	int applied;

	if (!res)
		log_fatal("%s", err);
	applied = PQntuples(res) > 0;
	PQclear(res);
	return applied;
}

/* The file's statements run through the simple query protocol: they are our own migration text,
 * never data. The bookkeeping around them is parameterised like everything else. */
static void apply_migration(PGconn *conn, const char *dir, const char *name)
{
	char path[4096], err[512];
	const char *params[] = { name };
	char *sql;
	PGresult *res;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	sql = read_file(path);
	if (db_run(conn, "BEGIN", 0, NULL, err, sizeof err) < 0 ||
	    db_run(conn, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK_KEY ")", 0, NULL, err, sizeof err) < 0)
		log_fatal("%s", err);
	if (migration_applied(conn, name)) {
		db_rollback(conn);
		free(sql);
		return;
	}
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_error("%s: %s", name, PQresultErrorMessage(res));
		PQclear(res);
		db_rollback(conn);
		exit(1);
	}
	PQclear(res);
	if (db_run(conn, "INSERT INTO public.stowage_migrations (name) VALUES ($1)", 1, params, err, sizeof err) < 0 ||
	    db_commit(conn, err, sizeof err) < 0)
		log_fatal("%s: %s", name, err);
	log_info("applied %s", name);
	free(sql);
}

static void usage(void)
{
	fprintf(stderr, "usage: stowage-migrate -c config [-s sql-dir] [--status]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "sql", required_argument, NULL, 's' },
		{ "status", no_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = NULL, *sql_dir = "sql";
	int status_only = 0, c, pending = 0;
	struct config cfg;
	char err[512];
	PGconn *conn;
	char **names;
	size_t n;

	log_set_program("stowage-migrate");
	while ((c = getopt_long(argc, argv, "c:s:", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 's': sql_dir = optarg; break;
		case 'S': status_only = 1; break;
		default: usage();
		}
	}
	if (!config_path || optind != argc)
		usage();
	if (config_load(&cfg, config_path, err, sizeof err) < 0)
		log_fatal("%s", err);
	const char *url = config_get(&cfg, "database_owner_url", NULL);
	if (!url)
		log_fatal("%s: database_owner_url is not set", config_path);
	conn = db_connect(url, "stowage-migrate", err, sizeof err);
	if (!conn)
		log_fatal("%s", err);
	if (db_run(conn, "CREATE TABLE IF NOT EXISTS public.stowage_migrations ("
		   "name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
		   0, NULL, err, sizeof err) < 0)
		log_fatal("%s", err);
	names = list_migrations(sql_dir, &n);
	for (size_t i = 0; i < n; i++) {
		if (status_only) {
			int applied = migration_applied(conn, names[i]);
			printf("%s %s\n", applied ? "applied" : "pending", names[i]);
			pending += !applied;
		} else {
			apply_migration(conn, sql_dir, names[i]);
		}
		free(names[i]);
	}
	free(names);
	PQfinish(conn);
	config_free(&cfg);
	return status_only && pending ? 3 : 0;
}
