-- How much one organisation may keep. Every organisation shares one database: without a bound,
-- a tenant's script posting forms (30 a minute from each address it has) fills the disk for
-- everyone, and its own list pages, which show every row, grow without end. The bounds are far
-- above what a platform team keeps (docs/security.md): they stop abuse, not use.
--
-- A row over its table's bound is refused with SQLSTATE SWQ01 and a sentence naming the bound;
-- the web answers it as 409 with that sentence (respond_db_error). Inserts of one organisation
-- into one table take a transaction lock first, so two at once cannot both pass the last place.

CREATE FUNCTION stowage.org_quota() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	most bigint := TG_ARGV[0]::bigint;
	have bigint;
BEGIN
	PERFORM pg_advisory_xact_lock(hashtext('org_quota ' || TG_TABLE_NAME), (NEW.org_id % 2147483647)::integer);
	EXECUTE format('SELECT count(*) FROM stowage.%I WHERE org_id = $1', TG_TABLE_NAME) INTO have USING NEW.org_id;
	IF have >= most THEN
		RAISE EXCEPTION 'This organisation has % %, the most it may have: delete one to add another.',
			have, TG_ARGV[1] USING ERRCODE = 'SWQ01';
	END IF;
	RETURN NEW;
END $$;
REVOKE ALL ON FUNCTION stowage.org_quota() FROM PUBLIC;

CREATE TRIGGER clusters_quota BEFORE INSERT ON stowage.clusters
	FOR EACH ROW EXECUTE FUNCTION stowage.org_quota('200', 'clusters');
CREATE TRIGGER repositories_quota BEFORE INSERT ON stowage.repositories
	FOR EACH ROW EXECUTE FUNCTION stowage.org_quota('200', 'repositories');
CREATE TRIGGER backup_plans_quota BEFORE INSERT ON stowage.backup_plans
	FOR EACH ROW EXECUTE FUNCTION stowage.org_quota('2000', 'backup plans');
CREATE TRIGGER restore_plans_quota BEFORE INSERT ON stowage.restore_plans
	FOR EACH ROW EXECUTE FUNCTION stowage.org_quota('2000', 'restore plans');
CREATE TRIGGER migration_plans_quota BEFORE INSERT ON stowage.migration_plans
	FOR EACH ROW EXECUTE FUNCTION stowage.org_quota('1000', 'migration plans');
CREATE TRIGGER hooks_quota BEFORE INSERT ON stowage.hooks
	FOR EACH ROW EXECUTE FUNCTION stowage.org_quota('500', 'hooks');
CREATE TRIGGER api_tokens_quota BEFORE INSERT ON stowage.api_tokens
	FOR EACH ROW EXECUTE FUNCTION stowage.org_quota('200', 'API tokens (revoked ones count until deleted)');
CREATE TRIGGER invitations_quota BEFORE INSERT ON stowage.invitations
	FOR EACH ROW EXECUTE FUNCTION stowage.org_quota('500', 'open invitations');

-- A hook keeps every version of its script (up to 256 KiB each): the bound is on the bytes of
-- all of an organisation's versions, 64 MiB (hundreds of saves of a large script).
CREATE FUNCTION stowage.hook_versions_quota() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	kept bigint;
BEGIN
	PERFORM pg_advisory_xact_lock(hashtext('org_quota hook_versions'), (NEW.org_id % 2147483647)::integer);
	SELECT coalesce(sum(octet_length(source)), 0) INTO kept FROM stowage.hook_versions WHERE org_id = NEW.org_id;
	IF kept + octet_length(NEW.source) > 64 * 1024 * 1024 THEN
		RAISE EXCEPTION 'This organisation''s hooks keep % MiB of script versions, and 64 MiB is the most: '
			'delete hooks it no longer needs to save this one.', kept / (1024 * 1024) USING ERRCODE = 'SWQ01';
	END IF;
	RETURN NEW;
END $$;
REVOKE ALL ON FUNCTION stowage.hook_versions_quota() FROM PUBLIC;
CREATE TRIGGER hook_versions_quota BEFORE INSERT ON stowage.hook_versions
	FOR EACH ROW EXECUTE FUNCTION stowage.hook_versions_quota();
CREATE INDEX hook_versions_org ON stowage.hook_versions (org_id);
