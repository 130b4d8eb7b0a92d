-- Clusters and backup repositories. Secrets (the cluster's bearer token, the repository's secret
-- key) are stored only as AES-256-GCM ciphertext sealed by the programs under a key derived from
-- the master key, which is never in the database; key_id names that key so rotation knows what
-- to re-seal. The organisation is bound into the ciphertext: a row copied to another tenant does
-- not decrypt.

CREATE TABLE stowage.clusters (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	name text NOT NULL CHECK (name ~ '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'),
	api_url text NOT NULL CHECK (api_url ~ '^https?://' AND length(api_url) <= 2048),
	ca_pem text CHECK (length(ca_pem) <= 65536),
	token_enc bytea NOT NULL,
	key_id text NOT NULL,
	status text NOT NULL DEFAULT 'unknown' CHECK (status IN ('unknown', 'connected', 'error')),
	status_message text NOT NULL DEFAULT '',
	k8s_version text NOT NULL DEFAULT '',
	last_checked_at timestamptz,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (org_id, name)
);

CREATE TABLE stowage.repositories (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	name text NOT NULL CHECK (name ~ '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'),
	kind text NOT NULL CHECK (kind IN ('s3', 's3-compatible')),
	bucket text NOT NULL CHECK (bucket ~ '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$'),
	region text NOT NULL DEFAULT 'us-east-1' CHECK (region ~ '^[a-z0-9-]{1,64}$'),
	endpoint text CHECK (endpoint ~ '^https?://' AND length(endpoint) <= 2048),
	prefix text NOT NULL DEFAULT '' CHECK (prefix !~ '^/' AND length(prefix) <= 512),
	path_style boolean NOT NULL DEFAULT true,
	access_key text NOT NULL CHECK (length(access_key) BETWEEN 1 AND 256),
	secret_key_enc bytea NOT NULL,
	key_id text NOT NULL,
	status text NOT NULL DEFAULT 'unknown' CHECK (status IN ('unknown', 'connected', 'error')),
	status_message text NOT NULL DEFAULT '',
	last_checked_at timestamptz,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (org_id, name),
	CHECK (kind = 's3' OR endpoint IS NOT NULL)
);

ALTER TABLE stowage.clusters ENABLE ROW LEVEL SECURITY;
ALTER TABLE stowage.repositories ENABLE ROW LEVEL SECURITY;
CREATE POLICY clusters_tenant ON stowage.clusters
	USING (org_id = stowage.current_org()) WITH CHECK (org_id = stowage.current_org());
CREATE POLICY repositories_tenant ON stowage.repositories
	USING (org_id = stowage.current_org()) WITH CHECK (org_id = stowage.current_org());
GRANT SELECT, INSERT, UPDATE, DELETE ON stowage.clusters, stowage.repositories TO stowage_app;
