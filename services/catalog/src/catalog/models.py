"""The library: products > courses > modules > lessons, and programs, quizzes and cohorts.

Every row carries its ``org_id``: each query is filtered by the caller's organization. The
aggregates that publish events (course, product, program, quiz, cohort) carry a ``version``
that grows with each change, so consumers can drop an event older than the state they hold.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lms_common.db import Base, new_id, utcnow

LESSON_KINDS = ("text", "video", "pdf", "link", "quiz", "scorm")
QUESTION_KINDS = ("single_choice", "multiple_choice", "true_false", "short_text")
DRAFT, PUBLISHED = "draft", "published"
ACTIVE, INACTIVE = "active", "inactive"


def _id() -> Mapped[str]:
    return mapped_column(String(36), primary_key=True, default=new_id)


def _ref(target: str, *, index: bool = True) -> Mapped[str]:
    return mapped_column(String(36), ForeignKey(target, ondelete="CASCADE"), index=index)


def _org() -> Mapped[str]:
    return mapped_column(String(200), index=True)


class Course(Base):
    __tablename__ = "courses"

    id: Mapped[str] = _id()
    org_id: Mapped[str] = _org()
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=DRAFT)
    created_by: Mapped[str] = mapped_column(String(200))
    # No foreign key: the original may belong to history only; the link is informative.
    derived_from: Mapped[str | None] = mapped_column(String(36))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]

    modules: Mapped[list[Module]] = relationship(
        back_populates="course", order_by="(Module.position, Module.id)", cascade="all, delete-orphan"
    )

    __table_args__ = (Index("ix_courses_org_created", "org_id", "created_at", "id"),)


class Module(Base):
    __tablename__ = "modules"

    id: Mapped[str] = _id()
    org_id: Mapped[str] = _org()
    course_id: Mapped[str] = _ref("courses.id")
    title: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    course: Mapped[Course] = relationship(back_populates="modules")
    lessons: Mapped[list[Lesson]] = relationship(
        back_populates="module", order_by="(Lesson.position, Lesson.id)", cascade="all, delete-orphan"
    )


class Lesson(Base):
    __tablename__ = "lessons"

    id: Mapped[str] = _id()
    org_id: Mapped[str] = _org()
    module_id: Mapped[str] = _ref("modules.id")
    course_id: Mapped[str] = _ref("courses.id")
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=DRAFT)
    body: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(2000))
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]

    module: Mapped[Module] = relationship(back_populates="lessons")
    quiz: Mapped[Quiz | None] = relationship(back_populates="lesson", cascade="all, delete-orphan")
    scorm: Mapped[ScormPackage | None] = relationship(back_populates="lesson", cascade="all, delete-orphan")


class ScormPackage(Base):
    """The validated SCORM zip of a scorm lesson (one per lesson; a new upload replaces it)."""

    __tablename__ = "scorm_packages"

    id: Mapped[str] = _id()
    org_id: Mapped[str] = _org()
    lesson_id: Mapped[str] = mapped_column(String(36), ForeignKey("lessons.id", ondelete="CASCADE"), unique=True)
    scorm_version: Mapped[str] = mapped_column(String(20))
    launch_path: Mapped[str] = mapped_column(String(1000))
    title: Mapped[str] = mapped_column(String(200), default="")
    file_count: Mapped[int] = mapped_column(Integer)
    uncompressed_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_path: Mapped[str] = mapped_column(String(1000))
    uploaded_by: Mapped[str] = mapped_column(String(200))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)

    lesson: Mapped[Lesson] = relationship(back_populates="scorm")


class Product(Base):
    __tablename__ = "products"

    id: Mapped[str] = _id()
    org_id: Mapped[str] = _org()
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=INACTIVE)
    created_by: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    links: Mapped[list[ProductCourse]] = relationship(order_by="ProductCourse.position", cascade="all, delete-orphan")

    __table_args__ = (Index("ix_products_org_created", "org_id", "created_at", "id"),)


class ProductCourse(Base):
    __tablename__ = "product_courses"

    product_id: Mapped[str] = mapped_column(String(36), ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    course_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("courses.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer)


class Program(Base):
    __tablename__ = "programs"

    id: Mapped[str] = _id()
    org_id: Mapped[str] = _org()
    title: Mapped[str] = mapped_column(String(200))
    enforce_course_order: Mapped[bool] = mapped_column(default=False)
    published: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    links: Mapped[list[ProgramCourse]] = relationship(order_by="ProgramCourse.position", cascade="all, delete-orphan")

    __table_args__ = (UniqueConstraint("org_id", "title", name="uq_programs_org_title"),)


class ProgramCourse(Base):
    __tablename__ = "program_courses"

    program_id: Mapped[str] = mapped_column(String(36), ForeignKey("programs.id", ondelete="CASCADE"), primary_key=True)
    course_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("courses.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer)


class Quiz(Base):
    __tablename__ = "quizzes"

    id: Mapped[str] = _id()
    org_id: Mapped[str] = _org()
    lesson_id: Mapped[str] = mapped_column(String(36), ForeignKey("lessons.id", ondelete="CASCADE"), unique=True)
    course_id: Mapped[str] = _ref("courses.id")
    pass_percent: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    lesson: Mapped[Lesson] = relationship(back_populates="quiz")
    questions: Mapped[list[Question]] = relationship(order_by="Question.position", cascade="all, delete-orphan")


class Question(Base):
    __tablename__ = "questions"

    id: Mapped[str] = _id()
    quiz_id: Mapped[str] = _ref("quizzes.id")
    position: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20))
    choices: Mapped[list[str]] = mapped_column(JSON, default=list)
    answer: Mapped[Any] = mapped_column(JSON)


class Cohort(Base):
    __tablename__ = "cohorts"

    id: Mapped[str] = _id()
    org_id: Mapped[str] = _org()
    title: Mapped[str] = mapped_column(String(200))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    seats: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    links: Mapped[list[CohortCourse]] = relationship(order_by="CohortCourse.position", cascade="all, delete-orphan")
    instructors: Mapped[list[CohortInstructor]] = relationship(
        order_by="CohortInstructor.user_id", cascade="all, delete-orphan"
    )

    __table_args__ = (Index("ix_cohorts_org_created", "org_id", "created_at", "id"),)


class CohortCourse(Base):
    __tablename__ = "cohort_courses"

    cohort_id: Mapped[str] = mapped_column(String(36), ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True)
    course_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("courses.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer)


class CohortInstructor(Base):
    __tablename__ = "cohort_instructors"

    cohort_id: Mapped[str] = mapped_column(String(36), ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)


class Instructor(Base):
    """Replica of identity's instructor status (from InstructorStatusChanged events)."""

    __tablename__ = "instructors"

    org_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    changed_at: Mapped[datetime]
