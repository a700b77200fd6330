"""Events catalog consumes: identity's instructor status, for the approved-instructor replica."""

from __future__ import annotations

from sqlalchemy.orm import Session

from catalog import services
from lms_common.envelope import Event, parse_time
from lms_common.processing import Handler


def on_instructor_status_changed(session: Session, event: Event) -> None:
    """Only approved instructors may be named on a cohort; keep identity's latest word on it."""
    data = event.data
    changed_at = parse_time(data["changed_at"]) if data.get("changed_at") else event.time
    org = data.get("org_id") or event.orgid
    services.record_instructor_status(session, org, data["user_id"], data["status"], changed_at)


HANDLERS: dict[str, Handler] = {"InstructorStatusChanged": on_instructor_status_changed}
