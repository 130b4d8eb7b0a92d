"""A person in a real browser: sign up, sign out, sign in, see the overview."""
import os

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import fill, gone, screenshot, signup
from conftest import unique


def test_signup_signin_and_home_page_in_chromium(stack, browser):
    org, email = unique("Browser Org "), unique("browser") + "@example.test"
    signup(browser, stack, {"org": org, "display_name": "Bea Browser", "email": email,
                              "password": "browser password 1"})
    assert browser.find_element(By.TAG_NAME, "h1").text == org
    signout = browser.find_element(By.CSS_SELECTOR, 'form[action="/signout"] button')
    signout.click()
    WebDriverWait(browser, 15).until(gone(signout))
    assert "Sign in" in browser.find_element(By.TAG_NAME, "h1").text
    fill(browser, "/signin", {"email": email, "password": "wrong password"})
    assert "Email or password is wrong." in browser.find_element(By.CLASS_NAME, "form-error").text
    fill(browser, "/signin", {"email": email, "password": "browser password 1"})
    assert browser.find_element(By.TAG_NAME, "h1").text == org
    assert "Bea Browser" in browser.find_element(By.CLASS_NAME, "who").text
    path = screenshot(browser, "home")
    assert os.path.getsize(path) > 10000
