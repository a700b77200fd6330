"""Automation's consumer on PostgreSQL: events per second of the worker's processing (parse,
inbox, rules, runs, effects, commands in the outbox, commit) for InvoicePaid (the default grant
of each line) and EmployeeOnboarded (a mandatory-training rule of 3 courses), in consumer
batches of 100.

Each is measured twice in the same run, each time on a fresh database: evaluating event by
event (the service without batch handlers, as before) and set-based (the service as it is).
The broker is left out: the deliveries are handed to the processor as the consumer would.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

from sqlalchemy import func, select

from automation.models import Rule
from automation.service import SERVICE
from lms_common import migrations
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import make_engine, make_session_factory, session_scope
from lms_common.envelope import Event
from lms_common.outbox import OutboxMessage
from lms_common.processing import Delivery
from lms_common.testing import TestKeys, isolated_settings, scratch_database

ORG = "bench-org"
BATCH = 100
COURSES = [str(uuid.uuid4()) for _ in range(3)]
PRODUCTS = [str(uuid.uuid4()) for _ in range(2)]
ONE_BY_ONE = dataclasses.replace(SERVICE, batch_handlers={})
Row = tuple[str, float, str, float | None]


def invoice_paid(n: int) -> Event:
    data = {"invoice_id": f"INV-{n}", "buyer": {"email": f"buyer{n}@example.com", "first_name": "A", "last_name": "B"},
            "lines": [{"product_id": product, "quantity": 1} for product in PRODUCTS],
            "paid_at": "2026-11-23T10:00:00Z"}  # fmt: skip
    return Event(type="InvoicePaid", data=data, orgid=ORG, source="/billing")


def employee_onboarded(n: int) -> Event:
    data = {"employee_id": f"E-{n}", "email": f"e{n}@example.com", "first_name": "G", "last_name": "H",
            "department": "Engineering", "job_title": "Engineer", "location_code": "NYC",
            "start_date": "2026-12-01"}  # fmt: skip
    return Event(type="EmployeeOnboarded", data=data, orgid=ORG, source="/hr")


def _seed_training_rule(url: str) -> None:
    action = {"type": "AssignMandatoryTraining", "course_ids": COURSES, "program_ids": [], "due_in_days": 30}
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as session:
        session.add(Rule(org_id=ORG, name="Onboarding", trigger="EmployeeOnboarded", conditions=[],
                         actions=[action], created_by="bench"))  # fmt: skip
    engine.dispose()


def events_per_second(admin_url: str, amqp_url: str, definition: Any, events: list[Event], commands: int) -> float:
    """Events per second of ``definition``'s processor over ``events`` in batches of 100."""
    with scratch_database(admin_url, prefix="lms_bench") as url:
        migrations.upgrade(SERVICE.migrations, url)
        _seed_training_rule(url)
        processor = definition.processor(definition.runtime(isolated_settings("automation", url, amqp_url), TestKeys()))
        deliveries = [Delivery(e.to_json(), SUITE_EVENTS.routing_key(e), e.id, {"x-request-id": e.id}) for e in events]
        started = time.perf_counter()
        for start in range(0, len(deliveries), BATCH):
            results = processor.process(deliveries[start : start + BATCH])
            assert {result.outcome.value for result in results} == {"handled"}, results[0].reason
        elapsed = time.perf_counter() - started
        engine = make_engine(url)
        with make_session_factory(engine)() as session:
            written = session.scalar(select(func.count()).select_from(OutboxMessage))
        engine.dispose()
        assert written == commands, f"{written} commands, {commands} expected"
        return len(events) / elapsed


def run(admin_url: str, amqp_url: str, count: int = 2_000) -> list[Row]:
    """Rows for bench/run.py: (measure, events per second, target, set-based / one by one)."""
    cases = [
        ("InvoicePaid (2 lines)", [invoice_paid(n) for n in range(count)], 2 * count),
        # One AssignMandatoryTraining per onboarding names all three courses.
        ("EmployeeOnboarded (3 courses)", [employee_onboarded(n) for n in range(count)], count),
    ]
    rows: list[Row] = []
    for name, events, commands in cases:
        before = events_per_second(admin_url, amqp_url, ONE_BY_ONE, events, commands)
        after = events_per_second(admin_url, amqp_url, SERVICE, events, commands)
        print(f"  {name}: {before:,.0f} events/s one by one, {after:,.0f} set-based", flush=True)
        rows.append((f"automation {name}, one by one (events/s)", before, "before", None))
        # 50,000 onboardings into the compliance report in 60 s: every service keeps 833/s.
        rows.append((f"automation {name}, set-based (events/s)", after, "> 833", after / before))
    return rows
