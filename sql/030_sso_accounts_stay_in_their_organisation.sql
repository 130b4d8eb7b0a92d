-- An account that an organisation's single sign-on makes belongs to that organisation alone.
--
-- Until now sso_signin made an ordinary account, confirmed, for any address the organisation's
-- own provider named. An organisation is an attacker, and its provider says what it likes: it
-- could take an address nobody had registered yet, and then the address's real owner could not
-- sign up (a confirmed account existed), password sign-in and reset led into the provider's
-- organisation, another organisation's invitation asked them to sign in to an account they could
-- not reach, and "require single sign-on" there shut them out of everything. Refusing an address
-- that already had an account told the provider's admin which addresses have accounts.
--
-- Now such an account carries sso_org_id. It exists only inside that organisation: the address
-- stays free everywhere else (sign-up, password sign-in and reset, invitations and their
-- acceptance see only accounts without sso_org_id), the same address may have one such account
-- per organisation beside its owner's own, and the account goes with its organisation. A
-- provider signs in its organisation's own account of the address, or the owner's account once
-- that is a member there (invited, and the invitation accepted through the mailed link).
--
-- Password sign-in also stops landing in an organisation that requires single sign-on when the
-- person belongs to one that does not: another organisation's setting no longer locks a member
-- out of yours.

ALTER TABLE stowage.users ADD COLUMN sso_org_id bigint REFERENCES stowage.orgs ON DELETE CASCADE;
-- The accounts sso_signin made (no password of their own) belong to the organisation whose
-- provider made them.
UPDATE stowage.users u SET sso_org_id = (SELECT i.org_id FROM stowage.sso_identities i WHERE i.user_id = u.id
	ORDER BY i.created_at, i.org_id LIMIT 1)
WHERE u.password_hash = '!sso';
DROP INDEX stowage.users_email_key;
CREATE UNIQUE INDEX users_email_key ON stowage.users (lower(email)) WHERE sso_org_id IS NULL;
CREATE UNIQUE INDEX users_sso_email_key ON stowage.users (sso_org_id, lower(email)) WHERE sso_org_id IS NOT NULL;
CREATE INDEX users_sso_org_idx ON stowage.users (sso_org_id) WHERE sso_org_id IS NOT NULL;

CREATE OR REPLACE FUNCTION stowage.drop_unconfirmed(p_email text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
DECLARE
	v_user bigint;
BEGIN
	SELECT id INTO v_user FROM users WHERE lower(email) = lower(p_email) AND email_confirmed_at IS NULL
		AND sso_org_id IS NULL;
	IF v_user IS NULL THEN
		RETURN;
	END IF;
	DELETE FROM orgs o WHERE o.id IN (SELECT m.org_id FROM memberships m WHERE m.user_id = v_user)
		AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.org_id = o.id AND m.user_id <> v_user);
	DELETE FROM users WHERE id = v_user;
END $$;

CREATE OR REPLACE FUNCTION stowage.signup(p_org text, p_email text, p_name text, p_hash text, p_token_hash bytea,
	OUT org_id bigint, OUT user_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
BEGIN
	-- The name first, whatever the address: else a taken name would tell which addresses have accounts.
	IF EXISTS (SELECT 1 FROM orgs o WHERE lower(o.name) = lower(p_org)) THEN
		RAISE EXCEPTION 'organisation name taken' USING ERRCODE = '23505';
	END IF;
	IF EXISTS (SELECT 1 FROM users u WHERE lower(u.email) = lower(p_email) AND u.email_confirmed_at IS NOT NULL
			AND u.sso_org_id IS NULL) THEN
		RETURN;
	END IF;
	PERFORM drop_unconfirmed(p_email);
	INSERT INTO orgs (name) VALUES (p_org) RETURNING id INTO org_id;
	INSERT INTO users (email, display_name, password_hash) VALUES (p_email, p_name, p_hash)
		RETURNING id INTO user_id;
	INSERT INTO memberships (org_id, user_id, role) VALUES (org_id, user_id, 'admin');
	INSERT INTO account_tokens (token_hash, purpose, user_id, expires_at)
		VALUES (p_token_hash, 'confirm', user_id, now() + interval '2 days');
	INSERT INTO audit_log (org_id, user_id, action, target)
		VALUES (org_id, user_id, 'org.create', p_org);
END $$;

-- The owner's account of the address, in the oldest of its organisations that lets a password
-- in (the oldest of all when each requires single sign-on: the caller refuses that one in words).
CREATE OR REPLACE FUNCTION stowage.auth_lookup(p_email text)
RETURNS TABLE (user_id bigint, password_hash text, org_id bigint, role text, confirmed boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	SELECT u.id, u.password_hash, m.org_id, m.role, u.email_confirmed_at IS NOT NULL
	FROM users u LEFT JOIN memberships m ON m.user_id = u.id
	WHERE lower(u.email) = lower(p_email) AND u.sso_org_id IS NULL
	ORDER BY coalesce((SELECT s.require_sso FROM org_sso s WHERE s.org_id = m.org_id), false),
		m.created_at NULLS LAST, m.org_id
	LIMIT 1
$$;

CREATE OR REPLACE FUNCTION stowage.invitation_lookup(p_token_hash bytea)
RETURNS TABLE (org_name text, email text, display_name text, role text, has_account boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	SELECT o.name, i.email, i.display_name, i.role,
		EXISTS (SELECT 1 FROM users u WHERE lower(u.email) = lower(i.email) AND u.email_confirmed_at IS NOT NULL
			AND u.sso_org_id IS NULL)
	FROM account_tokens t JOIN invitations i ON i.id = t.invitation_id JOIN orgs o ON o.id = i.org_id
	WHERE t.token_hash = p_token_hash AND t.purpose = 'invite' AND t.expires_at > now()
		AND i.expires_at > now()
$$;

CREATE OR REPLACE FUNCTION stowage.invitation_accept(p_token_hash bytea, p_user bigint, p_name text, p_hash text)
RETURNS TABLE (org_id bigint, user_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
DECLARE
	v_inv invitations%ROWTYPE;
	v_user bigint;
BEGIN
	SELECT i.* INTO v_inv FROM account_tokens t JOIN invitations i ON i.id = t.invitation_id
		WHERE t.token_hash = p_token_hash AND t.purpose = 'invite' AND t.expires_at > now()
			AND i.expires_at > now()
		FOR UPDATE OF i;
	IF v_inv.id IS NULL THEN
		RETURN;
	END IF;
	IF p_user IS NOT NULL THEN
		-- an organisation's own single sign-on account joins no other organisation
		SELECT u.id INTO v_user FROM users u WHERE u.id = p_user AND lower(u.email) = lower(v_inv.email)
			AND u.email_confirmed_at IS NOT NULL AND u.sso_org_id IS NULL;
	ELSE
		IF EXISTS (SELECT 1 FROM users u WHERE lower(u.email) = lower(v_inv.email)
				AND u.email_confirmed_at IS NOT NULL AND u.sso_org_id IS NULL) THEN
			RETURN;
		END IF;
		PERFORM drop_unconfirmed(v_inv.email);
		INSERT INTO users (email, display_name, password_hash, email_confirmed_at)
			VALUES (v_inv.email, p_name, p_hash, now()) RETURNING id INTO v_user;
	END IF;
	IF v_user IS NULL THEN
		RETURN;
	END IF;
	-- The organisation may have been deleted by drop_unconfirmed only if it had no other member;
	-- an inviting organisation has its admin, so it is still there.
	INSERT INTO memberships (org_id, user_id, role) VALUES (v_inv.org_id, v_user, v_inv.role)
		ON CONFLICT DO NOTHING;
	INSERT INTO audit_log (org_id, user_id, action, target, detail)
		VALUES (v_inv.org_id, v_user, 'member.join', v_inv.email, jsonb_build_object('role', v_inv.role));
	DELETE FROM invitations i WHERE i.id = v_inv.id;
	RETURN QUERY SELECT v_inv.org_id, v_user;
END $$;

CREATE OR REPLACE FUNCTION stowage.password_reset_request(p_email text, p_token_hash bytea) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
DECLARE
	v_user bigint;
BEGIN
	SELECT id INTO v_user FROM users WHERE lower(email) = lower(p_email) AND email_confirmed_at IS NOT NULL
		AND sso_org_id IS NULL;
	IF v_user IS NULL THEN
		RETURN false;
	END IF;
	DELETE FROM account_tokens WHERE user_id = v_user AND purpose = 'reset';
	INSERT INTO account_tokens (token_hash, purpose, user_id, expires_at)
		VALUES (p_token_hash, 'reset', v_user, now() + interval '1 hour');
	RETURN true;
END $$;

CREATE OR REPLACE FUNCTION stowage.sso_signin(p_login bigint, p_browser bytea, p_subject text, p_email text,
	p_name text, p_role text, OUT user_id bigint, OUT refused text)
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
		-- this organisation's own account of the address, else its owner's once a member here
		SELECT u.id INTO v_user FROM users u WHERE u.sso_org_id = l.org_id AND lower(u.email) = lower(p_email);
		IF v_user IS NULL THEN
			SELECT u.id INTO v_user FROM users u JOIN memberships m ON m.user_id = u.id AND m.org_id = l.org_id
			WHERE lower(u.email) = lower(p_email) AND u.sso_org_id IS NULL AND u.email_confirmed_at IS NOT NULL;
		END IF;
		IF v_user IS NULL THEN
			INSERT INTO users (email, display_name, password_hash, email_confirmed_at, sso_org_id)
				VALUES (p_email, left(coalesce(nullif(p_name, ''), p_email), 100), '!sso', now(), l.org_id)
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
