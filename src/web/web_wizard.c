/* Multi-step forms (see web.h): the input of all steps is split by step and each part validated
 * by its declared form, so every step is checked again on every request and nothing is trusted
 * because an earlier page once accepted it. */
#include "web.h"
#include "form.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t step_of_key(const struct wizard_step *steps, size_t nsteps, const char *key)
{
	for (size_t s = 0; s < nsteps; s++)
		for (size_t i = 0; i < steps[s].n; i++)
			if (strcmp(steps[s].fields[i].name, key) == 0)
				return s;
	return nsteps;
}

size_t wizard_run(struct request *r, struct wizard *w, const struct wizard_step *steps, size_t nsteps,
		  const struct kv_list *input, size_t upto)
{
	struct kv_list parts[WIZARD_MAX_STEPS] = { { 0 } };
	size_t shown = upto;

	memset(w, 0, sizeof *w);
	w->steps = steps;
	w->nsteps = nsteps < WIZARD_MAX_STEPS ? nsteps : WIZARD_MAX_STEPS;
	w->v = xcalloc(w->nsteps, sizeof *w->v);
	for (size_t k = 0; input && k < input->count; k++) {
		const struct kv *kv = &input->items[k];
		size_t s;
		if (kv->key[0] == '_')
			continue;
		s = step_of_key(steps, w->nsteps, kv->key);
		if (s < w->nsteps)
			kv_add(&parts[s], kv->key, kv->value, kv->value_len);
		else if (!w->form_error)
			w->form_error = xstrdup("The form has a field that belongs to no step; reload the wizard.");
	}
	for (size_t s = 0; s < w->nsteps; s++) {
		form_validate(steps[s].fields, steps[s].n, &parts[s], &w->v[s]);
		kv_list_free(&parts[s]);
		if (s + 1 < upto && !w->v[s].errors && steps[s].check)
			steps[s].check(r, w, &w->v[s]);
		if (s + 1 < shown && w->v[s].errors)
			shown = s + 1;
	}
	if (w->form_error && shown > 1)
		shown = 1;
	return shown;
}

const char *wizard_value(const struct wizard *w, size_t step, const char *name)
{
	if (step < 1 || step > w->nsteps)
		return NULL;
	return form_value(&w->v[step - 1], w->steps[step - 1].fields, name);
}

void wizard_step_add(cJSON *steps, const char *title, int current)
{
	cJSON *st = cJSON_CreateObject();

	cJSON_AddNumberToObject(st, "n", (double)(cJSON_GetArraySize(steps) + 1));
	cJSON_AddStringToObject(st, "title", title);
	cJSON_AddBoolToObject(st, "current", current);
	cJSON_AddItemToArray(steps, st);
}

void wizard_error(struct wizard *w, size_t step, const char *name, const char *message)
{
	if (step >= 1 && step <= w->nsteps)
		form_fail(&w->v[step - 1], w->steps[step - 1].fields, name, "%s", message);
}

static void strip_errors(cJSON *view)
{
	cJSON *f;

	cJSON_DeleteItemFromObject(view, "form_error");
	cJSON_ArrayForEach(f, cJSON_GetObjectItem(view, "fields"))
		cJSON_DeleteItemFromObject(f, "error");
}

cJSON *wizard_view(const struct wizard *w, size_t shown, int with_errors)
{
	const struct form_values *sv = &w->v[shown - 1];
	cJSON *view = form_view(sv, w->steps[shown - 1].fields);
	cJSON *hidden, *steps;
	char key[16];

	if (!with_errors)
		strip_errors(view);
	else if (w->form_error && !cJSON_GetObjectItem(view, "form_error"))
		cJSON_AddStringToObject(view, "form_error", w->form_error);
	hidden = cJSON_AddArrayToObject(view, "hidden");
	for (size_t s = 0; s < w->nsteps; s++) {
		const struct form_values *v = &w->v[s];
		if (s + 1 == shown)
			continue;
		for (size_t i = 0; i < w->steps[s].n; i++) {
			const char *val = v->value[i] ? v->value[i] : v->input[i];
			if (!val || !*val || w->steps[s].fields[i].kind == FORM_SECRET || w->steps[s].fields[i].kind == FORM_PASSWORD)
				continue;
			/* an unchecked box is carried as no value at all, as the browser sends it */
			if (w->steps[s].fields[i].kind == FORM_BOOL && strcmp(val, "true") != 0)
				continue;
			cJSON *h = cJSON_CreateObject();
			cJSON_AddStringToObject(h, "name", w->steps[s].fields[i].name);
			cJSON_AddStringToObject(h, "value", val);
			cJSON_AddItemToArray(hidden, h);
		}
	}
	steps = cJSON_AddArrayToObject(view, "steps");
	for (size_t s = 0; s < w->nsteps; s++)
		wizard_step_add(steps, w->steps[s].title, s + 1 == shown);
	snprintf(key, sizeof key, "step%zu", shown);
	cJSON_AddBoolToObject(view, key, 1);
	cJSON_AddNumberToObject(view, "step", (double)shown);
	cJSON_AddNumberToObject(view, "prev", (double)(shown - 1));
	cJSON_AddNumberToObject(view, "next", (double)(shown + 1));
	cJSON_AddBoolToObject(view, "last_step", shown == w->nsteps);
	return view;
}

void wizard_free(struct wizard *w)
{
	for (size_t s = 0; w->v && s < w->nsteps; s++)
		form_values_free(&w->v[s]);
	free(w->v);
	free(w->form_error);
	memset(w, 0, sizeof *w);
}
