/* The hook steps of the backup and restore wizards: hooks picked from the tenant's library by
 * name, in order, then an optional inline script; stored on the plan as
 * [{"hook_id": n}, ..., {"inline": "..."}]. One implementation for both wizards. */
#include "web.h"
#include "db.h"
#include "form.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIBRARY_HOOKS_MAX 16

/* The ids of the names in list ("quiesce, scale-down"), in order; -1 with the unknown name. */
static int library_ids(struct request *r, const char *list, long long *ids, size_t *n, char *bad, size_t badlen)
{
	char *copy = xstrdup(list ? list : ""), *save = NULL, err[512];
	int rc = 0;

	*n = 0;
	for (char *name = strtok_r(copy, ", \t", &save); name; name = strtok_r(NULL, ", \t", &save)) {
		const char *params[] = { name };
		PGresult *res;
		if (*n == LIBRARY_HOOKS_MAX) {
			snprintf(bad, badlen, "at most %d library hooks", LIBRARY_HOOKS_MAX);
			rc = -1;
			break;
		}
		res = db_exec(r->db, "SELECT id FROM hooks WHERE name = $1", 1, params, err, sizeof err);
		if (!res || PQntuples(res) != 1) {
			snprintf(bad, badlen, "no hook named \"%s\" in your library", name);
			PQclear(res);
			rc = -1;
			break;
		}
		ids[(*n)++] = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
	}
	free(copy);
	return rc;
}

void web_hooks_check(struct request *r, struct form_values *v, const struct form_field *fields)
{
	long long ids[LIBRARY_HOOKS_MAX];
	size_t n;
	char bad[200];

	if (form_error(v, fields, "library_hooks") ||
	    library_ids(r, form_value(v, fields, "library_hooks"), ids, &n, bad, sizeof bad) == 0)
		return;
	form_fail(v, fields, "library_hooks", "Library hooks: %s", bad);
}

char *web_hooks_json(struct request *r, const char *list, const char *script, const char *phase)
{
	long long ids[LIBRARY_HOOKS_MAX];
	size_t n = 0;
	char bad[200];
	cJSON *a = cJSON_CreateArray();
	char *s;

	if (library_ids(r, list, ids, &n, bad, sizeof bad) < 0)
		n = 0;	/* checked by web_hooks_check before anything is saved */
	for (size_t i = 0; i < n; i++) {
		cJSON *h = cJSON_CreateObject();
		cJSON_AddNumberToObject(h, "hook_id", (double)ids[i]);
		if (phase)
			cJSON_AddStringToObject(h, "phase", phase);
		cJSON_AddItemToArray(a, h);
	}
	if (script && *script) {
		cJSON *h = cJSON_CreateObject();
		cJSON_AddStringToObject(h, "inline", script);
		if (phase)
			cJSON_AddStringToObject(h, "phase", phase);
		cJSON_AddItemToArray(a, h);
	}
	s = cJSON_PrintUnformatted(a);
	cJSON_Delete(a);
	return s;
}

void web_hooks_add_library(struct request *r, cJSON *view)
{
	char err[512];
	PGresult *res = db_exec(r->db, "SELECT name, description FROM hooks ORDER BY name", 0, NULL, err, sizeof err);
	cJSON *list = cJSON_AddArrayToObject(view, "library");

	for (int i = 0; res && i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", PQgetvalue(res, i, 0));
		cJSON_AddStringToObject(o, "description", PQgetvalue(res, i, 1));
		cJSON_AddItemToArray(list, o);
	}
	cJSON_AddBoolToObject(view, "has_library", res && PQntuples(res) > 0);
	PQclear(res);
}
