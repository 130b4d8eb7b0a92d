-- Single sign-on: OpenID Connect per organisation, beside passwords (docs/sso.md).
--
--   * org_sso: the organisation's provider (issuer, client, the client secret sealed for the
--     runner), how a claim maps to a role, whether its members must sign in through it, and what a
--     runner read from the provider: the discovery document's endpoints and the JWK Set (cached,
--     fetched again when a token names a key it lacks). A save is a runner request (the web makes
--     no outbound connection); the runner stores the row once discovery and the keys read well.
--   * sso_logins: one sign-in in flight, bound to the browser (the SHA-256 of a cookie) and to the
--     state sent to the provider (its SHA-256), with the nonce and the PKCE verifier; used once.
--     Before sign-in no tenant is known, so the web reaches it only through the definer functions.

CREATE TABLE stowage.org_sso (
	org_id bigint PRIMARY KEY DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	issuer text NOT NULL CHECK (length(issuer) BETWEEN 8 AND 2048),
	client_id text NOT NULL CHECK (length(client_id) BETWEEN 1 AND 255),
	client_secret_enc bytea NOT NULL,
	key_id text NOT NULL,
	role_claim text NOT NULL CHECK (role_claim ~ '^[A-Za-z0-9_.:-]{1,64}$'),
	-- {"claim value": "admin" | "operator" | "viewer"}
	role_map jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(role_map) = 'object'),
	-- the role of a person whose claim maps to none; NULL: such a person is refused
	default_role text CHECK (default_role IN ('admin', 'operator', 'viewer')),
	require_sso boolean NOT NULL DEFAULT false,
	authorization_endpoint text NOT NULL CHECK (length(authorization_endpoint) <= 2048),
	token_endpoint text NOT NULL CHECK (length(token_endpoint) <= 2048),
	userinfo_endpoint text NOT NULL DEFAULT '' CHECK (length(userinfo_endpoint) <= 2048),
	jwks_uri text NOT NULL CHECK (length(jwks_uri) <= 2048),
	jwks jsonb NOT NULL,
	jwks_fetched_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE stowage.org_sso ENABLE ROW LEVEL SECURITY;
CREATE POLICY org_sso_tenant ON stowage.org_sso
	USING (org_id = stowage.current_org()) WITH CHECK (org_id = stowage.current_org());
-- The web shows the settings (never the sealed secret) and removes them; the runner stores them.
GRANT SELECT (org_id, issuer, client_id, role_claim, role_map, default_role, require_sso, authorization_endpoint,
	token_endpoint, userinfo_endpoint, jwks_uri, jwks, jwks_fetched_at, updated_at) ON stowage.org_sso TO stowage_app;
GRANT DELETE ON stowage.org_sso TO stowage_app;
GRANT SELECT, INSERT, UPDATE ON stowage.org_sso TO stowage_runner;

ALTER TABLE stowage.runner_requests DROP CONSTRAINT runner_requests_kind_check;
ALTER TABLE stowage.runner_requests ADD CONSTRAINT runner_requests_kind_check
	CHECK (kind IN ('cluster_probe', 'repository_probe', 'cluster_read', 'hook_dry_run', 'sso_discovery', 'sso_exchange'));

CREATE TABLE stowage.sso_logins (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id bigint NOT NULL REFERENCES stowage.orgs ON DELETE CASCADE,
	browser_hash bytea NOT NULL CHECK (length(browser_hash) = 32),
	state_hash bytea NOT NULL UNIQUE CHECK (length(state_hash) = 32),
	nonce text NOT NULL,
	verifier text NOT NULL,
	next text NOT NULL DEFAULT '/',
	created_at timestamptz NOT NULL DEFAULT now(),
	-- the provider came back with this state (at most once)
	used_at timestamptz,
	request_id bigint,
	-- a session was made from it (at most once)
	finished_at timestamptz
);
ALTER TABLE stowage.sso_logins ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON stowage.sso_logins FROM stowage_app;

-- Which people a person's identity at an organisation's provider is: (org, issuer, sub), so
-- that a changed email at the provider keeps the account, and no provider reaches another's.
CREATE TABLE stowage.sso_identities (
	org_id bigint NOT NULL REFERENCES stowage.orgs ON DELETE CASCADE,
	issuer text NOT NULL,
	subject text NOT NULL,
	user_id bigint NOT NULL REFERENCES stowage.users ON DELETE CASCADE,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (org_id, issuer, subject)
);
ALTER TABLE stowage.sso_identities ENABLE ROW LEVEL SECURITY;
CREATE POLICY sso_identities_tenant ON stowage.sso_identities USING (org_id = stowage.current_org());
GRANT SELECT ON stowage.sso_identities TO stowage_app;

-- Sign-in through SSO starts: the organisation by name, and a login in flight. No row when the
-- organisation has no SSO (or no such organisation: the caller says the same for both).
CREATE FUNCTION stowage.sso_begin(p_org text, p_browser bytea, p_state bytea, p_nonce text, p_verifier text,
	p_next text)
RETURNS TABLE (org_id bigint, authorization_endpoint text, client_id text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
DECLARE
	v_org bigint;
BEGIN
	DELETE FROM sso_logins l WHERE l.created_at < now() - interval '1 day';
	SELECT s.org_id INTO v_org FROM org_sso s JOIN orgs o ON o.id = s.org_id WHERE lower(o.name) = lower(p_org);
	IF v_org IS NULL THEN
		RETURN;
	END IF;
	INSERT INTO sso_logins (org_id, browser_hash, state_hash, nonce, verifier, next)
		VALUES (v_org, p_browser, p_state, p_nonce, p_verifier, p_next);
	RETURN QUERY SELECT s.org_id, s.authorization_endpoint, s.client_id FROM org_sso s WHERE s.org_id = v_org;
END $$;

-- The provider sent the browser back with a code: once per state, from the browser that started
-- it, within ten minutes. The code goes to a runner (sso_exchange); the login's id is returned.
CREATE FUNCTION stowage.sso_callback(p_browser bytea, p_state bytea, p_code text, p_redirect_uri text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
DECLARE
	l sso_logins%ROWTYPE;
	v_request bigint;
BEGIN
	UPDATE sso_logins s SET used_at = now()
	WHERE s.state_hash = p_state AND s.browser_hash = p_browser AND s.used_at IS NULL
		AND s.created_at > now() - interval '10 minutes'
	RETURNING * INTO l;
	IF l.id IS NULL THEN
		RETURN NULL;
	END IF;
	INSERT INTO runner_requests (org_id, kind, params)
		VALUES (l.org_id, 'sso_exchange', jsonb_build_object('code', p_code, 'verifier', l.verifier,
			'redirect_uri', p_redirect_uri, 'login_id', l.id))
		RETURNING id INTO v_request;
	UPDATE sso_logins s SET request_id = v_request WHERE s.id = l.id;
	RETURN l.id;
END $$;

-- A login in flight of this browser, with the runner's answer once there and what checking the
-- ID token needs.
CREATE FUNCTION stowage.sso_login_state(p_browser bytea, p_login bigint)
RETURNS TABLE (org_id bigint, nonce text, next text, answered boolean, result jsonb, error text, finished boolean,
	issuer text, client_id text, jwks jsonb, role_claim text, role_map jsonb, default_role text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	SELECT l.org_id, l.nonce, l.next, q.state = 'answered', q.result, q.error, l.finished_at IS NOT NULL,
		s.issuer, s.client_id, s.jwks, s.role_claim, s.role_map, s.default_role
	FROM sso_logins l JOIN runner_requests q ON q.id = l.request_id JOIN org_sso s ON s.org_id = l.org_id
	WHERE l.id = p_login AND l.browser_hash = p_browser AND l.used_at IS NOT NULL
		AND l.created_at > now() - interval '10 minutes'
$$;

-- The ID token verified (by the web): the person it names at the organisation, once per login.
-- Known by (org, issuer, sub); else an account of that email that is a member here; else a new
-- account (no password) of that email when no account has it. An address that has an account
-- that is not a member is refused: a provider never reaches into another organisation's people.
-- The membership's role follows the provider's claim at every sign-in.
CREATE FUNCTION stowage.sso_signin(p_login bigint, p_browser bytea, p_subject text, p_email text, p_name text,
	p_role text, OUT user_id bigint, OUT refused text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
#variable_conflict use_column
DECLARE
	l sso_logins%ROWTYPE;
	v_issuer text;
	v_user bigint;
BEGIN
	UPDATE sso_logins s SET finished_at = now()
	WHERE s.id = p_login AND s.browser_hash = p_browser AND s.used_at IS NOT NULL AND s.finished_at IS NULL
	RETURNING * INTO l;
	IF l.id IS NULL THEN
		refused := 'This sign-in was used already; start again.';
		RETURN;
	END IF;
	SELECT s.issuer INTO v_issuer FROM org_sso s WHERE s.org_id = l.org_id;
	SELECT i.user_id INTO v_user FROM sso_identities i
	WHERE i.org_id = l.org_id AND i.issuer = v_issuer AND i.subject = p_subject;
	IF v_user IS NULL THEN
		IF p_email IS NULL OR p_email !~ '^[^@\s]+@[^@\s]+$' OR length(p_email) > 254 THEN
			refused := 'The provider sent no email address for this person (scope email).';
			RETURN;
		END IF;
		SELECT u.id INTO v_user FROM users u WHERE lower(u.email) = lower(p_email);
		IF v_user IS NOT NULL AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.org_id = l.org_id
				AND m.user_id = v_user) THEN
						refused := 'The address ' || p_email || ' has an account that is not a member of this organisation: '
				|| 'an admin must invite it first.';
			RETURN;
		END IF;
		IF v_user IS NULL THEN
			INSERT INTO users (email, display_name, password_hash, email_confirmed_at)
				VALUES (p_email, left(coalesce(nullif(p_name, ''), p_email), 100), '!sso', now())
				RETURNING id INTO v_user;
		END IF;
		INSERT INTO sso_identities (org_id, issuer, subject, user_id) VALUES (l.org_id, v_issuer, p_subject, v_user);
	END IF;
	INSERT INTO memberships (org_id, user_id, role) VALUES (l.org_id, v_user, p_role)
		ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role;
	INSERT INTO audit_log (org_id, user_id, action, target, detail)
		VALUES (l.org_id, v_user, 'user.sso_signin', coalesce(p_email, p_subject),
			jsonb_build_object('issuer', v_issuer, 'subject', p_subject, 'role', p_role));
	user_id := v_user;
END $$;

-- Password sign-in into an organisation that requires SSO is refused.
CREATE FUNCTION stowage.sso_required(p_org bigint) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	SELECT coalesce((SELECT s.require_sso FROM org_sso s WHERE s.org_id = p_org), false)
$$;

REVOKE ALL ON FUNCTION stowage.sso_begin(text, bytea, bytea, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.sso_callback(bytea, bytea, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.sso_login_state(bytea, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.sso_signin(bigint, bytea, text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.sso_required(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stowage.sso_begin(text, bytea, bytea, text, text, text) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.sso_callback(bytea, bytea, text, text) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.sso_login_state(bytea, bigint) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.sso_signin(bigint, bytea, text, text, text, text) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.sso_required(bigint) TO stowage_app;
