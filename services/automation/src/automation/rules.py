"""The rule format: triggers, conditions on an event's ``data`` and ordered actions.

A rule reads ``{"name", "trigger", "conditions", "actions", "enabled"}``:

- ``trigger``: one of :data:`TRIGGERS` (an event type on the bus, or ``DailyTick``).
- ``conditions``: all must hold; ``{"field": "buyer.email", "op": "eq", "value": ...}`` where
  ``field`` is a dotted path into the event's ``data`` (a number picks a list item) and ``op`` is
  ``eq``, ``ne``, ``in`` (value a list), ``contains`` (a list holds it, or a text contains it),
  ``gt``, ``lt`` (numbers, or texts such as dates) or ``exists`` (value true or false).
- ``actions``: carried out in order, each an object with a ``type`` (see :data:`ACTION_SCHEMAS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from lms_common.api import StrictSchema
from lms_common.contracts import SUITE_EVENTS

DAILY_TICK = "DailyTick"
# The triggers that make sense for rules; one whose contract is not on the bus yet is left out.
CANDIDATE_TRIGGERS = (
    "InvoicePaid",
    "EmployeeOnboarded",
    "EmployeeOffboarded",
    "UserProvisioned",
    "CourseCompleted",
    "ProgramCompleted",
    "AssignmentOverdue",
    DAILY_TICK,
)
TRIGGERS = tuple(name for name in CANDIDATE_TRIGGERS if name in SUITE_EVENTS)
OPERATORS = ("eq", "ne", "in", "contains", "gt", "lt", "exists")
FIELD_PATH = r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+){0,9}$"
MISSING = object()


def flag(**kwargs: Any) -> fields.Boolean:
    """A JSON boolean: ``"no"`` or ``0`` is a wrong type, not false."""
    return fields.Boolean(truthy={True}, falsy={False}, **kwargs)


# --- conditions -------------------------------------------------------------------------------


class Condition(StrictSchema):
    field = fields.String(required=True, validate=validate.Regexp(FIELD_PATH, error="a dotted path into data"))
    op = fields.String(required=True, validate=validate.OneOf(OPERATORS))
    value = fields.Raw(allow_none=True)

    @validates_schema
    def _value_fits_op(self, data: Mapping[str, Any], **_: Any) -> None:
        op, value = data.get("op"), data.get("value", MISSING)
        if op == "exists":
            if value is not MISSING and not isinstance(value, bool):
                raise ValidationError("exists takes true or false", "value")
        elif value is MISSING:
            raise ValidationError(f"{op} needs a value", "value")
        elif op == "in" and not isinstance(value, list):
            raise ValidationError("in takes a list", "value")
        elif op in ("gt", "lt") and (isinstance(value, bool) or not isinstance(value, int | float | str)):
            raise ValidationError(f"{op} takes a number or a text", "value")
        elif op in ("eq", "ne", "contains") and isinstance(value, dict):
            raise ValidationError(f"{op} takes a scalar or a list", "value")


def resolve(data: Any, path: str) -> Any:
    """The value at a dotted path, or :data:`MISSING`."""
    value = data
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def _compare(actual: Any, expected: Any, op: str) -> bool:
    numbers = (int, float)
    both_numbers = isinstance(actual, numbers) and isinstance(expected, numbers)
    if not both_numbers and not (isinstance(actual, str) and isinstance(expected, str)):
        return False  # incomparable values never match rather than fail the run
    return bool(actual > expected if op == "gt" else actual < expected)


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    return isinstance(actual, list) and expected in actual


OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda actual, expected: bool(actual == expected),
    "ne": lambda actual, expected: bool(actual != expected),
    "in": lambda actual, expected: actual in expected,
    "contains": _contains,
    "gt": lambda actual, expected: _compare(actual, expected, "gt"),
    "lt": lambda actual, expected: _compare(actual, expected, "lt"),
}


def holds(condition: Mapping[str, Any], data: Mapping[str, Any]) -> bool:
    """Whether one condition holds for an event's data (a missing field is only ``ne``)."""
    op: str = condition["op"]
    expected = condition.get("value")
    actual = resolve(data, condition["field"])
    if op == "exists":
        return (actual is not MISSING) == (expected is not False)
    if actual is MISSING:
        return op == "ne"
    return bool(OPS[op](actual, expected))


def matches(conditions: Sequence[Mapping[str, Any]], data: Mapping[str, Any]) -> bool:
    """Whether every condition holds (no conditions: always)."""
    return all(holds(condition, data) for condition in conditions)


# --- actions ----------------------------------------------------------------------------------


def _uuids(required: bool = True, min_items: int = 1) -> fields.List:  # type: ignore[type-arg]
    length = validate.Length(min=min_items, max=100)
    if required:
        return fields.List(fields.UUID(), required=True, validate=length)
    return fields.List(fields.UUID(), validate=length, load_default=list)


class GrantProductAction(StrictSchema):
    type = fields.String(required=True)
    product_ids = _uuids()


class RevokeProductAction(StrictSchema):
    type = fields.String(required=True)
    product_ids = _uuids()


class AssignMandatoryTrainingAction(StrictSchema):
    """Courses and programs due ``due_in_days`` after the event's start date (or its time).

    On the daily tick, ``every_months`` makes it a recertification: the courses are assigned
    again to everyone whose last completion is older than that, in a new cycle.
    """

    type = fields.String(required=True)
    course_ids = _uuids(required=False, min_items=0)
    program_ids = _uuids(required=False, min_items=0)
    due_in_days = fields.Integer(required=True, validate=validate.Range(min=0, max=3650))
    mandatory = flag(load_default=True)
    every_months = fields.Integer(validate=validate.Range(min=1, max=120))

    @validates_schema
    def _something_assigned(self, data: Mapping[str, Any], **_: Any) -> None:
        if not data.get("course_ids") and not data.get("program_ids"):
            raise ValidationError("assign at least one course or program", "course_ids")


class EnrollInProgramAction(StrictSchema):
    type = fields.String(required=True)
    program_ids = _uuids()


class CallWebhookAction(StrictSchema):
    """A POST of the event to ``url``, signed with HMAC-SHA256 of ``secret``, retried."""

    type = fields.String(required=True)
    url = fields.String(required=True, validate=[validate.URL(schemes={"http", "https"}), validate.Length(max=2000)])
    secret = fields.String(required=True, validate=validate.Length(min=16, max=500))
    timeout_seconds = fields.Float(load_default=5.0, validate=validate.Range(min=0.1, max=30))
    max_attempts = fields.Integer(load_default=3, validate=validate.Range(min=1, max=10))


ACTION_SCHEMAS: dict[str, type[Schema]] = {
    "GrantProduct": GrantProductAction,
    "RevokeProduct": RevokeProductAction,
    "AssignMandatoryTraining": AssignMandatoryTrainingAction,
    "EnrollInProgram": EnrollInProgramAction,
    "CallWebhook": CallWebhookAction,
}
SECRET_MASK = "********"  # noqa: S105 - what is shown instead of a secret
PERSON_ACTIONS = ("GrantProduct", "RevokeProduct", "EnrollInProgram")


class ActionField(fields.Field):  # type: ignore[type-arg]
    """An action object, checked by the schema of its ``type``; ids come back as text."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValidationError("an action is an object with a type")
        kind = value.get("type")
        if kind not in ACTION_SCHEMAS:
            raise ValidationError(f"type must be one of {', '.join(ACTION_SCHEMAS)}")
        loaded = ACTION_SCHEMAS[kind]().load(value)
        return {key: _text_ids(item) for key, item in loaded.items()}


def _text_ids(value: Any) -> Any:
    return [str(item) for item in value] if isinstance(value, list) else value


def public_action(action: Mapping[str, Any]) -> dict[str, Any]:
    """An action as the API shows it: a webhook's secret is never read back."""
    shown = dict(action)
    if "secret" in shown:
        shown["secret"] = SECRET_MASK
    return shown
