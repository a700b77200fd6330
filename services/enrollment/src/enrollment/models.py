"""Enrollment's tables: replicas of catalog and identity, and the learning record itself.

Replicas (``Course``, ``Product``, ``Program``, ``Quiz``, ``Cohort``, ``User``, ``Organization``,
``Location``)
are built only from events and keep the aggregate ``version`` (catalog) or the event time
(identity) so that a late, older event never overwrites a newer state.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from lms_common.db import Base, new_id, utcnow

ID = String(36)
ORG = String(200)
TITLE = String(200)

PUBLISHED = "published"
ACTIVE = "active"
REVOKED = "revoked"
SOURCES = ("grant", "program", "assignment", "cohort", "direct")


# --- catalog replica ----------------------------------------------------------------------------


class Course(Base):
    __tablename__ = "courses"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str] = mapped_column(ORG, index=True)
    title: Mapped[str] = mapped_column(TITLE)
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)
    lesson_count: Mapped[int] = mapped_column(Integer, default=0)


class CourseLesson(Base):
    """A currently published lesson of a course: the denominator of progress."""

    __tablename__ = "course_lessons"

    course_id: Mapped[str] = mapped_column(ID, primary_key=True)
    lesson_id: Mapped[str] = mapped_column(ID, primary_key=True)
    position: Mapped[int] = mapped_column(Integer)


class Product(Base):
    __tablename__ = "products"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str] = mapped_column(ORG, index=True)
    title: Mapped[str] = mapped_column(TITLE)
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)


class ProductCourse(Base):
    __tablename__ = "product_courses"

    product_id: Mapped[str] = mapped_column(ID, primary_key=True)
    course_id: Mapped[str] = mapped_column(ID, primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)


class Program(Base):
    __tablename__ = "programs"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str] = mapped_column(ORG, index=True)
    title: Mapped[str] = mapped_column(TITLE)
    published: Mapped[bool] = mapped_column(Boolean)
    enforce_course_order: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer)


class ProgramCourse(Base):
    __tablename__ = "program_courses"

    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    course_id: Mapped[str] = mapped_column(ID, primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)


class Quiz(Base):
    """A quiz with its answer key (never shown to learners; attempts are graded here)."""

    __tablename__ = "quizzes"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str] = mapped_column(ORG)
    lesson_id: Mapped[str] = mapped_column(ID, index=True)
    course_id: Mapped[str] = mapped_column(ID)
    pass_percent: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int | None] = mapped_column(Integer)
    questions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)


class Cohort(Base):
    __tablename__ = "cohorts"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str] = mapped_column(ORG)
    title: Mapped[str] = mapped_column(TITLE)
    course_ids: Mapped[list[str]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    # How many members it takes; None for a replica row kept before seats were (until its next event).
    seats: Mapped[int | None] = mapped_column(Integer)
    # Its instructors read its members (CONTRACT: an instructor sees its cohorts' enrollments).
    instructor_ids: Mapped[list[str] | None] = mapped_column(JSON)
    # Its last day, in its organization's time zone: an ended cohort takes no new members and
    # opens no course it gains. None for a replica row kept before the date was (until its next event).
    ends_on: Mapped[date | None] = mapped_column(Date)


# --- identity replica ---------------------------------------------------------------------------


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str] = mapped_column(ORG)
    email: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str] = mapped_column(TITLE, default="")
    last_name: Mapped[str] = mapped_column(TITLE, default="")
    location_id: Mapped[str | None] = mapped_column(ID)
    department: Mapped[str | None] = mapped_column(TITLE)
    disabled_at: Mapped[datetime | None]
    merged_into: Mapped[str | None] = mapped_column(ID)
    updated_at: Mapped[datetime]
    # When identity first announced the user (UserProvisioned). A user kept from a UserUpdated
    # alone has none: its first UserProvisioned still opens what its grants hold.
    provisioned_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_users_email", "email"),
        Index("ix_users_org_location", "org_id", "location_id"),
        Index("ix_users_org_department", "org_id", "department"),
    )

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email


class Organization(Base):
    """An organization's time zone: its dates (assignment due dates) are days in that zone."""

    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(ORG, primary_key=True)
    time_zone: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class Location(Base):
    __tablename__ = "locations"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str] = mapped_column(ORG, index=True)
    parent_id: Mapped[str | None] = mapped_column(ID)
    name: Mapped[str] = mapped_column(TITLE)


# --- grants and seats ---------------------------------------------------------------------------


class Grant(Base):
    """A product granted to one owner: a user (``user_id``) or an organization's members.

    ``seats`` is None for a grant that opens the courses to its owner, and a number for a
    purchase whose owner hands the seats out (each holder gets its own grant, ``parent_id``).
    """

    __tablename__ = "grants"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ORG)
    product_id: Mapped[str] = mapped_column(ID)
    user_id: Mapped[str | None] = mapped_column(ID, index=True)
    organization_id: Mapped[str | None] = mapped_column(ORG, index=True)
    owner_key: Mapped[str] = mapped_column(String(250))
    status: Mapped[str] = mapped_column(String(20), default=ACTIVE)
    seats: Mapped[int | None] = mapped_column(Integer)
    seats_used: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(20))
    parent_id: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("org_id", "product_id", "owner_key", name="uq_grants_owner"),)


class SeatHolder(Base):
    """An email a purchaser gave a seat to; ``user_id`` empty until identity provisions it."""

    __tablename__ = "seat_holders"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    grant_id: Mapped[str] = mapped_column(ID)
    org_id: Mapped[str] = mapped_column(ORG)
    email: Mapped[str] = mapped_column(String(320), index=True)
    user_id: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("grant_id", "email", name="uq_seat_holders_grant_email"),)


class CommandKey(Base):
    """A natural key of a command already carried out (or parked): a repeat has no effect."""

    __tablename__ = "command_keys"

    org_id: Mapped[str] = mapped_column(ORG, primary_key=True)
    natural_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    command: Mapped[str] = mapped_column(String(100))
    done_at: Mapped[datetime] = mapped_column(default=utcnow)


class PendingCommand(Base):
    """A command addressed to an email no user has yet; carried out on its UserProvisioned."""

    __tablename__ = "pending_commands"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ORG)
    email: Mapped[str] = mapped_column(String(320), index=True)
    command: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- enrollments and progress -------------------------------------------------------------------


class Enrollment(Base):
    """One user in one course, whatever its sources; progress counts published lessons only."""

    __tablename__ = "enrollments"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ORG)
    user_id: Mapped[str] = mapped_column(ID)
    course_id: Mapped[str] = mapped_column(ID, index=True)
    progress_percent: Mapped[int] = mapped_column(Integer, default=0)
    first_source: Mapped[str] = mapped_column(String(20))
    first_source_id: Mapped[str | None] = mapped_column(String(200))
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    access_closed_at: Mapped[datetime | None]
    batch_id: Mapped[str | None] = mapped_column(ID, index=True)

    # Reads by user go through this unique index: no (org_id, user_id) index of its own.
    __table_args__ = (UniqueConstraint("user_id", "course_id", name="uq_enrollments_user_course"),)

    @property
    def status(self) -> str:
        return enrollment_status(self.progress_percent, self.completed_at)


def enrollment_status(progress_percent: int, completed_at: datetime | None) -> str:
    if completed_at is not None:
        return "completed"
    return "in_progress" if progress_percent > 0 else "not_started"


class EnrollmentSource(Base):
    """Why a user is enrolled: ``kind`` and the id behind it (grant, program, assignment...)."""

    __tablename__ = "enrollment_sources"

    enrollment_id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    ref: Mapped[str] = mapped_column(String(200), primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class LessonCompletion(Base):
    __tablename__ = "lesson_completions"

    enrollment_id: Mapped[str] = mapped_column(ID, primary_key=True)
    lesson_id: Mapped[str] = mapped_column(ID, primary_key=True)
    completed_at: Mapped[datetime] = mapped_column(default=utcnow)


class BulkTarget(Base):
    """Scratch rows of one set-based enrollment batch (deleted when the batch is done)."""

    __tablename__ = "bulk_targets"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ID, index=True)
    org_id: Mapped[str] = mapped_column(ORG)
    user_id: Mapped[str] = mapped_column(ID)
    course_id: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str] = mapped_column(String(200))


class ProgramMember(Base):
    __tablename__ = "program_members"

    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ID, primary_key=True, index=True)
    org_id: Mapped[str] = mapped_column(ORG)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]


class CohortMember(Base):
    """A learner in a cohort: enrolled in its courses (source ``cohort``) while a member."""

    __tablename__ = "cohort_members"

    cohort_id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ID, primary_key=True, index=True)
    org_id: Mapped[str] = mapped_column(ORG)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None]


# --- assignments ----------------------------------------------------------------------------------


class Assignment(Base):
    """A course or program a user must complete by ``due_on``; one row per cycle."""

    __tablename__ = "assignments"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ORG)
    user_id: Mapped[str] = mapped_column(ID)
    course_id: Mapped[str | None] = mapped_column(ID)
    program_id: Mapped[str | None] = mapped_column(ID)
    target_id: Mapped[str] = mapped_column(ID)
    title: Mapped[str] = mapped_column(TITLE)
    due_on: Mapped[date] = mapped_column(Date)
    mandatory: Mapped[bool] = mapped_column(Boolean)
    cycle: Mapped[int] = mapped_column(Integer)
    natural_key: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    overdue_published_at: Mapped[datetime | None]
    batch_id: Mapped[str | None] = mapped_column(ID, index=True)

    __table_args__ = (
        # Also the index of every read by user, and of the lookups of a batch's earlier cycles.
        UniqueConstraint("user_id", "target_id", "cycle", name="uq_assignments_user_target_cycle"),
        Index("ix_assignments_open_due", "due_on", postgresql_where=text("completed_at IS NULL")),
    )


class Job(Base):
    """A large assignment batch stored with its request at its 202 answer; polled at
    ``GET /v1/jobs/{id}``.

    A runner claims it (``running``, ``runner``, ``lease_until``) and carries it out; a job
    still ``running`` after its lease is one whose runner died, and another runner takes it.
    """

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ORG)
    kind: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(2000))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    runner: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    # The last user id of each chunk but the last (see jobs.plan); chosen once, on the first run.
    chunk_bounds: Mapped[list[str] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_jobs_status_created", "status", "created_at"),)


class JobChunk(Base):
    """A committed chunk of a job: its users' assignments, enrollments and events are written."""

    __tablename__ = "job_chunks"

    job_id: Mapped[str] = mapped_column(ID, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[str] = mapped_column(ID)
    assignments: Mapped[int] = mapped_column(Integer)
    enrollments: Mapped[int] = mapped_column(Integer)
    done_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- quizzes and certificates ---------------------------------------------------------------------


class QuizAttempt(Base):
    """A graded attempt with every answer given, kept for audit."""

    __tablename__ = "quiz_attempts"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ORG)
    user_id: Mapped[str] = mapped_column(ID)
    quiz_id: Mapped[str] = mapped_column(ID)
    enrollment_id: Mapped[str] = mapped_column(ID, index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    score_percent: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(Boolean)
    answers: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("user_id", "quiz_id", "attempt", name="uq_quiz_attempts_user_quiz_attempt"),)


class Certificate(Base):
    __tablename__ = "certificates"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ORG)
    user_id: Mapped[str] = mapped_column(ID, index=True)
    course_id: Mapped[str | None] = mapped_column(ID)
    program_id: Mapped[str | None] = mapped_column(ID)
    title: Mapped[str] = mapped_column(TITLE)
    learner_name: Mapped[str] = mapped_column(TITLE)
    verification_code: Mapped[str] = mapped_column(String(40), unique=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
