"""The outbox and its relay against real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Sequence
from datetime import timedelta

import psycopg
import pytest
from conftest import Bus, consuming, ping, spawn
from fixture_service import effect_counts
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import make_url

from lms_common import metrics, outbox
from lms_common.config import Settings
from lms_common.context import correlation
from lms_common.db import session_scope, utcnow
from lms_common.messaging import Confirm, ConfirmingPublisher, OutgoingMessage, PublishOutcome
from lms_common.outbox import OutboxMessage
from lms_common.relay import ListenWaker, Relay
from lms_common.service import Runtime
from lms_common.testing import wait_until


def make_relay(settings: Settings, rt: Runtime, batch_size: int = 500) -> tuple[Relay, ConfirmingPublisher]:
    publisher = ConfirmingPublisher(settings.amqp_url, settings.exchange, app_id="fixture")
    return Relay("fixture", rt.session_factory, publisher, batch_size=batch_size, poll_seconds=0.2), publisher


def relay_until_empty(relay: Relay) -> int:
    total = 0
    while taken := relay.relay_once():
        total += taken
    return total


def unsent(rt: Runtime) -> int:
    with session_scope(rt.session_factory) as session:
        return int(session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


def test_rolled_back_event_is_never_published_and_committed_one_is_published_once(
    settings: Settings, runtime: Runtime, bus: Bus
) -> None:
    kept, dropped = ping(1), ping(2)
    with pytest.raises(RuntimeError), session_scope(runtime.session_factory) as session:
        outbox.add(session, dropped, SERVICE_CATALOG)
        raise RuntimeError("the use case failed")
    with session_scope(runtime.session_factory) as session:
        outbox.add(session, kept, SERVICE_CATALOG)

    relay, publisher = make_relay(settings, runtime)
    try:
        assert relay_until_empty(relay) == 1
    finally:
        publisher.close()

    received = bus.tapped(expected=1)
    assert [message.event_id for message in received] == [kept.id]
    assert received[0].routing_key == "test.Ping"
    assert received[0].message_id == kept.id
    assert unsent(runtime) == 0


def test_outbox_insert_wakes_the_relay_once_at_commit_and_never_on_rollback(
    settings: Settings, runtime: Runtime
) -> None:
    statements: list[str] = []
    sqlalchemy_event.listen(runtime.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    dsn = make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as listener:
        listener.autocommit = True
        listener.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")
        with pytest.raises(RuntimeError), session_scope(runtime.session_factory) as session:
            outbox.add(session, ping(1), SERVICE_CATALOG)
            raise RuntimeError("the use case failed")
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
        statements.clear()
        with session_scope(runtime.session_factory) as session:
            outbox.add_many(session, [ping(2), ping(3)], SERVICE_CATALOG)
            outbox.add(session, ping(4), SERVICE_CATALOG)
            assert list(listener.notifies(timeout=0.2, stop_after=1)) == []  # not before the commit
        assert len(list(listener.notifies(timeout=1.0, stop_after=2))) == 1
    # Two inserts and nothing else: the notification travelled with the first one.
    assert [statement.split()[0] for statement in statements] == ["INSERT", "INSERT"]
    assert "pg_notify" in statements[0] and "pg_notify" not in statements[1]


def test_an_outbox_insert_after_a_rolled_back_savepoint_still_wakes_the_relay(
    settings: Settings, runtime: Runtime
) -> None:
    dsn = make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as listener:
        listener.autocommit = True
        listener.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")
        with session_scope(runtime.session_factory) as session:
            failed = session.begin_nested()
            outbox.add(session, ping(1), SERVICE_CATALOG)
            failed.rollback()
            with session.begin_nested():
                outbox.add(session, ping(2), SERVICE_CATALOG)
        assert len(list(listener.notifies(timeout=1.0, stop_after=1))) == 1


def test_eight_concurrent_writers_with_random_transaction_lengths_all_get_published(
    settings: Settings, runtime: Runtime, bus: Bus
) -> None:
    per_writer, writers = 60, 8
    written: list[str] = []
    lock = threading.Lock()

    def write(seed: int) -> None:
        rng = random.Random(seed)
        for n in range(per_writer):
            event = ping(n)
            with session_scope(runtime.session_factory) as session:
                outbox.add(session, event, SERVICE_CATALOG)
                time.sleep(rng.uniform(0, 0.02))  # hold the transaction open a random while
            with lock:
                written.append(event.id)

    relay, publisher = make_relay(settings, runtime, batch_size=50)
    stop = threading.Event()
    relay_thread = threading.Thread(target=relay.run, args=(stop, ListenWaker(settings.database_url, stop)))
    relay_thread.start()
    threads = [threading.Thread(target=write, args=(seed,)) for seed in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        received = bus.tapped(expected=per_writer * writers, timeout=30)
    finally:
        stop.set()
        relay_thread.join(timeout=10)
        publisher.close()

    ids = [message.event_id for message in received]
    assert sorted(ids) == sorted(written)
    assert len(set(ids)) == per_writer * writers


def test_the_backlog_reads_no_more_rows_than_it_counts_however_long_the_line(runtime: Runtime) -> None:
    before = unsent(runtime)
    with session_scope(runtime.session_factory) as session:
        outbox.add_many(session, [ping(n) for n in range(3000)], SERVICE_CATALOG)
    with session_scope(runtime.session_factory) as session:
        session.execute(text("ANALYZE outbox"))
    with session_scope(runtime.session_factory) as session:
        count, age = outbox.backlog(session, counted_up_to=500)
        # this transaction's own reads of the table, by any index or a scan
        read = session.execute(
            text("SELECT idx_tup_fetch + seq_tup_read FROM pg_stat_xact_user_tables WHERE relname = 'outbox'")
        ).scalar_one()
    assert count >= before + 3000
    assert 0 <= age < 60
    assert read <= 510, f"{read} rows read to count a line of {count}"


class Recorder:
    """A publisher that confirms every message and keeps it."""

    def __init__(self) -> None:
        self.messages: list[OutgoingMessage] = []

    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[PublishOutcome]:
        self.messages += messages
        return [PublishOutcome(Confirm.CONFIRMED)] * len(messages)


def test_a_relay_cycle_is_two_statements_of_its_own_and_publishes_the_rows_as_written(runtime: Runtime) -> None:
    """The lock of the unsent rows and their sent mark, each one statement text on the driver,
    however many rows; a row waiting for a retry is left for later."""
    waiting, first, second = ping(1), ping(2), ping(3)
    with correlation("req-7"), session_scope(runtime.session_factory) as session:
        outbox.add_many(session, [waiting, first, second], SERVICE_CATALOG)
    with session_scope(runtime.session_factory) as session:
        later = utcnow() + timedelta(minutes=5)
        session.execute(update(OutboxMessage).where(OutboxMessage.event_id == waiting.id).values(publish_after=later))
    recorder = Recorder()
    relay = Relay("fixture", runtime.session_factory, recorder, batch_size=500)
    statements: list[str] = []
    listen = lambda *args: statements.append(args[2])  # noqa: E731
    sqlalchemy_event.listen(runtime.engine, "before_cursor_execute", listen)
    try:
        assert relay.relay_once() == 2
    finally:
        sqlalchemy_event.remove(runtime.engine, "before_cursor_execute", listen)
    assert statements == [outbox._UNSENT, outbox._MARK_SENT]
    assert [m.message_id for m in recorder.messages] == [first.id, second.id]
    assert [m.body for m in recorder.messages] == [first.to_json(), second.to_json()]
    assert {m.routing_key for m in recorder.messages} == {"test.Ping"}
    assert [dict(m.headers) for m in recorder.messages] == [{"x-request-id": "req-7"}] * 2
    with session_scope(runtime.session_factory) as session:
        assert session.scalars(select(OutboxMessage.event_id)).all() == [waiting.id]
        logged = session.scalars(select(outbox.SentEvent.event_id).order_by(outbox.SentEvent.event_id)).all()
    assert logged == sorted([first.id, second.id])
    assert relay.relay_once() == 0  # the waiting row is not due yet


def test_two_relays_at_once_never_publish_the_same_row(settings: Settings, runtime: Runtime, bus: Bus) -> None:
    total = 3000
    with session_scope(runtime.session_factory) as session:
        outbox.add_many(session, [ping(n) for n in range(total)], SERVICE_CATALOG)

    counts: list[int] = []

    def run_relay() -> None:
        relay, publisher = make_relay(settings, runtime, batch_size=100)
        try:
            counts.append(relay_until_empty(relay))
        finally:
            publisher.close()

    threads = [threading.Thread(target=run_relay) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    ids = [message.event_id for message in bus.tapped(expected=total)]
    assert len(ids) == total
    assert len(set(ids)) == total
    assert sum(counts) == total
    assert min(counts) > 0, "both relays took part"
    assert unsent(runtime) == 0


def test_relay_killed_between_publish_and_mark_publishes_again_and_the_inbox_absorbs_it(
    settings: Settings, runtime: Runtime, bus: Bus
) -> None:
    events = [ping(n) for n in range(20)]
    with session_scope(runtime.session_factory) as session:
        outbox.add_many(session, events, SERVICE_CATALOG)

    doomed = spawn(settings, "relay", LMS_FAULT_RELAY_AFTER_PUBLISH="1")
    assert doomed.wait(timeout=30) == -signal.SIGKILL
    assert len(bus.tapped(expected=len(events))) == len(events), "published before the crash"
    assert unsent(runtime) == len(events), "but never marked sent"

    duplicates_before = _consumed("duplicate")
    with consuming(settings, runtime):
        relay = spawn(settings, "relay")
        try:
            wait_until(lambda: unsent(runtime) == 0, timeout=20)

            def all_handled() -> bool:
                with session_scope(runtime.session_factory) as session:
                    return len(effect_counts(session)) == len(events)

            wait_until(all_handled, timeout=20)
            wait_until(lambda: _consumed("duplicate") - duplicates_before >= len(events), timeout=20)
        finally:
            relay.terminate()
            relay.wait(timeout=10)

    with session_scope(runtime.session_factory) as session:
        counts = effect_counts(session)
    assert set(counts) == {event.id for event in events}
    assert set(counts.values()) == {1}, "each event had exactly one effect"


def _consumed(outcome: str) -> float:
    return metrics.CONSUMED.labels("fixture", "Ping", outcome)._value.get()


from fixture_service import CATALOG as SERVICE_CATALOG  # noqa: E402


def test_the_relay_wakeup_is_handed_out_once_per_transaction_and_again_in_each_savepoint(runtime: Runtime) -> None:
    with session_scope(runtime.session_factory) as session:
        assert outbox.relay_wakeup(session) is not None
        assert outbox.relay_wakeup(session) is None
        with session.begin_nested():
            assert outbox.relay_wakeup(session) is not None
            outbox.add(session, ping(1), SERVICE_CATALOG)  # no second NOTIFY in the savepoint
            assert outbox.relay_wakeup(session) is None
        assert outbox.relay_wakeup(session) is not None  # the savepoint might have rolled back
