"""identity's consumer on PostgreSQL: 2,000 InvoicePaid and 2,000 EmployeeOnboarded for people
identity does not know yet, handed to its message processor in batches of 100 as the worker
does (inbox, handlers, outbox, one commit per batch).

Each type is measured twice on a fresh database: with the per-event handlers alone (the path
before batch handlers) and with identity's batch handlers, so the ratio is of the same run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from identity import services
from identity.service import SERVICE
from lms_common import migrations
from lms_common.db import make_engine, make_session_factory, session_scope
from lms_common.envelope import Event
from lms_common.processing import BatchHandler, Delivery, MessageProcessor, Outcome
from lms_common.testing import scratch_database

BATCH_SIZE = 100
LOCATION_CODES = ("NYC", "BOS", "SF", "LON")
Row = tuple[str, float, str, float | None]
MakeEvents = Callable[[str, int], list[Event]]


def invoices(org_id: str, count: int) -> list[Event]:
    """Paid invoices of new buyers, as the suite's pipeline benchmark sends them."""
    paid_at = datetime.now(UTC).isoformat()
    return [
        Event(
            type="InvoicePaid",
            orgid=org_id,
            source="/billing",
            data={
                "invoice_id": f"INV-{n}",
                "buyer": {"email": f"buyer-{n}@bench.example", "first_name": "Ada", "last_name": f"B{n}"},
                "lines": [{"product_id": "p-1", "quantity": 1}],
                "invitees": [],
                "paid_at": paid_at,
            },
        )
        for n in range(count)
    ]


def onboardings(org_id: str, count: int) -> list[Event]:
    """New employees spread over the organization's locations."""
    return [
        Event(
            type="EmployeeOnboarded",
            orgid=org_id,
            source="/hr",
            data={
                "employee_id": f"E-{n}",
                "email": f"employee-{n}@bench.example",
                "first_name": "Grace",
                "last_name": f"H{n}",
                "department": "Engineering",
                "job_title": "Engineer",
                "location_code": LOCATION_CODES[n % len(LOCATION_CODES)],
                "start_date": "2026-12-01",
            },
        )
        for n in range(count)
    ]


def events_per_second(
    admin_url: str, make_events: MakeEvents, count: int, batch_handlers: Mapping[str, BatchHandler]
) -> float:
    """Events handled per second by identity's processor on a fresh database."""
    with scratch_database(admin_url) as url:
        migrations.upgrade(SERVICE.migrations, url)
        engine = make_engine(url)
        factory = make_session_factory(engine)
        org_id = _organization(factory)
        events = make_events(org_id, count)
        processor = MessageProcessor(
            SERVICE.name, factory, SERVICE.all_handlers, SERVICE.catalog, batch_handlers=batch_handlers
        )
        deliveries = [Delivery(event.to_json(), f"x.{event.type}", event.id) for event in events]
        started = time.perf_counter()
        for start in range(0, len(deliveries), BATCH_SIZE):
            results = processor.process(deliveries[start : start + BATCH_SIZE])
            assert all(result.outcome is Outcome.HANDLED for result in results), results
        elapsed = time.perf_counter() - started
        engine.dispose()
        return count / elapsed


def _organization(factory: sessionmaker[Session]) -> str:
    with session_scope(factory) as session:
        org = services.create_organization(session, "Bench", slug="bench")
        for code in LOCATION_CODES:
            services.create_location(session, org.id, code.title(), code, None)
        return org.id


def run(admin_url: str, count: int = 2_000) -> list[Row]:
    """Rows for bench/run.py: (measure, events/s, target, batch over per-event ratio)."""
    rows: list[Row] = []
    measured: list[tuple[str, MakeEvents]] = [("InvoicePaid", invoices), ("EmployeeOnboarded", onboardings)]
    for name, make_events in measured:
        per_event = events_per_second(admin_url, make_events, count, {})
        batched = events_per_second(admin_url, make_events, count, SERVICE.batch_handlers)
        print(f"  {name}: {per_event:,.0f}/s per event, {batched:,.0f}/s with batch handlers", flush=True)
        rows.append((f"identity {count:,} {name}, per-event handlers (events/s)", per_event, "baseline", None))
        rows.append(
            (f"identity {count:,} {name}, batch handlers (events/s)", batched, "hundreds/s", batched / per_event)
        )
    return rows
