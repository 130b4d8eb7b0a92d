-- scale-up.lua: after a backup (or after a restore), give every Deployment and StatefulSet that
-- scale-down.lua stopped its replicas back, and wait until they are ready.
--
-- params (all optional):
--   kinds          list of kinds, default {"Deployment", "StatefulSet"}
--   labelSelector  only the workloads it selects, default all
--   timeout_ms     how long to wait for readiness, default 300000
local ANNOTATION = "stowage.dev/replicas-before-scale-down"
local kinds = params.kinds or {"Deployment", "StatefulSet"}
local timeout = params.timeout_ms or 300000

local started = {}
for _, kind in ipairs(kinds) do
  for _, w in ipairs(k8s.list("apps/v1", kind, {labelSelector = params.labelSelector})) do
    local annotations = w.metadata.annotations or {}
    local replicas = tonumber(annotations[ANNOTATION])
    if replicas then
      k8s.scale(kind, w.metadata.name, math.tointeger(replicas))
      k8s.patch("apps/v1", kind, w.metadata.name, {metadata = {annotations = {[ANNOTATION] = json.null}}})
      log("scaled", kind, w.metadata.name, "back to", replicas)
      started[#started + 1] = {kind = kind, name = w.metadata.name}
    end
  end
end
for _, w in ipairs(started) do
  local ready, why = k8s.wait_ready(w.kind, w.name, timeout)
  if not ready then error(why) end
end
log(#started, "workloads scaled up and ready")
