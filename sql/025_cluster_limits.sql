-- Per-cluster limits (issue 16, "Consistency and control"): the data mover's bandwidth by time
-- window, in the cluster's own time zone, and how many jobs run against the cluster at once.
--
-- A rule limits upload, download or both to bytes_per_second on the days of `days` (bit 0
-- Monday ... bit 6 Sunday) from start_minute to end_minute local time (an end at or before the
-- start runs past midnight; the window belongs to the day it starts on). Outside every window
-- the mover is unlimited; where windows overlap the lowest rate holds (src/core/rate_window.h).
-- concurrency NULL follows the runners' cluster_concurrency setting.

ALTER TABLE stowage.clusters
	ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC' CHECK (time_zone ~ '^[A-Za-z0-9_+/-]{1,64}$'),
	ADD COLUMN concurrency integer CHECK (concurrency BETWEEN 1 AND 64);

CREATE TABLE stowage.cluster_bandwidth_rules (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	cluster_id bigint NOT NULL REFERENCES stowage.clusters ON DELETE CASCADE,
	-- never another organisation's cluster (as sql/011 does for every reference)
	FOREIGN KEY (org_id, cluster_id) REFERENCES stowage.clusters (org_id, id) ON DELETE CASCADE,
	position integer NOT NULL CHECK (position BETWEEN 1 AND 32),
	direction text NOT NULL CHECK (direction IN ('upload', 'download', 'both')),
	bytes_per_second bigint NOT NULL CHECK (bytes_per_second BETWEEN 1000 AND 100000000000),
	days smallint NOT NULL CHECK (days BETWEEN 1 AND 127),
	start_minute smallint NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
	end_minute smallint NOT NULL CHECK (end_minute BETWEEN 0 AND 1440),
	CHECK (start_minute <> end_minute),
	UNIQUE (cluster_id, position)
);
CREATE INDEX cluster_bandwidth_rules_org ON stowage.cluster_bandwidth_rules (org_id);

ALTER TABLE stowage.cluster_bandwidth_rules ENABLE ROW LEVEL SECURITY;
CREATE POLICY cluster_bandwidth_rules_tenant ON stowage.cluster_bandwidth_rules
	USING (org_id = stowage.current_org()) WITH CHECK (org_id = stowage.current_org());
GRANT SELECT, INSERT, UPDATE, DELETE ON stowage.cluster_bandwidth_rules TO stowage_app;

-- The claim of sql/010 with each cluster's own limit where it has one.
CREATE OR REPLACE FUNCTION stowage.claim_job(p_runner text, p_cluster_limit integer, p_org_limit integer)
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
			WHERE r.cluster_id = q.cluster_id AND r.state = 'running') <
			coalesce((SELECT c.concurrency FROM clusters c WHERE c.id = q.cluster_id), p_cluster_limit))
		ORDER BY coalesce(o.n, 0), q.queued_at, q.id
		LIMIT 1 FOR UPDATE OF q SKIP LOCKED)
	RETURNING j.id, j.org_id;
END $$;
