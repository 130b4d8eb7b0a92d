/* A job's diagnostics bundle (the manual's 9.1 "log collection"): "Diagnostics bundle" queues a
 * 'diagnostics' job of the runner, which reads the cluster and stores a tar.gz in job_bundles;
 * the download serves the latest one from the database (the web reads no cluster). */
#include "web.h"
#include "audit.h"
#include "db.h"
#include "hex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long long job_exists(struct request *r, char *sid, size_t sidlen)
{
	long long id = request_param_id(r, "id");
	const char *params[] = { sid };
	char err[256];
	PGresult *res;
	int found;

	snprintf(sid, sidlen, "%lld", id);
	res = id ? db_exec(r->db, "SELECT 1 FROM jobs WHERE id = $1", 1, params, err, sizeof err) : NULL;
	found = res && PQntuples(res) == 1;
	PQclear(res);
	if (!found)
		respond_error(r, 404, "There is no such job.");
	return found ? id : 0;
}

void page_job_diagnostics(struct request *r)
{
	char sid[24], input[64];
	struct web_job q = {
		.spec = { .kind = "diagnostics", .input = input },
		.audit_action = "job.diagnostics", .audit_name = sid,
		.flash = "Collecting the diagnostics bundle: download it from the job's page once this job has finished.",
	};

	if (!job_exists(r, sid, sizeof sid))
		return;
	snprintf(input, sizeof input, "{\"of_job\": %s}", sid);
	web_job_queue(r, &q);
}

void page_job_diagnostics_download(struct request *r)
{
	char sid[24], err[512], filename[64];
	const char *params[] = { sid };
	PGresult *res;

	if (!job_exists(r, sid, sizeof sid))
		return;
	res = db_exec(r->db, "SELECT data FROM job_bundles WHERE job_id = $1 ORDER BY id DESC LIMIT 1", 1, params, err,
		      sizeof err);
	if (!res) {
		respond_db_error(r, err);
		return;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		respond_error(r, 404, "This job has no diagnostics bundle yet: press \"Diagnostics bundle\" on its page.");
		return;
	}
	const char *hex = PQgetvalue(res, 0, 0);
	size_t n = strlen(hex) >= 2 ? (strlen(hex) - 2) / 2 : 0;
	uint8_t *data = xmalloc(n ? n : 1);
	int bad = hex_decode(hex + 2, n, data);
	PQclear(res);
	if (bad) {
		free(data);
		respond_error(r, 500, "The diagnostics bundle could not be read from the database.");
		return;
	}
	snprintf(filename, sizeof filename, "job-%s-diagnostics.tar.gz", sid);
	respond_file(r, "application/gzip", filename, data, n);
	free(data);
}
