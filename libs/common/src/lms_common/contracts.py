"""The bus contract: every event type of the suite with its payload schema.

This module is the single source of the event schemas. Publishers validate against it before an
event enters their outbox, consumers validate again on arrival, and ``asyncapi.yaml`` at the
repository root is generated from it (``make asyncapi``; a test keeps the two in step).
Services add the types they publish here, next to the ones outside systems send us.
"""

from __future__ import annotations

from typing import Any

from lms_common.envelope import EventCatalog, EventType

ID = {"type": "string", "minLength": 1, "maxLength": 200}
UUID = {"type": "string", "format": "uuid", "minLength": 36, "maxLength": 36}
EMAIL = {"type": "string", "format": "email", "maxLength": 320}
NAME = {"type": "string", "maxLength": 200}
DATE = {"type": "string", "format": "date"}
DATE_TIME = {"type": "string", "format": "date-time"}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None, *, strict: bool = True) -> dict[str, Any]:
    """A JSON Schema object with these required and optional properties.

    Events from outside systems are read tolerantly (``strict=False``): a billing system that
    adds a field must not see its invoices dead-lettered. Our own events are strict.
    """
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": sorted(required),
        "additionalProperties": not strict,
    }


def array(items: dict[str, Any], *, min_items: int = 0, max_items: int = 10_000) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": min_items, "maxItems": max_items}


INVOICE_PAID = EventType(
    domain="billing",
    name="InvoicePaid",
    summary="An invoice was paid; its LMS products are granted to the buyer or its invitees.",
    schema=obj(
        {
            "invoice_id": ID,
            "buyer": obj({"email": EMAIL}, {"first_name": NAME, "last_name": NAME}, strict=False),
            "lines": array(
                obj({"product_id": ID, "quantity": {"type": "integer", "minimum": 1, "maximum": 100_000}}, strict=False),
                min_items=1,
            ),
            "paid_at": DATE_TIME,
        },
        {"invitees": array(EMAIL)},
        strict=False,
    ),
)

EMPLOYEE_ONBOARDED = EventType(
    domain="hr",
    name="EmployeeOnboarded",
    summary="An HR system hired someone; they become a learner and get their mandatory training.",
    schema=obj(
        {"employee_id": ID, "email": EMAIL, "first_name": NAME, "last_name": NAME, "start_date": DATE},
        {
            "department": NAME,
            "job_title": NAME,
            "location_code": {"type": "string", "maxLength": 64},
            "manager_email": EMAIL,
        },
        strict=False,
    ),
)

EMPLOYEE_OFFBOARDED = EventType(
    domain="hr",
    name="EmployeeOffboarded",
    summary="An employee left; their user is disabled and their history kept.",
    schema=obj({"employee_id": ID, "email": EMAIL}, {"last_day": DATE}, strict=False),
)

USER_DISABLED = EventType(
    domain="identity",
    name="UserDisabled",
    summary="A user was disabled: every service refuses its tokens issued before disabled_at.",
    schema=obj({"user_id": UUID, "disabled_at": DATE_TIME}, {"reason": {"type": "string", "maxLength": 500}}),
)

USER_ENABLED = EventType(
    domain="identity",
    name="UserEnabled",
    summary="A disabled user was enabled again: tokens issued from now on are accepted.",
    schema=obj({"user_id": UUID, "enabled_at": DATE_TIME}),
)

TOKEN_REVOKED = EventType(
    domain="identity",
    name="TokenRevoked",
    summary="An access token was revoked before its expiry: every service refuses its jti.",
    schema=obj({"jti": ID, "expires_at": DATE_TIME}),
)

SUITE_EVENTS = EventCatalog(
    [INVOICE_PAID, EMPLOYEE_ONBOARDED, EMPLOYEE_OFFBOARDED, USER_DISABLED, USER_ENABLED, TOKEN_REVOKED]
)
