"""In Chromium (screenshots): a backup's object opened from its page, "reading…" until a runner
has read it, then its YAML with the Secret's values masked; Download leading to the job whose
page links the decrypted archive; a restore plan's Edit opening the wizard with its values; the
restore wizard's object picker: the backup's objects as boxes, one ticked and carried to the
next step."""
import json

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import fill, gone, screenshot
from conftest import unique
from fixtures_testenv import kubectl
from test_backup_job import Tenant


def test_an_object_a_download_and_an_edit_in_chromium(stack, testenv, browser):
    tenant = Tenant(stack, testenv, prefix="browser-day-two")
    email = tenant.sql_one("SELECT u.email FROM stowage.users u JOIN stowage.memberships m ON m.user_id = u.id "
                           "WHERE m.org_id = %s", (tenant.org_id,))[0]
    ns = unique("shop-")
    kubectl(testenv, "source", "create", "namespace", ns)
    kubectl(testenv, "source", "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns},
         "data": {"colour": "blue"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": ns},
         "stringData": {"token": "s3cr3t-in-chromium"}}]}))
    plan, job_id = tenant.queue_backup([ns])
    job = tenant.wait_job(job_id)
    assert job["state"] == "succeeded", job["error"]
    backup_id = job["backup_id"]

    browser.get(stack.url + "/signin")
    fill(browser, "/signin", {"email": email, "password": "correct horse battery"})
    browser.get(stack.url + f"/backups/{backup_id}")
    row = [r for r in browser.find_elements(By.CSS_SELECTOR, "#backup-resources tbody tr") if "v1/Secret" in r.text][0]
    row.find_element(By.TAG_NAME, "summary").click()
    link = row.find_element(By.LINK_TEXT, f"{ns}/token")
    link.click()
    WebDriverWait(browser, 15).until(gone(link))
    # "reading…" until the runner answers; live.js reloads the page then
    yaml = WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.ID, "object-yaml"))[0]
    assert "token: '********'" in yaml.text and f"namespace: {ns}" in yaml.text
    assert "s3cr3t-in-chromium" not in browser.page_source
    assert "masked" in browser.find_element(By.ID, "object-masked").text
    screenshot(browser, "backup-object")

    browser.get(stack.url + f"/backups/{backup_id}")
    button = browser.find_element(By.CSS_SELECTOR, "#backup-download button")
    button.click()
    WebDriverWait(browser, 15).until(gone(button))
    assert "/jobs/" in browser.current_url
    archive = WebDriverWait(browser, 120).until(lambda d: d.find_elements(By.ID, "job-archive-link"))[0]
    assert archive.get_attribute("href").endswith("/archive.tar.gz")
    assert "download" in browser.find_element(By.TAG_NAME, "h1").text
    screenshot(browser, "backup-download")

    # a restore plan of this backup, then Edit: the wizard with its values
    plan_id = tenant.sql_one(
        "INSERT INTO stowage.restore_plans (org_id, name, target_cluster_id, backup_id, namespace_map) "
        "VALUES (%s, 'shop-copy', %s, %s, %s) RETURNING id",
        (tenant.org_id, tenant.cluster_id, backup_id, json.dumps({ns: ns + "-copy"})))[0]
    browser.get(stack.url + "/restore-plans")
    edit = browser.find_element(By.CSS_SELECTOR, f'a[href="/restore-plans/{plan_id}/edit"]')
    edit.click()
    WebDriverWait(browser, 15).until(gone(edit))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Edit restore plan"
    assert browser.find_element(By.NAME, "name").get_attribute("value") == "shop-copy"
    assert browser.find_element(By.NAME, "namespace_map").get_attribute("value") == f"{ns}:{ns}-copy"
    screenshot(browser, "restore-plan-edit")

    # the wizard's backup step offers the backup's objects as boxes, the cluster-scoped apart
    backup_plan_id = tenant.sql_one("SELECT id FROM stowage.backup_plans WHERE name = %s", (plan,))[0]
    browser.get(stack.url + f"/restore-plans/new?step=3&name=pick-one&target_cluster_id={tenant.cluster_id}"
                f"&existing_policy=skip&backup_plan_id={backup_plan_id}&backup_id={backup_id}")
    box = browser.find_element(By.CSS_SELECTOR, f'input[name="object"][value="configmaps/{ns}/settings"]')
    assert not box.is_selected()
    box.click()
    groups = browser.find_elements(By.CSS_SELECTOR, "#object-picker .cluster-scoped legend")
    assert any("namespaces" in g.text for g in groups), [g.text for g in groups]
    browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.ID, "object-picker"))
    screenshot(browser, "restore-object-picker")
    # the filter works without JavaScript: the step's own button posts it
    fill_filter = browser.find_element(By.NAME, "object_filter")
    fill_filter.send_keys("token")
    listed = browser.find_element(By.ID, "object-list")
    listed.click()
    WebDriverWait(browser, 15).until(gone(listed))
    values = [b.get_attribute("value") for b in browser.find_elements(By.CSS_SELECTOR, 'input[name="object"]')]
    assert values == [f"secrets/{ns}/token"], values
    # the ticked ConfigMap, no longer on the page, stays chosen
    assert browser.find_element(By.NAME, "objects").get_attribute("value") == f"configmaps/{ns}/settings"
    next_button = browser.find_element(By.CSS_SELECTOR, ".wizard-buttons button[type=submit]")
    next_button.click()
    WebDriverWait(browser, 15).until(gone(next_button))
    carried = browser.find_element(By.CSS_SELECTOR, 'input[type=hidden][name="objects"]').get_attribute("value")
    assert carried == f"configmaps/{ns}/settings"
