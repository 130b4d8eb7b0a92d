-- Foundation: organisations (tenants), users, memberships, sessions, audit log.
--
-- The tenancy pattern every later table follows:
--   * it lives in schema stowage and has  org_id bigint NOT NULL DEFAULT stowage.current_org()
--     REFERENCES stowage.orgs ON DELETE CASCADE;
--   * it has row-level security enabled with the policy  org_id = stowage.current_org();
--   * the application role stowage_app is granted DML on it but owns nothing, so RLS binds it.
-- The worker sets app.org_id and app.user_id with set_config(..., true) at the start of every
-- transaction (db_tenant_begin); a query outside such a transaction sees no tenant rows at all.
-- The few operations that must cross tenants before one is known (sign-up, sign-in, session
-- lookup, invitations of an existing user) are SECURITY DEFINER functions with a fixed search_path.

CREATE SCHEMA IF NOT EXISTS stowage;
GRANT USAGE ON SCHEMA stowage TO stowage_app;

CREATE FUNCTION stowage.current_org() RETURNS bigint
LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('app.org_id', true), '')::bigint $$;

CREATE FUNCTION stowage.current_app_user() RETURNS bigint
LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('app.user_id', true), '')::bigint $$;

CREATE TABLE stowage.orgs (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX orgs_name_key ON stowage.orgs (lower(name));

CREATE TABLE stowage.users (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	email text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
	display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
	password_hash text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON stowage.users (lower(email));

CREATE TABLE stowage.memberships (
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	user_id bigint NOT NULL REFERENCES stowage.users ON DELETE CASCADE,
	role text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (org_id, user_id)
);

CREATE TABLE stowage.sessions (
	token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	user_id bigint NOT NULL REFERENCES stowage.users ON DELETE CASCADE,
	csrf_token text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_user_idx ON stowage.sessions (user_id);

CREATE TABLE stowage.audit_log (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	user_id bigint DEFAULT stowage.current_app_user() REFERENCES stowage.users ON DELETE SET NULL,
	action text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
	target text NOT NULL DEFAULT '',
	detail jsonb NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_org_time_idx ON stowage.audit_log (org_id, created_at DESC);

ALTER TABLE stowage.orgs ENABLE ROW LEVEL SECURITY;
ALTER TABLE stowage.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE stowage.memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE stowage.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE stowage.audit_log ENABLE ROW LEVEL SECURITY;

CREATE POLICY orgs_tenant ON stowage.orgs USING (id = stowage.current_org());
CREATE POLICY memberships_tenant ON stowage.memberships
	USING (org_id = stowage.current_org()) WITH CHECK (org_id = stowage.current_org());
-- A user row is visible to its own organisations only; users are created by the definer functions.
CREATE POLICY users_tenant ON stowage.users
	USING (id IN (SELECT user_id FROM stowage.memberships WHERE org_id = stowage.current_org()));
CREATE POLICY sessions_tenant ON stowage.sessions
	USING (org_id = stowage.current_org() AND user_id = stowage.current_app_user())
	WITH CHECK (org_id = stowage.current_org() AND user_id = stowage.current_app_user());
-- The audit log is append-only for the application.
CREATE POLICY audit_log_read ON stowage.audit_log FOR SELECT USING (org_id = stowage.current_org());
CREATE POLICY audit_log_append ON stowage.audit_log FOR INSERT WITH CHECK (org_id = stowage.current_org());

GRANT SELECT, UPDATE ON stowage.orgs TO stowage_app;
GRANT SELECT, UPDATE ON stowage.users TO stowage_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON stowage.memberships TO stowage_app;
GRANT SELECT, INSERT, DELETE ON stowage.sessions TO stowage_app;
GRANT SELECT, INSERT ON stowage.audit_log TO stowage_app;

-- Sign-up of a new organisation with its first admin.
CREATE FUNCTION stowage.signup(p_org text, p_email text, p_name text, p_hash text,
	OUT org_id bigint, OUT user_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
BEGIN
	INSERT INTO orgs (name) VALUES (p_org) RETURNING id INTO org_id;
	INSERT INTO users (email, display_name, password_hash) VALUES (p_email, p_name, p_hash)
		RETURNING id INTO user_id;
	INSERT INTO memberships (org_id, user_id, role) VALUES (org_id, user_id, 'admin');
	INSERT INTO audit_log (org_id, user_id, action, target)
		VALUES (org_id, user_id, 'org.create', p_org);
END $$;

-- Sign-in: the password hash of an email, and the organisations it may enter (first = default).
CREATE FUNCTION stowage.auth_lookup(p_email text)
RETURNS TABLE (user_id bigint, password_hash text, org_id bigint, role text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	SELECT u.id, u.password_hash, m.org_id, m.role
	FROM users u LEFT JOIN memberships m ON m.user_id = u.id
	WHERE lower(u.email) = lower(p_email)
	ORDER BY m.created_at NULLS LAST, m.org_id
	LIMIT 1
$$;

-- A session by its token hash, joined with the membership so that a removed member is signed out.
CREATE FUNCTION stowage.session_lookup(p_token_hash bytea)
RETURNS TABLE (user_id bigint, org_id bigint, role text, csrf_token text,
	email text, display_name text, org_name text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	SELECT s.user_id, s.org_id, m.role, s.csrf_token, u.email, u.display_name, o.name
	FROM sessions s
	JOIN memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id
	JOIN users u ON u.id = s.user_id
	JOIN orgs o ON o.id = s.org_id
	WHERE s.token_hash = p_token_hash AND s.expires_at > now()
$$;

-- Invitation into the current organisation. Only its admins may call it; an email that already
-- has an account gets a membership and keeps its own password.
CREATE FUNCTION stowage.invite(p_email text, p_name text, p_hash text, p_role text,
	OUT user_id bigint, OUT created boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
DECLARE
	v_org bigint := current_org();
BEGIN
	IF v_org IS NULL OR NOT EXISTS (SELECT 1 FROM memberships m WHERE m.org_id = v_org
			AND m.user_id = current_app_user() AND m.role = 'admin') THEN
		RAISE EXCEPTION 'only an admin of the organisation may invite' USING ERRCODE = '42501';
	END IF;
	SELECT u.id INTO user_id FROM users u WHERE lower(u.email) = lower(p_email);
	created := user_id IS NULL;
	IF created THEN
		INSERT INTO users (email, display_name, password_hash) VALUES (p_email, p_name, p_hash)
			RETURNING id INTO user_id;
	END IF;
	INSERT INTO memberships (org_id, user_id, role) VALUES (v_org, user_id, p_role);
END $$;

REVOKE ALL ON FUNCTION stowage.signup(text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.auth_lookup(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.session_lookup(bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.invite(text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stowage.signup(text, text, text, text) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.auth_lookup(text) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.session_lookup(bytea) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.invite(text, text, text, text) TO stowage_app;
