"""Helpers of enrollment's tests: callers with tokens, events from catalog and identity."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from enrollment.service import SERVICE
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import make_engine
from lms_common.envelope import Event, format_time
from lms_common.outbox import OutboxMessage
from lms_common.processing import Delivery, MessageProcessor, Outcome

ORG = "org-1"
OTHER_ORG = "org-2"
LEARNER = "learner"
ADMIN = "enrollment:read enrollment:write content:grant learner"


def new_id() -> str:
    return str(uuid.uuid4())


def now() -> str:
    return format_time(datetime.now(UTC))


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
    if code:
        assert body.get("code") == code, body
    return body  # type: ignore[no-any-return]


class Bus:
    """Delivers events to the service's handlers the way the consumer does."""

    def __init__(self, processor: MessageProcessor):
        self.processor = processor
        self.versions: dict[str, int] = {}

    def send(self, event_type: str, data: dict[str, Any], org: str = ORG) -> None:
        event = Event(type=event_type, data=data, orgid=org, source="/test")
        SUITE_EVENTS.validate(event)
        delivery = Delivery(event.to_json(), SUITE_EVENTS.routing_key(event), event.id)
        [result] = self.processor.process([delivery])
        assert result.outcome is Outcome.HANDLED, result.reason

    def _version(self, ident: str, version: int | None) -> int:
        self.versions[ident] = version or self.versions.get(ident, 0) + 1
        return self.versions[ident]

    def course(self, course_id: str, lessons: list[str], *, status: str = "published", quizzes: list[str] | None = None,
               title: str = "Safety", version: int | None = None, org: str = ORG) -> None:  # fmt: skip
        data = {"course_id": course_id, "version": self._version(course_id, version), "title": title, "status": status,
                "lesson_ids": lessons, "quiz_ids": quizzes or [], "derived_from": None,
                "created_by": "author"}  # fmt: skip
        self.send("CourseUpdated", data, org)

    def product(self, product_id: str, courses: list[str], *, active: bool = True, org: str = ORG) -> None:
        data = {"product_id": product_id, "version": self._version(product_id, None), "title": "Bundle",
                "status": "active" if active else "inactive", "course_ids": courses}  # fmt: skip
        self.send("ProductActivated" if active else "ProductUpdated", data, org)

    def program(self, program_id: str, courses: list[str], *, enforce: bool = True, org: str = ORG) -> None:
        data = {"program_id": program_id, "version": self._version(program_id, None), "title": "Academy",
                "published": True, "enforce_course_order": enforce, "course_ids": courses}  # fmt: skip
        self.send("ProgramPublished", data, org)

    def quiz(self, quiz_id: str, lesson_id: str, course_id: str, questions: list[dict[str, Any]], *,
             max_attempts: int | None = 3, pass_percent: int = 50) -> None:  # fmt: skip
        data = {"quiz_id": quiz_id, "version": self._version(quiz_id, None), "lesson_id": lesson_id,
                "course_id": course_id, "pass_percent": pass_percent, "max_attempts": max_attempts,
                "questions": questions}  # fmt: skip
        self.send("QuizChanged", data)

    def user(self, user_id: str, email: str | None = None, *, location: str | None = None,
             department: str | None = None, org: str = ORG, first: str = "Ada") -> None:  # fmt: skip
        data = {"user_id": user_id, "email": email or f"{user_id[:8]}@example.com", "org_id": org, "cause": "api",
                "cause_event_id": None, "created": True, "first_name": first, "last_name": "Lovelace",
                "department": department, "location_id": location, "kind": "staff"}  # fmt: skip
        self.send("UserProvisioned", data, org)

    def location(self, location_id: str, parent: str | None = None, org: str = ORG) -> None:
        data = {"location_id": location_id, "org_id": org, "name": location_id[:8], "code": location_id[:4],
                "parent_id": parent}  # fmt: skip
        self.send("LocationCreated", data, org)


def outbox_events(database_url: str, event_type: str | None = None) -> list[dict[str, Any]]:
    engine = make_engine(database_url)
    query = select(OutboxMessage.body).order_by(OutboxMessage.id)
    if event_type:
        query = query.where(OutboxMessage.event_type == event_type)
    with engine.connect() as connection:
        bodies = connection.execute(query).scalars().all()
    engine.dispose()
    return [json.loads(bytes(body)) for body in bodies]


__all__ = ["SERVICE"]


def _partial_enrollment_events(session: Any) -> Any:
    """EnrollmentCreated short of required fields, again for the enrollments of user ``user``."""
    from sqlalchemy import String, bindparam

    from enrollment import bulk
    from enrollment.models import Enrollment

    e = Enrollment
    data = bulk.json_object(session, {"enrollment_id": e.id, "org_id": e.org_id})
    event_id = e.id.concat("-again")  # the enrollments have their events already
    mine = e.user_id == bindparam("user", type_=String)
    return select(event_id.label("event_id"), e.org_id.label("orgid"), data.label("data")).where(mine)


def refuses_events_off_their_contract(factory: Any) -> None:
    """A batch's events built by SQL that leaves out required fields fail the insert's check;
    so does a rows builder that is not a module-level function (a new statement every call)."""
    import pytest

    from enrollment import bulk, learning
    from lms_common.contracts import enrollment as contract
    from lms_common.envelope import InvalidEvent

    with factory() as session:
        user = new_id()
        learning.enroll(session, ORG, [user], [new_id(), new_id()], kind="grant", ref="g-1")
        now = datetime.now(UTC)
        with pytest.raises(InvalidEvent, match="EnrollmentCreated payload invalid"):
            bulk.insert_events(session, contract.ENROLLMENT_CREATED, _partial_enrollment_events, {"user": user}, now)
        session.rollback()

        def nested(session: Any) -> Any:
            return _partial_enrollment_events(session)

        with pytest.raises(ValueError, match="module-level rows builder"):
            bulk.insert_events(session, contract.ENROLLMENT_CREATED, nested, {"user": user}, now)
