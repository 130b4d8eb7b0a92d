-- A row of one organisation can never point at a row of another: every reference between tenant
-- tables also carries the organisation, so the database itself refuses a cross-organisation id
-- whatever the code above it forgets. The single-column keys stay for their ON DELETE actions
-- (a composite key with SET NULL would also clear org_id); these check, at the statement's end.

ALTER TABLE stowage.clusters ADD CONSTRAINT clusters_org_id_key UNIQUE (org_id, id);
ALTER TABLE stowage.repositories ADD CONSTRAINT repositories_org_id_key UNIQUE (org_id, id);
ALTER TABLE stowage.backup_plans ADD CONSTRAINT backup_plans_org_id_key UNIQUE (org_id, id);
ALTER TABLE stowage.backups ADD CONSTRAINT backups_org_id_key UNIQUE (org_id, id);
ALTER TABLE stowage.restore_plans ADD CONSTRAINT restore_plans_org_id_key UNIQUE (org_id, id);
ALTER TABLE stowage.migration_plans ADD CONSTRAINT migration_plans_org_id_key UNIQUE (org_id, id);
ALTER TABLE stowage.jobs ADD CONSTRAINT jobs_org_id_key UNIQUE (org_id, id);

ALTER TABLE stowage.backup_plans
	ADD CONSTRAINT backup_plans_org_cluster_fkey FOREIGN KEY (org_id, cluster_id) REFERENCES stowage.clusters (org_id, id),
	ADD CONSTRAINT backup_plans_org_repository_fkey FOREIGN KEY (org_id, repository_id) REFERENCES stowage.repositories (org_id, id);
ALTER TABLE stowage.backups
	ADD CONSTRAINT backups_org_plan_fkey FOREIGN KEY (org_id, plan_id) REFERENCES stowage.backup_plans (org_id, id),
	ADD CONSTRAINT backups_org_cluster_fkey FOREIGN KEY (org_id, cluster_id) REFERENCES stowage.clusters (org_id, id),
	ADD CONSTRAINT backups_org_repository_fkey FOREIGN KEY (org_id, repository_id) REFERENCES stowage.repositories (org_id, id);
ALTER TABLE stowage.restore_plans
	ADD CONSTRAINT restore_plans_org_plan_fkey FOREIGN KEY (org_id, backup_plan_id) REFERENCES stowage.backup_plans (org_id, id),
	ADD CONSTRAINT restore_plans_org_backup_fkey FOREIGN KEY (org_id, backup_id) REFERENCES stowage.backups (org_id, id),
	ADD CONSTRAINT restore_plans_org_cluster_fkey FOREIGN KEY (org_id, target_cluster_id) REFERENCES stowage.clusters (org_id, id);
ALTER TABLE stowage.migration_plans
	ADD CONSTRAINT migration_plans_org_source_fkey FOREIGN KEY (org_id, source_cluster_id) REFERENCES stowage.clusters (org_id, id),
	ADD CONSTRAINT migration_plans_org_target_fkey FOREIGN KEY (org_id, target_cluster_id) REFERENCES stowage.clusters (org_id, id),
	ADD CONSTRAINT migration_plans_org_repository_fkey FOREIGN KEY (org_id, repository_id) REFERENCES stowage.repositories (org_id, id);
ALTER TABLE stowage.jobs
	ADD CONSTRAINT jobs_org_backup_plan_fkey FOREIGN KEY (org_id, backup_plan_id) REFERENCES stowage.backup_plans (org_id, id),
	ADD CONSTRAINT jobs_org_restore_plan_fkey FOREIGN KEY (org_id, restore_plan_id) REFERENCES stowage.restore_plans (org_id, id),
	ADD CONSTRAINT jobs_org_backup_fkey FOREIGN KEY (org_id, backup_id) REFERENCES stowage.backups (org_id, id),
	ADD CONSTRAINT jobs_org_cluster_fkey FOREIGN KEY (org_id, cluster_id) REFERENCES stowage.clusters (org_id, id),
	ADD CONSTRAINT jobs_org_migration_plan_fkey FOREIGN KEY (org_id, migration_plan_id) REFERENCES stowage.migration_plans (org_id, id);
ALTER TABLE stowage.job_items
	ADD CONSTRAINT job_items_org_job_fkey FOREIGN KEY (org_id, job_id) REFERENCES stowage.jobs (org_id, id);
ALTER TABLE stowage.job_logs
	ADD CONSTRAINT job_logs_org_job_fkey FOREIGN KEY (org_id, job_id) REFERENCES stowage.jobs (org_id, id);
