"""The KeyRelay web console (/ui) in headless Chromium: the seed's story clicked through the pages.

Run by scripts/ui-test, which starts two servers and passes them in the environment:
  KR_URL, KR_TOKEN            `keyrelay serve --dev --manual-clock` (the story)
  KR_ACCESS_URL, KR_TOKEN_A,  `keyrelay serve --access FILE`: token A may act on instance-a only, token B on
  KR_TOKEN_B                  instance-b only (the console must never show one instance's data to the other)
  KR_SCREENSHOTS              where the screenshots go (docs/screenshots)
"""
import base64
import json
import os
import re
import urllib.parse
import uuid

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

URL = os.environ["KR_URL"]
TOKEN = os.environ["KR_TOKEN"]
ACCESS_URL = os.environ.get("KR_ACCESS_URL")
TOKEN_A = os.environ.get("KR_TOKEN_A")
TOKEN_B = os.environ.get("KR_TOKEN_B")
SHOTS = os.environ.get("KR_SCREENSHOTS", "docs/screenshots")
INSTANCE = "a1b2c3d4-0000-4000-8000-00000000c0de"
KEY_MEDIA = "application/vnd.ibm.kms.key+json"
WAIT = 20  # seconds; a condition that is never met fails the test (the console polls every 2 s)


# ----------------------------------------------------------------------------------------------------- helpers

def headers(token=TOKEN, instance=INSTANCE, **extra):
    h = {"Authorization": "Bearer " + token, "Bluemix-Instance": instance}
    h.update(extra)
    return h


def move_clock(advance):
    r = requests.post(URL + "/api/v2/_dev/clock", headers=headers(), json={"advance": advance}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["now"]


def server_now():
    r = requests.get(URL + "/api/v2/_dev/clock", headers=headers(), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["now"]


def create_bucket(key_id, name):
    """A COS bucket protected by the key, registered as COS does: through the service-to-service endpoint. The
    server's bus has no simulated COS subscribed, so this test plays COS: it acknowledges what COS would."""
    crn = f"crn:v1:bluemix:public:cloud-object-storage:global:a/keyrelay:cos-instance-1:bucket:{name}"
    path = f"/api/v2/keys/{key_id}/registrations/{urllib.parse.quote(crn, safe='')}"
    body = {"metadata": {"collectionType": "application/vnd.ibm.kms.registration_input+json", "collectionTotal": 1},
            "resources": [{"preventKeyDeletion": False, "description": f"COS bucket {name}"}]}
    r = requests.post(URL + path, headers=headers(**{"Content-Type": "application/vnd.ibm.kms.registration_input+json"}),
                      data=json.dumps(body), timeout=10)
    assert r.status_code == 201, r.text
    return crn


def drop_cos_notifications(count):
    r = requests.post(URL + "/api/v2/_dev/bus", headers=headers(),
                      json={"service": "cloud-object-storage", "dropNext": count}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["dropNext"] == count


def acknowledge_latest(key_id, crn, kind, adopter_state):
    """Acts as COS: acknowledges the newest `kind` event of the key (Key Protect's event_ack)."""
    r = requests.get(URL + f"/api/v2/_keyrelay/keys/{key_id}/events?limit=50", headers=headers(), timeout=10)
    assert r.status_code == 200, r.text
    event = next(e for e in r.json()["resources"] if e["kind"] == kind)
    body = {"metadata": {"collectionType": "application/vnd.ibm.kms.event_acknowledge+json", "collectionTotal": 1},
            "resources": [{"eventId": event["id"], "adopterKeyState": adopter_state, "resourceCrn": crn,
                           "timestamp": server_now(), "keyStateData": {"keyVersion": event["keyVersion"]["id"]}}]}
    r = requests.post(URL + "/api/v2/event_ack", headers=headers(**{"Content-Type": "application/json"}),
                      data=json.dumps(body), timeout=10)
    assert r.status_code == 204, r.text


def make_driver():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,800", "--lang=en-US", "--force-color-profile=srgb", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=options)
    driver.set_window_size(1280, 800)
    return driver


@pytest.fixture
def driver():
    d = make_driver()
    yield d
    d.quit()


def wait(driver, condition, message, timeout=WAIT):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2,
                             ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(condition)
    except TimeoutException:
        pytest.fail(message + "\n--- page text ---\n" + driver.find_element(By.TAG_NAME, "body").text)


def visible_text(driver, element_id):
    element = driver.find_element(By.ID, element_id)
    return element.text if element.is_displayed() else ""


def text_in(element_id, pattern):
    return lambda d: re.search(pattern, visible_text(d, element_id))


def screenshot(driver, name):
    os.makedirs(SHOTS, exist_ok=True)
    driver.execute_script("document.activeElement && document.activeElement.blur()")
    path = os.path.join(SHOTS, name)
    # The whole page at the window's width (Chromium's capture beyond the viewport).
    width = driver.execute_script("return document.documentElement.clientWidth")
    height = driver.execute_script("return Math.max(document.documentElement.scrollHeight, window.innerHeight)")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    return path


def sign_in(driver, base, token, instance):
    driver.get(base + "/ui/keys")
    wait(driver, EC.visibility_of_element_located((By.ID, "signin-token")), "no sign-in form")
    driver.find_element(By.ID, "signin-token").send_keys(token)
    field = driver.find_element(By.ID, "signin-instance")
    field.clear()
    field.send_keys(instance)
    driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()


def key_row(driver, name):
    for row in driver.find_elements(By.CSS_SELECTOR, "#keys-body tr"):
        if row.find_element(By.TAG_NAME, "strong").text == name:
            return row
    return None


def row_action(driver, name, action):
    """Opens the key's Actions menu and picks `action` (the data-action of the menu item). The table may be
    re-rendered by a refresh between two steps: then the steps are tried again (the console does not refresh while
    a menu is open)."""
    for _ in range(5):
        try:
            row = wait(driver, lambda d: key_row(d, name), f"no row for key {name}")
            row.find_element(By.CSS_SELECTOR, ".actions-button").click()
            item = row.find_element(By.CSS_SELECTOR, f'[role="menuitem"][data-action="{action}"]')
            wait(driver, lambda d: item.is_displayed(), f"menu item {action} not shown")
            item.click()
            return
        except StaleElementReferenceException:
            continue
    pytest.fail(f"could not pick {action} for key {name}")


def res_cell(driver, label):
    return cell(driver.find_element(By.CSS_SELECTOR, "#resources-body tr"), label)


def cell(row, label):
    return row.find_element(By.CSS_SELECTOR, f'td[data-label="{label}"]').text


# ------------------------------------------------------------------------------------------------------- tests

def test_pages_are_served_with_a_strict_policy():
    for path in ("/ui/keys", "/ui/keys/some-id/resources", "/ui/keys/some-id/events"):
        r = requests.get(URL + path, timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert "<script src=\"/ui/assets/console.js\"" in r.text
    # Nothing of the path enters a page: the script reads the key id from the location.
    r = requests.get(URL + "/ui/keys/%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E/resources", timeout=10)
    assert r.status_code == 200 and "alert(1)" not in r.text
    # The assets are files, revalidated by their ETag.
    r = requests.get(URL + "/ui/assets/console.js", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert requests.get(URL + "/ui/assets/console.js", headers={"If-None-Match": r.headers["ETag"]}, timeout=10).status_code == 304
    # Every data endpoint the console uses needs the token.
    for path in ("/api/v2/keys", "/api/v2/_keyrelay/keys/overview", "/api/v2/_keyrelay/keys/x/associations",
                 "/api/v2/_keyrelay/keys/x/events"):
        assert requests.get(URL + path, headers={"Bluemix-Instance": INSTANCE}, timeout=10).status_code == 401


def test_seed_story_through_the_console(driver):
    # Sign in: the token goes to sessionStorage, never into the URL.
    sign_in(driver, URL, TOKEN, INSTANCE)
    wait(driver, EC.visibility_of_element_located((By.ID, "create-form")), "the keys page did not open after sign-in")
    assert TOKEN not in driver.current_url
    assert driver.execute_script("return sessionStorage.getItem('keyrelay.console.token')") == TOKEN
    assert driver.get_cookies() == []

    # Create a root key from the page.
    name = "story-root-" + uuid.uuid4().hex[:6]
    driver.find_element(By.ID, "create-name").send_keys(name)
    Select(driver.find_element(By.ID, "create-type")).select_by_value("root")
    driver.find_element(By.ID, "create-description").send_keys("protects the seed's COS bucket")
    driver.find_element(By.CSS_SELECTOR, "#create-form button[type=submit]").click()
    wait(driver, text_in("status", r"Root key “" + name + "” created"), "no creation message")
    wait(driver, lambda d: key_row(d, name), "the new key is not in the table")
    key_id = wait(driver, lambda d: key_row(d, name).get_attribute("data-key-id"), "no key id")
    wait(driver, lambda d: cell(key_row(d, name), "Type") == "Root" and cell(key_row(d, name), "State") == "Active",
         "the new key is not an active root key")

    # A second key, disabled from its Actions menu.
    other = "payroll-" + uuid.uuid4().hex[:6]
    body = {"metadata": {"collectionType": KEY_MEDIA, "collectionTotal": 1},
            "resources": [{"type": KEY_MEDIA, "name": other, "extractable": True, "description": "standard key"}]}
    r = requests.post(URL + "/api/v2/keys", headers=headers(**{"Content-Type": KEY_MEDIA}), data=json.dumps(body), timeout=10)
    assert r.status_code == 201, r.text
    driver.find_element(By.ID, "refresh").click()
    row_action(driver, other, "disable")
    wait(driver, text_in("status", f"Key “{other}” disabled"), "no disable message")
    wait(driver, lambda d: cell(key_row(d, other), "State") == "Suspended" and cell(key_row(d, other), "Type") == "Standard",
         "the disabled key is not shown suspended")
    # The menu offers what the API says the key accepts: Enable, but only 30 s after the disable (the clock stands).
    row = key_row(driver, other)
    row.find_element(By.CSS_SELECTOR, ".actions-button").click()
    enable = row.find_element(By.CSS_SELECTOR, '[role="menuitem"][data-action="enable"]')
    assert enable.get_attribute("aria-disabled") == "true" and "(from " in enable.text, enable.text
    assert row.find_elements(By.CSS_SELECTOR, '[role="menuitem"][data-action="disable"]') == []
    assert row.find_elements(By.CSS_SELECTOR, '[role="menuitem"][data-action="rotate"]') == []  # a standard key
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)  # the open menu has the focus

    # A COS bucket on it, and COS notifications dropped.
    crn = create_bucket(key_id, "seed-bucket-" + uuid.uuid4().hex[:6])
    drop_cos_notifications(1)
    driver.find_element(By.ID, "refresh").click()
    wait(driver, lambda d: key_row(d, name) and cell(key_row(d, name), "Associated resources") == "1 resource",
         "the key does not show its associated resource")

    # Delete without force: the real error, in words.
    row_action(driver, name, "delete")
    wait(driver, EC.visibility_of_element_located((By.ID, "delete-force")), "no force option in the delete dialog")
    assert "protects 1 associated resource" in driver.find_element(By.ID, "delete-text").text
    driver.find_element(By.ID, "delete-confirm").click()
    wait(driver, text_in("alert", r"Key could not be deleted: Key is protecting one or more cloud resources.*\(PROTECTED_RESOURCE_ERR, HTTP 409\)"),
         "the refused delete is not explained")

    # Delete with force.
    row_action(driver, name, "delete")
    wait(driver, EC.visibility_of_element_located((By.ID, "delete-force")), "no force option in the delete dialog")
    driver.find_element(By.ID, "delete-force").click()
    driver.find_element(By.ID, "delete-confirm").click()
    wait(driver, text_in("status", "deleted with force"), "no deletion message")

    # The default view keeps a deleted key whose resources have not acknowledged the delete, with its drift badge.
    assert Select(driver.find_element(By.ID, "state-filter")).first_selected_option.get_attribute("value") == "default"
    wait(driver, lambda d: key_row(d, name) and "Drift: 1 of 1" in cell(key_row(d, name), "Drift")
         and cell(key_row(d, name), "State") == "Destroyed", "the force-deleted key with drift left the default view")

    # Every key, deleted ones too, with the "All states" filter.
    Select(driver.find_element(By.ID, "state-filter")).select_by_value("0,1,2,3,5")
    wait(driver, lambda d: key_row(d, name) and "Drift: 1 of 1" in cell(key_row(d, name), "Drift"),
         "no drift badge on the deleted key")
    wait(driver, lambda d: cell(key_row(d, name), "State") == "Destroyed", "the key is not shown destroyed")
    assert "filter" not in driver.current_url or TOKEN not in driver.current_url
    screenshot(driver, "keys.png")

    # The operator looks at once: Synchronize is disabled on arrival, with the countdown to the API's time.
    row_action(driver, name, "resources")
    wait(driver, EC.url_contains(f"/ui/keys/{key_id}/resources"), "View associated resources did not open")
    wait(driver, text_in("sync-countdown", r"available again at .* \(in (1 h 00 min \d\d s|59 min \d\d s)\)"),
         "no countdown on arrival")
    assert not driver.find_element(By.ID, "sync-button").is_enabled()
    assert re.search(r"Sync allowed\s*from", driver.find_element(By.ID, "key-facts").text)
    screenshot(driver, "resources-countdown.png")

    # Four hours later the bucket has still not heard of it (the seed's story): the button comes back.
    move_clock("4h")
    wait(driver, lambda d: d.find_element(By.ID, "sync-button").is_enabled(), "the button did not come back after the hour")
    wait(driver, text_in("sync-countdown", r"^Synchronize is available again\.$"), "the end of the countdown is not said")
    wait(driver, text_in("drift-summary", r"Drift: 1 of 1"), "the drift summary is missing")
    wait(driver, lambda d: crn in res_cell(d, "Resource CRN") and res_cell(d, "Service") == "cloud-object-storage"
         and res_cell(d, "Prevent key deletion") == "No" and "expects DEK_DELETED" in res_cell(d, "Drift"),
         "the registration row does not show the bucket's drift")
    screenshot(driver, "resources-drift.png")

    # Synchronize: accepted, and the page says when the next one is: an hour later, counted down from now.
    driver.find_element(By.ID, "sync-button").click()
    wait(driver, text_in("sync-result", "Synchronize accepted"), "the first sync was not accepted")
    wait(driver, text_in("sync-result", r"The next sync is accepted from \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"),
         "the accepted sync does not say when the next one is")
    wait(driver, text_in("sync-countdown", r"available again at .* \(in (1 h 00 min \d\d s|59 min \d\d s)\)"),
         "no countdown after the accepted sync")
    assert "available again." not in visible_text(driver, "sync-countdown")
    assert not driver.find_element(By.ID, "sync-button").is_enabled()
    acknowledge_latest(key_id, crn, "sync", "DEK_DELETED")
    screenshot(driver, "resources-next-sync.png")

    # The dev clock moves 1 h 1 s: the button comes back.
    move_clock("1h 1s")
    wait(driver, lambda d: d.find_element(By.ID, "sync-button").is_enabled(), "the button did not come back after the hour")
    assert "available again." in visible_text(driver, "sync-countdown")

    # Two operators at once: the keys page offered Synchronize, another sync got in first: the 409, in words, with
    # the earliest time as the API gives it.
    driver.get(URL + "/ui/keys?state=0,1,2,3,5")
    row = wait(driver, lambda d: key_row(d, name), "the key is not listed")
    row.find_element(By.CSS_SELECTOR, ".actions-button").click()  # the page does not refresh while a menu is open
    item = row.find_element(By.CSS_SELECTOR, '[role="menuitem"][data-action="sync"]')
    assert item.get_attribute("aria-disabled") is None, item.text
    r = requests.post(URL + f"/api/v2/keys/{key_id}/actions/sync", headers=headers(), timeout=10)
    assert r.status_code == 204, r.text
    item.click()
    wait(driver, text_in("alert", r"Synchronize is not allowed yet"), "the 409 is not explained")
    result = visible_text(driver, "alert")
    assert "Sync cannot be performed until at least" in result and "REQ_TOO_EARLY_ERR" in result, result
    assert re.search(r"Earliest time a sync is allowed: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", result), result
    acknowledge_latest(key_id, crn, "sync", "DEK_DELETED")
    row_action(driver, name, "resources")
    wait(driver, EC.url_contains(f"/ui/keys/{key_id}/resources"), "View associated resources did not open")

    # Deliveries are acknowledged: the drift disappears from the live page.
    wait(driver, text_in("drift-summary", r"In sync"), "the drift did not disappear")
    wait(driver, lambda d: "In sync" in res_cell(d, "Drift") and "DEK_DELETED" in res_cell(d, "Last acknowledged"),
         "the registration row still shows drift")
    screenshot(driver, "resources-in-sync.png")

    # The events view: newest first, with the deliveries of each.
    driver.find_element(By.LINK_TEXT, "View events and deliveries").click()
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#events-body tr")) >= 4, "the events are not listed")
    kinds = [r.get_attribute("data-kind") for r in driver.find_elements(By.CSS_SELECTOR, "#events-body tr")]
    assert kinds[:4] == ["sync", "sync", "delete", "create"], kinds
    newest = driver.find_elements(By.CSS_SELECTOR, "#events-body tr")[0]
    assert "1 acknowledged" in cell(newest, "Deliveries")
    delete_row = driver.find_elements(By.CSS_SELECTOR, "#events-body tr")[2]
    assert re.search(r"1 (dead|pending|awaiting acknowledgement)", cell(delete_row, "Deliveries")), cell(delete_row, "Deliveries")
    newest.find_element(By.TAG_NAME, "summary").click()
    assert crn in cell(newest, "Deliveries")
    screenshot(driver, "events.png")

    # Keyboard: the Actions menu opens with the arrow key and closes with Escape.
    driver.get(URL + "/ui/keys?state=0,1,2,3,5")
    row = wait(driver, lambda d: key_row(d, name), "the key is not listed")
    wait(driver, lambda d: "In sync" in cell(key_row(d, name), "Drift"), "the keys table still shows drift")
    button = key_row(driver, name).find_element(By.CSS_SELECTOR, ".actions-button")
    button.send_keys(Keys.ARROW_DOWN)
    focused = driver.switch_to.active_element
    assert focused.get_attribute("role") == "menuitem", focused.get_attribute("outerHTML")
    focused.send_keys(Keys.ESCAPE)
    assert button.get_attribute("aria-expanded") == "false"
    assert driver.switch_to.active_element == button

    # A narrow window: no horizontal scrolling; the table turns into cards.
    driver.set_window_size(420, 900)
    wait(driver, lambda d: key_row(d, name), "the key is not listed on a narrow window")
    overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page scrolls sideways by {overflow}px on a narrow window"
    screenshot(driver, "keys-narrow.png")
    assert TOKEN not in driver.current_url


@pytest.mark.skipif(not ACCESS_URL, reason="no access-file server (KR_ACCESS_URL)")
def test_another_instance_sees_nothing(driver):
    # Instance A has a key and a registration.
    body = {"metadata": {"collectionType": KEY_MEDIA, "collectionTotal": 1},
            "resources": [{"type": KEY_MEDIA, "name": "instance-a-secret-key", "extractable": False}]}
    r = requests.post(ACCESS_URL + "/api/v2/keys", headers=headers(TOKEN_A, "instance-a", **{"Content-Type": KEY_MEDIA}),
                      data=json.dumps(body), timeout=10)
    assert r.status_code == 201, r.text
    key_a = r.json()["resources"][0]["id"]

    # The extension endpoints keep the same rules as the rest of the API.
    assert requests.get(ACCESS_URL + "/api/v2/_keyrelay/keys/overview",
                        headers=headers(TOKEN_B, "instance-a"), timeout=10).status_code == 401
    r = requests.get(ACCESS_URL + f"/api/v2/_keyrelay/keys/{key_a}/associations", headers=headers(TOKEN_B, "instance-b"), timeout=10)
    assert r.status_code == 404, r.text
    assert requests.get(ACCESS_URL + f"/api/v2/_keyrelay/keys/{key_a}/events",
                        headers=headers(TOKEN_B, "instance-b"), timeout=10).status_code == 404

    # Token B cannot sign in to instance A.
    sign_in(driver, ACCESS_URL, TOKEN_B, "instance-a")
    wait(driver, text_in("signin-error", r"Sign-in refused.*instance-a.*401"), "token B was let into instance A")
    assert not driver.find_element(By.ID, "app").is_displayed()

    # Token B on instance B sees no key of instance A.
    field = driver.find_element(By.ID, "signin-instance")
    field.clear()
    field.send_keys("instance-b")
    field = driver.find_element(By.ID, "signin-token")
    field.clear()
    field.send_keys(TOKEN_B)
    driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    wait(driver, lambda d: d.find_element(By.ID, "keys-empty").is_displayed(), "instance B's empty table is not shown")
    assert "instance-a-secret-key" not in driver.page_source

    # Switching the page to instance A with token B: refused, nothing shown.
    Select(driver.find_element(By.ID, "state-filter")).select_by_value("0,1,2,3,5")
    field = driver.find_element(By.ID, "instance-input")
    field.clear()
    field.send_keys("instance-a")
    driver.find_element(By.CSS_SELECTOR, "#instance-form button[type=submit]").click()
    wait(driver, text_in("alert", r"Not authorized.*instance-a.*HTTP 401"), "no refusal for instance A")
    assert driver.find_elements(By.CSS_SELECTOR, "#keys-body tr") == []
    assert "instance-a-secret-key" not in driver.page_source

    # Instance A's key, opened by id from instance B: not found, nothing shown.
    field = driver.find_element(By.ID, "instance-input")
    field.clear()
    field.send_keys("instance-b")
    driver.find_element(By.CSS_SELECTOR, "#instance-form button[type=submit]").click()
    driver.get(ACCESS_URL + f"/ui/keys/{key_a}/resources")
    wait(driver, text_in("alert", r"KEY_NOT_FOUND_ERR"), "instance A's key was not refused")
    assert driver.find_elements(By.CSS_SELECTOR, "#resources-body tr") == []
    assert "instance-a-secret-key" not in driver.page_source
    driver.get(ACCESS_URL + f"/ui/keys/{key_a}/events")
    wait(driver, text_in("alert", r"KEY_NOT_FOUND_ERR"), "instance A's key events were not refused")
    assert driver.find_elements(By.CSS_SELECTOR, "#events-body tr") == []
