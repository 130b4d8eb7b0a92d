-- mysql-quiesce.lua: make MySQL's files consistent for a backup of its volume. Before the
-- backup (phase pre-backup) it flushes the tables and makes the server read-only, so that no
-- write lands while the volume is copied; after it (post-backup) it makes the server writable
-- again. Both run through exec in the database's pod; a non-zero exit fails the hook (and so the
-- backup, unless on_failure says otherwise).
--
-- Put it on the plan twice: {"hook_id": n, "phase": "pre-backup"} and
-- {"hook_id": n, "phase": "post-backup"}.
--
-- params (all optional):
--   pod        default "mysql-0"
--   container  default "mysql"
--   quiesce    argv run before, default {"mysql", "-e", "FLUSH TABLES; SET GLOBAL read_only = ON"}
--   resume     argv run after, default {"mysql", "-e", "SET GLOBAL read_only = OFF"}
--   timeout_ms per command, default 30000
local pod = params.pod or "mysql-0"
local container = params.container or "mysql"
local argv
if job.phase == "post-backup" then
  argv = params.resume or {"mysql", "-e", "SET GLOBAL read_only = OFF"}
else
  argv = params.quiesce or {"mysql", "-e", "FLUSH TABLES; SET GLOBAL read_only = ON"}
end

local r = k8s.exec(pod, container, argv, {timeout_ms = params.timeout_ms or 30000})
if r.stdout ~= "" then log(r.stdout) end
if r.exit_code ~= 0 then
  error(string.format("%s in %s exited with %d: %s", argv[1], pod, r.exit_code, r.stderr))
end
log(job.phase == "post-backup" and "resumed" or "quiesced", pod)
