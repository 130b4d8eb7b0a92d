"""Run one of the C integration programs (tests/integration/c/itest_*, built by `make check`)
with the test environment's variables, and check its TAP report."""

import os
import re
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_tap(program, env, expected_cases, timeout=900):
    build = os.environ.get("STOWAGE_BUILD", REPO)  # scripts/test builds out of tree
    path = os.path.join(build, "tests", "integration", "c", program)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built: run `make check` (or `make {os.path.relpath(path, REPO)}`) first")
    res = subprocess.run([path], env=dict(os.environ, **env), capture_output=True, text=True,
                         timeout=timeout)
    report = res.stdout + res.stderr
    failed = [line for line in res.stdout.splitlines() if line.startswith("not ok")]
    passed = [line for line in res.stdout.splitlines() if re.match(r"ok \d+ ", line)]
    assert not failed, f"{program} failed cases:\n{report}"
    assert f"1..{expected_cases}" in res.stdout.splitlines(), f"{program}: plan is not 1..{expected_cases}:\n{report}"
    assert len(passed) == expected_cases, f"{program}: {len(passed)} cases passed, want {expected_cases}:\n{report}"
    assert res.returncode == 0, f"{program} exited {res.returncode}:\n{report}"
    return res.stdout
