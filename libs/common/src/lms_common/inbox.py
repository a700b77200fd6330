"""The inbox: the ids of the events a service has already handled.

The handler's work and the inbox row are written in one transaction, so a redelivered event
(same id) finds its row and has no second effect.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from lms_common.db import Base, is_postgres, utcnow


class InboxMessage(Base):
    __tablename__ = "inbox"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100))
    handled_at: Mapped[datetime] = mapped_column(default=utcnow)


def record(session: Session, event_id: str, event_type: str) -> bool:
    """Note that ``event_id`` is being handled; False when it already was (a duplicate).

    ``ON CONFLICT DO NOTHING`` rather than catching the unique violation: a concurrent
    consumer holding the same id makes this wait for its commit, then answer False.
    """
    dialect = postgresql if is_postgres(session) else sqlite
    statement = (
        dialect.insert(InboxMessage)
        .values(event_id=event_id, event_type=event_type, handled_at=utcnow())
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(InboxMessage.event_id)
    )
    return session.execute(statement).first() is not None
