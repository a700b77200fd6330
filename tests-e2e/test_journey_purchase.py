"""Journey 1: a course is built and sold; billing's InvoicePaid on the bus makes the buyer a
learner; the buyer signs in in a real browser, learns the course, gets a certificate anyone can
verify, and the reports show it."""

from __future__ import annotations

import csv
import io
import shutil
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from conftest import Suite
from journey import (
    Api,
    WebApp,
    bootstrap_client,
    build_course,
    choose_password,
    complete_course,
    create_person,
    eventually,
    learnable,
    mailbox,
    pay_invoice,
    pkce,
    unique_email,
    web_app,
)

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements-dev.txt)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (shutil.which("chromedriver") and shutil.which("chromium")),
    reason="Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)",
)


class _Callback(BaseHTTPRequestHandler):
    """The web app's redirect URI: it shows the person a page and keeps the query for the app."""

    def do_GET(self) -> None:
        self.server.queries.append(parse_qs(urlparse(self.path).query))  # type: ignore[attr-defined]
        body = b"<html><head><title>Signed in</title></head><body>You are signed in.</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def callback() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Callback)
    server.queries = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(flag)
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def sign_in_in_browser(browser: Any, app: WebApp, callback: ThreadingHTTPServer, email: str, password: str) -> Api:
    """Open the authorize URL, type email and password into identity's page, land on the app."""
    verifier, challenge = pkce()
    state = uuid.uuid4().hex
    browser.get(app.authorize_url(challenge, state))
    assert browser.title == "Sign in"
    browser.find_element(By.ID, "email").send_keys(email)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 60).until(lambda b: b.current_url.startswith(app.redirect_uri))
    assert browser.title == "Signed in"
    query = next(q for q in callback.queries if "code" in q)  # type: ignore[attr-defined]
    assert query["state"] == [state]
    tokens = app.exchange(query["code"][0], verifier)
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]
    me = Api(app.suite, tokens["access_token"]).get("identity", "/v1/me")
    return Api(app.suite, tokens["access_token"], user_id=me["sub"])


def test_a_bought_course_is_learned_certified_and_reported(
    suite: Suite, browser: Any, callback: ThreadingHTTPServer
) -> None:
    admin = bootstrap_client(suite)
    org_id = str(suite.bootstrap()["org_id"])
    app = web_app(admin, f"http://127.0.0.1:{callback.server_address[1]}/signed-in")

    # A moderator builds the course, publishes it and activates its product.
    moderator = create_person(admin, "moderator", roles=("moderator",), kind="staff")
    author = app.sign_in(moderator["email"], "correct horse battery staple 42")
    course = build_course(author, "Safe lifting", modules=2, lessons=2)
    product = author.post("catalog", "/v1/products", {"title": "Safe lifting", "course_ids": [course["id"]]}, 201)
    assert author.post("catalog", f"/v1/products/{product['id']}/activate")["status"] == "active"

    # Billing publishes InvoicePaid on the bus; identity provisions the buyer.
    buyer_email = unique_email("ada")
    buyer_profile = {"email": buyer_email, "first_name": "Ada", "last_name": "Lovelace"}
    buyer = pay_invoice(suite, admin, org_id, product["id"], buyer_profile)

    # The buyer chooses a password from the reset mail and signs in in Chromium.
    with mailbox() as box:
        password = choose_password(suite, admin, box, buyer)
    learner = sign_in_in_browser(browser, app, callback, buyer_email, password)
    assert learner.user_id == buyer["id"]

    entry = eventually(lambda: learnable(learner, course["id"]), "the bought course in GET /v1/me/courses")
    assert "grant" in str(entry["sources"])
    assert entry["progress_percent"] == 0
    enrollment = complete_course(learner, entry["enrollment_id"], course["lesson_ids"])
    assert enrollment["status"] == "completed" and enrollment["progress_percent"] == 100

    certificate = eventually(
        lambda: learner.get("enrollment", "/v1/certificates", user_id=learner.user_id)["items"],
        "the certificate",
    )[0]
    assert certificate["course_id"] == course["id"]
    verified = requests.get(
        suite.url("enrollment", f"/v1/certificates/verify/{certificate['verification_code']}"), timeout=30
    )
    assert verified.status_code == 200
    assert verified.json()["valid"] is True
    assert verified.json()["learner_name"] == "Ada Lovelace"
    assert verified.json()["title"] == "Safe lifting"
    fake = requests.get(suite.url("enrollment", "/v1/certificates/verify/NOT-A-REAL-CODE"), timeout=30)
    assert fake.status_code == 404

    # The completion report and the audit export show it, as JSON and as CSV.
    def completed_in_report() -> dict[str, Any] | None:
        report = admin.get("reporting", "/v1/reports/completions", course_id=course["id"])
        return report if report["totals"]["completed"] == 1 else None

    report = eventually(completed_in_report, "the completion in the completion report")
    assert report["totals"]["enrolled"] == 1 and report["as_of"]

    def audited() -> dict[str, Any] | None:
        items = admin.get("reporting", "/v1/reports/audit")["items"]
        return next((i for i in items if i["user_id"] == buyer["id"] and i["course_id"] == course["id"]), None)

    row = eventually(audited, "the completion in the audit report")
    assert row["certificate_id"] == certificate["id"]
    assert row["verification_code"] == certificate["verification_code"]
    assert row["email"] == buyer_email

    exported = admin.call("GET", "reporting", "/v1/reports/audit", headers={"Accept": "text/csv"})
    assert exported.status_code == 200 and exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    mine = [r for r in rows if r.get("user_id") == buyer["id"]]
    assert len(mine) == 1
    assert mine[0]["verification_code"] == certificate["verification_code"]
    assert mine[0]["title"] == "Safe lifting"
