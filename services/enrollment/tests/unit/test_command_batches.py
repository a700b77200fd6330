"""Automation's commands handled a batch at a time: each command has one effect, as when
handled one after the other."""

from __future__ import annotations

from datetime import date
from typing import Any

from enrollment_helpers import ORG, new_id, outbox_events

from enrollment.models import Assignment, CommandKey, Enrollment, Grant, PendingCommand
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import make_engine, make_session_factory
from lms_common.envelope import Event
from lms_common.processing import Delivery, Outcome


def command(person: dict[str, str], course: str, key: str | None = None, cycle: int | None = None) -> Event:
    data = {"natural_key": key or f"employee:{new_id()}:course:{course}", "person": person, "course_ids": [course],
            "program_ids": [], "due_on": date(2030, 1, 1).isoformat(), "mandatory": True,
            "source_event_id": new_id(), "source_event_type": "EmployeeOnboarded", "rule_id": None}  # fmt: skip
    if cycle is not None:
        data["cycle"] = cycle
    return Event(type="AssignMandatoryTraining", data=data, orgid=ORG, source="/test")


def send_batch(bus: Any, events: list[Event]) -> list[Outcome]:
    deliveries = [Delivery(event.to_json(), SUITE_EVENTS.routing_key(event), event.id) for event in events]
    return [result.outcome for result in bus.processor.process(deliveries)]


def rows(settings: Any, model: Any) -> list[Any]:
    with make_session_factory(make_engine(settings.database_url))() as session:
        return list(session.query(model).all())


def test_a_batch_of_commands_has_one_effect_each(bus, settings):
    users, courses = [new_id() for _ in range(4)], [new_id() for _ in range(3)]
    for user in users:
        bus.user(user, f"{user[:8]}@example.com")
    for course in courses:
        bus.course(course, [new_id()])
    by_id = [command({"user_id": user}, course) for user in users[:2] for course in courses]
    by_email = [command({"email": f"{user[:8]}@example.com"}, course) for user in users[2:] for course in courses]
    assert send_batch(bus, by_id + by_email) == [Outcome.HANDLED] * 12
    assigned = rows(settings, Assignment)
    assert sorted((a.user_id, a.course_id) for a in assigned) == sorted((u, c) for u in users for c in courses)
    assert {a.natural_key for a in assigned} == {event.data["natural_key"] for event in by_id + by_email}
    assert len(rows(settings, Enrollment)) == 12
    assert len(outbox_events(settings.database_url, "AssignmentCreated")) == 12
    assert len(rows(settings, CommandKey)) == 12


def test_repeats_within_and_across_batches_have_one_effect(bus, settings):
    user, course = new_id(), new_id()
    bus.user(user)
    bus.course(course, [new_id()])
    first = command({"user_id": user}, course, key="employee:E-1:course")
    repeat = command({"user_id": user}, course, key="employee:E-1:course")
    same_course_other_key = command({"user_id": user}, course, key="employee:E-1:again")
    assert send_batch(bus, [first, repeat, same_course_other_key]) == [Outcome.HANDLED] * 3
    assert send_batch(bus, [command({"user_id": user}, course, key="employee:E-1:course"), first]) == [
        Outcome.HANDLED,
        Outcome.DUPLICATE,
    ]
    assert [(a.user_id, a.natural_key, a.cycle) for a in rows(settings, Assignment)] == [
        (user, "employee:E-1:course", 1)
    ]
    assert len(outbox_events(settings.database_url, "AssignmentCreated")) == 1


def test_a_user_named_twice_with_cycles_gets_each_cycle_once(bus, settings):
    user, course = new_id(), new_id()
    bus.user(user)
    bus.course(course, [new_id()])
    cycles = [command({"user_id": user}, course, key=f"employee:E-1:cycle:{n}", cycle=n) for n in (1, 2, 2)]
    assert send_batch(bus, cycles) == [Outcome.HANDLED] * 3
    assert sorted(a.cycle for a in rows(settings, Assignment)) == [1, 2]


def test_commands_for_unknown_emails_wait_in_a_batch_and_run_on_provisioning(bus, settings):
    course = new_id()
    bus.course(course, [new_id()])
    known = new_id()
    bus.user(known, "known@example.com")
    waiting = [command({"email": "later@example.com"}, course), command({"email": "known@example.com"}, course)]
    assert send_batch(bus, waiting) == [Outcome.HANDLED] * 2
    assert [p.email for p in rows(settings, PendingCommand)] == ["later@example.com"]
    later = new_id()
    bus.user(later, "later@example.com")
    assert sorted(a.user_id for a in rows(settings, Assignment)) == sorted([known, later])
    assert rows(settings, PendingCommand) == []


def test_a_command_naming_an_unknown_course_costs_only_itself(bus, settings):
    user, course = new_id(), new_id()
    bus.user(user)
    bus.course(course, [new_id()])
    batch = [command({"user_id": user}, course), command({"user_id": user}, new_id())]
    assert send_batch(bus, batch) == [Outcome.HANDLED, Outcome.RETRY]
    assert [a.course_id for a in rows(settings, Assignment)] == [course]


def grant_command(owner: dict[str, str], product: str, key: str) -> Event:
    data = {"natural_key": key, "product_id": product, "owner": owner, "source_event_id": new_id(),
            "source_event_type": "InvoicePaid", "rule_id": None}  # fmt: skip
    return Event(type="GrantProduct", data=data, orgid=ORG, source="/test")


def test_a_batch_of_grant_commands_has_one_grant_per_natural_key(bus, settings):
    course, product = new_id(), new_id()
    bus.course(course, [new_id()])
    bus.product(product, [course])
    users = [new_id() for _ in range(3)]
    for user in users:
        bus.user(user, f"{user[:8]}@example.com")
    batch = [
        grant_command({"user_id": users[0]}, product, "invoice:1"),
        grant_command({"user_id": users[0]}, product, "invoice:1"),
    ]
    batch += [grant_command({"email": f"{users[1][:8]}@example.com"}, product, "invoice:2")]
    batch += [grant_command({"email": "later@example.com"}, product, "invoice:3")]
    assert send_batch(bus, batch) == [Outcome.HANDLED] * 4
    again = [
        grant_command({"user_id": users[0]}, product, "invoice:1"),
        grant_command({"user_id": users[2]}, product, "invoice:4"),
    ]
    assert send_batch(bus, again) == [Outcome.HANDLED] * 2
    assert sorted(g.user_id for g in rows(settings, Grant)) == sorted(users)
    assert len(outbox_events(settings.database_url, "ProductGranted")) == 3
    assert [p.email for p in rows(settings, PendingCommand)] == ["later@example.com"]
    assert sorted(e.user_id for e in rows(settings, Enrollment)) == sorted(users)
