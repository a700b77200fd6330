"""Reporting consumes every event type of the suite: each is logged, then projected.

The shared processor calls a handler per message, within one transaction per batch of
deliveries. Reporting does a batch's work at once, just before that transaction commits: the
events are logged in one statement, the projection rows they read are loaded a table at a time
and the changes are written a few statements per table, rather than a few round trips per
message. Now and then the batch also analyzes the tables that grew (:mod:`lms_common.statistics`).

Should that batch work fail, the processor's own protocol for a failing handler applies: the
transaction is rolled back whole and the batch handled again with a savepoint per message. A
handler called inside a savepoint therefore does its message's work at once, so that its
failure costs only its own message.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from lms_common import denylist
from lms_common.contracts import SUITE_EVENTS
from lms_common.envelope import Event
from lms_common.processing import Handler, HandlerFailed, is_connection_failure
from lms_common.statistics import StatisticsKeeper
from reporting import eventlog, metrics
from reporting.projections import project_many

_PENDING = "reporting.pending_events"

# The tables the reports read, kept analyzed as they grow; the event log is only appended to
# and read by time, so it is left to autovacuum.
PROJECTIONS = (
    "learners", "user_aliases", "locations", "courses", "programs", "program_courses", "enrollments",
    "lesson_completions", "completions", "program_members", "assignments", "quiz_attempts", "certificates",
)  # fmt: skip
KEEPER = StatisticsKeeper(PROJECTIONS, lock=0x5245504F)  # "REPO"


def apply(session: Session, events: Sequence[Event]) -> None:
    """Append the events to the log and apply them to the live projections."""
    eventlog.append_many(session, events)  # before the generation is read: see live_generation
    project_many(session, eventlog.live_generation(session), events)


def _apply_pending(session: Session) -> None:
    """Before the batch's transaction commits: its events' work, all at once."""
    events = session.info.pop(_PENDING, None)
    if not events:
        return
    try:
        apply(session, events)
    except Exception as exc:
        if is_connection_failure(exc):
            raise
        # A handler failed, as far as the processor is concerned: it rolls the batch back and
        # handles it again message by message, each in its savepoint (see handle).
        raise HandlerFailed from exc


def handle(session: Session, event: Event) -> None:
    """Log the event and project it, in the transaction of its batch."""
    metrics.saw_event(event.time)
    if session.in_nested_transaction():  # handled alone, in its savepoint: now
        apply(session, [event])
        return
    pending = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        if not sa_event.contains(session, "before_commit", _apply_pending):
            sa_event.listen(session, "before_commit", _apply_pending)
    pending.append(event)


def _with_deny_list(deny: Handler) -> Handler:
    """Our handler replaces the runtime's deny-list one for its type: do both."""

    def both(session: Session, event: Event) -> None:
        deny(session, event)
        handle(session, event)

    return both


HANDLERS: dict[str, Handler] = {
    event_type.name: _with_deny_list(denylist.HANDLERS[event_type.name])
    if event_type.name in denylist.HANDLERS
    else handle
    for event_type in SUITE_EVENTS
}
