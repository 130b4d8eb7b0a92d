#include "snapshot_manifest.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ID64 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static int entry_ok(const char *json, char *err, size_t errlen)
{
	struct manifest_entry e;
	int rc = manifest_entry_parse(json, strlen(json), &e, err, errlen);

	if (rc == 0)
		manifest_entry_free(&e);
	return rc;
}

static void test_entry_round_trip_keeps_odd_bytes(void)
{
	struct manifest_chunk chunks[2] = { { { 1 }, 100 }, { { 2 }, 50 } };
	struct manifest_hole holes[1] = { { 100, 1000 } };
	struct manifest_entry e = { .type = ENTRY_FILE, .path = "dir/new\nline \xff\xfe", .mode = 04755,
				    .uid = 4000000000u, .gid = 7, .mtime_sec = -5, .mtime_nsec = 999999999,
				    .ctime_sec = 1, .ino = 18446744073709551615ull, .size = 1150,
				    .chunks = chunks, .nchunks = 2, .holes = holes, .nholes = 1 };
	struct manifest_entry back;
	char *json = manifest_entry_json(&e), err[256];

	CHECK(strchr(json, '\n') == NULL);
	CHECK_INTEQ(manifest_entry_parse(json, strlen(json), &back, err, sizeof err), 0);
	CHECK_STREQ(back.path, e.path);
	CHECK_INTEQ(back.mode, 04755);
	CHECK_INTEQ(back.uid, 4000000000u);
	CHECK_INTEQ(back.mtime_sec, -5);
	CHECK_INTEQ(back.mtime_nsec, 999999999);
	CHECK(back.ino == 18446744073709551615ull);
	CHECK_INTEQ(back.nchunks, 2);
	CHECK(memcmp(back.chunks, chunks, sizeof chunks) == 0);
	CHECK_INTEQ(back.nholes, 1);
	CHECK_INTEQ(back.holes[0].offset, 100);
	manifest_entry_free(&back);
	free(json);
}

static void test_entry_rejects_what_could_escape_or_lie(void)
{
	char err[256];

	/* "../etc/passwd" */
	CHECK_INTEQ(entry_ok("{\"type\":\"dir\",\"path\":\"Li4vZXRjL3Bhc3N3ZA==\",\"mode\":493,\"uid\":0,\"gid\":0,\"mtime\":[1,0]}", err, sizeof err), -1);
	CHECK(strstr(err, "relative path") != NULL);
	/* "/etc" */
	CHECK_INTEQ(entry_ok("{\"type\":\"dir\",\"path\":\"L2V0Yw==\",\"mode\":493,\"uid\":0,\"gid\":0,\"mtime\":[1,0]}", err, sizeof err), -1);
	/* "a//b" */
	CHECK_INTEQ(entry_ok("{\"type\":\"dir\",\"path\":\"YS8vYg==\",\"mode\":493,\"uid\":0,\"gid\":0,\"mtime\":[1,0]}", err, sizeof err), -1);
	/* "." is the root, and only a directory may be it */
	CHECK_INTEQ(entry_ok("{\"type\":\"dir\",\"path\":\"Lg==\",\"mode\":493,\"uid\":0,\"gid\":0,\"mtime\":[1,0]}", err, sizeof err), 0);
	CHECK_INTEQ(entry_ok("{\"type\":\"symlink\",\"path\":\"Lg==\",\"mode\":511,\"uid\":0,\"gid\":0,\"mtime\":[1,0],\"target\":\"eA==\"}", err, sizeof err), -1);
	CHECK_STREQ(err, "manifest entry: only a directory may have the path \".\"");
	/* not canonical base64 */
	CHECK_INTEQ(entry_ok("{\"type\":\"dir\",\"path\":\"YR==\",\"mode\":493,\"uid\":0,\"gid\":0,\"mtime\":[1,0]}", err, sizeof err), -1);
	/* mode with file-type bits */
	CHECK_INTEQ(entry_ok("{\"type\":\"dir\",\"path\":\"YQ==\",\"mode\":16877,\"uid\":0,\"gid\":0,\"mtime\":[1,0]}", err, sizeof err), -1);
	CHECK_STREQ(err, "manifest entry: field \"mode\" must be a whole number from 0 to 4095");
	/* unknown and repeated fields */
	CHECK_INTEQ(entry_ok("{\"type\":\"dir\",\"path\":\"YQ==\",\"mode\":1,\"uid\":0,\"gid\":0,\"mtime\":[1,0],\"x\":1}", err, sizeof err), -1);
	CHECK_STREQ(err, "manifest entry: unknown or repeated field \"x\"");
	CHECK_INTEQ(entry_ok("{\"type\":\"dir\",\"path\":\"YQ==\",\"mode\":1,\"mode\":1,\"uid\":0,\"gid\":0,\"mtime\":[1,0]}", err, sizeof err), -1);
	/* chunks and holes must add up to the size */
	CHECK_INTEQ(entry_ok("{\"type\":\"file\",\"path\":\"YQ==\",\"mode\":420,\"uid\":0,\"gid\":0,\"mtime\":[1,0],\"size\":20,\"ino\":\"5\",\"ctime\":[1,0],\"chunks\":[[\"" ID64 "\",10]],\"holes\":[[10,10]]}", err, sizeof err), 0);
	CHECK_INTEQ(entry_ok("{\"type\":\"file\",\"path\":\"YQ==\",\"mode\":420,\"uid\":0,\"gid\":0,\"mtime\":[1,0],\"size\":21,\"ino\":\"5\",\"ctime\":[1,0],\"chunks\":[[\"" ID64 "\",10]],\"holes\":[[10,10]]}", err, sizeof err), -1);
	CHECK_STREQ(err, "manifest entry: chunks and holes do not add up to the size");
	/* holes overlapping, or past the end */
	CHECK_INTEQ(entry_ok("{\"type\":\"file\",\"path\":\"YQ==\",\"mode\":420,\"uid\":0,\"gid\":0,\"mtime\":[1,0],\"size\":20,\"ino\":\"5\",\"ctime\":[1,0],\"chunks\":[],\"holes\":[[0,15],[10,5]]}", err, sizeof err), -1);
	CHECK_INTEQ(entry_ok("{\"type\":\"file\",\"path\":\"YQ==\",\"mode\":420,\"uid\":0,\"gid\":0,\"mtime\":[1,0],\"size\":20,\"ino\":\"5\",\"ctime\":[1,0],\"chunks\":[],\"holes\":[[0,25]]}", err, sizeof err), -1);
	/* a chunk larger than the chunker ever makes, a bad id, a fractional number */
	CHECK_INTEQ(entry_ok("{\"type\":\"file\",\"path\":\"YQ==\",\"mode\":420,\"uid\":0,\"gid\":0,\"mtime\":[1,0],\"size\":4194305,\"ino\":\"5\",\"ctime\":[1,0],\"chunks\":[[\"" ID64 "\",4194305]],\"holes\":[]}", err, sizeof err), -1);
	CHECK_INTEQ(entry_ok("{\"type\":\"file\",\"path\":\"YQ==\",\"mode\":420,\"uid\":0,\"gid\":0,\"mtime\":[1,0],\"size\":1,\"ino\":\"5\",\"ctime\":[1,0],\"chunks\":[[\"XYZ\",1]],\"holes\":[]}", err, sizeof err), -1);
	CHECK_INTEQ(entry_ok("{\"type\":\"dir\",\"path\":\"YQ==\",\"mode\":1.5,\"uid\":0,\"gid\":0,\"mtime\":[1,0]}", err, sizeof err), -1);
	CHECK_INTEQ(entry_ok("{\"type\":\"fifo\",\"path\":\"YQ==\"}", err, sizeof err), -1);
	CHECK_INTEQ(entry_ok("[1,2]", err, sizeof err), -1);
	CHECK_INTEQ(entry_ok("{", err, sizeof err), -1);
	CHECK_STREQ(err, "manifest entry: not valid JSON");
}

/* Lines are written by hand and read by a fast path for exactly that spelling; any other
 * spelling of the same JSON goes through cJSON and must mean the same, and a canonical line
 * with a bad value must be refused with the same words. */
static void test_entry_lines_read_alike_in_any_spelling(void)
{
	struct manifest_chunk chunks[1] = { { { 0xab }, 10 } };
	struct manifest_hole holes[1] = { { 10, 1000000000000 } };
	struct manifest_entry e = { .type = ENTRY_FILE, .path = "a", .mode = 0644, .uid = 1, .gid = 2,
				    .mtime_sec = 1700000000, .mtime_nsec = 5, .ctime_sec = -3, .ctime_nsec = 0,
				    .ino = 42, .size = 1000000000010, .chunks = chunks, .nchunks = 1,
				    .holes = holes, .nholes = 1 };
	struct manifest_entry back;
	const char *odd = "{ \"path\" : \"YQ\\u003d\\u003d\", \"type\":\"file\",\"mode\":420.0,\"uid\":1,\"gid\":2e0,"
			  "\"mtime\":[1.7e9,5],\"size\":1000000000010,\"ino\":\"42\",\"ctime\":[-3,0],"
			  "\"chunks\":[[\"ab000000000000000000000000000000000000000000000000000000000000000\",10]],"
			  "\"holes\":[[10,1e12]]}";
	char *json = manifest_entry_json(&e), err[256];

	/* byte for byte what cJSON printed, so trees written before still deduplicate */
	CHECK_STREQ(json, "{\"type\":\"file\",\"path\":\"YQ==\",\"mode\":420,\"uid\":1,\"gid\":2,"
			  "\"mtime\":[1700000000,5],\"size\":1000000000010,\"ino\":\"42\",\"ctime\":[-3,0],"
			  "\"chunks\":[[\"ab00000000000000000000000000000000000000000000000000000000000000\",10]],"
			  "\"holes\":[[10,1000000000000]]}");
	/* the same entry spelled otherwise (one id digit too many: refused as the id) */
	CHECK_INTEQ(entry_ok(odd, err, sizeof err), -1);
	CHECK(strstr(err, "chunks[0] must be") != NULL);
	{
		char fixed[600];
		const char *bad = strstr(odd, "0\",10]");

		snprintf(fixed, sizeof fixed, "%.*s%s", (int)(bad - odd), odd, bad + 1);
		CHECK_INTEQ(manifest_entry_parse(fixed, strlen(fixed), &back, err, sizeof err), 0);
		CHECK_STREQ(back.path, "a");
		CHECK_INTEQ(back.mode, 0644);
		CHECK_INTEQ(back.gid, 2);
		CHECK_INTEQ(back.mtime_sec, 1700000000);
		CHECK_INTEQ(back.ctime_sec, -3);
		CHECK(back.size == 1000000000010ull);
		CHECK(back.ino == 42);
		CHECK_INTEQ(back.nchunks, 1);
		CHECK(memcmp(back.chunks, chunks, sizeof chunks) == 0);
		CHECK(back.holes[0].len == 1000000000000ull);
		manifest_entry_free(&back);
	}
	/* canonical spelling, values out of range: the general parser's words */
	CHECK_INTEQ(entry_ok("{\"type\":\"dir\",\"path\":\"YQ==\",\"mode\":4096,\"uid\":0,\"gid\":0,\"mtime\":[1,0]}", err, sizeof err), -1);
	CHECK_STREQ(err, "manifest entry: field \"mode\" must be a whole number from 0 to 4095");
	CHECK_INTEQ(entry_ok("{\"type\":\"dir\",\"path\":\"YQ==\",\"mode\":1,\"uid\":4294967296,\"gid\":0,\"mtime\":[1,0]}", err, sizeof err), -1);
	CHECK_INTEQ(entry_ok("{\"type\":\"dir\",\"path\":\"YQ==\",\"mode\":1,\"uid\":0,\"gid\":0,\"mtime\":[1,1000000000]}", err, sizeof err), -1);
	CHECK_STREQ(err, "manifest entry: field \"mtime\" must be [seconds, nanoseconds]");
	CHECK_INTEQ(entry_ok("{\"type\":\"dir\",\"path\":\"YQ==\",\"mode\":1,\"uid\":0,\"gid\":0,\"mtime\":[1000000000000000,0]}", err, sizeof err), -1);
	CHECK_INTEQ(entry_ok("{\"type\":\"file\",\"path\":\"YQ==\",\"mode\":420,\"uid\":0,\"gid\":0,\"mtime\":[1,0],\"size\":1,\"ino\":\"5\",\"ctime\":[1,0],\"chunks\":[[\"" ID64 "\",0]],\"holes\":[]}", err, sizeof err), -1);
	CHECK_INTEQ(entry_ok("{\"type\":\"file\",\"path\":\"YQ==\",\"mode\":420,\"uid\":0,\"gid\":0,\"mtime\":[1,0],\"size\":1,\"ino\":\"5x\",\"ctime\":[1,0],\"chunks\":[[\"" ID64 "\",1]],\"holes\":[]}", err, sizeof err), -1);
	CHECK_STREQ(err, "manifest entry: field \"ino\" must be a decimal number");
	/* upper-case hex is another spelling of an id: refused either way */
	CHECK_INTEQ(entry_ok("{\"type\":\"file\",\"path\":\"YQ==\",\"mode\":420,\"uid\":0,\"gid\":0,\"mtime\":[1,0],\"size\":1,\"ino\":\"5\",\"ctime\":[1,0],\"chunks\":[[\"AB112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\",1]],\"holes\":[]}", err, sizeof err), -1);
	free(json);
}

static void test_header_round_trip_and_checks(void)
{
	struct manifest_chunk tree[1] = { { { 9 }, 77 } };
	struct manifest_tag tags[2] = { { "volume", "ns/pvc" }, { "cluster", "prod" } };
	struct manifest_header h = { .time_sec = 1795611421, .source = "/data", .tags = tags, .ntags = 2,
				     .files = 3, .bytes = 999999999999999ull, .tree = tree, .ntree = 1 };
	struct manifest_header back;
	char *json, err[256];
	const char *bad_version = "{\"version\":2,\"id\":\"20261125T124019Z-0123456789abcdef\"}";

	CHECK_INTEQ(snapshot_id_new(h.id), 0);
	json = manifest_header_json(&h);
	CHECK_INTEQ(manifest_header_parse(json, strlen(json), &back, err, sizeof err), 0);
	CHECK_STREQ(back.id, h.id);
	CHECK_STREQ(back.parent, "");
	CHECK_INTEQ(back.ntags, 2);
	CHECK_STREQ(back.tags[1].value, "prod");
	CHECK(back.bytes == 999999999999999ull);
	CHECK_INTEQ(back.ntree, 1);
	CHECK_INTEQ(back.tree[0].len, 77);
	manifest_header_free(&back);
	free(json);

	h.bytes = 1000000000000000ull;	/* would not survive cJSON's printing exactly */
	json = manifest_header_json(&h);
	CHECK_INTEQ(manifest_header_parse(json, strlen(json), &back, err, sizeof err), -1);
	free(json);
	CHECK_INTEQ(manifest_header_parse(bad_version, strlen(bad_version), &back, err, sizeof err), -1);
	CHECK_STREQ(err, "snapshot manifest: version 2 is not supported (this program reads version 1)");
	CHECK(!snapshot_id_valid("20261125T124019Z-0123456789ABCDEF"));
	CHECK(!snapshot_id_valid("20261125T124019Z-0123456789abcde"));
	CHECK(!snapshot_id_valid("../../../etc/passwd-0123456789abc"));
	CHECK_INTEQ(manifest_tag_valid("a b", "x", err, sizeof err), -1);
	CHECK_INTEQ(manifest_tag_valid("k", "line\nbreak", err, sizeof err), -1);
	CHECK_STREQ(err, "tag k: value holds a control character");
}

static void test_walk_order(void)
{
	CHECK(manifest_path_cmp(".", "-x") < 0);
	CHECK(manifest_path_cmp("a", "a/b") < 0);
	CHECK(manifest_path_cmp("a/b", "a-c") < 0);	/* a directory's contents come before its next sibling */
	CHECK(manifest_path_cmp("a/z", "a.b") < 0);
	CHECK(manifest_path_cmp("b", "a/z") > 0);
	CHECK_INTEQ(manifest_path_cmp("a/b", "a/b"), 0);
}

/* A backup's parent is the greatest id: two backups in one second must sort as they began. */
static void test_ids_made_in_one_second_sort_in_order(void)
{
	char a[SNAPSHOT_ID_LEN + 1], b[SNAPSHOT_ID_LEN + 1];
	const struct timespec ms = { 0, 1000000 };

	for (int i = 0; i < 20; i++) {
		CHECK_INTEQ(snapshot_id_new(a), 0);
		nanosleep(&ms, NULL);
		CHECK_INTEQ(snapshot_id_new(b), 0);
		CHECK(snapshot_id_valid(a) && snapshot_id_valid(b));
		CHECK(strcmp(a, b) < 0);
		CHECK(strcmp(a + 21, b + 21) != 0);	/* the random part differs */
	}
}

int main(void)
{
	RUN(test_entry_round_trip_keeps_odd_bytes);
	RUN(test_entry_rejects_what_could_escape_or_lie);
	RUN(test_entry_lines_read_alike_in_any_spelling);
	RUN(test_header_round_trip_and_checks);
	RUN(test_walk_order);
	RUN(test_ids_made_in_one_second_sort_in_order);
	return check_done();
}
