-- Test restores (issue 16): a backup restored into a temporary namespace of a chosen cluster,
-- the plan's check hooks run there, the namespace deleted; on demand (the backup's page) and on
-- a schedule of the backup plan's own (src/runner/job_test_restore.c, docs/jobs.md).

-- 'test_restore', added to whatever kinds the migrations before this one allow (as 018 does).
DO $$
DECLARE
	kinds text[];
BEGIN
	SELECT array_agg(DISTINCT k ORDER BY k) INTO kinds FROM (
		SELECT (regexp_matches(pg_get_constraintdef(c.oid), '[''{,]([a-z_]+)(?=[''},])', 'g'))[1] AS k
		FROM pg_constraint c WHERE c.conrelid = 'stowage.jobs'::regclass AND c.conname = 'jobs_kind_check'
		UNION SELECT 'test_restore') s;
	ALTER TABLE stowage.jobs DROP CONSTRAINT jobs_kind_check;
	EXECUTE format('ALTER TABLE stowage.jobs ADD CONSTRAINT jobs_kind_check CHECK (kind = ANY (%L::text[]))', kinds);
END $$;

-- A plan's test restore: where (a cluster of the same organisation), which check hooks (the
-- plan's hook entries, run at post-restore in the temporary namespace) and when (a cron
-- expression in the plan's time zone; '' for on demand only).
ALTER TABLE stowage.backup_plans
	ADD COLUMN test_restore_cron text NOT NULL DEFAULT '' CHECK (length(test_restore_cron) <= 128),
	ADD COLUMN test_restore_cluster_id bigint REFERENCES stowage.clusters ON DELETE SET NULL,
	ADD COLUMN test_restore_hooks jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(test_restore_hooks) = 'array'),
	ADD COLUMN test_restore_next_run_at timestamptz,
	ADD CONSTRAINT backup_plans_org_test_restore_cluster_fkey FOREIGN KEY (org_id, test_restore_cluster_id)
		REFERENCES stowage.clusters (org_id, id),
	ADD CONSTRAINT backup_plans_test_restore_where CHECK (test_restore_cron = '' OR test_restore_cluster_id IS NOT NULL);

-- One scheduled job per plan, kind and due time: a backup and a test restore of the same plan
-- due at the same minute are two jobs.
DROP INDEX stowage.jobs_schedule_once;
CREATE UNIQUE INDEX jobs_schedule_once ON stowage.jobs (kind, backup_plan_id, scheduled_for)
	WHERE scheduled_for IS NOT NULL;

CREATE FUNCTION stowage.scheduler_due_test_restores(p_now timestamptz)
RETURNS TABLE (plan_id bigint, plan_org_id bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	SELECT id, org_id FROM backup_plans
	WHERE test_restore_cron <> '' AND (test_restore_next_run_at IS NULL OR test_restore_next_run_at <= p_now)
	ORDER BY test_restore_next_run_at NULLS FIRST, id
$$;
REVOKE ALL ON FUNCTION stowage.scheduler_due_test_restores(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stowage.scheduler_due_test_restores(timestamptz) TO stowage_scheduler;

-- A test restore's end is notified like a backup's (the organisation's settings).
DROP TRIGGER jobs_notification ON stowage.jobs;
CREATE TRIGGER jobs_notification AFTER UPDATE OF state ON stowage.jobs FOR EACH ROW
	WHEN (NEW.state IN ('succeeded', 'partially_failed', 'failed') AND OLD.state IS DISTINCT FROM NEW.state
	      AND NEW.kind IN ('backup', 'restore', 'migrate', 'test_restore'))
	EXECUTE FUNCTION stowage.notification_job_ended();
