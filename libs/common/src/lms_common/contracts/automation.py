"""Commands automation sends to enrollment (imperative names: they ask for an effect).

People are addressed by ``user_id`` when automation knows it, otherwise by ``email``: identity
creates users from the same outside events (EmployeeOnboarded, InvoicePaid) that trigger the
rules, and either service may handle its copy first. Enrollment keeps a command addressed to an
email it does not know yet and carries it out when identity's UserProvisioned for that email
arrives, so no ordering of the two loses or doubles an effect.

``natural_key`` is the business idempotency key, the same whatever event id carried the fact
(e.g. ``invoice:INV-1001:product:<id>``, ``employee:E-1001:rule:<id>:training:cycle:1``): enrollment
carries out each natural key once.
"""

from __future__ import annotations

from typing import Any

from lms_common.contracts.schema import DATE, EMAIL, ID, UUID, array, obj
from lms_common.envelope import EventType

NATURAL_KEY = {"type": "string", "minLength": 1, "maxLength": 300}
PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {"user_id": UUID, "email": EMAIL},
    "minProperties": 1,
    "additionalProperties": False,
}
OWNER: dict[str, Any] = {
    "type": "object",
    "properties": {"user_id": UUID, "email": EMAIL, "organization_id": ID},
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
}
CAUSE = {
    "source_event_id": ID,
    "source_event_type": {"type": "string", "maxLength": 100},
    "rule_id": {"anyOf": [UUID, {"type": "null"}]},
}

GRANT_PRODUCT = EventType(
    domain="automation",
    name="GrantProduct",
    summary="Grant a product to a user or an organization; seats > 1 or invitees make the owner a purchaser.",
    schema=obj(
        {"natural_key": NATURAL_KEY, "product_id": UUID, "owner": OWNER, **CAUSE},
        {"seats": {"type": "integer", "minimum": 1, "maximum": 100_000}, "invitees": array(EMAIL, max_items=10_000)},
    ),
)

REVOKE_PRODUCT = EventType(
    domain="automation",
    name="RevokeProduct",
    summary="Revoke a product grant from a user or an organization; the learning history stays.",
    schema=obj({"natural_key": NATURAL_KEY, "product_id": UUID, "owner": OWNER, **CAUSE}),
)

ASSIGN_MANDATORY_TRAINING = EventType(
    domain="automation",
    name="AssignMandatoryTraining",
    summary="Assign courses and programs to a person, due on a date; a new cycle re-assigns for recertification.",
    schema=obj(
        {
            "natural_key": NATURAL_KEY,
            "person": PERSON,
            "course_ids": array(UUID, max_items=500),
            "program_ids": array(UUID, max_items=500),
            "due_on": DATE,
            "mandatory": {"type": "boolean"},
            **CAUSE,
        },
        {"cycle": {"type": "integer", "minimum": 1}, "employee_id": {"anyOf": [ID, {"type": "null"}]}},
    ),
)

ENROLL_IN_PROGRAM = EventType(
    domain="automation",
    name="EnrollInProgram",
    summary="Make a person a member of a program (an enrollment in each of its courses).",
    schema=obj({"natural_key": NATURAL_KEY, "program_id": UUID, "person": PERSON, **CAUSE}),
)

DAILY_TICK = EventType(
    domain="automation",
    name="DailyTick",
    summary="A new day began for an organization (`python -m automation tick`): rules on the daily tick run.",
    schema=obj({"date": DATE}),
)

EVENTS = [GRANT_PRODUCT, REVOKE_PRODUCT, ASSIGN_MANDATORY_TRAINING, ENROLL_IN_PROGRAM, DAILY_TICK]
