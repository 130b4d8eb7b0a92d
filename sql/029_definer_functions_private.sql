-- Every SECURITY DEFINER function runs as stowage_owner, past row-level security, so none is
-- PUBLIC's to call. The earlier files revoke each one's EXECUTE from PUBLIC, but 019 left the
-- trigger function notification_job_ended with PostgreSQL's default grant. A trigger function
-- cannot be called on its own, and a trigger fires without EXECUTE on its function, so this
-- changes nothing any process does: it makes the rule hold without an exception, which
-- test_every_table_sits_behind_row_level_security (tests/integration/test_foundation.py) checks
-- over the whole catalog.
REVOKE ALL ON FUNCTION stowage.notification_job_ended() FROM PUBLIC;
