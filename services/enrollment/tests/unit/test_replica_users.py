"""The replica of identity's users: many profiles at once keep what one after the other would,
and each user is noted provisioned once, at its first announcement."""

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


Profiles = list[tuple[dict[str, Any], datetime]]


def kept(
    settings: Any, provision: Any, batches: list[Profiles], firsts: list[set[str]] | None = None
) -> list[tuple[Any, ...]]:
    """The users kept after each batch went through ``provision``; ``firsts`` collects what
    each batch answered (the users provisioned for the first time)."""
    factory = make_session_factory(make_engine(settings.database_url))
    for batch in batches:
        with factory.begin() as session:
            first = provision(session, batch)
        if firsts is not None:
            firsts.append(first)
    with factory() as session:
        users = session.scalars(select(User).order_by(User.id)).all()
        return [(u.id, u.org_id, u.email, u.first_name, u.last_name, u.location_id, u.department,
                 u.updated_at.replace(tzinfo=UTC), u.provisioned_at and u.provisioned_at.replace(tzinfo=UTC))
                for u in users]  # fmt: skip


def one_at_a_time(session: Any, batch: Profiles) -> set[str]:
    return {data["user_id"] for data, at in batch if replica.provision_user(session, data, at)}


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
    firsts: list[set[str]] = []
    together = kept(settings, replica.provision_users, BATCHES, firsts)
    assert [row[0] for row in together] == ["u1", "u2", "u3", "u4"]
    assert together[0][2:] == (
        "u1@example.com", "Ada", "Lovelace", "loc-1", None, T0 + timedelta(minutes=3), T0 + timedelta(minutes=1)
    )  # fmt: skip
    assert together[1][3:7] == ("Grace", "Hopper", None, None)
    assert together[2][3:6] == ("", "", None)
    assert firsts == [{"u1", "u2", "u3"}, {"u4"}]
    other = dataclasses.replace(settings, database_url=f"sqlite:///{tmp_path / 'other.db'}")
    migrations.upgrade(SERVICE.migrations, other.database_url)
    one_by_one: list[set[str]] = []
    assert kept(other, one_at_a_time, BATCHES, one_by_one) == together
    assert one_by_one == firsts


def test_a_user_kept_from_a_profile_update_alone_is_provisioned_at_its_first_announcement(settings: Any) -> None:
    def updated_then_provisioned(session: Any, batch: Profiles) -> set[str]:
        (data, at), *announced = batch
        replica.upsert_user(session, data, at)  # a UserUpdated that overtook the UserProvisioned
        return replica.provision_users(session, announced)

    firsts: list[set[str]] = []
    batches = [
        [profile("u1", 5, first_name="Ada"), profile("u1", 1, first_name="Older")],
        [profile("u2", 0), profile("u1", 9, first_name="Again")],
    ]
    users = kept(settings, updated_then_provisioned, batches, firsts)
    assert firsts == [{"u1"}, set()]
    # u1: provisioned by the first announcement, whose older profile was dropped; u2: updated only.
    assert [(row[0], row[3], row[8]) for row in users] == [("u1", "Again", T0 + timedelta(minutes=1)), ("u2", "", None)]
