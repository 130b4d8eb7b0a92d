/* Files the runner leaves in job_bundles for the browser (the web reads no cluster, no bucket,
 * no runner's disk): a job's diagnostics bundle (the manual's 9.1 "log collection": "Diagnostics
 * bundle" queues a 'diagnostics' job, which reads the cluster and stores a tar.gz), and a
 * backup's decrypted archive (a 'download' job's own bundle, kept a day). */
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
	PGresult *res = web_row(r, "SELECT 1 FROM jobs WHERE id = $1", id, "job");
	long long found = res ? id : 0;

	snprintf(sid, sidlen, "%lld", id);
	PQclear(res);
	return found;
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

#define BUNDLE_PIECE (4L << 20)

/* The newest unexpired bundle of job sid into data, read a piece at a time (the hex text of a
 * whole archive would double it in memory). 1 when there is one, 0 when none, -1 with err. */
static int bundle_load(struct request *r, const char *sid, struct strbuf *data, char *err, size_t errlen)
{
	const char *params[] = { sid };
	PGresult *res = db_exec(r->db, "SELECT id, length(data) FROM job_bundles WHERE job_id = $1 AND expires_at > now() "
				"ORDER BY id DESC LIMIT 1", 1, params, err, errlen);
	char bid[24], from[24];

	if (!res)
		return -1;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return 0;
	}
	snprintf(bid, sizeof bid, "%s", PQgetvalue(res, 0, 0));
	long total = atol(PQgetvalue(res, 0, 1));
	PQclear(res);
	for (long at = 0; at < total; at += BUNDLE_PIECE) {
		char piece[24];
		const char *p[] = { bid, from, piece };
		snprintf(from, sizeof from, "%ld", at + 1);
		snprintf(piece, sizeof piece, "%ld", BUNDLE_PIECE);
		res = db_exec(r->db, "SELECT substring(data FROM $2::int FOR $3::int) FROM job_bundles WHERE id = $1",
			      3, p, err, errlen);
		if (!res || PQntuples(res) != 1) {
			PQclear(res);
			return -1;
		}
		const char *hex = PQgetvalue(res, 0, 0);
		size_t n = strlen(hex) >= 2 ? (strlen(hex) - 2) / 2 : 0;
		strbuf_grow(data, n);
		int bad = hex_decode(hex + 2, n, (uint8_t *)data->buf + data->len);
		PQclear(res);
		if (bad) {	/* not what PostgreSQL writes for a bytea: refuse rather than serve garbage */
			snprintf(err, errlen, "a bundle could not be read from the database");
			return -1;
		}
		data->len += n;
		data->buf[data->len] = '\0';
	}
	return 1;
}

void page_job_diagnostics_download(struct request *r)
{
	char sid[24], err[512], filename[64];
	struct strbuf data = STRBUF_INIT;
	int rc;

	if (!job_exists(r, sid, sizeof sid))
		return;
	rc = bundle_load(r, sid, &data, err, sizeof err);
	if (rc < 0)
		respond_db_error(r, err);
	else if (rc == 0)
		respond_error(r, 404, "This job has no diagnostics bundle yet: press \"Diagnostics bundle\" on its page.");
	else {
		snprintf(filename, sizeof filename, "job-%s-diagnostics.tar.gz", sid);
		respond_file(r, "application/gzip", filename, data.buf ? data.buf : "", data.len);
	}
	strbuf_release(&data);
}

/* GET /jobs/:id/archive.tar.gz: a download job's archive, named after its backup, for a day. */
void page_job_archive_download(struct request *r)
{
	char sid[24], err[512], filename[300];
	const char *params[] = { sid };
	struct strbuf data = STRBUF_INIT;
	PGresult *res;
	int rc;

	if (!job_exists(r, sid, sizeof sid))
		return;
	res = db_exec(r->db, "SELECT state, coalesce(result->'download'->>'file', '') FROM jobs WHERE id = $1 AND kind = 'download'",
		      1, params, err, sizeof err);
	if (!res || PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "succeeded") != 0) {
		int found = res && PQntuples(res) == 1;
		PQclear(res);
		respond_error(r, 404, found ? "This download is not ready: its job has not succeeded." :
			      "This job is not a backup's download.");
		return;
	}
	snprintf(filename, sizeof filename, "%s.tar.gz", PQgetvalue(res, 0, 1));
	PQclear(res);
	rc = bundle_load(r, sid, &data, err, sizeof err);
	if (rc < 0)
		respond_db_error(r, err);
	else if (rc == 0)
		respond_error(r, 404, "This download has expired (archives are kept a day): download the backup again.");
	else
		respond_file(r, "application/gzip", filename, data.buf ? data.buf : "", data.len);
	strbuf_release(&data);
}
