"""Mandatory training assignments and program membership, set-based for any number of users.

``assign`` inserts one assignment per (user, course or program) with ``INSERT ... SELECT`` from
the user replica, then the enrollments and every event, in a handful of statements whatever
the number of users. Re-assigning what a user completed opens the next cycle; an open
assignment of the same course or program is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from enrollment import bulk, replica
from enrollment.events import publish_many, stamp
from enrollment.learning import assignment_fields, enroll
from enrollment.models import (
    Assignment,
    Course,
    Enrollment,
    LessonCompletion,
    Program,
    ProgramCourse,
    ProgramMember,
    User,
)
from lms_common.contracts import enrollment as contract
from lms_common.db import UTCDateTime, is_postgres, new_id, unnested, unnested_values, utcnow
from lms_common.errors import NotFound

# --- whom -------------------------------------------------------------------------------------------


def users_query(
    org: str, user_ids: list[str] | None, locations: set[str] | None, department: str | None
) -> Select[Any]:
    """The ids of the org's active users chosen by ids, by locations and/or by department."""
    query = select(User.id).where(User.org_id == org, User.disabled_at.is_(None), User.merged_into.is_(None))
    if user_ids is not None:
        query = query.where(User.id.in_(user_ids))
    if locations is not None:
        query = query.where(User.location_id.in_(locations))
    if department is not None:
        query = query.where(User.department == department)
    return query


_COURSES_BY_ID = select(Course.id, Course.org_id, Course.title).where(Course.id.in_(bindparam("ids", expanding=True)))
_PROGRAMS_BY_ID = select(Program.id, Program.org_id, Program.title).where(
    Program.id.in_(bindparam("ids", expanding=True))
)


def items_for(session: Session, orgs: set[str], course_ids: list[str], program_ids: list[str]) -> list[dict[str, Any]]:
    """The courses and programs to assign, from the replica (one read each); 404 for an unknown one."""
    items = []
    courses = _by_id(session, _COURSES_BY_ID, course_ids)
    for course_id in dict.fromkeys(course_ids):
        course = courses.get(course_id)
        if course is None or course.org_id not in orgs:
            raise NotFound(f"no such course {course_id}", code="course_not_found")
        items.append({"course_id": course.id, "program_id": None, "title": course.title})
    programs = _by_id(session, _PROGRAMS_BY_ID, program_ids)
    for program_id in dict.fromkeys(program_ids):
        program = programs.get(program_id)
        if program is None or program.org_id not in orgs:
            raise NotFound(f"no such program {program_id}", code="program_not_found")
        items.append({"course_id": None, "program_id": program.id, "title": program.title})
    return items


def _by_id(session: Session, statement: Select[str, str, str], ids: list[str]) -> dict[str, Any]:
    return {row.id: row for row in session.execute(statement, {"ids": list(set(ids))})} if ids else {}


@dataclass(frozen=True)
class Batch:
    """What one assignment call created: its assignments (``batch_id``) and new enrollments."""

    id: str
    assignments: int
    enrollments: int

    def as_result(self) -> dict[str, Any]:
        return {"batch_id": self.id, "assignments": self.assignments, "enrollments": self.enrollments}


# --- assigning ----------------------------------------------------------------------------------------


def assign(
    session: Session,
    org: str,
    users: Select[Any] | CommandPairs,
    items: list[dict[str, Any]],
    *,
    due_on: date,
    mandatory: bool,
    cycle: int | None = None,
    natural_key: str | None = None,
    actor_id: str | None = None,
    cause: str = "api",
) -> Batch:
    """Assign every item to every user of ``users``; the batch of new rows and their counts.

    Every statement reads the batch's rows by ``batch_id`` and looks up older rows by key, one
    index probe per row (:func:`bulk.by_index`): no plan depends on fresh statistics, so a
    batch needs no ``ANALYZE`` (which would also make chunks running side by side wait for each
    other's table lock).
    """
    batch, now = new_id(), utcnow()
    bulk.without_jit(session)
    with bulk.by_index(session):
        created = _insert_assignments(
            session, org, users, items, due_on=due_on, mandatory=mandatory, cycle=cycle,
            natural_key=natural_key, batch=batch, now=now,
        )  # fmt: skip
        _reset_recertified(session, batch)
        enrolled = 0
        program_ids = [item["program_id"] for item in items if item["program_id"]]
        for program in program_ids:
            members = select(Assignment.user_id).where(Assignment.batch_id == batch, Assignment.program_id == program)
            enrolled += _join_program(session, org, members, program, actor_id=actor_id, cause=cause)[1]
        enrolled += bulk.enroll_assigned(session, batch, now)
        params = {"batch_id": batch, "assigned_at": stamp(now), "actor_id": actor_id, "cause": cause}
        bulk.insert_events(session, contract.ASSIGNMENT_CREATED, _assignments_created, params, now)
    return Batch(batch, created, enrolled)


ITEM_COLUMNS = [("course_id", String()), ("program_id", String()), ("target_id", String()), ("title", String())]
PAIR_COLUMNS = [("user_id", String()), ("target_id", String()), ("natural_key", String())]


@dataclass(frozen=True)
class CommandPairs:
    """The (user, target, natural key) triples a run of AssignMandatoryTraining names: each pair
    is assigned under its own command's key, if the user is one of the org's active users."""

    rows: list[tuple[str, str, str]]


def _insert_assignments(
    session: Session,
    org: str,
    users: Select[Any] | CommandPairs,
    items: list[dict[str, Any]],
    *,
    due_on: date,
    mandatory: bool,
    cycle: int | None,
    natural_key: str | None,
    batch: str,
    now: datetime,
) -> int:
    """One ``INSERT ... SELECT`` of every (user, item) pair (the users are read once, not per
    item), or of the pairs of a run of commands; how many it inserted.

    On PostgreSQL a run of commands, the path of every onboarding, takes its pairs and items as
    arrays into a statement built once (:func:`bulk.built_once`)."""
    targets = {item["course_id"] or item["program_id"]: item for item in items}  # one row per target
    if not targets:
        return 0
    item_rows = [(item["course_id"], item["program_id"], target, item["title"]) for target, item in targets.items()]
    params = {
        "org": org, "due_on": due_on, "mandatory": mandatory, "cycle": cycle, "natural_key": natural_key,
        "batch_id": batch, "created_at": now, "id_prefix": bulk.uuid7_prefix(),
    }  # fmt: skip
    given_cycle = cycle is not None
    if isinstance(users, CommandPairs) and is_postgres(session):
        statement = bulk.built_once(
            session,
            ("command assignments", given_cycle),
            lambda: _assignments_insert(
                session, _active(unnested("keyed", PAIR_COLUMNS)), unnested("items", ITEM_COLUMNS), given_cycle
            ),
        )
        params |= unnested_values("keyed", PAIR_COLUMNS, users.rows) | unnested_values("items", ITEM_COLUMNS, item_rows)
    else:
        chosen = _rows_table("items", ITEM_COLUMNS, item_rows)
        if isinstance(users, CommandPairs):
            chosen_users = _active(_rows_table("keyed", PAIR_COLUMNS, users.rows))
        else:
            chosen_users = users.subquery()
        statement = _assignments_insert(session, chosen_users, chosen, given_cycle)
    return bulk.insert_fresh(session, statement, params)


def _rows_table(name: str, columns: list[tuple[str, Any]], rows: list[tuple[Any, ...]]) -> Any:
    """``rows`` as a table of literals (SQLite has no arrays, nor VALUES with column names)."""
    selects = (
        select(*(literal(item, type_).label(column) for item, (column, type_) in zip(row, columns, strict=True)))
        for row in rows
    )
    return union_all(*selects).subquery(name)


def _active(keyed: Any) -> Any:
    """The org's (parameter ``org``) active users of the pairs ``keyed``, one row per pair with its key."""
    return (
        select(User.id, keyed.c.target_id, keyed.c.natural_key)
        .join(keyed, keyed.c.user_id == User.id)
        .where(User.org_id == bindparam("org", type_=String), User.disabled_at.is_(None), User.merged_into.is_(None))
    ).subquery("users")


def _assignments_insert(session: Session, users: Any, chosen: Any, given_cycle: bool) -> Any:
    """The insert of :func:`_insert_assignments`, of the pairs of ``users`` (a subquery of user
    ``id``, and ``target_id`` and ``natural_key`` for commands) and the items ``chosen``; the
    rest are parameters (``org``, ``due_on``, ``mandatory``, ``cycle``, ``natural_key``,
    ``batch_id``, ``created_at``, ``id_prefix``)."""
    # Each (user, item) pair reads its own earlier cycles through the unique index (user_id,
    # target_id, cycle), in a correlated scalar subquery evaluated once per pair: a join or
    # EXISTS may be planned as a hash join reading every assignment of the items (more per chunk
    # as the table grows), and a condition on completed_at would let the planner, when the
    # table's statistics are missing, pick the partial index of open assignments and read all of
    # them for each pair. The subquery's value is the pair's next cycle, NULL when it is skipped.
    a = Assignment
    earlier = and_(a.user_id == users.c.id, a.target_id == chosen.c.target_id)
    if not given_cycle:  # the cycle after the last, unless one is still open
        is_open = func.max(case((a.completed_at.is_(None), 1), else_=0)) == 1
        next_cycle: Any = case((is_open, None), else_=func.coalesce(func.max(a.cycle), 0) + 1)
    else:  # the command's own cycle, unless it or a later one exists
        cycle = bindparam("cycle", type_=Integer)
        next_cycle = case((func.max(a.cycle) >= cycle, None), else_=cycle)
    # OFFSET 0 keeps PostgreSQL from pulling the subquery up, which would evaluate the lookup
    # twice per pair (in the filter and in the inserted row).
    # Commands name their own (user, target) pairs; the API gives every item to every user.
    paired = "target_id" in users.c
    user_columns = [c for c in users.c if c.name != "target_id"]
    pairs = (
        select(*user_columns, chosen, select(next_cycle).where(earlier).scalar_subquery().label("next_cycle"))
        .select_from(users.join(chosen, users.c.target_id == chosen.c.target_id if paired else true()))
        .offset(0)
        .subquery("pairs")
    )
    rows = select(
        bulk.ordered_uuid(session, bindparam("id_prefix", type_=String)),
        bindparam("org", type_=String),
        pairs.c.id,
        pairs.c.course_id,
        pairs.c.program_id,
        pairs.c.target_id,
        pairs.c.title,
        bindparam("due_on", type_=Date),
        bindparam("mandatory", type_=Boolean),
        pairs.c.next_cycle,
        # A run of commands names each pair's own key.
        pairs.c.natural_key if "natural_key" in users.c else bindparam("natural_key", type_=String),
        bindparam("created_at", type_=UTCDateTime),
        bindparam("batch_id", type_=String),
    ).where(pairs.c.next_cycle.is_not(None))
    columns = [
        "id", "org_id", "user_id", "course_id", "program_id", "target_id", "title", "due_on", "mandatory",
        "cycle", "natural_key", "created_at", "batch_id",
    ]  # fmt: skip
    return bulk.fresh_insert(session, Assignment.__table__, columns, rows)


def _reset_recertified(session: Session, batch: str) -> None:
    """A new cycle of a completed course starts it over; the old completion stays in its assignment
    and certificate."""
    a, e = Assignment, Enrollment
    completed = select(e.id).where(bulk.enrollment_of(a.user_id, a.course_id), e.completed_at.is_not(None))
    reopened = select(completed.scalar_subquery()).where(a.batch_id == batch, a.cycle > 1, a.course_id.is_not(None))
    ids = [enrollment for enrollment in session.scalars(reopened) if enrollment is not None]
    if ids:
        session.execute(delete(LessonCompletion).where(LessonCompletion.enrollment_id.in_(ids)))
        session.execute(
            update(Enrollment).where(Enrollment.id.in_(ids)).values(completed_at=None, progress_percent=0)
            .execution_options(synchronize_session=False)
        )  # fmt: skip


def _assignments_created(session: Session) -> Select[Any]:
    """AssignmentCreated of each assignment of a batch, from the bound parameters ``batch_id``,
    ``assigned_at``, ``actor_id`` and ``cause`` (see :func:`bulk.insert_events`)."""
    a = Assignment
    sqlite = session.get_bind().dialect.name == "sqlite"
    data = bulk.json_object(
        session,
        {
            "assignment_id": a.id,
            "org_id": a.org_id,
            "user_id": a.user_id,
            "course_id": a.course_id,
            "program_id": a.program_id,
            "title": a.title,
            "due_on": a.due_on if sqlite else func.to_char(a.due_on, "YYYY-MM-DD"),
            "mandatory": func.json(case((a.mandatory, "true"), else_="false")) if sqlite else a.mandatory,
            "cycle": a.cycle,
            "assigned_at": bindparam("assigned_at", type_=String),
            "actor_id": bindparam("actor_id", type_=String),
            "cause": bindparam("cause", type_=String),
        },
    )
    batch = a.batch_id == bindparam("batch_id", type_=String)
    return select(a.id.label("event_id"), a.org_id.label("orgid"), data.label("data")).where(batch)


def created(session: Session, batch: str) -> list[Assignment]:
    return list(session.scalars(select(Assignment).where(Assignment.batch_id == batch).order_by(Assignment.user_id)))


# --- programs -------------------------------------------------------------------------------------------


def add_members(
    session: Session, org: str, users: Select[Any], program_id: str, *, actor_id: str | None = None, cause: str = "api"
) -> list[str]:
    """Make users members of a program (again, if they left) and enroll them in its courses;
    the users who were not members."""
    return _join_program(session, org, users, program_id, actor_id=actor_id, cause=cause)[0]


def _join_program(
    session: Session, org: str, users: Select[Any], program_id: str, *, actor_id: str | None, cause: str
) -> tuple[list[str], int]:
    """:func:`add_members`, also counting the enrollments it created."""
    ids = list(dict.fromkeys(session.scalars(users)))
    program = session.get(Program, program_id)
    now = utcnow()
    members = select(ProgramMember.user_id, ProgramMember.removed_at).where(
        ProgramMember.program_id == program_id, ProgramMember.user_id.in_(ids)
    )
    current = {user: removed for user, removed in session.execute(members)}
    new = [user for user in ids if user not in current or current[user] is not None]
    for user in new:
        if user in current:
            session.execute(
                update(ProgramMember).where(ProgramMember.program_id == program_id, ProgramMember.user_id == user)
                .values(removed_at=None, added_at=now)
            )  # fmt: skip
        else:
            session.add(ProgramMember(program_id=program_id, user_id=user, org_id=org, added_at=now))
    session.flush()
    courses = program_course_ids(session, program_id)
    enrolled = enroll(session, org, ids, courses, kind="program", ref=program_id)
    payloads = [
        {"program_id": program_id, "org_id": org, "user_id": user, "program_title": program.title if program else "",
         "course_ids": courses, "added_at": stamp(now), "actor_id": actor_id, "cause": cause}
        for user in new
    ]  # fmt: skip
    publish_many(session, contract.PROGRAM_MEMBER_ADDED, org, payloads)
    return new, enrolled


def program_course_ids(session: Session, program_id: str) -> list[str]:
    query = (
        select(ProgramCourse.course_id).where(ProgramCourse.program_id == program_id).order_by(ProgramCourse.position)
    )
    return list(session.scalars(query))


# --- status and the overdue sweep ------------------------------------------------------------------------


def status_of(assignment: Assignment, progress: int | None, today: date) -> str:
    if assignment.completed_at is not None:
        return "completed"
    if assignment.due_on < today:
        return "overdue"
    return "in_progress" if progress else "assigned"


def sweep_overdue(session: Session, now: datetime) -> int:
    """AssignmentOverdue once per assignment that passed its due date incomplete, each judged by
    the date in its organization's time zone (run it hourly: days begin at different hours)."""
    # No time zone is a day or more ahead of UTC: nothing due from tomorrow (UTC) on is overdue.
    horizon = now.astimezone(UTC).date() + timedelta(days=1)
    unswept = and_(
        Assignment.completed_at.is_(None), Assignment.overdue_published_at.is_(None), Assignment.due_on < horizon
    )
    orgs = list(session.scalars(select(Assignment.org_id).where(unswept).distinct()))
    return sum(_sweep_org(session, org, replica.local_today(session, org, now), now) for org in orgs)


def _sweep_org(session: Session, org: str, today: date, now: datetime) -> int:
    query = (
        select(Assignment)
        .where(Assignment.org_id == org, Assignment.completed_at.is_(None), Assignment.due_on < today)
        .where(Assignment.overdue_published_at.is_(None))
        .with_for_update(skip_locked=True)
    )
    count = 0
    for assignment in session.scalars(query):
        assignment.overdue_published_at = now
        payload = {**assignment_fields(assignment), "overdue_since": stamp(assignment.due_on)}
        publish_many(session, contract.ASSIGNMENT_OVERDUE, assignment.org_id, [payload])
        count += 1
    return count
