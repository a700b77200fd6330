"""The set-based evaluation of a consumer batch leaves exactly what evaluating its events one by
one leaves: the same source events, runs, employments, effects, webhook deliveries and commands
(ids of runs and times aside), and the same outcome per message."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from automation_helpers import ORG, OTHER_ORG, employee, event, invoice
from conftest import make_settings
from sqlalchemy import event as sql_event
from sqlalchemy import insert, select

from automation.commands import command_id
from automation.models import Effect, Employment, OrgSettings, Rule, Run, SourceEvent, WebhookDelivery
from automation.service import SERVICE
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

    def __init__(self, definition: Any, folder: Path, keys: TestKeys):
        settings = make_settings(f"sqlite:///{folder / 'automation.sqlite3'}", folder / "var")
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
                                json.dumps(r.actions), r.error, r.attempts) for r in runs),
                "employments": sorted((e.org_id, e.employee_id, e.start_date, e.cycle)
                                      for e in session.scalars(select(Employment))),
                "effects": sorted((e.org_id, e.natural_key, e.kind, e.command_id, run_of.get(e.run_id))
                                  for e in session.scalars(select(Effect))),
                "webhooks": sorted((w.id, w.org_id, run_of[w.run_id], w.natural_key, w.url, json.dumps(w.body))
                                   for w in session.scalars(select(WebhookDelivery))),
                "outbox": [(m.event_id, m.event_type, m.routing_key, m.headers, _without_time(m.body)) for m in outbox],
            }  # fmt: skip


def _without_time(body: bytes) -> dict[str, Any]:
    return {name: value for name, value in json.loads(body).items() if name != "time"}


def delivery(item: Event | bytes, routing_key: str = "hr.EmployeeOnboarded") -> Delivery:
    if isinstance(item, bytes):
        return Delivery(item, routing_key, None, {"x-request-id": "poison"})
    body = item.to_json()
    return Delivery(body, SUITE_EVENTS.routing_key(item), item.id, {"x-request-id": f"request-{item.id}"})


def both_paths(tmp_path: Path, keys: TestKeys, *batches: list[Delivery]) -> tuple[Worker, Worker]:
    """The batches through the per-event path and through the set-based one: same outcomes."""
    one_by_one = Worker(ONE_BY_ONE, tmp_path / "one_by_one", keys)
    set_based = Worker(SERVICE, tmp_path / "set_based", keys)
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


def test_invoices_and_provisioned_users_have_the_same_outcome(tmp_path, keys):
    first = paid("INV-1")
    again = event("InvoicePaid", dict(first.data))  # the same invoice under a new event id
    invited = paid("INV-3", invitees=["Bob@example.com ", "bob@example.com"])
    batch = [first, paid("INV-2", quantity=3), invited, again, paid("INV-1", org=OTHER_ORG)]
    batch += [provisioned(), provisioned(), paid("INV-4"), paid("INV-4")]
    one_by_one, _ = both_paths(tmp_path, keys, [delivery(item) for item in batch], [delivery(paid("INV-2"))])
    statuses = [row[6] for row in one_by_one.tables()["runs"]]
    assert statuses.count("duplicate") == 3 and "succeeded" in statuses


def test_an_employee_onboarded_offboarded_and_rehired_in_one_batch(tmp_path, keys):
    batch = [
        onboarded("E-1", "2026-12-01"),
        onboarded("E-1", "2026-12-01"),  # the same onboarding under a new event id
        offboarded("E-1", "2027-01-31"),
        onboarded("E-1", "2027-06-01"),  # rehired: cycle 2
        onboarded("E-1", "2026-12-01"),  # the first employment again: stays in cycle 1
        onboarded("E-2", "2025-06-01"),  # known from before: cycle 2, not a new one
        onboarded("E-2", "2027-01-01"),  # a third employment
        onboarded("E-3", "2026-12-01", department="Sales"),
        onboarded("E-1", "2026-12-01", org=OTHER_ORG),  # goes alone (a webhook rule), in its place
        onboarded("E-4", "2026-12-01"),
    ]
    later = [onboarded("E-1", "2028-01-01"), offboarded("E-1", "2028-02-01"), onboarded("E-4", "2026-12-01")]
    one_by_one, _ = both_paths(tmp_path, keys, [delivery(item) for item in batch], [delivery(item) for item in later])
    cycles = [row[1:] for row in one_by_one.tables()["employments"] if row[:2] == (ORG, "E-1")]
    assert cycles == [("E-1", date(2026, 12, 1), 1), ("E-1", date(2027, 6, 1), 2), ("E-1", date(2028, 1, 1), 3)]
    assert len(one_by_one.tables()["webhooks"]) == 1


def test_a_run_that_fails_is_recorded_as_one_by_one(tmp_path, keys):
    too_long = "E-" + "9" * 198  # its training's natural key is longer than the contract allows
    batch = [onboarded("E-1", "2026-12-01"), onboarded(too_long, "2026-12-01"), onboarded("E-5", "2026-12-01"),
             paid("INV-1", org=THIRD_ORG), paid("INV-2", org=THIRD_ORG), paid("INV-3")]  # fmt: skip
    one_by_one, _ = both_paths(tmp_path, keys, [delivery(item) for item in batch])
    errors = [row[8] for row in one_by_one.tables()["runs"] if row[6] == "failed"]
    assert len(errors) == 4 and all(errors)


def test_an_invalid_message_is_dead_lettered_alone(tmp_path, keys):
    broken = onboarded("E-6", "2026-12-01").to_dict()
    del broken["data"]["email"]
    batch = [delivery(onboarded("E-1", "2026-12-01")), delivery(json.dumps(broken).encode()),
             delivery(onboarded("E-6", "2026-12-01"))]  # fmt: skip
    one_by_one, _ = both_paths(tmp_path, keys, batch)
    outcomes = [outcome for outcome, _ in one_by_one.process(batch)]
    assert outcomes == ["duplicate", "dead_lettered", "duplicate"]


def test_a_batch_that_fails_is_handled_again_message_by_message(tmp_path, keys):
    """Another worker's command for E-7 (a unique-key race): only that message is retried."""
    raced = command_id(ORG, f"employee:E-7:rule:{RULES[0]['id']}:course:{COURSES[0]}:cycle:1")
    batch = [delivery(onboarded(name, "2026-12-01")) for name in ("E-1", "E-7", "E-8")]
    one_by_one = Worker(ONE_BY_ONE, tmp_path / "one_by_one", keys)
    set_based = Worker(SERVICE, tmp_path / "set_based", keys)
    for worker in (one_by_one, set_based):
        with session_scope(worker.runtime.session_factory) as session:
            session.add(OutboxMessage(event_id=raced, event_type=TRAINING["type"], routing_key="x", body=b"{}"))
    outcomes = set_based.process(batch)
    assert [outcome for outcome, _ in outcomes] == ["handled", "retry", "handled"]
    assert outcomes == one_by_one.process(batch)
    assert set_based.tables() == one_by_one.tables()


def test_a_batch_costs_a_handful_of_statements_whatever_its_size(tmp_path, keys):
    worker = Worker(SERVICE, tmp_path / "set_based", keys)
    statements: list[str] = []
    sql_event.listen(worker.runtime.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    small = [delivery(onboarded(f"E-{n}", "2026-12-01")) for n in range(2)]
    large = [delivery(onboarded(f"E-{n}", "2026-12-01")) for n in range(100, 200)]
    worker.process(small)
    few = len(statements)
    statements.clear()
    assert {outcome for outcome, _ in worker.process(large)} == {"handled"}
    assert len(statements) == few <= 20
