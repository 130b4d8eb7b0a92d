-- The rest of issue 15: a backup's objects read as YAML (a runner request), its archive
-- downloaded (a runner job whose decrypted archive waits in job_bundles for a day), a cancelled
-- restore undone (the objects it created, recorded by uid).

-- 'backup_object': the web asks a runner for one object of a backup's archive (it reads no
-- bucket itself). Added to whatever kinds the migrations before this one allow, read from the
-- constraint whether it is written IN ('a', 'b') or = ANY ('{a,b}'::text[]) (as 013 leaves it).
DO $$
DECLARE
	kinds text[];
BEGIN
	SELECT array_agg(DISTINCT k ORDER BY k) INTO kinds FROM (
		SELECT (regexp_matches(pg_get_constraintdef(c.oid), '[''{,]([a-z_]+)(?=[''},])', 'g'))[1] AS k
		FROM pg_constraint c WHERE c.conrelid = 'stowage.runner_requests'::regclass
		  AND c.conname = 'runner_requests_kind_check'
		UNION SELECT 'backup_object') s;
	ALTER TABLE stowage.runner_requests DROP CONSTRAINT runner_requests_kind_check;
	EXECUTE format('ALTER TABLE stowage.runner_requests ADD CONSTRAINT runner_requests_kind_check '
		'CHECK (kind = ANY (%L::text[]))', kinds);

	SELECT array_agg(DISTINCT k ORDER BY k) INTO kinds FROM (
		SELECT (regexp_matches(pg_get_constraintdef(c.oid), '[''{,]([a-z_]+)(?=[''},])', 'g'))[1] AS k
		FROM pg_constraint c WHERE c.conrelid = 'stowage.jobs'::regclass AND c.conname = 'jobs_kind_check'
		UNION SELECT unnest(ARRAY['download', 'undo_restore'])) s;
	ALTER TABLE stowage.jobs DROP CONSTRAINT jobs_kind_check;
	EXECUTE format('ALTER TABLE stowage.jobs ADD CONSTRAINT jobs_kind_check CHECK (kind = ANY (%L::text[]))', kinds);
END $$;

-- A download's decrypted archive is a bundle of its own job, kept a day (the runner's sweep
-- deletes expired ones); the runner bounds it (download_max_bytes), the table by 256 MiB.
ALTER TABLE stowage.job_bundles
	ADD COLUMN expires_at timestamptz NOT NULL DEFAULT now() + interval '1 day',
	DROP CONSTRAINT job_bundles_data_check,
	ADD CONSTRAINT job_bundles_data_check CHECK (length(data) <= 268435456);

-- What a restore created, by uid: an undo deletes an object only while it still has that uid
-- (a DELETE with a uid precondition), never one that was there before or replaced since.
-- 'deleted': an undo's own items.
ALTER TABLE stowage.job_items
	ADD COLUMN api_version text NOT NULL DEFAULT '',
	ADD COLUMN uid text NOT NULL DEFAULT '' CHECK (uid ~ '^[A-Za-z0-9-]{0,64}$'),
	DROP CONSTRAINT job_items_action_check,
	ADD CONSTRAINT job_items_action_check
		CHECK (action IN ('backed_up', 'created', 'updated', 'skipped', 'failed', 'deleted'));
-- One live undo per restore job.
CREATE UNIQUE INDEX jobs_one_live_undo ON stowage.jobs (((result->>'undo_of')::bigint))
	WHERE kind = 'undo_restore' AND state IN ('queued', 'running');

CREATE OR REPLACE FUNCTION stowage.sweep_runner_requests() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
BEGIN
	UPDATE runner_requests SET state = 'answered', answered_at = now(),
		error = 'No runner answered within two minutes: the runners are down or busy; try again.'
	WHERE state = 'pending' AND created_at < now() - interval '2 minutes';
	UPDATE runner_requests SET state = 'answered', answered_at = now(),
		error = 'The runner answering this stopped; try again.'
	WHERE state = 'running' AND claimed_at < now() - interval '2 minutes';
	DELETE FROM runner_requests WHERE created_at < now() - interval '1 day';
	DELETE FROM job_bundles WHERE expires_at < now();
END $$;
