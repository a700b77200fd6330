"""Conditions on an event's data: operators and dotted paths."""

import pytest

from automation.rules import matches

DATA = {"department": "Engineering", "tags": ["a", "b"], "buyer": {"email": "x@y.z"}, "lines": [{"quantity": 3}],
        "start_date": "2026-12-01", "n": 5}  # fmt: skip


@pytest.mark.parametrize(("field", "op", "value", "expected"), [
    ("department", "eq", "Engineering", True),
    ("department", "ne", "Engineering", False),
    ("missing", "ne", "x", True),
    ("missing", "eq", "x", False),
    ("department", "in", ["Sales", "Engineering"], True),
    ("tags", "contains", "b", True),
    ("department", "contains", "gin", True),
    ("n", "contains", "5", False),
    ("lines.0.quantity", "gt", 2, True),
    ("lines.0.quantity", "lt", 2, False),
    ("lines.1.quantity", "exists", True, False),
    ("buyer.email", "exists", None, True),
    ("buyer.phone", "exists", False, True),
    ("start_date", "gt", "2026-11-30", True),
    ("department", "gt", 3, False),
])  # fmt: skip
def test_operators(field, op, value, expected):
    condition = {"field": field, "op": op} | ({} if value is None else {"value": value})
    assert matches([condition], DATA) is expected


def test_all_conditions_must_hold():
    assert matches([], DATA)
    assert not matches([{"field": "n", "op": "eq", "value": 5}, {"field": "n", "op": "gt", "value": 9}], DATA)
