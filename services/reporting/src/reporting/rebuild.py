"""``python -m reporting rebuild``: replay the event log into a fresh generation and swap it in.

1. A new generation number is taken (above every generation holding rows).
2. The log is replayed into it in chunks, each its own transaction, while the worker keeps
   projecting new events into the live generation.
3. One transaction locks the log against inserts (so no event can be projected into the old
   generation any more), replays what arrived since step 2 began, and points ``live`` at the
   new generation. Readers see the old reports or the new ones, never a mix.
4. The old generation's rows are deleted.

Replaying an event twice is harmless (projections keep the newest fact), so step 3 replays
everything received since step 2 started rather than relying on gaps-free sequence numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from lms_common.db import is_postgres, session_scope, utcnow
from lms_common.envelope import Event
from reporting import eventlog
from reporting.models import PROJECTIONS, LoggedEvent, ProjectionState
from reporting.projections import project_many

log = structlog.get_logger("reporting.rebuild")

CHUNK = 2000
# Events committed late (a long transaction began before the replay started) are caught by
# replaying everything received this long before the start again in the final transaction.
IN_FLIGHT_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class Rebuilt:
    generation: int
    previous: int
    events: int


def _as_event(row: LoggedEvent) -> Event:
    return Event(type=row.type, data=row.data, orgid=row.orgid, source="reporting.log", id=row.id, time=row.time)


def _next_generation(session: Session) -> int:
    highest = max(
        (session.execute(select(func.max(model.gen))).scalar_one() or 0 for model in PROJECTIONS),  # type: ignore[attr-defined]
        default=0,
    )
    return max(highest, eventlog.live_generation(session)) + 1


def _chunks(session_factory: sessionmaker[Session]) -> Iterator[tuple[Session, list[LoggedEvent]]]:
    """The log in sequence order, one transaction per chunk."""
    after = 0
    while True:
        with session_scope(session_factory) as session:
            rows = list(
                session.scalars(
                    select(LoggedEvent).where(LoggedEvent.seq > after).order_by(LoggedEvent.seq).limit(CHUNK)
                )
            )
            if not rows:
                return
            yield session, rows
            after = rows[-1].seq


def _replay(session: Session, gen: int, rows: list[LoggedEvent]) -> None:
    """Apply a chunk of the log, in sequence order, its rows loaded a table at a time."""
    project_many(session, gen, [_as_event(row) for row in rows])


def _lock_log(session: Session) -> None:
    """Hold off the worker's inserts until this transaction ends."""
    if is_postgres(session):
        session.execute(text("LOCK TABLE event_log IN SHARE ROW EXCLUSIVE MODE"))
    else:  # SQLite: taking the write lock is enough, there is one writer at a time
        session.execute(update(ProjectionState).where(ProjectionState.name == eventlog.LIVE).values(name=eventlog.LIVE))


def _swap(session_factory: sessionmaker[Session], gen: int, since: object) -> int:
    with session_scope(session_factory) as session:
        _lock_log(session)
        rows = list(
            session.scalars(select(LoggedEvent).where(LoggedEvent.received_at >= since).order_by(LoggedEvent.seq))
        )
        _replay(session, gen, rows)
        previous = eventlog.live_generation(session)
        session.execute(
            update(ProjectionState)
            .where(ProjectionState.name == eventlog.LIVE)
            .values(generation=gen, rebuilt_at=utcnow())
        )
        return previous


def drop_generation(session_factory: sessionmaker[Session], gen: int) -> None:
    with session_scope(session_factory) as session:
        for model in PROJECTIONS:
            session.execute(delete(model).where(model.gen == gen))  # type: ignore[attr-defined]


def rebuild(session_factory: sessionmaker[Session]) -> Rebuilt:
    """Rebuild every projection from the log and make the result live atomically."""
    started = utcnow()
    with session_scope(session_factory) as session:
        gen = _next_generation(session)
    drop_generation(session_factory, gen)  # leftovers of an interrupted rebuild
    events = 0
    for session, rows in _chunks(session_factory):
        _replay(session, gen, rows)
        events += len(rows)
        log.info("replayed", generation=gen, events=events)
    previous = _swap(session_factory, gen, started - IN_FLIGHT_MARGIN)
    drop_generation(session_factory, previous)
    log.info("rebuilt", generation=gen, previous=previous, events=events)
    return Rebuilt(gen, previous, events)
