/* stowage-archive: reads and writes a repository's objects outside Stowage, with the master key.
 *
 *   stowage-archive export -k MASTER_KEY -r REPOSITORY_ID OBJECT_KEY < sealed > plain
 *   stowage-archive import -k MASTER_KEY -r REPOSITORY_ID OBJECT_KEY < plain > sealed
 *
 * OBJECT_KEY is the object's full key in the bucket ("team-a/backups/nightly-1/nightly-1.tar.gz"):
 * it is bound into the seal, so an object opens only under its own name. Exported, a backup's
 * archive is the plain Velero layout (tar.gz): `tar -tzf`, Velero and our restore read it.
 * Imported, a Velero-layout archive becomes one a restore accepts. See repo_seal.h. */
#include "log.h"
#include "repo_seal.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_out(const void *data, size_t len, void *ud)
{
	(void)ud;
	return fwrite(data, 1, len, stdout) == len ? 0 : -1;
}

static int usage(void)
{
	fprintf(stderr, "usage: stowage-archive export|import -k MASTER_KEY_FILE -r REPOSITORY_ID OBJECT_KEY "
		"< in > out\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *key_file = NULL, *verb = argc > 1 ? argv[1] : "";
	uint8_t master[AEAD_KEY_LEN], key[AEAD_KEY_LEN];
	long long repository = -1;
	char err[256], buf[1 << 16];
	int opt, rc = 0;

	log_set_program("stowage-archive");
	optind = 2;
	while ((opt = getopt(argc, argv, "k:r:")) != -1) {
		if (opt == 'k')
			key_file = optarg;
		else if (opt == 'r')
			repository = strtoll(optarg, NULL, 10);
		else
			return usage();
	}
	if ((strcmp(verb, "export") != 0 && strcmp(verb, "import") != 0) || !key_file || repository < 1 ||
	    optind != argc - 1)
		return usage();
	if (master_key_load(key_file, master, err, sizeof err) < 0)
		log_fatal("%s", err);
	if (repo_seal_key(master, repository, key) < 0)
		log_fatal("cannot derive the key of repository %lld", repository);
	OPENSSL_cleanse(master, sizeof master);
	if (strcmp(verb, "export") == 0) {
		struct repo_unsealer u;
		size_t n;

		repo_unsealer_init(&u, key, argv[optind], write_out, NULL);
		while (rc == 0 && (n = fread(buf, 1, sizeof buf, stdin)) > 0)
			rc = repo_unsealer_feed(&u, buf, n);
		if (rc == 0)
			rc = repo_unsealer_finish(&u);
		if (rc < 0)
			log_error("%s: %s", argv[optind], u.error);
		repo_unsealer_release(&u);
	} else {
		struct strbuf plain = STRBUF_INIT, sealed = STRBUF_INIT;
		size_t n;

		while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
			strbuf_add(&plain, buf, n);
		rc = ferror(stdin) ? -1 : 0;
		repo_seal_mem(key, argv[optind], plain.buf ? plain.buf : "", plain.len, &sealed);
		if (rc == 0 && fwrite(sealed.buf, 1, sealed.len, stdout) != sealed.len)
			rc = -1;
		strbuf_release(&plain);
		strbuf_release(&sealed);
	}
	OPENSSL_cleanse(key, sizeof key);
	if (fflush(stdout) != 0)
		rc = -1;
	return rc < 0 ? 1 : 0;
}
