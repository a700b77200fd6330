"""Projections: how each event changes the read models of one generation.

Each ``apply_*`` function takes a :class:`Target` (session, generation, organization, event)
and is safe to run twice and in any order against the other events: a fact changes a row only
when it is newer than the fact the row holds, compared by (timestamp, event id).

Events are projected a batch at a time (:func:`project_many`): the rows the batch's events
touch are loaded together, one query per table, into :class:`Rows`, and the functions read and
change them in memory; the changes are written back at the end, a few statements per table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnDefault, Table, Update, bindparam, delete, select, update
from sqlalchemy.orm import Session

from lms_common.db import Base, RawReads, ReadStatement, is_postgres, one_of, session_cursor
from lms_common.envelope import Event, parse_time
from reporting.bulk import insert_rows
from reporting.models import (
    Assignment,
    Certificate,
    Completion,
    Course,
    Enrollment,
    Learner,
    LessonCompletion,
    Location,
    Program,
    ProgramCourse,
    ProgramMember,
    QuizAttempt,
    UserAlias,
)

M = TypeVar("M", bound=Base)
PROFILE_FIELDS = ("email", "first_name", "last_name", "location_id", "department", "kind")
Key = tuple[Any, ...]
LOAD_CHUNK = 500


class Record:
    """A projection row held in memory: its columns as plain attributes, no ORM state.

    :class:`Rows` hands records out typed as their model, whose columns they carry, and writes
    them back itself: the ORM's unit of work cost more than the projections' own work.
    """

    def __init__(self, values: Mapping[str, Any]):
        self.__dict__.update(values)


class _Held:
    """The rows of one table known to a batch, and the values of those the database holds."""

    def __init__(self, model: type[Base]):
        self.table = cast(Table, model.__table__)
        self.key_names = [column.key for column in self.table.primary_key.columns]
        self.rows: dict[Key, Record | None] = {}
        self.stored: dict[Key, dict[str, Any]] = {}
        # A new row's values before it is given any: each column's default, or None; a default
        # made by a function (``dict``, for a JSON column) is made anew for each row.
        self.defaults: dict[str, Any] = {}
        self.made: dict[str, Callable[[Any], Any]] = {}
        for column in self.table.columns:
            default = column.default if isinstance(column.default, ColumnDefault) else None
            if default is not None and default.is_callable:
                self.made[column.key] = default.arg
            else:
                self.defaults[column.key] = default.arg if default is not None else None

    def key(self, values: Mapping[Any, Any]) -> Key:
        return tuple(values[name] for name in self.key_names)

    def loaded(self, values: Mapping[Any, Any]) -> Record:
        """A row read from the database; when already held, the held one (it may have changes)."""
        key = self.key(values)
        record = self.rows.get(key)
        if record is None:
            record = self.rows[key] = Record(values)
            self.stored[key] = dict(values)
        return record

    def created(self, key: Key, values: Mapping[str, Any]) -> Record:
        made = {name: make(None) for name, make in self.made.items()}
        record = self.rows[key] = Record(
            {**self.defaults, **made, **dict(zip(self.key_names, key, strict=True)), **values}
        )
        return record

    def changes(self) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
        """The rows to insert, and those to update grouped by the columns that changed; from
        now on their values count as stored."""
        new: list[dict[str, Any]] = []
        changed: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for key, record in self.rows.items():
            if record is None:
                continue
            values, stored = vars(record), self.stored.get(key)
            if stored is None:
                new.append(dict(values))
            else:
                names = tuple(name for name, value in values.items() if stored[name] != value)
                if not names:
                    continue
                by_key = {f"key_{name}": value for name, value in zip(self.key_names, key, strict=True)}
                changed[names].append(by_key | {name: values[name] for name in names})
            self.stored[key] = dict(values)
        return new, list(changed.values())


@cache
def _update_by_key(table: Table) -> Update:
    """An UPDATE of one row by its key (``key_<column>``); the columns it sets are the other
    parameters given."""
    return update(table).where(*(column == bindparam(f"key_{column.key}") for column in table.primary_key.columns))


class Rows:
    """The projection rows a batch of events reads and writes, by primary key, kept for the batch.

    A key maps to its row, or to None when the row is known not to exist (yet): rows are
    loaded a table at a time for the whole batch (:meth:`load`), and a row created or deleted
    by an event is recorded here, so the events after it see it without asking the database.
    :meth:`write` writes the changes back, a table at a time: the new rows in one statement,
    the changed ones in one statement per set of columns changed.
    """

    def __init__(self, session: Session):
        self.session = session
        self.tables: dict[type[Base], _Held] = {}

    def _held(self, model: type[Base]) -> _Held:
        if model not in self.tables:
            self.tables[model] = _Held(model)
        return self.tables[model]

    def get(self, model: type[M], key: Key) -> M | None:
        held = self._held(model)
        if key not in held.rows:
            self.load(model, [key])
        return cast("M | None", held.rows[key])

    def create(self, model: type[M], key: Key, values: Mapping[str, Any]) -> M:
        """A new row (unset columns take their defaults), inserted by the next :meth:`write`."""
        return cast(M, self._held(model).created(key, values))

    def find(self, model: type[M], *criteria: Any) -> list[M]:
        """The rows matching ``criteria``, as this batch has changed them."""
        self.write(model)
        held = self._held(model)
        found = self.session.execute(select(held.table).where(*criteria)).mappings()
        return cast(list[M], [held.loaded(row) for row in found])

    def delete(self, model: type[M], row: M) -> None:
        held = self._held(model)
        key = held.key(vars(row))
        if held.stored.pop(key, None) is not None:
            columns = held.table.primary_key.columns
            self.session.execute(delete(held.table).where(*(c == v for c, v in zip(columns, key, strict=True))))
        held.rows[key] = None

    def update(self, model: type[Base], *criteria: Any, **values: Any) -> None:
        """Set ``values`` on every row matching ``criteria``, in the database: the rows held
        are written first, and read again when next asked for."""
        self.write(model)
        self.session.execute(update(self._held(model).table).where(*criteria).values(**values))
        del self.tables[model]

    def write(self, *models: type[Base]) -> None:
        """Write the changes to these tables (all when none are named)."""
        for model in models or list(self.tables):
            held = self.tables.get(model)
            if held is None:
                continue
            new, changed = held.changes()
            insert_rows(self.session, held.table, new)
            for rows in changed:
                self.session.execute(_update_by_key(held.table), rows)

    def load(self, model: type[Base], keys: Iterable[Key], parent: type[Base] | None = None) -> None:
        """Load the rows of these keys (gen, org, *rest) not known yet, one query per scope.

        A key of several columns is matched column by column, each against the values wanted
        of it: the rows found are all real rows, and the keys not found are known missing.
        With a ``parent`` (whose key is the first three columns of this one, loaded before),
        a key whose parent row does not exist is known missing without asking.
        """
        held = self._held(model)
        parents = self._held(parent).rows if parent is not None else {}
        wanted: dict[tuple[Any, Any], dict[Key, None]] = defaultdict(dict)
        for key in keys:
            if key in held.rows:
                continue
            if parent is not None and parents.get(key[:3], True) is None:
                held.rows[key] = None
                continue
            wanted[key[:2]][key[2:]] = None
        for (gen, org), rests in wanted.items():
            pending = list(rests)
            for start in range(0, len(pending), LOAD_CHUNK):
                chunk = pending[start : start + LOAD_CHUNK]
                for row in self._found(held.table, gen, org, chunk):
                    held.loaded(row)
                for rest in chunk:
                    held.rows.setdefault((gen, org, *rest), None)

    def _found(self, table: Table, gen: int, org: str, rests: list[Key]) -> list[Mapping[Any, Any]]:
        """The rows of one scope whose other key columns are each among the values wanted."""
        wanted = [sorted({rest[i] for rest in rests}) for i in range(len(rests[0]))]
        if not is_postgres(self.session):
            columns = list(table.primary_key.columns)
            query = select(table).where(columns[0] == gen, columns[1] == org)
            query = query.where(*(column.in_(values) for column, values in zip(columns[2:], wanted, strict=True)))
            return list(self.session.execute(query).mappings())
        params = {"gen": gen, "org": org, **{f"key_{n}": values for n, values in enumerate(wanted)}}
        with session_cursor(self.session) as cursor:
            found = _lookup(table).rows(RawReads(self.session.get_bind().dialect, cursor), params)
        names = table.columns.keys()
        return [dict(zip(names, row, strict=True)) for row in found]


@cache
def _lookup(table: Table) -> ReadStatement:
    """PostgreSQL: the rows of ``table`` of one scope (``gen``, ``org``) whose other key columns
    are each among the values of an array (``key_0``, ...), sent on the driver's cursor: a
    batch asks this of several tables, and SQLAlchemy's statement and result machinery cost
    several times the queries themselves."""
    gen, org, *rest = table.primary_key.columns
    arrays = [one_of(column, f"key_{n}", postgres=True) for n, column in enumerate(rest)]
    return ReadStatement(select(table).where(gen == bindparam("gen"), org == bindparam("org"), *arrays))


@dataclass(frozen=True)
class Target:
    """Where an event is projected: one generation of one organization's rows."""

    session: Session
    gen: int
    event: Event
    rows: Rows

    @property
    def org(self) -> str:
        return self.event.orgid

    @property
    def data(self) -> Mapping[str, Any]:
        return self.event.data

    def time(self, name: str) -> datetime:
        """A timestamp of the payload (the envelope's time when the payload has none)."""
        value = self.data.get(name)
        return parse_time(value) if value else self.event.time

    def row(self, model: type[M], *key: str) -> M | None:
        return self.rows.get(model, (self.gen, self.org, *key))

    def add(self, model: type[M], *key: str, **values: Any) -> M:
        """The row with this key, created with ``values`` when it does not exist yet."""
        full = (self.gen, self.org, *key)
        found = self.rows.get(model, full)
        return found if found is not None else self.rows.create(model, full, values)

    def user(self, user_id: str) -> str:
        """The user a fact belongs to now, after contact merges."""
        alias = self.row(UserAlias, user_id)
        return alias.to_user_id if alias is not None else user_id


def newer(at: datetime, event_id: str, held_at: datetime | None, held_id: str | None) -> bool:
    """Whether the fact (at, event_id) is newer than the one held (nothing held: yes)."""
    return held_at is None or (at, event_id) > (held_at, held_id or "")


def _earliest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate < current else current


# --- identity ---------------------------------------------------------------------------------


def apply_profile(t: Target) -> None:
    """UserProvisioned / UserUpdated: each field given is kept if it is the newest word on it."""
    learner = t.add(Learner, t.data["user_id"], disabled=False, field_at={})
    held = dict(learner.field_at or {})
    for name in PROFILE_FIELDS:
        if name in t.data and newer(t.event.time, t.event.id, *_held(held, name)):
            setattr(learner, name, t.data[name])
            held[name] = [t.event.time.isoformat(), t.event.id]
    learner.field_at = held


def _held(held: Mapping[str, Any], name: str) -> tuple[datetime | None, str | None]:
    if name not in held:
        return None, None
    at, event_id = held[name]
    return datetime.fromisoformat(at), event_id


def _status(t: Target, disabled: bool, time_field: str) -> None:
    learner = t.add(Learner, t.data["user_id"], disabled=False, field_at={})
    held = dict(learner.field_at or {})
    at = t.time(time_field)
    if newer(at, t.event.id, *_held(held, "disabled")):
        learner.disabled = disabled
        held["disabled"] = [at.isoformat(), t.event.id]
        learner.field_at = held


def apply_disabled(t: Target) -> None:
    _status(t, True, "disabled_at")


def apply_enabled(t: Target) -> None:
    _status(t, False, "enabled_at")


def apply_contacts_merged(t: Target) -> None:
    """The merged-away contact is marked; its facts arriving later go to the surviving one."""
    source, target = t.data["from_user_id"], t.data["to_user_id"]
    t.add(UserAlias, source, to_user_id=target)
    t.add(Learner, source, disabled=False, field_at={}).merged_into = target


def apply_location(t: Target) -> None:
    d = t.data
    t.add(Location, d["location_id"], name=d["name"], code=d["code"], parent_id=d.get("parent_id"))


# --- catalog ----------------------------------------------------------------------------------


def remember_course(t: Target, course_id: str, title: str, version: int, at: datetime) -> None:
    """Keep the course title of the highest (version, time, event id) seen."""
    course = t.add(Course, course_id, title=title, version=version, fact_at=at, fact_id=t.event.id)
    if (version, at, t.event.id) > (course.version, course.fact_at, course.fact_id):
        course.title, course.version, course.fact_at, course.fact_id = title, version, at, t.event.id


def remember_program(t: Target, program_id: str, title: str, course_ids: list[str], version: int) -> None:
    """Keep the program of the highest (version, time, event id) seen, with its course rows."""
    at, event_id = t.event.time, t.event.id
    fresh = t.row(Program, program_id) is None
    program = t.add(
        Program, program_id, title=title, course_ids=course_ids, version=version, fact_at=at, fact_id=event_id
    )
    if not fresh and (version, at, event_id) <= (program.version, program.fact_at, program.fact_id):
        return
    program.title, program.course_ids, program.version = title, course_ids, version
    program.fact_at, program.fact_id = at, event_id
    _set_program_courses(t, program_id, course_ids)


def _set_program_courses(t: Target, program_id: str, course_ids: list[str]) -> None:
    existing = t.rows.find(
        ProgramCourse, ProgramCourse.gen == t.gen, ProgramCourse.org_id == t.org, ProgramCourse.program_id == program_id
    )
    for row in existing:
        t.rows.delete(ProgramCourse, row)
    for position, course_id in enumerate(dict.fromkeys(course_ids)):
        t.add(ProgramCourse, program_id, course_id, position=position)


def apply_course(t: Target) -> None:
    remember_course(t, t.data["course_id"], t.data["title"], t.data["version"], t.event.time)


def apply_program(t: Target) -> None:
    d = t.data
    remember_program(t, d["program_id"], d["title"], list(d["course_ids"]), d["version"])


# --- enrollment -------------------------------------------------------------------------------


def _enrollment(t: Target) -> Enrollment:
    d = t.data
    return t.add(Enrollment, d["enrollment_id"], user_id=t.user(d["user_id"]), course_id=d["course_id"])


def _progress(enrollment: Enrollment, percent: int, at: datetime, event_id: str) -> None:
    if newer(at, event_id, enrollment.progress_at, enrollment.progress_id):
        enrollment.progress_percent, enrollment.progress_at, enrollment.progress_id = percent, at, event_id


def apply_enrollment_created(t: Target) -> None:
    enrollment = _enrollment(t)
    enrollment.source = enrollment.source or t.data["source"]
    enrollment.enrolled_at = _earliest(enrollment.enrolled_at, t.time("enrolled_at"))
    remember_course(t, t.data["course_id"], t.data["course_title"], 0, t.time("enrolled_at"))


def apply_lesson_completed(t: Target) -> None:
    d, at = t.data, t.time("completed_at")
    enrollment = _enrollment(t)
    _progress(enrollment, d["progress_percent"], at, t.event.id)
    lesson = t.add(
        LessonCompletion, d["enrollment_id"], d["lesson_id"], user_id=enrollment.user_id, course_id=d["course_id"],
        completed_at=at,
    )  # fmt: skip
    lesson.completed_at = _earliest(lesson.completed_at, at)


def apply_course_completed(t: Target) -> None:
    d, at = t.data, t.time("completed_at")
    enrollment = _enrollment(t)
    enrollment.enrolled_at = _earliest(enrollment.enrolled_at, t.time("enrolled_at"))
    enrollment.completed_at = _earliest(enrollment.completed_at, at)
    _progress(enrollment, 100, at, t.event.id)
    remember_course(t, d["course_id"], d["course_title"], 0, at)
    _completion(
        t,
        d["enrollment_id"],
        "course",
        enrollment.user_id,
        title=d["course_title"],
        at=at,
        score=d.get("score_percent"),
    )


def _completion(
    t: Target, completion_id: str, kind: str, user_id: str, *, title: str, at: datetime, score: int | None
) -> None:
    d = t.data
    course_id, program_id = d.get("course_id") if kind == "course" else None, d.get("program_id")
    row = t.add(
        Completion, completion_id, kind=kind, user_id=user_id, course_id=course_id, program_id=program_id,
        title=title, completed_at=at, score_percent=score,
    )  # fmt: skip
    row.completed_at = min(row.completed_at, at)
    row.score_percent = _best(row.score_percent, score)
    if d.get("verification_code"):
        row.certificate_id, row.verification_code = d.get("certificate_id"), d["verification_code"]
    elif row.verification_code is None:
        _attach_certificate(t, row)


def _best(held: int | None, given: int | None) -> int | None:
    return given if held is None else held if given is None else max(held, given)


def _attach_certificate(t: Target, row: Completion) -> None:
    """A certificate issued before its completion arrived: link it now."""
    t.rows.write(Certificate)
    certificate = t.session.execute(
        select(Certificate.certificate_id, Certificate.verification_code)
        .where(Certificate.gen == t.gen, Certificate.org_id == t.org, Certificate.user_id == row.user_id)
        .where(Certificate.course_id == row.course_id, Certificate.program_id == row.program_id)
        .order_by(Certificate.issued_at, Certificate.certificate_id)
        .limit(1)
    ).first()
    if certificate is not None:
        row.certificate_id, row.verification_code = certificate.certificate_id, certificate.verification_code


def _member(t: Target) -> ProgramMember:
    d = t.data
    return t.add(ProgramMember, d["program_id"], t.user(d["user_id"]), member=True)


def _membership(t: Target, member: bool, time_field: str) -> ProgramMember:
    row = _member(t)
    at = t.time(time_field)
    if newer(at, t.event.id, row.membership_at, row.membership_id):
        row.member, row.membership_at, row.membership_id = member, at, t.event.id
    return row


def _program_title(t: Target) -> None:
    """Member events carry the program as it was: kept until catalog's own version arrives."""
    d = t.data
    remember_program(t, d["program_id"], d["program_title"], list(d["course_ids"]), 0)


def apply_member_added(t: Target) -> None:
    row = _membership(t, True, "added_at")
    row.added_at = _earliest(row.added_at, t.time("added_at"))
    _program_title(t)


def apply_member_removed(t: Target) -> None:
    _membership(t, False, "removed_at")


def apply_program_completed(t: Target) -> None:
    d, at = t.data, t.time("completed_at")
    row = _member(t)
    row.added_at = _earliest(row.added_at, t.time("added_at"))
    row.completed_at = _earliest(row.completed_at, at)
    if row.membership_at is None:  # completion proves membership until a removal says otherwise
        row.member = True
    _program_title(t)
    program_key = f"program:{d['program_id']}:{row.user_id}"
    _completion(t, program_key, "program", row.user_id, title=d["program_title"], at=at, score=None)


def _assignment(t: Target) -> Assignment:
    d = t.data
    row = t.add(
        Assignment, d["assignment_id"], user_id=t.user(d["user_id"]), course_id=d.get("course_id"),
        program_id=d.get("program_id"), title=d["title"], due_on=date.fromisoformat(d["due_on"]),
        mandatory=d["mandatory"], cycle=d["cycle"],
    )  # fmt: skip
    return row


def apply_assignment_created(t: Target) -> None:
    row = _assignment(t)
    row.assigned_at = t.time("assigned_at")
    row.previous_assignment_id = t.data.get("previous_assignment_id")


def apply_assignment_completed(t: Target) -> None:
    row = _assignment(t)
    at = t.time("completed_at")
    if row.completed_at is None or at < row.completed_at:
        row.completed_at, row.late = at, t.data["late"]


def apply_assignment_overdue(t: Target) -> None:
    row = _assignment(t)
    since = date.fromisoformat(t.data["overdue_since"])
    row.overdue_since = since if row.overdue_since is None else min(row.overdue_since, since)


def apply_quiz_attempted(t: Target) -> None:
    d = t.data
    t.add(
        QuizAttempt, d["attempt_id"], user_id=t.user(d["user_id"]), quiz_id=d["quiz_id"], course_id=d["course_id"],
        enrollment_id=d["enrollment_id"], attempt=d["attempt"], score_percent=d["score_percent"],
        passed=d["passed"], submitted_at=t.time("submitted_at"),
    )  # fmt: skip


def apply_certificate_issued(t: Target) -> None:
    """Keep the certificate, and give its code to the completion it proves if that has none."""
    d = t.data
    certificate = t.add(
        Certificate, d["certificate_id"], user_id=t.user(d["user_id"]), course_id=d.get("course_id"),
        program_id=d.get("program_id"), title=d["title"], verification_code=d["verification_code"],
        issued_at=t.time("issued_at"),
    )  # fmt: skip
    t.rows.update(
        Completion,
        Completion.gen == t.gen, Completion.org_id == t.org, Completion.user_id == certificate.user_id,
        Completion.course_id == certificate.course_id, Completion.program_id == certificate.program_id,
        Completion.verification_code.is_(None),
        certificate_id=certificate.certificate_id, verification_code=certificate.verification_code,
    )  # fmt: skip


def apply_history_merged(t: Target) -> None:
    """Enrollments and certificates moved to the surviving contact; so do its other facts."""
    d = t.data
    source, target = d["from_user_id"], d["to_user_id"]
    t.add(UserAlias, source, to_user_id=target)
    for model in (Enrollment, LessonCompletion, Completion, QuizAttempt, Certificate, Assignment):
        table = cast(Table, model.__table__)
        t.rows.update(model, table.c.gen == t.gen, table.c.org_id == t.org, table.c.user_id == source, user_id=target)
    _merge_members(t, source, target)


def _merge_members(t: Target, source: str, target: str) -> None:
    rows = t.rows.find(
        ProgramMember, ProgramMember.gen == t.gen, ProgramMember.org_id == t.org, ProgramMember.user_id == source
    )
    for row in rows:
        kept = t.add(ProgramMember, row.program_id, target, member=row.member)
        if row.added_at is not None:
            kept.added_at = _earliest(kept.added_at, row.added_at)
        if row.completed_at is not None:
            kept.completed_at = _earliest(kept.completed_at, row.completed_at)
        if row.membership_at is not None and newer(
            row.membership_at, row.membership_id or "", kept.membership_at, kept.membership_id
        ):
            kept.member, kept.membership_at, kept.membership_id = row.member, row.membership_at, row.membership_id
        t.rows.delete(ProgramMember, row)


PROJECTORS: dict[str, Callable[[Target], None]] = {
    "UserProvisioned": apply_profile,
    "UserUpdated": apply_profile,
    "UserDisabled": apply_disabled,
    "UserEnabled": apply_enabled,
    "ContactsMerged": apply_contacts_merged,
    "LocationCreated": apply_location,
    "CourseCreated": apply_course,
    "CourseUpdated": apply_course,
    "CoursePublished": apply_course,
    "CourseUnpublished": apply_course,
    "ProgramPublished": apply_program,
    "ProgramUpdated": apply_program,
    "EnrollmentCreated": apply_enrollment_created,
    "LessonCompleted": apply_lesson_completed,
    "CourseCompleted": apply_course_completed,
    "ProgramMemberAdded": apply_member_added,
    "ProgramMemberRemoved": apply_member_removed,
    "ProgramCompleted": apply_program_completed,
    "AssignmentCreated": apply_assignment_created,
    "AssignmentCompleted": apply_assignment_completed,
    "AssignmentOverdue": apply_assignment_overdue,
    "QuizAttempted": apply_quiz_attempted,
    "CertificateIssued": apply_certificate_issued,
    "UserHistoryMerged": apply_history_merged,
}


_USER = (UserAlias, ("user_id",))
_ENROLLMENT = (Enrollment, ("enrollment_id",))
_COURSE = (Course, ("course_id",))
_MEMBER = (ProgramMember, ("program_id", "user_id"))
_PROGRAM = (Program, ("program_id",))
_ASSIGNMENT = (Assignment, ("assignment_id",))
_LEARNER = (Learner, ("user_id",))

# The rows each event type reads, by the payload fields of their keys, loaded for a batch at
# once. Only a hint: a row not listed (a program completion, a merged user's row) is read alone.
READS: dict[str, tuple[tuple[type[Base], tuple[str, ...]], ...]] = {
    "UserProvisioned": (_LEARNER,),
    "UserUpdated": (_LEARNER,),
    "UserDisabled": (_LEARNER,),
    "UserEnabled": (_LEARNER,),
    "ContactsMerged": ((UserAlias, ("from_user_id",)), (Learner, ("from_user_id",))),
    "LocationCreated": ((Location, ("location_id",)),),
    "CourseCreated": (_COURSE,),
    "CourseUpdated": (_COURSE,),
    "CoursePublished": (_COURSE,),
    "CourseUnpublished": (_COURSE,),
    "ProgramPublished": (_PROGRAM,),
    "ProgramUpdated": (_PROGRAM,),
    "EnrollmentCreated": (_USER, _ENROLLMENT, _COURSE),
    "LessonCompleted": (_USER, _ENROLLMENT, (LessonCompletion, ("enrollment_id", "lesson_id"))),
    "CourseCompleted": (_USER, _ENROLLMENT, _COURSE, (Completion, ("enrollment_id",))),
    "ProgramMemberAdded": (_USER, _MEMBER, _PROGRAM),
    "ProgramMemberRemoved": (_USER, _MEMBER),
    "ProgramCompleted": (_USER, _MEMBER, _PROGRAM),
    "AssignmentCreated": (_USER, _ASSIGNMENT),
    "AssignmentCompleted": (_USER, _ASSIGNMENT),
    "AssignmentOverdue": (_USER, _ASSIGNMENT),
    "QuizAttempted": (_USER, (QuizAttempt, ("attempt_id",))),
    "CertificateIssued": (_USER, (Certificate, ("certificate_id",))),
}


# Rows that only ever exist with their parent: an enrollment's lessons and course completion
# are created by the events that create the enrollment, and enrollments are never deleted.
PARENTS: dict[type[Base], type[Base]] = {LessonCompletion: Enrollment, Completion: Enrollment}


def _load(rows: Rows, gen: int, events: Sequence[Event]) -> None:
    wanted: dict[type[Base], list[Key]] = defaultdict(list)
    for event in events:
        for model, fields in READS.get(event.type, ()):
            values = [event.data.get(name) for name in fields]
            if None not in values:
                wanted[model].append((gen, event.orgid, *values))
    for model in sorted(wanted, key=lambda model: model in PARENTS):  # parents first
        rows.load(model, wanted[model], PARENTS.get(model))


def project_many(session: Session, gen: int, events: Sequence[Event]) -> None:
    """Apply events, in order, to generation ``gen`` (events no report reads are only logged).

    The rows they read are loaded first, a table at a time; the changes are written when the
    last event is applied.
    """
    rows = Rows(session)
    _load(rows, gen, events)
    for event in events:
        projector = PROJECTORS.get(event.type)
        if projector is not None:
            projector(Target(session, gen, event, rows))
    rows.write()


def project(session: Session, gen: int, event: Event) -> None:
    """Apply one event to generation ``gen``."""
    project_many(session, gen, [event])
