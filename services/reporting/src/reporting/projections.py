"""Projections: how each event changes the read models of one generation.

Each ``apply_*`` function takes a :class:`Target` (session, generation, organization, event)
and is safe to run twice and in any order against the other events: a fact changes a row only
when it is newer than the fact the row holds, compared by (timestamp, event id).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from lms_common.db import Base
from lms_common.envelope import Event, parse_time
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


@dataclass(frozen=True)
class Target:
    """Where an event is projected: one generation of one organization's rows."""

    session: Session
    gen: int
    event: Event

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
        return self.session.get(model, (self.gen, self.org, *key))

    def add(self, model: type[M], *key: str, **values: Any) -> M:
        """The row with this key, created with ``values`` when it does not exist yet."""
        found = self.row(model, *key)
        if found is not None:
            return found
        names = [column.key for column in model.__table__.primary_key.columns]  # type: ignore[attr-defined]
        created = model(**dict(zip(names, (self.gen, self.org, *key), strict=True)), **values)
        self.session.add(created)
        return created

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
    existing = t.session.scalars(
        select(ProgramCourse).where(
            ProgramCourse.gen == t.gen, ProgramCourse.org_id == t.org, ProgramCourse.program_id == program_id
        )
    )
    for row in existing:
        t.session.delete(row)
    t.session.flush()
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
    certificate = t.session.scalars(
        select(Certificate)
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
    t.session.flush()
    t.session.execute(
        update(Completion)
        .where(Completion.gen == t.gen, Completion.org_id == t.org, Completion.user_id == certificate.user_id)
        .where(Completion.course_id == certificate.course_id, Completion.program_id == certificate.program_id)
        .where(Completion.verification_code.is_(None))
        .values(certificate_id=certificate.certificate_id, verification_code=certificate.verification_code)
        .execution_options(synchronize_session="fetch")
    )


def apply_history_merged(t: Target) -> None:
    """Enrollments and certificates moved to the surviving contact; so do its other facts."""
    d = t.data
    source, target = d["from_user_id"], d["to_user_id"]
    t.add(UserAlias, source, to_user_id=target)
    t.session.flush()
    for model in (Enrollment, LessonCompletion, Completion, QuizAttempt, Certificate, Assignment):
        t.session.execute(
            update(model)
            .where(model.gen == t.gen, model.org_id == t.org, model.user_id == source)  # type: ignore[attr-defined]
            .values(user_id=target)
            .execution_options(synchronize_session="fetch")
        )
    _merge_members(t, source, target)


def _merge_members(t: Target, source: str, target: str) -> None:
    rows = t.session.scalars(
        select(ProgramMember).where(
            ProgramMember.gen == t.gen, ProgramMember.org_id == t.org, ProgramMember.user_id == source
        )
    )
    for row in list(rows):
        kept = t.add(ProgramMember, row.program_id, target, member=row.member)
        if row.added_at is not None:
            kept.added_at = _earliest(kept.added_at, row.added_at)
        if row.completed_at is not None:
            kept.completed_at = _earliest(kept.completed_at, row.completed_at)
        if row.membership_at is not None and newer(
            row.membership_at, row.membership_id or "", kept.membership_at, kept.membership_id
        ):
            kept.member, kept.membership_at, kept.membership_id = row.member, row.membership_at, row.membership_id
        t.session.delete(row)


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


def project(session: Session, gen: int, event: Event) -> None:
    """Apply one event to generation ``gen`` (events no report reads are only logged)."""
    projector = PROJECTORS.get(event.type)
    if projector is not None:
        projector(Target(session, gen, event))
