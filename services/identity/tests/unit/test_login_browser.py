"""The login page in headless Chromium, filled in and submitted as a person would."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from werkzeug.serving import make_server

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements-dev.txt)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    not (shutil.which("chromedriver") and shutil.which("chromium")),
    reason="Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)",
)


@pytest.fixture()
def server(world) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """identity served on 127.0.0.1 by werkzeug in a thread; stopped afterwards."""
    httpd = make_server("127.0.0.1", 0, world.app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=5)


@pytest.fixture()
def browser() -> Iterator[object]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def test_login_page_in_headless_chromium(world, server: str, browser) -> None:  # type: ignore[no-untyped-def]
    world.person("ada@example.com", "student")
    # The redirect goes back to identity itself, so the browser lands on a page we control.
    callback = f"{server}/healthz"
    client_id, secret = world.oauth_client(redirect_uris=[callback])
    verifier, challenge = world.pkce()
    browser.get(server + world.authorize_url(client_id, challenge, redirect_uri=callback))
    assert browser.title == "Sign in"

    browser.find_element(By.ID, "email").send_keys("ada@example.com")
    browser.find_element(By.ID, "password").send_keys("not the password")
    browser.find_element(By.ID, "submit").click()
    error = WebDriverWait(browser, 10).until(lambda b: b.find_element(By.ID, "error"))
    assert "not right" in error.text

    browser.find_element(By.ID, "password").send_keys(world.PASSWORD)
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 10).until(lambda b: b.current_url.startswith(callback))
    code = parse_qs(urlparse(browser.current_url).query)["code"][0]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": callback, "code_verifier": verifier}
    tokens = world.client.post("/oauth/token", data=data, auth=(client_id, secret)).json
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]
