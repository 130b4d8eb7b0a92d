-- rewrite-ingress-host.lua: after a restore or a migration to another domain (the manual's
-- WordPress case), rewrite the old domain to the new one in every Ingress host of the namespace
-- (rules and TLS) and in the values of one ConfigMap (the site URL the application reads).
--
-- params:
--   old_domain   required, e.g. "blog.example.com"
--   new_domain   required, e.g. "blog.example.org"
--   configmap    optional: the ConfigMap whose values hold the site URL, e.g. "wordpress-config"
--   keys         optional: only these keys of it, default every key
local old, new = params.old_domain, params.new_domain
if type(old) ~= "string" or type(new) ~= "string" or old == "" or new == "" then
  error("params.old_domain and params.new_domain are required")
end

-- Every occurrence of old in s replaced by new, as plain text (no patterns).
local function replace(s, from, to)
  local out, i = {}, 1
  while true do
    local a, b = s:find(from, i, true)
    if not a then break end
    out[#out + 1] = s:sub(i, a - 1) .. to
    i = b + 1
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

-- A host of the old domain: the domain itself or a name under it.
local function rehost(host)
  if host == old then return new end
  if #host > #old and host:sub(-#old - 1) == "." .. old then
    return host:sub(1, #host - #old) .. new
  end
  return host
end

local changed = 0
for _, ing in ipairs(k8s.list("networking.k8s.io/v1", "Ingress")) do
  local spec, dirty = ing.spec or {}, false
  for _, rule in ipairs(spec.rules or {}) do
    if rule.host and rehost(rule.host) ~= rule.host then
      rule.host, dirty = rehost(rule.host), true
    end
  end
  for _, tls in ipairs(spec.tls or {}) do
    for i, host in ipairs(tls.hosts or {}) do
      if rehost(host) ~= host then
        tls.hosts[i], dirty = rehost(host), true
      end
    end
  end
  if dirty then
    k8s.patch("networking.k8s.io/v1", "Ingress", ing.metadata.name, {spec = {rules = spec.rules, tls = spec.tls}})
    log("ingress", ing.metadata.name, "now serves", new)
    changed = changed + 1
  end
end

if params.configmap then
  local cm = k8s.get("v1", "ConfigMap", params.configmap)
  if not cm then error("ConfigMap " .. params.configmap .. " does not exist") end
  local data, patch = cm.data or {}, {}
  local keys = params.keys
  if not keys then
    keys = {}
    for k in pairs(data) do keys[#keys + 1] = k end
  end
  local n = 0
  for _, k in ipairs(keys) do
    local v = data[k]
    if type(v) == "string" and v:find(old, 1, true) then
      patch[k], n = replace(v, old, new), n + 1
    end
  end
  if n > 0 then
    k8s.patch("v1", "ConfigMap", params.configmap, {data = patch})
    log("configmap", params.configmap, n, "values now name", new)
    changed = changed + 1
  end
end
log(changed, "objects rewritten from", old, "to", new)
