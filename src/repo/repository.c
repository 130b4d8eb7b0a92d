#include "repository.h"
#include "db.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int repository_open(PGconn *db, long long org_id, const struct secret_keyring *ring,
		    const struct net_allow *allow, long long repository_id, struct repository *repo,
		    char *err, size_t errlen)
{
	char id[24];
	const char *params[] = { id };
	struct s3_conf conf = { 0 };
	PGresult *res;

	memset(repo, 0, sizeof *repo);
	snprintf(id, sizeof id, "%lld", repository_id);
	res = db_exec(db, "SELECT name, kind, bucket, region, endpoint, prefix, path_style, access_key, secret_key_enc, "
		      "coalesce(seal_id, id) FROM repositories WHERE id = $1", 1, params, err, errlen);
	if (!res)
		return -1;
	if (PQntuples(res) != 1) {
		snprintf(err, errlen, "repository %lld no longer exists", repository_id);
		PQclear(res);
		return -1;
	}
	conf.bucket = PQgetvalue(res, 0, 2);
	conf.region = PQgetvalue(res, 0, 3);
	conf.endpoint = PQgetisnull(res, 0, 4) ? NULL : PQgetvalue(res, 0, 4);
	conf.path_style = strcmp(PQgetvalue(res, 0, 6), "t") == 0;
	conf.access_key = PQgetvalue(res, 0, 7);
	conf.secret_key = secret_open(ring, org_id, "repository.secret_key", PQgetvalue(res, 0, 8));
	if (!conf.secret_key) {
		snprintf(err, errlen, "repository %s: the stored secret key cannot be decrypted with the current master key",
			 PQgetvalue(res, 0, 0));
		PQclear(res);
		return -1;
	}
	repo->s3 = s3_client_new(&conf, allow, err, errlen);
	secret_free(conf.secret_key);
	if (!repo->s3) {
		PQclear(res);
		return -1;
	}
	repo->id = strtoll(PQgetvalue(res, 0, 9), NULL, 10);
	repo->bucket = xstrdup(conf.bucket);
	const char *prefix = PQgetvalue(res, 0, 5);
	size_t plen = strlen(prefix);
	repo->prefix = xmalloc(plen + 2);
	snprintf(repo->prefix, plen + 2, "%s%s", prefix, plen && prefix[plen - 1] != '/' ? "/" : "");
	PQclear(res);
	return 0;
}

void repository_close(struct repository *repo)
{
	s3_client_free(repo->s3);
	free(repo->prefix);
	free(repo->bucket);
	memset(repo, 0, sizeof *repo);
}

struct key_list {
	char **keys;
	size_t n;
};

static int collect_key(const struct s3_object_info *obj, void *ud)
{
	struct key_list *l = ud;

	l->keys = xrealloc(l->keys, (l->n + 1) * sizeof *l->keys);
	l->keys[l->n++] = xstrdup(obj->key);
	return 0;
}

static int delete_key(struct repository *repo, const char *key, char *err, size_t errlen)
{
	struct s3_error s3err = { 0 };

	if (s3_delete(repo->s3, key, &s3err) == 0)
		return 0;
	s3_error_describe(&s3err, err, errlen);
	return -1;
}

long repository_delete_backup(struct repository *repo, const char *name, char *err, size_t errlen)
{
	struct strbuf prefix = STRBUF_INIT, meta = STRBUF_INIT;
	struct key_list keys = { 0 };
	struct s3_error s3err = { 0 };
	long deleted = -1;

	strbuf_addf(&prefix, "%sbackups/%s/", repo->prefix, name);
	strbuf_addf(&meta, "%svelero-backup.json", prefix.buf);
	/* The metadata file goes first: from then on nothing takes the rest for a complete backup. */
	if (delete_key(repo, meta.buf, err, errlen) < 0)
		goto out;
	if (s3_list(repo->s3, prefix.buf, 1000, collect_key, &keys, &s3err) < 0) {
		s3_error_describe(&s3err, err, errlen);
		goto out;
	}
	deleted = 1;
	for (size_t i = 0; i < keys.n; i++) {
		if (delete_key(repo, keys.keys[i], err, errlen) < 0) {
			deleted = -1;
			goto out;
		}
		deleted++;
	}
out:
	for (size_t i = 0; i < keys.n; i++)
		free(keys.keys[i]);
	free(keys.keys);
	strbuf_release(&prefix);
	strbuf_release(&meta);
	return deleted;
}
