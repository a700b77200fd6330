"""Cohorts as a source of enrollments: catalog schedules a cohort (courses, dates, seats,
instructors); enrollment keeps who is in it. A member is enrolled in each of the cohort's
courses with the source ``cohort``; never more members than seats, even under concurrent
requests; leaving closes that source and keeps the learning history. A cohort is a scheduled
group: once its last day has passed (in its organization's time zone) it takes no new members
and opens no course it gains, while its members keep what they learn.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from enrollment import learning, replica
from enrollment.events import publish, publish_many, stamp
from enrollment.models import Cohort, CohortMember, Enrollment, EnrollmentSource
from lms_common.contracts import enrollment as contract
from lms_common.db import utcnow
from lms_common.errors import Conflict, NotFound

KIND = "cohort"


def cohort_in(session: Session, orgs: set[str], cohort_id: str, *, lock: bool = False) -> Cohort:
    """The cohort (row-locked when asked: seats are counted under the lock); 404 elsewhere."""
    cohort = session.get(Cohort, cohort_id, with_for_update=lock, populate_existing=lock)
    if cohort is None or cohort.org_id not in orgs:
        raise NotFound("no such cohort", code="cohort_not_found")
    return cohort


def members(session: Session, cohort_id: str) -> list[str]:
    query = select(CohortMember.user_id).where(CohortMember.cohort_id == cohort_id, CohortMember.removed_at.is_(None))
    return list(session.scalars(query))


def add_members(session: Session, cohort: Cohort, user_ids: list[str], actor_id: str | None) -> list[str]:
    """Make users members (again, if they left) and enroll them; the ones who were not members.

    Call with the cohort row locked (:func:`cohort_in` ``lock=True``) so that concurrent
    additions count the seats one after another.
    """
    current = set(members(session, cohort.id))
    new = [user for user in dict.fromkeys(user_ids) if user not in current]
    if new and ended(session, cohort):
        raise Conflict(f"the cohort ended on {cohort.ends_on}; it takes no new members", code="cohort_ended")
    if cohort.seats is not None and len(current) + len(new) > cohort.seats:
        left = max(cohort.seats - len(current), 0)
        raise Conflict(f"{left} seats left in the cohort, {len(new)} asked", code="cohort_full", seats_left=left)
    now = utcnow()
    for user in new:
        member = session.get(CohortMember, (cohort.id, user))
        if member is None:
            session.add(CohortMember(cohort_id=cohort.id, user_id=user, org_id=cohort.org_id, added_at=now))
        else:
            member.removed_at, member.added_at = None, now
    session.flush()
    learning.enroll(session, cohort.org_id, new, list(cohort.course_ids), kind=KIND, ref=cohort.id)
    payloads = [
        {"cohort_id": cohort.id, "org_id": cohort.org_id, "user_id": user, "cohort_title": cohort.title,
         "course_ids": list(cohort.course_ids), "added_at": stamp(now), "actor_id": actor_id, "cause": "api"}
        for user in new
    ]  # fmt: skip
    publish_many(session, contract.COHORT_MEMBER_ADDED, cohort.org_id, payloads)
    return new


def remove_member(session: Session, cohort: Cohort, user_id: str, actor_id: str | None) -> None:
    """The user leaves the cohort; its enrollments stay, without the cohort as a source."""
    member = session.get(CohortMember, (cohort.id, user_id))
    if member is None or member.removed_at is not None:
        raise NotFound("not a member of this cohort", code="member_not_found")
    member.removed_at = utcnow()
    _close_sources(session, cohort.id, select(Enrollment.id).where(Enrollment.user_id == user_id))
    payload = {"cohort_id": cohort.id, "org_id": cohort.org_id, "user_id": user_id,
               "removed_at": stamp(member.removed_at), "actor_id": actor_id, "cause": "api"}  # fmt: skip
    publish(session, contract.COHORT_MEMBER_REMOVED, cohort.org_id, payload)


def courses_changed(session: Session, cohort_id: str, added: list[str], removed: list[str]) -> None:
    """Members get the courses the cohort gained (unless it has ended); the cohort stops opening
    the ones it lost."""
    cohort = session.get(Cohort, cohort_id)
    if cohort is None:
        return
    if added and not ended(session, cohort):
        learning.enroll(session, cohort.org_id, members(session, cohort_id), added, kind=KIND, ref=cohort_id)
    if removed:
        _close_sources(session, cohort_id, select(Enrollment.id).where(Enrollment.course_id.in_(removed)))


def ended(session: Session, cohort: Cohort) -> bool:
    """Whether the cohort's last day has passed where its organization is."""
    return cohort.ends_on is not None and replica.local_today(session, cohort.org_id, utcnow()) > cohort.ends_on


def _close_sources(session: Session, cohort_id: str, enrollments: object) -> None:
    session.execute(
        update(EnrollmentSource)
        .where(EnrollmentSource.kind == KIND, EnrollmentSource.ref == cohort_id)
        .where(EnrollmentSource.enrollment_id.in_(enrollments))  # type: ignore[arg-type]
        .values(active=False)
        .execution_options(synchronize_session=False)
    )
