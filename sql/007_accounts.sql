-- Accounts whose address is proven, and invitations the invitee accepts.
--
-- Before this, anyone could sign up with an address they do not own, and a later invitation of
-- that address by another organisation handed its membership to the squatter. Now:
--   * an account is usable only once its address is confirmed through a mailed one-time link;
--   * an invitation is pending until the invitee accepts it through its own mailed link, and it
--     never attaches to an unconfirmed account: accepting replaces such an account;
--   * one-time links (confirm, invite, reset) are stored as SHA-256 hashes only, in a table the
--     application role cannot read: only the definer functions below use it.

ALTER TABLE stowage.users ADD COLUMN email_confirmed_at timestamptz;
-- Accounts from before this migration were created by sign-up or invitation as they were.
UPDATE stowage.users SET email_confirmed_at = created_at;

CREATE TABLE stowage.invitations (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	email text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
	display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
	role text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
	invited_by bigint DEFAULT stowage.current_app_user() REFERENCES stowage.users ON DELETE SET NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz NOT NULL DEFAULT now() + interval '7 days'
);
CREATE UNIQUE INDEX invitations_org_email_key ON stowage.invitations (org_id, lower(email));
ALTER TABLE stowage.invitations ENABLE ROW LEVEL SECURITY;
CREATE POLICY invitations_tenant ON stowage.invitations
	USING (org_id = stowage.current_org()) WITH CHECK (org_id = stowage.current_org());
GRANT SELECT, DELETE ON stowage.invitations TO stowage_app;

CREATE TABLE stowage.account_tokens (
	token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
	purpose text NOT NULL CHECK (purpose IN ('confirm', 'invite', 'reset')),
	user_id bigint REFERENCES stowage.users ON DELETE CASCADE,
	invitation_id bigint REFERENCES stowage.invitations ON DELETE CASCADE,
	created_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz NOT NULL,
	CHECK ((purpose = 'invite') = (invitation_id IS NOT NULL)),
	CHECK ((purpose <> 'invite') = (user_id IS NOT NULL))
);
-- No grant and RLS without a policy: the application role sees nothing of it.
ALTER TABLE stowage.account_tokens ENABLE ROW LEVEL SECURITY;

-- Removes an account nobody ever confirmed, with the organisations it alone belonged to.
CREATE FUNCTION stowage.drop_unconfirmed(p_email text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
DECLARE
	v_user bigint;
BEGIN
	SELECT id INTO v_user FROM users WHERE lower(email) = lower(p_email) AND email_confirmed_at IS NULL;
	IF v_user IS NULL THEN
		RETURN;
	END IF;
	DELETE FROM orgs o WHERE o.id IN (SELECT m.org_id FROM memberships m WHERE m.user_id = v_user)
		AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.org_id = o.id AND m.user_id <> v_user);
	DELETE FROM users WHERE id = v_user;
END $$;
REVOKE ALL ON FUNCTION stowage.drop_unconfirmed(text) FROM PUBLIC;

-- Sign-up: a new organisation and its first admin, unusable until the address is confirmed
-- through the link whose hash is p_token_hash. An earlier unconfirmed sign-up with the same
-- address (perhaps by someone who does not own it) gives way. An address with a confirmed
-- account creates nothing: both columns are NULL (the worker mails the owner instead, and its
-- answer is the same, so that sign-up tells nobody which addresses have accounts).
DROP FUNCTION stowage.signup(text, text, text, text);
CREATE FUNCTION stowage.signup(p_org text, p_email text, p_name text, p_hash text, p_token_hash bytea,
	OUT org_id bigint, OUT user_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
BEGIN
	-- The name first, whatever the address: else a taken name would tell which addresses have accounts.
	IF EXISTS (SELECT 1 FROM orgs o WHERE lower(o.name) = lower(p_org)) THEN
		RAISE EXCEPTION 'organisation name taken' USING ERRCODE = '23505';
	END IF;
	IF EXISTS (SELECT 1 FROM users u WHERE lower(u.email) = lower(p_email) AND u.email_confirmed_at IS NOT NULL) THEN
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

-- The confirmation link: spends the token, confirms the address; the account's first
-- organisation to sign in to. No row when the link is unknown, spent or expired.
CREATE FUNCTION stowage.confirm_email(p_token_hash bytea)
RETURNS TABLE (user_id bigint, org_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
DECLARE
	v_user bigint;
BEGIN
	DELETE FROM account_tokens t WHERE t.token_hash = p_token_hash AND t.purpose = 'confirm'
		AND t.expires_at > now() RETURNING t.user_id INTO v_user;
	IF v_user IS NULL THEN
		RETURN;
	END IF;
	UPDATE users u SET email_confirmed_at = coalesce(u.email_confirmed_at, now()) WHERE u.id = v_user;
	INSERT INTO audit_log (org_id, user_id, action, target)
		SELECT m.org_id, v_user, 'user.confirm', u.email FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.user_id = v_user;
	RETURN QUERY SELECT v_user, (SELECT m.org_id FROM memberships m WHERE m.user_id = v_user
		ORDER BY m.created_at, m.org_id LIMIT 1);
END $$;

-- Sign-in now also says whether the address is confirmed.
DROP FUNCTION stowage.auth_lookup(text);
CREATE FUNCTION stowage.auth_lookup(p_email text)
RETURNS TABLE (user_id bigint, password_hash text, org_id bigint, role text, confirmed boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	SELECT u.id, u.password_hash, m.org_id, m.role, u.email_confirmed_at IS NOT NULL
	FROM users u LEFT JOIN memberships m ON m.user_id = u.id
	WHERE lower(u.email) = lower(p_email)
	ORDER BY m.created_at NULLS LAST, m.org_id
	LIMIT 1
$$;

-- Invitation into the current organisation by one of its admins: pending, whatever the address
-- (the caller learns nothing about other organisations' accounts). Inviting the address again
-- replaces the pending invitation and its link. 23505 when it is already a member here.
DROP FUNCTION stowage.invite(text, text, text, text);
CREATE FUNCTION stowage.invite(p_email text, p_name text, p_role text, p_token_hash bytea)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
DECLARE
	v_org bigint := current_org();
	v_id bigint;
BEGIN
	IF v_org IS NULL OR NOT EXISTS (SELECT 1 FROM memberships m WHERE m.org_id = v_org
			AND m.user_id = current_app_user() AND m.role = 'admin') THEN
		RAISE EXCEPTION 'only an admin of the organisation may invite' USING ERRCODE = '42501';
	END IF;
	IF EXISTS (SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
			WHERE m.org_id = v_org AND lower(u.email) = lower(p_email)) THEN
		RAISE EXCEPTION 'already a member' USING ERRCODE = '23505';
	END IF;
	DELETE FROM invitations i WHERE i.org_id = v_org AND lower(i.email) = lower(p_email);
	INSERT INTO invitations (org_id, email, display_name, role, invited_by)
		VALUES (v_org, p_email, p_name, p_role, current_app_user()) RETURNING id INTO v_id;
	INSERT INTO account_tokens (token_hash, purpose, invitation_id, expires_at)
		VALUES (p_token_hash, 'invite', v_id, now() + interval '7 days');
	RETURN v_id;
END $$;

-- What an invitation link offers: the organisation, the role, the address, and whether that
-- address has a confirmed account (then its owner signs in to accept) or not (then accepting
-- creates the account). No row when the link is unknown or expired.
CREATE FUNCTION stowage.invitation_lookup(p_token_hash bytea)
RETURNS TABLE (org_name text, email text, display_name text, role text, has_account boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	SELECT o.name, i.email, i.display_name, i.role,
		EXISTS (SELECT 1 FROM users u WHERE lower(u.email) = lower(i.email) AND u.email_confirmed_at IS NOT NULL)
	FROM account_tokens t JOIN invitations i ON i.id = t.invitation_id JOIN orgs o ON o.id = i.org_id
	WHERE t.token_hash = p_token_hash AND t.purpose = 'invite' AND t.expires_at > now()
		AND i.expires_at > now()
$$;

-- Accepting an invitation. The link proves the address: with p_user (the signed-in account) it
-- must be that account's confirmed address; without, a new confirmed account is created with
-- p_name and p_hash, replacing an unconfirmed one of the same address. Spends the link and the
-- invitation; the membership's organisation and user. No row when the link is no longer valid,
-- or when it belongs to another address than p_user's, or (without p_user) the address has a
-- confirmed account.
CREATE FUNCTION stowage.invitation_accept(p_token_hash bytea, p_user bigint, p_name text, p_hash text)
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
		SELECT u.id INTO v_user FROM users u WHERE u.id = p_user AND lower(u.email) = lower(v_inv.email)
			AND u.email_confirmed_at IS NOT NULL;
	ELSE
		IF EXISTS (SELECT 1 FROM users u WHERE lower(u.email) = lower(v_inv.email)
				AND u.email_confirmed_at IS NOT NULL) THEN
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

REVOKE ALL ON FUNCTION stowage.signup(text, text, text, text, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.confirm_email(bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.auth_lookup(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.invite(text, text, text, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.invitation_lookup(bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.invitation_accept(bytea, bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stowage.signup(text, text, text, text, bytea) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.confirm_email(bytea) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.auth_lookup(text) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.invite(text, text, text, bytea) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.invitation_lookup(bytea) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.invitation_accept(bytea, bigint, text, text) TO stowage_app;

-- Passwords: a member changes theirs knowing the current one; a forgotten one is reset through a
-- mailed one-time link (confirmed accounts only). Either ends every session of the account.
CREATE FUNCTION stowage.password_reset_request(p_email text, p_token_hash bytea) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
DECLARE
	v_user bigint;
BEGIN
	SELECT id INTO v_user FROM users WHERE lower(email) = lower(p_email) AND email_confirmed_at IS NOT NULL;
	IF v_user IS NULL THEN
		RETURN false;
	END IF;
	DELETE FROM account_tokens WHERE user_id = v_user AND purpose = 'reset';
	INSERT INTO account_tokens (token_hash, purpose, user_id, expires_at)
		VALUES (p_token_hash, 'reset', v_user, now() + interval '1 hour');
	RETURN true;
END $$;

CREATE FUNCTION stowage.password_set(p_user bigint, p_hash text, p_action text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
BEGIN
	UPDATE users SET password_hash = p_hash WHERE id = p_user;
	DELETE FROM sessions WHERE user_id = p_user;
	DELETE FROM account_tokens WHERE user_id = p_user AND purpose = 'reset';
	INSERT INTO audit_log (org_id, user_id, action, target)
		SELECT m.org_id, p_user, p_action, u.email FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.user_id = p_user;
END $$;
REVOKE ALL ON FUNCTION stowage.password_set(bigint, text, text) FROM PUBLIC;

-- The reset link: spends it, sets the password, ends every session. The account, or no row.
CREATE FUNCTION stowage.password_reset(p_token_hash bytea, p_hash text) RETURNS TABLE (user_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
DECLARE
	v_user bigint;
BEGIN
	DELETE FROM account_tokens t WHERE t.token_hash = p_token_hash AND t.purpose = 'reset'
		AND t.expires_at > now() RETURNING t.user_id INTO v_user;
	IF v_user IS NULL THEN
		RETURN;
	END IF;
	PERFORM password_set(v_user, p_hash, 'user.password_reset');
	RETURN QUERY SELECT v_user;
END $$;

-- A reset link is still good (the form is shown only then).
CREATE FUNCTION stowage.password_reset_valid(p_token_hash bytea) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	SELECT EXISTS (SELECT 1 FROM account_tokens WHERE token_hash = p_token_hash AND purpose = 'reset'
		AND expires_at > now())
$$;

-- The signed-in member's own password (the worker checked the current one).
CREATE FUNCTION stowage.password_change(p_hash text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
BEGIN
	IF current_app_user() IS NULL THEN
		RAISE EXCEPTION 'no signed-in user' USING ERRCODE = '42501';
	END IF;
	PERFORM password_set(current_app_user(), p_hash, 'user.password_change');
END $$;

REVOKE ALL ON FUNCTION stowage.password_reset_request(text, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.password_reset(bytea, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.password_reset_valid(bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.password_change(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stowage.password_reset_request(text, bytea) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.password_reset(bytea, text) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.password_reset_valid(bytea) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.password_change(text) TO stowage_app;

-- Rate limits in the database, so that every worker and every nginx share them: attempts per
-- key ("signup:addr:ann@example.com", "reset:client:203.0.113.9") in a sliding window. Only the
-- definer functions touch the table.
CREATE TABLE stowage.rate_events (
	key text NOT NULL CHECK (length(key) <= 400),
	at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX rate_events_key_at_idx ON stowage.rate_events (key, at);
ALTER TABLE stowage.rate_events ENABLE ROW LEVEL SECURITY;

-- Counts an attempt under key; true while no more than p_limit attempts fell in p_window
-- (this one included). Refused attempts count too: hammering keeps the door shut.
CREATE FUNCTION stowage.rate_hit(p_key text, p_limit integer, p_window interval) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
DECLARE
	n integer;
BEGIN
	-- One attempt per key at a time: a burst of parallel requests cannot all count as the first.
	PERFORM pg_advisory_xact_lock(hashtext('stowage.rate:' || p_key));
	DELETE FROM rate_events WHERE key = p_key AND at < now() - p_window;
	INSERT INTO rate_events (key) VALUES (p_key);
	SELECT count(*) INTO n FROM rate_events WHERE key = p_key;
	RETURN n <= p_limit;
END $$;

-- Wrong passwords per address (whether or not it has an account, so that the answer tells
-- nothing): from the tenth within 15 minutes, one try every 30 seconds. The seconds to wait.
CREATE FUNCTION stowage.signin_wait(p_email text) RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	SELECT CASE WHEN count(*) >= 10
		THEN greatest(0, ceil(30 - extract(epoch FROM now() - max(at))))::integer ELSE 0 END
	FROM rate_events WHERE key = 'signin-fail:' || lower(p_email) AND at > now() - interval '15 minutes'
$$;

CREATE FUNCTION stowage.signin_failed(p_email text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
	DELETE FROM rate_events WHERE key = 'signin-fail:' || lower(p_email) AND at < now() - interval '15 minutes';
	INSERT INTO rate_events (key) VALUES ('signin-fail:' || lower(p_email));
$$;

REVOKE ALL ON FUNCTION stowage.rate_hit(text, integer, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.signin_wait(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION stowage.signin_failed(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stowage.rate_hit(text, integer, interval) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.signin_wait(text) TO stowage_app;
GRANT EXECUTE ON FUNCTION stowage.signin_failed(text) TO stowage_app;
