-- Backup plans, restore plans, backups, and the job queue with its items and log.
--
-- Jobs are claimed by runners through claim_job(), a SECURITY DEFINER function: the runner sees
-- no tenant row until it holds a job, and then binds its transactions to the job's organisation
-- like the web workers do, so row-level security covers the runner's work too. Claims take an
-- advisory lock so the per-cluster concurrency limit holds with many runners.

CREATE TABLE stowage.backup_plans (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	name text NOT NULL CHECK (name ~ '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'),
	cluster_id bigint NOT NULL REFERENCES stowage.clusters ON DELETE RESTRICT,
	repository_id bigint NOT NULL REFERENCES stowage.repositories ON DELETE RESTRICT,
	namespaces text[] NOT NULL CHECK (cardinality(namespaces) BETWEEN 1 AND 100),
	label_selector text NOT NULL DEFAULT '' CHECK (length(label_selector) <= 1024),
	schedule_kind text NOT NULL DEFAULT 'manual' CHECK (schedule_kind IN ('manual', 'hourly', 'daily', 'weekly', 'cron')),
	schedule_cron text NOT NULL DEFAULT '' CHECK (length(schedule_cron) <= 128),
	time_zone text NOT NULL DEFAULT 'UTC' CHECK (length(time_zone) <= 64),
	retention_days integer NOT NULL DEFAULT 30 CHECK (retention_days BETWEEN 1 AND 3650),
	-- {"<namespace>/<pvc>": "filesystem" | "snapshot"}
	volume_methods jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(volume_methods) = 'object'),
	-- [{"hook_id": n} | {"inline": "...lua..."}], in order
	hooks jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(hooks) = 'array'),
	next_run_at timestamptz,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (org_id, name)
);

CREATE TABLE stowage.backups (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	plan_id bigint REFERENCES stowage.backup_plans ON DELETE SET NULL,
	cluster_id bigint REFERENCES stowage.clusters ON DELETE SET NULL,
	repository_id bigint NOT NULL REFERENCES stowage.repositories ON DELETE RESTRICT,
	name text NOT NULL CHECK (name ~ '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$'),
	namespaces text[] NOT NULL,
	-- A backup is offered for restore only once 'completed': set after its metadata file, the
	-- last object, is in the repository.
	state text NOT NULL DEFAULT 'running'
		CHECK (state IN ('running', 'completed', 'partially_failed', 'failed', 'deleting')),
	resource_count integer NOT NULL DEFAULT 0,
	bytes bigint NOT NULL DEFAULT 0,
	started_at timestamptz NOT NULL DEFAULT now(),
	completed_at timestamptz,
	expires_at timestamptz,
	UNIQUE (org_id, name)
);
CREATE INDEX backups_plan_idx ON stowage.backups (plan_id, started_at DESC);

CREATE TABLE stowage.restore_plans (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	name text NOT NULL CHECK (name ~ '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'),
	backup_plan_id bigint REFERENCES stowage.backup_plans ON DELETE SET NULL,
	backup_id bigint REFERENCES stowage.backups ON DELETE SET NULL,
	target_cluster_id bigint NOT NULL REFERENCES stowage.clusters ON DELETE RESTRICT,
	-- {"source-ns": "target-ns"}; a namespace not named keeps its name
	namespace_map jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(namespace_map) = 'object'),
	-- {"old-class": "new-class"}; wins over the target cluster's change-storage-class ConfigMap
	storage_class_map jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(storage_class_map) = 'object'),
	existing_policy text NOT NULL DEFAULT 'skip' CHECK (existing_policy IN ('skip', 'update')),
	hooks jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(hooks) = 'array'),
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (org_id, name)
);

CREATE TABLE stowage.jobs (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	kind text NOT NULL CHECK (kind IN ('backup', 'restore', 'migrate')),
	backup_plan_id bigint REFERENCES stowage.backup_plans ON DELETE SET NULL,
	restore_plan_id bigint REFERENCES stowage.restore_plans ON DELETE SET NULL,
	backup_id bigint REFERENCES stowage.backups ON DELETE SET NULL,
	-- the cluster whose concurrency limit the job counts against
	cluster_id bigint REFERENCES stowage.clusters ON DELETE SET NULL,
	state text NOT NULL DEFAULT 'queued'
		CHECK (state IN ('queued', 'running', 'succeeded', 'partially_failed', 'failed', 'cancelled')),
	trigger text NOT NULL DEFAULT 'manual' CHECK (trigger IN ('manual', 'schedule', 'migration')),
	scheduled_for timestamptz,
	phase text NOT NULL DEFAULT '',
	percent integer NOT NULL DEFAULT 0 CHECK (percent BETWEEN 0 AND 100),
	items_done integer NOT NULL DEFAULT 0,
	items_total integer NOT NULL DEFAULT 0,
	items_failed integer NOT NULL DEFAULT 0,
	bytes_done bigint NOT NULL DEFAULT 0,
	bytes_total bigint NOT NULL DEFAULT 0,
	cancel_requested boolean NOT NULL DEFAULT false,
	runner_id text,
	heartbeat_at timestamptz,
	attempts integer NOT NULL DEFAULT 0,
	error text NOT NULL DEFAULT '',
	-- per-phase states and durations, counts per resource type, and the like
	result jsonb NOT NULL DEFAULT '{}',
	created_by bigint REFERENCES stowage.users ON DELETE SET NULL DEFAULT stowage.current_app_user(),
	queued_at timestamptz NOT NULL DEFAULT now(),
	started_at timestamptz,
	finished_at timestamptz
);
CREATE INDEX jobs_queue_idx ON stowage.jobs (queued_at, id) WHERE state = 'queued';
CREATE INDEX jobs_running_cluster_idx ON stowage.jobs (cluster_id) WHERE state = 'running';
CREATE INDEX jobs_plan_idx ON stowage.jobs (backup_plan_id, queued_at DESC);
CREATE INDEX jobs_restore_plan_idx ON stowage.jobs (restore_plan_id, queued_at DESC);
-- One scheduled run per plan and due time, however many schedulers fire it.
CREATE UNIQUE INDEX jobs_schedule_once ON stowage.jobs (backup_plan_id, scheduled_for) WHERE scheduled_for IS NOT NULL;

CREATE TABLE stowage.job_items (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	job_id bigint NOT NULL REFERENCES stowage.jobs ON DELETE CASCADE,
	api_group text NOT NULL DEFAULT '',
	resource text NOT NULL,
	namespace text NOT NULL DEFAULT '',
	name text NOT NULL,
	action text NOT NULL CHECK (action IN ('backed_up', 'created', 'updated', 'skipped', 'failed')),
	message text NOT NULL DEFAULT '',
	UNIQUE (job_id, api_group, resource, namespace, name)
);

CREATE TABLE stowage.job_logs (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	job_id bigint NOT NULL REFERENCES stowage.jobs ON DELETE CASCADE,
	at timestamptz NOT NULL DEFAULT clock_timestamp(),
	level text NOT NULL CHECK (level IN ('info', 'warning', 'error')),
	message text NOT NULL
);
CREATE INDEX job_logs_job_idx ON stowage.job_logs (job_id, id);

ALTER TABLE stowage.backup_plans ENABLE ROW LEVEL SECURITY;
ALTER TABLE stowage.backups ENABLE ROW LEVEL SECURITY;
ALTER TABLE stowage.restore_plans ENABLE ROW LEVEL SECURITY;
ALTER TABLE stowage.jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE stowage.job_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE stowage.job_logs ENABLE ROW LEVEL SECURITY;
CREATE POLICY backup_plans_tenant ON stowage.backup_plans
	USING (org_id = stowage.current_org()) WITH CHECK (org_id = stowage.current_org());
CREATE POLICY backups_tenant ON stowage.backups
	USING (org_id = stowage.current_org()) WITH CHECK (org_id = stowage.current_org());
CREATE POLICY restore_plans_tenant ON stowage.restore_plans
	USING (org_id = stowage.current_org()) WITH CHECK (org_id = stowage.current_org());
CREATE POLICY jobs_tenant ON stowage.jobs
	USING (org_id = stowage.current_org()) WITH CHECK (org_id = stowage.current_org());
CREATE POLICY job_items_tenant ON stowage.job_items
	USING (org_id = stowage.current_org()) WITH CHECK (org_id = stowage.current_org());
CREATE POLICY job_logs_tenant ON stowage.job_logs
	USING (org_id = stowage.current_org()) WITH CHECK (org_id = stowage.current_org());
GRANT SELECT, INSERT, UPDATE, DELETE ON stowage.backup_plans, stowage.backups, stowage.restore_plans,
	stowage.jobs, stowage.job_items TO stowage_app;
GRANT SELECT, INSERT ON stowage.job_logs TO stowage_app;

-- Wake the runners when a job is queued, in the same transaction as the insert.
CREATE FUNCTION stowage.jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('stowage_jobs', NEW.id::text);
	RETURN NEW;
END $$;
CREATE TRIGGER jobs_notify AFTER INSERT ON stowage.jobs FOR EACH ROW
	WHEN (NEW.state = 'queued') EXECUTE FUNCTION stowage.jobs_notify();

-- A runner takes the oldest queued job whose cluster is under its concurrency limit.
CREATE FUNCTION stowage.claim_job(p_runner text, p_cluster_limit integer)
RETURNS TABLE (job_id bigint, job_org_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(7301000002);
	RETURN QUERY
	UPDATE jobs j SET state = 'running', runner_id = p_runner, heartbeat_at = now(),
		started_at = coalesce(j.started_at, now()), attempts = j.attempts + 1
	WHERE j.id = (
		SELECT q.id FROM jobs q
		WHERE q.state = 'queued' AND NOT q.cancel_requested
		  AND (q.cluster_id IS NULL OR (SELECT count(*) FROM jobs r
			WHERE r.cluster_id = q.cluster_id AND r.state = 'running') < p_cluster_limit)
		ORDER BY q.queued_at, q.id
		LIMIT 1 FOR UPDATE SKIP LOCKED)
	RETURNING j.id, j.org_id;
END $$;

-- A runner's heartbeat for the jobs it holds.
CREATE FUNCTION stowage.runner_heartbeat(p_runner text) RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	WITH u AS (UPDATE jobs SET heartbeat_at = now() WHERE runner_id = p_runner AND state = 'running' RETURNING 1)
	SELECT count(*)::integer FROM u
$$;

-- Jobs whose runner stopped heart-beating fail with the reason, and so do the backups they were
-- writing: a half-written backup is never left looking usable.
CREATE FUNCTION stowage.reap_stale_jobs(p_timeout_seconds integer)
RETURNS TABLE (job_id bigint, job_org_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
BEGIN
	RETURN QUERY
	WITH stale AS (
		UPDATE jobs SET state = 'failed', finished_at = now(),
			error = format('the runner %s stopped heart-beating at %s; the job was stopped',
				runner_id, to_char(heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"'))
		WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => p_timeout_seconds)
		RETURNING id, org_id, backup_id
	), failed_backups AS (
		UPDATE backups b SET state = 'failed' FROM stale
		WHERE b.id = stale.backup_id AND b.state = 'running'
	)
	SELECT stale.id, stale.org_id FROM stale;
END $$;

REVOKE ALL ON FUNCTION stowage.claim_job(text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.runner_heartbeat(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.reap_stale_jobs(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stowage.claim_job(text, integer) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.runner_heartbeat(text) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.reap_stale_jobs(integer) TO stowage_app;
