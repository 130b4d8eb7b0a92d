"""Headless Chromium (Debian's chromium and chromium-driver) driven through Selenium."""
import os
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

ARTIFACTS = os.environ.get("STOWAGE_ARTIFACTS",
                           os.path.join(os.path.dirname(__file__), "..", "..", "build", "artifacts"))


def new_browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='stowage-chromium-')}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.implicitly_wait(5)
    return driver


def gone(element):
    """A wait condition: element left the document (the next page replaced it). Chromium may
    report that as 'Node ... does not belong to the document' rather than a stale element."""
    def check(_driver):
        try:
            element.is_enabled()
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if "does not belong to the document" in str(e):
                return True
            raise
    return check


def fill(driver, form_action, values):
    """Types values into the named inputs of the form posting to form_action and submits it."""
    form = driver.find_element(By.CSS_SELECTOR, f'form[action="{form_action}"]')
    for name, value in values.items():
        el = form.find_element(By.NAME, name)
        if el.tag_name == "select":
            el.find_element(By.CSS_SELECTOR, f'option[value="{value}"]').click()
        else:
            el.clear()
            el.send_keys(value)
    form.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
    # The answer is a new page: wait until the old form is gone before anyone looks.
    WebDriverWait(driver, 15).until(gone(form))


def screenshot(driver, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name + ".png")
    driver.save_screenshot(path)
    return path


def signup(driver, stack, values):
    """Signs up through the form, then confirms the address as the person would: opens the link
    from the mail the real SMTP server received and presses its button. Signed in after."""
    before = len(stack.mail.links_to(values["email"], "/confirm/"))
    driver.get(stack.url + "/signup")
    fill(driver, "/signup", values)
    assert driver.find_element(By.TAG_NAME, "h1").text == "Check your mail"
    link = stack.mail.link(values["email"], "/confirm/", before + 1)
    driver.get(stack.url + link)
    fill(driver, link, {})
