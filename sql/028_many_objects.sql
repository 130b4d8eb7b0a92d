-- The job page showed a job's result counts by counting its job_items rows on every view: 30-60 ms
-- at 100,000 objects (more while the runner writes them and the statistics are stale). The job
-- row keeps the counts instead, kept by statement triggers over the rows each statement wrote
-- (one UPDATE per 500-row batch), exact under the runner's upserts (a resumed job reporting an
-- object again counts it once; failed then created counts it failed no more).
ALTER TABLE stowage.jobs
	ADD COLUMN items_recorded bigint NOT NULL DEFAULT 0,
	ADD COLUMN items_recorded_failed bigint NOT NULL DEFAULT 0;

UPDATE stowage.jobs j SET items_recorded = c.n, items_recorded_failed = c.f
FROM (SELECT job_id, count(*) AS n, count(*) FILTER (WHERE action = 'failed') AS f
      FROM stowage.job_items GROUP BY job_id) c
WHERE j.id = c.job_id;

-- n rows more (or fewer), f of them failed, per job of the statement's rows.
CREATE FUNCTION stowage.job_items_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		UPDATE stowage.jobs j SET items_recorded = j.items_recorded + c.n,
			items_recorded_failed = j.items_recorded_failed + c.f
		FROM (SELECT job_id, count(*) AS n, count(*) FILTER (WHERE action = 'failed') AS f
		      FROM new_items GROUP BY job_id) c
		WHERE j.id = c.job_id;
	ELSIF TG_OP = 'UPDATE' THEN
		UPDATE stowage.jobs j SET items_recorded_failed = j.items_recorded_failed + c.f
		FROM (SELECT job_id, sum(d) AS f FROM (
			SELECT job_id, 1 AS d FROM new_items WHERE action = 'failed'
			UNION ALL SELECT job_id, -1 FROM old_items WHERE action = 'failed') x
		      GROUP BY job_id) c
		WHERE j.id = c.job_id AND c.f <> 0;
	ELSE
		UPDATE stowage.jobs j SET items_recorded = j.items_recorded - c.n,
			items_recorded_failed = j.items_recorded_failed - c.f
		FROM (SELECT job_id, count(*) AS n, count(*) FILTER (WHERE action = 'failed') AS f
		      FROM old_items GROUP BY job_id) c
		WHERE j.id = c.job_id;
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER job_items_count_insert AFTER INSERT ON stowage.job_items
	REFERENCING NEW TABLE AS new_items FOR EACH STATEMENT EXECUTE FUNCTION stowage.job_items_count();
CREATE TRIGGER job_items_count_update AFTER UPDATE ON stowage.job_items
	REFERENCING OLD TABLE AS old_items NEW TABLE AS new_items FOR EACH STATEMENT EXECUTE FUNCTION stowage.job_items_count();
CREATE TRIGGER job_items_count_delete AFTER DELETE ON stowage.job_items
	REFERENCING OLD TABLE AS old_items FOR EACH STATEMENT EXECUTE FUNCTION stowage.job_items_count();

-- The backup's page lists its objects by type with the first 500 names of each (NAMES_SHOWN_PER_TYPE
-- in src/web/page_backups.c): read from resource_list, that unpacked the whole list on every view
-- (35 ms and more at 100,000 objects). The summary is made once, when the list is written.
ALTER TABLE stowage.backups ADD COLUMN resource_summary jsonb NOT NULL DEFAULT '{}';

CREATE FUNCTION stowage.backups_resource_summary() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.resource_summary := coalesce((
		SELECT jsonb_object_agg(t.key, jsonb_build_object('count', jsonb_array_length(t.value), 'names',
			(SELECT coalesce(jsonb_agg(n ORDER BY n), '[]') FROM (
				SELECT t.value ->> i AS n FROM generate_series(0, least(jsonb_array_length(t.value), 500) - 1) i) s)))
		FROM jsonb_each(NEW.resource_list) t WHERE jsonb_typeof(t.value) = 'array'), '{}');
	RETURN NEW;
END $$;
CREATE TRIGGER backups_resource_summary BEFORE INSERT OR UPDATE OF resource_list ON stowage.backups
	FOR EACH ROW EXECUTE FUNCTION stowage.backups_resource_summary();
UPDATE stowage.backups SET resource_list = resource_list;
