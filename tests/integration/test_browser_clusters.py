"""In Chromium: add a cluster and a repository through the pages and see both Connected."""
import boto3
from selenium.webdriver.common.by import By

from browser import fill, screenshot, signup
from conftest import unique


def test_add_cluster_and_repository_in_chromium(stack, testenv, browser):
    s3 = boto3.client("s3", endpoint_url=testenv["S3_ENDPOINT"], region_name=testenv["S3_REGION"],
                      aws_access_key_id=testenv["S3_ACCESS_KEY"], aws_secret_access_key=testenv["S3_SECRET_KEY"])
    bucket = unique("browser-")
    s3.create_bucket(Bucket=bucket)
    signup(browser, stack, {"org": unique("Chromium Org "), "display_name": "Cy", "email": unique("cy") + "@x.test",
                              "password": "browser password 2"})
    browser.get(stack.url + "/clusters/new")
    with open(testenv["SOURCE_CA_FILE"]) as f:
        ca = f.read()
    fill(browser, "/clusters", {"name": "source", "api_url": testenv["SOURCE_API_URL"],
                                "token": testenv["SOURCE_ADMIN_TOKEN"], "ca_pem": ca})
    assert "Connected: Kubernetes v1." in browser.find_element(By.CLASS_NAME, "flash").text
    row = browser.find_element(By.XPATH, "//td[a[text()='source']]/..")
    assert "Connected" in row.text
    screenshot(browser, "clusters")
    browser.get(stack.url + "/repositories/new")
    fill(browser, "/repositories", {"name": "minio", "kind": "s3-compatible", "bucket": bucket,
                                    "endpoint": testenv["S3_ENDPOINT"], "access_key": testenv["S3_ACCESS_KEY"],
                                    "secret_key": testenv["S3_SECRET_KEY"]})
    assert "Connected" in browser.find_element(By.CLASS_NAME, "flash").text
    row = browser.find_element(By.XPATH, "//td[a[text()='minio']]/..")
    assert "Connected" in row.text
    screenshot(browser, "repositories")
