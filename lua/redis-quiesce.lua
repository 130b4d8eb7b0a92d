-- redis-quiesce.lua: a consistent copy of Redis's data. Before the backup (phase pre-backup) it
-- asks the server for a snapshot (BGSAVE: a forked child writes every key as of that moment to
-- the RDB file, dump.rdb in the server's dir, and renames it into place) and waits until the
-- snapshot is written: LASTSAVE moves past its value before the BGSAVE and the server reports
-- the save ok (rdb_last_bgsave_status). The volume phase then copies that file; writes made
-- after the BGSAVE are not in it (they are in the next backup). A save already running is waited
-- for first, then a fresh one is asked for. Everything runs through exec: the container needs
-- redis-cli, able to reach the server (params.cli, e.g. {"redis-cli", "-a", "..."} or an
-- REDISCLI_AUTH in the container's environment).
--
-- Put it on the plan at pre-backup ({"hook_id": n, "phase": "pre-backup"}).
--
-- params (all optional):
--   pod        default "redis-0"
--   container  default "redis"
--   cli        redis-cli's argv, default {"redis-cli"}
--   timeout_ms for the snapshot to be written, default 120000 (each command: 30000)
local pod = params.pod or "redis-0"
local container = params.container or "redis"
local cli = params.cli or {"redis-cli"}
local timeout_ms = math.tointeger(params.timeout_ms or 120000) or error("params.timeout_ms: a whole number of ms")

local function run(...)
  local argv = {}
  for _, a in ipairs(cli) do argv[#argv + 1] = a end
  for _, a in ipairs({...}) do argv[#argv + 1] = a end
  local r = k8s.exec(pod, container, argv, {timeout_ms = 30000})
  local out = string.gsub(r.stdout, "%s+$", "")
  if r.exit_code ~= 0 or string.find(out, "^ERR") or string.find(out, "^NOAUTH") then
    error(string.format("%s %s in %s: exit %d: %s%s", cli[1], table.concat({...}, " "), pod, r.exit_code, out, r.stderr))
  end
  return out
end

local function persistence()
  local info = {}
  for k, v in string.gmatch(run("INFO", "persistence"), "([%w_]+):([^\r\n]*)") do info[k] = v end
  return info
end

local function wait_idle(what)
  local waited = 0
  while persistence().rdb_bgsave_in_progress ~= "0" do
    if waited >= timeout_ms then error(what .. " did not end within " .. timeout_ms .. " ms") end
    sleep(200)
    waited = waited + 200
  end
end

wait_idle("the snapshot already running")
local before = math.tointeger(tonumber(run("LASTSAVE"))) or error("LASTSAVE did not answer a time")
-- LASTSAVE counts seconds: a snapshot in the same second as the last one would not move it
while math.tointeger(tonumber(run("TIME"):match("^(%d+)"))) == before do sleep(200) end
local started = run("BGSAVE")
if not string.find(started, "started") and not string.find(started, "scheduled") then
  error("BGSAVE in " .. pod .. " answered: " .. started)
end
wait_idle("BGSAVE")
local info = persistence()
local after = math.tointeger(tonumber(run("LASTSAVE")))
if info.rdb_last_bgsave_status ~= "ok" then
  error("BGSAVE in " .. pod .. " failed (rdb_last_bgsave_status " .. tostring(info.rdb_last_bgsave_status) ..
        "): the server could not write its RDB file (disk full? permissions?)")
end
if not after or after <= before then
  error("LASTSAVE in " .. pod .. " did not move past " .. before .. " after BGSAVE: no new snapshot was written")
end
log("snapshot written", pod, "LASTSAVE", after, "(was " .. before .. ")")
