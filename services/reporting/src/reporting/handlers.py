"""Reporting consumes every event type of the suite: each is logged, then projected."""

from __future__ import annotations

from sqlalchemy.orm import Session

from lms_common import denylist
from lms_common.contracts import SUITE_EVENTS
from lms_common.envelope import Event
from lms_common.processing import Handler
from reporting import eventlog, metrics
from reporting.projections import project


def handle(session: Session, event: Event) -> None:
    """Append the event to the log and apply it to the live projections, in one transaction."""
    eventlog.append(session, event)
    project(session, eventlog.live_generation(session), event)
    metrics.saw_event(event.time)


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
