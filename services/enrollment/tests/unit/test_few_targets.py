"""A handful of targets enrolled with plain inserts gives what the set-based batch gives: the
same random sequences go through both paths, on two databases, and every row and outbox event
is compared (the ids made by each path aside)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from enrollment_helpers import ORG, new_id
from sqlalchemy import MetaData, select, update

from enrollment import bulk
from enrollment.models import Course, Enrollment, EnrollmentSource
from enrollment.service import SERVICE
from lms_common import migrations
from lms_common.db import make_engine, make_session_factory

USERS = [new_id() for _ in range(4)]
COURSES = [new_id() for _ in range(5)]  # the last one is not in the catalog: its title is empty
KINDS = ["grant", "assignment", "cohort"]


def few(session: Any, targets: list[dict[str, str]], now: datetime) -> int:
    return bulk.enroll_few(session, targets, now)


def set_based(session: Any, targets: list[dict[str, str]], now: datetime) -> int:
    batch = new_id()
    bulk.add_target_values(session, batch, targets)
    return bulk.enroll_batch(session, batch, now)


@pytest.mark.parametrize("seed", range(8))
def test_random_small_batches_give_the_rows_and_events_of_the_set_based_path(tmp_path: Path, seed: int) -> None:
    compare_paths([database(f"sqlite:///{tmp_path / name}.sqlite3") for name in ("few", "set_based")], seed)


def compare_paths(factories: list[Any], seed: int) -> None:
    """Random batches through :func:`few` on the first database and :func:`set_based` on the other."""
    rng = random.Random(seed)
    now = datetime(2030, 1, 1, tzinfo=UTC)
    for step in range(10):
        targets = _random_targets(rng)
        closing = rng.sample(range(30), 3)  # sources closed between batches, the same on both
        created = []
        for factory, enroll in zip(factories, (few, set_based), strict=True):
            with factory.begin() as session:
                created.append(enroll(session, targets, now + timedelta(minutes=step)))
                sources = session.execute(_sources_in_order()).all()
                for enrollment_id, kind, ref in [sources[n] for n in closing if n < len(sources)]:
                    session.execute(update(EnrollmentSource).where(
                        EnrollmentSource.enrollment_id == enrollment_id, EnrollmentSource.kind == kind,
                        EnrollmentSource.ref == ref).values(active=False))  # fmt: skip
        assert created[0] == created[1], targets
    assert _state(factories[0]) == _state(factories[1])


def _sources_in_order() -> Any:
    s, e = EnrollmentSource, Enrollment
    return (
        select(s.enrollment_id, s.kind, s.ref)
        .join(e, e.id == s.enrollment_id)
        .order_by(e.user_id, e.course_id, s.kind, s.ref)
    )


def database(url: str) -> Any:
    """A migrated database with the courses of the catalog, and the factory of its sessions."""
    migrations.upgrade(SERVICE.migrations, url)
    factory = make_session_factory(make_engine(url))
    with factory.begin() as session:
        session.add_all(Course(id=course, org_id=ORG, title=f"Course {n}", status="published", version=1,
                               lesson_count=1) for n, course in enumerate(COURSES[:-1]))  # fmt: skip
    return factory


def _random_targets(rng: random.Random) -> list[dict[str, str]]:
    """Up to :data:`bulk.FEW` targets naming each user and course once, of any kind and ref."""
    pairs = rng.sample([(user, course) for user in USERS for course in COURSES], rng.randint(1, bulk.FEW))
    return [{"org_id": ORG, "user_id": user, "course_id": course, "kind": rng.choice(KINDS),
             "ref": f"ref-{rng.randint(0, 3)}"} for user, course in pairs]  # fmt: skip


def _state(factory: Any) -> dict[str, list[str]]:
    """Every row of enrollments, their sources and bulk_targets, and every outbox event:
    enrollment ids replaced by their user and course, batch ids and outbox times left out."""
    meta = MetaData()
    engine = factory.kw["bind"]
    meta.reflect(engine)
    with engine.connect() as connection:
        rows = {name: [dict(row._mapping) for row in connection.execute(select(meta.tables[name]))]
                for name in ("enrollments", "enrollment_sources", "bulk_targets")}  # fmt: skip
        outbox = [dict(row._mapping) for row in connection.execute(select(meta.tables["outbox"]))]
    names = {e["id"]: f"enrollment {e['user_id']} {e['course_id']}" for e in rows["enrollments"]}

    def plain(row: dict[str, Any]) -> str:
        kept = {key: names.get(value, value) for key, value in row.items() if key not in ("batch_id", "id")}
        return json.dumps(kept, sort_keys=True, default=str)

    state = {name: sorted(plain(row) for row in table) for name, table in rows.items()}
    events = [(m["event_type"], m["routing_key"], names[m["event_id"]], json.loads(bytes(m["body"]))) for m in outbox]
    state["outbox"] = sorted(json.dumps([*head, {**body, "id": names[body["id"]],
                                                 "data": {k: names.get(v, v) for k, v in body["data"].items()}}])
                             for *head, body in events)  # fmt: skip
    return state
