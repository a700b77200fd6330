"""The deny list: its event handlers and the check every API makes on each token."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lms_common import denylist
from lms_common.auth import Principal
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import session_scope
from lms_common.denylist import DenyList, RevokedToken, on_token_revoked, on_user_disabled, on_user_enabled
from lms_common.envelope import Event, format_time
from lms_common.memorybus import InMemoryBus
from lms_common.processing import MessageProcessor, Outcome

USER = "6f1c1c84-6c1e-4c39-9a43-8f1bd3f2c0a1"
NOON = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.fixture()
def apply(session_factory: sessionmaker[Session]) -> Callable[..., None]:
    """Run a deny-list handler on an event in its own transaction, as the worker would."""

    def run(handler: Callable[[Session, Event], None], event: Event) -> None:
        with session_scope(session_factory) as session:
            handler(session, event)

    return run


@pytest.fixture()
def deny_list(session_factory: sessionmaker[Session]) -> DenyList:
    return DenyList(session_factory, refresh_seconds=0)


@pytest.fixture()
def disable(apply: Callable[..., None], make_event: Callable[..., Event]) -> Callable[[datetime], None]:
    return lambda at: apply(on_user_disabled, make_event("UserDisabled", user_id=USER, disabled_at=format_time(at)))


@pytest.fixture()
def enable(apply: Callable[..., None], make_event: Callable[..., Event]) -> Callable[[datetime], None]:
    return lambda at: apply(on_user_enabled, make_event("UserEnabled", user_id=USER, enabled_at=format_time(at)))


@pytest.fixture()
def revoke(apply: Callable[..., None], make_event: Callable[..., Event]) -> Callable[[str, datetime], None]:
    def run(jti: str, expires_at: datetime) -> None:
        apply(on_token_revoked, make_event("TokenRevoked", jti=jti, expires_at=format_time(expires_at)))

    return run


def token(issued_at: datetime, subject: str = USER, jti: str = "t-1") -> Principal:
    return Principal(
        subject=subject, org="org-1", permissions=frozenset(), token_id=jti, issued_at=int(issued_at.timestamp())
    )


def test_nobody_is_denied_at_first(deny_list: DenyList) -> None:
    assert not deny_list.is_revoked(token(NOON))


def test_token_issued_before_the_disable_is_refused(disable: Callable[[datetime], None], deny_list: DenyList) -> None:
    disable(NOON)
    assert deny_list.is_revoked(token(NOON - timedelta(minutes=5)))


def test_token_issued_in_the_second_of_the_disable_is_refused(
    disable: Callable[[datetime], None], deny_list: DenyList
) -> None:
    disable(NOON)
    assert deny_list.is_revoked(token(NOON))


def test_token_issued_after_the_disable_is_accepted(disable: Callable[[datetime], None], deny_list: DenyList) -> None:
    # identity refuses to mint for a disabled user, so a later token means it was re-enabled.
    disable(NOON)
    assert not deny_list.is_revoked(token(NOON + timedelta(seconds=1)))


def test_other_users_are_not_affected(disable: Callable[[datetime], None], deny_list: DenyList) -> None:
    disable(NOON)
    assert not deny_list.is_revoked(token(NOON - timedelta(minutes=5), subject="someone-else"))


def test_token_issued_after_re_enable_is_accepted(
    disable: Callable[[datetime], None], enable: Callable[[datetime], None], deny_list: DenyList
) -> None:
    disable(NOON)
    enable(NOON + timedelta(minutes=10))
    assert not deny_list.is_revoked(token(NOON + timedelta(minutes=11)))


def test_older_enable_arriving_late_does_not_re_enable(
    disable: Callable[[datetime], None], enable: Callable[[datetime], None], deny_list: DenyList
) -> None:
    disable(NOON)
    enable(NOON - timedelta(minutes=10))
    assert deny_list.is_revoked(token(NOON - timedelta(minutes=1)))


def test_older_disable_arriving_late_keeps_the_latest(disable: Callable[[datetime], None], deny_list: DenyList) -> None:
    disable(NOON)
    disable(NOON - timedelta(hours=1))
    assert deny_list.is_revoked(token(NOON - timedelta(minutes=1)))


def test_revoked_token_is_refused_by_its_jti(revoke: Callable[[str, datetime], None], deny_list: DenyList) -> None:
    revoke("t-1", datetime.now(UTC) + timedelta(minutes=10))
    assert deny_list.is_revoked(token(datetime.now(UTC), jti="t-1"))
    assert not deny_list.is_revoked(token(datetime.now(UTC), jti="t-2"))


def test_revoking_twice_keeps_one_row(
    revoke: Callable[[str, datetime], None], session_factory: sessionmaker[Session]
) -> None:
    expires_at = datetime.now(UTC) + timedelta(minutes=10)
    revoke("t-1", expires_at)
    revoke("t-1", expires_at)
    with session_scope(session_factory) as session:
        assert session.scalars(select(RevokedToken.jti)).all() == ["t-1"]


def test_expired_revocations_are_forgotten(
    revoke: Callable[[str, datetime], None], session_factory: sessionmaker[Session]
) -> None:
    revoke("old", datetime.now(UTC) - timedelta(minutes=1))
    revoke("new", datetime.now(UTC) + timedelta(minutes=10))
    with session_scope(session_factory) as session:
        assert session.scalars(select(RevokedToken.jti)).all() == ["new"]


def test_deny_list_is_reloaded_only_after_its_refresh_interval(
    disable: Callable[[datetime], None], session_factory: sessionmaker[Session]
) -> None:
    deny_list = DenyList(session_factory, refresh_seconds=60)
    assert not deny_list.is_revoked(token(NOON))
    disable(NOON)
    assert not deny_list.is_revoked(token(NOON))
    assert DenyList(session_factory, refresh_seconds=60).is_revoked(token(NOON))


def test_user_disabled_from_the_bus_refuses_the_users_tokens(
    session_factory: sessionmaker[Session], make_event: Callable[..., Event], deny_list: DenyList
) -> None:
    bus = InMemoryBus()
    bus.bind("svc", ["identity.*"])
    bus.publish_event(make_event("UserDisabled", user_id=USER, disabled_at=format_time(NOON)), SUITE_EVENTS)
    results = bus.drain("svc", MessageProcessor("svc", session_factory, denylist.HANDLERS, SUITE_EVENTS))
    assert [result.outcome for result in results] == [Outcome.HANDLED]
    assert deny_list.is_revoked(token(NOON))
