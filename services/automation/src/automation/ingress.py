"""Events entering the suite through automation: outside systems' posts and the daily tick.

Both are published through the outbox, never from the request. An ingress event keeps the id
its sender gave it: the ``ingress_events`` table (and the outbox's unique event id) take an id
once, so posting it again has no second effect, and the consumers' inboxes absorb any repeat.
An id of automation's own events, waiting or in the week's sent log, is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from automation import metrics
from automation.commands import COMMAND_NAMESPACE
from automation.evaluation import SOURCE
from automation.models import IngressEvent, Rule
from automation.rules import DAILY_TICK
from lms_common import outbox
from lms_common.auth import Principal
from lms_common.contracts import SUITE_EVENTS, outside
from lms_common.envelope import Event, InvalidEvent, from_dict
from lms_common.errors import Conflict, Unprocessable

OUTSIDE_TYPES = tuple(event_type.name for event_type in outside.EVENTS)


def parse(body: Any, org: str) -> Event:
    """A structured CloudEvent of a known outside type, in the caller's organization."""
    if not isinstance(body, dict):
        raise Unprocessable("the body must be a CloudEvent: a JSON object", code="invalid_event")
    try:
        # The token says which organization this is; an orgid in the body never wins.
        event = from_dict({**body, "orgid": org})
    except InvalidEvent as exc:
        raise Unprocessable(exc.reason, code="invalid_event") from exc
    if event.type not in OUTSIDE_TYPES:
        raise Unprocessable(
            f"type {event.type!r} is not taken here; one of {', '.join(OUTSIDE_TYPES)}", code="unknown_event_type"
        )
    try:
        return SUITE_EVENTS.validate(event)
    except InvalidEvent as exc:
        raise Unprocessable(exc.reason, code="invalid_event") from exc


def ingest(session: Session, principal: Principal, body: Any) -> str:
    """Take an outside event once: publish it through the outbox; a repeat changes nothing."""
    event = parse(body, principal.org)
    if _seen(session, event, principal.org):
        metrics.INGRESS.labels("duplicate").inc()
        return event.id
    try:
        with session.begin_nested():
            session.add(
                IngressEvent(
                    event_id=event.id,
                    org_id=event.orgid,
                    event_type=event.type,
                    client_id=principal.client_id or principal.subject,
                )
            )
            outbox.add(session, event)
    except IntegrityError:  # a concurrent post of the same id won
        if not _seen(session, event, principal.org):
            raise
    metrics.INGRESS.labels("accepted").inc()
    return event.id


def _seen(session: Session, event: Event, org: str) -> bool:
    """Whether this id was taken before: by this organization (a repeat) or by another (409)."""
    taken = session.get(IngressEvent, event.id)
    if taken is not None and taken.org_id == org:
        return True
    if taken is not None or outbox.known(session, event.id):
        raise Conflict(f"event id {event.id!r} is taken; give the event a new id", code="event_id_taken")
    return False


def tick_id(org: str, day: date) -> str:
    return str(uuid.uuid5(COMMAND_NAMESPACE, f"tick|{org}|{day.isoformat()}"))


def tick_orgs(session: Session) -> list[str]:
    """The organizations with an enabled rule on the daily tick."""
    query = select(Rule.org_id).where(Rule.trigger == DAILY_TICK, Rule.enabled.is_(True)).distinct()
    return sorted(session.scalars(query))


def publish_ticks(session: Session, day: date, orgs: Iterable[str] | None = None) -> list[str]:
    """One DailyTick per organization and day, whatever how often this runs that day."""
    published = []
    for org in orgs if orgs is not None else tick_orgs(session):
        event_id = tick_id(org, day)
        if outbox.known(session, event_id):
            continue
        outbox.add(
            session, Event(type=DAILY_TICK, data={"date": day.isoformat()}, orgid=org, source=SOURCE, id=event_id)
        )
        published.append(org)
    return published
