"""Prometheus metrics of every process type.

API processes run under gunicorn in prometheus-client's multiprocess mode (the gunicorn config
sets ``PROMETHEUS_MULTIPROC_DIR`` before anything imports prometheus_client), so ``/metrics``
adds up every worker. Workers and relays are single processes serving their own ``/metrics``.
Label values are bounded: endpoints are URL rules, event types are known names or ``invalid``.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter("lms_http_requests_total", "HTTP requests served", ["service", "method", "endpoint", "status"])
HTTP_LATENCY = Histogram(
    "lms_http_request_seconds", "HTTP request latency", ["service", "method", "endpoint"], buckets=LATENCY_BUCKETS
)
CONSUMED = Counter(
    "lms_consumer_messages_total",
    "Messages taken from the service queue, by outcome (handled, duplicate, ignored, retry, dead_lettered)",
    ["service", "event_type", "outcome"],
)
HANDLING = Histogram(
    "lms_consumer_handling_seconds",
    "Time spent in one message's handler",
    ["service", "event_type"],
    buckets=LATENCY_BUCKETS,
)
CONSUMER_BATCH = Histogram(
    "lms_consumer_batch_deliveries",
    "Deliveries handled in one transaction: small batches under load mean the worker pays its fixed costs per event",
    ["service"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
CONSUMER_BATCHES_FAILED = Counter(
    "lms_consumer_batch_failures_total", "Batches rolled back because the database failed", ["service"]
)
OUTBOX_BACKLOG = Gauge("lms_outbox_backlog", "Events waiting in the outbox", ["service"], multiprocess_mode="max")
OUTBOX_OLDEST_AGE = Gauge(
    "lms_outbox_oldest_age_seconds", "Age of the oldest unsent outbox event", ["service"], multiprocess_mode="max"
)
DATABASE_DISCONNECTS = Counter(
    "lms_database_disconnects_total", "Database connections found lost (restart, crash, terminated backend)"
)
OUTBOX_RELAY_FAILURES = Counter(
    "lms_outbox_relay_failures_total", "Relay cycles abandoned because the database or broker failed", ["service"]
)
OUTBOX_PUBLISHED = Counter("lms_outbox_published_total", "Events confirmed by the broker", ["service"])
OUTBOX_RETURNED = Counter(
    "lms_outbox_returned_total", "Events the broker could not route or refused; retried later", ["service"]
)


def record_consumed(service: str, event_type: str, outcome: str) -> None:
    CONSUMED.labels(service, event_type, outcome).inc()


def observe_handling(service: str, event_type: str, seconds: float) -> None:
    HANDLING.labels(service, event_type).observe(seconds)


def exposition() -> tuple[bytes, str]:
    """The text format of every metric of this process, or of all gunicorn workers."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def serve(port: int) -> None:
    """Expose this process's metrics on 127.0.0.1-or-all:port (workers and relays)."""
    if port > 0:
        start_http_server(port, addr=os.environ.get("LMS_METRICS_ADDR", "127.0.0.1"))
