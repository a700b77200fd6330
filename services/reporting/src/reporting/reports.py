"""The reports of CONTRACT section 3, as query functions over the live projections.

Each list-like report has a select used twice: paged for JSON, streamed whole for CSV.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from operator import itemgetter
from typing import Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from lms_common.db import is_postgres
from lms_common.errors import NotFound
from reporting.models import (
    Assignment,
    Certificate,
    Completion,
    Course,
    Enrollment,
    Learner,
    Location,
    Program,
    ProgramCourse,
    ProgramMember,
    QuizAttempt,
)
from reporting.queries import (
    LEARNER_COLUMNS,
    STREAM_CHUNK,
    Query,
    Reading,
    assignment_status,
    current_assignment,
    person,
    rate,
    render,
    scoped_learners,
    stream,
)
from reporting.scope import subtree

GROUPS = ("course", "program", "location", "period")
COMPLETION_COLUMNS = ["key", "title", "enrolled", "not_started", "in_progress", "completed", "completion_rate"]
COMPLIANCE_COLUMNS = [
    "user_id", "name", "email", "location_id", "department", "assignment_id", "course_id", "program_id", "title",
    "cycle", "due_on", "status", "completed_at",
]  # fmt: skip
AUDIT_COLUMNS = [
    "completed_at", "kind", "user_id", "name", "email", "location_id", "department", "course_id", "program_id",
    "title", "score_percent", "certificate_id", "verification_code",
]  # fmt: skip
TRANSCRIPT_COLUMNS = [
    "course_id", "title", "status", "progress_percent", "enrolled_at", "completed_at", "score_percent",
    "best_quiz_score", "verification_code",
]  # fmt: skip
FUNNEL_COLUMNS = ["position", "course_id", "title", "started", "completed"]


def start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def located(reading: Reading, location_id: str | None) -> Reading:
    """The reading narrowed to a location's subtree (404 outside the caller's scope)."""
    if location_id is None:
        return reading
    scope = reading.scope.narrowed(subtree(reading.session, reading.gen, reading.scope, location_id))
    return Reading(reading.session, reading.gen, scope, reading.today)


# --- completions ------------------------------------------------------------------------------


def _month(session: Session, value: Any) -> Any:
    if is_postgres(session):
        return func.to_char(func.timezone("UTC", value), "YYYY-MM")
    return func.strftime("%Y-%m", value)


def _group_key(reading: Reading, group_by: str) -> Any:
    return {
        "course": Enrollment.course_id,
        "program": ProgramCourse.program_id,
        "location": Learner.location_id,
        "period": _month(reading.session, Enrollment.enrolled_at),
    }[group_by]


def _enrollments(reading: Reading, args: dict[str, Any], columns: list[Any]) -> Query:
    e = Enrollment
    query = select(*columns).where(e.gen == reading.gen, e.org_id.in_(sorted(reading.scope.orgs)))
    query = scoped_learners(reading, query.select_from(e), e.user_id, e.org_id)
    if args.get("course_id"):
        query = query.where(e.course_id == args["course_id"])
    if args.get("program_id"):
        courses = select(ProgramCourse.course_id).where(
            ProgramCourse.gen == reading.gen, ProgramCourse.program_id == args["program_id"]
        )
        query = query.where(e.course_id.in_(courses))
    if args.get("from"):
        query = query.where(e.enrolled_at >= start_of(args["from"]))
    if args.get("to"):
        query = query.where(e.enrolled_at < start_of(args["to"] + timedelta(days=1)))
    return query


def _counts() -> list[Any]:
    e = Enrollment
    started = func.sum(case((e.completed_at.is_(None) & (e.progress_percent > 0), 1), else_=0))
    return [func.count().label("enrolled"), func.count(e.completed_at).label("completed"), started.label("in_progress")]


def _tally(key: Any, title: str | None, enrolled: int, completed: int, in_progress: int) -> dict[str, Any]:
    enrolled, completed, in_progress = int(enrolled), int(completed), int(in_progress or 0)
    return {
        "key": key,
        "title": title,
        "enrolled": enrolled,
        "not_started": enrolled - completed - in_progress,
        "in_progress": in_progress,
        "completed": completed,
        "completion_rate": rate(completed, enrolled),
    }


def _titles(reading: Reading, group_by: str, keys: list[Any]) -> dict[Any, str]:
    named = {
        "course": (Course, Course.course_id, Course.title),
        "program": (Program, Program.program_id, Program.title),
    }
    named["location"] = (Location, Location.location_id, Location.name)
    if group_by not in named or not keys:
        return {}
    model, key, title = named[group_by]
    query = select(key, title).where(
        model.gen == reading.gen,  # type: ignore[attr-defined]
        model.org_id.in_(sorted(reading.scope.orgs)),  # type: ignore[attr-defined]
    )
    rows = reading.session.execute(query.where(key.in_([k for k in keys if k is not None])))
    return {row[0]: row[1] for row in rows}


def completion_groups(reading: Reading, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Enrolled, not started, in progress and completed per course, program, location or month."""
    group_by = args.get("group_by", "course")
    key = _group_key(reading, group_by).label("key")
    query = _enrollments(reading, args, [key, *_counts()])
    if group_by == "program":
        query = query.join(
            ProgramCourse,
            (ProgramCourse.gen == reading.gen)
            & (ProgramCourse.org_id == Enrollment.org_id)
            & (ProgramCourse.course_id == Enrollment.course_id),
        )
    rows = reading.session.execute(query.group_by(key)).all()
    titles = _titles(reading, group_by, [row.key for row in rows])
    groups = [_tally(row.key, titles.get(row.key), row.enrolled, row.completed, row.in_progress) for row in rows]
    return sorted(groups, key=lambda group: group["key"] or "")


def completion_totals(reading: Reading, args: dict[str, Any]) -> dict[str, Any]:
    row = reading.session.execute(_enrollments(reading, args, _counts())).one()
    totals = _tally(None, None, row.enrolled, row.completed, row.in_progress)
    del totals["key"], totals["title"]
    return totals


# --- compliance -------------------------------------------------------------------------------


def compliance_query(reading: Reading, status: str | None) -> Query:
    """Each mandatory assignment of the current cycle, per user, with its derived status."""
    a = Assignment
    status_column = assignment_status(reading)
    query = select(
        a.org_id, a.user_id, a.assignment_id, a.course_id, a.program_id, a.title, a.cycle, a.due_on,
        a.completed_at, status_column.label("status"), *LEARNER_COLUMNS,
    )  # fmt: skip
    query = query.where(a.gen == reading.gen, a.org_id.in_(sorted(reading.scope.orgs)), a.mandatory)
    query = query.where(current_assignment(reading))
    query = scoped_learners(reading, query.select_from(a), a.user_id, a.org_id)
    return query.where(status_column == status) if status else query


COMPLIANCE_KEYS = (Assignment.org_id, Assignment.user_id, Assignment.assignment_id)


def compliance_row(row: Any) -> dict[str, Any]:
    return render(
        {
            **person(row),
            "assignment_id": row.assignment_id,
            "course_id": row.course_id,
            "program_id": row.program_id,
            "title": row.title,
            "cycle": row.cycle,
            "due_on": row.due_on,
            "status": row.status,
            "completed_at": row.completed_at,
        }
    )


def overdue_by_location(reading: Reading) -> list[dict[str, Any]]:
    """Per location: mandatory assignments of the current cycle, and how many are overdue."""
    a = Assignment
    overdue = func.sum(case((a.completed_at.is_(None) & (a.due_on < reading.today), 1), else_=0))
    query = select(Learner.location_id, func.count().label("assignments"), overdue.label("overdue")).where(
        a.gen == reading.gen, a.org_id.in_(sorted(reading.scope.orgs)), a.mandatory, current_assignment(reading)
    )
    query = scoped_learners(reading, query.select_from(a), a.user_id, a.org_id).group_by(Learner.location_id)
    rows = reading.session.execute(query).all()
    names = _titles(reading, "location", [row.location_id for row in rows])
    counted = [
        {
            "location_id": r.location_id,
            "name": names.get(r.location_id),
            "assignments": r.assignments,
            "overdue": int(r.overdue or 0),
        }
        for r in rows
    ]
    return sorted(counted, key=lambda item: item["location_id"] or "")


# --- program analytics ------------------------------------------------------------------------


def _program(reading: Reading, program_id: str) -> Program:
    program = reading.session.scalars(
        select(Program).where(
            Program.gen == reading.gen, Program.org_id.in_(sorted(reading.scope.orgs)), Program.program_id == program_id
        )
    ).first()
    if program is None:
        raise NotFound("no such program")
    return program


def _members(reading: Reading, program: Program) -> Query:
    m = ProgramMember
    query = select(m.user_id, m.completed_at).where(
        m.gen == reading.gen, m.org_id == program.org_id, m.program_id == program.program_id, m.member
    )
    return scoped_learners(reading, query.select_from(m), m.user_id, m.org_id)


def _member_enrollments(reading: Reading, program: Program) -> Query:
    """The enrollments of current members in the program's courses."""
    members = _members(reading, program).with_only_columns(ProgramMember.user_id).subquery()
    e = Enrollment
    courses = select(ProgramCourse.course_id).where(
        ProgramCourse.gen == reading.gen,
        ProgramCourse.org_id == program.org_id,
        ProgramCourse.program_id == program.program_id,
    )
    return select(e.user_id, e.course_id, e.progress_percent, e.completed_at).where(
        e.gen == reading.gen,
        e.org_id == program.org_id,
        e.course_id.in_(courses),
        e.user_id.in_(select(members.c.user_id)),
    )


def program_report(reading: Reading, program_id: str) -> dict[str, Any]:
    """Members against learners who started, a completion funnel per course, pace."""
    program = _program(reading, program_id)
    members = reading.session.execute(_members(reading, program)).all()
    enrollments = reading.session.execute(_member_enrollments(reading, program)).all()
    started = {row.user_id for row in enrollments if row.progress_percent > 0 or row.completed_at}
    funnel = _funnel(reading, program, enrollments)
    return {
        "program_id": program.program_id,
        "title": program.title,
        "member_count": len(members),
        "started": len(started),
        "completed": sum(1 for row in members if row.completed_at),
        "funnel": funnel,
        "average_days_between_courses": average_days_between(reading.session, _member_enrollments(reading, program)),
    }


def _funnel(reading: Reading, program: Program, enrollments: Sequence[Any]) -> list[dict[str, Any]]:
    titles = _titles(reading, "course", list(program.course_ids))
    rows = []
    for position, course_id in enumerate(dict.fromkeys(program.course_ids)):
        mine = [row for row in enrollments if row.course_id == course_id]
        rows.append(
            {
                "position": position,
                "course_id": course_id,
                "title": titles.get(course_id),
                "started": sum(1 for row in mine if row.progress_percent > 0 or row.completed_at),
                "completed": sum(1 for row in mine if row.completed_at),
            }
        )
    return rows


def average_days_between(session: Session, enrollments: Query) -> float | None:
    """The mean gap, in days, between a member's successive course completions."""
    done = enrollments.where(Enrollment.completed_at.is_not(None)).order_by(Enrollment.user_id, Enrollment.completed_at)
    gaps: list[float] = []
    previous: tuple[str, datetime] | None = None
    for row in stream(session, done):
        if previous is not None and previous[0] == row.user_id:
            gaps.append((row.completed_at - previous[1]).total_seconds() / 86400)
        previous = (row.user_id, row.completed_at)
    return round(sum(gaps) / len(gaps), 2) if gaps else None


# --- transcript -------------------------------------------------------------------------------


def learner(reading: Reading, user_id: str) -> dict[str, Any]:
    """The learner's profile in scope; 404 when out of scope or unknown (except oneself)."""
    query = select(Learner.org_id, Learner.user_id, Learner.disabled, *LEARNER_COLUMNS).where(
        Learner.gen == reading.gen, Learner.org_id.in_(sorted(reading.scope.orgs)), Learner.user_id == user_id
    )
    if reading.scope.locations is not None:
        query = query.where(Learner.location_id.in_(sorted(reading.scope.locations)))
    row = reading.session.execute(query).first()
    if row is not None:
        return {**person(row), "org_id": row.org_id, "disabled": row.disabled}
    if reading.scope.only_user == user_id or reading.scope.locations is None:
        return _unnamed(reading, user_id)
    raise NotFound("no such learner in your scope")


def _unnamed(reading: Reading, user_id: str) -> dict[str, Any]:
    """A user identity has not described (yet), known from its learning record alone."""
    org = reading.session.execute(
        select(Enrollment.org_id).where(
            Enrollment.gen == reading.gen,
            Enrollment.org_id.in_(sorted(reading.scope.orgs)),
            Enrollment.user_id == user_id,
        )
    ).scalar()
    if org is None and reading.scope.only_user != user_id:
        raise NotFound("no such learner in your scope")
    empty = dict.fromkeys(("name", "email", "location_id", "department"))
    return {"user_id": user_id, **empty, "org_id": org or min(reading.scope.orgs), "disabled": False}


def transcript_courses(reading: Reading, org: str, user_id: str) -> Query:
    e, c = Enrollment, Completion
    best_quiz = (
        select(func.max(QuizAttempt.score_percent))
        .where(QuizAttempt.gen == e.gen, QuizAttempt.org_id == e.org_id, QuizAttempt.enrollment_id == e.enrollment_id)
        .scalar_subquery()
    )
    title = select(Course.title).where(Course.gen == e.gen, Course.org_id == e.org_id, Course.course_id == e.course_id)
    return (
        select(
            e.enrollment_id,
            e.course_id,
            title.scalar_subquery().label("title"),
            e.progress_percent,
            e.enrolled_at,
            e.completed_at,
            c.score_percent,
            best_quiz.label("best_quiz_score"),
            c.verification_code,
        )
        .outerjoin(c, (c.gen == e.gen) & (c.org_id == e.org_id) & (c.completion_id == e.enrollment_id))
        .where(e.gen == reading.gen, e.org_id == org, e.user_id == user_id)
        .order_by(e.enrolled_at, e.enrollment_id)
    )


def transcript_course_row(row: Any) -> dict[str, Any]:
    status = "completed" if row.completed_at else "in_progress" if row.progress_percent > 0 else "not_started"
    return render({**row._asdict(), "status": status})


def transcript(reading: Reading, user_id: str) -> dict[str, Any]:
    """Everything one learner did: courses, programs, assignments and certificates."""
    who = learner(reading, user_id)
    org, session = who.pop("org_id"), reading.session
    courses = [transcript_course_row(row) for row in session.execute(transcript_courses(reading, org, user_id))]
    return {
        "user": who,
        "courses": courses,
        "programs": [render(row._asdict()) for row in session.execute(_programs_of(reading, org, user_id))],
        "assignments": [render(row._asdict()) for row in session.execute(_assignments_of(reading, org, user_id))],
        "certificates": [render(row._asdict()) for row in session.execute(_certificates_of(reading, org, user_id))],
    }


def _programs_of(reading: Reading, org: str, user_id: str) -> Query:
    m = ProgramMember
    title = select(Program.title).where(
        Program.gen == m.gen, Program.org_id == m.org_id, Program.program_id == m.program_id
    )
    return (
        select(m.program_id, title.scalar_subquery().label("title"), m.member, m.added_at, m.completed_at)
        .where(m.gen == reading.gen, m.org_id == org, m.user_id == user_id)
        .order_by(m.added_at, m.program_id)
    )


def _assignments_of(reading: Reading, org: str, user_id: str) -> Query:
    a = Assignment
    return (
        select(
            a.assignment_id,
            a.course_id,
            a.program_id,
            a.title,
            a.mandatory,
            a.cycle,
            a.due_on,
            assignment_status(reading).label("status"),
            a.completed_at,
        )
        .where(a.gen == reading.gen, a.org_id == org, a.user_id == user_id, current_assignment(reading))
        .order_by(a.due_on, a.assignment_id)
    )


def _certificates_of(reading: Reading, org: str, user_id: str) -> Query:
    t = Certificate
    return (
        select(t.certificate_id, t.course_id, t.program_id, t.title, t.verification_code, t.issued_at)
        .where(t.gen == reading.gen, t.org_id == org, t.user_id == user_id)
        .order_by(t.issued_at, t.certificate_id)
    )


# --- audit ------------------------------------------------------------------------------------


AUDIT_KEYS = (Completion.completed_at, Completion.org_id, Completion.completion_id)


def audit_query(reading: Reading, args: dict[str, Any]) -> Query:
    """Who completed what and when, with the score and the certificate's code."""
    c = Completion
    query = select(
        c.completed_at, c.org_id, c.completion_id, c.kind, c.user_id, c.course_id, c.program_id, c.title,
        c.score_percent, c.certificate_id, c.verification_code, *LEARNER_COLUMNS,
    ).where(c.gen == reading.gen, c.org_id.in_(sorted(reading.scope.orgs)))  # fmt: skip
    if args.get("from"):
        query = query.where(c.completed_at >= start_of(args["from"]))
    if args.get("to"):
        query = query.where(c.completed_at < start_of(args["to"] + timedelta(days=1)))
    return scoped_learners(reading, query.select_from(c), c.user_id, c.org_id)


def audit_row(row: Any) -> dict[str, Any]:
    return render(
        {
            "completed_at": row.completed_at,
            "kind": row.kind,
            **person(row),
            "course_id": row.course_id,
            "program_id": row.program_id,
            "title": row.title,
            "score_percent": row.score_percent,
            "certificate_id": row.certificate_id,
            "verification_code": row.verification_code,
        }
    )


def _utc_text(value: Any) -> Any:
    """A timestamp as RFC 3339 UTC text with microseconds, as :func:`jsonable` writes it."""
    return func.to_char(func.timezone("UTC", value), literal('YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))


def _name_text() -> Any:
    """First and last name joined by a space, empty parts left out, nothing at all as NULL."""
    first, last = func.nullif(Learner.first_name, ""), func.nullif(Learner.last_name, "")
    return func.nullif(func.concat_ws(" ", first, last), "")


def audit_csv_batches(session: Session, query: Query) -> Iterator[Sequence[Sequence[Any]]]:
    """The whole audit as batches of value tuples in ``AUDIT_COLUMNS`` order, in key order.

    On PostgreSQL the values come formatted by the database (the rows go to the csv module
    as fetched); elsewhere each row is rendered as for JSON.
    """
    if not is_postgres(session):
        values = itemgetter(*AUDIT_COLUMNS)
        rows = (values(audit_row(row)) for row in stream(session, query.order_by(*AUDIT_KEYS)))
        while batch := list(islice(rows, STREAM_CHUNK)):
            yield batch
        return
    c = Completion
    formatted = query.with_only_columns(
        _utc_text(c.completed_at), c.kind, c.user_id, _name_text(), Learner.email, Learner.location_id,
        Learner.department, c.course_id, c.program_id, c.title, c.score_percent, c.certificate_id,
        c.verification_code,
    ).order_by(*AUDIT_KEYS)  # fmt: skip
    yield from session.execute(formatted.execution_options(yield_per=STREAM_CHUNK)).partitions()


def rows_of(session: Session, query: Query, keys: tuple[Any, ...], shape: Any) -> Iterator[dict[str, Any]]:
    """A whole report, streamed in key order: the CSV export."""
    for row in stream(session, query.order_by(*keys)):
        yield shape(row)
