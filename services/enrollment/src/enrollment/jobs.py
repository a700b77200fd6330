"""Large assignment batches as durable jobs: stored by the API, carried out by a job runner.

The API stores the job with its (already checked) request and answers 202. A runner, a thread
of every enrollment worker process, claims the oldest queued job with ``FOR UPDATE SKIP
LOCKED`` in a short transaction (``running``, its name, a lease), then carries it out in one
transaction that holds the job's row lock until it commits the assignments, the enrollments,
their events and the job's result together.

So a job has one effect whatever happens to its runner: a runner that dies rolls its work
back with its connection; the job stays ``running`` without a lock, and once its lease has
passed another runner takes it again. A live runner is never displaced, whatever its lease
says: its row lock makes the others skip the job. A job whose runner died
:data:`MAX_ATTEMPTS` times, or that failed that many times, is ``failed`` with the reason.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, or_, select, text
from sqlalchemy.orm import Session, sessionmaker

from enrollment import assignments
from enrollment.models import Job
from lms_common.db import is_postgres, session_scope, utcnow
from lms_common.relay import ListenWaker, PollWaker, Waker

log = structlog.get_logger("enrollment.jobs")

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
NOTIFY_CHANNEL = "enrollment_jobs"
MAX_ATTEMPTS = 3
LEASE = timedelta(seconds=60)
# Woken by NOTIFY on PostgreSQL; the poll finds jobs whose runner died (their lease passed).
POLL_SECONDS = 5.0


def run_assignment(session: Session, org: str, request: dict[str, Any], actor_id: str) -> assignments.Batch:
    """Carry out an assignment request (already checked): the batch and what it created."""
    locations = set(request["locations"]) if request.get("locations") is not None else None
    users = assignments.users_query(org, request.get("user_ids"), locations, request.get("department"))
    return assignments.assign(
        session, org, users, request["items"], due_on=date.fromisoformat(request["due_on"]),
        mandatory=request["mandatory"], actor_id=actor_id,
    )  # fmt: skip


def enqueue(session: Session, org: str, request: dict[str, Any], actor_id: str) -> Job:
    """Store a job for a runner; on PostgreSQL the runners are woken at commit."""
    job = Job(org_id=org, kind="assignments", request=request, created_by=actor_id, attempts=0)
    session.add(job)
    session.flush()
    if is_postgres(session):
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
    return job


# --- claiming and running -------------------------------------------------------------------------


def claim(factory: sessionmaker[Session], runner: str, lease: timedelta = LEASE) -> str | None:
    """Take the oldest job that is queued, or running past its lease; its id, or None."""
    while True:
        with session_scope(factory) as session:
            now = utcnow()
            takeable = or_(Job.status == QUEUED, and_(Job.status == RUNNING, Job.lease_until < now))
            query = select(Job).where(takeable).order_by(Job.created_at).limit(1)
            job = session.scalar(query.with_for_update(skip_locked=True))
            if job is None:
                return None
            if job.attempts >= MAX_ATTEMPTS:
                _finish(job, FAILED, error=f"gave up after {job.attempts} attempts: its runner stopped each time")
                continue
            job.status, job.runner, job.attempts = RUNNING, runner, job.attempts + 1
            job.started_at, job.lease_until = now, now + lease
            return job.id


def run(factory: sessionmaker[Session], job_id: str, runner: str) -> str | None:
    """Carry out a job this runner claimed, all or nothing; its status afterwards (None: not ours)."""
    try:
        with session_scope(factory) as session:
            job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
            if job is None or job.status != RUNNING or job.runner != runner:
                return None  # finished meanwhile, or taken by another runner after our lease
            batch = run_assignment(session, job.org_id, job.request, job.created_by)
            _finish(job, SUCCEEDED, result=batch.as_result())
            return SUCCEEDED
    except Exception as exc:
        log.exception("job failed", job_id=job_id, runner=runner)
        return _failed(factory, job_id, runner, repr(exc))


def _failed(factory: sessionmaker[Session], job_id: str, runner: str, error: str) -> str | None:
    """Note a failed attempt: queued again for another attempt, or failed for good."""
    with session_scope(factory) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.status != RUNNING or job.runner != runner:
            return None
        if job.attempts >= MAX_ATTEMPTS:
            _finish(job, FAILED, error=error)
        else:
            job.status, job.error, job.runner, job.lease_until = QUEUED, error[:2000], None, None
        return job.status


def _finish(job: Job, status: str, *, result: dict[str, Any] | None = None, error: str | None = None) -> None:
    job.status, job.result, job.finished_at, job.lease_until = status, result, utcnow(), None
    job.error = error[:2000] if error else None


# --- the runner -----------------------------------------------------------------------------------


def runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


@dataclass
class JobRunner:
    """Claims and runs jobs until ``stop`` is set (a daemon thread of the worker process)."""

    factory: sessionmaker[Session]
    waker: Waker
    stop: threading.Event
    name: str = field(default_factory=runner_name)
    lease: timedelta = LEASE
    poll_seconds: float = POLL_SECONDS

    @classmethod
    def for_database(cls, factory: sessionmaker[Session], database_url: str, stop: threading.Event) -> JobRunner:
        postgres = database_url.startswith("postgresql")
        waker: Waker = ListenWaker(database_url, stop, NOTIFY_CHANNEL) if postgres else PollWaker(stop, 1.0)
        return cls(factory, waker, stop)

    def run_once(self) -> bool:
        """Claim and run one job; False when none was waiting."""
        job_id = claim(self.factory, self.name, self.lease)
        if job_id is None:
            return False
        log.info("job claimed", job_id=job_id, runner=self.name)
        log.info("job ended", job_id=job_id, status=run(self.factory, job_id, self.name))
        return True

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                if self.run_once():
                    continue
            except Exception:
                log.exception("job runner cycle failed")
                self.stop.wait(self.poll_seconds)
            self.waker.wait(self.poll_seconds)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="job-runner", daemon=True)
        thread.start()
        return thread
