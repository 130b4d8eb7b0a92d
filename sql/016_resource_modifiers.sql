-- A restore plan's resource modifiers (src/resources/resource_modifier.h): rules in Velero's v1 shape
-- that patch objects before they are created. Checked by the console when saved and by the
-- runner again when a restore starts.
ALTER TABLE stowage.restore_plans
	ADD COLUMN resource_modifiers text NOT NULL DEFAULT '' CHECK (length(resource_modifiers) <= 262144);
