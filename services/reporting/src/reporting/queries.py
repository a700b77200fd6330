"""What every report query shares: the generation and scope it reads, the learner join that
enforces location scope, keyset paging over rows, the derived assignment status, and turning
rows into JSON-ready values."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeAlias

from sqlalchemy import ColumnElement, Select, String, and_, case, column, exists, or_
from sqlalchemy.orm import Session

from lms_common.api import decode_cursor, encode_cursor, paginate
from lms_common.envelope import format_time
from reporting import eventlog
from reporting.models import Assignment, Enrollment, Learner, ProgramCourse
from reporting.scope import Scope

# Any select, whatever its columns (SQLAlchemy 2.1 types a select by its column tuple).
Query: TypeAlias = "Select[*tuple[Any, ...]]"

STATUSES = ("assigned", "in_progress", "completed", "overdue")
STREAM_CHUNK = 2000


@dataclass(frozen=True)
class Reading:
    """One report's view of the database: the live generation, the scope and today's date."""

    session: Session
    gen: int
    scope: Scope
    today: date

    @classmethod
    def open(cls, session: Session, scope: Scope, today: date | None = None) -> Reading:
        return cls(session, eventlog.live_generation(session), scope, today or datetime.now(UTC).date())

    def as_of(self) -> str | None:
        newest = eventlog.newest_event_time(self.session, self.scope.orgs)
        return format_time(newest.replace(tzinfo=newest.tzinfo or UTC)) if newest else None


def scoped_learners(reading: Reading, query: Query, user: Any, org: Any) -> Query:
    """Join the learner of each row; a location-scoped reading keeps its locations' only."""
    scope = reading.scope
    joined = and_(Learner.gen == reading.gen, Learner.org_id == org, Learner.user_id == user)
    if scope.locations is None:
        query = query.outerjoin(Learner, joined)
    else:
        query = query.join(Learner, joined).where(Learner.location_id.in_(sorted(scope.locations)))
    if scope.only_user is not None:
        query = query.where(user == scope.only_user)
    return query


def paginate_rows(
    session: Session, query: Query, keys: Sequence[Any], limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """Keyset paging of a multi-column select (rows, not entities)."""
    return paginate(session, query, keys, limit, cursor, entities=False)


GROUP_KEY = column("key", String)


def paginate_groups(
    groups: list[dict[str, Any]], limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Paging of a sorted list of aggregate groups, by their ``key``."""
    if cursor:
        after = decode_cursor(cursor, [GROUP_KEY])[0]
        groups = [group for group in groups if group["key"] > after]
    if len(groups) <= limit:
        return groups, None
    groups = groups[:limit]
    return groups, encode_cursor([groups[-1]["key"]])


def stream(session: Session, query: Query) -> Iterator[Any]:
    """Rows through a server-side cursor, a chunk in memory at a time."""
    return iter(session.execute(query.execution_options(yield_per=STREAM_CHUNK)))


def assignment_started(reading: Reading) -> ColumnElement[bool]:
    """Whether the assigned course (or any course of the assigned program) has progress."""
    gen, a = reading.gen, Assignment
    on_course = exists().where(
        Enrollment.gen == gen, Enrollment.org_id == a.org_id, Enrollment.user_id == a.user_id,
        Enrollment.course_id == a.course_id, Enrollment.progress_percent > 0,
    )  # fmt: skip
    on_program = exists().where(
        ProgramCourse.gen == gen, ProgramCourse.org_id == a.org_id, ProgramCourse.program_id == a.program_id,
        Enrollment.gen == gen, Enrollment.org_id == a.org_id, Enrollment.user_id == a.user_id,
        Enrollment.course_id == ProgramCourse.course_id, Enrollment.progress_percent > 0,
    )  # fmt: skip
    return or_(and_(a.course_id.is_not(None), on_course), and_(a.program_id.is_not(None), on_program))


def assignment_status(reading: Reading) -> ColumnElement[str]:
    """assigned, in_progress, completed or overdue, derived against today's date."""
    a = Assignment
    return case(
        (a.completed_at.is_not(None), "completed"),
        (or_(a.due_on < reading.today, a.overdue_since.is_not(None)), "overdue"),
        (assignment_started(reading), "in_progress"),
        else_="assigned",
    )


def current_assignment(reading: Reading) -> ColumnElement[bool]:
    """Not replaced by a newer recertification cycle."""
    newer = Assignment.__table__.alias("newer_cycle")
    return ~exists().where(
        newer.c.gen == reading.gen,
        newer.c.org_id == Assignment.org_id,
        newer.c.previous_assignment_id == Assignment.assignment_id,
    )


def person(row: Any) -> dict[str, Any]:
    """The learner columns of a row joined with ``scoped_learners``."""
    names = [part for part in (row.first_name, row.last_name) if part]
    return {
        "user_id": row.user_id,
        "name": " ".join(names) or None,
        "email": row.email,
        "location_id": row.location_id,
        "department": row.department,
    }


LEARNER_COLUMNS = (Learner.first_name, Learner.last_name, Learner.email, Learner.location_id, Learner.department)


def jsonable(value: Any) -> Any:
    """Timestamps as RFC 3339 UTC, dates as YYYY-MM-DD, the rest as is."""
    if isinstance(value, datetime):
        return format_time(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return value.isoformat()
    return value


def render(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: jsonable(value) for key, value in values.items()}


def rate(done: int, total: int) -> float:
    """A share between 0 and 1, four decimals (0 when there is nothing to share)."""
    return round(done / total, 4) if total else 0.0
