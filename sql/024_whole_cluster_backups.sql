-- A whole-cluster backup plan (issue 16): every namespace of its cluster but kube-system,
-- kube-public and kube-node-lease (added when namespaces names them) and every cluster-scoped
-- type but the noise (docs/jobs.md). Its namespaces may then be empty.
ALTER TABLE stowage.backup_plans ADD COLUMN whole_cluster boolean NOT NULL DEFAULT false;
ALTER TABLE stowage.backup_plans DROP CONSTRAINT backup_plans_namespaces_check;
ALTER TABLE stowage.backup_plans ADD CONSTRAINT backup_plans_namespaces_check
	CHECK (cardinality(namespaces) <= 100 AND (whole_cluster OR cardinality(namespaces) >= 1));
