"""identity's batch handlers on PostgreSQL: a consumer batch of HR and billing events, mixed as
they arrive, provisioned set-based with the per-event outcomes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import select, text

from identity.models import ProvisioningWarning, RoleAssignment, User
from identity.service import SERVICE
from lms_common.envelope import Event
from lms_common.processing import Delivery, Outcome
from lms_common.statistics import StatisticsKeeper
from lms_common.testing import wait_until


def onboarded(employee_id: str, email: str, code: str, orgid: str) -> Event:
    data = {"employee_id": employee_id, "email": email, "first_name": "G", "last_name": "H"}
    data |= {"start_date": "2026-12-01", "location_code": code}
    return Event(type="EmployeeOnboarded", data=data, orgid=orgid, source="/hr")


def paid(buyer: str, invitees: list[str], orgid: str) -> Event:
    data: dict[str, Any] = {
        "invoice_id": f"INV-{buyer}",
        "buyer": {"email": buyer},
        "lines": [{"product_id": "p-1", "quantity": 1}],
        "invitees": invitees,
        "paid_at": "2026-11-23T10:00:00Z",
    }
    return Event(type="InvoicePaid", data=data, orgid=orgid, source="/billing")


def test_a_mixed_batch_on_postgres(world) -> None:
    org = world.org_id
    events = [
        onboarded("E-1", "g@example.com", "NYC", org),
        onboarded("E-2", "h@example.com", "ATLANTIS", org),
        onboarded("E-1", "g@example.com", "SF", org),  # the same employee again: refreshed, moved
        onboarded("E-3", "i@example.com", "NYC", "nowhere"),
        paid("ada@example.com", [], org),
        paid("ADA@example.com", ["g@example.com", "bob@example.com"], org),
    ]
    processor = SERVICE.processor(world.app.extensions["lms"])
    deliveries = [Delivery(body=e.to_json(), routing_key=f"x.{e.type}", message_id=e.id) for e in events]
    outcomes = [result.outcome for result in processor.process(deliveries)]
    assert outcomes == [Outcome.HANDLED] * 3 + [Outcome.DEAD_LETTER] + [Outcome.HANDLED] * 2
    with world.session() as session:
        users = {user.email_key: user for user in session.scalars(select(User))}
        assert users["g@example.com"].location_id == world.locations["SF"]
        assert "i@example.com" not in users
        roles = {(row.user_id, row.location_id) for row in session.scalars(select(RoleAssignment))}
        assert (users["g@example.com"].id, world.locations["SF"]) in roles
        [warning] = session.scalars(select(ProvisioningWarning)).all()
        assert (warning.user_id, warning.cause_event_id) == (users["h@example.com"].id, events[1].id)
    provisioned = [
        (e["data"]["email"], e["data"]["created"])
        for e in world.events("UserProvisioned")
        if e["data"]["cause"] != "api"
    ]
    assert provisioned == [
        ("g@example.com", True),
        ("h@example.com", True),
        ("g@example.com", False),
        ("ada@example.com", True),
        ("ada@example.com", False),
        ("g@example.com", False),
        ("bob@example.com", True),
    ]


def test_the_worker_analyzes_its_users_as_they_grow(world) -> None:  # type: ignore[no-untyped-def]
    """Autovacuum may be off or a minute behind a burst: after a run, the worker analyzes the
    users once they changed by autovacuum's threshold, so the next runs' lookups are planned
    against the real table rather than scanning the organization."""
    now = [0.0]
    keeper = StatisticsKeeper(("users", "role_assignments"), lock=1, clock=lambda: now[0])
    processor = replace(SERVICE, statistics=keeper).processor(world.app.extensions["lms"])
    hires = (onboarded(f"E-{n}", f"e{n}@example.com", "NYC", world.org_id) for n in range(2000))

    def run_of(count: int) -> None:
        events = [next(hires) for _ in range(count)]
        deliveries = [Delivery(body=e.to_json(), routing_key=f"x.{e.type}", message_id=e.id) for e in events]
        assert {result.outcome for result in processor.process(deliveries)} == {Outcome.HANDLED}

    run_of(300)

    def analyzed() -> bool:
        now[0] += 10.0  # past the interval: the next run looks again
        run_of(2)
        with world.session() as session:
            return (
                session.scalar(text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'users'")) is not None
            )

    wait_until(analyzed, timeout=20, interval=0.5)  # the server publishes table counts within a second
    with world.session() as session:
        estimated = session.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'users'"))
        assert estimated >= 300
        assert keeper.refresh(session) == []  # within the interval nothing is looked at
