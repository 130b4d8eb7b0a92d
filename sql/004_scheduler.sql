-- What the scheduler needs across tenants, and nothing more: which plans are due and which
-- backups have expired. It then binds to each plan's organisation to act, under row-level security.

CREATE FUNCTION stowage.scheduler_due_plans(p_now timestamptz)
RETURNS TABLE (plan_id bigint, plan_org_id bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	SELECT id, org_id FROM backup_plans
	WHERE schedule_kind <> 'manual' AND (next_run_at IS NULL OR next_run_at <= p_now)
	ORDER BY next_run_at NULLS FIRST, id
$$;

CREATE FUNCTION stowage.scheduler_expired_backups(p_now timestamptz)
RETURNS TABLE (backup_id bigint, backup_org_id bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	SELECT id, org_id FROM backups
	WHERE expires_at <= p_now AND state IN ('completed', 'partially_failed', 'failed', 'deleting')
	ORDER BY expires_at, id
$$;

REVOKE ALL ON FUNCTION stowage.scheduler_due_plans(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.scheduler_expired_backups(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stowage.scheduler_due_plans(timestamptz) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.scheduler_expired_backups(timestamptz) TO stowage_app;
