-- The web workers make no outbound connection: a cluster or repository Test, a save that tests,
-- a hook's dry run and the wizards' live reads of a cluster become short requests that a runner
-- answers on its fast lane (src/runner/runner_requests.c). The web inserts a request (the
-- trigger wakes the runners), shows "reading the cluster…" and follows it until it is answered.
-- Only the runner's role claims and answers one; the web's may not.

CREATE TABLE stowage.runner_requests (
	id bigserial PRIMARY KEY,
	org_id bigint NOT NULL DEFAULT stowage.current_org() REFERENCES stowage.orgs ON DELETE CASCADE,
	kind text NOT NULL CHECK (kind IN ('cluster_probe', 'repository_probe', 'cluster_read', 'hook_dry_run')),
	params jsonb NOT NULL,
	state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'answered')),
	result jsonb,
	error text NOT NULL DEFAULT '',
	runner_id text,
	created_by bigint,
	created_at timestamptz NOT NULL DEFAULT now(),
	claimed_at timestamptz,
	answered_at timestamptz,
	-- when the runner stored the save the request asked for (with its answer, at most once)
	applied_at timestamptz,
	UNIQUE (org_id, id)
);
CREATE INDEX runner_requests_pending ON stowage.runner_requests (created_at) WHERE state = 'pending';
CREATE INDEX runner_requests_org_kind ON stowage.runner_requests (org_id, kind, created_at);

ALTER TABLE stowage.runner_requests ENABLE ROW LEVEL SECURITY;
CREATE POLICY runner_requests_tenant ON stowage.runner_requests
	USING (org_id = stowage.current_org()) WITH CHECK (org_id = stowage.current_org());

-- The web asks and reads, and changes nothing of a request once asked.
GRANT SELECT, INSERT ON stowage.runner_requests TO stowage_app;
GRANT USAGE ON SEQUENCE stowage.runner_requests_id_seq TO stowage_app;
-- The runner answers, and stores a save that tested well in the same transaction (bound to the
-- request's organisation and the person who asked, who the audit log names).
GRANT UPDATE (state, result, error, answered_at, applied_at) ON stowage.runner_requests TO stowage_runner;

CREATE FUNCTION stowage.runner_requests_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('stowage_requests', NEW.id::text);
	RETURN NEW;
END $$;
CREATE TRIGGER runner_requests_notify AFTER INSERT ON stowage.runner_requests FOR EACH ROW
	EXECUTE FUNCTION stowage.runner_requests_notify();

-- A runner's fast lane takes the oldest pending request of the organisation with the fewest
-- requests running, never one of an organisation already at p_org_limit.
CREATE FUNCTION stowage.claim_runner_request(p_runner text, p_org_limit integer)
RETURNS TABLE (request_id bigint, request_org_id bigint, request_kind text, request_params jsonb,
	request_created_by bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(7301000012);
	RETURN QUERY
	WITH org_running AS (
		SELECT r.org_id, count(*) AS n FROM runner_requests r WHERE r.state = 'running' GROUP BY r.org_id
	)
	UPDATE runner_requests q SET state = 'running', runner_id = p_runner, claimed_at = now()
	WHERE q.id = (
		SELECT p.id FROM runner_requests p LEFT JOIN org_running o ON o.org_id = p.org_id
		WHERE p.state = 'pending' AND coalesce(o.n, 0) < p_org_limit
		ORDER BY coalesce(o.n, 0), p.created_at, p.id
		LIMIT 1 FOR UPDATE OF p SKIP LOCKED)
	RETURNING q.id, q.org_id, q.kind, q.params, q.created_by;
END $$;
REVOKE ALL ON FUNCTION stowage.claim_runner_request(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stowage.claim_runner_request(text, integer) TO stowage_runner;
CREATE INDEX runner_requests_running ON stowage.runner_requests (claimed_at) WHERE state = 'running';

-- Every runner sweeps now and then: a request no runner took within two minutes, or whose runner
-- died while answering, is answered as such; rows older than a day go.
CREATE FUNCTION stowage.sweep_runner_requests() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = stowage, pg_temp AS $$
BEGIN
	UPDATE runner_requests SET state = 'answered', answered_at = now(),
		error = 'No runner answered within two minutes: the runners are down or busy; try again.'
	WHERE state = 'pending' AND created_at < now() - interval '2 minutes';
	UPDATE runner_requests SET state = 'answered', answered_at = now(),
		error = 'The runner answering this stopped; try again.'
	WHERE state = 'running' AND claimed_at < now() - interval '2 minutes';
	DELETE FROM runner_requests WHERE created_at < now() - interval '1 day';
END $$;
REVOKE ALL ON FUNCTION stowage.sweep_runner_requests() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stowage.sweep_runner_requests() TO stowage_runner;

-- Ranges of the deny list that the operator opts back in for one organisation (its own test
-- clusters on loopback, a customer's private network reached by a peering). Only the operator
-- writes them (the owner role); the runner reads its organisation's; the web cannot even read.
CREATE TABLE stowage.org_network_opt_ins (
	org_id bigint PRIMARY KEY REFERENCES stowage.orgs ON DELETE CASCADE,
	networks text NOT NULL,
	reason text NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE stowage.org_network_opt_ins ENABLE ROW LEVEL SECURITY;
CREATE POLICY org_network_opt_ins_tenant ON stowage.org_network_opt_ins USING (org_id = stowage.current_org());
REVOKE ALL ON stowage.org_network_opt_ins FROM stowage_app;
GRANT SELECT ON stowage.org_network_opt_ins TO stowage_runner;
