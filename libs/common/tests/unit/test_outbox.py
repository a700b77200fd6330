"""The transactional outbox on SQLite: rows appear only with the transaction that adds them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from lms_common import outbox
from lms_common.context import correlation
from lms_common.db import session_scope, utcnow
from lms_common.envelope import Event, InvalidEvent, decode
from lms_common.outbox import OutboxMessage, SentEvent


class WorkFailedError(Exception):
    pass


def rows(factory: sessionmaker[Session]) -> list[OutboxMessage]:
    with session_scope(factory) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def add_committed(factory: sessionmaker[Session], *events: Event) -> None:
    with session_scope(factory) as session:
        outbox.add_many(session, events)


def age_rows(factory: sessionmaker[Session], seconds: float, **values: object) -> None:
    with session_scope(factory) as session:
        session.execute(update(OutboxMessage).values(created_at=utcnow() - timedelta(seconds=seconds), **values))


def test_event_added_in_a_rolled_back_transaction_leaves_no_row(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    with pytest.raises(WorkFailedError), session_scope(session_factory) as session:
        outbox.add(session, make_event("UserDisabled"))
        raise WorkFailedError
    assert rows(session_factory) == []


def test_committed_event_leaves_one_row_with_its_routing_key(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    event = make_event("UserDisabled")
    with session_scope(session_factory) as session:
        outbox.add(session, event)
    [row] = rows(session_factory)
    assert (row.event_id, row.event_type, row.routing_key) == (event.id, "UserDisabled", "identity.UserDisabled")
    assert (row.attempts, row.publish_after, row.last_error) == (0, None, None)


def test_row_body_is_the_event_as_a_cloudevent(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    event = make_event("InvoicePaid")
    add_committed(session_factory, event)
    assert decode(rows(session_factory)[0].body) == event


def test_row_headers_carry_the_correlation_id_of_the_work_in_hand(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    with correlation("req-123"), session_scope(session_factory) as session:
        outbox.add(session, make_event("UserDisabled"))
    assert rows(session_factory)[0].headers == {"x-request-id": "req-123"}


def test_row_without_correlation_is_correlated_by_its_event_id(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    event = make_event("UserDisabled")
    add_committed(session_factory, event)
    assert rows(session_factory)[0].headers == {"x-request-id": event.id}


def test_invalid_event_is_refused_before_it_enters_the_outbox(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    with pytest.raises(InvalidEvent, match="user_id"), session_scope(session_factory) as session:
        outbox.add(session, make_event("UserDisabled", user_id="42"))
    assert rows(session_factory) == []


def test_events_the_caller_checked_are_not_checked_again(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller that validated its events when it planned them says so, and the outbox trusts it."""
    from lms_common.contracts import SUITE_EVENTS

    validated: list[str] = []
    monkeypatch.setattr(SUITE_EVENTS, "validate", lambda event: validated.append(event.id) or event)
    events = [make_event("EmployeeOffboarded", employee_id=f"E-{n}") for n in range(2)]
    with session_scope(session_factory) as session:
        outbox.add_many(session, events[:1])
        outbox.add_many(session, events[1:], checked=True)
    assert validated == [events[0].id]
    assert len(rows(session_factory)) == 2


def test_add_many_adds_every_event_in_order(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    events = [make_event("EmployeeOffboarded", employee_id=f"E-{n}") for n in range(3)]
    with session_scope(session_factory) as session:
        assert outbox.add_many(session, events) == 3
    assert [row.event_id for row in rows(session_factory)] == [event.id for event in events]


def test_add_many_stamps_each_event_with_the_request_id_of_its_cause(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    events = [make_event("EmployeeOffboarded", employee_id=f"E-{n}") for n in range(2)]
    with correlation("batch-first"), session_scope(session_factory) as session:
        outbox.add_many(session, events, request_ids=["req-a", "req-b"])
    assert [row.headers for row in rows(session_factory)] == [{"x-request-id": "req-a"}, {"x-request-id": "req-b"}]


def test_add_many_refuses_request_ids_that_do_not_pair_with_the_events(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    with pytest.raises(ValueError, match="1 request ids for 2 events"), session_scope(session_factory) as session:
        outbox.add_many(session, [make_event("UserDisabled"), make_event("UserDisabled")], request_ids=["req-a"])
    assert rows(session_factory) == []


def test_add_many_of_nothing_adds_nothing(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        assert outbox.add_many(session, []) == 0
    assert rows(session_factory) == []


def test_backlog_of_an_empty_outbox_is_zero(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        assert outbox.backlog(session) == (0, 0.0)


def test_backlog_counts_unsent_rows_and_the_age_of_the_oldest(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    add_committed(session_factory, make_event("UserDisabled"))
    age_rows(session_factory, 60)
    add_committed(session_factory, make_event("UserDisabled"))
    with session_scope(session_factory) as session:
        count, age = outbox.backlog(session)
    assert count == 2
    assert 60 <= age < 70


def ids_of(factory: sessionmaker[Session], events: list[Event]) -> list[int]:
    wanted = [event.id for event in events]
    with session_scope(factory) as session:
        return list(session.scalars(select(OutboxMessage.id).where(OutboxMessage.event_id.in_(wanted))))


def send(factory: sessionmaker[Session], events: list[Event], at: datetime | None = None) -> None:
    """What the relay does once the broker confirmed ``events``."""
    ids = ids_of(factory, events)
    with session_scope(factory) as session:
        outbox.mark_sent(session, ids, at or utcnow())


def sent_log(factory: sessionmaker[Session]) -> list[tuple[str, str]]:
    with session_scope(factory) as session:
        return [
            (row.event_id, row.event_type) for row in session.scalars(select(SentEvent).order_by(SentEvent.sent_at))
        ]


def test_sent_events_leave_the_outbox_for_the_sent_log(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    first, second = make_event("UserDisabled"), make_event("EmployeeOffboarded")
    add_committed(session_factory, first, second)
    send(session_factory, [second])
    assert [row.event_id for row in rows(session_factory)] == [first.id]
    assert sent_log(session_factory) == [(second.id, "EmployeeOffboarded")]


def test_an_id_the_sent_log_holds_already_keeps_its_first_time(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    """An event added again under its id after it went (a repeat the relay must not stall on)."""
    event = make_event("UserDisabled")
    add_committed(session_factory, event)
    went = utcnow() - timedelta(hours=1)
    send(session_factory, [event], went)
    add_committed(session_factory, event)
    send(session_factory, [event])
    assert rows(session_factory) == []
    with session_scope(session_factory) as session:
        [logged] = session.scalars(select(SentEvent)).all()
        assert logged.sent_at == went


def test_an_id_is_known_while_it_waits_and_for_the_week_it_is_logged(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    waiting, went, purged = (make_event("EmployeeOffboarded", employee_id=f"E-{n}") for n in range(3))
    add_committed(session_factory, waiting, went, purged)
    send(session_factory, [went])
    send(session_factory, [purged], utcnow() - timedelta(days=8))
    with session_scope(session_factory) as session:
        outbox.purge_sent(session, timedelta(days=7))
    with session_scope(session_factory) as session:
        assert [outbox.known(session, e.id) for e in (waiting, went, purged)] == [True, True, False]
        assert not outbox.known(session, make_event("UserDisabled").id)


def test_backlog_leaves_out_sent_events(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    early = make_event("UserDisabled")
    add_committed(session_factory, early)
    age_rows(session_factory, 600)
    send(session_factory, [early])
    add_committed(session_factory, make_event("UserDisabled"))
    with session_scope(session_factory) as session:
        count, age = outbox.backlog(session)
    assert count == 1
    assert age < 10


def test_a_backlog_beyond_what_is_counted_is_the_span_of_its_ids(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    events = [make_event("EmployeeOffboarded", employee_id=f"E-{n}") for n in range(30)]
    add_committed(session_factory, *events)
    send(session_factory, events[:5])
    with session_scope(session_factory) as session:
        assert outbox.backlog(session, counted_up_to=100)[0] == 25
        assert outbox.backlog(session, counted_up_to=10)[0] == 25, "ids 6 to 30"
    send(session_factory, events[20:21])
    with session_scope(session_factory) as session:
        assert outbox.backlog(session, counted_up_to=100)[0] == 24
        assert outbox.backlog(session, counted_up_to=10)[0] == 25, "an upper bound: one sent out of turn still counts"


def test_purge_sent_forgets_only_events_sent_long_ago(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    old, recent, unsent = (make_event("EmployeeOffboarded", employee_id=f"E-{n}") for n in range(3))
    add_committed(session_factory, old, recent, unsent)
    send(session_factory, [old], utcnow() - timedelta(days=8))
    send(session_factory, [recent], utcnow() - timedelta(hours=1))
    with session_scope(session_factory) as session:
        assert outbox.purge_sent(session, timedelta(days=7)) == 1
    assert sent_log(session_factory) == [(recent.id, "EmployeeOffboarded")]
    assert [row.event_id for row in rows(session_factory)] == [unsent.id]
