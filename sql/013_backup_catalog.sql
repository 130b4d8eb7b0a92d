-- The backup catalog (issue 15): a backup's row says everything its pages show without reading
-- the bucket (the web workers never connect to a tenant's S3), keeps its plan's and cluster's
-- names when those rows are deleted, and is deleted through one path, a 'delete_backup' job of
-- the runner, whether a person pressed Delete or retention expired it. Prune runs as a job too.

-- What the backup holds, written by the backup job when it completes (the same documents as the
-- repository's <name>-resource-list.json.gz and <name>-volumes.json), and the names it was taken
-- under, which outlive a deleted plan or cluster.
ALTER TABLE stowage.backups
	ADD COLUMN plan_name text NOT NULL DEFAULT '',
	ADD COLUMN cluster_name text NOT NULL DEFAULT '',
	-- {"<group>/<version>/<Kind>": ["ns/name", ...]}, as Velero's resource list
	ADD COLUMN resource_list jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(resource_list) = 'object'),
	-- the volumes_out entries of docs/volumes.md
	ADD COLUMN volumes jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(volumes) = 'array'),
	-- the hooks that ran and their results: [{"name","phase","state","duration_ms","error"}]
	ADD COLUMN hooks jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(hooks) = 'array'),
	ADD COLUMN bytes_new bigint NOT NULL DEFAULT 0,
	-- why a 'deleting' backup is not gone yet (the last delete attempt's failure), in words
	ADD COLUMN delete_error text NOT NULL DEFAULT '',
	-- the last verification: '' never, 'ok', or 'damaged' with the objects and files it names
	ADD COLUMN verify_state text NOT NULL DEFAULT '' CHECK (verify_state IN ('', 'ok', 'damaged')),
	ADD COLUMN verified_at timestamptz,
	ADD COLUMN verify_message text NOT NULL DEFAULT '';

UPDATE stowage.backups b SET plan_name = p.name FROM stowage.backup_plans p WHERE p.id = b.plan_id;
UPDATE stowage.backups b SET cluster_name = c.name FROM stowage.clusters c WHERE c.id = b.cluster_id;

CREATE INDEX backups_org_started_idx ON stowage.backups (org_id, started_at DESC, id DESC);

-- Repository upkeep as the repository page shows it.
ALTER TABLE stowage.repositories
	-- set when a deleted backup released volume data; the scheduler queues a prune once the
	-- repository is idle, and the prune clears it
	ADD COLUMN prune_wanted boolean NOT NULL DEFAULT false,
	ADD COLUMN last_prune_at timestamptz,
	ADD COLUMN last_prune_bytes_freed bigint NOT NULL DEFAULT 0,
	ADD COLUMN bytes_freed_total bigint NOT NULL DEFAULT 0,
	ADD COLUMN last_verified_at timestamptz,
	-- the scheduled verification: when it last ran, and what it found
	ADD COLUMN verify_scheduled_at timestamptz,
	ADD COLUMN last_verify_message text NOT NULL DEFAULT '';

-- The job kinds of this issue, added to whatever kinds the migrations before this one allow
-- (another migration may have added its own: this keeps them).
DO $$
DECLARE
	kinds text[];
BEGIN
	SELECT array_agg(DISTINCT k ORDER BY k) INTO kinds FROM (
		SELECT (regexp_matches(pg_get_constraintdef(c.oid), '''([a-z_]+)''', 'g'))[1] AS k
		FROM pg_constraint c WHERE c.conrelid = 'stowage.jobs'::regclass AND c.conname = 'jobs_kind_check'
		UNION SELECT unnest(ARRAY['delete_backup', 'prune', 'verify', 'sync', 'diagnostics'])) s;
	ALTER TABLE stowage.jobs DROP CONSTRAINT jobs_kind_check;
	EXECUTE format('ALTER TABLE stowage.jobs ADD CONSTRAINT jobs_kind_check CHECK (kind = ANY (%L::text[]))', kinds);
END $$;
ALTER TABLE stowage.jobs ADD COLUMN repository_id bigint REFERENCES stowage.repositories ON DELETE SET NULL;
ALTER TABLE stowage.jobs ADD CONSTRAINT jobs_org_repository_fkey
	FOREIGN KEY (org_id, repository_id) REFERENCES stowage.repositories (org_id, id);
-- One live delete per backup and one live prune per repository, however many ask.
CREATE UNIQUE INDEX jobs_one_live_delete ON stowage.jobs (backup_id)
	WHERE kind = 'delete_backup' AND state IN ('queued', 'running');
CREATE UNIQUE INDEX jobs_one_live_prune ON stowage.jobs (repository_id)
	WHERE kind = 'prune' AND state IN ('queued', 'running');

-- Retention: the backups the scheduler must queue a delete for: expired ones, and those left
-- 'deleting' by a delete that failed (retried once its last attempt is 10 minutes old).
CREATE FUNCTION stowage.scheduler_backups_to_delete(p_now timestamptz)
RETURNS TABLE (backup_id bigint, backup_org_id bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	SELECT b.id, b.org_id FROM backups b
	WHERE ((b.expires_at <= p_now AND b.state IN ('completed', 'partially_failed', 'failed')) OR b.state = 'deleting')
	  AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.backup_id = b.id AND j.kind = 'delete_backup'
			  AND (j.state IN ('queued', 'running') OR j.finished_at > p_now - interval '10 minutes'))
	ORDER BY b.expires_at NULLS FIRST, b.id
$$;

-- Repositories that want a prune and are idle: no backup, restore, delete or prune of theirs
-- is queued or running.
CREATE FUNCTION stowage.scheduler_repositories_to_prune()
RETURNS TABLE (repository_id bigint, repository_org_id bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	SELECT r.id, r.org_id FROM repositories r
	WHERE r.prune_wanted
	  AND NOT EXISTS (SELECT 1 FROM jobs j
		LEFT JOIN backup_plans p ON p.id = j.backup_plan_id
		LEFT JOIN migration_plans m ON m.id = j.migration_plan_id
		LEFT JOIN backups b ON b.id = j.backup_id
		WHERE j.state IN ('queued', 'running')
		  AND r.id IN (j.repository_id, p.repository_id, m.repository_id, b.repository_id))
	ORDER BY r.id
$$;

REVOKE ALL ON FUNCTION stowage.scheduler_backups_to_delete(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.scheduler_repositories_to_prune() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stowage.scheduler_backups_to_delete(timestamptz) TO stowage_scheduler;
GRANT EXECUTE ON FUNCTION stowage.scheduler_repositories_to_prune() TO stowage_scheduler;

-- Re-import (disaster recovery). Every key of a repository's objects derives from the master key
-- and the repository's id (objects, the mover's data and chunk ids: docs/security.md), and a new
-- database numbers its rows anew. So a repository has a seal id, the id its objects are sealed
-- under: NULL means its own id (every repository made before this migration, unchanged). A Sync
-- of a repository that holds no backup yet may adopt the seal id its bucket's backups
-- authenticate under with this deployment's master key, once no other repository of this
-- database has that identity; the id sequence then moves past it, so no new row takes it.
ALTER TABLE stowage.repositories
	ADD COLUMN seal_id bigint CHECK (seal_id > 0),
	ADD COLUMN last_sync_at timestamptz,
	ADD COLUMN last_sync_message text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX repositories_seal_identity ON stowage.repositories ((coalesce(seal_id, id)));
ALTER TABLE stowage.backups ADD COLUMN imported boolean NOT NULL DEFAULT false;

CREATE FUNCTION stowage.repository_adopt_seal_id(p_repository bigint, p_seal bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
DECLARE
	seq text := pg_get_serial_sequence('stowage.repositories', 'id');
	last bigint;
BEGIN
	PERFORM 1 FROM repositories WHERE id = p_repository AND org_id = current_org() FOR UPDATE;
	IF NOT FOUND THEN
		RETURN 'the repository no longer exists';
	END IF;
	IF EXISTS (SELECT 1 FROM backups WHERE repository_id = p_repository) THEN
		RETURN 'it already holds backups sealed under its own key';
	END IF;
	IF EXISTS (SELECT 1 FROM repositories WHERE coalesce(seal_id, id) = p_seal AND id <> p_repository) THEN
		RETURN format('another repository of this Stowage still holds key %s: sync that one', p_seal);
	END IF;
	UPDATE repositories SET seal_id = p_seal WHERE id = p_repository;
	EXECUTE format('SELECT last_value FROM %s', seq) INTO last;
	PERFORM setval(seq, greatest(last, p_seal));
	RETURN '';
END $$;
REVOKE ALL ON FUNCTION stowage.repository_adopt_seal_id(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stowage.repository_adopt_seal_id(bigint, bigint) TO stowage_runner;

-- Scheduled verification: repositories holding a finished backup whose last scheduled check is
-- older than the interval, and idle (as for prune).
CREATE FUNCTION stowage.scheduler_repositories_to_verify(p_now timestamptz, p_interval_s integer)
RETURNS TABLE (repository_id bigint, repository_org_id bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	SELECT r.id, r.org_id FROM repositories r
	WHERE (r.verify_scheduled_at IS NULL OR r.verify_scheduled_at <= p_now - make_interval(secs => p_interval_s))
	  AND EXISTS (SELECT 1 FROM backups b WHERE b.repository_id = r.id AND b.state IN ('completed', 'partially_failed'))
	  AND NOT EXISTS (SELECT 1 FROM jobs j
		LEFT JOIN backup_plans p ON p.id = j.backup_plan_id
		LEFT JOIN migration_plans m ON m.id = j.migration_plan_id
		LEFT JOIN backups b ON b.id = j.backup_id
		WHERE j.state IN ('queued', 'running')
		  AND r.id IN (j.repository_id, p.repository_id, m.repository_id, b.repository_id))
	ORDER BY r.verify_scheduled_at NULLS FIRST, r.id
$$;
REVOKE ALL ON FUNCTION stowage.scheduler_repositories_to_verify(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stowage.scheduler_repositories_to_verify(timestamptz, integer) TO stowage_scheduler;

-- Restoring part of a backup: {"include_types": ["configmaps", "deployments.apps"],
-- "exclude_types": [...], "label_selector": "app=shop", "objects": ["configmaps/shop/settings"]};
-- {} restores everything, as before.
ALTER TABLE stowage.restore_plans
	ADD COLUMN selection jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(selection) = 'object');

-- Diagnostics bundles (the manual's 9.1 "log collection: to be provided"): a tar.gz a
-- 'diagnostics' job of the runner builds for another job, kept here so that any web worker can
-- serve it without reading a runner's disk. Bounded by the runner (16 MiB).
CREATE TABLE stowage.job_bundles (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	job_id bigint NOT NULL REFERENCES stowage.jobs ON DELETE CASCADE,
	created_at timestamptz NOT NULL DEFAULT now(),
	data bytea NOT NULL CHECK (length(data) <= 16777216)
);
CREATE INDEX job_bundles_job_idx ON stowage.job_bundles (job_id, id DESC);
ALTER TABLE stowage.job_bundles ADD CONSTRAINT job_bundles_org_job_fkey
	FOREIGN KEY (org_id, job_id) REFERENCES stowage.jobs (org_id, id);
ALTER TABLE stowage.job_bundles ENABLE ROW LEVEL SECURITY;
CREATE POLICY job_bundles_tenant ON stowage.job_bundles
	USING (org_id = stowage.current_org()) WITH CHECK (org_id = stowage.current_org());
GRANT SELECT, INSERT, DELETE ON stowage.job_bundles TO stowage_app;
