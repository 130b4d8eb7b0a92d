-- API tokens: a pipeline's credential for the JSON API (Authorization: Bearer), per organisation.
--
--   * An admin creates one with a name, a role and an optional expiry; the secret is shown once
--     and only its SHA-256 is kept (the secret is 32 random bytes: a fast hash is enough).
--   * A token acts for the admin who created it (so created_by, the audit log's user and the
--     definer functions that check a member keep working), with the lesser of its own role and
--     that person's current role: demoting or removing its creator narrows or ends the token.
--   * Every use is in the audit log (token.use), written by the lookup itself, so that a request
--     whose handler fails or is refused is recorded too; a revoked or expired token that is
--     presented is recorded as token.refused.
--   * The web role sees no hash (column grants) and changes nothing but revoked_at.

CREATE TABLE stowage.api_tokens (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
	role text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
	token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
	-- the token's first characters, shown in the list so that a person can tell tokens apart
	prefix text NOT NULL CHECK (prefix ~ '^stw_[A-Za-z0-9_-]{4}$'),
	created_by bigint NOT NULL DEFAULT stowage.current_app_user() REFERENCES stowage.users ON DELETE CASCADE,
	created_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz,
	last_used_at timestamptz,
	revoked_at timestamptz,
	CHECK (expires_at IS NULL OR expires_at > created_at)
);
CREATE INDEX api_tokens_org_idx ON stowage.api_tokens (org_id, created_at DESC);

ALTER TABLE stowage.api_tokens ENABLE ROW LEVEL SECURITY;
CREATE POLICY api_tokens_read ON stowage.api_tokens FOR SELECT USING (org_id = stowage.current_org());
-- Only an admin of the organisation creates one, for themself.
CREATE POLICY api_tokens_create ON stowage.api_tokens FOR INSERT WITH CHECK (
	org_id = stowage.current_org() AND created_by = stowage.current_app_user()
	AND EXISTS (SELECT 1 FROM stowage.memberships m WHERE m.org_id = stowage.current_org()
		AND m.user_id = stowage.current_app_user() AND m.role = 'admin'));
CREATE POLICY api_tokens_revoke ON stowage.api_tokens FOR UPDATE
	USING (org_id = stowage.current_org()) WITH CHECK (org_id = stowage.current_org());

GRANT SELECT (id, org_id, name, role, prefix, created_by, created_at, expires_at, last_used_at, revoked_at)
	ON stowage.api_tokens TO stowage_app;
GRANT INSERT (name, role, token_hash, prefix, expires_at) ON stowage.api_tokens TO stowage_app;
GRANT UPDATE (revoked_at) ON stowage.api_tokens TO stowage_app;

CREATE FUNCTION stowage.role_rank(p_role text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE p_role WHEN 'admin' THEN 3 WHEN 'operator' THEN 2 WHEN 'viewer' THEN 1 ELSE 0 END
$$;

-- A bearer request: the identity its token stands for, or no row (unknown, revoked, expired, or
-- its creator no longer a member). Marks the token used and records the use in the audit log.
CREATE FUNCTION stowage.api_token_use(p_token_hash bytea, p_method text, p_path text)
RETURNS TABLE (user_id bigint, org_id bigint, role text, token_id bigint, token_name text,
	email text, display_name text, org_name text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
DECLARE
	t api_tokens%ROWTYPE;
	v_role text;
BEGIN
	SELECT * INTO t FROM api_tokens a WHERE a.token_hash = p_token_hash;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	SELECT m.role INTO v_role FROM memberships m WHERE m.org_id = t.org_id AND m.user_id = t.created_by;
	IF t.revoked_at IS NOT NULL OR (t.expires_at IS NOT NULL AND t.expires_at <= now()) OR v_role IS NULL THEN
		INSERT INTO audit_log (org_id, user_id, action, target, detail)
			VALUES (t.org_id, t.created_by, 'token.refused', t.name, jsonb_build_object(
				'token_id', t.id, 'method', left(p_method, 16), 'path', left(p_path, 200),
				'reason', CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked'
					WHEN v_role IS NULL THEN 'creator no longer a member' ELSE 'expired' END));
		RETURN;
	END IF;
	UPDATE api_tokens a SET last_used_at = now() WHERE a.id = t.id;
	INSERT INTO audit_log (org_id, user_id, action, target, detail)
		VALUES (t.org_id, t.created_by, 'token.use', t.name, jsonb_build_object(
			'token_id', t.id, 'method', left(p_method, 16), 'path', left(p_path, 200)));
	RETURN QUERY SELECT t.created_by, t.org_id,
		CASE WHEN role_rank(t.role) <= role_rank(v_role) THEN t.role ELSE v_role END,
		t.id, t.name, u.email, u.display_name, o.name
	FROM users u, orgs o WHERE u.id = t.created_by AND o.id = t.org_id;
END $$;

REVOKE ALL ON FUNCTION stowage.api_token_use(bytea, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stowage.api_token_use(bytea, text, text) TO stowage_app;

-- Metrics for the deployment's operator (stowage-metrics, docs/operations.md): aggregates over
-- every organisation, never a tenant's name, plan name or object name. The role stowage_metrics
-- may call metrics_sample() and nothing else: no table grant, so it reads no tenant row.

-- Every runner's last heartbeat, idle or not, so that a dead runner shows before a job is stuck.
CREATE TABLE stowage.runners (
	runner_id text PRIMARY KEY CHECK (length(runner_id) BETWEEN 1 AND 200),
	started_at timestamptz NOT NULL DEFAULT now(),
	last_beat_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE stowage.runners ENABLE ROW LEVEL SECURITY;

CREATE OR REPLACE FUNCTION stowage.runner_heartbeat(p_runner text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
DECLARE
	v_jobs integer;
BEGIN
	INSERT INTO runners (runner_id) VALUES (left(p_runner, 200))
		ON CONFLICT (runner_id) DO UPDATE SET last_beat_at = now();
	UPDATE jobs SET heartbeat_at = now() WHERE runner_id = p_runner AND state = 'running';
	GET DIAGNOSTICS v_jobs = ROW_COUNT;
	RETURN v_jobs;
END $$;

-- One row per sample: metric, up to two label values (their meaning fixed per metric, from
-- closed sets: job kinds and states, hook phases and states, runner ids, database roles), a
-- histogram bucket's upper bound, the value. stowage-metrics writes the text format.
CREATE FUNCTION stowage.metrics_sample()
RETURNS TABLE (metric text, label_a text, label_b text, le text, value double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	WITH kinds(kind) AS (VALUES ('backup'), ('restore'), ('migrate')),
	states(state) AS (VALUES ('queued'), ('running'), ('succeeded'), ('partially_failed'), ('failed'), ('cancelled')),
	finished AS (
		SELECT j.kind, j.state, extract(epoch FROM j.finished_at - j.started_at) AS seconds,
			j.bytes_done, j.items_done, j.items_failed, j.result
		FROM jobs j
		WHERE j.state IN ('succeeded', 'partially_failed', 'failed', 'cancelled')
		  AND j.started_at IS NOT NULL AND j.finished_at IS NOT NULL),
	job_buckets(le) AS (VALUES (1), (5), (15), (30), (60), (120), (300), (600), (1800), (3600), (7200), (21600)),
	hooks AS (
		SELECT h->>'phase' AS phase, CASE WHEN h->>'state' = 'failed' THEN 'failed' ELSE 'succeeded' END AS state,
			coalesce((h->>'duration_ms')::double precision, 0) / 1000 AS seconds
		FROM finished f, jsonb_array_elements(CASE WHEN jsonb_typeof(f.result->'hooks') = 'array'
			THEN f.result->'hooks' ELSE '[]' END) h
		WHERE h->>'phase' IN ('pre-backup', 'post-backup', 'post-restore')),
	hook_buckets(le) AS (VALUES (0.1), (0.5), (1), (5), (15), (60), (300), (1800))
	SELECT 'jobs', k.kind, s.state, '', (SELECT count(*) FROM jobs j WHERE j.kind = k.kind AND j.state = s.state)::double precision
	FROM kinds k, states s
	UNION ALL
	SELECT 'job_duration_bucket', k.kind, s.state, b.le::text,
		(SELECT count(*) FROM finished f WHERE f.kind = k.kind AND f.state = s.state AND f.seconds <= b.le)::double precision
	FROM kinds k, states s, job_buckets b WHERE s.state NOT IN ('queued', 'running')
	UNION ALL
	SELECT 'job_duration_count', k.kind, s.state, '',
		(SELECT count(*) FROM finished f WHERE f.kind = k.kind AND f.state = s.state)::double precision
	FROM kinds k, states s WHERE s.state NOT IN ('queued', 'running')
	UNION ALL
	SELECT 'job_duration_sum', k.kind, s.state, '',
		(SELECT coalesce(sum(f.seconds), 0) FROM finished f WHERE f.kind = k.kind AND f.state = s.state)::double precision
	FROM kinds k, states s WHERE s.state NOT IN ('queued', 'running')
	UNION ALL
	SELECT 'job_bytes', k.kind, '', '', (SELECT coalesce(sum(f.bytes_done), 0) FROM finished f WHERE f.kind = k.kind)::double precision
	FROM kinds k
	UNION ALL
	SELECT 'job_objects', k.kind, '', '', (SELECT coalesce(sum(f.items_done), 0) FROM finished f WHERE f.kind = k.kind)::double precision
	FROM kinds k
	UNION ALL
	SELECT 'job_objects_failed', k.kind, '', '', (SELECT coalesce(sum(f.items_failed), 0) FROM finished f WHERE f.kind = k.kind)::double precision
	FROM kinds k
	UNION ALL
	SELECT 'queue_depth', '', '', '', (SELECT count(*) FROM jobs j WHERE j.state = 'queued')::double precision
	UNION ALL
	SELECT 'queue_oldest_age', '', '', '',
		coalesce((SELECT extract(epoch FROM now() - min(j.queued_at)) FROM jobs j WHERE j.state = 'queued'), 0)::double precision
	UNION ALL
	SELECT 'runner_last_heartbeat', r.runner_id, '', '', extract(epoch FROM r.last_beat_at)::double precision
	FROM runners r WHERE r.last_beat_at > now() - interval '1 day'
	UNION ALL
	SELECT 'hook_duration_bucket', p.phase, s.state, b.le::text,
		(SELECT count(*) FROM hooks h WHERE h.phase = p.phase AND h.state = s.state AND h.seconds <= b.le)::double precision
	FROM (VALUES ('pre-backup'), ('post-backup'), ('post-restore')) p(phase),
		(VALUES ('succeeded'), ('failed')) s(state), hook_buckets b
	UNION ALL
	SELECT 'hook_duration_count', p.phase, s.state, '',
		(SELECT count(*) FROM hooks h WHERE h.phase = p.phase AND h.state = s.state)::double precision
	FROM (VALUES ('pre-backup'), ('post-backup'), ('post-restore')) p(phase), (VALUES ('succeeded'), ('failed')) s(state)
	UNION ALL
	SELECT 'hook_duration_sum', p.phase, s.state, '',
		(SELECT coalesce(sum(h.seconds), 0) FROM hooks h WHERE h.phase = p.phase AND h.state = s.state)::double precision
	FROM (VALUES ('pre-backup'), ('post-backup'), ('post-restore')) p(phase), (VALUES ('succeeded'), ('failed')) s(state)
	UNION ALL
	SELECT 'db_connections', a.usename::text, '', '', count(*)::double precision
	FROM pg_stat_activity a WHERE a.datname = current_database() AND a.usename::text LIKE 'stowage\_%'
	GROUP BY a.usename
$$;

REVOKE ALL ON FUNCTION stowage.metrics_sample() FROM PUBLIC;
GRANT USAGE ON SCHEMA stowage TO stowage_metrics;
GRANT EXECUTE ON FUNCTION stowage.metrics_sample() TO stowage_metrics;
