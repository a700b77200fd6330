"""Enrollments, access, progress and completion: the use cases of learning a course."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from enrollment import bulk, certificates, replica
from enrollment.access import Actor
from enrollment.events import publish, stamp
from enrollment.models import (
    ACTIVE,
    PUBLISHED,
    Assignment,
    Course,
    CourseLesson,
    Enrollment,
    EnrollmentSource,
    Grant,
    LessonCompletion,
    Product,
    ProductCourse,
    Program,
    ProgramCourse,
    ProgramMember,
    Quiz,
    QuizAttempt,
    User,
    enrollment_status,
)
from lms_common.api import cursor_params, encode_cursor, past_cursor
from lms_common.contracts import enrollment as contract
from lms_common.db import AnySelect, RawReads, ReadStatement, is_postgres, one_of, utcnow
from lms_common.envelope import Event
from lms_common.errors import Conflict, Forbidden, NotFound

# --- who may learn what ---------------------------------------------------------------------------


def _grant_courses(user_id: Any, org: Any, course_id: str | None = None) -> Any:
    """(course id, grant id) of the courses open to the user through active grants of active products."""
    query = (
        select(ProductCourse.course_id, Grant.id)
        .join(Product, Product.id == ProductCourse.product_id)
        .join(Grant, Grant.product_id == Product.id)
        .where(Product.status == ACTIVE, Grant.status == ACTIVE, Grant.seats.is_(None))
        .where(or_(Grant.user_id == user_id, Grant.organization_id == org))
    )
    return query.where(ProductCourse.course_id == course_id) if course_id else query


def _user_open(session: Session, user_id: str) -> bool:
    user = session.get(User, user_id)
    return user is None or (user.disabled_at is None and user.merged_into is None)


def sources_of(session: Session, enrollment: Enrollment) -> list[str]:
    """The kinds of source that let the user learn this course now (empty: it may not)."""
    course = session.get(Course, enrollment.course_id)
    if course is None or course.status != PUBLISHED or enrollment.access_closed_at is not None:
        return []
    if not _user_open(session, enrollment.user_id):
        return []
    kinds = set(
        session.scalars(
            select(EnrollmentSource.kind).where(
                EnrollmentSource.enrollment_id == enrollment.id,
                EnrollmentSource.active.is_(True),
                EnrollmentSource.kind != "grant",
            )
        )
    )
    if session.execute(_grant_courses(enrollment.user_id, enrollment.org_id, enrollment.course_id).limit(1)).first():
        kinds.add("grant")
    return sorted(kinds)


def open_grant_enrollments(session: Session, user_id: str, org: str) -> set[str]:
    """Create the enrollments a user's grants open and it does not have yet (on first look);
    returns the ids of the courses its grants open."""
    return open_grant_enrollments_of(session, {user_id: org}).get(user_id, set())


def open_grant_enrollments_of(session: Session, org_of: Mapping[str, str]) -> dict[str, set[str]]:
    """:func:`open_grant_enrollments` for many users (each with its organization) in one
    enrollment batch; user id -> the ids of the courses its grants open."""
    opened = _grant_courses_of(session, org_of, _GRANT_COURSES_OF_HOLDERS)
    bulk.enroll(session, _unopened(session, org_of, opened), utcnow())
    return {user_id: {course_id for course_id, _ in rows} for user_id, rows in opened.items()}


def open_new_grants(
    session: Session,
    made: Sequence[tuple[Grant, Sequence[str]]],
    *,
    announced: Sequence[Event] = (),
    titles: Mapping[str, str | None] | None = None,
) -> None:
    """Enroll the holders of user grants just made in the courses each opens (its product's),
    and in what their organizations' grants open that they still lack. ``announced``: the
    grants' own events, written in the outbox before the enrollments' (:func:`bulk.enroll`,
    with ``titles``, the course titles read with the products).

    What :func:`open_grant_enrollments_of` does for their users, without reading their other
    grants: a grant made in this transaction has no enrollment source yet, and each of the
    user's earlier grants opened its courses when it was made or its product turned active.
    Those reads grow with every grant a buyer holds; a purchase then costs the same for the
    first product as for the two-hundredth. A company grant made before its member was known
    here opened nothing to that member, so the organizations' grants are still looked at.
    """
    targets: list[dict[str, str]] = []
    org_of: dict[str, str] = {}
    for grant, course_ids in made:
        if grant.user_id is None:
            continue  # a company grant opens to its members: open_holder_enrollments
        org_of[grant.user_id] = grant.org_id
        targets += [
            {"org_id": grant.org_id, "user_id": grant.user_id, "course_id": course, "kind": "grant", "ref": grant.id}
            for course in course_ids
        ]
    company = _grant_courses_of(session, org_of, _GRANT_COURSES_OF_ORGANIZATIONS)
    bulk.enroll(session, targets + _unopened(session, org_of, company), utcnow(), preceding=announced, titles=titles)


def _unopened(
    session: Session, org_of: Mapping[str, str], opened: Mapping[str, list[tuple[str, str]]]
) -> list[dict[str, str]]:
    """The enrollment targets of ``opened`` (user id -> course id, grant id) without a source yet."""
    if not opened:
        return []
    known = _grant_sources_of(session, list(opened))
    return [
        {"org_id": org_of[user_id], "user_id": user_id, "course_id": course_id, "kind": "grant", "ref": grant_id}
        for user_id, rows in opened.items()
        for course_id, grant_id in rows
        if (user_id, course_id, grant_id) not in known
    ]


def _grant_sources_of(session: Session, user_ids: list[str]) -> set[tuple[str, str, str]]:
    """(user id, course id, grant id) of the users' enrollments opened by a grant.

    Two look-ups by key, the users' enrollments by the unique index (user_id, course_id), then
    their sources by the primary key: as one join, a planner that believes the tables small
    reads every grant source in the table and looks each enrollment up. Each list is one
    parameter, an array on PostgreSQL, so that a buyer holding 200 grants costs no statement
    text of 200 placeholders, rendered and parsed on every purchase.
    """
    postgres = is_postgres(session)
    of_users = bulk.built_once(session, (_enrollments_of_users,), lambda: _enrollments_of_users(postgres))
    enrollments = {
        enrollment_id: (user_id, course_id)
        for enrollment_id, user_id, course_id in session.execute(of_users, {"users": user_ids})
    }
    if not enrollments:
        return set()
    by_grant = bulk.built_once(session, (_grant_sources_among,), lambda: _grant_sources_among(postgres))
    rows = session.execute(by_grant, {"enrollments": list(enrollments)})
    return {(*enrollments[enrollment_id], ref) for enrollment_id, ref in rows}


def _enrollments_of_users(postgres: bool) -> AnySelect:
    return select(Enrollment.id, Enrollment.user_id, Enrollment.course_id).where(
        one_of(Enrollment.user_id, "users", postgres=postgres)
    )


def _grant_sources_among(postgres: bool) -> AnySelect:
    return select(EnrollmentSource.enrollment_id, EnrollmentSource.ref).where(
        one_of(EnrollmentSource.enrollment_id, "enrollments", postgres=postgres), EnrollmentSource.kind == "grant"
    )


def _grant_courses_of(
    session: Session, org_of: Mapping[str, str], holders_query: AnySelect
) -> dict[str, list[tuple[str, str]]]:
    """user id -> (course id, grant id) of what its own and its organization's grants open
    (as :func:`_grant_courses`, for many users in one query); users with nothing left out.
    ``holders_query`` says which grants: the users' and their organizations', or only the latter."""
    if not org_of:
        return {}
    by_user: dict[str | None, list[tuple[str, str]]] = {}
    by_organization: dict[str | None, list[tuple[str, str]]] = {}
    holders = {"users": list(org_of), "organizations": list(set(org_of.values()))}
    for course_id, grant_id, user_id, organization_id in session.execute(holders_query, holders):
        by_user.setdefault(user_id, []).append((course_id, grant_id))
        by_organization.setdefault(organization_id, []).append((course_id, grant_id))
    opened = {
        user_id: list(dict.fromkeys(by_user.get(user_id, []) + by_organization.get(org, [])))
        for user_id, org in org_of.items()
    }
    return {user_id: rows for user_id, rows in opened.items() if rows}


def _active_grant_courses(*holders: ColumnElement[bool]) -> AnySelect:
    """(course id, grant id, user id, organization id) of active grants of active products
    held as ``holders`` say.

    Joined to their product by an expression no index serves, or a planner that believes the
    table small reads every grant of the product through the unique key (org_id, product_id,
    owner_key).
    """
    return (
        select(ProductCourse.course_id, Grant.id, Grant.user_id, Grant.organization_id)
        .join(Product, Product.id == ProductCourse.product_id)
        .join(Grant, Grant.product_id.concat("") == Product.id)
        .where(Product.status == ACTIVE, Grant.status == ACTIVE, Grant.seats.is_(None))
        .where(or_(*holders))
    )


# Read for every batch of UserProvisioned and GrantProduct: built once, their cache keys
# computed once. The grants are found by holder: the users or their organizations.
_HELD_BY_USERS = Grant.user_id.in_(bindparam("users", expanding=True))
_HELD_BY_ORGANIZATIONS = Grant.organization_id.in_(bindparam("organizations", expanding=True))
_GRANT_COURSES_OF_HOLDERS = _active_grant_courses(_HELD_BY_USERS, _HELD_BY_ORGANIZATIONS)
_GRANT_COURSES_OF_ORGANIZATIONS = _active_grant_courses(_HELD_BY_ORGANIZATIONS)


def open_holder_enrollments(session: Session, grant: Grant) -> None:
    """Enroll every holder of an active grant of an active product at once: its user, or every
    current member of its organization (a company grant), so reports count them from the grant
    or the product's activation on rather than from each learner's first look."""
    if grant.status != ACTIVE or grant.seats is not None:
        return  # a purchaser's seats open nothing to the purchaser; its seat grants do
    product = session.get(Product, grant.product_id)
    if product is None or product.status != ACTIVE:
        return  # opened when ProductActivated arrives
    if grant.user_id is not None:
        open_grant_enrollments(session, grant.user_id, grant.org_id)
        return
    organization = grant.organization_id or grant.org_id
    courses = list(session.scalars(select(ProductCourse.course_id).where(ProductCourse.product_id == product.id)))
    members = session.scalars(
        select(User.id).where(User.org_id == organization, User.disabled_at.is_(None), User.merged_into.is_(None))
    )
    rows = [
        {"org_id": organization, "user_id": user_id, "course_id": course_id, "kind": "grant", "ref": grant.id}
        for user_id in members
        for course_id in courses
    ]
    if rows:
        bulk.enroll(session, rows, utcnow(), large=len(rows) > 10_000)


def open_product_enrollments(session: Session, product_id: str) -> None:
    """The product turned active: every active grant of it opens its courses to its holders."""
    for grant in session.scalars(select(Grant).where(Grant.product_id == product_id, Grant.status == ACTIVE)):
        open_holder_enrollments(session, grant)


@dataclass(frozen=True)
class GrantedCourses:
    """The courses a user's grants open, and whether some of them still lack its enrollment."""

    course_ids: set[str]
    unopened: bool


def granted_courses(reads: RawReads, user_id: str, org: str) -> GrantedCourses:
    """What :func:`open_grant_enrollments` would open, read in one query without writing: a
    learner's list is read far more often than a grant is made, so the write is the exception."""
    rows = _GRANTED_COURSES.rows(reads, {"user": user_id, "org": org})
    return GrantedCourses({course_id for course_id, _ in rows}, any(ref is None for _, ref in rows))


def _granted_courses_query(user_id: Any, org: Any) -> AnySelect:
    grants = _grant_courses(user_id, org).subquery()
    opened_by_grant = (
        select(Enrollment.course_id, EnrollmentSource.ref)
        .join(EnrollmentSource, EnrollmentSource.enrollment_id == Enrollment.id)
        .where(Enrollment.user_id == user_id, EnrollmentSource.kind == "grant")
        .subquery()
    )
    return select(grants.c.course_id, opened_by_grant.c.ref).outerjoin(
        opened_by_grant,
        and_(opened_by_grant.c.course_id == grants.c.course_id, opened_by_grant.c.ref == grants.c.id),
    )


MY_COURSE_KEYS = (Enrollment.enrolled_at, Enrollment.id)


def my_course_page(
    reads: RawReads, who: Actor, granted: set[str], limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the courses the caller may learn now, in enrollment order, with its
    enrollment, progress and sources as ``MyCourse`` dumps them, and the next page's cursor;
    ``granted``: the courses its grants in its own organization open (:func:`granted_courses`).

    The same rules as :func:`sources_of`, in one query whatever the number of courses: a
    learner's list is read on every visit to its dashboard. The enrollments after the cursor
    are read whole and those no live source allows left out here, so that every page but the
    last is full; a learner holds tens of courses, rarely hundreds.
    """
    params = {"user": who.user, **cursor_params(MY_COURSE_KEYS, cursor)}
    rows = _MY_ENROLLMENTS[cursor is not None].rows(reads, params)
    granted_in = {who.org: granted}
    for org in {row[1] for row in rows} - set(granted_in):
        granted_in[org] = granted_courses(reads, who.user, org).course_ids
    items: dict[str, dict[str, Any]] = {}
    keys: dict[str, tuple[datetime, str]] = {}
    for enrollment_id, org_id, course_id, progress_percent, completed_at, enrolled_at, title, kind in rows:
        if enrollment_id not in items:
            items[enrollment_id] = {
                "course_id": course_id,
                "title": title,
                "enrollment_id": enrollment_id,
                "progress_percent": progress_percent,
                "status": enrollment_status(progress_percent, completed_at),
                "sources": {"grant"} if course_id in granted_in[org_id] else set(),
            }
            keys[enrollment_id] = (enrolled_at, enrollment_id)
        if kind is not None:
            items[enrollment_id]["sources"].add(kind)
    page = [{**item, "sources": sorted(item["sources"])} for item in items.values() if item["sources"]]
    if len(page) <= limit:
        return page, None
    return page[:limit], encode_cursor(keys[page[limit - 1]["enrollment_id"]])


def _my_enrollments(user_id: Any, *, after: bool) -> AnySelect:
    """The open enrollments in published courses of a user still open, with their titles: one
    row per active source other than a grant (grants are matched against the live grants);
    with ``after``, only those past the cursor (:func:`~lms_common.api.past_cursor`)."""
    user_closed = exists().where(User.id == user_id, or_(User.disabled_at.is_not(None), User.merged_into.is_not(None)))
    other_source = and_(
        EnrollmentSource.enrollment_id == Enrollment.id,
        EnrollmentSource.active.is_(True),
        EnrollmentSource.kind != "grant",
    )
    columns = (Enrollment.id, Enrollment.org_id, Enrollment.course_id, Enrollment.progress_percent)
    query = (
        select(*columns, Enrollment.completed_at, Enrollment.enrolled_at, Course.title, EnrollmentSource.kind)
        .join(Course, Course.id == Enrollment.course_id)
        .outerjoin(EnrollmentSource, other_source)
        .where(Enrollment.user_id == user_id, Course.status == PUBLISHED, Enrollment.access_closed_at.is_(None))
        .where(~user_closed)
        .order_by(*MY_COURSE_KEYS)
    )
    return past_cursor(query, MY_COURSE_KEYS) if after else query


# A learner's course list is read on every visit to its dashboard: its statements are compiled
# once, each request binds only the user, the organization and the cursor (see ReadStatement).
_GRANTED_COURSES = ReadStatement(_granted_courses_query(bindparam("user"), bindparam("org")))
_MY_ENROLLMENTS = {after: ReadStatement(_my_enrollments(bindparam("user"), after=after)) for after in (False, True)}


# --- enrollments ------------------------------------------------------------------------------------


def enroll(session: Session, org: str, user_ids: list[str], course_ids: list[str], *, kind: str, ref: str) -> int:
    """Enroll users in courses for one source in one batch; returns how many enrollments are new."""
    rows = [
        {"org_id": org, "user_id": user, "course_id": course, "kind": kind, "ref": ref}
        for user in user_ids
        for course in course_ids
    ]
    return bulk.enroll(session, rows, utcnow())


def enrollment_of(session: Session, user_id: str, course_id: str) -> Enrollment | None:
    return session.scalar(select(Enrollment).where(bulk.enrollment_of(user_id, course_id)))


def course_in(session: Session, who: Actor, course_id: str) -> Course:
    course = session.get(Course, course_id)
    if course is None or course.org_id not in who.orgs():
        raise NotFound("no such course", code="course_not_found")
    return course


def enrollment_for(session: Session, who: Actor, enrollment_id: str, permission: str) -> Enrollment:
    """An enrollment the caller owns, or one of a user it may act on with ``permission``; else 404."""
    enrollment = session.get(Enrollment, enrollment_id)
    if enrollment is None or enrollment.org_id not in who.orgs():
        raise NotFound("no such enrollment", code="enrollment_not_found")
    if enrollment.user_id != who.user and not who.sees_user(session.get(User, enrollment.user_id), permission):
        raise NotFound("no such enrollment", code="enrollment_not_found")
    return enrollment


def lessons_done(session: Session, enrollment_id: str) -> list[dict[str, Any]]:
    query = (
        select(LessonCompletion.lesson_id, LessonCompletion.completed_at)
        .where(LessonCompletion.enrollment_id == enrollment_id)
        .order_by(LessonCompletion.completed_at)
    )
    return [{"lesson_id": lesson, "completed_at": at} for lesson, at in session.execute(query)]


# --- progress ---------------------------------------------------------------------------------------


def _progress_expression(course_id: str, lesson_count: int) -> Any:
    """Share of the course's current published lessons completed: never above 100 by construction."""
    if lesson_count == 0:
        return 0
    done = (
        select(func.count())
        .select_from(LessonCompletion)
        .join(
            CourseLesson,
            and_(CourseLesson.lesson_id == LessonCompletion.lesson_id, CourseLesson.course_id == course_id),
        )
        .where(LessonCompletion.enrollment_id == Enrollment.id)
        .scalar_subquery()
    )
    return done * 100 / lesson_count


def recompute_course(session: Session, course_id: str) -> int:
    """Recompute every enrollment's progress in a course in one statement; complete those at 100%."""
    course = session.get(Course, course_id)
    count = course.lesson_count if course else 0
    result = cast(
        CursorResult[Any],
        session.execute(
            update(Enrollment)
            .where(Enrollment.course_id == course_id)
            .values(progress_percent=_progress_expression(course_id, count))
            .execution_options(synchronize_session=False)
        ),
    )
    complete_reached(session, course_id)
    return int(result.rowcount or 0)


def recompute_one(session: Session, enrollment: Enrollment) -> None:
    course = session.get(Course, enrollment.course_id)
    count = course.lesson_count if course else 0
    session.execute(
        update(Enrollment)
        .where(Enrollment.id == enrollment.id)
        .values(progress_percent=_progress_expression(enrollment.course_id, count))
        .execution_options(synchronize_session=False)
    )
    session.refresh(enrollment, ["progress_percent"])


def complete_reached(session: Session, course_id: str) -> None:
    """Complete the enrollments a recompute brought to 100% (a lesson removed, say)."""
    query = select(Enrollment).where(
        Enrollment.course_id == course_id,
        Enrollment.progress_percent >= 100,
        Enrollment.completed_at.is_(None),
        Enrollment.access_closed_at.is_(None),
    )
    for enrollment in session.scalars(query.execution_options(populate_existing=True)):
        complete_course(session, enrollment)


# --- completing lessons -----------------------------------------------------------------------------


def complete_lesson(session: Session, who: Actor, enrollment_id: str, lesson_id: str) -> Enrollment:
    """A learner completes a published, non-quiz lesson of a course it may learn now."""
    enrollment = enrollment_for(session, who, enrollment_id, permission="")
    if enrollment.user_id != who.user:
        raise Forbidden("only the learner completes its lessons", code="not_your_enrollment")
    check_may_learn(session, enrollment)
    if session.get(CourseLesson, (enrollment.course_id, lesson_id)) is None:
        raise NotFound("no such published lesson in this course", code="lesson_not_found")
    if session.scalar(select(Quiz.id).where(Quiz.lesson_id == lesson_id)):
        raise Conflict("a quiz lesson completes through a passing attempt", code="quiz_required")
    record_lesson(session, enrollment, lesson_id)
    return enrollment


def check_may_learn(session: Session, enrollment: Enrollment) -> None:
    """403 unless a source lets the user learn the course now; 409 when program order forbids it."""
    if not sources_of(session, enrollment):
        raise Forbidden("you may not learn this course now", code="not_entitled")
    check_course_order(session, enrollment.user_id, enrollment.course_id)


def check_course_order(session: Session, user_id: str, course_id: str) -> None:
    """409 ``course_locked`` while an earlier course of an ordered program is incomplete."""
    programs = (
        select(ProgramCourse.program_id, ProgramCourse.position)
        .where(ProgramCourse.course_id == course_id)
        .join(Program, Program.id == ProgramCourse.program_id)
        .join(ProgramMember, ProgramMember.program_id == Program.id)
        .where(Program.enforce_course_order.is_(True), ProgramMember.user_id == user_id)
        .where(ProgramMember.removed_at.is_(None))
    )
    for program_id, position in session.execute(programs).all():
        earlier = select(ProgramCourse.course_id).where(
            ProgramCourse.program_id == program_id, ProgramCourse.position < position
        )
        done = select(Enrollment.course_id).where(Enrollment.user_id == user_id, Enrollment.completed_at.is_not(None))
        blocking = session.scalar(earlier.where(ProgramCourse.course_id.not_in(done)).limit(1))
        if blocking:
            raise Conflict(
                "complete the earlier courses of the program first", code="course_locked", blocking_course_id=blocking
            )


def record_lesson(session: Session, enrollment: Enrollment, lesson_id: str) -> None:
    """Note the lesson complete (once), recompute progress, and complete the course at 100%."""
    if session.get(LessonCompletion, (enrollment.id, lesson_id)) is not None:
        return
    now = utcnow()
    session.add(LessonCompletion(enrollment_id=enrollment.id, lesson_id=lesson_id, completed_at=now))
    session.flush()
    recompute_one(session, enrollment)
    payload = {
        "enrollment_id": enrollment.id,
        "org_id": enrollment.org_id,
        "user_id": enrollment.user_id,
        "course_id": enrollment.course_id,
        "lesson_id": lesson_id,
        "progress_percent": enrollment.progress_percent,
        "completed_at": stamp(now),
    }
    publish(session, contract.LESSON_COMPLETED, enrollment.org_id, payload)
    if enrollment.progress_percent >= 100 and enrollment.completed_at is None:
        complete_course(session, enrollment)


# --- completing courses and programs ----------------------------------------------------------------


def _best_score(session: Session, enrollment_id: str) -> int | None:
    return session.scalar(
        select(func.max(QuizAttempt.score_percent)).where(
            QuizAttempt.enrollment_id == enrollment_id, QuizAttempt.passed.is_(True)
        )
    )


def complete_course(session: Session, enrollment: Enrollment) -> None:
    """The course is complete: certificate, CourseCompleted, assignments and programs follow."""
    now = utcnow()
    enrollment.completed_at = now
    course = session.get(Course, enrollment.course_id)
    title = course.title if course else ""
    certificate = certificates.issue(
        session, enrollment.org_id, enrollment.user_id, title, course_id=course.id if course else enrollment.course_id
    )
    payload = {
        "enrollment_id": enrollment.id,
        "org_id": enrollment.org_id,
        "user_id": enrollment.user_id,
        "course_id": enrollment.course_id,
        "course_title": title,
        "sources": sources_of(session, enrollment) or [enrollment.first_source],
        "enrolled_at": stamp(enrollment.enrolled_at),
        "completed_at": stamp(now),
        "score_percent": _best_score(session, enrollment.id),
        "certificate_id": certificate.id,
        "verification_code": certificate.verification_code,
    }
    publish(session, contract.COURSE_COMPLETED, enrollment.org_id, payload)
    complete_assignments(session, enrollment.user_id, enrollment.course_id, now)
    for member in _memberships_with(session, enrollment.user_id, enrollment.course_id):
        maybe_complete_program(session, member, now)


def _memberships_with(session: Session, user_id: str, course_id: str) -> list[ProgramMember]:
    query = (
        select(ProgramMember)
        .join(ProgramCourse, ProgramCourse.program_id == ProgramMember.program_id)
        .where(ProgramMember.user_id == user_id, ProgramCourse.course_id == course_id)
        .where(ProgramMember.removed_at.is_(None), ProgramMember.completed_at.is_(None))
    )
    return list(session.scalars(query))


def program_course_completions(session: Session, program_id: str, user_id: str) -> dict[str, datetime | None]:
    query = (
        select(ProgramCourse.course_id, Enrollment.completed_at)
        .outerjoin(Enrollment, and_(Enrollment.course_id == ProgramCourse.course_id, Enrollment.user_id == user_id))
        .where(ProgramCourse.program_id == program_id)
        .order_by(ProgramCourse.position)
    )
    return {course: at for course, at in session.execute(query)}


def maybe_complete_program(session: Session, member: ProgramMember, now: datetime) -> None:
    done = program_course_completions(session, member.program_id, member.user_id)
    if not done or any(at is None for at in done.values()):
        return
    program = session.get(Program, member.program_id)
    title = program.title if program else ""
    member.completed_at = now
    certificate = certificates.issue(session, member.org_id, member.user_id, title, program_id=member.program_id)
    payload = {
        "program_id": member.program_id,
        "org_id": member.org_id,
        "user_id": member.user_id,
        "program_title": title,
        "course_ids": list(done),
        "course_completed_at": {course: stamp(at) for course, at in done.items()},
        "added_at": stamp(member.added_at),
        "completed_at": stamp(now),
        "certificate_id": certificate.id,
        "verification_code": certificate.verification_code,
    }
    publish(session, contract.PROGRAM_COMPLETED, member.org_id, payload)
    complete_assignments(session, member.user_id, member.program_id, now)


def complete_assignments(session: Session, user_id: str, target_id: str, now: datetime) -> None:
    """Open assignments of this course or program are complete (late when past their due date)."""
    query = select(Assignment).where(
        Assignment.user_id == user_id, Assignment.target_id == target_id, Assignment.completed_at.is_(None)
    )
    for assignment in session.scalars(query):
        assignment.completed_at = now
        late = replica.local_today(session, assignment.org_id, now) > assignment.due_on
        payload = {**assignment_fields(assignment), "completed_at": stamp(now), "late": late}
        publish(session, contract.ASSIGNMENT_COMPLETED, assignment.org_id, payload)


def assignment_fields(assignment: Assignment) -> dict[str, Any]:
    return {
        "assignment_id": assignment.id,
        "org_id": assignment.org_id,
        "user_id": assignment.user_id,
        "course_id": assignment.course_id,
        "program_id": assignment.program_id,
        "title": assignment.title,
        "due_on": stamp(assignment.due_on),
        "mandatory": assignment.mandatory,
        "cycle": assignment.cycle,
    }
