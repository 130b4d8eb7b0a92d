"""The Kubernetes client (src/kube/k8s_client.c, kubeconfig.c) against the test environment's
kube-apiserver: discovery of a new CRD (aggregated and legacy agree), paged lists, create /
patch / replace / delete, and errors in words (403, 401, wrong CA, refused port).
Run: cd tests/integration && /usr/bin/python3 -m pytest -p fixtures_testenv test_k8s_client.py
"""

from ctap import run_tap

K8S_VARS = ("SOURCE_API_URL", "SOURCE_CA_FILE", "SOURCE_ADMIN_TOKEN", "SOURCE_LIMITED_TOKEN",
            "SOURCE_KUBECONFIG", "TARGET_CA_FILE")


def test_k8s_client_against_apiserver(testenv):
    out = run_tap("itest_k8s", {k: testenv[k] for k in K8S_VARS}, expected_cases=8)
    assert "# error in words: forbidden (403): " in out
    assert "# error in words: TLS verification failed: " in out
    assert "# error in words: connection refused to 127.0.0.1:1" in out
