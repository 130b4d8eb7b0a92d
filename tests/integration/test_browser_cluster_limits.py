"""In Chromium: a cluster's Limits page (issue 16: bandwidth windows in the cluster's time zone and
jobs at once). A rule in error is named on its field and nothing is saved; a good one is saved,
shown again on the page and in its JSON."""
import re

from selenium.webdriver.common.by import By

from browser import fill, screenshot, signup
from conftest import unique


def test_cluster_limits_in_chromium(stack, testenv, browser):
    signup(browser, stack, {"org": unique("Limits Org "), "display_name": "Li", "email": unique("li") + "@x.test",
                              "password": "browser password 3"})
    browser.get(stack.url + "/clusters/new")
    with open(testenv["SOURCE_CA_FILE"]) as f:
        ca = f.read()
    fill(browser, "/clusters", {"name": "paced", "api_url": testenv["SOURCE_API_URL"],
                                "token": testenv["SOURCE_ADMIN_TOKEN"], "ca_pem": ca})
    href = browser.find_element(By.XPATH, "//td/a[text()='paced']").get_attribute("href")
    cluster_id = re.search(r"/clusters/(\d+)", href).group(1)
    browser.get(f"{stack.url}/clusters/{cluster_id}")
    browser.find_element(By.LINK_TEXT, "Limits").click()
    action = f"/clusters/{cluster_id}/limits"
    assert browser.current_url.endswith(action)

    fill(browser, action, {"time_zone": "Mars/Olympus", "concurrency": "1",
                           "bandwidth": "both 10MB/s mon-fri 08:00-20:00\nupload 5 Mbit/s daily 22:00-06:00"})
    errors = " ".join(e.text for e in browser.find_elements(By.CLASS_NAME, "field-error"))
    assert 'Time zone: "Mars/Olympus" is not a known IANA time zone' in errors, errors
    assert "Bandwidth windows:" in errors and "line 2" in errors, errors
    screenshot(browser, "cluster-limits-refused")
    state = stack_limits(stack, browser, cluster_id)
    assert state["fields"]["time_zone"]["value"] == "UTC" and state["rules"] == [], state  # nothing half-saved

    fill(browser, action, {"time_zone": "Europe/Paris", "concurrency": "1",
                           "bandwidth": "both 10MB/s mon-fri 08:00-20:00\nupload 5MiB/s sat,sun 22:00-06:00"})
    assert "Limits of cluster paced saved: 2 bandwidth windows" in browser.find_element(By.CLASS_NAME, "flash").text
    assert browser.find_element(By.NAME, "time_zone").get_attribute("value") == "Europe/Paris"
    assert browser.find_element(By.NAME, "concurrency").get_attribute("value") == "1"
    shown = browser.find_element(By.NAME, "bandwidth").get_attribute("value")
    assert "10MB/s" in shown and "5MiB/s" in shown and "22:00-06:00" in shown, shown
    screenshot(browser, "cluster-limits")
    state = stack_limits(stack, browser, cluster_id)
    assert state["fields"]["time_zone"]["value"] == "Europe/Paris" and state["fields"]["concurrency"]["value"] == "1"
    assert [(x["direction"], x["bytes_per_second"], x["start"], x["end"]) for x in state["rules"]] == [
        ("both", 10_000_000, "08:00", "20:00"), ("upload", 5 * 1048576, "22:00", "06:00")], state


def stack_limits(stack, browser, cluster_id):
    """The page's JSON, asked with the browser's session."""
    import requests
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    r = requests.get(f"{stack.url}/clusters/{cluster_id}/limits", cookies=cookies,
                     headers={"Accept": "application/json"}, allow_redirects=False)
    assert r.status_code == 200, r.text[:300]
    return r.json()
