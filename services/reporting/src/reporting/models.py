"""Reporting's tables: the append-only event log, and the projections built from it.

Every projection row carries ``gen``, the generation it belongs to: the worker writes the live
generation, ``python -m reporting rebuild`` replays the log into the next one and makes it live
in one transaction (see :mod:`reporting.rebuild`). Every row also carries ``org_id``, and every
query filters on both.

Projections never depend on the order events arrive in: a fact is applied only when it is newer
(by its own timestamp, then its event id) than the one a row holds, and set-like facts are
inserted once. So a late or repeated event never overwrites a newer fact, and replaying the log
in any order gives the same rows.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lms_common.db import Base, utcnow

ID = String(36)
TEXT = String(200)


def _key() -> Mapped[str]:
    return mapped_column(String(200), primary_key=True)


def _gen() -> Mapped[int]:
    return mapped_column(Integer, primary_key=True)


class LoggedEvent(Base):
    """One consumed event, as it arrived; never updated, never deleted.

    Logged once: in the transaction that records its id in the inbox, and only when that id is
    new there (so ``id`` needs no unique index of its own; see migration 0003)."""

    __tablename__ = "event_log"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(100))
    orgid: Mapped[str] = mapped_column(String(200))
    time: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    __table_args__ = (Index("ix_event_log_orgid_time", "orgid", "time"),)


class ProjectionState(Base):
    """Which generation of the projections is live (one row, ``name = 'live'``)."""

    __tablename__ = "projection_state"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)
    rebuilt_at: Mapped[datetime | None]


class Learner(Base):
    """A user as identity last described it; ``field_at`` holds each field's [time, event id]."""

    __tablename__ = "learners"

    gen: Mapped[int] = _gen()
    org_id: Mapped[str] = _key()
    user_id: Mapped[str] = _key()
    email: Mapped[str | None] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(TEXT)
    last_name: Mapped[str | None] = mapped_column(TEXT)
    location_id: Mapped[str | None] = mapped_column(ID)
    department: Mapped[str | None] = mapped_column(TEXT)
    kind: Mapped[str | None] = mapped_column(String(20))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    merged_into: Mapped[str | None] = mapped_column(ID)
    field_at: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_learners_location", "gen", "org_id", "location_id", "user_id"),)


class UserAlias(Base):
    """A merged contact: facts about ``from_user_id`` belong to ``to_user_id``."""

    __tablename__ = "user_aliases"

    gen: Mapped[int] = _gen()
    org_id: Mapped[str] = _key()
    from_user_id: Mapped[str] = _key()
    to_user_id: Mapped[str] = mapped_column(ID)


class Location(Base):
    __tablename__ = "locations"

    gen: Mapped[int] = _gen()
    org_id: Mapped[str] = _key()
    location_id: Mapped[str] = _key()
    name: Mapped[str] = mapped_column(TEXT)
    code: Mapped[str] = mapped_column(TEXT)
    parent_id: Mapped[str | None] = mapped_column(ID)


class Course(Base):
    """A course title; ``version`` 0 marks a title learnt from enrollment events only."""

    __tablename__ = "courses"

    gen: Mapped[int] = _gen()
    org_id: Mapped[str] = _key()
    course_id: Mapped[str] = _key()
    title: Mapped[str] = mapped_column(TEXT)
    version: Mapped[int] = mapped_column(Integer)
    fact_at: Mapped[datetime]
    fact_id: Mapped[str] = mapped_column(String(200))


class Program(Base):
    """A program's title and ordered courses (``course_ids``), newest version kept."""

    __tablename__ = "programs"

    gen: Mapped[int] = _gen()
    org_id: Mapped[str] = _key()
    program_id: Mapped[str] = _key()
    title: Mapped[str] = mapped_column(TEXT)
    course_ids: Mapped[list[str]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    fact_at: Mapped[datetime]
    fact_id: Mapped[str] = mapped_column(String(200))


class ProgramCourse(Base):
    """The courses of a program, one row each, for joins (rewritten with ``programs``)."""

    __tablename__ = "program_courses"

    gen: Mapped[int] = _gen()
    org_id: Mapped[str] = _key()
    program_id: Mapped[str] = _key()
    course_id: Mapped[str] = _key()
    position: Mapped[int] = mapped_column(Integer)


class Enrollment(Base):
    __tablename__ = "enrollments"

    gen: Mapped[int] = _gen()
    org_id: Mapped[str] = _key()
    enrollment_id: Mapped[str] = _key()
    user_id: Mapped[str] = mapped_column(ID)
    course_id: Mapped[str] = mapped_column(ID)
    source: Mapped[str | None] = mapped_column(String(20))
    enrolled_at: Mapped[datetime | None]
    progress_percent: Mapped[int] = mapped_column(Integer, default=0)
    progress_at: Mapped[datetime | None]
    progress_id: Mapped[str | None] = mapped_column(String(200))
    completed_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_enrollments_user", "gen", "org_id", "user_id", "course_id"),
        Index("ix_enrollments_course", "gen", "org_id", "course_id"),
    )


class LessonCompletion(Base):
    __tablename__ = "lesson_completions"

    gen: Mapped[int] = _gen()
    org_id: Mapped[str] = _key()
    enrollment_id: Mapped[str] = _key()
    lesson_id: Mapped[str] = _key()
    user_id: Mapped[str] = mapped_column(ID)
    course_id: Mapped[str] = mapped_column(ID)
    completed_at: Mapped[datetime]


class Completion(Base):
    """Who completed what and when: a course (keyed by enrollment) or a program (by member)."""

    __tablename__ = "completions"

    gen: Mapped[int] = _gen()
    org_id: Mapped[str] = _key()
    completion_id: Mapped[str] = _key()
    kind: Mapped[str] = mapped_column(String(10))
    user_id: Mapped[str] = mapped_column(ID)
    course_id: Mapped[str | None] = mapped_column(ID)
    program_id: Mapped[str | None] = mapped_column(ID)
    title: Mapped[str] = mapped_column(TEXT)
    completed_at: Mapped[datetime]
    score_percent: Mapped[int | None] = mapped_column(Integer)
    certificate_id: Mapped[str | None] = mapped_column(ID)
    verification_code: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_completions_time", "gen", "org_id", "completed_at", "completion_id"),
        Index("ix_completions_user", "gen", "org_id", "user_id"),
    )


class ProgramMember(Base):
    """Membership is the newest of added/removed; completion facts are kept after removal."""

    __tablename__ = "program_members"

    gen: Mapped[int] = _gen()
    org_id: Mapped[str] = _key()
    program_id: Mapped[str] = _key()
    user_id: Mapped[str] = _key()
    member: Mapped[bool] = mapped_column(Boolean, default=True)
    membership_at: Mapped[datetime | None]
    membership_id: Mapped[str | None] = mapped_column(String(200))
    added_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]


class Assignment(Base):
    """A course or program assigned to a user; its status is derived when read (see queries)."""

    __tablename__ = "assignments"

    gen: Mapped[int] = _gen()
    org_id: Mapped[str] = _key()
    assignment_id: Mapped[str] = _key()
    user_id: Mapped[str] = mapped_column(ID)
    course_id: Mapped[str | None] = mapped_column(ID)
    program_id: Mapped[str | None] = mapped_column(ID)
    title: Mapped[str] = mapped_column(TEXT)
    due_on: Mapped[date] = mapped_column(Date)
    mandatory: Mapped[bool] = mapped_column(Boolean)
    cycle: Mapped[int] = mapped_column(Integer)
    assigned_at: Mapped[datetime | None]
    previous_assignment_id: Mapped[str | None] = mapped_column(ID)
    completed_at: Mapped[datetime | None]
    late: Mapped[bool | None] = mapped_column(Boolean)
    overdue_since: Mapped[date | None] = mapped_column(Date)

    __table_args__ = (
        Index("ix_assignments_user", "gen", "org_id", "user_id", "assignment_id"),
        Index("ix_assignments_previous", "gen", "org_id", "previous_assignment_id"),
    )


class QuizAttempt(Base):
    __tablename__ = "quiz_attempts"

    gen: Mapped[int] = _gen()
    org_id: Mapped[str] = _key()
    attempt_id: Mapped[str] = _key()
    user_id: Mapped[str] = mapped_column(ID)
    quiz_id: Mapped[str] = mapped_column(ID)
    course_id: Mapped[str] = mapped_column(ID)
    enrollment_id: Mapped[str] = mapped_column(ID)
    attempt: Mapped[int] = mapped_column(Integer)
    score_percent: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(Boolean)
    submitted_at: Mapped[datetime]

    __table_args__ = (Index("ix_quiz_attempts_user", "gen", "org_id", "user_id"),)


class Certificate(Base):
    __tablename__ = "certificates"

    gen: Mapped[int] = _gen()
    org_id: Mapped[str] = _key()
    certificate_id: Mapped[str] = _key()
    user_id: Mapped[str] = mapped_column(ID)
    course_id: Mapped[str | None] = mapped_column(ID)
    program_id: Mapped[str | None] = mapped_column(ID)
    title: Mapped[str] = mapped_column(TEXT)
    verification_code: Mapped[str] = mapped_column(String(200))
    issued_at: Mapped[datetime]

    __table_args__ = (Index("ix_certificates_user", "gen", "org_id", "user_id"),)


# The projections, in the order a rebuild clears them.
PROJECTIONS: tuple[type[Base], ...] = (
    Learner,
    UserAlias,
    Location,
    Course,
    Program,
    ProgramCourse,
    Enrollment,
    LessonCompletion,
    Completion,
    ProgramMember,
    Assignment,
    QuizAttempt,
    Certificate,
)
