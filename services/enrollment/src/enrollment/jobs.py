"""Large assignment batches as durable jobs: stored by the API, carried out by a job runner.

The API stores the job with its (already checked) request and answers 202. A runner, a thread
of every enrollment worker process, claims the oldest queued job with ``FOR UPDATE SKIP
LOCKED`` in a short transaction (``running``, its name, a lease), then carries it out a chunk of
:data:`CHUNK_USERS` users at a time, in user id order. Each chunk is one transaction holding the
job's row lock: it commits that chunk's assignments, enrollments and events with the job's
progress (the last user done, the counts so far) and a renewed lease; the last one commits the
job's result instead.

So a job has one effect whatever happens to its runner: a runner that dies rolls back the chunk
in hand with its connection; the job stays ``running`` without a lock, and once its lease has
passed another runner takes it again and continues after the last committed chunk. A live
runner is never displaced, whatever its lease says: the chunk in hand holds the row lock, and
each commit renews the lease. A job whose runner died :data:`MAX_ATTEMPTS` times, or that
failed that many times, is ``failed`` with the reason.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import structlog
from sqlalchemy import Select, and_, or_, select, text
from sqlalchemy.orm import Session, sessionmaker

from enrollment import assignments
from enrollment.assignments import Batch
from enrollment.models import Job, User
from lms_common.db import is_postgres, session_scope, utcnow
from lms_common.relay import ListenWaker, PollWaker, Waker

log = structlog.get_logger("enrollment.jobs")

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
NOTIFY_CHANNEL = "enrollment_jobs"
MAX_ATTEMPTS = 3
LEASE = timedelta(seconds=60)
# Woken by NOTIFY on PostgreSQL; the poll finds jobs whose runner died (their lease passed).
POLL_SECONDS = 5.0
# One transaction of 10,000 users x a few courses stays well inside PostgreSQL's buffer pool
# (a whole 500,000-user job did not, and checkpoints ran inside it), keeps each chunk far
# shorter than the lease, and is all a dying runner loses.
CHUNK_USERS = 10_000


def request_users(org: str, request: dict[str, Any]) -> Select[Any]:
    """The ids of the users an assignment request names."""
    locations = set(request["locations"]) if request.get("locations") is not None else None
    return assignments.users_query(org, request.get("user_ids"), locations, request.get("department"))


def run_assignment(
    session: Session, org: str, request: dict[str, Any], actor_id: str, users: Select[Any] | None = None
) -> Batch:
    """Carry out an assignment request (already checked), for ``users`` of it if given: the
    batch and what it created."""
    users = request_users(org, request) if users is None else users
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


@dataclass(frozen=True)
class Progress:
    """What a job's committed chunks did: the last user done (users go in id order), their
    batches and counts."""

    after_user: str | None = None
    batch_ids: tuple[str, ...] = ()
    assignments: int = 0
    enrollments: int = 0

    @classmethod
    def of(cls, job: Job) -> Progress:
        saved = job.progress or {}
        return cls(
            saved.get("after_user"), tuple(saved.get("batch_ids", ())), saved.get("assignments", 0),
            saved.get("enrollments", 0),
        )  # fmt: skip

    def add(self, batch: Batch, last_user: str | None) -> Progress:
        return Progress(
            last_user, (*self.batch_ids, batch.id), self.assignments + batch.assignments,
            self.enrollments + batch.enrollments,
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {"after_user": self.after_user, **self.as_result()}

    def as_result(self) -> dict[str, Any]:
        """The job's result; ``batch_id`` is its first chunk's (a job of one chunk is one batch)."""
        return {
            "batch_id": self.batch_ids[0], "batch_ids": list(self.batch_ids), "assignments": self.assignments,
            "enrollments": self.enrollments,
        }  # fmt: skip


def next_chunk(session: Session, users: Select[Any], after: str | None) -> tuple[Select[Any], str | None]:
    """The next :data:`CHUNK_USERS` of ``users`` after the user ``after``, and the last of them
    (None when no user is left after this chunk)."""
    rest = users.where(User.id > after) if after is not None else users
    # The chunk's last user and the one after it, if any: a job never ends on an empty chunk.
    ids = session.scalars(rest.order_by(User.id).offset(CHUNK_USERS - 1).limit(2)).all()
    if len(ids) < 2:
        return rest, None
    return rest.where(User.id <= ids[0]), ids[0]


def run(factory: sessionmaker[Session], job_id: str, runner: str, lease: timedelta = LEASE) -> str | None:
    """Carry out a job this runner claimed, chunk by chunk; its status afterwards (None: not ours)."""
    try:
        status: str | None = RUNNING
        while status == RUNNING:
            status = _run_chunk(factory, job_id, runner, lease)
        return status
    except Exception as exc:
        log.exception("job failed", job_id=job_id, runner=runner)
        return _failed(factory, job_id, runner, repr(exc))


def _run_chunk(factory: sessionmaker[Session], job_id: str, runner: str, lease: timedelta) -> str | None:
    """Commit the job's next chunk with its progress, or with its result if it was the last."""
    with session_scope(factory) as session:
        job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
        if job is None or job.status != RUNNING or job.runner != runner:
            return None  # finished meanwhile, or taken by another runner after our lease
        done = Progress.of(job)
        users, last_user = next_chunk(session, request_users(job.org_id, job.request), done.after_user)
        progress = done.add(run_assignment(session, job.org_id, job.request, job.created_by, users), last_user)
        if last_user is None:
            _finish(job, SUCCEEDED, result=progress.as_result())
            return SUCCEEDED
        job.progress, job.lease_until = progress.as_dict(), utcnow() + lease
        return RUNNING


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
        log.info("job ended", job_id=job_id, status=run(self.factory, job_id, self.name, self.lease))
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
