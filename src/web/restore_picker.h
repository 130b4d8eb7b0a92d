/* The restore wizard's chosen objects and its resource modifiers preview (restore_picker.c). */
#ifndef STOWAGE_RESTORE_PICKER_H
#define STOWAGE_RESTORE_PICKER_H

#include "web.h"

/* The posted `objects` lines and `object` boxes, merged without repeats, as one `objects` onto out. */
void restore_objects_input(const struct kv_list *in, struct kv_list *out);
/* 1 for the picker's own keys (objects, object, object_filter, object_page). */
int restore_objects_key(const char *key);
/* The first of objects (["type/ns/name", ...]) that backup_id does not hold, into missing: 1 then,
 * 0 when all are in it (or the backup predates sql/023's types: nothing to check them by), -1 on error. */
int restore_objects_missing(struct request *r, const char *backup_id, const cJSON *objects, char *missing,
			    size_t missinglen, char *err, size_t errlen);
/* view.object_picker: a page of the backup's objects (filter, page as posted; action: where its
 * buttons post). Returns the chosen objects the page does not show (the textarea's text), to free. */
char *restore_picker_add(struct request *r, cJSON *view, const char *backup_id, const char *objects,
			 const char *filter, const char *page, const char *action);
/* view.preview (the runner's answer), view.live_pending while it works, or view.preview_error. */
void restore_preview_add(struct request *r, cJSON *view, const char *backup_id, const char *objects,
			 const char *rules, const char *resubmit);

#endif
