-- redis-check.lua: after a restore (phase post-restore, or as a test restore's check), checks
-- that the restored Redis answers and holds its data: it waits until PING answers PONG (the
-- pod may still be starting), then reads params.key, which must exist (and equal params.value
-- when given), and counts the keys (DBSIZE, at least params.min_keys). Fails in words when
-- the server does not answer or the data is absent. Runs through exec: the container needs
-- redis-cli.
--
-- params:
--   key        required: a key the backed-up data always holds
--   value      optional: the value it must have
--   min_keys   optional: at least this many keys, default 1
--   pod        default "redis-0"
--   container  default "redis"
--   cli        redis-cli's argv, default {"redis-cli"}
--   timeout_ms for the server to answer, default 180000
local key = params.key or error("params.key: the key the restored data must hold")
local pod = params.pod or "redis-0"
local container = params.container or "redis"
local cli = params.cli or {"redis-cli"}
local min_keys = math.tointeger(params.min_keys or 1) or error("params.min_keys: a whole number")
local timeout_ms = math.tointeger(params.timeout_ms or 180000) or error("params.timeout_ms: a whole number of ms")

local function run(...)
  local argv = {}
  for _, a in ipairs(cli) do argv[#argv + 1] = a end
  for _, a in ipairs({...}) do argv[#argv + 1] = a end
  local r = k8s.exec(pod, container, argv, {timeout_ms = 30000})
  local out = string.gsub(r.stdout, "[\r\n]+$", "")
  if r.exit_code ~= 0 then error(string.format("exit %d: %s%s", r.exit_code, out, r.stderr)) end
  return out
end

local waited, last = 0, ""
while true do
  local ok, out = pcall(run, "PING")
  if ok and out == "PONG" then break end
  last = tostring(out)
  if waited >= timeout_ms then
    error("redis-check: " .. pod .. " did not answer PING within " .. timeout_ms .. " ms: " .. last)
  end
  sleep(1000)
  waited = waited + 1000
end
if run("EXISTS", key) ~= "1" then
  error("redis-check: key " .. key .. " is absent in " .. pod .. " (" .. job.namespace .. "): the data did not come back")
end
local got = run("GET", key)
if params.value ~= nil and got ~= tostring(params.value) then
  error("redis-check: key " .. key .. " is \"" .. got .. "\" in " .. pod .. ", expected \"" .. tostring(params.value) .. "\"")
end
local keys = math.tointeger(tonumber(run("DBSIZE"))) or 0
if keys < min_keys then
  error("redis-check: " .. pod .. " holds " .. keys .. " keys, expected at least " .. min_keys)
end
log("redis-check", pod, "PONG;", key, "=", got, ";", keys, "keys")
