-- One database role per program, each granted what it does. stowage_app stays the web workers'
-- role and is the base the others inherit (the tables under row-level security);
-- stowage_runner alone claims jobs and beats their heart, stowage_scheduler alone asks which
-- plans are due and which backups expired; both may fail the jobs of a runner that died.
-- The roles, and the runner's and scheduler's membership of stowage_app, are made by whoever
-- runs the server (scripts/pg for the demo and the tests; see docs/security.md).
-- Fair claiming: a runner takes the oldest queued job of the organisation with the fewest
-- running jobs, and never one of an organisation already at its cap, so one organisation's many
-- slow jobs cannot hold every runner.

REVOKE EXECUTE ON FUNCTION stowage.claim_job(text, integer) FROM stowage_app;
DROP FUNCTION stowage.claim_job(text, integer);

CREATE FUNCTION stowage.claim_job(p_runner text, p_cluster_limit integer, p_org_limit integer)
RETURNS TABLE (job_id bigint, job_org_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(7301000002);
	RETURN QUERY
	WITH org_running AS (
		SELECT r.org_id, count(*) AS n FROM jobs r WHERE r.state = 'running' GROUP BY r.org_id
	)
	UPDATE jobs j SET state = 'running', runner_id = p_runner, heartbeat_at = now(),
		started_at = coalesce(j.started_at, now()), attempts = j.attempts + 1
	WHERE j.id = (
		SELECT q.id FROM jobs q LEFT JOIN org_running o ON o.org_id = q.org_id
		WHERE q.state = 'queued' AND NOT q.cancel_requested
		  AND coalesce(o.n, 0) < p_org_limit
		  AND (q.cluster_id IS NULL OR (SELECT count(*) FROM jobs r
			WHERE r.cluster_id = q.cluster_id AND r.state = 'running') < p_cluster_limit)
		ORDER BY coalesce(o.n, 0), q.queued_at, q.id
		LIMIT 1 FOR UPDATE OF q SKIP LOCKED)
	RETURNING j.id, j.org_id;
END $$;

REVOKE ALL ON FUNCTION stowage.claim_job(text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stowage.claim_job(text, integer, integer) TO stowage_runner;

REVOKE EXECUTE ON FUNCTION stowage.runner_heartbeat(text) FROM stowage_app;
GRANT EXECUTE ON FUNCTION stowage.runner_heartbeat(text) TO stowage_runner;
REVOKE EXECUTE ON FUNCTION stowage.reap_stale_jobs(integer) FROM stowage_app;
GRANT EXECUTE ON FUNCTION stowage.reap_stale_jobs(integer) TO stowage_runner, stowage_scheduler;
REVOKE EXECUTE ON FUNCTION stowage.scheduler_due_plans(timestamptz) FROM stowage_app;
GRANT EXECUTE ON FUNCTION stowage.scheduler_due_plans(timestamptz) TO stowage_scheduler;
REVOKE EXECUTE ON FUNCTION stowage.scheduler_expired_backups(timestamptz) FROM stowage_app;
GRANT EXECUTE ON FUNCTION stowage.scheduler_expired_backups(timestamptz) TO stowage_scheduler;

-- A person's row changes only through the definer functions that check it is theirs
-- (password_change, password_reset, confirmation in 007_accounts.sql): the web role cannot
-- rewrite another user's email or password hash, nor rename an organisation, by any query.
REVOKE UPDATE ON stowage.users, stowage.orgs FROM stowage_app;
