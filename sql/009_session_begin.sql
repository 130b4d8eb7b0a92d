-- One round trip opens a console request (src/web/session.c): session_begin looks the session up
-- and binds the transaction it is called in to its organisation and user, as db_tenant_begin
-- does, or to no tenant when the token is unknown, expired or its membership gone. In PL/pgSQL,
-- whose plan is kept per connection: session_lookup was an SQL function that is never inlined
-- (SECURITY DEFINER), so PostgreSQL parsed and planned its four-table join on every request, most
-- of the database's time per page (docs/performance.md).
DROP FUNCTION stowage.session_lookup(bytea);

CREATE FUNCTION stowage.session_begin(p_token_hash bytea)
RETURNS TABLE (user_id bigint, org_id bigint, role text, csrf_token text,
	email text, display_name text, org_name text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
BEGIN
	SELECT s.user_id, s.org_id, m.role, s.csrf_token, u.email, u.display_name, o.name
	INTO user_id, org_id, role, csrf_token, email, display_name, org_name
	FROM sessions s
	JOIN memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id
	JOIN users u ON u.id = s.user_id
	JOIN orgs o ON o.id = s.org_id
	WHERE s.token_hash = p_token_hash AND s.expires_at > now();
	-- set_config(..., true) outlives this function (only search_path, set by its SET clause, is
	-- restored on return) and ends with the caller's transaction.
	IF NOT FOUND THEN
		PERFORM set_config('app.org_id', '', true), set_config('app.user_id', '', true);
		RETURN;
	END IF;
	PERFORM set_config('app.org_id', org_id::text, true), set_config('app.user_id', user_id::text, true);
	RETURN NEXT;
END $$;

REVOKE ALL ON FUNCTION stowage.session_begin(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stowage.session_begin(bytea) TO stowage_app;
