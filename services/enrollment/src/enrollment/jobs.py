"""Large assignment batches as durable jobs: stored by the API, carried out by a job runner.

The API stores the job with its (already checked) request and answers 202. A runner, a thread
of every enrollment worker process, claims the oldest queued job with ``FOR UPDATE SKIP
LOCKED`` in a short transaction (``running``, its name, a lease), then holds the job's row lock
while it carries the job out in chunks of :data:`CHUNK_USERS` users (in user id order, the
bounds chosen once per job and kept with it). Each chunk is a transaction of its own, on its own
connection, that commits the chunk's assignments, enrollments and events with a ``job_chunks``
row; on PostgreSQL :data:`PARALLEL_CHUNKS` run at once. The job's result is committed when every
chunk is.

So a job has one effect whatever happens to its runner: a runner that dies rolls back the chunks
in hand with their connections and releases the row lock; once the job's lease has passed
another runner takes it again and does only the chunks without a ``job_chunks`` row (a chunk
inserts that row first, so two runners of one chunk cannot both commit it). A live runner is
never displaced, whatever its lease says: its row lock makes the others skip the job. A job
whose runner died :data:`MAX_ATTEMPTS` times, or that failed that many times, is ``failed``
with the reason.
"""

from __future__ import annotations

import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import structlog
from sqlalchemy import Select, and_, func, or_, select, text
from sqlalchemy.orm import Session, sessionmaker

from enrollment import assignments
from enrollment.assignments import Batch
from enrollment.models import Job, JobChunk, User
from lms_common.db import is_postgres, session_scope, utcnow
from lms_common.relay import ListenWaker, PollWaker, Waker

log = structlog.get_logger("enrollment.jobs")

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
NOTIFY_CHANNEL = "enrollment_jobs"
MAX_ATTEMPTS = 3
LEASE = timedelta(seconds=60)
# Woken by NOTIFY on PostgreSQL; the poll finds jobs whose runner died (their lease passed).
POLL_SECONDS = 5.0
# A chunk is all a dying runner loses, and two chunks use two cores. A chunk looks up earlier
# assignments and enrollments by key (see assignments.assign), so its cost does not grow with
# the rows earlier chunks wrote, and it needs no fresh statistics between chunks.
CHUNK_USERS = 25_000
# The work of a chunk is in the database (heap, indexes, WAL) and one backend uses one core:
# two chunks at once use both of a small server's. SQLite takes one writer at a time.
PARALLEL_CHUNKS = 2


def request_users(org: str, request: dict[str, Any]) -> Select[Any]:
    """The ids of the users an assignment request names."""
    locations = set(request["locations"]) if request.get("locations") is not None else None
    return assignments.users_query(org, request.get("user_ids"), locations, request.get("department"))


def run_assignment(
    session: Session, org: str, request: dict[str, Any], actor_id: str, users: Select[Any] | None = None
) -> Batch:
    """Carry out an assignment request (already checked), for ``users`` of it if given: the
    batch and what it created."""
    return assignments.assign(
        session, org, request_users(org, request) if users is None else users, request["items"],
        due_on=date.fromisoformat(request["due_on"]), mandatory=request["mandatory"], actor_id=actor_id,
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


def plan(session: Session, users: Select[Any]) -> list[str]:
    """The last user id of each chunk of ``users`` but the last one."""
    listed = users.subquery()
    numbered = select(
        listed.c.id, func.row_number().over(order_by=listed.c.id).label("n"), func.count().over().label("total")
    ).subquery()
    bounds = select(numbered.c.id).where(numbered.c.n % CHUNK_USERS == 0, numbered.c.n < numbered.c.total)
    return list(session.scalars(bounds.order_by(numbered.c.id)))


@dataclass(frozen=True)
class Chunk:
    """The users of a job after ``after`` up to ``through`` in id order (None: no bound)."""

    job_id: str
    position: int
    after: str | None
    through: str | None

    def of(self, users: Select[Any]) -> Select[Any]:
        if self.after is not None:
            users = users.where(User.id > self.after)
        return users.where(User.id <= self.through) if self.through is not None else users


def chunks(job_id: str, bounds: list[str]) -> list[Chunk]:
    edges: list[str | None] = [None, *bounds, None]
    return [Chunk(job_id, position, edges[position], edges[position + 1]) for position in range(len(bounds) + 1)]


def run(factory: sessionmaker[Session], job_id: str, runner: str) -> str | None:
    """Carry out a job this runner claimed; its status afterwards (None: not ours)."""
    try:
        bounds = _planned(factory, job_id, runner)
        if bounds is None:
            return None
        with session_scope(factory) as session:
            job = _locked(session, job_id, runner)  # held until every chunk is committed
            if job is None:
                return None
            workers = PARALLEL_CHUNKS if is_postgres(session) else 1
            _run_chunks(factory, job, _not_done(session, job.id, bounds), workers)
            _finish(job, SUCCEEDED, result=_result(session, job.id))
            return SUCCEEDED
    except Exception as exc:
        log.exception("job failed", job_id=job_id, runner=runner)
        return _failed(factory, job_id, runner, repr(exc))


def _locked(session: Session, job_id: str, runner: str) -> Job | None:
    """The job, row-locked, if this runner still holds it (it may have finished meanwhile, or
    been taken by another runner after our lease)."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    return job if job is not None and job.status == RUNNING and job.runner == runner else None


def _planned(factory: sessionmaker[Session], job_id: str, runner: str) -> list[str] | None:
    """The job's chunk bounds, chosen and committed by its first run: a later runner's chunks
    are the same whatever users came and went since."""
    with session_scope(factory) as session:
        job = _locked(session, job_id, runner)
        if job is None:
            return None
        if job.chunk_bounds is None:
            job.chunk_bounds = plan(session, request_users(job.org_id, job.request))
        return list(job.chunk_bounds)


def _not_done(session: Session, job_id: str, bounds: list[str]) -> list[Chunk]:
    """The job's chunks without a ``job_chunks`` row: all on the first run."""
    done = set(session.scalars(select(JobChunk.position).where(JobChunk.job_id == job_id)))
    return [chunk for chunk in chunks(job_id, bounds) if chunk.position not in done]


def _run_chunks(factory: sessionmaker[Session], job: Job, todo: list[Chunk], workers: int) -> None:
    """Commit each chunk of ``todo``, ``workers`` at a time."""
    order = (job.org_id, job.request, job.created_by)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="job-chunk")
    try:
        for future in [pool.submit(_run_chunk, factory, chunk, *order) for chunk in todo]:
            future.result()
    finally:
        pool.shutdown(cancel_futures=True)  # after a failed chunk, start no other


def _run_chunk(factory: sessionmaker[Session], chunk: Chunk, org: str, request: dict[str, Any], actor_id: str) -> None:
    """One chunk in one transaction: its ``job_chunks`` row, then its users' assignments."""
    with session_scope(factory) as session:
        # The row goes in first: a second runner of this chunk waits on it, then fails, before any work.
        row = JobChunk(job_id=chunk.job_id, position=chunk.position, batch_id="", assignments=0, enrollments=0)
        session.add(row)
        session.flush()
        batch = run_assignment(session, org, request, actor_id, chunk.of(request_users(org, request)))
        row.batch_id, row.assignments, row.enrollments = batch.id, batch.assignments, batch.enrollments


def _result(session: Session, job_id: str) -> dict[str, Any]:
    """The job's result; ``batch_id`` is its first chunk's (a job of one chunk is one batch)."""
    rows = session.scalars(select(JobChunk).where(JobChunk.job_id == job_id).order_by(JobChunk.position)).all()
    return {
        "batch_id": rows[0].batch_id, "batch_ids": [row.batch_id for row in rows],
        "assignments": sum(row.assignments for row in rows), "enrollments": sum(row.enrollments for row in rows),
    }  # fmt: skip


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
