-- scale-down.lua: before a backup (or a migration), scale the namespace's Deployments and
-- StatefulSets to zero so that nothing writes to their volumes while they are copied. Each
-- workload's replica count is kept in an annotation, which scale-up.lua reads to bring it back.
--
-- params (all optional):
--   kinds          list of kinds, default {"Deployment", "StatefulSet"}
--   labelSelector  only the workloads it selects, default all
--   timeout_ms     how long to wait for the pods to be gone, default 120000
local ANNOTATION = "stowage.dev/replicas-before-scale-down"
local kinds = params.kinds or {"Deployment", "StatefulSet"}
local timeout = params.timeout_ms or 120000

local scaled = {}
for _, kind in ipairs(kinds) do
  for _, w in ipairs(k8s.list("apps/v1", kind, {labelSelector = params.labelSelector})) do
    local name, replicas = w.metadata.name, w.spec.replicas or 1
    if replicas > 0 then
      k8s.patch("apps/v1", kind, name, {metadata = {annotations = {[ANNOTATION] = tostring(replicas)}}})
      k8s.scale(kind, name, 0)
      log("scaled", kind, name, "from", replicas, "to 0")
      scaled[#scaled + 1] = {kind = kind, name = name}
    end
  end
end
for _, w in ipairs(scaled) do
  assert(k8s.wait_ready(w.kind, w.name, timeout))
end
log(#scaled, "workloads scaled down")
