-- The one job queue (src/core/job_queue.c) and the one shape of a job's phases.
-- One live sync per repository, however many ask (job_enqueue's ON CONFLICT DO NOTHING), as
-- for deletes and prunes (013).
CREATE UNIQUE INDEX jobs_one_live_sync ON stowage.jobs (repository_id)
	WHERE kind = 'sync' AND state IN ('queued', 'running');

-- jobs.result phases have one shape for every kind (docs/jobs.md): duration_ms, where restores
-- and migrations wrote seconds before.
DO $$
DECLARE
	k text;
BEGIN
	FOREACH k IN ARRAY ARRAY['phases', 'restore_phases'] LOOP
		UPDATE stowage.jobs SET result = result || jsonb_build_object(k, (
			SELECT coalesce(jsonb_agg(CASE WHEN p ? 'seconds' AND NOT p ? 'duration_ms'
				THEN (p - 'seconds') || jsonb_build_object('duration_ms', round((p->>'seconds')::numeric * 1000))
				ELSE p END ORDER BY n), '[]'::jsonb)
			FROM jsonb_array_elements(result->k) WITH ORDINALITY AS e(p, n)))
			WHERE jsonb_typeof(result->k) = 'array';
	END LOOP;
END $$;
