"""Comparing automation's two ways of evaluating a consumer batch: event by event (the service
without batch handlers) and set-based. Rules of three organizations cover every action, a
webhook (evaluated alone) and a broken action (failed runs); a worker per way, each on its own
database seeded alike, and every row both leave (ids of runs and times aside).

Shared by the unit tests (SQLite) and the integration tests (PostgreSQL)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from automation_helpers import ORG, OTHER_ORG, employee, event, invoice
from sqlalchemy import insert, select

from automation.models import Effect, Employment, OrgSettings, Rule, Run, SourceEvent, WebhookDelivery
from automation.service import SERVICE
from lms_common.config import Settings
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import session_scope
from lms_common.envelope import Event
from lms_common.outbox import OutboxMessage
from lms_common.processing import Delivery
from lms_common.testing import TestKeys

ONE_BY_ONE = dataclasses.replace(SERVICE, batch_handlers={})  # the service before batch handlers
THIRD_ORG = "org-3"
COURSES = [str(uuid.UUID(int=n)) for n in range(1, 4)]
PROGRAM, PRODUCT, OTHER_PRODUCT = (str(uuid.UUID(int=n)) for n in range(10, 13))
T0 = datetime(2026, 1, 1, tzinfo=UTC)
# A start date whose training would fall due after the last date there is: its run fails.
PAST_THE_CALENDAR = "9999-12-31"


def rule(org: str, trigger: str, actions: list[dict[str, Any]], conditions: list[Any] | None = None) -> dict[str, Any]:
    """A rule row; ids and creation times grow in the order rules are made."""
    n = len(RULES)
    row = {"id": str(uuid.UUID(int=1000 + n)), "org_id": org, "name": f"rule {n}", "trigger": trigger,
           "conditions": conditions or [], "actions": actions, "enabled": True, "version": 1, "created_by": "admin",
           "created_at": T0 + timedelta(seconds=n), "updated_at": T0}  # fmt: skip
    RULES.append(row)
    return row


RULES: list[dict[str, Any]] = []
TRAINING = {"type": "AssignMandatoryTraining", "course_ids": COURSES, "program_ids": [PROGRAM], "due_in_days": 30}
rule(ORG, "EmployeeOnboarded", [TRAINING])
rule(ORG, "EmployeeOnboarded", [{**TRAINING, "program_ids": [], "due_in_days": 7, "mandatory": False}],
     [{"field": "department", "op": "eq", "value": "Engineering"}])  # fmt: skip
rule(ORG, "EmployeeOnboarded", [{"type": "GrantProduct", "product_ids": [PRODUCT]}],
     [{"field": "department", "op": "eq", "value": "Sales"}])  # fmt: skip
rule(ORG, "EmployeeOffboarded", [{"type": "RevokeProduct", "product_ids": [PRODUCT]}])
rule(ORG, "InvoicePaid", [{"type": "EnrollInProgram", "program_ids": [PROGRAM]}],
     [{"field": "lines.0.quantity", "op": "gt", "value": 1}])  # fmt: skip
rule(ORG, "UserProvisioned", [{"type": "GrantProduct", "product_ids": [OTHER_PRODUCT]}])
rule(OTHER_ORG, "EmployeeOnboarded", [TRAINING])
rule(OTHER_ORG, "EmployeeOnboarded", [{"type": "CallWebhook", "url": "https://hr.example.com/hook",
     "secret": "s" * 16, "timeout_seconds": 5.0, "max_attempts": 3}])  # fmt: skip
rule(THIRD_ORG, "InvoicePaid", [{"type": "GrantProduct"}])  # a broken action: its runs fail


def seed(session: Any) -> None:
    session.execute(insert(Rule), RULES)
    session.add(OrgSettings(org_id=OTHER_ORG, invoice_paid_grants=False))
    session.add(Employment(org_id=ORG, employee_id="E-2", start_date=date(2025, 1, 1), cycle=1))
    session.add(Employment(org_id=ORG, employee_id="E-2", start_date=date(2025, 6, 1), cycle=2))


class Worker:
    """Automation's consumer processing on its own SQLite database, seeded alike."""

    def __init__(self, definition: Any, settings: Settings, keys: TestKeys):
        self.runtime = definition.runtime(settings, key_source=keys)
        self.processor = definition.processor(self.runtime)
        with session_scope(self.runtime.session_factory) as session:
            seed(session)

    def process(self, deliveries: list[Delivery]) -> list[tuple[str, str]]:
        """Each message's outcome and the first line of its reason (the rest names times)."""
        return [(r.outcome.value, (r.reason or "").split("\n")[0]) for r in self.processor.process(deliveries)]

    def tables(self) -> dict[str, list[Any]]:
        """Every row automation writes, without what differs by nature (run ids, times)."""
        with self.runtime.session_factory() as session:
            runs = session.scalars(select(Run)).all()
            run_of = {run.id: (run.event_id, run.rule_key) for run in runs}
            outbox = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
            return {
                "source_events": sorted((s.event_id, s.org_id, s.event_type, json.dumps(s.body, sort_keys=True))
                                        for s in session.scalars(select(SourceEvent))),
                "runs": sorted((r.event_id, r.rule_key, r.org_id, r.rule_id, r.event_type, r.matched, r.status,
                                json.dumps(r.actions), _first_line(r.error), r.attempts) for r in runs),
                "employments": sorted((e.org_id, e.employee_id, e.start_date, e.cycle)
                                      for e in session.scalars(select(Employment))),
                "effects": sorted((e.org_id, e.natural_key, e.kind, e.command_id, run_of.get(e.run_id))
                                  for e in session.scalars(select(Effect))),
                "webhooks": sorted((w.id, w.org_id, run_of[w.run_id], w.natural_key, w.url, json.dumps(w.body))
                                   for w in session.scalars(select(WebhookDelivery))),
                "outbox": [(m.event_id, m.event_type, m.routing_key, m.headers, _without_time(m.body)) for m in outbox],
            }  # fmt: skip


def _first_line(error: str | None) -> str | None:
    """An error's first line: a database's message goes on with the statement and its values."""
    return error.split("\n")[0] if error else error


def _without_time(body: bytes) -> dict[str, Any]:
    return {name: value for name, value in json.loads(body).items() if name != "time"}


def delivery(item: Event | bytes, routing_key: str = "hr.EmployeeOnboarded") -> Delivery:
    if isinstance(item, bytes):
        return Delivery(item, routing_key, None, {"x-request-id": "poison"})
    body = item.to_json()
    return Delivery(body, SUITE_EVENTS.routing_key(item), item.id, {"x-request-id": f"request-{item.id}"})


def workers(settings_for: Callable[[str], Settings], keys: TestKeys) -> tuple[Worker, Worker]:
    """A worker evaluating one by one and a set-based one; ``settings_for(name)`` gives each
    its own migrated database."""
    return Worker(ONE_BY_ONE, settings_for("one_by_one"), keys), Worker(SERVICE, settings_for("set_based"), keys)


def both_paths(
    settings_for: Callable[[str], Settings], keys: TestKeys, *batches: list[Delivery]
) -> tuple[Worker, Worker]:
    """The batches through the per-event path and through the set-based one: same outcomes."""
    one_by_one, set_based = workers(settings_for, keys)
    for deliveries in batches:
        assert set_based.process(deliveries) == one_by_one.process(deliveries)
    expected, found = one_by_one.tables(), set_based.tables()
    for table, rows in expected.items():
        assert found[table] == rows, table
    return one_by_one, set_based


def onboarded(employee_id: str, start: str, org: str = ORG, **data: Any) -> Event:
    return event("EmployeeOnboarded", employee(employee_id, start_date=start, **data), org=org)


def offboarded(employee_id: str, last_day: str, org: str = ORG) -> Event:
    data = {"employee_id": employee_id, "email": "grace@example.com", "last_day": last_day}
    return event("EmployeeOffboarded", data, org=org)


def provisioned(org: str = ORG) -> Event:
    user = str(uuid.uuid4())
    data = {"user_id": user, "email": f"{user}@example.com", "org_id": org, "cause": "api", "cause_event_id": None,
            "created": True}  # fmt: skip
    return event("UserProvisioned", data, org=org)


def paid(invoice_id: str, org: str = ORG, quantity: int = 1, invitees: list[str] | None = None) -> Event:
    return event("InvoicePaid", invoice(invoice_id, [(PRODUCT, quantity), (OTHER_PRODUCT, 1)], invitees), org=org)
