"""On PostgreSQL, the set-based evaluation of a batch leaves what evaluating one by one leaves:
multi-row inserts of JSON and dates through psycopg, the run lookup on the unique key's three
columns, the relay's wake-up, and a batch raced by another writer handled again one by one."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import event as sql_event
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))  # the comparison is shared with the unit tests

from batch_helpers import (
    OTHER_ORG,
    PAST_THE_CALENDAR,
    SERVICE,
    THIRD_ORG,
    Worker,
    both_paths,
    delivery,
    offboarded,
    onboarded,
    paid,
    provisioned,
)

from lms_common import migrations
from lms_common.config import Settings
from lms_common.statistics import StatisticsKeeper
from lms_common.testing import TestKeys, isolated_settings, scratch_database, wait_until


@pytest.fixture()
def postgres(postgres_admin_url: str) -> Iterator[Callable[[str], Settings]]:
    """Settings on a fresh, migrated PostgreSQL database per name, dropped afterwards."""
    with ExitStack() as stack:

        def settings_for(name: str) -> Settings:
            url = stack.enter_context(scratch_database(postgres_admin_url))
            migrations.upgrade(SERVICE.migrations, url)
            return isolated_settings("automation", url)

        yield settings_for


def test_mixed_batches_have_the_same_outcome_on_postgresql(postgres):
    onboardings = [
        onboarded("E-1", "2026-12-01"),
        onboarded("E-1", "2026-12-01"),
        offboarded("E-1", "2027-01-31"),
        onboarded("E-1", "2027-06-01"),
        onboarded("E-2", "2027-01-01"),
        onboarded("E-3", "2026-12-01", department="Sales"),
        onboarded("E-1", "2026-12-01", org=OTHER_ORG),
        onboarded("E-9", PAST_THE_CALENDAR),
        onboarded("E-4", "2026-12-01"),
    ]
    invoices = [paid("INV-1"), paid("INV-2", quantity=3), provisioned(), paid("INV-1"), paid("INV-3", org=THIRD_ORG)]
    batches = [[delivery(item) for item in onboardings], [delivery(item) for item in invoices]]
    one_by_one, _ = both_paths(postgres, TestKeys(), *batches)
    assert {row[6] for row in one_by_one.tables()["runs"]} == {"succeeded", "duplicate", "not_matched", "failed"}


def test_the_worker_analyzes_runs_and_effects_as_they_grow(postgres):
    """Autovacuum may be off or a minute behind a burst: after a batch, the worker analyzes the
    tables its lookups join once they changed by autovacuum's threshold, so the next batches'
    lookups are planned against the real tables rather than scanning them whole."""
    now = [0.0]
    keeper = StatisticsKeeper(("runs", "effects", "employments", "source_events"), lock=1, clock=lambda: now[0])
    worker = Worker(replace(SERVICE, statistics=keeper), postgres("set_based"), TestKeys())
    hires = (onboarded(f"E-{n}", "2026-12-01") for n in range(1000))
    assert {outcome for outcome, _ in worker.process([delivery(next(hires)) for _ in range(200)])} == {"handled"}

    def analyzed(table: str) -> bool:
        with worker.runtime.session_factory() as session:
            found = session.scalar(
                text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = :t"), {"t": table}
            )
        return found is not None

    def after_another_batch() -> bool:
        now[0] += 10.0  # past the interval: the next batch looks again
        worker.process([delivery(next(hires)) for _ in range(2)])
        return analyzed("effects")

    wait_until(after_another_batch, timeout=20, interval=0.5)  # the server publishes table counts within a second
    assert analyzed("runs") and analyzed("source_events")


def test_a_lone_invoice_paid_costs_nine_statements_on_postgresql(postgres):
    """The event-latency path: a lone InvoicePaid goes the per-event way. Its two grants and the
    runs of the default and of the organization's invoice rule are written in final state, with
    no savepoint: 9 statements, where inserting each run, then updating it twice in a savepoint,
    with a lookup per grant, took 22."""
    keeper = StatisticsKeeper(("runs",), lock=1, clock=lambda: 0.0)
    worker = Worker(replace(SERVICE, statistics=keeper), postgres("lone"), TestKeys())
    worker.process([delivery(paid("INV-0"))])  # the keeper's look at its tables, once
    statements: list[str] = []
    sql_event.listen(worker.runtime.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    lone = paid("INV-1")
    assert worker.process([delivery(lone)]) == [("handled", "")]
    assert len(statements) == 9 and not any(statement.startswith("SAVEPOINT") for statement in statements)
    runs = {row[1]: row[5:7] for row in worker.tables()["runs"] if row[0] == lone.id}
    assert sorted(runs.values()) == [(False, "not_matched"), (True, "succeeded")]
    assert len(worker.tables()["outbox"]) == 4
