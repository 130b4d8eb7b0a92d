#include "snapshot_manifest.h"
#include "hex.h"
#include "strbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/rand.h>

/* JSON numbers are doubles, and cJSON prints them with 15 significant digits: integers are
 * exact below 10^15 (888 TiB), which bounds sizes and offsets. Inode numbers may be larger
 * and travel as decimal strings. */
#define JSON_INT_MAX 999999999999999.0
#define ENTRY_CHUNKS_MAX (1u << 24)	/* 16M chunks: files up to 64 TiB */
#define ENTRY_HOLES_MAX (1u << 24)

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Strict: padded, canonical, no whitespace. Returns a NUL-terminated buffer or NULL. */
static char *b64_decode(const char *s, size_t n, size_t *outlen)
{
	size_t o = 0;
	char *out;

	if (n == 0 || n % 4)
		return NULL;
	out = xmalloc(n / 4 * 3 + 1);
	for (size_t i = 0; i < n; i += 4) {
		int a = b64_value(s[i]), b = b64_value(s[i + 1]), c = b64_value(s[i + 2]), d = b64_value(s[i + 3]);
		int last = i + 4 == n;

		if (a < 0 || b < 0)
			goto bad;
		out[o++] = (char)(a << 2 | b >> 4);
		if (last && s[i + 2] == '=' && s[i + 3] == '=') {
			if (b & 15)
				goto bad;
			break;
		}
		if (c < 0)
			goto bad;
		out[o++] = (char)((b & 15) << 4 | c >> 2);
		if (last && s[i + 3] == '=') {
			if (c & 3)
				goto bad;
			break;
		}
		if (d < 0)
			goto bad;
		out[o++] = (char)((c & 3) << 6 | d);
	}
	out[o] = '\0';
	*outlen = o;
	return out;
bad:
	free(out);
	return NULL;
}

int snapshot_id_valid(const char *id)
{
	if (strlen(id) != SNAPSHOT_ID_LEN)
		return 0;
	for (int i = 0; i < SNAPSHOT_ID_LEN; i++) {
		char c = id[i];

		if (i == 8) {
			if (c != 'T')
				return 0;
		} else if (i == 15) {
			if (c != 'Z')
				return 0;
		} else if (i == 16) {
			if (c != '-')
				return 0;
		} else if (i < 16) {
			if (c < '0' || c > '9')
				return 0;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			return 0;
		}
	}
	return 1;
}

int snapshot_id_new(char id[SNAPSHOT_ID_LEN + 1])
{
	uint8_t r[8];
	struct timespec now;
	struct tm tm;
	size_t n;

	/* the first two bytes are the fraction of the second, in 65,536ths: two backups in one
	 * second sort in the order they began (a backup's parent is the greatest id) */
	if (clock_gettime(CLOCK_REALTIME, &now) < 0 || RAND_bytes(r + 2, sizeof r - 2) != 1 || !gmtime_r(&now.tv_sec, &tm))
		return -1;
	r[0] = (uint8_t)(((uint64_t)now.tv_nsec << 16) / 1000000000 >> 8);
	r[1] = (uint8_t)(((uint64_t)now.tv_nsec << 16) / 1000000000);
	n = strftime(id, SNAPSHOT_ID_LEN + 1, "%Y%m%dT%H%M%SZ-", &tm);
	for (int i = 0; i < 8; i++)
		snprintf(id + n + 2 * i, 3, "%02x", r[i]);
	return snapshot_id_valid(id) ? 0 : -1;
}

int manifest_tag_valid(const char *key, const char *value, char *err, size_t errlen)
{
	size_t n = strlen(key);

	if (n == 0 || n > 63 || strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-") != n) {
		snprintf(err, errlen, "tag key \"%.63s\": must be 1 to 63 of [A-Za-z0-9._/-]", key);
		return -1;
	}
	if (strlen(value) > 256) {
		snprintf(err, errlen, "tag %s: value longer than 256 bytes", key);
		return -1;
	}
	for (const char *p = value; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			snprintf(err, errlen, "tag %s: value holds a control character", key);
			return -1;
		}
	return 0;
}

int manifest_path_cmp(const char *a, const char *b)
{
	int a_root = strcmp(a, ".") == 0, b_root = strcmp(b, ".") == 0;

	if (a_root || b_root)
		return b_root - a_root;
	for (;; a++, b++) {
		unsigned char x = (unsigned char)*a, y = (unsigned char)*b;

		if (x != y || !x) {
			x = x == '/' ? 1 : x;
			y = y == '/' ? 1 : y;
			return x < y ? -1 : x > y;
		}
	}
}

static int path_valid(const char *p, size_t n)
{
	size_t seg = 0;

	if (n == 0 || n > MANIFEST_PATH_MAX || memchr(p, '\0', n))
		return 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != '/') {
			seg++;
			continue;
		}
		if (seg == 0 || (seg == 1 && p[i - 1] == '.') || (seg == 2 && p[i - 1] == '.' && p[i - 2] == '.'))
			return 0;
		seg = 0;
	}
	return 1;
}

/* ---- writing ---- */

static cJSON *chunk_list(const struct manifest_chunk *c, size_t n)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; i < n; i++) {
		char hex[CHUNK_ID_HEX];
		cJSON *pair = cJSON_CreateArray();

		chunk_id_hex(c[i].id, hex);
		cJSON_AddItemToArray(pair, cJSON_CreateString(hex));
		cJSON_AddItemToArray(pair, cJSON_CreateNumber(c[i].len));
		cJSON_AddItemToArray(a, pair);
	}
	return a;
}

static char *json_take(cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o), *copy;

	cJSON_Delete(o);
	if (!s)
		abort();	/* cJSON fails only when out of memory */
	copy = xstrdup(s);
	cJSON_free(s);
	return copy;
}

static void add_uint(struct strbuf *sb, uint64_t u)
{
	char digits[24], *p = digits + sizeof digits;

	do
		*--p = (char)('0' + u % 10);
	while (u /= 10);
	strbuf_add(sb, p, (size_t)(digits + sizeof digits - p));
}

/* The numbers of a manifest are integers below 10^15 in magnitude: plain decimal, as cJSON
 * prints them. */
static void add_int(struct strbuf *sb, int64_t v)
{
	if (v < 0)
		strbuf_addch(sb, '-');
	add_uint(sb, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
}

static void add_b64_field(struct strbuf *sb, const char *key, const char *value)
{
	const uint8_t *p = (const uint8_t *)value;
	size_t n = strlen(value);

	strbuf_addstr(sb, key);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
			     (i + 2 < n ? p[i + 2] : 0);
		char q[4] = { b64_alphabet[v >> 18 & 63], b64_alphabet[v >> 12 & 63],
			      i + 1 < n ? b64_alphabet[v >> 6 & 63] : '=', i + 2 < n ? b64_alphabet[v & 63] : '=' };
		strbuf_add(sb, q, 4);
	}
	strbuf_addch(sb, '"');
}

static void add_time_field(struct strbuf *sb, const char *key, int64_t sec, uint32_t nsec)
{
	strbuf_addstr(sb, key);
	add_int(sb, sec);
	strbuf_addch(sb, ',');
	add_int(sb, nsec);
	strbuf_addch(sb, ']');
}

/* Written by hand, byte for byte what cJSON printed (so unchanged trees still deduplicate
 * against snapshots written before): this runs once per file of every backup. */
void manifest_entry_json_add(struct strbuf *sb, const struct manifest_entry *e)
{
	static const char *const types[] = { "{\"type\":\"file\"", "{\"type\":\"dir\"", "{\"type\":\"symlink\"" };

	strbuf_addstr(sb, types[e->type]);
	add_b64_field(sb, ",\"path\":\"", e->path);
	strbuf_addstr(sb, ",\"mode\":");
	add_int(sb, e->mode);
	strbuf_addstr(sb, ",\"uid\":");
	add_int(sb, e->uid);
	strbuf_addstr(sb, ",\"gid\":");
	add_int(sb, e->gid);
	add_time_field(sb, ",\"mtime\":[", e->mtime_sec, e->mtime_nsec);
	if (e->type == ENTRY_SYMLINK)
		add_b64_field(sb, ",\"target\":\"", e->target);
	if (e->type == ENTRY_FILE) {
		strbuf_addstr(sb, ",\"size\":");
		add_int(sb, (int64_t)e->size);
		strbuf_addstr(sb, ",\"ino\":\"");
		add_uint(sb, e->ino);	/* a string: 64 bits do not fit a JSON number */
		strbuf_addch(sb, '"');
		add_time_field(sb, ",\"ctime\":[", e->ctime_sec, e->ctime_nsec);
		strbuf_addstr(sb, ",\"chunks\":[");
		for (size_t i = 0; i < e->nchunks; i++) {
			char hex[CHUNK_ID_HEX];

			chunk_id_hex(e->chunks[i].id, hex);
			strbuf_addstr(sb, i ? ",[\"" : "[\"");
			strbuf_add(sb, hex, CHUNK_ID_HEX - 1);
			strbuf_addstr(sb, "\",");
			add_int(sb, e->chunks[i].len);
			strbuf_addch(sb, ']');
		}
		strbuf_addstr(sb, "],\"holes\":[");
		for (size_t i = 0; i < e->nholes; i++) {
			strbuf_addstr(sb, i ? ",[" : "[");
			add_int(sb, (int64_t)e->holes[i].offset);
			strbuf_addch(sb, ',');
			add_int(sb, (int64_t)e->holes[i].len);
			strbuf_addch(sb, ']');
		}
		strbuf_addch(sb, ']');
	}
	strbuf_addch(sb, '}');
}

char *manifest_entry_json(const struct manifest_entry *e)
{
	struct strbuf sb = STRBUF_INIT;

	manifest_entry_json_add(&sb, e);
	return strbuf_take(&sb);
}

char *manifest_header_json(const struct manifest_header *h)
{
	cJSON *o = cJSON_CreateObject(), *tags = cJSON_CreateObject(), *stats = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "version", MANIFEST_VERSION);
	cJSON_AddStringToObject(o, "id", h->id);
	cJSON_AddNumberToObject(o, "time", (double)h->time_sec);
	cJSON_AddStringToObject(o, "source", h->source ? h->source : "");
	if (h->parent[0])
		cJSON_AddStringToObject(o, "parent", h->parent);
	for (size_t i = 0; i < h->ntags; i++)
		cJSON_AddStringToObject(tags, h->tags[i].key, h->tags[i].value);
	cJSON_AddItemToObject(o, "tags", tags);
	cJSON_AddNumberToObject(stats, "files", (double)h->files);
	cJSON_AddNumberToObject(stats, "dirs", (double)h->dirs);
	cJSON_AddNumberToObject(stats, "symlinks", (double)h->symlinks);
	cJSON_AddNumberToObject(stats, "bytes", (double)h->bytes);
	cJSON_AddItemToObject(o, "stats", stats);
	cJSON_AddItemToObject(o, "tree", chunk_list(h->tree, h->ntree));
	return json_take(o);
}

/* ---- parsing: every field checked, unknown fields refused ---- */

static int only_known_keys(const cJSON *o, const char *const *known, const char *what,
			   char *err, size_t errlen)
{
	for (const cJSON *c = o->child; c; c = c->next) {
		int ok = 0;
		for (const char *const *k = known; *k && !ok; k++)
			ok = c->string && strcmp(c->string, *k) == 0;
		for (const cJSON *d = o->child; ok && d != c; d = d->next)
			ok = strcmp(d->string, c->string) != 0;
		if (!ok) {
			snprintf(err, errlen, "%s: unknown or repeated field \"%.40s\"", what, c->string ? c->string : "");
			return -1;
		}
	}
	return 0;
}

static int get_uint(const cJSON *o, const char *name, double max, uint64_t *out, const char *what,
		    char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > max ||
	    v->valuedouble != floor(v->valuedouble)) {
		snprintf(err, errlen, "%s: field \"%s\" must be a whole number from 0 to %.0f", what, name, max);
		return -1;
	}
	*out = (uint64_t)v->valuedouble;
	return 0;
}

static const char *get_string(const cJSON *o, const char *name, const char *what, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsString(v)) {
		snprintf(err, errlen, "%s: field \"%s\" must be a string", what, name);
		return NULL;
	}
	return v->valuestring;
}

static int get_time(const cJSON *o, const char *name, int64_t *sec, uint32_t *nsec, const char *what,
		    char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	const cJSON *s = cJSON_GetArrayItem(v, 0), *ns = cJSON_GetArrayItem(v, 1);

	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !cJSON_IsNumber(s) || !cJSON_IsNumber(ns) ||
	    !(fabs(s->valuedouble) < 1e15) || s->valuedouble != floor(s->valuedouble) ||
	    !(ns->valuedouble >= 0 && ns->valuedouble < 1e9) || ns->valuedouble != floor(ns->valuedouble)) {
		snprintf(err, errlen, "%s: field \"%s\" must be [seconds, nanoseconds]", what, name);
		return -1;
	}
	*sec = (int64_t)s->valuedouble;
	*nsec = (uint32_t)ns->valuedouble;
	return 0;
}

static int get_chunks(const cJSON *o, const char *name, size_t max, struct manifest_chunk **out,
		      size_t *n, const char *what, char *err, size_t errlen)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, name), *pair;
	size_t count = 0;

	*out = NULL;
	*n = 0;
	if (!cJSON_IsArray(a)) {
		snprintf(err, errlen, "%s: field \"%s\" must be a list", what, name);
		return -1;
	}
	cJSON_ArrayForEach(pair, a)
		count++;
	if (count > max) {
		snprintf(err, errlen, "%s: field \"%s\" lists more than %zu chunks", what, name, max);
		return -1;
	}
	*out = xcalloc(count + 1, sizeof **out);
	cJSON_ArrayForEach(pair, a) {
		const cJSON *id = cJSON_GetArrayItem(pair, 0), *len = cJSON_GetArrayItem(pair, 1);

		if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 || !cJSON_IsString(id) ||
		    chunk_id_parse(id->valuestring, (*out)[*n].id) < 0 || !cJSON_IsNumber(len) ||
		    !(len->valuedouble >= 1 && len->valuedouble <= CHUNK_MAX) ||
		    len->valuedouble != floor(len->valuedouble)) {
			snprintf(err, errlen, "%s: %s[%zu] must be [64 hex digits, length 1 to %u]", what, name, *n, CHUNK_MAX);
			free(*out);
			*out = NULL;
			*n = 0;
			return -1;
		}
		(*out)[(*n)++].len = (uint32_t)len->valuedouble;
	}
	return 0;
}

static int get_holes(const cJSON *o, struct manifest_entry *e, uint64_t *hole_bytes, const char *what,
		     char *err, size_t errlen)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "holes"), *pair;
	size_t count = cJSON_GetArraySize(a);
	uint64_t end = 0;

	*hole_bytes = 0;
	if (!cJSON_IsArray(a) || count > ENTRY_HOLES_MAX) {
		snprintf(err, errlen, "%s: field \"holes\" must be a list of [offset, length]", what);
		return -1;
	}
	e->holes = xcalloc(count + 1, sizeof *e->holes);
	cJSON_ArrayForEach(pair, a) {
		const cJSON *off = cJSON_GetArrayItem(pair, 0), *len = cJSON_GetArrayItem(pair, 1);
		struct manifest_hole *h = &e->holes[e->nholes];

		if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 || !cJSON_IsNumber(off) ||
		    !cJSON_IsNumber(len) || !(off->valuedouble >= 0 && off->valuedouble <= JSON_INT_MAX) ||
		    !(len->valuedouble >= 1 && len->valuedouble <= JSON_INT_MAX) ||
		    off->valuedouble != floor(off->valuedouble) || len->valuedouble != floor(len->valuedouble)) {
			snprintf(err, errlen, "%s: holes[%zu] must be [offset, length >= 1]", what, e->nholes);
			return -1;
		}
		h->offset = (uint64_t)off->valuedouble;
		h->len = (uint64_t)len->valuedouble;
		if (h->offset < end || h->offset + h->len > e->size) {
			snprintf(err, errlen, "%s: holes[%zu] overlaps another or passes the end of the file", what, e->nholes);
			return -1;
		}
		end = h->offset + h->len;
		*hole_bytes += h->len;
		e->nholes++;
	}
	return 0;
}

/* NULL unless s (len bytes) is base64 of a path an entry may have. */
static char *decode_path(const char *s, size_t len)
{
	size_t n;
	char *p = b64_decode(s, len, &n);

	if (p && n == 1 && p[0] == '.')
		return p;	/* the volume's root directory; allowed for dirs only */
	if (!p || !path_valid(p, n) || p[0] == '/') {
		free(p);
		return NULL;
	}
	return p;
}

/* Symlink targets may be absolute or hold "..": they are stored, never followed on restore. */
static char *decode_target(const char *s, size_t len)
{
	size_t n;
	char *p = b64_decode(s, len, &n);

	if (!p || n == 0 || n > MANIFEST_PATH_MAX || memchr(p, '\0', n)) {
		free(p);
		return NULL;
	}
	return p;
}

static char *get_b64_path(const cJSON *o, const char *name, const char *what, char *err, size_t errlen)
{
	const char *s = get_string(o, name, what, err, errlen);
	char *p = s ? decode_path(s, strlen(s)) : NULL;

	if (s && !p)
		snprintf(err, errlen, "%s: field \"%s\" must be base64 of a relative path without empty, \".\" or \"..\" parts",
			 what, name);
	return p;
}

static char *get_b64_target(const cJSON *o, const char *what, char *err, size_t errlen)
{
	const char *s = get_string(o, "target", what, err, errlen);
	char *p = s ? decode_target(s, strlen(s)) : NULL;

	if (s && !p)
		snprintf(err, errlen, "%s: field \"target\" must be base64 of 1 to %d bytes without NUL", what, MANIFEST_PATH_MAX);
	return p;
}

static int entry_parse_obj(const cJSON *o, struct manifest_entry *e, char *err, size_t errlen)
{
	static const char *const file_keys[] = { "type", "path", "mode", "uid", "gid", "mtime", "size",
						 "ino", "ctime", "chunks", "holes", NULL };
	static const char *const dir_keys[] = { "type", "path", "mode", "uid", "gid", "mtime", NULL };
	static const char *const link_keys[] = { "type", "path", "mode", "uid", "gid", "mtime", "target", NULL };
	const char *type, *what = "manifest entry", *ino;
	uint64_t v, chunk_bytes = 0, hole_bytes;
	char *end;

	if (!cJSON_IsObject(o)) {
		snprintf(err, errlen, "%s: not a JSON object", what);
		return -1;
	}
	if (!(type = get_string(o, "type", what, err, errlen)))
		return -1;
	if (strcmp(type, "file") == 0)
		e->type = ENTRY_FILE;
	else if (strcmp(type, "dir") == 0)
		e->type = ENTRY_DIR;
	else if (strcmp(type, "symlink") == 0)
		e->type = ENTRY_SYMLINK;
	else {
		snprintf(err, errlen, "%s: type \"%.20s\" is not file, dir or symlink", what, type);
		return -1;
	}
	if (only_known_keys(o, e->type == ENTRY_FILE ? file_keys : e->type == ENTRY_DIR ? dir_keys : link_keys,
			    what, err, errlen) < 0)
		return -1;
	if (!(e->path = get_b64_path(o, "path", what, err, errlen)))
		return -1;
	if (strcmp(e->path, ".") == 0 && e->type != ENTRY_DIR) {
		snprintf(err, errlen, "%s: only a directory may have the path \".\"", what);
		return -1;
	}
	if (get_uint(o, "mode", 07777, &v, what, err, errlen) < 0)
		return -1;
	e->mode = (uint32_t)v;
	if (get_uint(o, "uid", UINT32_MAX, &v, what, err, errlen) < 0)
		return -1;
	e->uid = (uint32_t)v;
	if (get_uint(o, "gid", UINT32_MAX, &v, what, err, errlen) < 0)
		return -1;
	e->gid = (uint32_t)v;
	if (get_time(o, "mtime", &e->mtime_sec, &e->mtime_nsec, what, err, errlen) < 0)
		return -1;
	if (e->type == ENTRY_SYMLINK)
		return (e->target = get_b64_target(o, what, err, errlen)) ? 0 : -1;
	if (e->type == ENTRY_DIR)
		return 0;
	if (get_uint(o, "size", JSON_INT_MAX, &e->size, what, err, errlen) < 0 ||
	    get_time(o, "ctime", &e->ctime_sec, &e->ctime_nsec, what, err, errlen) < 0 ||
	    !(ino = get_string(o, "ino", what, err, errlen)) ||
	    get_chunks(o, "chunks", ENTRY_CHUNKS_MAX, &e->chunks, &e->nchunks, what, err, errlen) < 0 ||
	    get_holes(o, e, &hole_bytes, what, err, errlen) < 0)
		return -1;
	if (!*ino || strspn(ino, "0123456789") != strlen(ino) || strlen(ino) > 20 ||
	    (e->ino = strtoull(ino, &end, 10), *end)) {
		snprintf(err, errlen, "%s: field \"ino\" must be a decimal number", what);
		return -1;
	}
	for (size_t i = 0; i < e->nchunks; i++)
		chunk_bytes += e->chunks[i].len;
	if (chunk_bytes + hole_bytes != e->size) {
		snprintf(err, errlen, "%s: chunks and holes do not add up to the size", what);
		return -1;
	}
	return 0;
}

/* ---- the fast path: a line exactly as manifest_entry_json_add writes it ----
 * Every tree line of every backup and restore is parsed: cJSON's doubles and allocations cost
 * more than the rest of an unchanged file's work. This reads only the canonical spelling
 * (fields in the writer's order, plain integers of at most 15 digits, strings without
 * escapes) and applies the checks of entry_parse_obj; anything else, valid or not, is left to
 * the general parser below, so the two accept exactly the same lines and errors read alike. */

struct cursor {
	const char *p, *end;
};

static int take(struct cursor *c, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
		return 0;
	c->p += n;
	return 1;
}

/* A plain integer in [min, max]: an optional '-', 1 to 15 digits, no leading zero. */
static int take_int(struct cursor *c, int64_t min, int64_t max, int64_t *out)
{
	int neg = c->p < c->end && *c->p == '-';
	const char *d = c->p + neg;
	int64_t v = 0;
	size_t n = 0;

	while (d + n < c->end && d[n] >= '0' && d[n] <= '9' && n <= 15)
		v = v * 10 + (d[n++] - '0');
	if (n == 0 || n > 15 || (n > 1 && d[0] == '0'))
		return 0;
	v = neg ? -v : v;
	if (v < min || v > max)
		return 0;
	c->p = d + n;
	*out = v;
	return 1;
}

/* The bytes of a string without escapes or control characters, its opening quote taken. */
static int take_str(struct cursor *c, const char **s, size_t *n)
{
	const char *q = c->p;

	while (q < c->end && *q != '"') {
		if (*q == '\\' || (unsigned char)*q < 0x20)
			return 0;
		q++;
	}
	if (q == c->end)
		return 0;
	*s = c->p;
	*n = (size_t)(q - c->p);
	c->p = q + 1;
	return 1;
}

static int take_time(struct cursor *c, int64_t *sec, uint32_t *nsec)
{
	int64_t s, ns;

	if (!take_int(c, -(int64_t)JSON_INT_MAX, (int64_t)JSON_INT_MAX, &s) || !take(c, ",") ||
	    !take_int(c, 0, 999999999, &ns) || !take(c, "]"))
		return 0;
	*sec = s;
	*nsec = (uint32_t)ns;
	return 1;
}

static int take_chunks(struct cursor *c, struct manifest_entry *e, uint64_t *bytes)
{
	size_t cap = 1;

	e->chunks = xmalloc(cap * sizeof *e->chunks);
	if (take(c, "]"))
		return 1;
	do {
		const char *hex;
		size_t n;
		int64_t len;

		if (e->nchunks == ENTRY_CHUNKS_MAX)
			return 0;
		if (e->nchunks == cap) {
			cap *= 2;
			e->chunks = xrealloc(e->chunks, cap * sizeof *e->chunks);
		}
		if (!take(c, "[\"") || !take_str(c, &hex, &n) || n != CHUNK_ID_HEX - 1 ||
		    strspn(hex, "0123456789abcdef") < n || hex_decode(hex, CHUNK_ID_LEN, e->chunks[e->nchunks].id) < 0 ||
		    !take(c, ",") || !take_int(c, 1, CHUNK_MAX, &len) || !take(c, "]"))
			return 0;
		e->chunks[e->nchunks++].len = (uint32_t)len;
		*bytes += (uint64_t)len;
	} while (take(c, ","));
	return take(c, "]");
}

static int take_holes(struct cursor *c, struct manifest_entry *e, uint64_t *bytes)
{
	size_t cap = 1;
	uint64_t end = 0;

	e->holes = xmalloc(cap * sizeof *e->holes);
	if (take(c, "]"))
		return 1;
	do {
		int64_t off, len;

		if (e->nholes == ENTRY_HOLES_MAX)
			return 0;
		if (e->nholes == cap) {
			cap *= 2;
			e->holes = xrealloc(e->holes, cap * sizeof *e->holes);
		}
		if (!take(c, "[") || !take_int(c, 0, (int64_t)JSON_INT_MAX, &off) || !take(c, ",") ||
		    !take_int(c, 1, (int64_t)JSON_INT_MAX, &len) || !take(c, "]") || (uint64_t)off < end ||
		    (uint64_t)(off + len) > e->size)
			return 0;
		e->holes[e->nholes].offset = (uint64_t)off;
		e->holes[e->nholes++].len = (uint64_t)len;
		end = (uint64_t)(off + len);
		*bytes += (uint64_t)len;
	} while (take(c, ","));
	return take(c, "]");
}

/* 1 with e filled in; 0 (e freed) when the line is not canonical or not valid. */
static int entry_parse_fast(const char *line, size_t len, struct manifest_entry *e)
{
	struct cursor c = { line, line + len };
	const char *s;
	size_t n;
	int64_t v;
	uint64_t chunk_bytes = 0, hole_bytes = 0;

	if (take(&c, "{\"type\":\"file\""))
		e->type = ENTRY_FILE;
	else if (take(&c, "{\"type\":\"dir\""))
		e->type = ENTRY_DIR;
	else if (take(&c, "{\"type\":\"symlink\""))
		e->type = ENTRY_SYMLINK;
	else
		return 0;
	if (!take(&c, ",\"path\":\"") || !take_str(&c, &s, &n) || !(e->path = decode_path(s, n)) ||
	    (strcmp(e->path, ".") == 0 && e->type != ENTRY_DIR))
		goto no;
	if (!take(&c, ",\"mode\":") || !take_int(&c, 0, 07777, &v))
		goto no;
	e->mode = (uint32_t)v;
	if (!take(&c, ",\"uid\":") || !take_int(&c, 0, UINT32_MAX, &v))
		goto no;
	e->uid = (uint32_t)v;
	if (!take(&c, ",\"gid\":") || !take_int(&c, 0, UINT32_MAX, &v))
		goto no;
	e->gid = (uint32_t)v;
	if (!take(&c, ",\"mtime\":[") || !take_time(&c, &e->mtime_sec, &e->mtime_nsec))
		goto no;
	if (e->type == ENTRY_SYMLINK &&
	    (!take(&c, ",\"target\":\"") || !take_str(&c, &s, &n) || !(e->target = decode_target(s, n))))
		goto no;
	if (e->type == ENTRY_FILE) {
		char ino[21], *end;

		if (!take(&c, ",\"size\":") || !take_int(&c, 0, (int64_t)JSON_INT_MAX, &v))
			goto no;
		e->size = (uint64_t)v;
		if (!take(&c, ",\"ino\":\"") || !take_str(&c, &s, &n) || n == 0 || n > 20 ||
		    strspn(s, "0123456789") < n)
			goto no;
		memcpy(ino, s, n);
		ino[n] = '\0';
		e->ino = strtoull(ino, &end, 10);
		if (!take(&c, ",\"ctime\":[") || !take_time(&c, &e->ctime_sec, &e->ctime_nsec) ||
		    !take(&c, ",\"chunks\":[") || !take_chunks(&c, e, &chunk_bytes) ||
		    !take(&c, ",\"holes\":[") || !take_holes(&c, e, &hole_bytes) || chunk_bytes + hole_bytes != e->size)
			goto no;
	}
	if (take(&c, "}") && c.p == c.end)
		return 1;
no:
	manifest_entry_free(e);
	return 0;
}

int manifest_entry_parse(const char *line, size_t len, struct manifest_entry *e, char *err, size_t errlen)
{
	cJSON *o;
	int rc;

	memset(e, 0, sizeof *e);
	if (entry_parse_fast(line, len, e))
		return 0;
	o = cJSON_ParseWithLength(line, len);
	if (!o) {
		snprintf(err, errlen, "manifest entry: not valid JSON");
		return -1;
	}
	rc = entry_parse_obj(o, e, err, errlen);
	cJSON_Delete(o);
	if (rc < 0)
		manifest_entry_free(e);
	return rc;
}

void manifest_entry_free(struct manifest_entry *e)
{
	free(e->path);
	free(e->target);
	free(e->chunks);
	free(e->holes);
	memset(e, 0, sizeof *e);
}

static int header_parse_obj(const cJSON *o, struct manifest_header *h, char *err, size_t errlen)
{
	static const char *const keys[] = { "version", "id", "time", "source", "parent", "tags", "stats", "tree", NULL };
	static const char *const stat_keys[] = { "files", "dirs", "symlinks", "bytes", NULL };
	const char *what = "snapshot manifest", *s;
	const cJSON *tags, *stats, *parent, *t;
	uint64_t v;

	if (!cJSON_IsObject(o)) {
		snprintf(err, errlen, "%s: not a JSON object", what);
		return -1;
	}
	if (only_known_keys(o, keys, what, err, errlen) < 0)
		return -1;
	if (get_uint(o, "version", 1000, &v, what, err, errlen) < 0)
		return -1;
	if (v != MANIFEST_VERSION) {
		snprintf(err, errlen, "%s: version %llu is not supported (this program reads version %d)",
			 what, (unsigned long long)v, MANIFEST_VERSION);
		return -1;
	}
	if (!(s = get_string(o, "id", what, err, errlen)))
		return -1;
	if (!snapshot_id_valid(s)) {
		snprintf(err, errlen, "%s: field \"id\" is not a snapshot id", what);
		return -1;
	}
	strcpy(h->id, s);
	parent = cJSON_GetObjectItemCaseSensitive(o, "parent");
	if (parent && (!cJSON_IsString(parent) || !snapshot_id_valid(parent->valuestring))) {
		snprintf(err, errlen, "%s: field \"parent\" is not a snapshot id", what);
		return -1;
	}
	if (parent)
		strcpy(h->parent, parent->valuestring);
	if (get_uint(o, "time", JSON_INT_MAX, &v, what, err, errlen) < 0)
		return -1;
	h->time_sec = (int64_t)v;
	if (!(s = get_string(o, "source", what, err, errlen)))
		return -1;
	if (strlen(s) > MANIFEST_PATH_MAX) {
		snprintf(err, errlen, "%s: field \"source\" is too long", what);
		return -1;
	}
	h->source = xstrdup(s);
	tags = cJSON_GetObjectItemCaseSensitive(o, "tags");
	if (!cJSON_IsObject(tags) || cJSON_GetArraySize(tags) > MANIFEST_TAGS_MAX) {
		snprintf(err, errlen, "%s: field \"tags\" must be an object of at most %d strings", what, MANIFEST_TAGS_MAX);
		return -1;
	}
	h->tags = xcalloc((size_t)cJSON_GetArraySize(tags) + 1, sizeof *h->tags);
	cJSON_ArrayForEach(t, tags) {
		if (!cJSON_IsString(t) || manifest_tag_valid(t->string, t->valuestring, err, errlen) < 0) {
			if (!cJSON_IsString(t))
				snprintf(err, errlen, "%s: tag values must be strings", what);
			return -1;
		}
		for (size_t i = 0; i < h->ntags; i++)
			if (strcmp(h->tags[i].key, t->string) == 0) {
				snprintf(err, errlen, "%s: tag %s given twice", what, t->string);
				return -1;
			}
		h->tags[h->ntags].key = xstrdup(t->string);
		h->tags[h->ntags++].value = xstrdup(t->valuestring);
	}
	stats = cJSON_GetObjectItemCaseSensitive(o, "stats");
	if (!cJSON_IsObject(stats) || only_known_keys(stats, stat_keys, what, err, errlen) < 0 ||
	    get_uint(stats, "files", JSON_INT_MAX, &h->files, what, err, errlen) < 0 ||
	    get_uint(stats, "dirs", JSON_INT_MAX, &h->dirs, what, err, errlen) < 0 ||
	    get_uint(stats, "symlinks", JSON_INT_MAX, &h->symlinks, what, err, errlen) < 0 ||
	    get_uint(stats, "bytes", JSON_INT_MAX, &h->bytes, what, err, errlen) < 0) {
		if (!cJSON_IsObject(stats))
			snprintf(err, errlen, "%s: field \"stats\" must be an object", what);
		return -1;
	}
	return get_chunks(o, "tree", ENTRY_CHUNKS_MAX, &h->tree, &h->ntree, what, err, errlen);
}

int manifest_header_parse(const char *json, size_t len, struct manifest_header *h, char *err, size_t errlen)
{
	cJSON *o = cJSON_ParseWithLength(json, len);
	int rc;

	memset(h, 0, sizeof *h);
	if (!o) {
		snprintf(err, errlen, "snapshot manifest: not valid JSON");
		return -1;
	}
	rc = header_parse_obj(o, h, err, errlen);
	cJSON_Delete(o);
	if (rc < 0)
		manifest_header_free(h);
	return rc;
}

void manifest_header_free(struct manifest_header *h)
{
	for (size_t i = 0; i < h->ntags; i++) {
		free(h->tags[i].key);
		free(h->tags[i].value);
	}
	free(h->tags);
	free(h->source);
	free(h->tree);
	memset(h, 0, sizeof *h);
}
