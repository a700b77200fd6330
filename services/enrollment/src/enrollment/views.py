"""What the API answers: plain dicts built from the models inside the unit of work."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from enrollment import assignments, learning
from enrollment.models import Assignment, Certificate, Enrollment, Grant, Job


def grant(row: Grant) -> dict[str, Any]:
    return {
        "id": row.id, "product_id": row.product_id, "user_id": row.user_id, "organization_id": row.organization_id,
        "status": row.status, "seats": row.seats, "seats_used": row.seats_used, "source": row.source,
        "created_at": row.created_at,
    }  # fmt: skip


def enrollment(session: Session, row: Enrollment) -> dict[str, Any]:
    return {
        "id": row.id, "user_id": row.user_id, "course_id": row.course_id, "progress_percent": row.progress_percent,
        "status": row.status, "enrolled_at": row.enrolled_at, "completed_at": row.completed_at,
        "lessons": learning.lessons_done(session, row.id),
    }  # fmt: skip


def assignment(session: Session, row: Assignment, today: date) -> dict[str, Any]:
    progress = None
    if row.course_id:
        found = learning.enrollment_of(session, row.user_id, row.course_id)
        progress = found.progress_percent if found else None
    return {
        "id": row.id, "user_id": row.user_id, "course_id": row.course_id, "program_id": row.program_id,
        "title": row.title, "due_on": row.due_on, "mandatory": row.mandatory, "cycle": row.cycle,
        "status": assignments.status_of(row, progress, today), "completed_at": row.completed_at,
    }  # fmt: skip


def certificate(row: Certificate) -> dict[str, Any]:
    return {
        "id": row.id, "user_id": row.user_id, "course_id": row.course_id, "program_id": row.program_id,
        "title": row.title, "verification_code": row.verification_code, "issued_at": row.issued_at,
    }  # fmt: skip


def job(row: Job) -> dict[str, Any]:
    return {
        "id": row.id, "status": row.status, "kind": row.kind, "result": row.result, "error": row.error,
        "attempts": row.attempts, "created_at": row.created_at, "started_at": row.started_at,
        "finished_at": row.finished_at,
    }  # fmt: skip
