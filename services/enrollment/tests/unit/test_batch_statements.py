"""Look-ups made for every batch are built once: SQLAlchemy memoizes a statement's cache key on
the statement object, so a statement built anew per batch is walked and keyed again each time."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from enrollment_helpers import ORG, new_id, outbox_events
from sqlalchemy import event
from sqlalchemy.orm import Session

from enrollment import assignments, bulk, learning, purchases, replica
from enrollment.models import Course
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
        replica.provision_users(session, [({"user_id": "u1", "org_id": "org-1", "email": "Ada@Example.com"}, T0)])
    first_batch = [provisioned("u1", "ada@example.com")]
    second_batch = [provisioned("u2", "grace@example.com"), provisioned("u3", "joan@example.com")]
    look_ups = [
        lambda session, batch: replica.users_by_email(session, [e.data["email"] for e in batch]),
        purchases._waiting_commands,
        purchases._emails_with_seats_waiting,
        lambda session, batch: learning._grant_courses_of(
            session, {e.data["user_id"]: "org-1" for e in batch}, learning._GRANT_COURSES_OF_HOLDERS
        ),
        lambda session, batch: learning._grant_sources_of(session, [e.data["user_id"] for e in batch]),
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


def test_assignment_batches_run_their_enrollment_and_event_statements_built_once(settings: Any) -> None:
    """Two batches of assignments run the same statement objects for their enrollments, sources
    and events, each with its own batch's values."""
    factory = make_session_factory(make_engine(settings.database_url))
    users = [new_id() for _ in range(4)]
    courses = {new_id(): "Forklifts", new_id(): "Ladders"}
    with factory.begin() as session:
        profiles = [({"user_id": u, "org_id": ORG, "email": f"u{n}@example.com"}, T0) for n, u in enumerate(users)]
        replica.provision_users(session, profiles)
        session.add_all(Course(id=course, org_id=ORG, title=title, status="published", version=1, lesson_count=1)
                        for course, title in courses.items())  # fmt: skip
    items = [{"course_id": course, "program_id": None, "title": title} for course, title in courses.items()]

    def assign(session: Session, names: list[str]) -> None:
        query = assignments.users_query(ORG, names, None, None)
        assignments.assign(session, ORG, query, items, due_on=date(2030, 1, 1), mandatory=True, cause="api")

    with factory.begin() as session:
        first = statements_run(session, assign, users[:2])
        second = statements_run(session, assign, users[2:])
    kept = {id(statement) for statement in second if any(statement is earlier for earlier in first)}
    built = {id(value[0] if isinstance(value, tuple) else value) for value in bulk._BUILT.values()}
    assert len(kept) == 5  # the enrollments, their sources, the count of assignments, two kinds of event
    assert kept <= built
    assigned = [body["data"] for body in outbox_events(settings.database_url, "AssignmentCreated")]
    enrolled = [body["data"] for body in outbox_events(settings.database_url, "EnrollmentCreated")]
    pairs = sorted((user, course) for user in users for course in courses)
    assert sorted((data["user_id"], data["course_id"]) for data in assigned) == pairs
    assert sorted((data["user_id"], data["course_id"]) for data in enrolled) == pairs
    assert {data["course_title"] for data in enrolled} == set(courses.values())
    assert {(data["cause"], data["actor_id"]) for data in assigned} == {("api", None)}
    assert len({data["assigned_at"] for data in assigned}) == 2  # each batch its own time
