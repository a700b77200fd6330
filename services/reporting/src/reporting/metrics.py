"""Reporting's Prometheus metrics, served by the worker process.

Per organization: enrollments, completions and overdue assignments, read from the live
projections when scraped (cached briefly). Cardinality stays bounded: the largest
``MAX_ORGS`` organizations get their own series and the rest add up under ``org="other"``.
The consumer lag is now minus the time of the newest event this worker has handled.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

from prometheus_client import REGISTRY, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, sessionmaker

from lms_common.db import session_scope
from reporting import eventlog
from reporting.models import Assignment, Enrollment

MAX_ORGS = 50
CACHE_SECONDS = 15.0

_newest: list[datetime] = []
_lock = threading.Lock()


def saw_event(at: datetime) -> None:
    """Note a handled event's time (the lag is measured against the newest)."""
    with _lock:
        if not _newest:
            _newest.append(at)
        elif at > _newest[0]:
            _newest[0] = at


def consumer_lag_seconds() -> float:
    """Now minus the newest event time handled by this process (0 before the first)."""
    with _lock:
        newest = _newest[0] if _newest else None
    return max(0.0, (datetime.now(UTC) - newest).total_seconds()) if newest else 0.0


def _counts(session: Session, query: Select[str, int]) -> Counter[str]:
    return Counter({row[0]: int(row[1]) for row in session.execute(query)})


def org_counts(session: Session, today: date) -> dict[str, Counter[str]]:
    """Enrollments, completions and overdue assignments per organization (live generation)."""
    gen = eventlog.live_generation(session)
    enrollments = select(Enrollment.org_id, func.count()).where(Enrollment.gen == gen).group_by(Enrollment.org_id)
    completed = enrollments.where(Enrollment.completed_at.is_not(None))
    overdue = (
        select(Assignment.org_id, func.count())
        .where(Assignment.gen == gen, Assignment.completed_at.is_(None), Assignment.due_on < today)
        .group_by(Assignment.org_id)
    )
    return {
        "enrollments": _counts(session, enrollments),
        "completions": _counts(session, completed),
        "overdue_assignments": _counts(session, overdue),
    }


def bounded(counts: dict[str, Counter[str]], limit: int = MAX_ORGS) -> dict[str, Counter[str]]:
    """Keep the ``limit`` largest organizations (by enrollments); fold the rest into ``other``."""
    ranked = Counter[str]()
    for counter in counts.values():
        ranked.update(counter)
    kept = {org for org, _ in ranked.most_common(limit)}
    folded: dict[str, Counter[str]] = {}
    for name, counter in counts.items():
        folded[name] = Counter()
        for org, value in counter.items():
            folded[name][org if org in kept else "other"] += value
    return folded


class OrganizationCollector(Collector):
    """Gauges of the projections per organization, queried at scrape time."""

    def __init__(self, session_factory: sessionmaker[Session], clock: Callable[[], float] = time.monotonic):
        self.session_factory = session_factory
        self.clock = clock
        self._cached: tuple[float, dict[str, Counter[str]]] | None = None

    def _read(self) -> dict[str, Counter[str]]:
        if self._cached is None or self.clock() - self._cached[0] > CACHE_SECONDS:
            with session_scope(self.session_factory) as session:
                self._cached = (self.clock(), bounded(org_counts(session, datetime.now(UTC).date())))
        return self._cached[1]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, counter in self._read().items():
            family = GaugeMetricFamily(
                f"lms_reporting_{name}", f"{name.replace('_', ' ')} per organization", labels=["org"]
            )
            for org, value in sorted(counter.items()):
                family.add_metric([org], value)
            yield family


def install(session_factory: sessionmaker[Session]) -> None:
    """Register the worker's metrics in the default registry (which the worker serves)."""
    lag = Gauge("lms_reporting_consumer_lag_seconds", "Now minus the time of the newest event handled")
    lag.set_function(consumer_lag_seconds)
    REGISTRY.register(OrganizationCollector(session_factory))
