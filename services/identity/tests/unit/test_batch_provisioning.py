"""Provisioning set-based (identity.provisioning) against the per-event handlers: the same
batches through both leave the same rows and publish the same events."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.event import listen, remove
from sqlalchemy.orm import Session, sessionmaker

from identity import services
from identity.handlers import HANDLERS
from identity.models import ProvisioningWarning, RoleAssignment, User
from identity.provisioning import BATCH_HANDLERS
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import make_engine, make_session_factory, session_scope
from lms_common.denylist import DisabledUser
from lms_common.envelope import Event
from lms_common.outbox import OutboxMessage
from lms_common.processing import Delivery, MessageProcessor, Outcome

EMAILS = ["ada@example.com", "Ada@Example.com", "bob@example.com", "known@example.com", "old@example.com"]
EMAILS += [f"p{i}@example.com" for i in range(6)]
EMPLOYEE_IDS = ["E-OLD", "E-1", "E-2", "E-3", "E-4"]
LOCATION_CODES = ["NYC", "SF", "ATLANTIS", None]


class Twin:
    """One copy of the world's database and a processor on it."""

    def __init__(self, path: Path, batch: bool) -> None:
        self.factory: sessionmaker[Session] = make_session_factory(make_engine(f"sqlite:///{path}"))
        batch_handlers = BATCH_HANDLERS if batch else None
        self.processor = MessageProcessor(
            "identity", self.factory, HANDLERS, SUITE_EVENTS, batch_handlers=batch_handlers
        )

    def deliver(self, events: list[Event]) -> list[Outcome]:
        deliveries = [Delivery(body=e.to_json(), routing_key=f"x.{e.type}", message_id=e.id) for e in events]
        return [result.outcome for result in self.processor.process(deliveries)]


@pytest.fixture()
def twins(world, tmp_path: Path) -> tuple[Twin, Twin]:  # type: ignore[no-untyped-def]
    """The world with some people already known, copied for each path: (per event, batch)."""
    world.user("known@example.com", kind="customer")
    with world.session() as session:
        old = services.create_user(
            session,
            world.org_id,
            {"email": "Old@Example.com", "first_name": "O", "last_name": "Ld", "kind": "staff", "employee_id": "E-OLD"},
        )
        services.grant_role(session, old, "student", world.locations["BOS"])
        services.disable_user(session, old, reason="offboarded")
    source = Path(world.settings.database_url.removeprefix("sqlite:///"))
    world.app.extensions["lms"].session_factory.kw["bind"].dispose()
    copies = [tmp_path / "per_event.sqlite3", tmp_path / "batch.sqlite3"]
    for copy in copies:
        for suffix in ("", "-wal"):
            if Path(f"{source}{suffix}").exists():
                shutil.copyfile(f"{source}{suffix}", f"{copy}{suffix}")
    return Twin(copies[0], batch=False), Twin(copies[1], batch=True)


def invoice(rng: random.Random, orgid: str) -> Event:
    data: dict[str, Any] = {
        "invoice_id": f"INV-{rng.randrange(10_000)}",
        "buyer": {"email": rng.choice(EMAILS), "first_name": "Buyer", "last_name": rng.choice(["A", "B"])},
        "lines": [{"product_id": "p-1", "quantity": rng.choice([1, 1, 3])}],
        "paid_at": "2026-11-23T10:00:00Z",
    }
    if rng.random() < 0.3:
        data["invitees"] = rng.sample(EMAILS, rng.randint(1, 3))
    return Event(type="InvoicePaid", data=data, orgid=orgid, source="/billing")


def onboarded(rng: random.Random, orgid: str) -> Event:
    data: dict[str, Any] = {
        "employee_id": rng.choice(EMPLOYEE_IDS),
        "email": rng.choice(EMAILS),
        "first_name": "Emp",
        "last_name": rng.choice(["X", "Y"]),
        "department": rng.choice(["Engineering", "Sales"]),
        "job_title": "Engineer",
        "start_date": "2026-12-01",
    }
    code = rng.choice(LOCATION_CODES)
    if code:
        data["location_code"] = code
    return Event(type="EmployeeOnboarded", data=data, orgid=orgid, source="/hr")


def offboarded(rng: random.Random, orgid: str) -> Event:
    data = {"employee_id": rng.choice(EMPLOYEE_IDS), "email": rng.choice(EMAILS), "last_day": "2027-01-31"}
    return Event(type="EmployeeOffboarded", data=data, orgid=orgid, source="/hr")


def seats(rng: random.Random, orgid: str) -> Event:
    holders = [{"email": email, "user_id": None, "status": "pending"} for email in rng.sample(EMAILS, 2)]
    data = {
        "grant_id": "8c0f4b6e-36a3-4a53-9a5e-0d6c3f1c2b11",
        "org_id": orgid,
        "product_id": "5e1b6a0c-9f43-4b8e-a1c6-2a9c0f4e7d22",
        "purchaser_user_id": None,
        "seats_total": 5,
        "seats_used": 2,
        "holders": holders,
        "assigned_at": "2026-11-23T10:00:00Z",
        "actor_id": None,
        "cause": "api",
    }
    return Event(type="SeatsAssigned", data=data, orgid=orgid, source="/enrollment")


def random_events(rng: random.Random, org_id: str, count: int) -> list[Event]:
    """Mostly runs of one type, as HR and billing send them, with the odd event between."""
    makers = [invoice, onboarded, offboarded, seats]
    events: list[Event] = []
    while len(events) < count:
        make = rng.choices(makers, weights=[5, 5, 1, 1])[0]
        for _ in range(rng.randint(1, 12)):
            orgid = rng.choice([org_id] * 20 + ["default", "nowhere"])
            events.append(make(rng, orgid))
    return events[:count]


def batches(rng: random.Random, events: list[Event]) -> list[list[Event]]:
    cuts = sorted(rng.sample(range(1, len(events)), 4))
    return [events[start:end] for start, end in zip([0, *cuts], [*cuts, len(events)], strict=True)]


def state(twin: Twin) -> dict[str, Any]:
    """Users, assignments, warnings, the deny list and the outbox, with new ids named by their
    first appearance in the outbox and every timestamp left out."""
    with session_scope(twin.factory) as session:
        events = [(json.loads(row.body), row.headers) for row in session.scalars(select(OutboxMessage).order_by("id"))]
        names = _names_in_order_of_appearance([body["data"] for body, _ in events])
        users = [
            {**_without_times(_columns(user)), "disabled": user.disabled_at is not None}
            for user in session.scalars(select(User))
        ]
        tables = {
            "users": users,
            "assignments": [_without_times(_columns(row)) for row in session.scalars(select(RoleAssignment))],
            "warnings": [_without_times(_columns(row), "id") for row in session.scalars(select(ProvisioningWarning))],
            "disabled": [row.user_id for row in session.scalars(select(DisabledUser))],
        }
    published = [
        {"type": body["type"], "orgid": body["orgid"], "data": _without_times(body["data"]), "headers": headers}
        for body, headers in events
    ]
    renamed = _rename({"tables": tables, "events": published}, names)
    for rows in renamed["tables"].values():
        rows.sort(key=json.dumps)
    return renamed


def _names_in_order_of_appearance(payloads: list[dict[str, Any]]) -> dict[str, str]:
    """Ids both paths draw at random, named alike when the two event streams match."""
    names: dict[str, str] = {}
    for payload in payloads:
        for key in ("user_id", "assignment_id"):
            value = payload.get(key)
            if isinstance(value, str) and value not in names:
                names[value] = f"id-{len(names)}"
    return names


def _columns(row: Any) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def _without_times(row: dict[str, Any], *also: str) -> dict[str, Any]:
    return {key: value for key, value in row.items() if not key.endswith("_at") and key not in also}


def _rename(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: _rename(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_rename(item, names) for item in value]
    return names.get(value, value) if isinstance(value, str) else value


def assert_same(per_event: Twin, batch: Twin) -> None:
    expected, found = state(per_event), state(batch)
    assert found["events"] == expected["events"]
    assert found["tables"] == expected["tables"]


@pytest.mark.parametrize("seed", range(6))
def test_random_batches_have_the_per_event_outcome(twins: tuple[Twin, Twin], world, seed: int) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    per_event, batch = twins
    for chunk in batches(rng, random_events(rng, world.org_id, 120)):
        assert batch.deliver(chunk) == per_event.deliver(chunk)
    assert_same(per_event, batch)


def run_both(twins: tuple[Twin, Twin], events: list[Event]) -> list[Outcome]:
    per_event, batch = twins
    outcomes = batch.deliver(events)
    assert outcomes == per_event.deliver(events)
    assert_same(per_event, batch)
    return outcomes


def employee(employee_id: str, email: str, code: str | None = "NYC", orgid: str = "default", **data: Any) -> Event:
    fields = {"employee_id": employee_id, "email": email, "first_name": "G", "last_name": "H"}
    fields |= {"start_date": "2026-12-01", **({"location_code": code} if code else {}), **data}
    return Event(type="EmployeeOnboarded", data=fields, orgid=orgid, source="/hr")


def paid(buyer: str, *invitees: str, quantity: int = 1, orgid: str = "default") -> Event:
    data: dict[str, Any] = {
        "invoice_id": f"INV-{buyer}",
        "buyer": {"email": buyer, "first_name": "B"},
        "lines": [{"product_id": "p-1", "quantity": quantity}],
        "paid_at": "2026-11-23T10:00:00Z",
    }
    if invitees:
        data["invitees"] = list(invitees)
    return Event(type="InvoicePaid", data=data, orgid=orgid, source="/billing")


def test_an_email_twice_in_a_batch_is_one_user(twins: tuple[Twin, Twin]) -> None:
    events = [paid("ada@example.com"), paid("ADA@example.com", "bob@example.com", "Bob@example.com")]
    events += [paid("bob@example.com", quantity=2), paid("known@example.com")]
    assert run_both(twins, events) == [Outcome.HANDLED] * 4
    with session_scope(twins[1].factory) as session:
        assert session.scalars(select(User.email).where(User.email_key == "ada@example.com")).all() == [
            "ada@example.com"
        ]


def test_an_employee_twice_in_a_batch_is_refreshed_by_the_second(twins: tuple[Twin, Twin]) -> None:
    events = [employee("E-1", "g@example.com"), employee("E-9", "h@example.com", code="ATLANTIS")]
    events += [employee("E-1", "g2@example.com", code="SF", job_title="Admiral"), employee("E-10", "i@example.com")]
    assert run_both(twins, events) == [Outcome.HANDLED] * 4


def test_a_known_employee_is_re_enabled_and_its_neighbours_provisioned(twins: tuple[Twin, Twin]) -> None:
    events = [employee("E-1", "g@example.com"), employee("E-OLD", "old@example.com", code=None)]
    events += [employee("E-2", "known@example.com"), employee("E-3", "j@example.com", code="ATLANTIS")]
    assert run_both(twins, events) == [Outcome.HANDLED] * 4
    with session_scope(twins[1].factory) as session:
        assert session.scalars(select(DisabledUser)).all() == []


def test_an_unknown_organization_dead_letters_only_its_event(twins: tuple[Twin, Twin]) -> None:
    events = [employee("E-1", "g@example.com"), employee("E-2", "h@example.com", orgid="nowhere")]
    events += [employee("E-3", "i@example.com"), paid("ada@example.com", orgid="nowhere"), paid("bob@example.com")]
    outcomes = run_both(twins, events)
    handled, dead = Outcome.HANDLED, Outcome.DEAD_LETTER
    assert outcomes == [handled, dead, handled, dead, handled]


def test_events_carry_the_correlation_of_the_message_that_caused_them(twins: tuple[Twin, Twin]) -> None:
    events = [paid("ada@example.com"), paid("bob@example.com", "c@example.com")]
    run_both(twins, events)
    with session_scope(twins[1].factory) as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        caused = [row for row in rows if json.loads(row.body)["data"].get("cause") == "InvoicePaid"]
        causes = [json.loads(row.body)["data"]["cause_event_id"] for row in caused]
        assert [row.headers["x-request-id"] for row in caused] == causes
        assert causes == [events[0].id, events[1].id, events[1].id]


def statements_for(twin: Twin, events: list[Event]) -> int:
    engine = twin.factory.kw["bind"]
    counted: list[str] = []

    def count(*args: Any) -> None:
        counted.append(args[2])

    listen(engine, "before_cursor_execute", count)
    try:
        assert set(twin.deliver(events)) == {Outcome.HANDLED}
    finally:
        remove(engine, "before_cursor_execute", count)
    return len(counted)


def test_a_run_costs_the_same_statements_whatever_its_size(twins: tuple[Twin, Twin]) -> None:
    """The inbox, one read per table, one insert per table (8 for employees, 7 for invoices)."""
    batch = twins[1]
    small = [employee(f"E-{n}", f"e{n}@example.com") for n in range(5)]
    large = [employee(f"E-{n}", f"e{n}@example.com") for n in range(5, 100)]
    assert statements_for(batch, small) == statements_for(batch, large) <= 8
    small = [paid(f"b{n}@example.com", f"i{n}@example.com") for n in range(5)]
    large = [paid(f"b{n}@example.com", f"i{n}@example.com") for n in range(5, 100)]
    assert statements_for(batch, small) == statements_for(batch, large) <= 7
