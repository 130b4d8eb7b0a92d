-- What a restore plan asks for beyond the defaults (issue 11). By default a restore never
-- recreates a backup's PersistentVolume objects: their backends (hostPath, NFS, iSCSI, a CSI
-- volumeHandle) may be reachable from the target and still in use by the source.
ALTER TABLE stowage.restore_plans
	-- recreate the backup's PersistentVolumes as they were and bind the claims to them:
	-- into the cluster the backup was taken in only, never over a volume another claim holds
	ADD COLUMN reattach_volumes boolean NOT NULL DEFAULT false,
	-- {"<source-ns>/<claim>": "<pv name>"}: bind a restored claim to a volume of the target
	ADD COLUMN volume_map jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(volume_map) = 'object'),
	-- create the backup's StorageClasses that the target lacks (never a mapped one); by default
	-- a restore creates none, as a class is the cluster's, not the application's
	ADD COLUMN restore_storage_classes boolean NOT NULL DEFAULT false,
	-- keep a restored StorageClass's is-default-class annotation: by default it is removed, so
	-- that a restore never gives the target a second default class
	ADD COLUMN keep_default_class boolean NOT NULL DEFAULT false,
	-- recreate Jobs that had finished (Complete or Failed) when backed up: by default they are
	-- left out, as recreating a Job runs it again
	ADD COLUMN restore_completed_jobs boolean NOT NULL DEFAULT false;
