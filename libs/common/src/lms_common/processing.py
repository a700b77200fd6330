"""Handling consumed messages, whatever carried them (RabbitMQ or the in-memory bus).

A batch of deliveries is handled in one database transaction with a savepoint per message, so
one commit serves many messages while a failing message rolls back only its own work. Each
message's inbox row is written in its savepoint: a redelivered event is a duplicate with no
effect. The transport acks only after :meth:`MessageProcessor.process` has returned, that is
after the commit.

A service may also register a batch handler for an event type: it gets a run of consecutive
events of that type together and writes their effects set-based. Only consecutive runs are
grouped, so an event never overtakes one of another type delivered before it (a
UserProvisioned before a command addressed by its email). A handler wrapped in
:class:`MixedRuns` and registered under several types gets a run of consecutive events of any
of them, in delivery order: it handles them in that order itself, so nothing overtakes anything
either, and interleaved types (an onboarding's EmployeeOnboarded and the UserProvisioned it
causes) no longer break a batch into runs of one. When the batch is handled again message by
message, the batch handler gets each event alone, so a poison message costs only itself.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from lms_common import faults, inbox, metrics
from lms_common.context import correlation
from lms_common.db import session_scope
from lms_common.envelope import Event, EventCatalog, InvalidEvent, decode
from lms_common.statistics import StatisticsKeeper

log = structlog.get_logger("lms.consumer")

Handler = Callable[[Session, Event], None]
BatchHandler = Callable[[Session, list[Event]], None]
MAX_BODY_BYTES = 1024 * 1024


_correlations: ContextVar[Mapping[str, str] | None] = ContextVar("batch_correlations", default=None)


def event_correlation(event: Event) -> AbstractContextManager[None]:
    """Run the block with the correlation id of ``event``'s delivery: a batch handler runs
    under its first event's id, and wraps what it does for another event in this."""
    return correlation(correlation_of(event))


def correlation_of(event: Event) -> str:
    """The correlation id of ``event``'s delivery (for ``outbox.add_many(request_ids=...)``)."""
    return (_correlations.get() or {}).get(event.id, event.id)


class MixedRuns:
    """A batch handler that takes a run of events of several of its types in one call, handling
    them in the order given (see the module's docstring)."""

    def __init__(self, handler: BatchHandler) -> None:
        self.handler = handler

    def __call__(self, session: Session, events: list[Event]) -> None:
        self.handler(session, events)


class HandlerFailed(Exception):
    """Work of the fast path failed: the batch is handled again, message by message.

    Raised by the processor itself, and by handlers that defer work to the end of a batch
    (reporting's projections) when that deferred work fails.
    """


class Reject(Exception):
    """Raised by a handler for a message that can never succeed: dead-letter it at once."""


class Outcome(enum.Enum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"  # a known event this service has no handler for
    RETRY = "retry"  # failed this time; try again after a pause
    DEAD_LETTER = "dead_lettered"


@dataclass
class Delivery:
    """A message as the transport handed it over; ``tag`` is the transport's own handle."""

    body: bytes
    routing_key: str
    message_id: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    tag: Any = None
    attempts: int = 0


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reason: str | None = None


def is_connection_failure(exc: BaseException) -> bool:
    """A lost database connection fails the whole batch, not the message in hand."""
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class MessageProcessor:
    """Turns deliveries into results: parse, validate, de-duplicate, handle."""

    def __init__(
        self,
        service: str,
        session_factory: sessionmaker[Session],
        handlers: Mapping[str, Handler],
        catalog: EventCatalog,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        batch_handlers: Mapping[str, BatchHandler] | None = None,
        statistics: StatisticsKeeper | None = None,
    ):
        self.service = service
        self.session_factory = session_factory
        self.handlers = dict(handlers)
        self.batch_handlers = dict(batch_handlers or {})
        self.statistics = statistics
        self.catalog = catalog
        self.max_body_bytes = max_body_bytes

    def parse(self, delivery: Delivery) -> Event | Result:
        if len(delivery.body) > self.max_body_bytes:
            return Result(Outcome.DEAD_LETTER, f"body of {len(delivery.body)} bytes exceeds {self.max_body_bytes}")
        try:
            return self.catalog.validate(decode(delivery.body))
        except InvalidEvent as exc:
            return Result(Outcome.DEAD_LETTER, exc.reason)

    def process(self, deliveries: Sequence[Delivery]) -> list[Result]:
        """Handle a batch in one transaction; raises only when the database itself failed.

        The fast path runs every handler in the batch's transaction. Should one fail, that
        transaction is rolled back whole and the batch is handled again with a savepoint per
        message, so the failure costs only its own work and the common case pays no savepoints.
        """
        parsed = [self.parse(delivery) for delivery in deliveries]
        faults.maybe_delay("handler")
        try:
            results = self._process(deliveries, parsed, isolate=False)
        except HandlerFailed:
            results = self._process(deliveries, parsed, isolate=True)
        for delivery, item, result in zip(deliveries, parsed, results, strict=True):
            event_type = item.type if isinstance(item, Event) else "invalid"
            metrics.record_consumed(self.service, event_type, result.outcome.value)
            self._log(delivery, item, result)
        return results

    def _process(self, deliveries: Sequence[Delivery], parsed: list[Event | Result], *, isolate: bool) -> list[Result]:
        results: list[Result | None] = [item if isinstance(item, Result) else None for item in parsed]
        todo = [(i, item) for i, item in enumerate(parsed) if isinstance(item, Event)]
        for i, event in todo:
            if event.type not in self.handlers and event.type not in self.batch_handlers:
                results[i] = Result(Outcome.IGNORED, f"{self.service} has no handler for {event.type}")
        todo = [(i, event) for i, event in todo if results[i] is None]
        with session_scope(self.session_factory) as session:
            fresh = inbox.record_many(session, [(event.id, event.type) for _, event in todo])
            new: list[tuple[int, Event]] = []
            for i, event in todo:
                if event.id not in fresh:
                    results[i] = Result(Outcome.DUPLICATE)
                    continue
                fresh.discard(event.id)  # the same id twice in one batch: the second is a duplicate
                new.append((i, event))
            failed: list[str] = []
            for group in self._groups(new, isolate=isolate):
                result = self._handle(session, deliveries, group, isolate=isolate)
                for i, event in group:
                    results[i] = result
                    if result.outcome is not Outcome.HANDLED:
                        failed.append(event.id)
            if not isolate:
                self._flush(session)
            inbox.forget(session, failed)
            if self.statistics is not None:  # before the next batch's lookups grow with the tables
                self.statistics.refresh(session)
        return [result for result in results if result is not None]

    def _groups(self, events: list[tuple[int, Event]], *, isolate: bool) -> Iterator[list[tuple[int, Event]]]:
        """Consecutive events one batch handler takes together go together; the rest alone."""
        group: list[tuple[int, Event]] = []
        for item in events:
            if group and (isolate or not self._joins(group[0][1], item[1])):
                yield group
                group = []
            group.append(item)
        if group:
            yield group

    def _joins(self, first: Event, event: Event) -> bool:
        """Whether ``event`` goes to the batch handler call of the run that ``first`` began:
        the same type, or another type of the same :class:`MixedRuns` handler."""
        handler = self.batch_handlers.get(event.type)
        if handler is None:
            return False
        if event.type == first.type:
            return True
        return isinstance(handler, MixedRuns) and self.batch_handlers.get(first.type) is handler

    @staticmethod
    def _flush(session: Session) -> None:
        """Write the batch's pending changes now, so that a failing one is a handler failure
        (handled again message by message) rather than a failed commit."""
        try:
            session.flush()
        except Exception as exc:
            if is_connection_failure(exc):
                raise
            raise HandlerFailed from exc

    def _handle(
        self, session: Session, deliveries: Sequence[Delivery], group: list[tuple[int, Event]], *, isolate: bool
    ) -> Result:
        """Handle one event, or a run of events of one type with their batch handler."""
        events = [event for _, event in group]
        ids = {event.id: str(deliveries[i].headers.get("x-request-id") or event.id) for i, event in group}
        event_type = events[0].type
        started = time.perf_counter()
        savepoint = session.begin_nested() if isolate else None
        try:
            token = _correlations.set(ids)
            try:
                with correlation(ids[events[0].id]):
                    if event_type in self.batch_handlers:
                        self.batch_handlers[event_type](session, events)
                    else:
                        self.handlers[event_type](session, events[0])
            finally:
                _correlations.reset(token)
            if savepoint is not None:
                savepoint.commit()
        except Exception as exc:
            if is_connection_failure(exc):
                raise
            if savepoint is None:
                raise HandlerFailed from exc
            savepoint.rollback()
            if isinstance(exc, Reject):
                return Result(Outcome.DEAD_LETTER, f"rejected by handler: {exc}")
            return Result(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
        finally:
            share = (time.perf_counter() - started) / len(events)
            for event in events:
                metrics.observe_handling(self.service, event.type, share)
        return Result(Outcome.HANDLED)

    def _log(self, delivery: Delivery, item: Event | Result, result: Result) -> None:
        fields: dict[str, Any] = {
            "outcome": result.outcome.value,
            "routing_key": delivery.routing_key,
            "message_id": delivery.message_id,
            "correlation_id": delivery.headers.get("x-request-id"),
        }
        if isinstance(item, Event):
            fields.update(event_type=item.type, event_id=item.id, orgid=item.orgid)
        if result.reason:
            fields["reason"] = result.reason
        level = log.warning if result.outcome in (Outcome.RETRY, Outcome.DEAD_LETTER) else log.info
        level("message", **fields)
