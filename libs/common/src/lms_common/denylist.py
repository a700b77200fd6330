"""The deny list: disabled users and revoked tokens, refused by every service within seconds.

identity publishes UserDisabled, UserEnabled and TokenRevoked; every service's worker stores
them in its own database (handlers below, added to every worker), and each API process reloads
the small list every couple of seconds. A token is refused when its ``jti`` is revoked or when
it was issued no later than its user was disabled.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from sqlalchemy import String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from lms_common.auth import Principal
from lms_common.contracts import TOKEN_REVOKED, USER_DISABLED, USER_ENABLED
from lms_common.db import Base, session_scope, utcnow
from lms_common.envelope import Event, parse_time
from lms_common.processing import Handler

REFRESH_SECONDS = 2.0


class DisabledUser(Base):
    __tablename__ = "denied_users"

    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    disabled_at: Mapped[datetime]


class RevokedToken(Base):
    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime]


def on_user_disabled(session: Session, event: Event) -> None:
    disabled_at = parse_time(event.data["disabled_at"])
    row = session.get(DisabledUser, event.data["user_id"])
    if row is None:
        session.add(DisabledUser(user_id=event.data["user_id"], disabled_at=disabled_at))
    elif disabled_at > row.disabled_at:
        row.disabled_at = disabled_at


def on_user_enabled(session: Session, event: Event) -> None:
    row = session.get(DisabledUser, event.data["user_id"])
    # An enable older than the latest disable (out-of-order delivery) changes nothing.
    if row is not None and parse_time(event.data["enabled_at"]) > row.disabled_at:
        session.delete(row)


def on_token_revoked(session: Session, event: Event) -> None:
    if session.get(RevokedToken, event.data["jti"]) is None:
        session.add(RevokedToken(jti=event.data["jti"], expires_at=parse_time(event.data["expires_at"])))
    session.execute(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))


HANDLERS: dict[str, Handler] = {
    USER_DISABLED.name: on_user_disabled,
    USER_ENABLED.name: on_user_enabled,
    TOKEN_REVOKED.name: on_token_revoked,
}


class DenyList:
    """A per-process copy of the deny list, reloaded from the database every few seconds."""

    def __init__(self, session_factory: sessionmaker[Session], refresh_seconds: float = REFRESH_SECONDS):
        self.session_factory = session_factory
        self.refresh_seconds = refresh_seconds
        self._disabled: dict[str, float] = {}
        self._revoked: frozenset[str] = frozenset()
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def is_revoked(self, principal: Principal) -> bool:
        self._refresh_if_stale()
        if principal.token_id and principal.token_id in self._revoked:
            return True
        disabled_at = self._disabled.get(principal.subject)
        return disabled_at is not None and principal.issued_at <= disabled_at

    def _refresh_if_stale(self) -> None:
        if time.monotonic() - self._loaded_at < self.refresh_seconds:
            return
        with self._lock:
            if time.monotonic() - self._loaded_at < self.refresh_seconds:
                return
            with session_scope(self.session_factory) as session:
                users = session.execute(select(DisabledUser.user_id, DisabledUser.disabled_at)).all()
                tokens = session.scalars(select(RevokedToken.jti).where(RevokedToken.expires_at >= utcnow())).all()
            self._disabled = {user_id: at.timestamp() for user_id, at in users}
            self._revoked = frozenset(tokens)
            self._loaded_at = time.monotonic()
