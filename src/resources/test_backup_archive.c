#include "backup_archive.h"
#include "check.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *object_path(const char *group, const char *resource, const char *version,
			 const char *ns, const char *name)
{
	struct strbuf sb = STRBUF_INIT;
	char err[256];

	if (backup_archive_object_path(group, resource, version, ns, name, &sb, err, sizeof err) < 0) {
		strbuf_release(&sb);
		return NULL;
	}
	return strbuf_take(&sb);
}

#define CHECK_PATH(want, group, resource, version, ns, name) do { \
	char *p_ = object_path(group, resource, version, ns, name); \
	CHECK_STREQ(p_, want); \
	free(p_); \
} while (0)

static void test_core_resource_has_no_group_suffix(void)
{
	CHECK_PATH("resources/configmaps/namespaces/shop/web-config.json", "", "configmaps", NULL, "shop", "web-config");
	CHECK_PATH("resources/configmaps/v1-preferredversion/namespaces/shop/web-config.json",
		   "", "configmaps", "v1", "shop", "web-config");
	CHECK_PATH("resources/secrets/namespaces/shop/s.json", NULL, "secrets", "", "shop", "s");
}

static void test_grouped_resource(void)
{
	CHECK_PATH("resources/deployments.apps/namespaces/shop/web.json", "apps", "deployments", NULL, "shop", "web");
	CHECK_PATH("resources/widgets.fixtures.stowage.dev/v1beta1-preferredversion/namespaces/shop/sprocket.json",
		   "fixtures.stowage.dev", "widgets", "v1beta1", "shop", "sprocket");
}

static void test_cluster_scoped(void)
{
	CHECK_PATH("resources/namespaces/cluster/shop.json", "", "namespaces", NULL, NULL, "shop");
	CHECK_PATH("resources/persistentvolumes/v1-preferredversion/cluster/pv-1.json", "", "persistentvolumes", "v1", "", "pv-1");
	CHECK_PATH("resources/customresourcedefinitions.apiextensions.k8s.io/cluster/widgets.fixtures.stowage.dev.json",
		   "apiextensions.k8s.io", "customresourcedefinitions", NULL, NULL, "widgets.fixtures.stowage.dev");
	/* RBAC names hold colons; Velero writes them as they are */
	CHECK_PATH("resources/clusterroles.rbac.authorization.k8s.io/cluster/system:aggregate-to-admin.json",
		   "rbac.authorization.k8s.io", "clusterroles", NULL, NULL, "system:aggregate-to-admin");
}

static void test_odd_names_cannot_escape(void)
{
	CHECK_PATH("resources/configmaps/namespaces/%2E%2E/..%2F..%2Fetc%2Fpasswd.json",
		   "", "configmaps", NULL, "..", "../../etc/passwd");
	CHECK_PATH("resources/configmaps/namespaces/%2E/%2E.json", "", "configmaps", NULL, ".", ".");
	CHECK_PATH("resources/configmaps/namespaces/ns/%2Fabs.json", "", "configmaps", NULL, "ns", "/abs");
	CHECK_PATH("resources/configmaps/namespaces/ns/a%25b%5Cc%0Ad%20e.json", "", "configmaps", NULL, "ns", "a%b\\c\nd e");
	CHECK_PATH("resources/configmaps/namespaces/ns/caf%C3%A9...json", "", "configmaps", NULL, "ns", "caf\xc3\xa9..");
	/* a resource or group of dots or slashes is escaped too */
	CHECK_PATH("resources/%2E%2E/cluster/x.json", "", "..", NULL, NULL, "x");
	CHECK_PATH("resources/x.a%2Fb/cluster/x.json", "a/b", "x", NULL, NULL, "x");
	CHECK(object_path("", "configmaps", NULL, "ns", "") == NULL);
	CHECK(object_path("", "", NULL, "ns", "x") == NULL);
}

static void test_every_escaped_path_is_relative_and_clean(void)
{
	/* every byte value in a name, alone and doubled, yields a path with no ".." segment,
	 * no empty segment and no leading '/' */
	for (int c = 1; c < 256; c++) {
		char name[3] = { (char)c, (char)c, '\0' };
		for (int len = 1; len <= 2; len++) {
			name[len] = '\0';
			char *p = object_path("", "configmaps", NULL, name, name);
			CHECK(p != NULL);
			if (!p)
				continue;
			CHECK(p[0] != '/');
			CHECK(strstr(p, "//") == NULL);
			CHECK(strstr(p, "/../") == NULL && strstr(p, "/./") == NULL);
			CHECK(strncmp(p, "resources/configmaps/namespaces/", 32) == 0);
			CHECK(strchr(p + 32, '/') == strrchr(p, '/'));	/* exactly ns/name.json */
			free(p);
		}
	}
}

struct entry { char *path; char *data; };

/* Reads every entry of a tar.gz; returns the count, -1 on a read error. */
static int read_archive(const char *path, struct entry *out, int max)
{
	struct archive *ar = archive_read_new();
	struct archive_entry *e;
	int n = 0;

	archive_read_support_filter_gzip(ar);
	archive_read_support_format_tar(ar);
	if (archive_read_open_filename(ar, path, 10240) != ARCHIVE_OK) {
		archive_read_free(ar);
		return -1;
	}
	while (n < max && archive_read_next_header(ar, &e) == ARCHIVE_OK) {
		size_t size = (size_t)archive_entry_size(e);
		out[n].path = strdup(archive_entry_pathname(e));
		out[n].data = calloc(1, size + 1);
		if (archive_read_data(ar, out[n].data, size) != (la_ssize_t)size)
			n = -1000;
		n++;
	}
	archive_read_free(ar);
	return n;
}

static void test_round_trip_through_libarchive(void)
{
	char dir[] = "/tmp/test_backup_archive.XXXXXX", path[128], err[256];
	const char *cm = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\",\"namespace\":\"ns\"}}";
	const char *ns = "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"ns\"}}";
	char long_name[254];
	struct backup_archive *a;
	struct entry e[8] = { { 0 } };
	int64_t bytes = 0;
	int n;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/b.tar.gz", dir);
	memset(long_name, 'x', sizeof long_name - 1);
	long_name[sizeof long_name - 1] = '\0';
	a = backup_archive_create(path, err, sizeof err);
	CHECK(a != NULL);
	if (!a)
		return;
	CHECK(backup_archive_create(path, err, sizeof err) == NULL);	/* never overwrites */
	CHECK(backup_archive_add_object(a, "", "v1", "configmaps", "ns", "c", cm, strlen(cm), err, sizeof err) == 0);
	CHECK(backup_archive_add_object(a, "", "v1", "namespaces", NULL, "ns", ns, strlen(ns), err, sizeof err) == 0);
	CHECK(backup_archive_add_object(a, "apps", "v1", "deployments", "ns", long_name, "{}", 2, err, sizeof err) == 0);
	CHECK(backup_archive_add_object(a, "", "v1", "configmaps", "ns", "", "{}", 2, err, sizeof err) < 0);
	CHECK(backup_archive_finish(a, &bytes, err, sizeof err) == 0);
	CHECK(bytes > 0);

	n = read_archive(path, e, 8);
	CHECK_INTEQ(n, 7);
	if (n == 7) {
		CHECK_STREQ(e[0].path, "metadata/version");
		CHECK_STREQ(e[0].data, "1.1.0");
		CHECK_STREQ(e[1].path, "resources/configmaps/namespaces/ns/c.json");
		CHECK_STREQ(e[1].data, cm);
		CHECK_STREQ(e[2].path, "resources/configmaps/v1-preferredversion/namespaces/ns/c.json");
		CHECK_STREQ(e[2].data, cm);
		CHECK_STREQ(e[3].path, "resources/namespaces/cluster/ns.json");
		CHECK_STREQ(e[4].path, "resources/namespaces/v1-preferredversion/cluster/ns.json");
		CHECK_STREQ(e[4].data, ns);
		CHECK(strlen(e[6].path) > 253 && strstr(e[6].path, long_name) != NULL);	/* past ustar's limits */
		CHECK_STREQ(e[6].data, "{}");
	}
	for (int i = 0; i < 8; i++) {
		free(e[i].path);
		free(e[i].data);
	}
	unlink(path);
	rmdir(dir);
}

static void test_gzip_round_trip(void)
{
	struct strbuf gz = STRBUF_INIT;
	const char *text = "{\"v1/ConfigMap\":[\"ns/a\",\"ns/b\"]}";
	char err[256], back[128] = "";
	struct archive *ar;
	struct archive_entry *e;

	CHECK(backup_gzip(text, strlen(text), &gz, err, sizeof err) == 0);
	CHECK(gz.len > 18 && (unsigned char)gz.buf[0] == 0x1f && (unsigned char)gz.buf[1] == 0x8b);
	ar = archive_read_new();
	archive_read_support_filter_gzip(ar);
	archive_read_support_format_raw(ar);
	CHECK(archive_read_open_memory(ar, gz.buf, gz.len) == ARCHIVE_OK);
	CHECK(archive_read_next_header(ar, &e) == ARCHIVE_OK);
	CHECK(archive_read_data(ar, back, sizeof back - 1) == (la_ssize_t)strlen(text));
	CHECK_STREQ(back, text);
	archive_read_free(ar);
	strbuf_release(&gz);
}

int main(void)
{
	RUN(test_core_resource_has_no_group_suffix);
	RUN(test_grouped_resource);
	RUN(test_cluster_scoped);
	RUN(test_odd_names_cannot_escape);
	RUN(test_every_escaped_path_is_relative_and_clean);
	RUN(test_round_trip_through_libarchive);
	RUN(test_gzip_round_trip);
	return check_done();
}
