/* stowage-keys: the master key that seals secrets at rest.
 *
 *   stowage-keys generate FILE                 write a new random key, mode 0600
 *   stowage-keys rotate -c CONFIG NEW_FILE     re-seal every stored secret under NEW_FILE's key
 *   stowage-keys sealing-key FILE              print the public sealing key of master key FILE
 *
 * The sealing key is what the web workers get (sealing_key_file): it seals a token or secret key
 * typed into a form, and opens nothing.
 *
 * Rotation runs in one transaction as the schema owner (it must reach every tenant's rows):
 * either every secret is re-sealed or none is. Afterwards point master_key_file at NEW_FILE and
 * restart the programs; the old key can then be destroyed. Secrets are never printed. */
#include "aead.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "secret_store.h"
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

struct sealed_column {
	const char *table;
	const char *row_key;	/* the column that names one row */
	const char *column;
	const char *purpose;
};

/* Every sealed column of the schema (sql/): a column left out here stays under the old key and
 * stops opening once that key is destroyed. */
static const struct sealed_column sealed_columns[] = {
	{ "clusters", "id", "token_enc", "cluster.token" },
	{ "repositories", "id", "secret_key_enc", "repository.secret_key" },
	{ "notification_settings", "id", "webhook_secret_enc", "notification.webhook_secret" },
	{ "org_sso", "org_id", "client_secret_enc", "sso.client_secret" },
};

static int generate(const char *path)
{
	uint8_t key[AEAD_KEY_LEN];
	char hex[2 * AEAD_KEY_LEN + 2];
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0)
		log_fatal("%s: %s", path, strerror(errno));
	if (RAND_bytes(key, sizeof key) != 1)
		log_fatal("no random bytes");
	hex_encode(key, sizeof key, hex);
	strcat(hex, "\n");
	if (write(fd, hex, strlen(hex)) != (ssize_t)strlen(hex) || close(fd) < 0)
		log_fatal("%s: %s", path, strerror(errno));
	OPENSSL_cleanse(key, sizeof key);
	OPENSSL_cleanse(hex, sizeof hex);
	log_info("wrote a new master key to %s", path);
	return 0;
}

/* Re-seals one column; returns the number of rows, or -1. */
static long reseal_column(PGconn *db, const struct sealed_column *col, const struct secret_keyring *old,
			  const struct secret_keyring *new)
{
	char sql[256], err[512];
	PGresult *res;
	long n = 0;

	/* Table and column names come from the constant table above, never from input. */
	snprintf(sql, sizeof sql, "SELECT %s, org_id, %s, key_id FROM stowage.%s WHERE %s IS NOT NULL FOR UPDATE",
		 col->row_key, col->column, col->table, col->column);
	res = db_exec(db, sql, 0, NULL, err, sizeof err);
	if (!res) {
		log_error("%s", err);
		return -1;
	}
	snprintf(sql, sizeof sql, "UPDATE stowage.%s SET %s = $1, key_id = $2 WHERE %s = $3", col->table, col->column,
		 col->row_key);
	for (int i = 0; i < PQntuples(res); i++) {
		const char *id = PQgetvalue(res, i, 0);
		long long org = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		if (strcmp(PQgetvalue(res, i, 3), new->key_id) == 0)
			continue;	/* already under the new key: a rerun after a crash */
		char *plain = secret_open(old, org, col->purpose, PQgetvalue(res, i, 2));
		if (!plain) {
			log_error("%s %s: does not open with the current master key", col->table, id);
			PQclear(res);
			return -1;
		}
		char *sealed = secret_seal(new, org, col->purpose, plain);
		secret_free(plain);
		const char *params[] = { sealed, new->key_id, id };
		int rc = sealed ? db_run(db, sql, 3, params, err, sizeof err) : -1;
		free(sealed);
		if (rc < 0) {
			log_error("%s %s: %s", col->table, id, sealed ? err : "sealing failed");
			PQclear(res);
			return -1;
		}
		n++;
	}
	PQclear(res);
	return n;
}

static int rotate(const char *config_path, const char *new_key_file)
{
	struct config cfg;
	struct secret_keyring old, new;
	char err[512];
	PGconn *db;
	long total = 0;

	if (config_load(&cfg, config_path, err, sizeof err) < 0)
		log_fatal("%s", err);
	const char *old_file = config_get(&cfg, "master_key_file", NULL);
	const char *url = config_get(&cfg, "database_owner_url", NULL);
	if (!old_file || !url)
		log_fatal("%s: master_key_file and database_owner_url must be set", config_path);
	if (secret_keyring_load(old_file, &old, err, sizeof err) < 0 ||
	    secret_keyring_load(new_key_file, &new, err, sizeof err) < 0)
		log_fatal("%s", err);
	if (strcmp(old.key_id, new.key_id) == 0)
		log_fatal("%s holds the key already in use", new_key_file);
	db = db_connect(url, "stowage-keys", err, sizeof err);
	if (!db)
		log_fatal("%s", err);
	if (db_run(db, "BEGIN", 0, NULL, err, sizeof err) < 0)
		log_fatal("%s", err);
	for (size_t i = 0; i < sizeof sealed_columns / sizeof sealed_columns[0]; i++) {
		long n = reseal_column(db, &sealed_columns[i], &old, &new);
		if (n < 0) {
			db_rollback(db);
			log_fatal("rotation abandoned; nothing was changed");
		}
		total += n;
	}
	if (db_commit(db, err, sizeof err) < 0)
		log_fatal("rotation abandoned: %s", err);
	PQfinish(db);
	config_free(&cfg);
	OPENSSL_cleanse(&old, sizeof old);
	OPENSSL_cleanse(&new, sizeof new);
	printf("re-sealed %ld secrets; now set master_key_file = %s, write the web's sealing_key_file with "
	       "stowage-keys sealing-key %s, and restart\n", total, new_key_file, new_key_file);
	return 0;
}

static int sealing_key(const char *path)
{
	struct secret_keyring ring;
	char err[512], line[17 + 1 + 2 * SECRET_SEAL_KEY_LEN + 1];

	if (secret_keyring_load(path, &ring, err, sizeof err) < 0)
		log_fatal("%s", err);
	secret_keyring_sealing_line(&ring, line);
	OPENSSL_cleanse(&ring, sizeof ring);
	printf("%s\n", line);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: stowage-keys generate FILE\n       stowage-keys rotate -c CONFIG NEW_KEY_FILE\n"
		"       stowage-keys sealing-key MASTER_KEY_FILE\n");
	exit(2);
}

int main(int argc, char **argv)
{
	log_set_program("stowage-keys");
	if (argc == 3 && strcmp(argv[1], "generate") == 0)
		return generate(argv[2]);
	if (argc == 3 && strcmp(argv[1], "sealing-key") == 0)
		return sealing_key(argv[2]);
	if (argc == 5 && strcmp(argv[1], "rotate") == 0 && strcmp(argv[2], "-c") == 0)
		return rotate(argv[3], argv[4]);
	usage();
}
