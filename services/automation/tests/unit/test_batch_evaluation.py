"""The set-based evaluation of a consumer batch leaves exactly what evaluating its events one by
one leaves: the same source events, runs, employments, effects, webhook deliveries and commands
(ids of runs and times aside), and the same outcome per message."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from automation_helpers import event
from batch_helpers import (
    ORG,
    OTHER_ORG,
    PAST_THE_CALENDAR,
    RULES,
    SERVICE,
    THIRD_ORG,
    TRAINING,
    Worker,
    both_paths,
    delivery,
    offboarded,
    onboarded,
    paid,
    provisioned,
    workers,
)
from conftest import make_settings
from sqlalchemy import event as sql_event

from automation.commands import command_id
from lms_common.config import Settings
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import session_scope
from lms_common.envelope import Event
from lms_common.outbox import OutboxMessage


@pytest.fixture()
def sqlite(tmp_path: Path) -> Callable[[str], Settings]:
    """Settings on a migrated SQLite database of this name."""
    return lambda name: make_settings(f"sqlite:///{tmp_path / name}.sqlite3", tmp_path / name / "var")


def test_invoices_and_provisioned_users_have_the_same_outcome(sqlite, keys):
    first = paid("INV-1")
    again = event("InvoicePaid", dict(first.data))  # the same invoice under a new event id
    invited = paid("INV-3", invitees=["Bob@example.com ", "bob@example.com"])
    batch = [first, paid("INV-2", quantity=3), invited, again, paid("INV-1", org=OTHER_ORG)]
    batch += [provisioned(), provisioned(), paid("INV-4"), paid("INV-4")]
    one_by_one, _ = both_paths(sqlite, keys, [delivery(item) for item in batch], [delivery(paid("INV-2"))])
    statuses = [row[6] for row in one_by_one.tables()["runs"]]
    assert statuses.count("duplicate") == 3 and "succeeded" in statuses


def test_an_event_no_rule_evaluates_is_not_kept_on_either_path(sqlite, keys):
    """Source events are kept for their runs' retries: OTHER_ORG has no UserProvisioned rule, so
    its users' events leave no run and no copy, nor does its invoice (its default grants are
    off), while ORG's user and invoice are kept."""
    kept = [provisioned(), paid("INV-9")]
    left = [provisioned(org=OTHER_ORG), paid("INV-9", org=OTHER_ORG)]
    one_by_one, _ = both_paths(sqlite, keys, [delivery(item) for item in [*left, *kept]])
    tables = one_by_one.tables()
    assert [row[0] for row in tables["source_events"]] == sorted(item.id for item in kept)
    assert {row[0] for row in tables["runs"]} == {item.id for item in kept}


def test_an_employee_onboarded_offboarded_and_rehired_in_one_batch(sqlite, keys):
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
    one_by_one, _ = both_paths(sqlite, keys, [delivery(item) for item in batch], [delivery(item) for item in later])
    cycles = [row[1:] for row in one_by_one.tables()["employments"] if row[:2] == (ORG, "E-1")]
    assert cycles == [("E-1", date(2026, 12, 1), 1), ("E-1", date(2027, 6, 1), 2), ("E-1", date(2028, 1, 1), 3)]
    assert len(one_by_one.tables()["webhooks"]) == 1


def test_a_run_that_fails_is_recorded_as_one_by_one(sqlite, keys):
    batch = [onboarded("E-1", "2026-12-01"), onboarded("E-9", PAST_THE_CALENDAR), onboarded("E-5", "2026-12-01"),
             paid("INV-1", org=THIRD_ORG), paid("INV-2", org=THIRD_ORG), paid("INV-3")]  # fmt: skip
    one_by_one, _ = both_paths(sqlite, keys, [delivery(item) for item in batch])
    errors = [row[8] for row in one_by_one.tables()["runs"] if row[6] == "failed"]
    assert len(errors) == 4 and all(errors)


def test_each_command_is_checked_against_its_contract_once(sqlite, keys, monkeypatch):
    """Planning checks each command (a failure fails its run before anything is written); the
    outbox does not check it again, on either path."""
    checked: Counter[str] = Counter()
    validate = SUITE_EVENTS.validate

    def counting(item: Event) -> Event:
        if item.source == "/automation":  # a command, not a consumed event
            checked[item.id] += 1
        return validate(item)

    monkeypatch.setattr(SUITE_EVENTS, "validate", counting)
    batch = [paid("INV-1", quantity=3), paid("INV-2"), onboarded("E-1", "2026-12-01"), provisioned(), paid("INV-3")]
    for worker in workers(sqlite, keys):
        checked.clear()
        assert {outcome for outcome, _ in worker.process([delivery(item) for item in batch])} == {"handled"}
        sent = [row[0] for row in worker.tables()["outbox"]]
        assert len(sent) >= 10 and checked == Counter(sent)
        worker.process([delivery(paid("INV-9"))])  # a lone event goes the per-event way
        sent = [row[0] for row in worker.tables()["outbox"]]
        assert checked == Counter(sent)


def test_an_invalid_message_is_dead_lettered_alone(sqlite, keys):
    broken = onboarded("E-6", "2026-12-01").to_dict()
    del broken["data"]["email"]
    batch = [delivery(onboarded("E-1", "2026-12-01")), delivery(json.dumps(broken).encode()),
             delivery(onboarded("E-6", "2026-12-01"))]  # fmt: skip
    one_by_one, _ = both_paths(sqlite, keys, batch)
    outcomes = [outcome for outcome, _ in one_by_one.process(batch)]
    assert outcomes == ["duplicate", "dead_lettered", "duplicate"]


def test_a_batch_that_fails_is_handled_again_message_by_message(sqlite, keys):
    """Another worker's command for E-7 (a unique-key race): only that message is retried."""
    raced = command_id(ORG, f"employee:E-7:rule:{RULES[0]['id']}:training:cycle:1")
    batch = [delivery(onboarded(name, "2026-12-01")) for name in ("E-1", "E-7", "E-8")]
    one_by_one, set_based = workers(sqlite, keys)
    for worker in (one_by_one, set_based):
        with session_scope(worker.runtime.session_factory) as session:
            session.add(OutboxMessage(event_id=raced, event_type=TRAINING["type"], routing_key="x", body=b"{}"))
    outcomes = set_based.process(batch)
    assert [outcome for outcome, _ in outcomes] == ["handled", "retry", "handled"]
    assert outcomes == one_by_one.process(batch)
    assert set_based.tables() == one_by_one.tables()


def test_a_batch_costs_a_handful_of_statements_whatever_its_size(sqlite, keys):
    worker = Worker(SERVICE, sqlite("set_based"), keys)
    statements: list[str] = []
    sql_event.listen(worker.runtime.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    small = [delivery(onboarded(f"E-{n}", "2026-12-01")) for n in range(2)]
    large = [delivery(onboarded(f"E-{n}", "2026-12-01")) for n in range(100, 200)]
    worker.process(small)
    few = len(statements)
    statements.clear()
    assert {outcome for outcome, _ in worker.process(large)} == {"handled"}
    assert len(statements) == few <= 20
