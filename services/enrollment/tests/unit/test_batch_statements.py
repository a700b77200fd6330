"""Look-ups made for every batch are built once: SQLAlchemy memoizes a statement's cache key on
the statement object, so a statement built anew per batch is walked and keyed again each time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from enrollment import learning, purchases, replica
from lms_common.db import make_engine, make_session_factory
from lms_common.envelope import Event

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def provisioned(user: str, email: str) -> Event:
    return Event(type="UserProvisioned", data={"user_id": user, "org_id": "org-1", "email": email},
                 orgid="org-1", source="/test")  # fmt: skip


def statements_run(session: Session, look_up: Any, batch: list[Event]) -> list[Any]:
    seen: list[Any] = []
    listener = lambda state: seen.append(state.statement)  # noqa: E731
    event.listen(session, "do_orm_execute", listener)
    try:
        look_up(session, batch)
    finally:
        event.remove(session, "do_orm_execute", listener)
    return seen


def test_batch_look_ups_reuse_one_statement_whatever_their_keys(settings: Any) -> None:
    factory = make_session_factory(make_engine(settings.database_url))
    with factory.begin() as session:
        replica.upsert_users(session, [({"user_id": "u1", "org_id": "org-1", "email": "Ada@Example.com"}, T0)])
    first_batch = [provisioned("u1", "ada@example.com")]
    second_batch = [provisioned("u2", "grace@example.com"), provisioned("u3", "joan@example.com")]
    look_ups = [
        lambda session, batch: replica.users_by_email(session, [e.data["email"] for e in batch]),
        purchases._waiting_commands,
        purchases._emails_with_seats_waiting,
        lambda session, batch: learning._grant_courses_of(session, {e.data["user_id"]: "org-1" for e in batch}),
    ]
    with factory() as session:
        for look_up in look_ups:
            first = statements_run(session, look_up, first_batch)
            second = statements_run(session, look_up, second_batch)
            assert len(first) == len(second) == 1
            assert first[0] is second[0]
        found = replica.users_by_email(session, ["ADA@example.com", "nobody@example.com"])
        assert [user.id for user in found["ada@example.com"]] == ["u1"]
        assert "nobody@example.com" not in found
