-- The job page reads a job's per-object results a page at a time, failures first, oldest
-- first (src/web/page_jobs.c): index scans, however many objects a job records (a namespace
-- of 100,000 objects), where the one unique index (by name) left a sort of all of them.
CREATE INDEX job_items_job_order_idx ON stowage.job_items (job_id, id);
CREATE INDEX job_items_job_failed_idx ON stowage.job_items (job_id, id) WHERE action = 'failed';
