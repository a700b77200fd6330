"""The append-only event log, and which generation of the projections is live."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from lms_common.db import utcnow
from lms_common.envelope import Event
from reporting.bulk import insert_rows
from reporting.models import LoggedEvent, ProjectionState

LIVE = "live"
_GEN_KEY = "reporting.live_generation"


def append_many(session: Session, events: Sequence[Event]) -> None:
    """Log a batch of events at once (see :mod:`reporting.bulk`)."""
    if not events:
        return
    now = utcnow()
    insert_rows(
        session,
        cast(Table, LoggedEvent.__table__),
        [
            {"id": e.id, "type": e.type, "orgid": e.orgid, "time": e.time, "data": dict(e.data), "received_at": now}
            for e in events
        ],
    )


def live_generation(session: Session) -> int:
    """The live generation, read once per transaction.

    Read after the transaction's first insert into the log: a rebuild swaps generations while
    it holds the log locked against inserts, so the value cannot change until this commits.
    """
    if _GEN_KEY not in session.info:
        session.info[_GEN_KEY] = session.execute(
            select(ProjectionState.generation).where(ProjectionState.name == LIVE)
        ).scalar_one()
    return int(session.info[_GEN_KEY])


def forget_generation(session: Session) -> None:
    session.info.pop(_GEN_KEY, None)


def newest_event_time(session: Session, orgs: Collection[str] | None = None) -> datetime | None:
    """The time of the newest event logged (for these organizations): a report's ``as_of``."""
    query = select(func.max(LoggedEvent.time))
    if orgs is not None:
        query = query.where(LoggedEvent.orgid.in_(list(orgs)))
    value = session.execute(query).scalar_one_or_none()
    if isinstance(value, str):  # SQLite hands an aggregate back untyped
        value = datetime.fromisoformat(value)
    return value
