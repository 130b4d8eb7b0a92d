/* backup_reader: archives built here with libarchive, good and hostile. */
#include "backup_reader.h"
#include "check.h"
#include "strbuf.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <unistd.h>

struct member {
	const char *path;
	const char *data;	/* NULL: a directory; "->x": a symlink to x */
};

static const char *const CM = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c1\",\"namespace\":\"shop\"}}";

/* A tar.gz of the members, in memory (the caller frees *out). */
static size_t build(const struct member *m, size_t n, char **out)
{
	size_t cap = 1 << 20, used = 0;
	struct archive *a = archive_write_new();

	*out = xmalloc(cap);
	archive_write_add_filter_gzip(a);
	archive_write_set_format_pax_restricted(a);
	archive_write_open_memory(a, *out, cap, &used);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, m[i].path);
		archive_entry_set_perm(e, 0644);
		if (!m[i].data) {
			archive_entry_set_filetype(e, AE_IFDIR);
		} else if (strncmp(m[i].data, "->", 2) == 0) {
			archive_entry_set_filetype(e, AE_IFLNK);
			archive_entry_set_symlink(e, m[i].data + 2);
		} else {
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_size(e, (la_int64_t)strlen(m[i].data));
		}
		archive_write_header(a, e);
		if (m[i].data && strncmp(m[i].data, "->", 2) != 0)
			archive_write_data(a, m[i].data, strlen(m[i].data));
		archive_entry_free(e);
	}
	archive_write_close(a);
	archive_write_free(a);
	return used;
}

/* Reads an archive of the members; returns the reader's result, err filled. */
static int read_members(const struct member *m, size_t n, const struct backup_limits *lim,
			struct backup_archive *out, char *err, size_t errlen)
{
	char *data;
	size_t len = build(m, n, &data);
	int rc = backup_reader_read_memory(data, len, lim, out, err, errlen);

	free(data);
	return rc;
}

/* One object member beside a valid version: the reader's verdict. */
static int read_one(const char *path, const char *json, char *err, size_t errlen)
{
	struct member m[] = { { "metadata/version", "1.1.0\n" }, { path, json } };
	struct backup_archive a;
	int rc = read_members(m, 2, NULL, &a, err, errlen);

	backup_archive_free(&a);
	return rc;
}

static void test_reads_velero_layout(void)
{
	struct member m[] = {
		{ "metadata/version", "1.1.0\n" },
		{ "resources", NULL },
		{ "resources/configmaps/namespaces/shop/c1.json", CM },
		{ "resources/configmaps/v1-preferredversion/namespaces/shop/c1.json", CM },
		{ "resources/deployments.apps/namespaces/shop/web.json",
		  "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\"}}" },
		{ "resources/namespaces/cluster/shop.json",
		  "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"shop\"}}" },
		{ "resources/clusterroles.rbac.authorization.k8s.io/cluster/system%3Aodd%20name.json",
		  "{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"ClusterRole\",\"metadata\":{\"name\":\"system:odd name\"}}" },
		{ "resources/widgets.fixtures.stowage.dev/namespaces/shop/sprocket.json",
		  "{\"apiVersion\":\"fixtures.stowage.dev/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"sprocket\",\"namespace\":\"shop\"}}" },
		{ "velero-backup.json", "{\"not\": \"read\"}" },
	};
	struct backup_archive a;
	char err[512] = "";

	CHECK_INTEQ(read_members(m, sizeof m / sizeof m[0], NULL, &a, err, sizeof err), 0);
	CHECK_STREQ(err, "");
	CHECK_STREQ(a.version, "1.1.0");
	CHECK_INTEQ(a.n, 5);	/* the preferred-version copy is not read twice */
	/* sorted by group, resource, namespace, name */
	CHECK_STREQ(a.objects[0].resource, "configmaps");
	CHECK_STREQ(a.objects[0].group, "");
	CHECK_STREQ(a.objects[0].ns, "shop");
	CHECK_STREQ(a.objects[0].name, "c1");
	CHECK_STREQ(a.objects[1].resource, "namespaces");
	CHECK_STREQ(a.objects[1].ns, "");
	CHECK_STREQ(a.objects[2].resource, "deployments");
	CHECK_STREQ(a.objects[2].group, "apps");
	CHECK_STREQ(a.objects[3].group, "fixtures.stowage.dev");
	CHECK_STREQ(a.objects[4].name, "system:odd name");
	CHECK_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(a.objects[2].obj, "kind")), "Deployment");
	backup_archive_free(&a);
}

static void test_rejects_paths_that_escape(void)
{
	char err[512];

	CHECK_INTEQ(read_one("../x", CM, err, sizeof err), -1);
	CHECK(strstr(err, "\"..\" is not allowed") != NULL);
	CHECK_INTEQ(read_one("resources/configmaps/namespaces/../../etc/c1.json", CM, err, sizeof err), -1);
	CHECK(strstr(err, "\"..\" is not allowed") != NULL);
	CHECK_INTEQ(read_one("/abs", CM, err, sizeof err), -1);
	CHECK(strstr(err, "absolute paths are not allowed") != NULL);
	CHECK_INTEQ(read_one("resources/configmaps/namespaces/%2E%2E/c1.json", CM, err, sizeof err), -1);
	CHECK_INTEQ(read_one("resources/configmaps/namespaces/a%2Fb/c1.json", CM, err, sizeof err), -1);
	CHECK_INTEQ(read_one("resources/configmaps/namespaces/shop/c1.json", "->/etc/passwd", err, sizeof err), -1);
	CHECK(strstr(err, "links are not allowed") != NULL);
	CHECK_INTEQ(read_one("resources/configmaps/shop/c1.json", CM, err, sizeof err), -1);
	CHECK(strstr(err, "not resources/<resource>") != NULL);
	CHECK_INTEQ(read_one("resources/configmaps/namespaces/shop/c1.yaml", CM, err, sizeof err), -1);
}

static void test_rejects_oversize_and_too_many(void)
{
	struct backup_limits lim = { .member_max = 100, .members_max = 2, .total_max = 1 << 20 };
	struct member m[] = {
		{ "metadata/version", "1" },
		{ "resources/configmaps/namespaces/shop/c1.json", CM },
	};
	struct member three[] = {
		{ "metadata/version", "1" },
		{ "resources/configmaps/namespaces/shop/c1.json", CM },
		{ "resources/configmaps/namespaces/shop/c2.json", "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c2\",\"namespace\":\"shop\"}}" },
		{ "resources/configmaps/namespaces/shop/c3.json", "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c3\",\"namespace\":\"shop\"}}" },
	};
	struct backup_archive a;
	char err[512];

	CHECK_INTEQ(read_members(m, 2, &lim, &a, err, sizeof err), 0);
	backup_archive_free(&a);
	lim.member_max = 50;
	CHECK_INTEQ(read_members(m, 2, &lim, &a, err, sizeof err), -1);
	CHECK(strstr(err, "larger than 50 bytes") != NULL);
	CHECK_INTEQ(a.n, 0);
	lim.member_max = 100;
	CHECK_INTEQ(read_members(three, 4, &lim, &a, err, sizeof err), -1);
	CHECK(strstr(err, "more than 2 objects") != NULL);
	lim.members_max = 10;
	lim.total_max = 150;
	CHECK_INTEQ(read_members(three, 4, &lim, &a, err, sizeof err), -1);
	CHECK(strstr(err, "add up to more than 150 bytes") != NULL);
}

static void test_rejects_what_is_not_an_object_of_its_path(void)
{
	char err[512];

	CHECK_INTEQ(read_one("resources/configmaps/namespaces/shop/c1.json", "{not json", err, sizeof err), -1);
	CHECK(strstr(err, "not valid JSON") != NULL);
	CHECK_INTEQ(read_one("resources/configmaps/namespaces/shop/c1.json", "[1,2]", err, sizeof err), -1);
	CHECK(strstr(err, "not a Kubernetes object") != NULL);
	CHECK_INTEQ(read_one("resources/configmaps/namespaces/shop/other.json", CM, err, sizeof err), -1);
	CHECK(strstr(err, "metadata.name \"c1\" disagrees") != NULL);
	CHECK_INTEQ(read_one("resources/configmaps/namespaces/kube-system/c1.json", CM, err, sizeof err), -1);
	CHECK(strstr(err, "metadata.namespace \"shop\" disagrees") != NULL);
	CHECK_INTEQ(read_one("resources/configmaps/cluster/c1.json", CM, err, sizeof err), -1);
	CHECK_INTEQ(read_one("resources/secrets/namespaces/shop/c1.json", CM, err, sizeof err), -1);
	CHECK(strstr(err, "kind \"ConfigMap\" is not the kind of secrets (Secret)") != NULL);
	CHECK_INTEQ(read_one("resources/configmaps.apps/namespaces/shop/c1.json", CM, err, sizeof err), -1);
	CHECK(strstr(err, "is not of group \"apps\"") != NULL);
}

static void test_rejects_duplicates_and_missing_version(void)
{
	struct member dup[] = {
		{ "metadata/version", "1.1.0" },
		{ "resources/configmaps/namespaces/shop/c1.json", CM },
		{ "resources/configmaps/namespaces/shop/c1.json", CM },
	};
	struct member noversion[] = { { "resources/configmaps/namespaces/shop/c1.json", CM } };
	struct member future[] = { { "metadata/version", "2.0.0" } };
	struct backup_archive a;
	char err[512];

	CHECK_INTEQ(read_members(dup, 3, NULL, &a, err, sizeof err), -1);
	CHECK(strstr(err, "twice") != NULL);
	CHECK_INTEQ(read_members(noversion, 1, NULL, &a, err, sizeof err), -1);
	CHECK(strstr(err, "no metadata/version") != NULL);
	CHECK_INTEQ(read_members(future, 1, NULL, &a, err, sizeof err), -1);
	CHECK(strstr(err, "\"2.0.0\" is not supported") != NULL);
	CHECK_INTEQ(backup_reader_read_memory("not a tar at all, not gzip either", 33, NULL, &a, err, sizeof err), -1);
}

static void test_reads_a_file(void)
{
	struct member m[] = { { "metadata/version", "1" }, { "resources/configmaps/namespaces/shop/c1.json", CM } };
	char path[] = "/tmp/test_backup_reader_XXXXXX", *data, err[512];
	size_t len = build(m, 2, &data);
	int fd = mkstemp(path);
	struct backup_archive a;

	CHECK(fd >= 0 && write(fd, data, len) == (ssize_t)len);
	close(fd);
	CHECK_INTEQ(backup_reader_read_file(path, NULL, &a, err, sizeof err), 0);
	CHECK_INTEQ(a.n, 1);
	backup_archive_free(&a);
	unlink(path);
	CHECK_INTEQ(backup_reader_read_file(path, NULL, &a, err, sizeof err), -1);
	CHECK(strstr(err, path) != NULL);
	free(data);
}

/* What nobody reads still inflates: a skipped member counts, as does every entry, and a
 * cancel stops the read between chunks. */
static int cancel_after_calls(void *ud)
{
	int *left = ud;

	return --*left < 0;
}

static void test_skipped_members_entries_and_cancel_are_bounded(void)
{
	size_t big = 4u << 20;
	char *huge = xmalloc(big + 1), dirs[40][32];
	struct member m[] = {
		{ "metadata/version", "1" },
		{ "logs/huge.txt", huge },		/* not under resources/: skipped */
		{ "resources/configmaps/namespaces/shop/c1.json", CM },
	};
	struct member many[41];
	struct backup_limits lim = { .member_max = 0 };
	struct backup_archive a;
	char err[512];
	int left;

	memset(huge, 'a', big);
	huge[big] = '\0';
	CHECK_INTEQ(read_members(m, 3, NULL, &a, err, sizeof err), 0);
	CHECK_INTEQ(a.n, 1);
	backup_archive_free(&a);
	lim.inflated_max = 1u << 20;
	CHECK_INTEQ(read_members(m, 3, &lim, &a, err, sizeof err), -1);
	CHECK_STREQ(err, "archive member \"logs/huge.txt\": the archive inflates to more than 1048576 bytes; "
		    "stopped reading");

	many[0] = (struct member){ "metadata/version", "1" };
	for (int i = 0; i < 40; i++) {
		snprintf(dirs[i], sizeof dirs[i], "empty-%d/", i);
		many[i + 1] = (struct member){ dirs[i], NULL };
	}
	lim = (struct backup_limits){ .entries_max = 20 };
	CHECK_INTEQ(read_members(many, 41, &lim, &a, err, sizeof err), -1);
	CHECK_STREQ(err, "the archive holds more than 20 members; stopped reading");

	left = 5;	/* a few chunks into the skipped member */
	lim = (struct backup_limits){ .cancelled = cancel_after_calls, .cancel_ud = &left };
	CHECK_INTEQ(read_members(m, 3, &lim, &a, err, sizeof err), -1);
	CHECK_STREQ(err, "reading the archive stopped: the job was cancelled");
	free(huge);
}

/* each: what a restore keeps of 100,000 objects: their names and its mark, no bodies. */
struct seen {
	size_t calls, bytes;
	int stop_at;
};

static int each_object(struct backup_object *o, const char *json, size_t len, void *ud, char *err, size_t errlen)
{
	struct seen *s = ud;

	if (!cJSON_IsObject(o->obj) || strlen(json) != len)
		return -1;
	o->mark = 100 + s->calls++;
	s->bytes += len;
	if ((int)s->calls == s->stop_at) {
		snprintf(err, errlen, "stopped by each");
		return 1;
	}
	return 0;
}

static void test_each_keeps_names_not_bodies(void)
{
	const char *dep = "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\"}}";
	struct member m[] = {
		{ "metadata/version", "1" },
		{ "resources/deployments.apps/namespaces/shop/web.json", dep },
		{ "resources/configmaps/namespaces/shop/c1.json", CM },
	};
	struct seen seen = { 0 };
	struct backup_limits lim = { .each = each_object, .each_ud = &seen };
	struct backup_archive a;
	char err[512] = "";

	CHECK_INTEQ(read_members(m, 3, &lim, &a, err, sizeof err), 0);
	CHECK_INTEQ(seen.calls, 2);
	CHECK_INTEQ(seen.bytes, strlen(dep) + strlen(CM));
	CHECK_INTEQ(a.n, 2);
	/* sorted as ever; each mark follows its object */
	CHECK_STREQ(a.objects[0].name, "c1");
	CHECK_INTEQ(a.objects[0].mark, 101);
	CHECK_STREQ(a.objects[1].name, "web");
	CHECK_INTEQ(a.objects[1].mark, 100);
	CHECK(a.objects[0].obj == NULL && a.objects[1].obj == NULL);
	backup_archive_free(&a);

	seen = (struct seen){ .stop_at = 1 };
	CHECK_INTEQ(read_members(m, 3, &lim, &a, err, sizeof err), -1);
	CHECK_STREQ(err, "stopped by each");
	CHECK_INTEQ(a.n, 0);

	struct member twice[] = { { "metadata/version", "1" }, { "resources/configmaps/namespaces/shop/c1.json", CM },
				  { "resources/configmaps/namespaces/shop/c1.json", CM } };
	seen = (struct seen){ 0 };
	CHECK_INTEQ(read_members(twice, 3, &lim, &a, err, sizeof err), -1);
	CHECK(strstr(err, "twice") != NULL);
}

int main(void)
{
	RUN(test_each_keeps_names_not_bodies);
	RUN(test_skipped_members_entries_and_cancel_are_bounded);
	RUN(test_reads_velero_layout);
	RUN(test_rejects_paths_that_escape);
	RUN(test_rejects_oversize_and_too_many);
	RUN(test_rejects_what_is_not_an_object_of_its_path);
	RUN(test_rejects_duplicates_and_missing_version);
	RUN(test_reads_a_file);
	return check_done();
}
