"""In Chromium: a plan's test-restore settings filled in (cluster, check script) on its page, then
a backup's Test restore form, the job page following the job to its end, and the backup's page
showing the check that passed (screenshots)."""
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import fill, screenshot
from conftest import unique
from fixtures_testenv import kubectl
from test_backup_job import Tenant
from test_test_restore import CHECK


def test_a_test_restore_from_the_forms_in_chromium(stack, testenv, browser):
    tenant = Tenant(stack, testenv, prefix="browsertr")
    email = tenant.sql_one("SELECT u.email FROM stowage.users u JOIN stowage.memberships m ON m.user_id = u.id "
                           "WHERE m.org_id = %s", (tenant.org_id,))[0]
    ns = unique("trbrowser")
    kubectl(testenv, "source", "create", "namespace", ns)
    try:
        kubectl(testenv, "source", "-n", ns, "create", "configmap", "orders", "--from-literal=rows=1000")
        plan, job_id = tenant.queue_backup([ns])
        job = tenant.wait_job(job_id)
        assert job["state"] == "succeeded", job["error"]
        backup_id = job["backup_id"]
        plan_id = tenant.sql_one("SELECT id FROM stowage.backup_plans WHERE name = %s AND org_id = %s",
                                 (plan, tenant.org_id))[0]

        browser.get(stack.url + "/signin")
        fill(browser, "/signin", {"email": email, "password": "correct horse battery"})
        # the plan's settings: where its test restores go and the check they run
        browser.get(stack.url + f"/backup-plans/{plan_id}/jobs")
        fill(browser, f"/backup-plans/{plan_id}/test-restore",
             {"cluster_id": str(tenant.cluster_id), "hook_script": CHECK.strip()})
        assert "Test restore settings saved (on demand only)." in browser.find_element(By.CLASS_NAME, "flash").text
        assert "On demand only" in browser.find_element(By.ID, "plan-test-restore").text

        # the backup's Test restore: the job page, followed to its end
        browser.get(stack.url + f"/backups/{backup_id}")
        assert "This backup has not been test-restored." in browser.find_element(By.ID, "backup-test-restores").text
        screenshot(browser, "backup-test-restore-form")
        fill(browser, f"/backups/{backup_id}/test-restore", {"cluster_id": str(tenant.cluster_id)})
        assert "/jobs/" in browser.current_url
        assert "test_restore job #" in browser.find_element(By.TAG_NAME, "h1").text
        WebDriverWait(browser, 300).until(
            lambda d: d.find_element(By.ID, "job-state").text.lower() in ("succeeded", "failed"))
        assert browser.find_element(By.ID, "job-state").text.lower() == "succeeded"
        screenshot(browser, "test-restore-job")
        test_job = int(browser.current_url.rstrip("/").rsplit("/", 1)[1])

        # the backup's page: the test restore passed, with its check's output
        browser.get(stack.url + f"/backups/{backup_id}")
        row = browser.find_element(By.ID, "backup-test-restores").find_element(
            By.XPATH, f'.//a[@href="/jobs/{test_job}"]/ancestor::tr')
        assert "passed" in row.text.lower() and "inline-1: succeeded" in row.text, row.text
        screenshot(browser, "backup-test-restored")
    finally:
        kubectl(testenv, "source", "delete", "namespace", ns, "--wait=false", check=False)
