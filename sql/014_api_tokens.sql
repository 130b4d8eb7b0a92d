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
