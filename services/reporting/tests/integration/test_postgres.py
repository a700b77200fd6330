"""On PostgreSQL and RabbitMQ: the worker projects events from the real broker, the audit CSV
streams through a server-side cursor, and a rebuild equals live."""

from __future__ import annotations

import csv
import io
import sys
import threading
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text

from lms_common import migrations
from lms_common.consumer import Consumer
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import make_engine, make_session_factory
from lms_common.messaging import ConfirmingPublisher, OutgoingMessage
from lms_common.testing import TestKeys, wait_until
from reporting.rebuild import rebuild
from reporting.service import SERVICE

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))

from reporting_events import assigned, completed, course, enrolled, scenario, uid, user

ADMIN = "reports:read"


@pytest.fixture()
def settings(postgres_url, broker_settings, tmp_path):
    migrations.upgrade(SERVICE.migrations, postgres_url)
    return broker_settings("reporting", postgres_url, var_dir=tmp_path)


def publish(settings, events):
    publisher = ConfirmingPublisher(settings.amqp_url, settings.exchange, app_id="test", heartbeat=10)
    try:
        messages = [OutgoingMessage(SUITE_EVENTS.routing_key(e), e.to_json(), e.id, event_type=e.type) for e in events]
        publisher.publish_batch(messages)
    finally:
        publisher.close()


def logged(settings) -> int:
    engine = make_engine(settings.database_url)
    with engine.connect() as db:
        count = db.execute(text("SELECT count(*) FROM event_log")).scalar_one()
    engine.dispose()
    return int(count)


def test_worker_projects_from_the_broker_and_rebuild_equals_live(settings):
    SERVICE.declare_topology(settings)
    rt = SERVICE.runtime(settings)
    consumer = Consumer(settings, SERVICE.topology(settings), SERVICE.processor(rt))
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    events = scenario()
    try:
        publish(settings, events)
        wait_until(lambda: logged(settings) == len(events), timeout=20)
    finally:
        consumer.stop()
        thread.join(timeout=10)
    keys = TestKeys()
    client = SERVICE.create_app(settings, key_source=keys).test_client()
    headers = {"Authorization": f"Bearer {keys.mint(org='org-1', scope=ADMIN)}"}
    urls = ["/v1/reports/completions", "/v1/reports/compliance", "/v1/reports/audit",
            f"/v1/reports/programs/{uid('onboarding')}", f"/v1/reports/learners/{uid('ann')}/transcript"]  # fmt: skip
    live = {url: client.get(url, headers=headers).get_json() for url in urls}
    assert live["/v1/reports/completions"]["totals"]["completed"] == 2
    assert rebuild(make_session_factory(make_engine(settings.database_url))).generation == 2
    assert {url: client.get(url, headers=headers).get_json() for url in urls} == live


def test_audit_csv_streams_every_row(postgres_url):
    migrations.upgrade(SERVICE.migrations, postgres_url)
    from dataclasses import replace

    from lms_common.testing import isolated_settings

    settings = replace(isolated_settings("reporting", postgres_url))
    keys = TestKeys()
    app = SERVICE.create_app(settings, key_source=keys)
    processor = SERVICE.processor(app.extensions["lms"])
    from lms_common.processing import Delivery

    people = [f"p{n}" for n in range(3000)]
    events = [user(p, None) for p in people[:10]]
    events += [e for p in people for e in (enrolled(p, "safety", 1), completed(p, "safety", 2, code=f"C-{p}"))]
    for start in range(0, len(events), 500):
        batch = [Delivery(e.to_json(), SUITE_EVENTS.routing_key(e), e.id) for e in events[start : start + 500]]
        processor.process(batch)
    headers = {"Authorization": f"Bearer {keys.mint(org='org-1', scope=ADMIN)}", "Accept": "text/csv"}
    response = app.test_client().get("/v1/reports/audit", headers=headers, buffered=False)
    assert response.is_streamed
    rows = list(csv.DictReader(io.StringIO(b"".join(response.response).decode())))
    assert len(rows) == 3000
    assert {row["verification_code"] for row in rows} == {f"C-{p}" for p in people}
    assert str(uuid.UUID(rows[0]["user_id"]))


def _last_analyzed(engine, table: str):
    with engine.connect() as db:
        return db.execute(
            text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = :table"), {"table": table}
        ).scalar_one()


def _estimated_assignments(engine) -> int:
    with engine.connect() as db:
        plan = db.execute(text("EXPLAIN (FORMAT JSON) SELECT * FROM assignments")).scalar_one()
    return int(plan[0]["Plan"]["Plan Rows"])


def test_the_worker_analyzes_the_projections_that_grew(postgres_url):
    """Autovacuum may be off or a minute behind a burst: the worker analyzes a projection that
    changed by autovacuum's threshold itself, so reports are planned against its real size."""
    from lms_common.processing import Delivery
    from lms_common.statistics import StatisticsKeeper
    from lms_common.testing import isolated_settings
    from reporting import handlers

    migrations.upgrade(SERVICE.migrations, postgres_url)
    now = [0.0]
    keeper = StatisticsKeeper(handlers.PROJECTIONS, lock=1, clock=lambda: now[0], interval=5.0)
    app = SERVICE.create_app(isolated_settings("reporting", postgres_url), key_source=TestKeys())
    processor = replace(SERVICE, statistics=keeper).processor(app.extensions["lms"])
    people = [f"s{n}" for n in range(400)]
    events = [course("safety"), *(user(p, None) for p in people), *(assigned(p, "safety", 30) for p in people)]
    for start in range(0, len(events), 200):
        processor.process(
            [Delivery(e.to_json(), SUITE_EVENTS.routing_key(e), e.id) for e in events[start : start + 200]]
        )
    engine = make_engine(postgres_url)
    more = iter(user(f"late{n}", None) for n in range(1000))

    def analyzed() -> bool:
        now[0] += 10.0  # past the interval: the next batch looks again
        event = next(more)
        processor.process([Delivery(event.to_json(), SUITE_EVENTS.routing_key(event), event.id)])
        return _last_analyzed(engine, "assignments") is not None

    wait_until(analyzed, timeout=20, interval=0.5)  # the server publishes table counts within a second
    assert _estimated_assignments(engine) == 400
    assert _last_analyzed(engine, "learners") is not None
    assert _last_analyzed(engine, "courses") is not None  # one row, but no statistics at all
    assert _last_analyzed(engine, "event_log") is None  # not read by the reports: left to autovacuum
    with make_session_factory(engine)() as session:  # within the interval nothing is looked at
        assert keeper.refresh(session) == []
    engine.dispose()


def test_each_event_is_logged_once_the_inbox_holding_its_id_unique(postgres_url):
    """Redelivered events, in later batches and within one, are logged once: the inbox row
    written in the same transaction is what keeps an id unique, and the log itself keeps only
    the indexes its reads use (by sequence, by organization and time, by arrival)."""
    from lms_common.processing import Delivery, Outcome
    from lms_common.testing import isolated_settings

    migrations.upgrade(SERVICE.migrations, postgres_url)
    app = SERVICE.create_app(isolated_settings("reporting", postgres_url), key_source=TestKeys())
    processor = SERVICE.processor(app.extensions["lms"])
    events = scenario()

    def deliver(batch):  # type: ignore[no-untyped-def]
        results = processor.process([Delivery(e.to_json(), SUITE_EVENTS.routing_key(e), e.id) for e in batch])
        return [result.outcome for result in results]

    assert deliver(events) == [Outcome.HANDLED] * len(events)
    assert deliver(events[:3] + events[:3]) == [Outcome.DUPLICATE] * 6
    newcomer = user("zed", "south")
    assert deliver([newcomer, newcomer]) == [Outcome.HANDLED, Outcome.DUPLICATE]
    events.append(newcomer)
    engine = make_engine(postgres_url)
    with engine.connect() as db:
        logged = db.execute(text("SELECT id, count(*) FROM event_log GROUP BY id")).all()
        indexes = db.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'event_log'")).scalars().all()
    engine.dispose()
    assert sorted(logged) == sorted((e.id, 1) for e in events)
    assert sorted(indexes) == ["ix_event_log_orgid_time", "ix_event_log_received_at", "pk_event_log"]
