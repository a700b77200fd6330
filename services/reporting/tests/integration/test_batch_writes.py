"""On PostgreSQL: a batch of events writes the projections exactly as the same events applied
one at a time do, whatever the mix, the order and the batch sizes (random, several seeds); and
a batch whose writes fail is handled again message by message."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from lms_common import migrations
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import make_engine, make_session_factory, session_scope
from lms_common.envelope import Event
from lms_common.processing import Delivery, Outcome
from lms_common.testing import TestKeys, isolated_settings
from reporting.projections import project, project_many
from reporting.service import SERVICE

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))

from reporting_events import (
    OTHER_ORG,
    assigned,
    assignment_done,
    at,
    certificate,
    completed,
    course,
    enrolled,
    event,
    lesson,
    location,
    member,
    quiz,
    uid,
    user,
)
from test_rebuild_and_order import projection_rows

PEOPLE = [f"p{n}" for n in range(8)]
COURSES = ["c0", "c1", "c2", "c3"]
PROGRAMS = ["g0", "g1"]
BATCHED, ONE_AT_A_TIME = 1, 2  # the generations each way writes


def _day(r: random.Random) -> float:
    return r.randrange(0, 300) / 10


def _profile(r: random.Random) -> Event:
    kind = r.choice(["UserProvisioned", "UserUpdated"])
    return user(r.choice(PEOPLE), r.choice([None, "north", "south"]), _day(r), kind=kind,
                department=r.choice(["Ops", "Sales"]))  # fmt: skip


def _status(r: random.Random) -> Event:
    who, day = uid(r.choice(PEOPLE)), _day(r)
    if r.random() < 0.5:
        return event("UserDisabled", day, user_id=who, disabled_at=at(day))
    return event("UserEnabled", day, user_id=who, enabled_at=at(day))


def _contacts_merged(r: random.Random) -> Event:
    source, target = r.sample(PEOPLE, 2)
    day = _day(r)
    return event("ContactsMerged", day, from_user_id=uid(source), to_user_id=uid(target), org_id="org-1",
                 merged_at=at(day))  # fmt: skip


def _history_merged(r: random.Random) -> Event:
    source, target = r.sample(PEOPLE, 2)
    day = _day(r)
    return event("UserHistoryMerged", day, org_id="org-1", from_user_id=uid(source), to_user_id=uid(target),
                 enrollment_ids=[], certificate_ids=[], merged_at=at(day))  # fmt: skip


def _course(r: random.Random) -> Event:
    name = r.choice(COURSES)
    return course(name, version=r.randint(1, 3), days=_day(r), title=f"{name} {r.randint(1, 9)}")


def _program(r: random.Random) -> Event:
    name, day = r.choice(PROGRAMS), _day(r)
    courses = [uid(c) for c in r.sample(COURSES, r.randint(1, 3))]
    return event(r.choice(["ProgramPublished", "ProgramUpdated"]), day, program_id=uid(name),
                 version=r.randint(1, 3), title=f"{name} {r.randint(1, 9)}", published=True,
                 enforce_course_order=True, course_ids=courses)  # fmt: skip


def _enrolled(r: random.Random) -> Event:
    return enrolled(r.choice(PEOPLE), r.choice(COURSES), _day(r))


def _lesson(r: random.Random) -> Event:
    return lesson(r.choice(PEOPLE), r.choice(COURSES), r.randint(1, 3), r.randint(0, 100), _day(r))


def _completed(r: random.Random) -> Event:
    who, what = r.choice(PEOPLE), r.choice(COURSES)
    code = r.choice([None, f"CODE-{who}-{what}"])
    return completed(who, what, _day(r), score=r.choice([None, 50, 90]), code=code)


def _certificate(r: random.Random) -> Event:
    who, what = r.choice(PEOPLE), r.choice(COURSES)
    return certificate(who, what, f"CODE-{who}-{what}", _day(r))


def _assignment(r: random.Random) -> Event:
    who, what, due, day = r.choice(PEOPLE), r.choice(COURSES), r.randint(1, 40), _day(r)
    if r.random() < 0.6:
        return assigned(who, what, due, day)
    if r.random() < 0.5:
        return assignment_done(who, what, due, day)
    overdue = assignment_done(who, what, due, day)  # the same assignment's fields
    data = {name: value for name, value in overdue.data.items() if name not in ("completed_at", "late")}
    return event("AssignmentOverdue", day, **data, overdue_since=at(day)[:10])


def _quiz(r: random.Random) -> Event:
    return quiz(r.choice(PEOPLE), r.choice(COURSES), r.randint(1, 3), r.randint(0, 100), _day(r))


def _membership(r: random.Random) -> Event:
    who, name, day = r.choice(PEOPLE), r.choice(PROGRAMS), _day(r)
    courses = r.sample(COURSES, 2)
    choice = r.random()
    if choice < 0.5:
        return member(who, name, courses, day)
    if choice < 0.75:
        return event("ProgramMemberRemoved", day, program_id=uid(name), org_id="org-1", user_id=uid(who),
                     removed_at=at(day), actor_id=None, cause="api")  # fmt: skip
    code = r.choice([None, f"PROG-{who}-{name}"])
    return event("ProgramCompleted", day, program_id=uid(name), org_id="org-1", user_id=uid(who),
                 program_title=name.title(), course_ids=[uid(c) for c in courses], course_completed_at={},
                 added_at=at(day - 1), completed_at=at(day), certificate_id=uid(code) if code else None,
                 verification_code=code)  # fmt: skip


def _other_org(r: random.Random) -> Event:
    return enrolled(r.choice(PEOPLE), r.choice(COURSES), _day(r), org=OTHER_ORG)


MAKERS: dict[Callable[[random.Random], Event], int] = {
    _profile: 12, _status: 4, _contacts_merged: 1, _history_merged: 1, _course: 4, _program: 3,
    _enrolled: 12, _lesson: 12, _completed: 6, _certificate: 3, _assignment: 12, _quiz: 5, _membership: 8,
    _other_org: 2,
}  # fmt: skip


def random_events(r: random.Random, count: int) -> list[Event]:
    """``count`` events of every projected kind about a few people, then a tenth redelivered."""
    events = [location("north"), location("south")]
    events += [maker(r) for maker in r.choices(list(MAKERS), weights=list(MAKERS.values()), k=count)]
    return events + r.sample(events, count // 10)


def _sorted(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    return {table: sorted(found, key=repr) for table, found in rows.items()}


def project_in_batches(factory: sessionmaker[Session], gen: int, events: list[Event], sizes: list[int]) -> None:
    start = 0
    for size in sizes:
        with session_scope(factory) as session:
            project_many(session, gen, events[start : start + size])
        start += size


@pytest.mark.parametrize("seed", range(6))
def test_a_batch_writes_what_one_event_at_a_time_writes(postgres_url, sqlite_url, seed):
    """And what SQLite's plain INSERTs write (PostgreSQL's new rows take another way)."""
    r = random.Random(seed)
    events = random_events(r, 300)
    sizes = [r.randint(1, 150) for _ in events]
    factories = []
    for url in (postgres_url, sqlite_url):
        migrations.upgrade(SERVICE.migrations, url)
        factories.append(make_session_factory(make_engine(url)))
    postgres, sqlite = factories
    project_in_batches(postgres, BATCHED, events, sizes)
    with session_scope(postgres) as session:
        for one in events:
            project(session, ONE_AT_A_TIME, one)
    project_in_batches(sqlite, BATCHED, events, sizes)
    batched = projection_rows(postgres, BATCHED)
    assert batched == projection_rows(postgres, ONE_AT_A_TIME)
    assert _sorted(batched) == _sorted(projection_rows(sqlite, BATCHED))  # text sorts by another collation
    assert all(batched[table] for table in ("learners", "enrollments", "completions", "program_members"))


REFUSE_ONE_EVENT = """
CREATE FUNCTION refuse_one_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = '{event_id}' THEN
        RAISE EXCEPTION 'this event cannot be logged';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_one_event BEFORE INSERT ON event_log FOR EACH ROW EXECUTE FUNCTION refuse_one_event();
"""


def test_a_batch_whose_writes_fail_is_handled_again_message_by_message(postgres_url):
    migrations.upgrade(SERVICE.migrations, postgres_url)
    app = SERVICE.create_app(isolated_settings("reporting", postgres_url), key_source=TestKeys())
    processor = SERVICE.processor(app.extensions["lms"])
    events = [e for n in range(20) for e in (user(f"f{n}", None), enrolled(f"f{n}", "safety", 1))]
    engine = make_engine(postgres_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:  # one event's write fails, whichever way it is written
        session.execute(text(REFUSE_ONE_EVENT.format(event_id=events[5].id)))
    results = processor.process([Delivery(e.to_json(), SUITE_EVENTS.routing_key(e), e.id) for e in events])
    assert [result.outcome for result in results] == [Outcome.HANDLED] * 5 + [Outcome.RETRY] + [Outcome.HANDLED] * 34
    rows = projection_rows(factory, 1)
    assert (len(rows["learners"]), len(rows["enrollments"])) == (20, 19)
    engine.dispose()
