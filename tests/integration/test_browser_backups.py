"""In Chromium: the backups page and a backup's page of a real backup (screenshots), its Restore
opening the restore wizard with the backup chosen, and its Delete running to the end."""
import json
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import fill, gone, screenshot
from conftest import unique
from fixtures_testenv import kubectl
from test_backup_job import Tenant


def test_backups_and_a_backups_page_in_chromium(stack, testenv, browser):
    tenant = Tenant(stack, testenv, prefix="browser")
    email = tenant.sql_one("SELECT u.email FROM stowage.users u JOIN stowage.memberships m ON m.user_id = u.id "
                           "WHERE m.org_id = %s", (tenant.org_id,))[0]
    ns = unique("shop-")
    kubectl(testenv, "source", "create", "namespace", ns)
    kubectl(testenv, "source", "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns},
         "data": {"colour": "blue"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": ns},
         "stringData": {"token": "s3cr3t-value"}}]}))
    plan, job_id = tenant.queue_backup([ns])
    job = tenant.wait_job(job_id)
    assert job["state"] == "succeeded", job["error"]
    backup_id = job["backup_id"]
    name = tenant.backup_row(backup_id)["name"]

    browser.get(stack.url + "/signin")
    fill(browser, "/signin", {"email": email, "password": "correct horse battery"})
    browser.get(stack.url + "/")
    assert "1" in browser.find_element(By.ID, "overview-counts").text
    assert "minio" in browser.find_element(By.ID, "overview-storage").text
    screenshot(browser, "overview")
    browser.get(stack.url + "/backups")
    fill(browser, "/backups", {"namespace": ns})
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-id="{backup_id}"]')
    assert name in row.text and "completed" in row.text.lower() and plan in row.text and "source" in row.text
    screenshot(browser, "backups")
    # a wrong date is said next to its field
    fill(browser, "/backups", {"from": "2026-13-01"})
    assert "From: a date written YYYY-MM-DD" in browser.find_element(By.CLASS_NAME, "field-error").text

    browser.get(stack.url + f"/backups?namespace={ns}")
    browser.find_element(By.LINK_TEXT, name).click()
    WebDriverWait(browser, 15).until(lambda d: d.find_element(By.TAG_NAME, "h1").text == f"Backup {name}")
    resources = browser.find_element(By.ID, "backup-resources").text
    assert "v1/ConfigMap" in resources and "v1/Secret" in resources
    assert "s3cr3t-value" not in browser.page_source  # names only, never a Secret's data
    assert "archive and resource list uploaded" in browser.find_element(By.ID, "backup-log").text
    screenshot(browser, "backup")

    restore = browser.find_element(By.ID, "backup-restore")
    restore.click()
    WebDriverWait(browser, 15).until(gone(restore))
    assert browser.find_element(By.TAG_NAME, "h1").text == "New restore plan"
    assert browser.find_element(By.CSS_SELECTOR, 'input[type="hidden"][name="backup_id"]').get_attribute("value") == \
        str(backup_id)

    browser.get(stack.url + f"/backups/{backup_id}")
    button = browser.find_element(By.CSS_SELECTOR, "#backup-delete button")
    button.click()
    WebDriverWait(browser, 15).until(gone(button))
    # the delete job's page, which follows the job to its end (and reloads then)
    assert "/jobs/" in browser.current_url
    WebDriverWait(browser, 120).until(
        lambda d: "succeeded" in d.find_element(By.ID, "job-state").text.lower())
    assert "delete_backup" in browser.find_element(By.TAG_NAME, "h1").text
    screenshot(browser, "backup-deleted")
    deadline = time.time() + 120
    while tenant.sql("SELECT 1 FROM stowage.backups WHERE id = %s", (backup_id,)) and time.time() < deadline:
        time.sleep(0.3)
    browser.get(stack.url + f"/backups?namespace={ns}")
    assert "No backup matches." in browser.find_element(By.ID, "backups").text
    kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false")
