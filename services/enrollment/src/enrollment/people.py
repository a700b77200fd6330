"""What identity's facts about people change here: merges and disabled users."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from enrollment.events import publish, stamp
from enrollment.models import (
    Assignment,
    Certificate,
    Enrollment,
    EnrollmentSource,
    LessonCompletion,
    ProgramMember,
    QuizAttempt,
    User,
)
from lms_common.contracts import enrollment as contract
from lms_common.db import utcnow


def merge(session: Session, org: str, from_user: str, to_user: str, merged_at: datetime) -> None:
    """Move from_user's learning to to_user; where both hold a course, the further progress wins."""
    moved = [_move_enrollment(session, e, to_user) for e in _enrollments(session, from_user)]
    certificates = list(session.scalars(select(Certificate.id).where(Certificate.user_id == from_user)))
    session.execute(update(Certificate).where(Certificate.user_id == from_user).values(user_id=to_user))
    session.execute(update(QuizAttempt).where(QuizAttempt.user_id == from_user).values(user_id=to_user))
    _move_members(session, from_user, to_user)
    _move_assignments(session, from_user, to_user)
    user = session.get(User, from_user)
    if user is not None:
        user.merged_into = to_user
    payload = {
        "org_id": org, "from_user_id": from_user, "to_user_id": to_user, "enrollment_ids": moved,
        "certificate_ids": certificates, "merged_at": stamp(merged_at),
    }  # fmt: skip
    publish(session, contract.USER_HISTORY_MERGED, org, payload)


def _enrollments(session: Session, user_id: str) -> list[Enrollment]:
    return list(session.scalars(select(Enrollment).where(Enrollment.user_id == user_id)))


def _move_enrollment(session: Session, old: Enrollment, to_user: str) -> str:
    """The enrollment to_user keeps for this course (the further one), with both sources."""
    kept = session.scalar(
        select(Enrollment).where(Enrollment.user_id == to_user, Enrollment.course_id == old.course_id)
    )
    if kept is None:
        old.user_id = to_user
        session.flush()
        return old.id
    if (old.progress_percent, old.completed_at is not None) > (kept.progress_percent, kept.completed_at is not None):
        session.execute(delete(LessonCompletion).where(LessonCompletion.enrollment_id == kept.id))
        session.execute(
            update(LessonCompletion).where(LessonCompletion.enrollment_id == old.id).values(enrollment_id=kept.id)
        )
        kept.progress_percent, kept.completed_at = old.progress_percent, old.completed_at or kept.completed_at
    mine = set(
        session.execute(
            select(EnrollmentSource.kind, EnrollmentSource.ref).where(EnrollmentSource.enrollment_id == kept.id)
        )
    )
    for source in session.scalars(select(EnrollmentSource).where(EnrollmentSource.enrollment_id == old.id)):
        if (source.kind, source.ref) not in mine:
            session.add(EnrollmentSource(enrollment_id=kept.id, kind=source.kind, ref=source.ref, active=source.active))
    session.execute(update(QuizAttempt).where(QuizAttempt.enrollment_id == old.id).values(enrollment_id=kept.id))
    # The old user's progress is reset: its enrollment goes, its history now lives in kept.
    session.execute(delete(LessonCompletion).where(LessonCompletion.enrollment_id == old.id))
    session.execute(delete(EnrollmentSource).where(EnrollmentSource.enrollment_id == old.id))
    session.delete(old)
    session.flush()
    return kept.id


def _move_members(session: Session, from_user: str, to_user: str) -> None:
    theirs = set(session.scalars(select(ProgramMember.program_id).where(ProgramMember.user_id == to_user)))
    for member in session.scalars(select(ProgramMember).where(ProgramMember.user_id == from_user)):
        if member.program_id in theirs:
            session.delete(member)
        else:
            member.user_id = to_user


def _move_assignments(session: Session, from_user: str, to_user: str) -> None:
    taken = set(session.execute(select(Assignment.target_id, Assignment.cycle).where(Assignment.user_id == to_user)))
    for assignment in session.scalars(select(Assignment).where(Assignment.user_id == from_user)):
        if (assignment.target_id, assignment.cycle) not in taken:
            assignment.user_id = to_user


def disable(session: Session, org: str, user_id: str, disabled_at: datetime, reason: str) -> None:
    """Close a disabled user's access to every course; its history stays."""
    user = session.get(User, user_id)
    if user is not None:
        user.disabled_at = disabled_at
    session.execute(
        update(Enrollment).where(Enrollment.user_id == user_id, Enrollment.access_closed_at.is_(None))
        .values(access_closed_at=disabled_at).execution_options(synchronize_session=False)
    )  # fmt: skip
    payload = {"org_id": org, "user_id": user_id, "closed_at": stamp(utcnow()), "reason": reason[:200]}
    publish(session, contract.ACCESS_CLOSED, org, payload)


def enable(session: Session, user_id: str, enabled_at: datetime) -> None:
    user = session.get(User, user_id)
    if user is not None and (user.disabled_at is None or enabled_at > user.disabled_at):
        user.disabled_at = None
        session.execute(
            update(Enrollment).where(Enrollment.user_id == user_id).values(access_closed_at=None)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
