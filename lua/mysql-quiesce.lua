-- mysql-quiesce.lua: hold MySQL's or MariaDB's writes while a backup copies its volume. Before
-- the backup (phase pre-backup) it starts, in the database's container, a client session that
-- runs FLUSH TABLES WITH READ LOCK and then sleeps holding the lock, and waits until that session
-- holds it: from then on every write waits (it does not fail) while reads go on. After the copy
-- (post-backup) it ends that session with KILL, and the waiting writes go through. The lock is
-- a session's, so it cannot outlive the session; a session that ends on its own (max_lock_s)
-- before post-backup fails the post-backup run: the copy may then hold writes made during it.
-- Everything runs through exec, so the container needs a shell (sh) and the mysql client,
-- which must reach the server as a user with the RELOAD and PROCESS privileges (and CONNECTION
-- ADMIN or SUPER to KILL), e.g. through the client's options file.
--
-- Put it on the plan twice: {"hook_id": n, "phase": "pre-backup"} and
-- {"hook_id": n, "phase": "post-backup"}.
--
-- params (all optional):
--   pod        default "mysql-0"
--   container  default "mysql"
--   mysql      the client's argv, default {"mysql"}
--   max_lock_s how long the lock may be held at most, default 3600
--   timeout_ms per command, and for the lock to be taken, default 30000
local pod = params.pod or "mysql-0"
local container = params.container or "mysql"
local mysql = params.mysql or {"mysql"}
local max_lock_s = math.tointeger(params.max_lock_s or 3600) or error("params.max_lock_s: a whole number of seconds")
local timeout_ms = params.timeout_ms or 30000
local TAG = "stowage-quiesce"

local function quote(s)
  return "'" .. string.gsub(tostring(s), "'", "'\\''") .. "'"
end

local function run(sql)
  local argv = {}
  for _, a in ipairs(mysql) do argv[#argv + 1] = a end
  for _, a in ipairs({"-N", "-B", "-e", sql}) do argv[#argv + 1] = a end
  local r = k8s.exec(pod, container, argv, {timeout_ms = timeout_ms})
  if r.exit_code ~= 0 then
    error(string.format("%s in %s exited with %d: %s", mysql[1], pod, r.exit_code, r.stderr))
  end
  return r.stdout
end

-- the sessions holding the lock (not this one, whose own text names the tag too)
local function holders()
  local ids = {}
  local out = run("SELECT id FROM information_schema.processlist WHERE id <> CONNECTION_ID() AND info LIKE 'SELECT ''"
                  .. TAG .. "''%'")
  for id in string.gmatch(out, "%d+") do ids[#ids + 1] = id end
  return ids
end

if job.phase == "post-backup" then
  local ids = holders()
  if #ids == 0 then
    error("no session holds the lock any more (it ended before the backup did, after max_lock_s = " .. max_lock_s ..
          " s?): the copy may hold writes made while it ran")
  end
  for _, id in ipairs(ids) do run("KILL " .. id) end
  log("resumed", pod, "(ended the locking session " .. table.concat(ids, ", ") .. ")")
  return
end

-- the locking session in the background: its client's end (KILL) is no error of the hook's
local cmd = {}
for _, a in ipairs(mysql) do cmd[#cmd + 1] = quote(a) end
local sql = string.format("FLUSH TABLES WITH READ LOCK; SELECT '%s', SLEEP(%d)", TAG, max_lock_s)
local started = k8s.exec(pod, container, {"sh", "-c", "(" .. table.concat(cmd, " ") .. " -e " .. quote(sql) ..
                         "; true) >/dev/null 2>&1 &"}, {timeout_ms = timeout_ms})
if started.exit_code ~= 0 then
  error(string.format("starting the locking session in %s: exit %d: %s", pod, started.exit_code, started.stderr))
end
-- it holds the lock once it sleeps
local waited = 0
while #holders() == 0 do
  if waited >= timeout_ms then
    error("FLUSH TABLES WITH READ LOCK did not finish within " .. timeout_ms .. " ms (a long statement running?)")
  end
  sleep(200)
  waited = waited + 200
end
log("quiesced", pod, "(writes wait until post-backup)")
