"""The inbox: the ids of the events a service has already handled.

The handler's work and the inbox row are written in one transaction, so a redelivered event
(same id) finds its row and has no second effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import String, Table, delete
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from lms_common.db import Base, is_postgres, utcnow


class InboxMessage(Base):
    __tablename__ = "inbox"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100))
    handled_at: Mapped[datetime] = mapped_column(default=utcnow)


def record(session: Session, event_id: str, event_type: str) -> bool:
    """Note that ``event_id`` is being handled; False when it already was (a duplicate)."""
    return event_id in record_many(session, [(event_id, event_type)])


def record_many(session: Session, events: Sequence[tuple[str, str]]) -> set[str]:
    """Note a batch of (event id, type) in one statement; returns the ids not seen before.

    ``ON CONFLICT DO NOTHING`` rather than catching the unique violation: a concurrent
    consumer holding the same id makes this wait for its commit, then leaves it out.
    """
    if not events:
        return set()
    record = _record_arrays if is_postgres(session) else _record_rows
    return record(session, events, utcnow())


# psycopg adapts the lists to arrays, in binary (half the CPU of text), and prepares the one text.
_RECORD_ARRAYS = """INSERT INTO inbox (event_id, event_type, handled_at)
    SELECT given.event_id, given.event_type, %(now)s
    FROM unnest(%(ids)b::varchar[], %(types)b::varchar[]) AS given(event_id, event_type)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
"""


def _record_arrays(session: Session, events: Sequence[tuple[str, str]], now: datetime) -> set[str]:
    """PostgreSQL: the batch as two arrays, one statement text for every batch, which psycopg
    prepares and the server plans once (a multi-row VALUES was parsed and planned anew for each
    batch size).

    Sent as the driver's SQL: every worker runs it once per batch, and building, caching and
    binding the equivalent SQLAlchemy statement cost 1.7-1.8 ms of CPU per batch of 60 against
    0.9-1.0 ms (session, transaction and database time included).
    """
    parameters = {"now": now, "ids": [event_id for event_id, _ in events], "types": [kind for _, kind in events]}
    return set(session.connection().exec_driver_sql(_RECORD_ARRAYS, parameters).scalars())


def _record_rows(session: Session, events: Sequence[tuple[str, str]], now: datetime) -> set[str]:
    """SQLite: one cached statement, executed for many rows; SQLAlchemy batches them into
    multi-row INSERTs and still hands back what RETURNING said."""
    table = cast(Table, InboxMessage.__table__)
    statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=["event_id"]).returning(table.c.event_id)
    rows = [{"event_id": event_id, "event_type": event_type, "handled_at": now} for event_id, event_type in events]
    return set(session.execute(statement, rows).scalars())


def forget(session: Session, event_ids: Sequence[str]) -> None:
    """Take back ids whose handling failed, so that their next delivery is handled again."""
    if event_ids:
        session.execute(delete(InboxMessage).where(InboxMessage.event_id.in_(event_ids)))
