/* A tenant's connections, clusters and repositories: one form markup (templates/connection_*.html)
 * and one way to show what a runner's save or Test did. */
#include "web.h"

#include <stdio.h>
#include <string.h>

void web_connection_form(struct request *r, int status, cJSON *view, long long id, const struct web_saved *s)
{
	cJSON_AddStringToObject(view, "title", id ? s->title_edit : s->title_new);
	cJSON_AddBoolToObject(view, s->nav, 1);
	cJSON_AddStringToObject(view, "base", s->list);
	cJSON_AddStringToObject(view, "what", s->what);
	cJSON_AddStringToObject(view, "test_noun", s->test_noun);
	cJSON_AddStringToObject(view, "test_label", s->test_label);
	cJSON_AddStringToObject(view, "secret_name", s->secret_name);
	cJSON_AddStringToObject(view, "secret_label", s->secret_label);
	if (id)
		cJSON_AddNumberToObject(view, "id", (double)id);
	if (status == 200)
		respond_page(r, 200, s->page, view);
	else
		respond_form_errors(r, s->page, view);
}

/* The runner stored the save (or a Test's status) with its answer; this page says what happened. */
void web_save_answered(struct request *r, const struct runner_answer *a, const char *purpose,
		       const struct web_saved *s)
{
	const cJSON *res = a->result;
	const char *message = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(res, "message"));
	long long id = (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(a->params, s->id_param));
	char loc[64], msg[800];

	if (!message)
		message = a->error[0] ? a->error : "The runner gave no answer.";
	if (strcmp(purpose, s->test_purpose) == 0) {
		response_flash(r, message);
		snprintf(loc, sizeof loc, "%s/%lld", s->list, id);
		respond_redirect(r, loc);
	} else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "stored"))) {
		response_flash(r, message);
		respond_redirect(r, s->list);
	} else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "name_taken"))) {
		snprintf(msg, sizeof msg, "Name: a %s of that name already exists.", s->what);
		s->refused(r, a->params, msg);
	} else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "gone"))) {
		snprintf(msg, sizeof msg, "There is no such %s.", s->what);
		respond_error(r, 404, msg);
	} else {
		snprintf(msg, sizeof msg, "Not saved: %s", message);
		s->refused(r, a->params, msg);
	}
}

