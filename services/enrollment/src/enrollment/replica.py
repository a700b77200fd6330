"""The local replicas of catalog and identity, kept from their events.

Catalog events carry the whole aggregate and its ``version``: an event whose version is not
higher than the one kept is dropped (late delivery). Identity's profile events carry no
version, so the event time plays that part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session

from enrollment.models import (
    Cohort,
    Course,
    CourseLesson,
    Location,
    Organization,
    Product,
    ProductCourse,
    Program,
    ProgramCourse,
    Quiz,
    User,
)
from lms_common.db import insert_rows
from lms_common.envelope import parse_time

M = TypeVar("M", Course, Product, Program, Quiz, Cohort)
UTC_ZONE = ZoneInfo("UTC")


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


def upsert_cohort(session: Session, org: str, data: Mapping[str, Any]) -> tuple[list[str], list[str]] | None:
    """Keep the cohort; the course ids it gained and lost (for its members), None when stale."""
    cohort = _newer(session, Cohort, data["cohort_id"], data["version"])
    if cohort is None:
        return None
    before, after = list(cohort.course_ids or []), list(dict.fromkeys(data["course_ids"]))
    cohort.org_id, cohort.title, cohort.course_ids, cohort.seats = org, data["title"], after, data["seats"]
    cohort.instructor_ids, cohort.ends_on = list(data["instructor_ids"]), date.fromisoformat(data["ends_on"])
    return [c for c in after if c not in before], [c for c in before if c not in after]


def upsert_user(session: Session, data: Mapping[str, Any], at: datetime) -> User | None:
    """Keep a user's profile as of ``at``; None when a newer profile is already kept."""
    user = _keep_profile(session, session.get(User, data["user_id"], with_for_update=True), data, at)
    session.flush()
    return user


def provision_user(session: Session, data: Mapping[str, Any], at: datetime) -> bool:
    """Keep the profile of identity's UserProvisioned (as :func:`upsert_user`) and note the
    user provisioned; whether it is the first time (new here, or kept from a UserUpdated alone)."""
    user = session.get(User, data["user_id"], with_for_update=True)
    first = user is None or user.provisioned_at is None
    user = _keep_profile(session, user, data, at) or user
    if user is not None and first:
        user.provisioned_at = at
    session.flush()
    return first


def provision_users(session: Session, profiles: Sequence[tuple[Mapping[str, Any], datetime]]) -> set[str]:
    """:func:`provision_user` for many profiles: the kept users read in one statement, the new
    ones inserted in one (a burst of onboardings brings a hundred new users a batch); the ids
    provisioned for the first time."""
    ids = {data["user_id"] for data, _ in profiles}
    kept = {user.id: user for user in session.scalars(select(User).where(User.id.in_(ids)).with_for_update())}
    first = {user_id for user_id in ids if user_id not in kept or kept[user_id].provisioned_at is None}
    new: dict[str, dict[str, Any]] = {}
    for data, at in profiles:
        user_id = data["user_id"]
        if user_id in kept:
            _keep_profile(session, kept[user_id], data, at)
            if kept[user_id].provisioned_at is None:
                kept[user_id].provisioned_at = at
        elif user_id not in new or at >= new[user_id]["updated_at"]:
            new[user_id] = _profile(new.get(user_id) or _blank(user_id), data, at)
            new[user_id]["provisioned_at"] = new[user_id]["provisioned_at"] or at
    if new:
        insert_rows(session, User.__table__, list(new.values()))
    session.flush()
    return first


def _keep_profile(session: Session, user: User | None, data: Mapping[str, Any], at: datetime) -> User | None:
    if user is None:
        user = User(id=data["user_id"], updated_at=at)
        session.add(user)
    elif at < user.updated_at:
        return None
    for field, value in _profile({}, data, at).items():
        setattr(user, field, value)
    return user


def _blank(user_id: str) -> dict[str, Any]:
    """A new user's row before its profile: what the columns default to."""
    return {"id": user_id, "first_name": "", "last_name": "", "location_id": None, "department": None,
            "disabled_at": None, "merged_into": None, "provisioned_at": None}  # fmt: skip


def _profile(row: dict[str, Any], data: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    """``row`` with the profile's fields as of ``at``; a field the profile leaves out is kept."""
    row = {**row, "org_id": data["org_id"], "email": data["email"].lower(), "updated_at": at}
    for field in ("first_name", "last_name", "location_id", "department"):
        if field in data:
            row[field] = data[field] or (None if field in ("location_id", "department") else "")
    return row


def upsert_organization(session: Session, data: Mapping[str, Any]) -> None:
    """Keep an organization's time zone as of its ``updated_at`` (a late, older event is dropped)."""
    at = parse_time(data["updated_at"])
    org = session.get(Organization, data["org_id"], with_for_update=True)
    if org is None:
        session.add(Organization(id=data["org_id"], time_zone=data["time_zone"], updated_at=at))
    elif at >= org.updated_at:
        org.time_zone, org.updated_at = data["time_zone"], at


def time_zone(session: Session, org: str) -> ZoneInfo:
    """The organization's time zone; UTC until identity has told us (or for a name unknown here)."""
    row = session.get(Organization, org)
    try:
        return ZoneInfo(row.time_zone) if row is not None else UTC_ZONE
    except (ValueError, ZoneInfoNotFoundError):
        return UTC_ZONE


def local_today(session: Session, org: str, now: datetime) -> date:
    """The date it is at ``now`` in the organization's time zone."""
    return now.astimezone(time_zone(session, org)).date()


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
    return pick_user(users_by_email(session, [email]).get(email.lower(), []), org)


def users_by_email(session: Session, emails: list[str]) -> dict[str, list[User]]:
    """The users (not merged away) holding each of these emails, in any organization."""
    found: dict[str, list[User]] = {}
    if emails:
        for user in session.scalars(_USERS_BY_EMAIL, {"emails": list({email.lower() for email in emails})}):
            found.setdefault(user.email, []).append(user)
    return found


# Looked up for every batch of commands: built once, its cache key computed once.
_USERS_BY_EMAIL = select(User).where(User.email.in_(bindparam("emails", expanding=True)), User.merged_into.is_(None))


def pick_user(users: list[User], org: str) -> User | None:
    """The organization's own user with an email, else anyone's."""
    same_org = [user for user in users if user.org_id == org]
    chosen = same_org or users
    return chosen[0] if chosen else None
