"""RFC 9457 problem details for every error a service answers.

Use cases raise :class:`Problem` (or one of its kinds); the API layer turns it, Flask's own
errors and validation failures into ``application/problem+json`` responses.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from flask import Response, json

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error with an HTTP status; ``code`` names it for machines (e.g. ``course_locked``)."""

    status = 400

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        title: str | None = None,
        code: str | None = None,
        errors: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(detail)
        self.detail = detail
        self.status = status or self.status
        self.title = title or HTTPStatus(self.status).phrase
        self.code = code
        self.errors = errors
        self.headers = dict(headers or {})
        self.extra = extra


class NotFound(Problem):
    status = 404


class Conflict(Problem):
    status = 409


class Forbidden(Problem):
    status = 403


class Unauthorized(Problem):
    status = 401


class Unprocessable(Problem):
    status = 422


def problem_response(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    code: str | None = None,
    errors: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": f"https://lms.dev/problems/{code}" if code else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or HTTPStatus(status).description,
    }
    if code:
        body["code"] = code
    if errors:
        body["errors"] = errors
    body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_problem(problem: Problem) -> Response:
    return problem_response(
        problem.status,
        title=problem.title,
        detail=problem.detail,
        code=problem.code,
        errors=problem.errors,
        headers=problem.headers,
        **problem.extra,
    )
