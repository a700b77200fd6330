"""The local replicas of catalog and identity, kept from their events.

Catalog events carry the whole aggregate and its ``version``: an event whose version is not
higher than the one kept is dropped (late delivery). Identity's profile events carry no
version, so the event time plays that part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from enrollment.models import (
    Cohort,
    Course,
    CourseLesson,
    Location,
    Product,
    ProductCourse,
    Program,
    ProgramCourse,
    Quiz,
    User,
)

M = TypeVar("M", Course, Product, Program, Quiz, Cohort)


def _newer(session: Session, model: type[M], ident: str, version: int) -> M | None:
    """The row to update (created when new), or None when ``version`` is not newer than kept."""
    row = session.get(model, ident, with_for_update=True)
    if row is None:
        row = model(id=ident, version=version)
        session.add(row)
        return row
    if version <= row.version:
        return None
    row.version = version
    return row


def _replace_links(session: Session, model: Any, owner: str, owner_id: str, ids: Sequence[str]) -> None:
    session.execute(delete(model).where(getattr(model, owner) == owner_id))
    if ids:
        rows = [
            {owner: owner_id, "course_id": course_id, "position": i} for i, course_id in enumerate(dict.fromkeys(ids))
        ]
        session.execute(insert(model), rows)


def course_lesson_ids(session: Session, course_id: str) -> list[str]:
    query = select(CourseLesson.lesson_id).where(CourseLesson.course_id == course_id).order_by(CourseLesson.position)
    return list(session.scalars(query))


def upsert_course(session: Session, org: str, data: Mapping[str, Any]) -> bool | None:
    """Keep the course; True when its published lesson set changed, None for a stale event."""
    course = _newer(session, Course, data["course_id"], data["version"])
    if course is None:
        return None
    course.org_id, course.title, course.status = org, data["title"], data["status"]
    lessons = list(dict.fromkeys(data["lesson_ids"]))
    before = course_lesson_ids(session, course.id)
    course.lesson_count = len(lessons)
    if before == lessons:
        return False
    session.execute(delete(CourseLesson).where(CourseLesson.course_id == course.id))
    if lessons:
        rows = [{"course_id": course.id, "lesson_id": lesson, "position": i} for i, lesson in enumerate(lessons)]
        session.execute(insert(CourseLesson), rows)
    return set(before) != set(lessons)


def upsert_product(session: Session, org: str, data: Mapping[str, Any]) -> Product | None:
    product = _newer(session, Product, data["product_id"], data["version"])
    if product is None:
        return None
    product.org_id, product.title, product.status = org, data["title"], data["status"]
    _replace_links(session, ProductCourse, "product_id", product.id, data["course_ids"])
    return product


def upsert_program(session: Session, org: str, data: Mapping[str, Any]) -> list[str] | None:
    """Keep the program; the course ids it gained (members need enrollments), None when stale."""
    program = _newer(session, Program, data["program_id"], data["version"])
    if program is None:
        return None
    program.org_id, program.title = org, data["title"]
    program.published, program.enforce_course_order = data["published"], data["enforce_course_order"]
    before = set(session.scalars(select(ProgramCourse.course_id).where(ProgramCourse.program_id == program.id)))
    _replace_links(session, ProgramCourse, "program_id", program.id, data["course_ids"])
    return [course_id for course_id in data["course_ids"] if course_id not in before]


def upsert_quiz(session: Session, org: str, data: Mapping[str, Any]) -> None:
    quiz = _newer(session, Quiz, data["quiz_id"], data["version"])
    if quiz is not None:
        quiz.org_id, quiz.lesson_id, quiz.course_id = org, data["lesson_id"], data["course_id"]
        quiz.pass_percent, quiz.max_attempts = data["pass_percent"], data["max_attempts"]
        quiz.questions = list(data["questions"])


def upsert_cohort(session: Session, org: str, data: Mapping[str, Any]) -> None:
    cohort = _newer(session, Cohort, data["cohort_id"], data["version"])
    if cohort is not None:
        cohort.org_id, cohort.title, cohort.course_ids = org, data["title"], list(data["course_ids"])


def upsert_user(session: Session, data: Mapping[str, Any], at: datetime) -> User | None:
    """Keep a user's profile as of ``at``; None when a newer profile is already kept."""
    user = session.get(User, data["user_id"], with_for_update=True)
    if user is None:
        user = User(id=data["user_id"], updated_at=at)
        session.add(user)
    elif at < user.updated_at:
        return None
    user.org_id, user.email, user.updated_at = data["org_id"], data["email"].lower(), at
    for field in ("first_name", "last_name", "location_id", "department"):
        if field in data:
            setattr(user, field, data[field] or (None if field in ("location_id", "department") else ""))
    session.flush()
    return user


def add_location(session: Session, data: Mapping[str, Any]) -> None:
    location = session.get(Location, data["location_id"])
    if location is None:
        session.add(
            Location(id=data["location_id"], org_id=data["org_id"], parent_id=data["parent_id"], name=data["name"])
        )


def location_tree(session: Session, org: str, root: str) -> set[str]:
    """``root`` and all its descendants (the tree is small: walked in memory)."""
    children: dict[str | None, list[str]] = {}
    for ident, parent in session.execute(select(Location.id, Location.parent_id).where(Location.org_id == org)):
        children.setdefault(parent, []).append(ident)
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def find_user_by_email(session: Session, org: str, email: str) -> User | None:
    query = select(User).where(User.email == email.lower(), User.merged_into.is_(None))
    users = list(session.scalars(query))
    same_org = [user for user in users if user.org_id == org]
    nobody: list[User | None] = [None]
    return (same_org or users or nobody)[0]
