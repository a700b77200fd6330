"""Helpers of the catalog's tests: callers with tokens, and assertions on answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from lms_common.db import make_engine
from lms_common.outbox import OutboxMessage

ORG = "org-1"
OTHER_ORG = "org-2"
LEARNER = "catalog:read learner"
CREATOR = "catalog:read catalog:write"
MODERATOR = "catalog:read catalog:write content:grant"


class Caller:
    """A test client acting as one user: ``caller.post(url, json=...)`` with its bearer token."""

    def __init__(self, client: FlaskClient, token: str, user: str):
        self.client, self.user = client, user
        self.headers = {"Authorization": f"Bearer {token}"}

    def __getattr__(self, method: str) -> Callable[..., Any]:
        call = getattr(self.client, method)
        return lambda url, **kwargs: call(url, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)


def ok(response: Any, status: int = 200) -> Any:
    """The JSON of a response that must have this status (the problem shown when not)."""
    assert response.status_code == status, response.get_json()
    return response.get_json()


def refused(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    body = response.get_json()
    assert response.status_code == status, body
    assert response.content_type == "application/problem+json"
    if code:
        assert body.get("code") == code, body
    return body  # type: ignore[no-any-return]


def build_course(caller: Caller, title: str = "Safety basics", kinds: tuple[str, ...] = ("text",)) -> dict[str, Any]:
    """A course with one module and one lesson of each kind given (drafts), as ids."""
    course = ok(caller.post("/v1/courses", json={"title": title}), 201)
    module = ok(caller.post(f"/v1/courses/{course['id']}/modules", json={"title": "Module 1"}), 201)
    lessons = []
    for kind in kinds:
        body = {"title": f"{kind} lesson", "kind": kind}
        body |= {"body": "Read this."} if kind == "text" else {"url": "https://example.com/x"} if kind != "quiz" else {}
        lessons.append(ok(caller.post(f"/v1/modules/{module['id']}/lessons", json=body), 201)["id"])
    return {"course": course["id"], "module": module["id"], "lessons": lessons}


def published_course(caller: Caller, title: str = "Safety basics") -> str:
    ids = build_course(caller, title)
    for lesson in ids["lessons"]:
        ok(caller.post(f"/v1/lessons/{lesson}/publish"))
    ok(caller.post(f"/v1/courses/{ids['course']}/publish"))
    return str(ids["course"])


def outbox_events(database_url: str) -> list[dict[str, Any]]:
    """Every event in the outbox, oldest first, as CloudEvent dicts."""
    engine = make_engine(database_url)
    with engine.connect() as connection:
        bodies = connection.execute(select(OutboxMessage.body).order_by(OutboxMessage.id)).scalars().all()
    engine.dispose()
    return [json.loads(body) for body in bodies]
