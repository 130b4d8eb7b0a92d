-- Restore exactly the chosen objects (issue 15) and preview resource modifiers (issue 16).

-- What the restore selection needs for each type of a backup's resource list, keyed as
-- resource_list is ("apps/v1/Deployment"): {"resource": "deployments", "group": "apps",
-- "namespaced": true}. Written by the backup job with resource_list; '{}' on backups written
-- before this migration and on imported ones (the wizard then takes typed objects only).
ALTER TABLE stowage.backups
	ADD COLUMN resource_types jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(resource_types) = 'object');

-- 'modifier_preview': the web asks a runner to apply a plan's resource modifiers to some of a
-- backup's objects (read from its archive) and answer what each rule changes. Added to whatever
-- kinds the migrations before this one allow.
DO $$
DECLARE
	kinds text[];
BEGIN
	SELECT array_agg(DISTINCT k ORDER BY k) INTO kinds FROM (
		SELECT (regexp_matches(pg_get_constraintdef(c.oid), '[''{,]([a-z_]+)(?=[''},])', 'g'))[1] AS k
		FROM pg_constraint c WHERE c.conrelid = 'stowage.runner_requests'::regclass
		  AND c.conname = 'runner_requests_kind_check'
		UNION SELECT 'modifier_preview') s;
	ALTER TABLE stowage.runner_requests DROP CONSTRAINT runner_requests_kind_check;
	EXECUTE format('ALTER TABLE stowage.runner_requests ADD CONSTRAINT runner_requests_kind_check '
		'CHECK (kind = ANY (%L::text[]))', kinds);
END $$;
