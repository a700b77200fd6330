"""Large assignment batches: answered 202 with a job, run in a thread of the API process."""

from __future__ import annotations

import threading
from datetime import date
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from enrollment import assignments
from enrollment.models import Assignment, Job
from lms_common.db import session_scope, utcnow

log = structlog.get_logger("enrollment.jobs")


def run_assignment(session: Session, org: str, request: dict[str, Any], actor_id: str) -> str:
    """Carry out an assignment request (already checked); returns the batch id."""
    locations = set(request["locations"]) if request.get("locations") is not None else None
    users = assignments.users_query(org, request.get("user_ids"), locations, request.get("department"))
    return assignments.assign(
        session, org, users, request["items"], due_on=date.fromisoformat(request["due_on"]),
        mandatory=request["mandatory"], actor_id=actor_id,
    )  # fmt: skip


def start(factory: sessionmaker[Session], job_id: str) -> threading.Thread:
    thread = threading.Thread(target=run, args=(factory, job_id), name=f"job-{job_id}", daemon=True)
    thread.start()
    return thread


def run(factory: sessionmaker[Session], job_id: str) -> None:
    """Run a queued job in one transaction; its row says how it ended."""
    try:
        with session_scope(factory) as session:
            job = session.get(Job, job_id)
            if job is None or job.status != "queued":
                return
            batch = run_assignment(session, job.org_id, job.request, job.created_by)
            count = session.scalar(select(func.count()).where(Assignment.batch_id == batch))
            job.status, job.result, job.finished_at = "succeeded", {"assignments": count, "batch_id": batch}, utcnow()
    except Exception as exc:
        log.exception("job failed", job_id=job_id)
        with session_scope(factory) as session:
            job = session.get(Job, job_id)
            if job is not None:
                job.status, job.error, job.finished_at = "failed", repr(exc)[:2000], utcnow()
