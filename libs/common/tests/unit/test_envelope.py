"""The CloudEvents envelope and the payload contracts of CONTRACT section 4."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import pytest

from lms_common.contracts import SUITE_EVENTS
from lms_common.envelope import REQUIRED_ATTRIBUTES, Event, InvalidEvent, decode


@pytest.fixture()
def event(make_event: Callable[..., Event]) -> Event:
    return make_event("EmployeeOffboarded")


def body_without(event: Event, name: str) -> bytes:
    body = event.to_dict()
    del body[name]
    return json.dumps(body).encode()


def body_with(event: Event, **attributes: Any) -> bytes:
    return json.dumps({**event.to_dict(), **attributes}).encode()


def refusal(body: bytes) -> str:
    with pytest.raises(InvalidEvent) as caught:
        decode(body)
    return caught.value.reason


def payload_refusal(make_event: Callable[..., Event], type_name: str, **data: Any) -> str:
    with pytest.raises(InvalidEvent) as caught:
        SUITE_EVENTS.validate(make_event(type_name, **data))
    return caught.value.reason


# --- the envelope -----------------------------------------------------------------------------


def test_event_survives_a_round_trip_through_json(event: Event) -> None:
    event = Event(**{**event.__dict__, "subject": "user/42", "time": datetime(2026, 11, 23, 10, 0, 0, 5, tzinfo=UTC)})
    assert decode(event.to_json()) == event


def test_json_is_a_structured_mode_cloudevent(event: Event) -> None:
    body = json.loads(event.to_json())
    assert body["specversion"] == "1.0"
    assert body["datacontenttype"] == "application/json"
    assert body["orgid"] == "org-1"
    assert body["time"].endswith("Z")
    assert set(REQUIRED_ATTRIBUTES) <= set(body)


def standard_json(event: Event) -> bytes:
    """The standard library's encoding, which orjson's must read back the same."""
    return json.dumps(event.to_dict(), separators=(",", ":"), default=lambda d: d.isoformat()).encode()


@pytest.mark.parametrize(
    "data",
    [
        {"title": "Zürich 東京 ✓", "quote": 'say "hi"\n', "nothing": None, "flag": True, "share": 0.25},
        {"due_on": date(2026, 12, 31), "nested": {"list": [1, "two", (3, 4)], "empty": {}}},
        {"huge": 2**70, "negative": -(2**63), "keys": {1: "one"}},
    ],
)
def test_json_reads_back_as_the_standard_library_writes_it(event: Event, data: dict[str, Any]) -> None:
    event = event.with_data(data)
    assert json.loads(event.to_json()) == json.loads(standard_json(event))
    assert b"\\u" not in event.to_json(), "text outside ASCII is written as UTF-8"


def test_json_refuses_what_it_cannot_write(event: Event) -> None:
    @dataclass
    class Point:
        x: int

    for unwritable in (time(10, 0), Point(1), object()):
        with pytest.raises(TypeError):
            event.with_data({"value": unwritable}).to_json()


@pytest.mark.parametrize("name", REQUIRED_ATTRIBUTES)
def test_missing_required_attribute_is_named(event: Event, name: str) -> None:
    assert name in refusal(body_without(event, name))


@pytest.mark.parametrize("name", ["id", "source", "type", "orgid"])
def test_empty_text_attribute_is_refused(event: Event, name: str) -> None:
    assert f"'{name}'" in refusal(body_with(event, **{name: " "}))


def test_other_specversion_is_refused(event: Event) -> None:
    assert "specversion" in refusal(body_with(event, specversion="0.3"))


def test_body_that_is_not_utf8_is_refused() -> None:
    assert "not UTF-8" in refusal(b'{"id": "\xff\xfe"}')


def test_body_that_is_not_json_is_refused() -> None:
    assert "not JSON" in refusal(b'{"id": ')


def test_body_that_is_not_an_object_is_refused() -> None:
    assert "not a JSON object" in refusal(b'["specversion", "1.0"]')


@pytest.mark.parametrize(
    "time", ["yesterday", "2026-13-01T00:00:00Z", "2026-11-23T10:00:00", "20261123T100000Z", 1700000000]
)
def test_time_that_is_not_rfc3339_with_offset_is_refused(event: Event, time: object) -> None:
    assert "'time'" in refusal(body_with(event, time=time))


def test_time_with_an_offset_is_read_as_that_instant(event: Event) -> None:
    decoded = decode(body_with(event, time="2026-11-23T12:00:00+02:00"))
    assert decoded.time == datetime(2026, 11, 23, 10, tzinfo=UTC)


@pytest.mark.parametrize("data", [[1, 2], "text", None])
def test_data_that_is_not_an_object_is_refused(event: Event, data: object) -> None:
    assert "'data'" in refusal(body_with(event, data=data))


def test_data_in_another_content_type_is_refused(event: Event) -> None:
    assert "datacontenttype" in refusal(body_with(event, datacontenttype="application/xml"))


# --- the contracts ----------------------------------------------------------------------------


def test_contract_example_is_accepted(contract_event: Event) -> None:
    assert SUITE_EVENTS.validate(decode(contract_event.to_json())) is not None


def test_routing_keys_are_domain_dot_type() -> None:
    keys = {name: SUITE_EVENTS.get(name).routing_key for name in ("InvoicePaid", "EmployeeOnboarded", "UserDisabled")}
    assert keys == {
        "InvoicePaid": "billing.InvoicePaid",
        "EmployeeOnboarded": "hr.EmployeeOnboarded",
        "UserDisabled": "identity.UserDisabled",
    }


def test_unknown_type_is_refused(make_event: Callable[..., Event]) -> None:
    event = make_event("EmployeeOffboarded")
    with pytest.raises(InvalidEvent, match="unknown event type 'EmployeeVanished'"):
        SUITE_EVENTS.validate(Event(type="EmployeeVanished", data=event.data, orgid="org-1", source="test"))


@pytest.mark.parametrize(
    ("type_name", "field"),
    [
        ("InvoicePaid", "invoice_id"),
        ("InvoicePaid", "buyer"),
        ("InvoicePaid", "lines"),
        ("InvoicePaid", "paid_at"),
        ("EmployeeOnboarded", "employee_id"),
        ("EmployeeOnboarded", "email"),
        ("EmployeeOnboarded", "start_date"),
        ("EmployeeOffboarded", "employee_id"),
        ("EmployeeOffboarded", "email"),
        ("UserDisabled", "user_id"),
        ("UserDisabled", "disabled_at"),
        ("TokenRevoked", "jti"),
    ],
)
def test_missing_payload_field_is_named(make_event: Callable[..., Event], type_name: str, field: str) -> None:
    event = make_event(type_name)
    data = {key: value for key, value in event.data.items() if key != field}
    with pytest.raises(InvalidEvent, match=f"'{field}' is a required property"):
        SUITE_EVENTS.validate(event.with_data(data))


@pytest.mark.parametrize(
    ("type_name", "data", "path"),
    [
        ("InvoicePaid", {"invoice_id": 1001}, "invoice_id"),
        ("InvoicePaid", {"lines": [{"product_id": "p1", "quantity": "2"}]}, "lines/0/quantity"),
        ("InvoicePaid", {"lines": [{"product_id": "p1", "quantity": 0}]}, "lines/0/quantity"),
        ("InvoicePaid", {"lines": []}, "lines"),
        ("InvoicePaid", {"invitees": "bob@example.com"}, "invitees"),
        ("EmployeeOnboarded", {"first_name": ["Grace"]}, "first_name"),
        ("UserDisabled", {"user_id": "not-a-uuid-but-thirty-six-characters"}, "user_id"),
    ],
)
def test_wrong_type_is_refused_at_its_path(
    make_event: Callable[..., Event], type_name: str, data: dict[str, Any], path: str
) -> None:
    assert f"payload invalid at {path}:" in payload_refusal(make_event, type_name, **data)


@pytest.mark.parametrize(
    ("type_name", "data", "path"),
    [
        ("InvoicePaid", {"buyer": {"email": "ada.example.com"}}, "buyer/email"),
        ("InvoicePaid", {"invitees": ["bob@example.com", "bob at example"]}, "invitees/1"),
        ("EmployeeOnboarded", {"email": "grace@"}, "email"),
        ("EmployeeOnboarded", {"manager_email": "boss"}, "manager_email"),
        ("EmployeeOffboarded", {"email": "grace example.com"}, "email"),
    ],
)
def test_bad_email_is_refused_at_its_path(
    make_event: Callable[..., Event], type_name: str, data: dict[str, Any], path: str
) -> None:
    reason = payload_refusal(make_event, type_name, **data)
    assert f"payload invalid at {path}:" in reason
    assert "email" in reason


@pytest.mark.parametrize("day", ["2026-02-30", "01/12/2026", "20261201", "2026-W48-2", ""])
def test_bad_date_is_refused_at_its_path(make_event: Callable[..., Event], day: str) -> None:
    reason = payload_refusal(make_event, "EmployeeOnboarded", start_date=day)
    assert reason.startswith("EmployeeOnboarded payload invalid at start_date:")


@pytest.mark.parametrize(
    "moment", ["2026-11-23", "2026-11-23T10:00:00", "2026-11-31T10:00:00Z", "20261123T100000Z", "2026-11-23T10:00Z"]
)
def test_bad_timestamp_is_refused_at_its_path(make_event: Callable[..., Event], moment: str) -> None:
    assert "payload invalid at paid_at:" in payload_refusal(make_event, "InvoicePaid", paid_at=moment)


def test_outside_systems_may_add_fields(make_event: Callable[..., Event]) -> None:
    event = make_event("InvoicePaid", currency="EUR")
    assert SUITE_EVENTS.validate(event) is event


def test_suite_events_refuse_unknown_fields(make_event: Callable[..., Event]) -> None:
    assert "Additional properties" in payload_refusal(make_event, "UserDisabled", by="admin")
