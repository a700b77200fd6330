"""Adding enrollment's events to the outbox, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from lms_common import outbox
from lms_common.envelope import Event, EventType, format_time

SOURCE = "/enrollment"


def stamp(value: datetime | date | None) -> str | None:
    """A timestamp (RFC 3339, UTC) or a date (YYYY-MM-DD) as the payloads carry them."""
    if value is None:
        return None
    return format_time(value) if isinstance(value, datetime) else value.isoformat()


def event(event_type: EventType, org: str, data: Mapping[str, Any], subject: str | None = None) -> Event:
    return Event(type=event_type.name, data=dict(data), orgid=org, source=SOURCE, subject=subject)


def publish(session: Session, event_type: EventType, org: str, data: Mapping[str, Any]) -> None:
    """Validate and add one event to the outbox."""
    outbox.add(session, event(event_type, org, data))


def publish_many(session: Session, event_type: EventType, org: str, payloads: Iterable[Mapping[str, Any]]) -> None:
    outbox.add_many(session, (event(event_type, org, data) for data in payloads))
