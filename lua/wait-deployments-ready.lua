-- wait-deployments-ready.lua: after a restore, wait until every Deployment and StatefulSet of
-- the namespace has all its replicas ready; fail naming those that are not.
--
-- params (all optional):
--   labelSelector  only the workloads it selects, default all
--   timeout_ms     how long to wait for all of them, default 300000 (the hook's time limit
--                  still applies)
local timeout = params.timeout_ms or 300000
local workloads = {}
for _, kind in ipairs({"Deployment", "StatefulSet"}) do
  for _, w in ipairs(k8s.list("apps/v1", kind, {labelSelector = params.labelSelector})) do
    workloads[#workloads + 1] = {kind = kind, name = w.metadata.name}
  end
end
local not_ready = {}
for _, w in ipairs(workloads) do
  local ready, why = k8s.wait_ready(w.kind, w.name, timeout)
  if ready then
    log(w.kind, w.name, "ready")
  else
    not_ready[#not_ready + 1] = why
  end
end
if #not_ready > 0 then
  error(#not_ready .. " not ready: " .. table.concat(not_ready, "; "))
end
log(#workloads, "workloads ready")
