"""Ingress: outside systems post CloudEvents; they are published to the bus through the outbox."""

from __future__ import annotations

import json
from typing import Any

from flask import request
from flask_smorest import Blueprint

from automation import ingress
from automation.api import schemas as s
from lms_common.api import unit_of_work
from lms_common.auth import current_principal, require
from lms_common.errors import Problem

blp = Blueprint("events", __name__, url_prefix="/v1", description="Event ingress for outside systems")


def _json_body() -> Any:
    try:
        return json.loads(request.get_data(cache=False))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem("the request body is not valid JSON", status=400, code="malformed_json") from exc


@blp.route("/events", methods=["POST"])
@require("events:publish")
@blp.response(202, s.Accepted)
@blp.alt_response(422, description="not a CloudEvent of a known outside type, or its data fails the schema")
@blp.alt_response(409, description="the event id was taken by another organization")
def post_event() -> Any:
    """Publish an outside event (structured CloudEvent; the organization comes from the token).

    Types taken: InvoicePaid, EmployeeOnboarded, EmployeeOffboarded. The same event id posted
    again answers 202 and has no second effect.
    """
    body = _json_body()
    with unit_of_work() as session:
        return {"id": ingress.ingest(session, current_principal(), body)}
