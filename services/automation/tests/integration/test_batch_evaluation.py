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

from automation import evaluation
from lms_common import migrations
from lms_common.config import Settings
from lms_common.db import make_engine, make_session_factory, session_scope
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


def test_a_lone_invoice_paid_costs_eight_statements_on_postgresql(postgres):
    """The event-latency path: a lone InvoicePaid goes the per-event way. The organization's
    invoice setting and rules are one read; its two grants and the runs of the default and of
    the organization's invoice rule are written in final state, with no savepoint: 8
    statements, where inserting each run, then updating it twice in a savepoint, with a lookup
    per grant, took 22."""
    keeper = StatisticsKeeper(("runs",), lock=1, clock=lambda: 0.0)
    worker = Worker(replace(SERVICE, statistics=keeper), postgres("lone"), TestKeys())
    worker.process([delivery(paid("INV-0"))])  # the keeper's look at its tables, once
    statements: list[str] = []
    sql_event.listen(worker.runtime.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    lone = paid("INV-1")
    assert worker.process([delivery(lone)]) == [("handled", "")]
    assert len(statements) == 8 and not any(statement.startswith("SAVEPOINT") for statement in statements)
    runs = {row[1]: row[5:7] for row in worker.tables()["runs"] if row[0] == lone.id}
    assert sorted(runs.values()) == [(False, "not_matched"), (True, "succeeded")]
    assert len(worker.tables()["outbox"]) == 4


def test_run_lookups_use_the_runs_key_and_the_org_index_is_gone(postgres_admin_url: str) -> None:
    """Migration 0004 drops the index on the organization alone (and 0003 has it back); on a
    table of 3,000 analyzed runs, the per-event lookup of an event's runs reads the unique key."""
    with scratch_database(postgres_admin_url) as url:
        engine = make_engine(url)

        def indexes() -> set[str]:
            with engine.connect() as connection:
                query = text("SELECT indexname FROM pg_indexes WHERE tablename = 'runs'")
                return set(connection.execute(query).scalars())

        migrations.upgrade(SERVICE.migrations, url, "0003")
        assert "ix_runs_org_id" in indexes()
        migrations.upgrade(SERVICE.migrations, url)
        assert indexes() == {"pk_runs", "uq_runs_rule_event", "ix_runs_org_created", "ix_runs_rule_id"}
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO runs (id, org_id, rule_key, event_id, event_type, matched, status, actions,"
                    " attempts, created_at, updated_at) SELECT gen_random_uuid()::text, 'org-1', 'default', "
                    "n::text, 'InvoicePaid', true, 'succeeded', '[]', 1, now(), now() FROM generate_series(1, 3000) n"
                )
            )
            connection.execute(text("ANALYZE runs"))
        with session_scope(make_session_factory(engine)) as session:
            event = paid("INV-1", org="org-1")
            lookup = text(
                "EXPLAIN SELECT rule_key FROM runs WHERE org_id = :o AND event_id = :e AND rule_key = ANY(:k)"
            )
            parameters = {"o": event.orgid, "e": event.id, "k": ["default", "rule-1"]}
            plan = "\n".join(session.execute(lookup, parameters).scalars())
            assert "uq_runs_rule_event" in plan and "Filter" not in plan, plan
            assert evaluation.evaluated(session, event, ["default"]) == set()
        migrations.downgrade(SERVICE.migrations, url, "0003")
        assert "ix_runs_org_id" in indexes()
        engine.dispose()
