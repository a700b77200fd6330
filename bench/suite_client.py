"""The running suite as an outside client sees it: OAuth tokens, REST calls, events on the bus.

Everything here goes through HTTP and AMQP only; the benchmarks never read a service's tables.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import queue
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pika
import requests
from harness import Suite, client_token

from lms_common.envelope import Event
from lms_common.messaging import Confirm, ConfirmingPublisher, OutgoingMessage, PublishError

REDIRECT = "http://127.0.0.1/bench-callback"


def claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified: only to read our own token's organization."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


class Client:
    """REST calls as the bootstrap super admin (client credentials), token renewed on 401."""

    def __init__(self, suite: Suite):
        self.suite = suite
        boot = suite.bootstrap()
        self.client_id, self.client_secret = str(boot["client_id"]), str(boot["client_secret"])
        self.http = requests.Session()
        self.token = self._client_token()
        self.org = str(claims(self.token)["org"])

    def _client_token(self) -> str:
        return client_token(self.suite, self.client_id, self.client_secret)

    def call(self, method: str, service: str, path: str, **kwargs: Any) -> requests.Response:
        for _ in range(2):
            headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
            response = self.http.request(method, self.suite.url(service, path), headers=headers, timeout=120, **kwargs)
            if response.status_code != 401:
                return response
            self.token = self._client_token()
        return response

    def ok(self, method: str, service: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, service, path, **kwargs)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {service}{path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def items(self, service: str, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, page after page."""
        params = {**params, "limit": 500}
        while True:
            page = self.ok("GET", service, path, params=params)
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    # --- the catalog and rules the benchmarks need ---------------------------------------------

    def published_course(self, title: str) -> tuple[str, str]:
        """A published course with one published lesson, and its active product."""
        course = self.ok("POST", "catalog", "/v1/courses", json={"title": title, "also_product": {}})
        module = self.ok("POST", "catalog", f"/v1/courses/{course['id']}/modules", json={"title": "Module"})
        lesson = self.ok(
            "POST",
            "catalog",
            f"/v1/modules/{module['id']}/lessons",
            json={"title": "Lesson", "kind": "text", "body": "x"},
        )
        self.ok("POST", "catalog", f"/v1/lessons/{lesson['id']}/publish")
        self.ok("POST", "catalog", f"/v1/courses/{course['id']}/publish")
        self.ok("POST", "catalog", f"/v1/products/{course['product_id']}/activate")
        return course["id"], course["product_id"]

    def location(self, code: str) -> str:
        return str(self.ok("POST", "identity", "/v1/locations", json={"name": f"Site {code}", "code": code})["id"])

    def onboarding_rule(self, department: str, course_ids: list[str]) -> str:
        """Every employee of ``department`` is assigned ``course_ids``; retried until automation
        has seen the courses (rules are checked against its copy of the catalog)."""
        body = {
            "name": f"Onboarding {department}",
            "trigger": "EmployeeOnboarded",
            "conditions": [{"field": "department", "op": "eq", "value": department}],
            "actions": [{"type": "AssignMandatoryTraining", "course_ids": course_ids, "due_in_days": 30}],
            "enabled": True,
        }
        deadline = time.monotonic() + 120
        while True:
            response = self.call("POST", "automation", "/v1/rules", json=body)
            if response.status_code < 300:
                return str(response.json()["id"])
            if time.monotonic() > deadline:
                raise RuntimeError(f"rule refused: {response.status_code} {response.text[:500]}")
            time.sleep(0.5)

    def learner_app(self) -> dict[str, Any]:
        """A trusted first-party browser app (OAuth client) people sign in through."""
        return self.ok(
            "POST",
            "identity",
            "/v1/oauth-clients",
            json={
                "name": "Bench app",
                "scopes": ["learner"],
                "grant_types": ["authorization_code", "refresh_token"],
                "redirect_uris": [REDIRECT],
                "trusted": True,
            },
        )

    def learner_token(self, email: str, password: str, app: dict[str, Any] | None = None) -> str:
        """A person's access token through the authorization-code flow with PKCE, as a browser
        app would get it: a trusted first-party client (``app``, else a new one), the login
        form, the code exchange."""
        client = app or self.learner_app()
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = {
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": REDIRECT,
            "state": "bench",
            "scope": "learner",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        browser = requests.Session()
        url = self.suite.url("identity", f"/oauth/authorize?{urlencode(query)}")
        page = browser.get(url, timeout=30)
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        if not found:
            raise RuntimeError(f"no login form: {page.status_code} {page.text[:300]}")
        form = {"csrf_token": found.group(1), "email": email, "password": password}
        answer = browser.post(url, data=form, allow_redirects=False, timeout=30)
        if answer.status_code != 302:
            raise RuntimeError(f"login failed: {answer.status_code} {answer.text[:300]}")
        code = parse_qs(urlparse(answer.headers["Location"]).query)["code"][0]
        tokens = browser.post(
            self.suite.url("identity", "/oauth/token"),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
                "client_id": client["client_id"],
                "client_secret": client["client_secret"],
            },
            timeout=30,
        )
        tokens.raise_for_status()
        return str(tokens.json()["access_token"])


# --- events from the outside systems (CONTRACT section 4) ------------------------------------------


def envelope(event_type: str, source: str, org: str, data: dict[str, Any]) -> tuple[str, bytes]:
    event = Event(type=event_type, data=data, orgid=org, source=source)
    return event.id, event.to_json()


def invoice_paid(org: str, run: str, n: int, product_id: str, email: str | None = None) -> tuple[str, bytes]:
    data = {
        "invoice_id": f"INV-{run}-{n}",
        "buyer": {"email": email or f"buyer-{run}-{n}@bench.example", "first_name": "Ada", "last_name": f"B{n}"},
        "lines": [{"product_id": product_id, "quantity": 1}],
        "invitees": [],
        "paid_at": datetime.now(UTC).isoformat(),
    }
    return envelope("InvoicePaid", "/billing", org, data)


def employee_onboarded(org: str, run: str, n: int, department: str, location_code: str) -> tuple[str, bytes]:
    data = {
        "employee_id": f"E-{run}-{n}",
        "email": f"employee-{run}-{n}@bench.example",
        "first_name": "Grace",
        "last_name": f"H{n}",
        "department": department,
        "job_title": "Engineer",
        "location_code": location_code,
        "manager_email": "boss@bench.example",
        "start_date": datetime.now(UTC).date().isoformat(),
    }
    return envelope("EmployeeOnboarded", "/hr", org, data)


class Publisher:
    """Confirmed publishing to the suite's exchange, as an outside system would publish.

    :meth:`publish` sends one message and waits for its confirm (the latency benchmark times
    exactly that). :meth:`burst` keeps many messages in flight: windows of ``window`` messages,
    each sent whole and then confirmed by the broker's (multiple) acks, on ``connections``
    connections at once, the relay's own :class:`ConfirmingPublisher`. A window whose fate is
    unknown (connection lost, no confirm in time) or that the broker nacked is sent again: the
    services' inboxes absorb the duplicates, so nothing is lost and nothing doubled.
    """

    def __init__(self, suite: Suite, *, window: int = 1000, connections: int = 4):
        self.suite = suite
        self.exchange = suite.exchange
        self.window = window
        self.connections = connections
        self.connection = pika.BlockingConnection(pika.URLParameters(suite.amqp_url))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def publish(self, routing_key: str, message: tuple[str, bytes]) -> None:
        event_id, body = message
        properties = pika.BasicProperties(
            content_type="application/cloudevents+json", message_id=event_id, delivery_mode=2
        )
        self.channel.basic_publish(self.exchange, routing_key, body, properties=properties, mandatory=True)

    def burst(self, routing_key: str, messages: Iterable[tuple[str, bytes]]) -> int:
        """Publish every message, confirmed; how many. Raises if one cannot be delivered."""
        windows: queue.Queue[list[OutgoingMessage] | None] = queue.Queue(maxsize=2 * self.connections)
        failures: list[BaseException] = []
        senders = [
            threading.Thread(target=self._send_windows, args=(windows, failures), name=f"bench-publisher-{n}")
            for n in range(self.connections)
        ]
        for sender in senders:
            sender.start()
        count = 0
        try:
            source = iter(messages)
            while (chunk := list(itertools.islice(source, self.window))) and not failures:
                windows.put([OutgoingMessage(routing_key, body, event_id) for event_id, body in chunk])
                count += len(chunk)
        finally:
            for _ in senders:
                windows.put(None)
            for sender in senders:
                sender.join()
        if failures:
            raise RuntimeError(f"burst failed after {count} queued: {failures[0]}") from failures[0]
        return count

    def _send_windows(self, windows: queue.Queue[list[OutgoingMessage] | None], failures: list[BaseException]) -> None:
        publisher = ConfirmingPublisher(self.suite.amqp_url, self.exchange, app_id="bench")
        try:
            while (window := windows.get()) is not None:
                if not failures:
                    try:
                        _confirm_window(publisher, window)
                    except BaseException as error:  # reported by burst(); the others stop too
                        failures.append(error)
        finally:
            publisher.close()

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


def _confirm_window(publisher: ConfirmingPublisher, window: list[OutgoingMessage], attempts: int = 5) -> None:
    """Send ``window`` until the broker confirms every message of it."""
    for _ in range(attempts):
        try:
            outcomes = publisher.publish_batch(window)
        except PublishError:
            time.sleep(0.5)
            continue
        returned = [o.reason for o in outcomes if o.confirm is Confirm.RETURNED]
        if returned:
            raise RuntimeError(f"{len(returned)} messages reached no queue: {returned[0]}")
        window = [message for message, outcome in zip(window, outcomes, strict=True) if not outcome.confirmed]
        if not window:
            return
    raise RuntimeError(f"{len(window)} messages unconfirmed after {attempts} attempts")
