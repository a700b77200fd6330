"""Per-organization gauges stay bounded; the lag follows the newest event handled."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from reporting_events import scenario

from lms_common.db import make_engine, make_session_factory
from reporting import metrics


def test_gauges_per_organization(settings, feed):
    feed(scenario())
    registry = CollectorRegistry()
    registry.register(metrics.OrganizationCollector(make_session_factory(make_engine(settings.database_url))))
    text = generate_latest(registry).decode()
    assert 'lms_reporting_enrollments{org="org-1"} 4.0' in text
    assert 'lms_reporting_completions{org="org-2"} 1.0' in text
    assert 'lms_reporting_overdue_assignments{org="org-1"} 1.0' in text


def test_organizations_beyond_the_limit_fold_into_other():
    counts = {"enrollments": Counter({f"org-{n}": n + 1 for n in range(10)})}
    folded = metrics.bounded(counts, limit=3)["enrollments"]
    assert set(folded) == {"org-9", "org-8", "org-7", "other"}
    assert folded["other"] == sum(range(1, 8))


def test_lag_is_now_minus_the_newest_event():
    metrics.saw_event(datetime.now(UTC) - timedelta(seconds=30))
    assert 29 <= metrics.consumer_lag_seconds() < 60
