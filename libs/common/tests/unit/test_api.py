"""The HTTP side every service shares, through a small test service and Flask's test client."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from lms_common.api import PageArgs, StrictSchema, page, page_schema, paginate, unit_of_work
from lms_common.auth import current_principal, require
from lms_common.config import Settings
from lms_common.db import session_scope
from lms_common.denylist import DisabledUser
from lms_common.errors import Conflict
from lms_common.inbox import InboxMessage
from lms_common.service import ServiceDefinition
from lms_common.testing import TEST_ISSUER, TestKeys

MIGRATIONS = str(Path(__file__).parent / "migrations")
MAX_BODY_BYTES = 2048
UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"


class CourseIn(StrictSchema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    draft = fields.Boolean()
    position = fields.Integer()


class CourseOut(Schema):
    title = fields.String()
    author = fields.String()


class HandledOut(Schema):
    event_id = fields.String()


def courses_blueprint() -> Blueprint:
    blp = Blueprint("courses", __name__, url_prefix="/courses", description="Courses of the test service")

    @blp.route("")
    class Courses(MethodView):
        @require("catalog:write")
        @blp.arguments(CourseIn)
        @blp.response(201, CourseOut)
        def post(self, body: dict[str, Any]) -> dict[str, Any]:
            """Create a course"""
            return {"title": body["title"], "author": current_principal().subject}

    @blp.route("/<name>")
    class Course(MethodView):
        @blp.response(200, CourseOut)
        def get(self, name: str) -> dict[str, Any]:
            """Read a course"""
            if name == "locked":
                raise Conflict("the course is being edited", code="course_locked", editor="author-2")
            raise RuntimeError("the code has a bug")

    @blp.route("/handled")
    class Handled(MethodView):
        @blp.arguments(PageArgs, location="query")
        @blp.response(200, page_schema(HandledOut, "HandledPage"))
        def get(self, args: dict[str, Any]) -> Any:
            """List the handled events, oldest first"""
            key = [InboxMessage.handled_at, InboxMessage.event_id]
            with unit_of_work() as session:
                rows, next_cursor = paginate(session, select(InboxMessage), key, args["limit"], args["cursor"])
            return page(rows, next_cursor)

    return blp


@pytest.fixture()
def app(database_url: str, keys: TestKeys) -> Flask:
    settings = replace(
        Settings.from_env("courses", env={}),
        database_url=database_url,
        amqp_url=UNREACHABLE_BROKER,
        issuer=TEST_ISSUER,
        max_body_bytes=MAX_BODY_BYTES,
    )
    definition = ServiceDefinition(
        name="courses", title="Courses", migrations=MIGRATIONS, blueprints=[courses_blueprint()]
    )
    return definition.create_app(settings, key_source=keys)


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture()
def writer(keys: TestKeys) -> dict[str, str]:
    return bearer(keys.mint(sub="author-1", scope="catalog:read catalog:write"))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(response: TestResponse, status: int) -> dict[str, Any]:
    """The problem details of an error response, checked against RFC 9457."""
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def post_course(client: FlaskClient, headers: dict[str, str], body: Any) -> TestResponse:
    return client.post("/courses", json=body, headers=headers)


# --- problem details --------------------------------------------------------------------------


def test_valid_request_with_the_permission_succeeds(client: FlaskClient, writer: dict[str, str]) -> None:
    response = post_course(client, writer, {"title": "Python"})
    assert response.status_code == 201
    assert response.get_json() == {"title": "Python", "author": "author-1"}


def test_malformed_json_is_a_400_problem(client: FlaskClient, writer: dict[str, str]) -> None:
    response = client.post("/courses", data='{"title": ', content_type="application/json", headers=writer)
    assert "JSON" in problem(response, 400)["detail"]


def test_unknown_field_is_a_422_problem_naming_it(client: FlaskClient, writer: dict[str, str]) -> None:
    body = problem(post_course(client, writer, {"title": "Python", "price": 10}), 422)
    assert set(body["errors"]) == {"price"}


def test_missing_field_is_a_422_problem_naming_it(client: FlaskClient, writer: dict[str, str]) -> None:
    assert set(problem(post_course(client, writer, {}), 422)["errors"]) == {"title"}


def test_body_over_the_limit_is_a_413_problem(client: FlaskClient, writer: dict[str, str]) -> None:
    problem(post_course(client, writer, {"title": "x" * MAX_BODY_BYTES}), 413)


def test_body_over_the_limit_is_refused_whatever_its_type(client: FlaskClient, writer: dict[str, str]) -> None:
    problem(client.post("/courses", data=b"x" * (MAX_BODY_BYTES + 1), content_type="text/plain", headers=writer), 413)


@pytest.mark.parametrize("depth", [33, 1000])
def test_deeply_nested_json_is_a_400_problem(client: FlaskClient, writer: dict[str, str], depth: int) -> None:
    body = '{"title": ' + "[" * depth + "]" * depth + "}"
    response = client.post("/courses", data=body, content_type="application/json", headers=writer)
    assert problem(response, 400)["code"] == "too_deep"


def test_brackets_inside_strings_do_not_count_as_nesting(client: FlaskClient, writer: dict[str, str]) -> None:
    assert post_course(client, writer, {"title": '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"{{{{'}).status_code == 201


def test_json_body_that_is_not_utf8_is_a_400_problem(client: FlaskClient, writer: dict[str, str]) -> None:
    response = client.post("/courses", data=b'{"title": "\xff\xfe"}', content_type="application/json", headers=writer)
    assert problem(response, 400)["code"] == "invalid_encoding"


def test_nul_characters_are_a_400_problem(client: FlaskClient, writer: dict[str, str]) -> None:
    assert problem(post_course(client, writer, {"title": "a\u0000b"}), 400)["code"] == "invalid_input"
    assert problem(post_course(client, writer, {"title": "ok", "a\u0000": 1}), 400)["code"] == "invalid_input"
    assert problem(client.get("/courses?q=a%00b", headers=writer), 400)["code"] == "invalid_input"
    form = client.post("/courses", data={"title": "a\x00"}, headers=writer)
    assert problem(form, 400)["code"] == "invalid_input"


@pytest.mark.parametrize("field", [{"draft": 0}, {"draft": "yes"}, {"position": 2.5}, {"position": True}])
def test_json_booleans_and_integers_are_not_coerced(
    client: FlaskClient, writer: dict[str, str], field: dict[str, Any]
) -> None:
    assert list(problem(post_course(client, writer, {"title": "T", **field}), 422)["errors"]) == list(field)


def test_a_missing_body_is_a_400_problem(client: FlaskClient, writer: dict[str, str]) -> None:
    problem(client.post("/courses", headers=writer), 400)


def test_unknown_route_is_a_404_problem(client: FlaskClient) -> None:
    problem(client.get("/nowhere"), 404)


def test_wrong_method_is_a_405_problem_listing_the_allowed_ones(client: FlaskClient) -> None:
    response = client.delete("/courses")
    problem(response, 405)
    assert "POST" in response.headers["Allow"]


def test_problem_raised_by_a_use_case_keeps_its_code_and_extras(client: FlaskClient) -> None:
    body = problem(client.get("/courses/locked"), 409)
    assert body["type"] == "https://lms.dev/problems/course_locked"
    assert (body["code"], body["detail"], body["editor"]) == ("course_locked", "the course is being edited", "author-2")


def test_unexpected_error_is_a_500_problem_without_its_details(client: FlaskClient) -> None:
    body = problem(client.get("/courses/broken"), 500)
    assert "bug" not in json.dumps(body)


# --- authentication and authorization ---------------------------------------------------------


def test_missing_token_is_a_401_bearer_challenge(client: FlaskClient) -> None:
    response = post_course(client, {}, {"title": "Python"})
    problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_other_scheme_is_a_401_bearer_challenge(client: FlaskClient) -> None:
    response = post_course(client, {"Authorization": "Basic dXNlcjpwYXNz"}, {"title": "Python"})
    problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_bad_token_is_a_401_invalid_token_challenge(client: FlaskClient, bad_token: str) -> None:
    response = post_course(client, bearer(bad_token), {"title": "Python"})
    problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_token_without_the_permission_is_a_403_problem(client: FlaskClient, keys: TestKeys) -> None:
    response = post_course(client, bearer(keys.mint(scope="catalog:read")), {"title": "Python"})
    assert "catalog:write" in problem(response, 403)["detail"]


def test_token_of_a_disabled_user_is_refused(
    client: FlaskClient, keys: TestKeys, session_factory: sessionmaker[Session]
) -> None:
    with session_scope(session_factory) as session:
        session.add(DisabledUser(user_id="author-1", disabled_at=datetime.now(UTC) + timedelta(seconds=5)))
    problem(post_course(client, bearer(keys.mint(sub="author-1", scope="catalog:write")), {"title": "P"}), 401)


# --- operations endpoints ---------------------------------------------------------------------


def test_healthz_says_ok(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readyz_names_what_is_down(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert [part.split(":")[0] for part in response.get_json()["down"]] == ["broker"]


def test_metrics_are_prometheus_text_counting_requests(client: FlaskClient) -> None:
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples = [line for line in response.text.splitlines() if line.startswith("lms_http_requests_total{")]
    assert any('service="courses"' in line and 'endpoint="/healthz"' in line for line in samples)


def test_openapi_document_describes_the_routes_and_bearer_auth(client: FlaskClient) -> None:
    response = client.get("/openapi.json")
    spec = json.loads(response.data)
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert spec["paths"]["/courses"]["post"]["security"] == [{"bearerAuth": ["catalog:write"]}]
    assert spec["paths"]["/courses"]["post"]["summary"] == "Create a course"


def test_docs_page_is_served_with_its_assets(client: FlaskClient) -> None:
    page_response = client.get("/docs")
    assert page_response.status_code == 200
    assert "swagger" in page_response.text.lower()
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200


# --- request ids ------------------------------------------------------------------------------


def test_request_id_given_is_echoed(client: FlaskClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"


def test_no_response_may_be_sniffed_as_another_type(client: FlaskClient, writer: dict[str, str]) -> None:
    assert post_course(client, writer, {"title": "<script>"}).headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/nowhere").headers["X-Content-Type-Options"] == "nosniff"


def test_request_id_is_generated_when_missing(client: FlaskClient) -> None:
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert uuid.UUID(generated)


def test_unsafe_request_id_is_replaced(client: FlaskClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "<script>alert(1)</script>"})
    assert uuid.UUID(response.headers["X-Request-ID"])


def test_error_responses_carry_the_request_id_too(client: FlaskClient) -> None:
    assert client.get("/nowhere", headers={"X-Request-ID": "r-404"}).headers["X-Request-ID"] == "r-404"


# --- pagination -------------------------------------------------------------------------------


@pytest.fixture()
def handled(session_factory: sessionmaker[Session]) -> list[str]:
    """Five handled events; two share a timestamp, so the id breaks the tie."""
    start = datetime(2026, 11, 23, 10, tzinfo=UTC)
    offsets = [0, 1, 1, 2, 3]
    ids = [f"event-{n}" for n in range(5)]
    with session_scope(session_factory) as session:
        for event_id, offset in zip(ids, offsets, strict=True):
            session.add(InboxMessage(event_id=event_id, event_type="T", handled_at=start + timedelta(seconds=offset)))
    return ids


def next_link(response: TestResponse) -> str | None:
    link = response.headers.get("Link")
    if link is None:
        return None
    assert link.endswith('>; rel="next"')
    return link[1 : -len('>; rel="next"')]


def follow_pages(client: FlaskClient, url: str) -> list[list[str]]:
    pages: list[list[str]] = []
    next_url: str | None = url
    while next_url:
        response = client.get(next_url)
        assert response.status_code == 200
        pages.append([item["event_id"] for item in response.get_json()["items"]])
        next_url = next_link(response)
        assert (next_url is None) == (response.get_json()["next_cursor"] is None)
    return pages


def test_list_is_paged_by_cursor_following_the_link_header(client: FlaskClient, handled: list[str]) -> None:
    assert follow_pages(client, "/courses/handled?limit=2") == [handled[0:2], handled[2:4], handled[4:5]]


def test_last_page_has_no_next_cursor_and_no_link(client: FlaskClient, handled: list[str]) -> None:
    response = client.get("/courses/handled?limit=5")
    assert response.get_json()["next_cursor"] is None
    assert "Link" not in response.headers


def test_link_keeps_the_other_query_arguments(client: FlaskClient, handled: list[str]) -> None:
    link = next_link(client.get("/courses/handled?limit=2"))
    assert link is not None
    assert link.startswith("http://localhost/courses/handled?limit=2&cursor=")


def test_limit_defaults_to_50_and_is_capped_at_500(client: FlaskClient, handled: list[str]) -> None:
    assert len(client.get("/courses/handled").get_json()["items"]) == 5
    assert set(problem(client.get("/courses/handled?limit=501"), 422)["errors"]) == {"limit"}


@pytest.mark.parametrize("cursor", ["garbage!", "bm90IGpzb24", "WzFd", "WyJub3QgYSB0aW1lIiwgImEiXQ"])
def test_cursor_not_handed_out_by_the_api_is_a_400_problem(
    client: FlaskClient, handled: list[str], cursor: str
) -> None:
    assert problem(client.get(f"/courses/handled?cursor={cursor}"), 400)["code"] == "invalid_cursor"


def test_paginate_without_a_request_returns_rows_and_cursor(
    session_factory: sessionmaker[Session], handled: list[str]
) -> None:
    key = [InboxMessage.handled_at, InboxMessage.event_id]
    with session_scope(session_factory) as session:
        first, cursor = paginate(session, select(InboxMessage), key, 3, None)
        second, last = paginate(session, select(InboxMessage), key, 3, cursor)
    assert [row.event_id for row in first + second] == handled
    assert last is None
