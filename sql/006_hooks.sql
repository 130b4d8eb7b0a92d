-- The hook library (manual: hooks): a tenant's named Lua scripts, every saved version kept.
-- Plans name library hooks by id in their hooks arrays; the runner reads the current version
-- when the job runs. A version belongs to its hook's organisation: the foreign key includes
-- org_id, so no tenant can attach rows to another tenant's hook (foreign keys bypass RLS).

CREATE TABLE stowage.hooks (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	name text NOT NULL CHECK (name ~ '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'),
	description text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
	current_version integer NOT NULL DEFAULT 1 CHECK (current_version >= 1),
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (org_id, name),
	UNIQUE (org_id, id)
);

CREATE TABLE stowage.hook_versions (
	org_id bigint NOT NULL DEFAULT stowage.current_org(),
	hook_id bigint NOT NULL,
	version integer NOT NULL CHECK (version >= 1),
	source text NOT NULL CHECK (length(source) BETWEEN 1 AND 262144),
	created_by bigint DEFAULT stowage.current_app_user() REFERENCES stowage.users ON DELETE SET NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (hook_id, version),
	FOREIGN KEY (org_id, hook_id) REFERENCES stowage.hooks (org_id, id) ON DELETE CASCADE
);

ALTER TABLE stowage.hooks ENABLE ROW LEVEL SECURITY;
ALTER TABLE stowage.hook_versions ENABLE ROW LEVEL SECURITY;
CREATE POLICY hooks_tenant ON stowage.hooks
	USING (org_id = stowage.current_org()) WITH CHECK (org_id = stowage.current_org());
-- Versions are history: added, read, removed with their hook, never changed.
CREATE POLICY hook_versions_read ON stowage.hook_versions FOR SELECT USING (org_id = stowage.current_org());
CREATE POLICY hook_versions_add ON stowage.hook_versions FOR INSERT WITH CHECK (org_id = stowage.current_org());
GRANT SELECT, INSERT, UPDATE, DELETE ON stowage.hooks TO stowage_app;
GRANT SELECT, INSERT ON stowage.hook_versions TO stowage_app;
