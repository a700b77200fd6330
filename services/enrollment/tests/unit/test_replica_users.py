"""The replica of identity's users: many profiles at once keep what one after the other would."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from enrollment import replica
from enrollment.models import User
from enrollment.service import SERVICE
from lms_common import migrations
from lms_common.db import make_engine, make_session_factory

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def profile(user: str, minutes: int, **fields: Any) -> tuple[dict[str, Any], datetime]:
    data = {"user_id": user, "org_id": "org-1", "email": f"{user}@Example.com", **fields}
    return data, T0 + timedelta(minutes=minutes)


def kept(settings: Any, upsert: Any, batches: list[list[tuple[dict[str, Any], datetime]]]) -> list[tuple[Any, ...]]:
    factory = make_session_factory(make_engine(settings.database_url))
    for batch in batches:
        with factory.begin() as session:
            upsert(session, batch)
    with factory() as session:
        users = session.scalars(select(User).order_by(User.id)).all()
        return [(u.id, u.org_id, u.email, u.first_name, u.last_name, u.location_id, u.department,
                 u.updated_at.replace(tzinfo=UTC)) for u in users]  # fmt: skip


def one_at_a_time(session: Any, batch: list[tuple[dict[str, Any], datetime]]) -> None:
    for data, at in batch:
        replica.upsert_user(session, data, at)


BATCHES = [
    [
        profile("u1", 1, first_name="Ada", location_id="loc-1"),
        profile("u2", 1, first_name="Grace", department="Ops"),
        profile("u1", 3, last_name="Lovelace"),  # the same new user again: its first name stays
        profile("u2", 0, first_name="Older"),  # an older word on a new user: dropped
        profile("u3", 2, first_name="", location_id=""),
    ],
    [
        profile("u1", 2, first_name="Late"),  # older than what is kept: dropped
        profile("u2", 5, department=None, last_name="Hopper"),
        profile("u4", 1),
    ],
]


def test_many_profiles_keep_what_one_after_the_other_keeps(settings: Any, tmp_path: Any) -> None:
    together = kept(settings, replica.upsert_users, BATCHES)
    assert [row[0] for row in together] == ["u1", "u2", "u3", "u4"]
    assert together[0][2:] == ("u1@example.com", "Ada", "Lovelace", "loc-1", None, T0 + timedelta(minutes=3))
    assert together[1][3:7] == ("Grace", "Hopper", None, None)
    assert together[2][3:6] == ("", "", None)
    other = dataclasses.replace(settings, database_url=f"sqlite:///{tmp_path / 'other.db'}")
    migrations.upgrade(SERVICE.migrations, other.database_url)
    assert kept(other, one_at_a_time, BATCHES) == together
