"""Helpers of automation's tests: callers with tokens, the in-memory bus, catalog facts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from automation.service import SERVICE
from lms_common.config import Settings
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import make_engine
from lms_common.envelope import Event
from lms_common.memorybus import InMemoryBus
from lms_common.messaging import OutgoingMessage, PublishOutcome
from lms_common.outbox import OutboxMessage
from lms_common.processing import Result
from lms_common.relay import Relay
from lms_common.testing import TestKeys

ORG = "org-1"
OTHER_ORG = "org-2"
ADMIN = "automation:read automation:write"
COMMANDS = ("GrantProduct", "RevokeProduct", "AssignMandatoryTraining", "EnrollInProgram")


class Caller:
    """A test client acting as one user: ``caller.post(url, json=...)`` with its bearer token."""

    def __init__(self, client: FlaskClient, token: str, user: str):
        self.client, self.user = client, user
        self.headers = {"Authorization": f"Bearer {token}"}

    def __getattr__(self, method: str) -> Callable[..., Any]:
        call = getattr(self.client, method)
        return lambda url, **kwargs: call(url, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def refused(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    body = response.get_json()
    assert response.status_code == status, body
    assert response.content_type == "application/problem+json"
    if code:
        assert body.get("code") == code, body
    return body  # type: ignore[no-any-return]


def outbox_events(database_url: str, types: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Every event in the outbox (of these types), oldest first, as CloudEvent dicts."""
    engine = make_engine(database_url)
    with engine.connect() as connection:
        bodies = connection.execute(select(OutboxMessage.body).order_by(OutboxMessage.id)).scalars().all()
    engine.dispose()
    events = [json.loads(body) for body in bodies]
    return [e for e in events if types is None or e["type"] in types]


def commands(database_url: str) -> list[dict[str, Any]]:
    return outbox_events(database_url, COMMANDS)


def event(kind: str, data: dict[str, Any], org: str = ORG, event_id: str | None = None) -> Event:
    source = {"InvoicePaid": "/billing", "EmployeeOnboarded": "/hr"}.get(kind, "/test")
    return Event(type=kind, data=data, orgid=org, source=source, id=event_id or str(uuid.uuid4()))


def invoice(invoice_id: str, lines: list[tuple[str, int]], invitees: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "invoice_id": invoice_id,
        "buyer": {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"},
        "lines": [{"product_id": product, "quantity": quantity} for product, quantity in lines],
        "paid_at": "2026-11-23T10:00:00Z",
    }
    if invitees is not None:
        data["invitees"] = invitees
    return data


def employee(employee_id: str = "E-1001", **overrides: Any) -> dict[str, Any]:
    return {
        "employee_id": employee_id,
        "email": "grace@example.com",
        "first_name": "Grace",
        "last_name": "Hopper",
        "department": "Engineering",
        "job_title": "Engineer",
        "location_code": "NYC",
        "start_date": "2026-12-01",
        **overrides,
    }


class RelayedToBus:
    """The in-memory bus as automation's relay publishes to it, keeping the bodies it confirmed:
    a sent event leaves the outbox, and a test still reads everything automation emitted."""

    def __init__(self, bus: InMemoryBus):
        self.bus = bus
        self.bodies: list[bytes] = []

    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[PublishOutcome]:
        outcomes = self.bus.publish_batch(messages)
        self.bodies += [m.body for m, outcome in zip(messages, outcomes, strict=True) if outcome.confirmed]
        return outcomes


class Harness:
    """Automation's worker and relay on an in-memory bus: publish, drain, relay."""

    def __init__(self, settings: Settings, keys: TestKeys):
        self.settings = settings
        self.runtime = SERVICE.runtime(settings, key_source=keys)
        self.processor = SERVICE.processor(self.runtime)
        self.bus = InMemoryBus()
        self.bus.bind("automation", SERVICE.routing_keys())
        self.relayed = RelayedToBus(self.bus)
        self.relay = Relay("automation", self.runtime.session_factory, self.relayed)

    def emitted(self, types: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """Every event automation emitted (of these types), relayed or still waiting, oldest first."""
        relayed = [json.loads(body) for body in self.relayed.bodies]
        waiting = outbox_events(self.settings.database_url)
        return [e for e in relayed + waiting if types is None or e["type"] in types]

    def commands(self) -> list[dict[str, Any]]:
        return self.emitted(COMMANDS)

    def publish(self, *events: Event) -> list[Result]:
        """Publish as an outside system would, then let automation handle everything queued."""
        for item in events:
            self.bus.publish_event(item, SUITE_EVENTS)
        return self.drain()

    def drain(self) -> list[Result]:
        return self.bus.drain("automation", self.processor)

    def relay_all(self) -> None:
        while self.relay.relay_once():
            pass

    def catalog(self, kind: str, item_id: str | None = None, org: str = ORG, **extra: Any) -> str:
        """A product, course or program that catalog announced in ``org``; returns its id."""
        item_id = item_id or str(uuid.uuid4())
        data: dict[str, Any] = {f"{kind}_id": item_id, "version": 1, "title": f"{kind} {item_id[:4]}"}
        if kind == "product":
            kind_event = "ProductUpdated"
            data |= {"status": "inactive", "course_ids": []}
        elif kind == "course":
            kind_event = "CoursePublished"
            data |= {"status": "published", "lesson_ids": [], "quiz_ids": [], "derived_from": None, "created_by": "u"}
        else:
            kind_event = "ProgramPublished"
            data |= {"published": True, "enforce_course_order": False, "course_ids": []}
        self.publish(event(kind_event, {**data, **extra}, org=org))
        return item_id


def now_text() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
