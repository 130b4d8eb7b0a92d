-- Migration plans (manual 7): move an application's namespaces from one cluster to another
-- through a repository, with a target StorageClass per PVC. A migration job is kind 'migrate'.

CREATE TABLE stowage.migration_plans (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	name text NOT NULL CHECK (name ~ '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'),
	source_cluster_id bigint NOT NULL REFERENCES stowage.clusters ON DELETE RESTRICT,
	target_cluster_id bigint NOT NULL REFERENCES stowage.clusters ON DELETE RESTRICT,
	repository_id bigint NOT NULL REFERENCES stowage.repositories ON DELETE RESTRICT,
	namespaces text[] NOT NULL CHECK (cardinality(namespaces) BETWEEN 1 AND 100),
	-- {"<namespace>/<pvc>": "<target storage class>"}
	storage_classes jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(storage_classes) = 'object'),
	-- false: stop the source application first (consistent); true: crash-consistent copy
	keep_source_running boolean NOT NULL DEFAULT false,
	hooks jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(hooks) = 'array'),
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (org_id, name),
	CHECK (source_cluster_id <> target_cluster_id)
);
ALTER TABLE stowage.migration_plans ENABLE ROW LEVEL SECURITY;
CREATE POLICY migration_plans_tenant ON stowage.migration_plans
	USING (org_id = stowage.current_org()) WITH CHECK (org_id = stowage.current_org());
GRANT SELECT, INSERT, UPDATE, DELETE ON stowage.migration_plans TO stowage_app;

ALTER TABLE stowage.jobs ADD COLUMN migration_plan_id bigint REFERENCES stowage.migration_plans ON DELETE SET NULL;
CREATE INDEX jobs_migration_plan_idx ON stowage.jobs (migration_plan_id, queued_at DESC);
