"""CallWebhook deliveries: signed POSTs sent after the run's commit, retried with backoff.

The body is the JSON the run recorded. Headers: ``X-LMS-Signature: sha256=<hex>``, the
HMAC-SHA256 with the action's secret of ``<X-LMS-Timestamp>.<body>``, so a receiver can check
both origin and freshness; ``X-LMS-Delivery`` (stable across retries) lets it de-duplicate.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from automation import metrics
from automation.models import WebhookDelivery
from lms_common.db import session_scope, utcnow

log = structlog.get_logger("automation.webhooks")

MAX_DELAY = timedelta(minutes=10)


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str]
    timeout: float


Sender = Callable[[Request], int]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature a receiver recomputes: HMAC-SHA256 of ``timestamp.body``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def request_for(delivery: WebhookDelivery, now: float | None = None) -> Request:
    body = json.dumps(delivery.body, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(now if now is not None else time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "lms-automation",
        "X-LMS-Delivery": delivery.id,
        "X-LMS-Timestamp": timestamp,
        "X-LMS-Signature": sign(delivery.secret, timestamp, body),
    }
    return Request(delivery.url, body, headers, delivery.timeout_seconds)


def http_post(request: Request) -> int:
    """POST and return the status; errors without a status raise."""
    outgoing = urllib.request.Request(request.url, data=request.body, headers=request.headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(outgoing, timeout=request.timeout) as response:  # noqa: S310 - http(s) checked on save
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def deliver_due(factory: sessionmaker[Session], send: Sender = http_post, limit: int = 50) -> int:
    """Attempt every delivery that is due; returns how many were attempted."""
    with session_scope(factory) as session:
        query = (
            select(WebhookDelivery)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= utcnow())
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        due = list(session.scalars(query))
        for delivery in due:
            attempt(delivery, send)
    return len(due)


def attempt(delivery: WebhookDelivery, send: Sender) -> None:
    """One attempt: delivered on 2xx, else retried later until ``max_attempts``."""
    delivery.attempts += 1
    try:
        status = send(request_for(delivery))
        error = None if 200 <= status < 300 else f"answered {status}"
        delivery.response_status = status
    except (OSError, ValueError) as exc:  # timeouts and refused connections are OSErrors
        error = f"{type(exc).__name__}: {exc}"
    if error is None:
        delivery.status, delivery.delivered_at, delivery.last_error = "delivered", utcnow(), None
    else:
        _failed(delivery, error)
    metrics.WEBHOOKS.labels(delivery.status).inc()


def _failed(delivery: WebhookDelivery, error: str) -> None:
    delivery.last_error = error[:2000]
    if delivery.attempts >= delivery.max_attempts:
        delivery.status = "failed"
        log.warning("webhook failed for good", delivery=delivery.id, url=delivery.url, error=error)
        return
    delay = min(MAX_DELAY, timedelta(seconds=2**delivery.attempts))
    delivery.next_attempt_at = utcnow() + delay
