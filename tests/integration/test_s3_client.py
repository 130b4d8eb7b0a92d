"""The S3 client (src/s3/s3_client.c) against the test environment's MinIO: SigV4 with odd
keys, a 50 MiB multipart round trip compared by SHA-256 (read back in parallel ranged parts),
a large object replaced while it is read, paged listing, errors in words, the
probe. Run: cd tests/integration && /usr/bin/python3 -m pytest -p fixtures_testenv test_s3_client.py
"""

from ctap import run_tap

S3_VARS = ("S3_ENDPOINT", "S3_REGION", "S3_ACCESS_KEY", "S3_SECRET_KEY")


def test_s3_client_against_minio(testenv):
    out = run_tap("itest_s3", {k: testenv[k] for k in S3_VARS}, expected_cases=11)
    assert "# error in words: signature does not match: check the secret key" in out
    assert "does not exist" in out
    assert "# error in words: big/replaced.bin was replaced while it was being read" in out
