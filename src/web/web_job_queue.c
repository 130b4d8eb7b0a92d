/* "Queue a job and go to its page": Backup, Activate, Migrate, Verify, Delete, Sync and
 * Diagnostics all end here, in the request's tenant transaction. */
#include "web.h"
#include "audit.h"

#include <stdio.h>

void web_job_queue(struct request *r, const struct web_job *q)
{
	char err[512], loc[64];
	long long job = job_enqueue(r->db, &q->spec, err, sizeof err);

	if (job < 0) {
		respond_db_error(r, err);
		return;
	}
	if (job == 0 && !q->already_location) {
		respond_error(r, 409, q->already ? q->already : "The same job is already queued or running.");
		return;
	}
	cJSON *detail = cJSON_CreateObject();
	if (job)
		cJSON_AddNumberToObject(detail, "job_id", (double)job);
	int rc = audit_record(r->db, q->audit_action, q->audit_name, detail, err, sizeof err);
	cJSON_Delete(detail);
	if (rc < 0) {
		respond_db_error(r, err);
		return;
	}
	if (job) {
		response_flash(r, q->flash);
		snprintf(loc, sizeof loc, "/jobs/%lld", job);
		respond_redirect(r, loc);
	} else {
		response_flash(r, q->already);
		respond_redirect(r, q->already_location);
	}
}
