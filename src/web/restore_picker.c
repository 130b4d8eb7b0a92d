/* The restore wizard's chosen objects (issue 15) and its resource modifiers preview (issue 16).
 *
 * The picker offers the chosen backup's objects, read from its row (resource_list with the
 * resource_types the backup job records, sql/023), as checkboxes grouped by type and namespace,
 * cluster-scoped ones in a group of their own. Filtering and paging are done in SQL, so a
 * backup of 100,000 objects renders one page of PICK_PAGE. The choice travels as the wizard's
 * `objects` field (one type/namespace/name a line): on step 3 the textarea holds the chosen
 * objects that are not on the page shown, and the boxes the ones that are; a post merges them.
 *
 * The preview asks a runner (web workers never read a bucket) to apply the rules to the chosen
 * objects, or to the archive's first ones, and shows what each rule changed. */
#include "web.h"
#include "db.h"
#include "json.h"
#include "resource_modifier.h"
#include "restore_picker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PICK_PAGE 100			/* checkboxes a page (the form takes 256 fields) */
#define PICK_FILTER_MAX 200
#define PREVIEW_OBJECTS 100		/* chosen objects sent to the runner (it reads as many) */
#define PREVIEW_FRESH 300

/* The backup $1's objects: type (resource[.group]), namespaced, ns, name, key (type/ns/name,
 * type//name when cluster-scoped). Only types with a recorded resource (sql/023). */
#define BACKUP_OBJECTS \
	"SELECT type, namespaced, CASE WHEN namespaced THEN split_part(entry, '/', 1) ELSE '' END AS ns, " \
	"CASE WHEN namespaced THEN substr(entry, strpos(entry, '/') + 1) ELSE entry END AS name, " \
	"type || '/' || CASE WHEN namespaced THEN entry ELSE '/' || entry END AS key FROM (" \
	"SELECT (t.value ->> 'resource') || CASE WHEN t.value ->> 'group' <> '' THEN '.' || (t.value ->> 'group') " \
	"ELSE '' END AS type, coalesce(t.value -> 'namespaced' = 'true'::jsonb, false) AS namespaced, e.v AS entry " \
	"FROM backups b, jsonb_each(b.resource_types) t, jsonb_array_elements_text(CASE WHEN " \
	"jsonb_typeof(b.resource_list -> t.key) = 'array' THEN b.resource_list -> t.key ELSE '[]' END) e(v) " \
	"WHERE b.id = $1 AND jsonb_typeof(t.value -> 'resource') = 'string') o"

static void trim(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

/* The lines of text, trimmed, without empty ones and repeats (of each other or of what list
 * holds), onto list in their order. A post carries up to 2 MiB of lines: comparing each with all
 * before it took minutes of a worker for 150,000 of them, so repeats go in one sort at the end. */
static void lines_add(cJSON *list, const char *text)
{
	char *copy = xstrdup(text ? text : "");

	for (char *p = copy; *p;) {
		char *line = p, *a;

		p += strcspn(p, "\n");
		if (*p)
			*p++ = '\0';
		a = line + strspn(line, " \t");
		trim(a);
		if (*a)
			cJSON_AddItemToArray(list, cJSON_CreateString(a));
	}
	free(copy);
	json_array_unique(list);
}

void restore_objects_input(const struct kv_list *in, struct kv_list *out)
{
	cJSON *list = cJSON_CreateArray(), *e;
	struct strbuf posted = STRBUF_INIT, text = STRBUF_INIT;
	int any = 0;

	/* every field's lines in one text, so that repeats are dropped once (by one sort) */
	for (size_t k = 0; k < in->count; k++) {
		const char *key = in->items[k].key;
		if (strcmp(key, "objects") == 0 || strcmp(key, "object") == 0) {
			strbuf_addstr(&posted, in->items[k].value);
			strbuf_addch(&posted, '\n');
			any = 1;
		}
	}
	lines_add(list, posted.buf);
	strbuf_release(&posted);
	cJSON_ArrayForEach(e, list)
		strbuf_addf(&text, "%s%s", text.len ? "\n" : "", e->valuestring);
	if (any)
		kv_add(out, "objects", text.buf ? text.buf : "", text.len);
	strbuf_release(&text);
	cJSON_Delete(list);
}

int restore_objects_key(const char *key)
{
	static const char *const keys[] = { "objects", "object", "object_filter", "object_page", NULL };

	for (int i = 0; keys[i]; i++)
		if (strcmp(key, keys[i]) == 0)
			return 1;
	return 0;
}

/* 1 when backup id has recorded its types (written since sql/023), 0 when not, -1 on error. */
static int backup_has_types(struct request *r, const char *id, char *err, size_t errlen)
{
	const char *params[] = { id };
	PGresult *res = db_exec(r->db, "SELECT resource_types <> '{}' FROM backups WHERE id = $1", 1, params, err, errlen);
	int rc = -1;

	if (res && PQntuples(res) == 1)
		rc = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	else if (res)
		snprintf(err, errlen, "there is no such backup");
	PQclear(res);
	return rc;
}

int restore_objects_missing(struct request *r, const char *backup_id, const cJSON *objects, char *missing,
			    size_t missinglen, char *err, size_t errlen)
{
	char *text;
	int has = backup_has_types(r, backup_id, err, errlen), rc = 0;

	*missing = '\0';
	if (has <= 0 || cJSON_GetArraySize(objects) == 0)
		return has < 0 ? -1 : 0;
	text = cJSON_PrintUnformatted(objects);
	const char *params[] = { backup_id, text };
	PGresult *res = db_exec(r->db, "SELECT c.o FROM jsonb_array_elements_text($2::jsonb) WITH ORDINALITY c(o, n) "
				"LEFT JOIN (" BACKUP_OBJECTS ") k ON k.key = c.o WHERE k.key IS NULL ORDER BY c.n LIMIT 1",
				2, params, err, errlen);
	free(text);
	if (!res)
		return -1;
	if (PQntuples(res) == 1) {
		snprintf(missing, missinglen, "%s", PQgetvalue(res, 0, 0));
		rc = 1;
	}
	PQclear(res);
	return rc;
}

static cJSON *group_new(cJSON *groups, const char *type, const char *ns)
{
	cJSON *g = cJSON_CreateObject();

	cJSON_AddStringToObject(g, "type", type);
	cJSON_AddStringToObject(g, "namespace", ns);
	cJSON_AddArrayToObject(g, "objects");
	cJSON_AddItemToArray(groups, g);
	return g;
}

static long page_number(const char *s)
{
	char *end;
	long n = s ? strtol(s, &end, 10) : 1;

	return !s || *end || n < 1 || n > 1000000 ? 1 : n;
}

char *restore_picker_add(struct request *r, cJSON *view, const char *backup_id, const char *objects,
			 const char *filter, const char *page_text, const char *action)
{
	cJSON *p = cJSON_AddObjectToObject(view, "object_picker"), *chosen = cJSON_CreateArray(), *e;
	char err[512], offset[24], limit[24];
	long page = page_number(page_text);
	int has;

	lines_add(chosen, objects);
	if (!filter || strlen(filter) > PICK_FILTER_MAX)
		filter = "";
	cJSON_AddStringToObject(p, "action", action);
	cJSON_AddStringToObject(p, "filter", filter);
	has = backup_id && *backup_id ? backup_has_types(r, backup_id, err, sizeof err) : -1;
	cJSON_AddBoolToObject(p, "available", has == 1);
	if (has != 1) {
		cJSON_AddStringToObject(p, "note", has == 0 ?
			"This backup was written before Stowage recorded its objects' types: type the objects below." :
			"Choose a backup, then press \"List its objects\" to choose some of them.");
		cJSON_Delete(chosen);
		return xstrdup(objects ? objects : "");
	}
	snprintf(offset, sizeof offset, "%ld", (page - 1) * PICK_PAGE);
	snprintf(limit, sizeof limit, "%d", PICK_PAGE);
	const char *params[] = { backup_id, filter, offset, limit };
	PGresult *res = db_exec(r->db, "SELECT type, namespaced, ns, name, key, count(*) OVER () FROM (" BACKUP_OBJECTS
				") k WHERE strpos(lower(key), lower($2)) > 0 ORDER BY namespaced DESC, ns, type, name "
				"LIMIT $4::int OFFSET $3::bigint", 4, params, err, sizeof err);
	long total = res && PQntuples(res) ? atol(PQgetvalue(res, 0, 5)) : 0;
	long pages = (total + PICK_PAGE - 1) / PICK_PAGE;
	cJSON *namespaced = cJSON_AddArrayToObject(p, "namespaced");
	cJSON *cluster = cJSON_AddArrayToObject(p, "cluster_scoped");
	cJSON *g = NULL, *shown = cJSON_CreateArray();
	for (int i = 0; res && i < PQntuples(res); i++) {
		const char *type = PQgetvalue(res, i, 0), *ns = PQgetvalue(res, i, 2);
		int nsd = strcmp(PQgetvalue(res, i, 1), "t") == 0;
		if (!g || strcmp(json_str(g, "type"), type) != 0 || strcmp(json_str(g, "namespace"), ns) != 0)
			g = group_new(nsd ? namespaced : cluster, type, ns);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "value", PQgetvalue(res, i, 4));
		cJSON_AddStringToObject(o, "name", PQgetvalue(res, i, 3));
		cJSON_AddBoolToObject(o, "checked", json_array_has(chosen, PQgetvalue(res, i, 4)));
		cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(g, "objects"), o);
		cJSON_AddItemToArray(shown, cJSON_CreateString(PQgetvalue(res, i, 4)));
	}
	if (!res)
		cJSON_AddStringToObject(p, "error", err);
	PQclear(res);
	cJSON_AddNumberToObject(p, "total", (double)total);
	cJSON_AddNumberToObject(p, "page", (double)page);
	cJSON_AddNumberToObject(p, "pages", (double)pages);
	cJSON_AddNumberToObject(p, "chosen", cJSON_GetArraySize(chosen));
	cJSON_AddBoolToObject(p, "has_cluster_scoped", cJSON_GetArraySize(cluster) > 0);
	if (page > 1)
		cJSON_AddNumberToObject(p, "prev_page", (double)(page - 1));
	if (page < pages)
		cJSON_AddNumberToObject(p, "next_page", (double)(page + 1));
	/* the chosen objects this page does not show stay in the textarea */
	struct strbuf rest = STRBUF_INIT;
	cJSON_ArrayForEach(e, chosen)
		if (!json_array_has(shown, e->valuestring))
			strbuf_addf(&rest, "%s%s", rest.len ? "\n" : "", e->valuestring);
	cJSON_Delete(shown);
	cJSON_Delete(chosen);
	return strbuf_take(&rest);
}

void restore_preview_add(struct request *r, cJSON *view, const char *backup_id, const char *objects,
			 const char *rules, const char *resubmit)
{
	cJSON *ask, *list = cJSON_CreateArray();
	struct resource_modifiers *m;
	struct runner_answer a;
	char err[600];

	if (!(m = resource_modifiers_parse(rules ? rules : "", rules ? strlen(rules) : 0, err, sizeof err))) {
		cJSON_AddStringToObject(view, "preview_error", err);
		cJSON_Delete(list);
		return;
	}
	resource_modifiers_free(m);
	lines_add(list, objects);
	json_array_truncate(list, PREVIEW_OBJECTS);
	ask = cJSON_CreateObject();
	cJSON_AddNumberToObject(ask, "backup_id", (double)atoll(backup_id ? backup_id : "0"));
	cJSON_AddStringToObject(ask, "rules", rules ? rules : "");
	cJSON_AddItemToObject(ask, "objects", list);
	int rc = web_request_reuse(r, "modifier_preview", ask, PREVIEW_FRESH, &a, err, sizeof err);
	cJSON_Delete(ask);
	if (rc < 0) {
		cJSON_AddStringToObject(view, "preview_error", err);
		return;
	}
	if (rc == 0)
		web_request_view(view, &a, "Previewing the modifiers: a runner applies them to the backup's objects…", resubmit);
	else if (a.error[0])
		cJSON_AddStringToObject(view, "preview_error", a.error);
	else
		cJSON_AddItemToObject(view, "preview", cJSON_Duplicate(a.result, 1));
	runner_answer_free(&a);
}
