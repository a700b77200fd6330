"""The outbox relay, publishing to the in-memory bus."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lms_common import metrics, outbox
from lms_common import relay as relay_module
from lms_common.context import correlation
from lms_common.db import session_scope, utcnow
from lms_common.envelope import Event, decode
from lms_common.memorybus import InMemoryBus
from lms_common.messaging import Confirm, OutgoingMessage, PublishError, PublishOutcome
from lms_common.outbox import OutboxMessage, SentEvent
from lms_common.relay import Relay


class UnreachableBroker:
    """A publisher whose connection is always lost before the confirms come back."""

    def __init__(self) -> None:
        self.attempts = 0

    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[PublishOutcome]:
        self.attempts += 1
        raise PublishError("connection lost")


@pytest.fixture()
def bus() -> InMemoryBus:
    bus = InMemoryBus()
    bus.bind("watcher", ["identity.*"])
    return bus


@pytest.fixture()
def relay(session_factory: sessionmaker[Session], bus: InMemoryBus) -> Relay:
    return Relay("test", session_factory, bus, batch_size=10)


def add_committed(factory: sessionmaker[Session], *events: Event) -> None:
    with session_scope(factory) as session:
        outbox.add_many(session, events)


def rows(factory: sessionmaker[Session]) -> list[OutboxMessage]:
    with session_scope(factory) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def sent(factory: sessionmaker[Session]) -> list[str]:
    """The sent log's event ids, in the order they went."""
    with session_scope(factory) as session:
        return list(session.scalars(select(SentEvent.event_id).order_by(SentEvent.sent_at)))


def test_committed_rows_are_published_and_leave_the_outbox_for_the_sent_log(
    relay: Relay, bus: InMemoryBus, session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    events = [make_event("UserDisabled"), make_event("TokenRevoked")]
    add_committed(session_factory, *events)
    assert relay.relay_once() == 2
    assert [message.message_id for message in bus.published] == [event.id for event in events]
    assert rows(session_factory) == []
    assert sorted(sent(session_factory)) == sorted(event.id for event in events)


def test_sent_rows_are_not_published_again(
    relay: Relay, bus: InMemoryBus, session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    add_committed(session_factory, make_event("UserDisabled"))
    relay.relay_once()
    assert relay.relay_once() == 0
    assert len(bus.published) == 1


def test_published_message_is_the_row_with_its_correlation(
    relay: Relay, bus: InMemoryBus, session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    event = make_event("UserDisabled")
    with correlation("req-7"):
        add_committed(session_factory, event)
    relay.relay_once()
    [delivery] = bus.queues["watcher"]
    assert (delivery.routing_key, delivery.message_id) == ("identity.UserDisabled", event.id)
    assert delivery.headers == {"x-request-id": "req-7"}
    assert decode(delivery.body) == event


def test_unrouted_rows_stay_unsent_and_wait_before_the_next_attempt(
    relay: Relay, session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    add_committed(session_factory, make_event("EmployeeOffboarded"))
    assert relay.relay_once() == 1
    [row] = rows(session_factory)
    assert (row.attempts, row.last_error) == (1, "no route")
    assert sent(session_factory) == []
    assert row.publish_after is not None
    assert row.publish_after > utcnow()


def test_unrouted_rows_are_not_retried_before_their_time(
    relay: Relay, bus: InMemoryBus, session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    add_committed(session_factory, make_event("EmployeeOffboarded"))
    relay.relay_once()
    assert relay.relay_once() == 0
    assert len(bus.published) == 1


def test_routed_rows_of_a_batch_are_sent_even_when_others_are_not(
    relay: Relay, session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    unrouted, routed = make_event("EmployeeOffboarded"), make_event("UserDisabled")
    add_committed(session_factory, unrouted, routed)
    relay.relay_once()
    assert [row.event_id for row in rows(session_factory)] == [unrouted.id]
    assert sent(session_factory) == [routed.id]


def test_publish_error_leaves_the_rows_unsent(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    broker = UnreachableBroker()
    add_committed(session_factory, make_event("UserDisabled"))
    with pytest.raises(PublishError):
        Relay("test", session_factory, broker).relay_once()
    [row] = rows(session_factory)
    assert (row.attempts, row.publish_after) == (0, None)
    assert sent(session_factory) == []
    assert broker.attempts == 1


def test_rows_left_by_a_publish_error_are_published_by_the_next_cycle(
    relay: Relay, bus: InMemoryBus, session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    add_committed(session_factory, make_event("UserDisabled"))
    with pytest.raises(PublishError):
        Relay("test", session_factory, UnreachableBroker()).relay_once()
    assert relay.relay_once() == 1
    assert (rows(session_factory), len(sent(session_factory))) == ([], 1)


def test_relay_takes_at_most_one_batch(
    session_factory: sessionmaker[Session], bus: InMemoryBus, make_event: Callable[..., Event]
) -> None:
    add_committed(session_factory, *(make_event("UserDisabled") for _ in range(5)))
    relay = Relay("test", session_factory, bus, batch_size=2)
    assert [relay.relay_once() for _ in range(4)] == [2, 2, 1, 0]


class BrokerLostTwice:
    """Loses the connection on the first two batches, then stops the relay on the third."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop, self.attempts = stop, 0

    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[PublishOutcome]:
        self.attempts += 1
        if self.attempts <= 2:
            raise PublishError("connection lost")
        self.stop.set()
        return [PublishOutcome(Confirm.CONFIRMED) for _ in messages]


def test_abandoned_cycles_are_counted_and_retried(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_module.Backoff, "next", lambda self: 0.0)
    stop = threading.Event()
    broker = BrokerLostTwice(stop)
    add_committed(session_factory, make_event("UserDisabled"))
    counter = metrics.OUTBOX_RELAY_FAILURES.labels("counted")
    before = counter._value.get()
    Relay("counted", session_factory, broker).run(stop, relay_module.PollWaker(stop, interval=0.0))
    assert counter._value.get() - before == 2
    assert (rows(session_factory), len(sent(session_factory))) == ([], 1)
