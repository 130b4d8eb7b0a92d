"""The hook API (src/sandbox/lua_k8s.c, k8s_exec.c) and the reference hooks of lua/ against the test
environment's kube-apiserver, with the fixture application in a fresh namespace: ConfigMap
list/create/patch/delete, the namespace scope, dry runs that change nothing, scale and
wait_ready (kwok makes the pods ready), exec with exit codes, output and limits, and each
reference hook doing what it says. exec reaches kwok, which runs the command as a local
process (no container exists here); mysql-quiesce.lua and postgres-quiesce.lua need a real
database: test_real_hooks.py.
Run: cd tests/integration && /usr/bin/python3 -m pytest -p fixtures_testenv test_hooks_api.py
"""
import os
import subprocess

from ctap import REPO, run_tap
from conftest import unique


def test_hook_api_against_apiserver(testenv):
    ns = unique("hooks-")
    subprocess.run([os.path.join(REPO, "scripts", "testenv", "fixture-app"), testenv["SOURCE_KUBECONFIG"],
                    ns, testenv["SOURCE_VOLUME_DIR"]], check=True, capture_output=True)
    env = {k: testenv[k] for k in ("SOURCE_API_URL", "SOURCE_CA_FILE", "SOURCE_ADMIN_TOKEN")}
    env.update(HOOKS_NAMESPACE=ns, HOOKS_EXEC_DIR=os.path.join(testenv["TESTENV_ROOT"], "source", "exec"),
               HOOKS_LUA_DIR=os.path.join(REPO, "lua"))
    out = run_tap("itest_hooks", env, expected_cases=7)
    assert "log: scaled\tDeployment\twordpress\tfrom\t1\tto 0" in out
