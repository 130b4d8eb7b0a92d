-- postgres-quiesce.lua: hold PostgreSQL's writes while a backup copies its volume. Before the
-- backup (phase pre-backup) it starts, in the database's container, a psql session that locks
-- every table of the database IN SHARE MODE (reads go on; INSERT, UPDATE, DELETE, vacuum and
-- DDL wait) and then sleeps holding the locks; once it holds them a CHECKPOINT writes every
-- changed page to the files. After the copy (post-backup) it ends that session with
-- pg_terminate_backend, and the waiting writes go through. The locks are a session's, so they
-- cannot outlive it; a session that ends on its own (max_lock_s) before post-backup fails the
-- post-backup run: the copy may then hold writes made during it. Tables created while the lock
-- is held are not locked. Everything runs through exec: the container needs sh and psql, able
-- to connect as a superuser (CHECKPOINT, pg_terminate_backend).
--
-- Put it on the plan twice: {"hook_id": n, "phase": "pre-backup"} and
-- {"hook_id": n, "phase": "post-backup"}, and once more per further database (params.database).
--
-- params (all optional):
--   pod        default "postgres-0"
--   container  default "postgres"
--   psql       psql's argv up to the database, default {"psql", "-U", "postgres"}
--   database   default "postgres"
--   max_lock_s how long the locks may be held at most, default 3600
--   timeout_ms per command, and for the locks to be taken, default 30000
local pod = params.pod or "postgres-0"
local container = params.container or "postgres"
local psql = params.psql or {"psql", "-U", "postgres"}
local database = params.database or "postgres"
local max_lock_s = math.tointeger(params.max_lock_s or 3600) or error("params.max_lock_s: a whole number of seconds")
local timeout_ms = params.timeout_ms or 30000
local TAG = "stowage-quiesce"

local function quote(s)
  return "'" .. string.gsub(tostring(s), "'", "'\\''") .. "'"
end

local function run(sql)
  local argv = {}
  for _, a in ipairs(psql) do argv[#argv + 1] = a end
  for _, a in ipairs({"-d", database, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql}) do argv[#argv + 1] = a end
  local r = k8s.exec(pod, container, argv, {timeout_ms = timeout_ms})
  if r.exit_code ~= 0 then
    error(string.format("%s in %s exited with %d: %s", psql[1], pod, r.exit_code, r.stderr))
  end
  return r.stdout
end

local function holders()
  local pids = {}
  local out = run("SELECT pid FROM pg_stat_activity WHERE application_name = '" .. TAG ..
                  "' AND datname = current_database() AND wait_event = 'PgSleep'")
  for pid in string.gmatch(out, "%d+") do pids[#pids + 1] = pid end
  return pids
end

if job.phase == "post-backup" then
  local pids = holders()
  if #pids == 0 then
    error("no session holds the locks any more (it ended before the backup did, after max_lock_s = " .. max_lock_s ..
          " s?): the copy may hold writes made while it ran")
  end
  run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" .. TAG ..
      "' AND datname = current_database()")
  log("resumed", pod, database, "(ended the locking session " .. table.concat(pids, ", ") .. ")")
  return
end

-- the locking session in the background, named by application_name; psql's exit when it is
-- terminated is no error of the hook's (and a subshell, not psql, is what the container's
-- first process reaps: the postmaster takes a child's exit by a signal for a crash)
local sql = "BEGIN; DO $stowage$ DECLARE t record; BEGIN FOR t IN SELECT schemaname, tablename FROM pg_tables " ..
  "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') LOOP " ..
  "EXECUTE format('LOCK TABLE %I.%I IN SHARE MODE', t.schemaname, t.tablename); END LOOP; END $stowage$; " ..
  string.format("SELECT pg_sleep(%d)", max_lock_s)
local cmd = {"PGAPPNAME=" .. TAG}
for _, a in ipairs(psql) do cmd[#cmd + 1] = quote(a) end
for _, a in ipairs({"-d", database, "-X", "-q", "-c", sql}) do cmd[#cmd + 1] = quote(a) end
local started = k8s.exec(pod, container, {"sh", "-c", "(" .. table.concat(cmd, " ") .. "; true) >/dev/null 2>&1 &"},
                         {timeout_ms = timeout_ms})
if started.exit_code ~= 0 then
  error(string.format("starting the locking session in %s: exit %d: %s", pod, started.exit_code, started.stderr))
end
local waited = 0
while #holders() == 0 do
  if waited >= timeout_ms then
    error("the tables of " .. database .. " were not locked within " .. timeout_ms .. " ms (a long transaction?)")
  end
  sleep(200)
  waited = waited + 200
end
run("CHECKPOINT")
log("quiesced", pod, database, "(writes wait until post-backup)")
