-- Which resource types a backup plan keeps: patterns "resource[.group]" with shell wildcards
-- ("deployments.apps", "*.example.com", "secrets"). No includes: every type; excludes always win.
ALTER TABLE stowage.backup_plans
	ADD COLUMN include_resources text[] NOT NULL DEFAULT '{}' CHECK (cardinality(include_resources) <= 50),
	ADD COLUMN exclude_resources text[] NOT NULL DEFAULT '{}' CHECK (cardinality(exclude_resources) <= 50);
