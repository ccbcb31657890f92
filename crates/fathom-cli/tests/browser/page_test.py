"""Drives fathom's search page in a real headless Chromium (Selenium, Debian's chromedriver).

    python page_test.py image BASE_URL QUERY_IMAGE EXPECTED_FILE SCREENSHOT_DIR CHROMIUM CHROMEDRIVER
    python page_test.py text BASE_URL TEXT SCREENSHOT_DIR CHROMIUM CHROMEDRIVER

image: loads the page, waits for the collections, searches with QUERY_IMAGE through the
file input and checks that the first result is EXPECTED_FILE, then searches by that item
("Similar") and checks it comes first again, and checks the drop zone is reachable by
keyboard.

text (a CLIP server over an IVF collection): searches TEXT through the text box and
checks the first result is the API's first answer to the same text, that recall against
exact search is shown, and that "Recall vs speed" tabulates every nprobe up to all lists
with recall never falling as nprobe grows and reaching 1.

Screenshots go to SCREENSHOT_DIR. Exits non-zero with a message on failure.
"""

import json
import sys
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


def chrome(chromium, chromedriver):
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900"]:
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(chromedriver), options=options)


def image_search(base, query, expected, shots, chromium, chromedriver):
    driver = chrome(chromium, chromedriver)
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


def api_search(base, body):
    req = urllib.request.Request(base + "/collections/images/search", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)["results"]


def text_search(base, text, shots, chromium, chromedriver):
    expected = str(api_search(base, {"text": text, "top_k": 1})[0]["id"])
    driver = chrome(chromium, chromedriver)
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(base + "/")
        wait.until(lambda d: "text finds images" in d.find_element(By.ID, "stats").text)
        driver.find_element(By.ID, "text").send_keys(text)
        driver.find_element(By.ID, "textsearch").click()
        wait.until(lambda d: "recall@" in d.find_element(By.ID, "status").text)
        first = driver.find_element(By.CSS_SELECTOR, "#grid li").get_attribute("data-id")
        if first != expected:
            raise SystemExit(f"the page put item {first} first for {text!r}; the API puts {expected}")
        shown = driver.find_element(By.ID, "status").text
        r = float(shown.split("recall@")[1].split()[1])
        if not 0 <= r <= 1:
            raise SystemExit(f"recall {r} out of range: {shown!r}")
        driver.save_screenshot(f"{shots}/text-search.png")

        driver.find_element(By.ID, "sweepbtn").click()
        wait.until(lambda d: "measured" in d.find_element(By.ID, "status").text)
        rows = [[c.text for c in tr.find_elements(By.CSS_SELECTOR, "th, td")]
                for tr in driver.find_elements(By.CSS_SELECTOR, "#sweep tbody tr")]
        settings = [row[0] for row in rows]
        recalls = [float(row[2]) for row in rows]
        if settings[-1] != "exact" or recalls[-1] != 1 or len(rows) < 4:
            raise SystemExit(f"the sweep table is not complete: {rows}")
        probed = recalls[1:-1]  # nprobe 2, 4, …, every list
        if any(b < a for a, b in zip(probed, probed[1:])) or probed[-1] != 1:
            raise SystemExit(f"recall must grow with nprobe and reach 1 with every list: {rows}")
        driver.save_screenshot(f"{shots}/recall-sweep.png")
        print(f"ok: item {expected} first for {text!r}; sweep {rows}")
    finally:
        driver.quit()


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    {"image": image_search, "text": text_search}[mode](*args)
