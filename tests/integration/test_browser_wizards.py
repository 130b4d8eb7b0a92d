"""In Chromium: the backup wizard walked page by page (the namespace filter narrowing the list as
one types), "Backup" and its confirmation, the job page following its job by itself (job.js)
from queued to a final state, then the restore wizard up to "Activate"."""
import os
import subprocess
import time

import boto3
import psycopg2
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from browser import fill, gone, screenshot, signup
from conftest import TOP, unique

FINAL = ("succeeded", "failed", "partially_failed", "cancelled")


def submit(driver, text):
    """Clicks the submit button labelled text and waits for the next page; a page that waits for
    a runner to read the cluster ("Reading the cluster…") is followed until its answer is there
    (live.js sends the form again)."""
    button = driver.find_element(By.XPATH, f"//button[normalize-space()='{text}']")
    button.click()
    WebDriverWait(driver, 20).until(gone(button))
    WebDriverWait(driver, 60, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: not d.find_elements(By.ID, "live-pending"))


def db(stack, sql, params=()):
    conn = psycopg2.connect(stack.pg_dsn_owner)
    with conn, conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
    conn.close()
    return rows


def test_backup_and_restore_wizards_in_chromium(stack, testenv, browser):
    ns = unique("web-shop-")
    subprocess.run([os.path.join(TOP, "scripts", "testenv", "fixture-app"), testenv["SOURCE_KUBECONFIG"], ns,
                    testenv["SOURCE_VOLUME_DIR"]], check=True, env=dict(os.environ, KUBECTL=testenv["KUBECTL"]))
    s3 = boto3.client("s3", endpoint_url=testenv["S3_ENDPOINT"], region_name=testenv["S3_REGION"],
                      aws_access_key_id=testenv["S3_ACCESS_KEY"], aws_secret_access_key=testenv["S3_SECRET_KEY"])
    bucket = unique("wizard-")
    s3.create_bucket(Bucket=bucket)
    email = unique("wiz") + "@x.test"
    signup(browser, stack, {"org": unique("Wizard Org "), "display_name": "Wiz", "email": email,
                              "password": "browser password 3"})
    for which, name in (("SOURCE", "source"), ("TARGET", "target")):
        with open(testenv[f"{which}_CA_FILE"]) as f:
            ca = f.read()
        browser.get(stack.url + "/clusters/new")
        fill(browser, "/clusters", {"name": name, "api_url": testenv[f"{which}_API_URL"],
                                    "token": testenv[f"{which}_ADMIN_TOKEN"], "ca_pem": ca})
    browser.get(stack.url + "/repositories/new")
    fill(browser, "/repositories", {"name": "minio", "kind": "s3-compatible", "bucket": bucket, "prefix": "wizard",
                                    "endpoint": testenv["S3_ENDPOINT"], "access_key": testenv["S3_ACCESS_KEY"],
                                    "secret_key": testenv["S3_SECRET_KEY"]})

    # the backup wizard
    browser.get(stack.url + "/backup-plans")
    browser.find_element(By.LINK_TEXT, "New backup plan").click()
    browser.find_element(By.NAME, "name").send_keys("web-shop")
    Select(browser.find_element(By.NAME, "cluster_id")).select_by_visible_text("source")
    Select(browser.find_element(By.NAME, "repository_id")).select_by_visible_text("minio")
    browser.find_element(By.CSS_SELECTOR, 'input[name="schedule_kind"][value="cron"]').click()
    browser.find_element(By.NAME, "cron").send_keys("0 3 * * 1-5")
    # the next runs, previewed by the scheduler's own reading of the expression
    WebDriverWait(browser, 10).until(lambda d: "Next runs: Mon" in d.find_element(By.ID, "schedule-preview").text
                                     or "Next runs: T" in d.find_element(By.ID, "schedule-preview").text
                                     or "Next runs: Wed" in d.find_element(By.ID, "schedule-preview").text
                                     or "Next runs: Fri" in d.find_element(By.ID, "schedule-preview").text)
    assert "03:00" in browser.find_element(By.ID, "schedule-preview").text
    browser.find_element(By.NAME, "cron").send_keys("0")  # "0 3 * * 1-50"
    WebDriverWait(browser, 10).until(lambda d: "Cron expression:" in d.find_element(By.ID, "schedule-preview").text)
    browser.find_element(By.NAME, "cron").send_keys("\b")
    screenshot(browser, "backup-wizard-1")
    submit(browser, "Next")
    assert "2. Namespaces" in browser.find_element(By.CSS_SELECTOR, '[aria-current="step"]').text
    rows = browser.find_elements(By.CSS_SELECTOR, "#ns-list li")
    assert len(rows) > 3
    browser.find_element(By.ID, "ns-filter").send_keys("web-shop")  # filtered as one types, no round trip
    visible = [r.get_attribute("data-name") for r in rows if r.is_displayed()]
    assert ns in visible and "kube-system" not in visible and "default" not in visible
    browser.find_element(By.CSS_SELECTOR, f'input[name="namespaces"][value="{ns}"]').click()
    screenshot(browser, "backup-wizard-2")
    submit(browser, "Next")
    claims = browser.find_element(By.TAG_NAME, "table").text
    assert "wordpress-data" in claims and "data-mysql-1" in claims and "fast-ssd" in claims
    screenshot(browser, "backup-wizard-3")
    submit(browser, "Next")
    Select(browser.find_element(By.NAME, f"method:{ns}/wordpress-data")).select_by_value("snapshot")
    screenshot(browser, "backup-wizard-4")
    submit(browser, "Next")
    submit(browser, "Back")  # Back keeps what was chosen
    assert Select(browser.find_element(By.NAME, f"method:{ns}/wordpress-data")).first_selected_option.get_attribute(
        "value") == "snapshot"
    submit(browser, "Next")
    browser.find_element(By.NAME, "hook_script").send_keys('log("before the backup")')
    screenshot(browser, "backup-wizard-5")
    submit(browser, "Finish")
    assert "Backup plan web-shop saved" in browser.find_element(By.CLASS_NAME, "flash").text
    plan_id = int(browser.current_url.rstrip("/").split("/")[-2])

    # the cluster's two job slots are taken by three jobs, so that the backup waits in the queue
    org_id, cluster_id = db(stack, "SELECT org_id, cluster_id FROM stowage.backup_plans WHERE id = %s", (plan_id,))[0]
    holders = [row[0] for row in db(stack, "INSERT INTO stowage.jobs (org_id, kind, cluster_id, state, started_at) "
                                           "SELECT %s, 'backup', %s, 'running', now() FROM generate_series(1, 3) "
                                           "RETURNING id", (org_id, cluster_id))]
    try:
        submit(browser, "Backup")
        assert "Run a backup now?" in browser.page_source
        submit(browser, "Back up now")
        bar = browser.find_element(By.ID, "job-progress")
        assert browser.find_element(By.ID, "job-state").text.lower() == "queued"
        assert browser.find_element(By.ID, "job-queue").text == "3 jobs ahead of it on this cluster"
        # job.js follows the job instead of the "Refresh" link
        WebDriverWait(browser, 10).until(lambda d: not d.find_element(By.ID, "job-refresh").is_displayed())
        screenshot(browser, "job-queued")
        db(stack, "UPDATE stowage.jobs SET state = 'failed', finished_at = now() WHERE id = %s", (holders[0],))
        WebDriverWait(browser, 10).until(
            lambda d: d.find_element(By.ID, "job-queue").text == "2 jobs ahead of it on this cluster")
        assert bar.get_attribute("max") == "100"  # the same element: updated in place, not reloaded
    finally:
        db(stack, "UPDATE stowage.jobs SET state = 'failed', finished_at = now() WHERE id = ANY(%s)", (holders,))
    # the runners take the job; the page follows it to its end by itself
    WebDriverWait(browser, 90, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: d.find_element(By.ID, "job-state").text.lower() in FINAL)
    state = browser.find_element(By.ID, "job-state").text.lower()
    percent = browser.find_element(By.ID, "job-progress").get_attribute("value")
    if state == "succeeded":
        assert percent == "100"
    else:
        assert browser.find_element(By.ID, "job-error").text  # says why
    screenshot(browser, "job-finished")
    job_id = int(browser.current_url.rstrip("/").split("/")[-1])

    # a completed backup to restore: the engine's, or one recorded like the engine records it
    backup = db(stack, "SELECT id FROM stowage.backups WHERE plan_id = %s AND state = 'completed'", (plan_id,))
    if not backup:
        backup = db(stack, "INSERT INTO stowage.backups (org_id, plan_id, cluster_id, repository_id, name, namespaces, "
                           "state, resource_count, bytes, completed_at) SELECT org_id, id, cluster_id, repository_id, "
                           "%s, namespaces, 'completed', 40, 3145728, now() FROM stowage.backup_plans WHERE id = %s "
                           "RETURNING id", (unique("web-shop-"), plan_id))
    backup_id = backup[0][0]

    # the restore wizard
    browser.get(stack.url + "/restore-plans")
    browser.find_element(By.LINK_TEXT, "New restore plan").click()
    browser.find_element(By.NAME, "name").send_keys("web-shop-copy")
    Select(browser.find_element(By.NAME, "target_cluster_id")).select_by_visible_text("target")
    browser.find_element(By.NAME, "namespace_map").send_keys(f"{ns}:{ns}-copy")
    browser.find_element(By.NAME, "storage_class_map").send_keys("fast-ssd:standard-nfs")
    Select(browser.find_element(By.NAME, "existing_policy")).select_by_value("update")
    screenshot(browser, "restore-wizard-1")
    submit(browser, "Next")
    browser.find_element(By.CSS_SELECTOR, f'input[name="backup_plan_id"][value="{plan_id}"]').click()
    screenshot(browser, "restore-wizard-2")
    submit(browser, "Next")
    browser.find_element(By.CSS_SELECTOR, f'input[name="backup_id"][value="{backup_id}"]').click()
    screenshot(browser, "restore-wizard-3")
    submit(browser, "Next")
    browser.find_element(By.NAME, "hook_script").send_keys("-- point the ingress at the new cluster")
    submit(browser, "Finish")
    assert "Restore plan web-shop-copy saved" in browser.find_element(By.CLASS_NAME, "flash").text
    screenshot(browser, "restore-plan")
    submit(browser, "Activate")
    assert f"{ns} → {ns}-copy" in browser.page_source
    screenshot(browser, "restore-activate")
    submit(browser, "Restore now")
    assert browser.find_element(By.TAG_NAME, "h1").text.lower().startswith("restore job")
    restore_job = int(browser.current_url.rstrip("/").split("/")[-1])
    assert restore_job > job_id
    WebDriverWait(browser, 90, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: d.find_element(By.ID, "job-state").text.lower() in FINAL)
    screenshot(browser, "restore-job")
    assert db(stack, "SELECT kind, backup_id FROM stowage.jobs WHERE id = %s", (restore_job,)) == [("restore", backup_id)]
