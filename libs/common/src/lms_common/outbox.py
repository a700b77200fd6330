"""The transactional outbox: events are written in the same transaction as the change they
describe, and a relay (:mod:`lms_common.relay`) publishes them after the commit.

A service never publishes from a request handler; it calls :func:`add` (or :func:`add_many`)
with the session of its unit of work. An event added in a transaction that rolls back is never
published.

The outbox holds only what waits to be published. Once the broker confirmed an event, the
relay moves it to the sent log (:class:`SentEvent`, its id, type and time, kept a week): a
delete leaves the outbox's indexes as they are, where marking the row sent wrote the whole row
again with an entry in each of its indexes, for every event of the suite.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Index,
    Integer,
    LargeBinary,
    Row,
    String,
    Text,
    delete,
    exists,
    func,
    insert,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.types import JSON

from lms_common.context import current_correlation_id
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import Base, is_postgres, utcnow
from lms_common.envelope import Event, EventCatalog

NOTIFY_CHANNEL = "lms_outbox"


class OutboxMessage(Base):
    """An event waiting to be published, in id order (the order it was added in)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(200), unique=True)
    event_type: Mapped[str] = mapped_column(String(100))
    routing_key: Mapped[str] = mapped_column(String(200))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    publish_after: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class SentEvent(Base):
    """An event the broker confirmed, kept for :data:`lms_common.relay.SENT_RETENTION`: when it
    went, and that its id is taken (:func:`known`)."""

    __tablename__ = "outbox_sent"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100))
    sent_at: Mapped[datetime]

    # Rows arrive in about the order of their time: a BRIN index finds a week's end for the
    # purge at almost no cost per insert (SQLite, which has none, takes a plain index).
    __table_args__ = (Index("ix_outbox_sent_sent_at", "sent_at", postgresql_using="brin"),)


def _row(event: Event, catalog: EventCatalog, request_id: str | None, *, checked: bool) -> dict[str, object]:
    if not checked:
        catalog.validate(event)
    headers = {"x-request-id": request_id or current_correlation_id() or event.id}
    return {
        "event_id": event.id,
        "event_type": event.type,
        "routing_key": catalog.routing_key(event),
        "body": event.to_json(),
        "headers": headers,
        "created_at": utcnow(),
        "attempts": 0,
    }


def relay_wakeup(session: Session) -> ColumnElement[Any] | None:
    """The ``pg_notify`` that wakes the relay, if this transaction has yet to send it; else None.

    PostgreSQL only, once per transaction or savepoint: the caller must select it in the
    statement that inserts its outbox rows (``RETURNING`` it, say), which costs no round trip
    of its own. An insert into the outbox that bypasses :func:`add_many` calls this too.
    """
    if not is_postgres(session):
        return None
    session.connection()  # begins the transaction if the insert is its first statement
    # A savepoint rolled back takes its NOTIFY with it, so each savepoint notifies again (it
    # costs nothing: the notification rides on the insert, and duplicates are folded).
    transaction = session.get_nested_transaction() or session.get_transaction()
    if session.info.get("outbox_notified") is transaction:
        return None
    session.info["outbox_notified"] = transaction
    return func.pg_notify(NOTIFY_CHANNEL, "")


def add(session: Session, event: Event, catalog: EventCatalog = SUITE_EVENTS) -> None:
    """Add ``event`` to the outbox inside the caller's transaction (validated first)."""
    add_many(session, [event], catalog)


def add_many(
    session: Session,
    events: Iterable[Event],
    catalog: EventCatalog = SUITE_EVENTS,
    *,
    request_ids: Iterable[str] | None = None,
    checked: bool = False,
) -> int:
    """Add many events in one multi-row insert; returns how many. Bulk use cases call this.

    ``request_ids``, one per event, stamp each event with the request id of the message that
    caused it rather than the current one: a batch handler's events then carry what they would
    have carried had each message been handled alone. ``checked``: the caller has validated
    every event against its contract already (when it planned them), so they are not again.
    """
    events = list(events)
    ids: list[str | None] = [None] * len(events) if request_ids is None else list(request_ids)
    if len(ids) != len(events):
        raise ValueError(f"{len(ids)} request ids for {len(events)} events")
    rows = [_row(event, catalog, request_id, checked=checked) for event, request_id in zip(events, ids, strict=True)]
    if not rows:
        return 0
    notify = relay_wakeup(session)
    if is_postgres(session):
        _insert_arrays(session, rows, notify=notify is not None)
    elif notify is not None:
        session.execute(insert(OutboxMessage).returning(notify), rows).all()
    else:
        session.execute(insert(OutboxMessage), rows)
    return len(rows)


# One array per column, so one statement text for every batch size; ids are drawn in the
# events' order, which the relay publishes them in. The arrays travel in binary (``%b``): in
# text psycopg escapes every byte of every body in Python, 3.7 ms per 100 events of 600 bytes
# against 0.03 ms. The NOTIFY rides on the insert's own round trip: every commit on a
# consumer's path waits for each statement before it, and a separate SELECT cost one more.
# PostgreSQL delivers it at commit, once, however many rows called it (identical payloads of a
# transaction are folded into one).
_INSERT_ARRAYS = """INSERT INTO outbox (event_id, event_type, routing_key, body, headers, created_at, attempts)
    SELECT given.event_id, given.event_type, given.routing_key, given.body, given.headers::json, given.created_at, 0
    FROM unnest(%(ids)b::varchar[], %(types)b::varchar[], %(keys)b::varchar[], %(bodies)b::bytea[],
                %(headers)b::text[], %(created)b::timestamptz[]) WITH ORDINALITY
      AS given(event_id, event_type, routing_key, body, headers, created_at, position)
    ORDER BY given.position"""
_NOTIFYING = f"{_INSERT_ARRAYS}\n    RETURNING pg_notify('{NOTIFY_CHANNEL}', '')"


def _insert_arrays(session: Session, rows: list[dict[str, Any]], *, notify: bool) -> None:
    """PostgreSQL: the rows as arrays, in the driver's SQL. Every event of the suite passes here,
    and building and binding the equivalent SQLAlchemy statement cost 4.2-4.9 ms of CPU per 60
    events against 2.6-3.2 (the rows, session, transaction and database time included)."""
    parameters = {
        "ids": [row["event_id"] for row in rows],
        "types": [row["event_type"] for row in rows],
        "keys": [row["routing_key"] for row in rows],
        "bodies": [row["body"] for row in rows],
        "headers": [json.dumps(row["headers"]) for row in rows],
        "created": [row["created_at"] for row in rows],
    }
    result = session.connection().exec_driver_sql(_NOTIFYING if notify else _INSERT_ARRAYS, parameters)
    if notify:
        result.all()


UnsentRow = Row[int, str, str, str, bytes, dict[str, str], int]  # id, event id, type, key, body, headers, attempts


def unsent_batch(session: Session, limit: int) -> Sequence[UnsentRow]:
    """Lock up to ``limit`` publishable rows, skipping those another relay holds.

    Plain rows, not ORM objects: building and tracking 500 objects per batch was a quarter of
    the relay's CPU, and the relay only reads them (see :meth:`Relay._mark`).
    """
    now = utcnow()
    if is_postgres(session):
        return session.connection().exec_driver_sql(_UNSENT, {"now": now, "limit": limit}).all()
    m = OutboxMessage
    query = (
        select(m.id, m.event_id, m.event_type, m.routing_key, m.body, m.headers, m.attempts)
        .where((m.publish_after.is_(None)) | (m.publish_after <= now))
        .order_by(m.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return session.execute(query).all()


def mark_sent(session: Session, ids: Sequence[int], at: datetime) -> None:
    """The broker confirmed the rows ``ids`` at ``at``: they leave the outbox for the sent log.

    An id the log holds already (an event added again under its id after it went) keeps its
    first time there, so that the relay never stalls on a batch it cannot mark.
    """
    if not ids:
        return
    if is_postgres(session):
        session.connection().exec_driver_sql(_MARK_SENT, {"ids": list(ids), "at": at})
        return
    m = OutboxMessage
    rows = session.execute(select(m.event_id, m.event_type).where(m.id.in_(ids))).all()
    logged = [{"event_id": event_id, "event_type": event_type, "sent_at": at} for event_id, event_type in rows]
    if logged:
        session.execute(insert(SentEvent).prefix_with("OR IGNORE"), logged)
        session.execute(delete(m).where(m.id.in_(ids)))


# The relay's two statements on PostgreSQL, in the driver's SQL. Every cycle runs both, and at
# a purchase's pace (one event a cycle) each relay process spent 3.7-4.3 ms of CPU per invoice
# building, caching and binding their SQLAlchemy equivalents and the rest of its cycle; with
# these, 2.2-2.3 ms. The first reads the primary key in id order; the second moves the rows
# confirmed to the sent log in one round trip.
_UNSENT = """SELECT id, event_id, event_type, routing_key, body, headers, attempts FROM outbox
    WHERE publish_after IS NULL OR publish_after <= %(now)s
    ORDER BY id LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED"""
_MARK_SENT = """WITH sent AS (DELETE FROM outbox WHERE id = ANY(%(ids)s::bigint[]) RETURNING id, event_id, event_type)
    INSERT INTO outbox_sent (event_id, event_type, sent_at)
    SELECT event_id, event_type, %(at)s FROM sent ORDER BY id
    ON CONFLICT (event_id) DO NOTHING"""


def known(session: Session, event_id: str) -> bool:
    """Whether an event with this id waits in the outbox or went within the sent log's week."""
    waiting = select(OutboxMessage.id).where(OutboxMessage.event_id == event_id)
    went = select(SentEvent.event_id).where(SentEvent.event_id == event_id)
    return bool(session.scalar(select(exists(waiting) | exists(went))))


# Counting every waiting event reads each of them, and the relay counts once a second: at
# 400,000 waiting (500,000 onboardings) a count took 2.8 s, which the relay then did not spend
# publishing, so the backlog grew faster still. Up to this many are counted one by one.
BACKLOG_COUNTED = 10_000


def backlog(session: Session, counted_up_to: int = BACKLOG_COUNTED) -> tuple[int, float]:
    """How many events wait to be published, and the age in seconds of the first in line.

    Exact up to ``counted_up_to``; beyond it, the span of ids from the first waiting event to
    the newest one, read from two index entries. That is an upper bound: ids of rolled-back
    inserts and of events sent out of turn count too, which in a backlog that large is noise.
    """
    m = OutboxMessage
    waiting = select(m.id, m.created_at).order_by(m.id)
    first = session.execute(waiting.limit(1)).first()
    if first is None:
        return 0, 0.0
    counted = select(func.count()).select_from(waiting.limit(counted_up_to).subquery())
    count = int(session.scalar(counted) or 0)
    if count >= counted_up_to:
        count = max(count, int(session.scalar(select(func.max(m.id))) or 0) - first.id + 1)
    return count, max(0.0, (utcnow() - first.created_at).total_seconds())


def purge_sent(session: Session, older_than: timedelta) -> int:
    """Forget the events confirmed more than ``older_than`` ago; the broker has had them for long."""
    cutoff = utcnow() - older_than
    result = session.execute(delete(SentEvent).where(SentEvent.sent_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
