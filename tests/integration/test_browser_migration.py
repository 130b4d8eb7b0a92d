"""In Chromium: walk the migration wizard (clusters, namespace, a StorageClass per claim), run the
pre-check, pre-copy, cut over, and watch each job page reach its end (the cutover's downtime)."""
import os
import subprocess
import time

import boto3
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from browser import fill, gone, screenshot, signup
from conftest import TOP, unique
from test_migration import provide_target_volumes


def add_cluster(browser, stack, name, url, token, ca_file):
    browser.get(stack.url + "/clusters/new")
    with open(ca_file) as f:
        ca = f.read()
    fill(browser, "/clusters", {"name": name, "api_url": url, "token": token, "ca_pem": ca})
    assert "Connected" in browser.find_element(By.CLASS_NAME, "flash").text


def submit(browser, form_action):
    form = browser.find_element(By.CSS_SELECTOR, f'form[action="{form_action}"]')
    form.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
    WebDriverWait(browser, 30).until(gone(form))


def test_migration_wizard_in_chromium(stack, testenv, browser):
    ns = unique("web")
    subprocess.run([os.path.join(TOP, "scripts", "testenv", "fixture-app"), testenv["SOURCE_KUBECONFIG"], ns,
                    testenv["SOURCE_VOLUME_DIR"]], check=True, capture_output=True, timeout=300)
    bucket = unique("browser-mig-")
    boto3.client("s3", endpoint_url=testenv["S3_ENDPOINT"], region_name=testenv["S3_REGION"],
                 aws_access_key_id=testenv["S3_ACCESS_KEY"],
                 aws_secret_access_key=testenv["S3_SECRET_KEY"]).create_bucket(Bucket=bucket)
    signup(browser, stack, {"org": unique("Migrating Org "), "display_name": "Mo", "email": unique("mo") + "@x.test",
                              "password": "browser password 3"})
    add_cluster(browser, stack, "old", testenv["SOURCE_API_URL"], testenv["SOURCE_ADMIN_TOKEN"], testenv["SOURCE_CA_FILE"])
    add_cluster(browser, stack, "new", testenv["TARGET_API_URL"], testenv["TARGET_ADMIN_TOKEN"], testenv["TARGET_CA_FILE"])
    browser.get(stack.url + "/repositories/new")
    fill(browser, "/repositories", {"name": "minio", "kind": "s3-compatible", "bucket": bucket,
                                    "endpoint": testenv["S3_ENDPOINT"], "access_key": testenv["S3_ACCESS_KEY"],
                                    "secret_key": testenv["S3_SECRET_KEY"]})

    browser.get(stack.url + "/migrations/new")
    form = browser.find_element(By.CSS_SELECTOR, 'form[action="/migrations/new"]')
    form.find_element(By.NAME, "name").send_keys("to-new-cluster")
    Select(form.find_element(By.NAME, "source_cluster_id")).select_by_visible_text("old")
    Select(form.find_element(By.NAME, "target_cluster_id")).select_by_visible_text("new")
    form.find_element(By.NAME, "namespaces").send_keys(ns)
    screenshot(browser, "migration-step1")
    submit(browser, "/migrations/new")
    # "Reading both clusters…" until a runner has listed them; live.js then sends the form again
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, 'select[name^="class:"]'))
    claims = browser.find_elements(By.CSS_SELECTOR, 'select[name^="class:"]')
    assert len(claims) == 3, browser.page_source[:2000]
    for sel in claims:
        Select(sel).select_by_visible_text("standard-nfs")
    screenshot(browser, "migration-step2")
    submit(browser, "/migrations")
    assert "Migration plan saved" in browser.find_element(By.CLASS_NAME, "flash").text
    plan_url = browser.current_url

    submit(browser, plan_url.replace(stack.url, "") + "/precheck")
    # a runner reads both clusters; the page follows it (live.js) and shows the outcome
    WebDriverWait(browser, 60).until(lambda d: "No conflict in the target cluster." in d.page_source)
    provide_target_volumes(testenv, [f"{ns}/wordpress-data", f"{ns}/data-mysql-0", f"{ns}/data-mysql-1"])
    # the incremental way (docs/migration.md): pre-copy while the source runs, then cut over
    assert not browser.find_elements(By.ID, "migration-cutover-button")  # no pre-copy yet
    submit(browser, plan_url.replace(stack.url, "") + "/precopy")
    assert "Pre-copy started" in browser.find_element(By.CLASS_NAME, "flash").text
    wait_job_end(browser, "migration-precopy-job")
    assert "pre-copy" in browser.find_element(By.ID, "job-migration-mode").text
    browser.get(plan_url)
    assert "Last pre-copy:" in browser.find_element(By.ID, "migration-precopy").text
    cutover = browser.find_element(By.CSS_SELECTOR, 'form[action$="/cutover"]')
    cutover.find_element(By.NAME, "confirm").click()
    screenshot(browser, "migration-plan")
    cutover.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
    WebDriverWait(browser, 30).until(gone(cutover))
    text = wait_job_end(browser, "migration-job")
    for phase in ("pre-check", "stop source", "backup", "restore", "start target"):
        assert phase in text
    assert browser.find_element(By.ID, "job-downtime").text.endswith("s")


def wait_job_end(browser, shot):
    """The job page until its state shows the end (job.js updates it in place): main's text."""
    WebDriverWait(browser, 60).until(lambda d: "/jobs/" in d.current_url)
    deadline = time.time() + 300
    while True:
        text = browser.find_element(By.TAG_NAME, "main").text
        state = browser.find_element(By.ID, "job-state").text.lower()  # shown capitalised
        if state not in ("queued", "running"):
            break
        assert time.time() < deadline, text[:500]
        time.sleep(1)
    screenshot(browser, shot)
    assert state == "succeeded", text[:2000]
    return text
