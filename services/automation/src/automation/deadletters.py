"""The operator view of every service's dead-letter queue (``<prefix><service>.dead``).

Draining takes each message with ``basic_get``, stores it (reason, original routing key and
queue, headers, body) and acks it only after the commit: a crash in between leaves it in the
queue, and its fingerprint makes the second copy a no-op. Replaying publishes the stored body
again, with publisher confirms, to the original queue through the default exchange (only the
service that failed sees it again) or to the events exchange under its original routing key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pika
import structlog
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from automation import metrics
from automation.models import DeadLetter
from lms_common.config import Settings
from lms_common.db import session_scope, utcnow
from lms_common.errors import Conflict, Problem
from lms_common.messaging import CONNECTION_ERRORS, PERSISTENT, connection_parameters

log = structlog.get_logger("automation.deadletters")

SERVICES = ("identity", "catalog", "enrollment", "automation", "reporting")
LMS_HEADERS = ("x-lms-reason", "x-lms-original-routing-key", "x-lms-original-queue", "x-lms-dead-lettered-at")


def dead_letter_queues(settings: Settings) -> dict[str, str]:
    """Each service's dead-letter queue under this deployment's prefix."""
    return {service: f"{settings.queue_prefix}{service}.dead" for service in SERVICES}


@contextmanager
def connect(settings: Settings) -> Iterator[pika.BlockingConnection]:
    params = connection_parameters(settings.amqp_url, heartbeat=settings.heartbeat_seconds, name="automation-dead")
    connection = pika.BlockingConnection(params)
    try:
        yield connection
    finally:
        if connection.is_open:
            connection.close()


def drain(factory: sessionmaker[Session], settings: Settings, limit: int = 1000) -> int:
    """Move up to ``limit`` dead letters of every service into the table; returns how many."""
    taken = 0
    with connect(settings) as connection:
        for service, queue in dead_letter_queues(settings).items():
            # A queue that does not exist closes its channel: each queue gets its own.
            taken += _drain_queue(factory, connection.channel(), service, queue, limit - taken)
    return taken


def drain_quietly(factory: sessionmaker[Session], settings: Settings) -> bool:
    """Drain, or log why not (the stored view is still served); True when the broker answered."""
    try:
        drain(factory, settings)
        return True
    except CONNECTION_ERRORS as exc:
        log.warning("dead letters not drained: broker unavailable", error=repr(exc))
        return False


def _drain_queue(factory: sessionmaker[Session], ch: BlockingChannel, service: str, queue: str, limit: int) -> int:
    taken = 0
    while taken < limit:
        try:
            method, properties, body = ch.basic_get(queue, auto_ack=False)
        except pika.exceptions.ChannelClosedByBroker:  # the queue does not exist (yet)
            return taken
        if method is None:
            return taken
        with session_scope(factory) as session:
            store(session, service, queue, properties, body)
        ch.basic_ack(method.delivery_tag)
        metrics.DEAD_LETTERS.labels(service, "drained").inc()
        taken += 1
    return taken


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def store(session: Session, service: str, queue: str, properties: Any, body: bytes) -> DeadLetter | None:
    """Keep one dead letter, unless the same one was kept already (a drain cut short)."""
    headers = {str(k): _text(v) for k, v in (properties.headers or {}).items() if not isinstance(v, list | dict)}
    stamp = headers.get("x-lms-dead-lettered-at", "")
    fingerprint = hashlib.sha256(f"{queue}|{properties.message_id}|{stamp}|".encode() + body).hexdigest()
    if session.scalar(select(DeadLetter.id).where(DeadLetter.fingerprint == fingerprint)):
        return None
    parsed = _peek(body)
    letter = DeadLetter(
        fingerprint=fingerprint,
        service=service,
        queue=queue,
        original_queue=headers.get("x-lms-original-queue") or queue.removesuffix(".dead"),
        original_routing_key=headers.get("x-lms-original-routing-key", ""),
        reason=headers.get("x-lms-reason") or "dead-lettered by the broker (delivery limit)",
        message_id=properties.message_id,
        org_id=parsed.get("orgid") if isinstance(parsed.get("orgid"), str) else None,
        event_type=parsed.get("type") if isinstance(parsed.get("type"), str) else None,
        headers=headers,
        body=body,
        dead_lettered_at=stamp or None,
    )
    session.add(letter)
    return letter


def _peek(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def replay(settings: Settings, letter: DeadLetter, to: str = "queue") -> None:
    """Publish the letter again (confirmed): to its original queue, or to the events exchange."""
    headers = {k: v for k, v in letter.headers.items() if k not in LMS_HEADERS}
    headers["x-lms-replayed-from"] = letter.id
    properties = pika.BasicProperties(
        content_type="application/cloudevents+json",
        delivery_mode=PERSISTENT,
        message_id=letter.message_id,
        headers=headers,
    )
    exchange, key = ("", letter.original_queue) if to == "queue" else (settings.exchange, letter.original_routing_key)
    try:
        with connect(settings) as connection:
            ch = connection.channel()
            ch.confirm_delivery()
            ch.basic_publish(exchange, key, letter.body, properties=properties, mandatory=True)
    except pika.exceptions.UnroutableError as exc:
        raise Conflict(f"nothing takes {key!r} on {exchange or 'the default exchange'}", code="unroutable") from exc
    except CONNECTION_ERRORS as exc:
        raise Problem("the broker is unavailable; try again", status=503, code="broker_unavailable") from exc
    letter.status, letter.replayed_at = "replayed", utcnow()
    letter.replay_count += 1
    metrics.DEAD_LETTERS.labels(letter.service, "replayed").inc()
