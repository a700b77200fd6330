"""The outbox relay: publishes committed outbox rows and, after the confirm, moves them to the
sent log (:func:`outbox.mark_sent`).

Rows are taken in batches with ``FOR UPDATE SKIP LOCKED`` so several relays share the work
without publishing the same row. A relay that dies between publish and mark leaves the rows
unsent: they are published again and the consumers' inboxes absorb the duplicates. The relay
sleeps on PostgreSQL ``LISTEN`` (woken by the ``NOTIFY`` that :func:`outbox.add` sends at
commit) with a short poll as a safety net; on SQLite it polls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

import psycopg
import structlog
from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from lms_common import faults, metrics, outbox
from lms_common.consumer import Backoff
from lms_common.db import session_scope, utcnow
from lms_common.messaging import CONNECTION_ERRORS, OutgoingMessage, PublishError, PublishOutcome
from lms_common.outbox import OutboxMessage

log = structlog.get_logger("lms.relay")

# Failures that end one cycle; the relay backs off and tries again.
RELAY_ERRORS: tuple[type[BaseException], ...] = (PublishError, DBAPIError, *CONNECTION_ERRORS)
SENT_RETENTION = timedelta(days=7)
PURGE_EVERY_SECONDS = 3600.0
METRICS_EVERY_SECONDS = 1.0
MAX_REPUBLISH_DELAY = timedelta(minutes=5)


class Publisher(Protocol):
    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[PublishOutcome]: ...


class Waker(Protocol):
    def wait(self, timeout: float) -> None: ...


class PollWaker:
    """No notifications (SQLite): sleep a little."""

    def __init__(self, stop: threading.Event, interval: float = 0.1):
        self.stop, self.interval = stop, interval

    def wait(self, timeout: float) -> None:
        self.stop.wait(min(timeout, self.interval))


class ListenWaker:
    """Sleeps until ``channel`` (the outbox's by default) is notified on PostgreSQL, or the
    timeout passes."""

    def __init__(self, database_url: str, stop: threading.Event, channel: str = outbox.NOTIFY_CHANNEL):
        self.dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.stop, self.channel = stop, channel
        self.connection: psycopg.Connection | None = None

    def wait(self, timeout: float) -> None:
        try:
            if self.connection is None or self.connection.closed:
                self.connection = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
                self.connection.execute(f"LISTEN {self.channel}")
            for _ in self.connection.notifies(timeout=timeout, stop_after=1):
                pass
        except psycopg.Error as exc:
            log.warning("listener lost its connection", channel=self.channel, error=repr(exc))
            self.connection = None
            self.stop.wait(min(timeout, 1.0))


def republish_delay(attempts: int) -> timedelta:
    return min(MAX_REPUBLISH_DELAY, timedelta(seconds=2**attempts))


class Relay:
    def __init__(
        self,
        service: str,
        session_factory: sessionmaker[Session],
        publisher: Publisher,
        *,
        batch_size: int = 500,
        poll_seconds: float = 1.0,
    ):
        self.service = service
        self.session_factory = session_factory
        self.publisher = publisher
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self._last_metrics = 0.0
        self._last_purge = time.monotonic()

    def relay_once(self) -> int:
        """Publish one batch; returns how many rows it took (0 when the outbox is empty)."""
        with session_scope(self.session_factory) as session:
            rows = outbox.unsent_batch(session, self.batch_size)
            if not rows:
                return 0
            outcomes = self.publisher.publish_batch([_message(row) for row in rows])
            faults.maybe_crash("relay_after_publish")
            self._mark(session, rows, outcomes)
        return len(rows)

    def _mark(self, session: Session, rows: Sequence[outbox.UnsentRow], outcomes: list[PublishOutcome]) -> None:
        now = utcnow()
        sent = [row.id for row, outcome in zip(rows, outcomes, strict=True) if outcome.confirmed]
        outbox.mark_sent(session, sent, now)
        for row, outcome in zip(rows, outcomes, strict=True):
            if not outcome.confirmed:
                attempts = row.attempts + 1
                retry = {
                    "attempts": attempts,
                    "publish_after": now + republish_delay(attempts),
                    "last_error": outcome.reason,
                }
                session.execute(update(OutboxMessage).where(OutboxMessage.id == row.id).values(**retry))
                log.warning("event not routed, will retry", event_id=row.event_id, reason=outcome.reason)
        metrics.OUTBOX_PUBLISHED.labels(self.service).inc(len(sent))
        metrics.OUTBOX_RETURNED.labels(self.service).inc(len(rows) - len(sent))

    def run(self, stop: threading.Event, waker: Waker) -> None:
        backoff = Backoff()
        while not stop.is_set():
            try:
                taken = self.relay_once()
                self._housekeeping()
                backoff.reset()
            except RELAY_ERRORS as exc:
                metrics.OUTBOX_RELAY_FAILURES.labels(self.service).inc()
                delay = backoff.next()
                log.warning("relay cycle failed", error=repr(exc), retry_in=delay)
                stop.wait(delay)
                continue
            if taken < self.batch_size:
                waker.wait(self.poll_seconds)
        log.info("relay stopped", service=self.service)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_metrics >= METRICS_EVERY_SECONDS:
            self._last_metrics = now
            with session_scope(self.session_factory) as session:
                count, age = outbox.backlog(session)
            metrics.OUTBOX_BACKLOG.labels(self.service).set(count)
            metrics.OUTBOX_OLDEST_AGE.labels(self.service).set(age)
        if now - self._last_purge >= PURGE_EVERY_SECONDS:
            self._last_purge = now
            with session_scope(self.session_factory) as session:
                purged = outbox.purge_sent(session, SENT_RETENTION)
            log.info("purged the sent log", count=purged)


def _message(row: outbox.UnsentRow) -> OutgoingMessage:
    return OutgoingMessage(
        routing_key=row.routing_key,
        body=row.body,
        message_id=row.event_id,
        headers=row.headers or {},
        event_type=row.event_type,
    )
