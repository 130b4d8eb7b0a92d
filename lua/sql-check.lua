-- sql-check.lua: after a restore (phase post-restore, or as a test restore's check), checks that
-- a restored PostgreSQL, MySQL or MariaDB accepts connections and holds its data: it waits until
-- the database's own client connects (the pod may still be starting, replaying its WAL or
-- recovering InnoDB), then runs params.query, whose answer must equal params.expect, or when no
-- expect is given must be a number of at least params.min (default 1), such as a count(*).
-- Fails in words, naming the query and what it answered. Runs through exec: the container needs
-- the client (psql, or mysql/mariadb), able to connect (PostgreSQL: as params.client says;
-- MySQL: e.g. through the client's options file).
--
-- params:
--   engine     required: "postgres" or "mysql" (MySQL and MariaDB)
--   query      required, e.g. "SELECT count(*) FROM orders"
--   expect     optional: the exact answer (fields joined by | for postgres, by a tab for mysql)
--   min        optional: the least number the answer may be, default 1 (without expect)
--   pod        default "postgres-0" or "mysql-0"
--   container  default "postgres" or "mysql"
--   client     the client's argv up to the query's flags, default {"psql", "-U", "postgres"}
--              or {"mysql"}
--   database   postgres only, default "postgres"
--   timeout_ms for the server to accept connections, default 180000
local engines = {
  postgres = {pod = "postgres-0", client = {"psql", "-U", "postgres"},
              flags = {"-d", params.database or "postgres", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c"}},
  mysql = {pod = "mysql-0", client = {"mysql"}, flags = {"-N", "-B", "-e"}},
}
local engine = engines[params.engine or ""] or error('params.engine: "postgres" or "mysql"')
local name = "sql-check (" .. params.engine .. ")"
local query = params.query or error("params.query: the query whose answer proves the data is there")
local pod = params.pod or engine.pod
local container = params.container or params.engine
local client = params.client or engine.client
local min = tonumber(params.min or 1) or error("params.min: a number")
local timeout_ms = math.tointeger(params.timeout_ms or 180000) or error("params.timeout_ms: a whole number of ms")

local function run(sql)
  local argv = {}
  for _, a in ipairs(client) do argv[#argv + 1] = a end
  for _, a in ipairs(engine.flags) do argv[#argv + 1] = a end
  argv[#argv + 1] = sql
  local r = k8s.exec(pod, container, argv, {timeout_ms = 60000})
  if r.exit_code ~= 0 then error(string.format("exit %d: %s", r.exit_code, r.stderr), 0) end
  return (string.gsub(r.stdout, "\n$", ""))
end

local waited, last = 0, ""
while true do
  local ok, out = pcall(run, "SELECT 1")
  if ok then break end
  last = tostring(out)
  if waited >= timeout_ms then
    error(name .. ": " .. pod .. " did not accept connections within " .. timeout_ms .. " ms: " .. last)
  end
  sleep(1000)
  waited = waited + 1000
end
local ok, got = pcall(run, query)
if not ok then
  error(name .. ": " .. query .. " failed in " .. pod .. " (" .. job.namespace .. "): " .. tostring(got))
end
if params.expect ~= nil then
  if got ~= tostring(params.expect) then
    error(name .. ": " .. query .. " answered \"" .. got .. "\" in " .. pod .. ", expected \"" ..
          tostring(params.expect) .. "\": the data is not what was backed up")
  end
elseif not tonumber(got) or tonumber(got) < min then
  error(name .. ": " .. query .. " answered \"" .. got .. "\" in " .. pod .. ", expected at least " .. min ..
        ": the data is absent")
end
log(name, pod, query, "->", got)
