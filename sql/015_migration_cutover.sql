-- Safer migration (issue 16): how long a migration waits for the application to be ready in the
-- target (Deployments available, StatefulSets ready) before it scales the target back to zero,
-- starts the source again and fails. A migration job's mode (full, pre-copy, cutover, test) is
-- its input, result->>'mode' (docs/migration.md); the last pre-copy is found among the plan's jobs.
ALTER TABLE stowage.migration_plans
	ADD COLUMN ready_timeout_seconds integer NOT NULL DEFAULT 300 CHECK (ready_timeout_seconds BETWEEN 10 AND 3600);
CREATE INDEX jobs_migration_mode_idx ON stowage.jobs (migration_plan_id, (result->>'mode'), finished_at DESC)
	WHERE kind = 'migrate';
