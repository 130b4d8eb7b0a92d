#!/bin/sh
# The web worker connects to no tenant's server and runs no tenant code: none of its own objects
# (src/web/) calls a Kubernetes or S3 client, opens a cluster or repository, opens a sealed
# secret, runs a hook or a Lua state. The runner does all of that for the web's requests
# (src/runner/runner_requests.c). Fails if any such call comes back into src/web/.
# (The hook editor's Check only parses a script, lua_sandbox_check_syntax, and runs nothing.)
objs=$(ls src/web/*.o 2>/dev/null)
echo "1..1"
[ -n "$objs" ] || { echo "not ok 1 - src/web/*.o are not built (run from the build directory)"; exit 1; }
found=$(nm -u $objs | grep -E ' U (k8s_[a-z_]+|s3_[a-z_]+|cluster_open|repository_open|secret_open|hook_process_run|lua_k8s_[a-z_]+|lua_sandbox_run|lua_pcallk|lua_callk|net_allow_check_url|oidc_fetch_json|webhook_post|curl_easy_perform)$' | sort -u || true)
if [ -n "$found" ]; then
	echo "not ok 1 - the web worker's code calls tenant clients, secrets or Lua:"
	echo "$found" | sed 's/^/#   /'
	exit 1
fi
echo "ok 1 - the web worker's code calls no Kubernetes or S3 client, no secret opening, no hook and no Lua run"
