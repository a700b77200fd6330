"""What the journeys share: the suite's APIs as their outside clients call them (OAuth 2 tokens,
REST), events published on the bus as billing and HR systems publish them, a mailbox that
receives identity's mail over SMTP, and waiting for what the bus carries between services."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import html
import json
import re
import secrets
import socketserver
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlparse

import requests
from harness import ROOT, Suite

from lms_common.envelope import Event
from lms_common.testing import wait_until

T = TypeVar("T")
# Events travel through outboxes, relays and workers on two busy cores: be generous.
EVENTUAL = 90.0


def unique_email(name: str) -> str:
    return f"{name}.{uuid.uuid4().hex[:8]}@example.com"


def eventually(probe: Callable[[], T | None], what: str, timeout: float = EVENTUAL) -> T:
    """The first truthy answer of ``probe``, polled until ``timeout``; fails naming ``what``."""
    seen: list[T | None] = [None]

    def check() -> bool:
        seen[0] = probe()
        return bool(seen[0])

    assert wait_until(check, timeout=timeout, interval=0.5), f"timed out waiting for {what}; last: {seen[0]!r}"
    return seen[0]  # type: ignore[return-value]


@dataclass
class Api:
    """One caller of the suite's REST APIs with its bearer token."""

    suite: Suite
    token: str | None = None
    user_id: str | None = None
    http: requests.Session = field(default_factory=requests.Session)

    def claims(self) -> dict[str, Any]:
        assert self.token
        return jwt_claims(self.token)

    def call(self, method: str, service: str, path: str, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.http.request(method, self.suite.url(service, path), headers=headers, timeout=30, **kwargs)

    def ok(
        self, method: str, service: str, path: str, expect: int | tuple[int, ...] = (200, 201), **kwargs: Any
    ) -> Any:
        """Call and assert the status; the decoded JSON body (None when there is none)."""
        response = self.call(method, service, path, **kwargs)
        wanted = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in wanted, f"{method} {service}{path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def get(self, service: str, path: str, **params: Any) -> Any:
        return self.ok("GET", service, path, expect=200, params=params)

    def post(self, service: str, path: str, body: Any = None, expect: int | tuple[int, ...] = (200, 201)) -> Any:
        return self.ok("POST", service, path, expect=expect, json=body if body is not None else {})

    def items(self, service: str, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paginated list, following ``next_cursor``."""
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.get(service, path, **params, limit=500, **({"cursor": cursor} if cursor else {}))
            found.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return found


# --- OAuth 2 ---------------------------------------------------------------------------------


def bootstrap_client(suite: Suite) -> Api:
    """The confidential client identity creates on its first start, holding every scope."""
    return Api(suite, suite.bootstrap_token())


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class WebApp:
    """A trusted first-party OAuth client that signs people in with the authorization code + PKCE."""

    suite: Suite
    client_id: str
    secret: str
    redirect_uri: str

    def authorize_url(self, challenge: str, state: str) -> str:
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(LEARNER_SCOPES),
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        return self.suite.url("identity", "/oauth/authorize?" + urlencode(query))

    def exchange(self, code: str, verifier: str) -> dict[str, Any]:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
        }
        response = requests.post(
            self.suite.url("identity", "/oauth/token"), data=data, auth=(self.client_id, self.secret), timeout=30
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def sign_in(self, email: str, password: str) -> Api:
        """The login form filled in over plain HTTP (the browser journey shows the same in Chromium)."""
        response = self.try_sign_in(email, password)
        assert response.status_code == 302, f"sign-in of {email}: {response.status_code} {response.text[:300]}"
        return self.api_from_redirect(response.headers["Location"])

    def try_sign_in(self, email: str, password: str) -> requests.Response:
        self._verifier, challenge = pkce()
        self._state = secrets.token_urlsafe(8)
        http = requests.Session()
        url = self.authorize_url(challenge, self._state)
        form = http.get(url, timeout=30)
        assert form.status_code == 200, form.text
        csrf = html.unescape(re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1))  # type: ignore[union-attr]
        data = {"csrf_token": csrf, "email": email, "password": password}
        return http.post(url, data=data, allow_redirects=False, timeout=30)

    def api_from_redirect(self, location: str) -> Api:
        query = parse_qs(urlparse(location).query)
        assert query.get("state") == [self._state], location
        tokens = self.exchange(query["code"][0], self._verifier)
        claims = jwt_claims(tokens["access_token"])
        return Api(self.suite, tokens["access_token"], user_id=claims["sub"])


# Everything a person may be given; identity narrows it to what the person's roles hold.
LEARNER_SCOPES = (
    "learner",
    "catalog:read",
    "catalog:write",
    "content:grant",
    "enrollment:read",
    "enrollment:write",
    "identity:read",
    "identity:write",
    "roles:write",
    "automation:read",
    "automation:write",
    "reports:read",
    "settings:write",
)


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def web_app(admin: Api, redirect_uri: str) -> WebApp:
    body = {
        "name": f"Journey web app {uuid.uuid4().hex[:6]}",
        "scopes": list(LEARNER_SCOPES),
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": [redirect_uri],
        "trusted": True,
    }
    created = admin.post("identity", "/v1/oauth-clients", body)
    return WebApp(admin.suite, created["client_id"], created["client_secret"], redirect_uri)


# --- people ----------------------------------------------------------------------------------


PASSWORD = "correct horse battery staple 42"


def create_person(admin: Api, name: str, roles: tuple[str, ...] = (), **profile: Any) -> dict[str, Any]:
    """A user with a password, holding ``roles`` (each a name, or a dict with its scope)."""
    body = {"email": unique_email(name), "first_name": name.title(), "last_name": "Journey", "password": PASSWORD}
    user = admin.post("identity", "/v1/users", {**body, **profile}, expect=201)
    for role in roles:
        assignment = {"role": role} if isinstance(role, str) else role
        admin.post("identity", f"/v1/users/{user['id']}/roles", assignment, expect=201)
    return dict(user)


def user_by_email(admin: Api, email: str) -> dict[str, Any] | None:
    found = admin.get("identity", "/v1/users", email=email)["items"]
    return found[0] if found else None


# --- the bus ---------------------------------------------------------------------------------


def publish_event(suite: Suite, domain: str, event_type: str, org_id: str, data: dict[str, Any]) -> str:
    """An outside system's CloudEvent on the exchange (CONTRACT section 4); returns its id."""
    event = Event(type=event_type, data=data, orgid=org_id, source=f"/{domain}")
    suite.publish(f"{domain}.{event_type}", event.to_json(), event.id)
    return event.id


# --- catalog ---------------------------------------------------------------------------------


def pay_invoice(
    suite: Suite, admin: Api, org_id: str, product_id: str, buyer: dict[str, str], *, quantity: int = 1
) -> dict[str, Any]:
    """Billing publishes InvoicePaid for one product line; returns the buyer's account once
    identity has provisioned it."""
    invoice = {
        "invoice_id": f"INV-{uuid.uuid4().hex[:8]}",
        "buyer": buyer,
        "lines": [{"product_id": product_id, "quantity": quantity}],
        "invitees": [],
        "paid_at": datetime.now(UTC).isoformat(),
    }
    publish_event(suite, "billing", "InvoicePaid", org_id, invoice)
    return eventually(lambda: user_by_email(admin, buyer["email"]), f"the account of {buyer['email']}")


def build_course(author: Api, title: str, modules: int = 2, lessons: int = 2) -> dict[str, Any]:
    """A published course of ``modules`` x ``lessons`` published text lessons; with its lesson ids."""
    course = author.post("catalog", "/v1/courses", {"title": title, "description": f"{title}, end to end"}, expect=201)
    lesson_ids = []
    for m in range(modules):
        module = author.post("catalog", f"/v1/courses/{course['id']}/modules", {"title": f"Module {m + 1}"}, 201)
        for n in range(lessons):
            body = {"title": f"Lesson {m + 1}.{n + 1}", "kind": "text", "body": "Read this, then carry on."}
            lesson = author.post("catalog", f"/v1/modules/{module['id']}/lessons", body, expect=201)
            author.post("catalog", f"/v1/lessons/{lesson['id']}/publish", expect=200)
            lesson_ids.append(lesson["id"])
    author.post("catalog", f"/v1/courses/{course['id']}/publish", expect=200)
    return {**course, "lesson_ids": lesson_ids}


def learnable(learner: Api, course_id: str) -> dict[str, Any] | None:
    """The caller's entry for ``course_id`` in GET /v1/me/courses, once enrollment knows it."""
    mine = learner.get("enrollment", "/v1/me/courses")["items"]
    return next((item for item in mine if item["course_id"] == course_id), None)


def complete_course(learner: Api, enrollment_id: str, lesson_ids: list[str]) -> dict[str, Any]:
    enrollment: dict[str, Any] = {}
    for lesson_id in lesson_ids:
        path = f"/v1/enrollments/{enrollment_id}/lessons/{lesson_id}/complete"
        enrollment = learner.post("enrollment", path, expect=200)
    return enrollment


# --- mail ------------------------------------------------------------------------------------


class _SmtpSession(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for smtplib to deliver a mail."""

    def handle(self) -> None:
        self._say("220 journey mailbox")
        lines: list[str] = []
        while line := self.rfile.readline():
            command = line.decode("utf-8", "replace").rstrip("\r\n")
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                self._say("250 journey mailbox")
            elif verb == "DATA":
                self._say("354 end with <CRLF>.<CRLF>")
                lines = self._data()
                self.server.mails.append("\n".join(lines))  # type: ignore[attr-defined]
                self._say("250 queued")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("250 ok")

    def _data(self) -> list[str]:
        lines = []
        while (line := self.rfile.readline().decode("utf-8", "replace").rstrip("\r\n")) != ".":
            lines.append(line[1:] if line.startswith("..") else line)
        return lines

    def _say(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")


class Mailbox(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpSession)
        self.mails: list[str] = []

    def deliver(self, suite: Suite) -> None:
        """identity's mail sender, as an operator's cron runs it, pointed at this mailbox."""
        env = {**suite.env, "LMS_SMTP_HOST": "127.0.0.1", "LMS_SMTP_PORT": str(self.server_address[1])}
        subprocess.run([sys.executable, "-m", "identity", "send-mail"], env=env, cwd=ROOT, check=True, timeout=120)

    def mail_to(self, address: str) -> str | None:
        """The body of the newest mail to ``address``, decoded."""
        for raw in reversed(self.mails):
            mail = email.message_from_string(raw, policy=email.policy.default)
            if mail["To"] == address:
                return str(mail.get_body().get_content())  # type: ignore[union-attr]
        return None


@contextmanager
def mailbox() -> Iterator[Mailbox]:
    server = Mailbox()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def choose_password(suite: Suite, admin: Api, box: Mailbox, user: dict[str, Any]) -> str:
    """What a person provisioned by an outside system does to sign in the first time: ask for a
    reset mail (here the admin sends it on their request), read the token in the mail, choose a
    password."""
    admin.post("identity", f"/v1/users/{user['id']}/password-reset", expect=202)
    box.deliver(suite)
    mail = eventually(lambda: box.mail_to(user["email"]), f"the reset mail to {user['email']}", timeout=30)
    token = re.search(r"[?&]token=([\w-]+)", mail).group(1)  # type: ignore[union-attr]
    response = requests.post(
        admin.suite.url("identity", "/v1/password-reset/confirm"),
        json={"token": token, "new_password": PASSWORD},
        timeout=30,
    )
    assert response.status_code == 204, response.text
    return PASSWORD
