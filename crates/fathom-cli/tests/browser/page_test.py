"""Drives fathom's search page in a real headless Chromium (Selenium, Debian's chromedriver).

    python page_test.py BASE_URL QUERY_IMAGE EXPECTED_FILE SCREENSHOT_DIR CHROMIUM CHROMEDRIVER

Loads the page, waits for the collections, searches with QUERY_IMAGE through the file
input and checks that the first result is EXPECTED_FILE, then searches by that item
("Similar") and checks it comes first again, and checks the drop zone is reachable by
keyboard. Screenshots go to SCREENSHOT_DIR. Exits non-zero with a message on failure.
"""

import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


def main():
    base, query, expected, shots, chromium, chromedriver = sys.argv[1:7]
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(base + "/")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#collection option"))
        wait.until(lambda d: "items" in d.find_element(By.ID, "stats").text)
        driver.save_screenshot(f"{shots}/page.png")

        driver.find_element(By.ID, "file").send_keys(query)
        wait.until(lambda d: "results in" in d.find_element(By.ID, "status").text)
        first = driver.find_element(By.CSS_SELECTOR, "#grid li")
        meta = first.find_element(By.CLASS_NAME, "meta").text
        if expected not in meta:
            raise SystemExit(f"the first result is not {expected}: {meta!r}")
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#grid li img").get_attribute("src"))
        driver.save_screenshot(f"{shots}/image-search.png")

        first_id = first.get_attribute("data-id")
        first.find_element(By.TAG_NAME, "button").click()
        wait.until(EC.staleness_of(first))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#grid li"))
        again = driver.find_element(By.CSS_SELECTOR, "#grid li").get_attribute("data-id")
        if again != first_id:
            raise SystemExit(f"'Similar' on item {first_id} put item {again} first")
        driver.save_screenshot(f"{shots}/similar.png")

        # Keyboard: the drop zone takes focus with Tab like the controls around it.
        driver.execute_script("document.getElementById('file').focus()")
        ActionChains(driver).send_keys(Keys.TAB).perform()
        if driver.switch_to.active_element.get_attribute("id") != "drop":
            raise SystemExit("Tab from the file input does not reach the drop zone")
        print(f"ok: {expected} first (item {first_id})")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
