-- What a restore plan asks for beyond the defaults (issue 11). By default a restore never
-- recreates a backup's PersistentVolume objects: their backends (hostPath, NFS, iSCSI, a CSI
-- volumeHandle) may be reachable from the target and still in use by the source.
ALTER TABLE stowage.restore_plans
	-- recreate the backup's PersistentVolumes as they were and bind the claims to them:
	-- into the cluster the backup was taken in only, never over a volume another claim holds
	ADD COLUMN reattach_volumes boolean NOT NULL DEFAULT false,
	-- {"<source-ns>/<claim>": "<pv name>"}: bind a restored claim to a volume of the target
	ADD COLUMN volume_map jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(volume_map) = 'object');
