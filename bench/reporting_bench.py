"""Reporting on PostgreSQL at size: 100,000 learners and 300,000 mandatory assignments.

The projections are loaded with COPY (what matters here is reading them); then
- the compliance report, one page of one location, through the Flask app: median ms;
- the whole audit CSV (every completion), streamed: seconds, and peak Python memory;
- the projection rate: the real worker (consumer + log + projections) handling events from
  RabbitMQ, against raw pika consuming in the same run: lesson completions, then an onboarding's
  mix (per person UserProvisioned, RoleAssigned, 3 AssignmentCreated, 3 EnrollmentCreated).
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
import tracemalloc
import uuid
import zlib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from lms_common import migrations
from lms_common.consumer import Consumer
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import make_engine
from lms_common.envelope import Event, format_time
from lms_common.messaging import ConfirmingPublisher, OutgoingMessage
from lms_common.testing import TestKeys, delete_broker_objects, isolated_settings, scratch_database


def _service_definition() -> Any:
    """The reporting service's definition: this file's folder is left off the path, since its
    name ``reporting.py`` would shadow the service package."""
    here = Path(__file__).resolve().parent
    saved = sys.path[:]
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != here]
    try:
        from reporting.service import SERVICE

        return SERVICE
    finally:
        sys.path[:] = saved


SERVICE = _service_definition()
ORG = "bench-org"
LEARNERS, LOCATIONS, PER_LEARNER = 100_000, 100, 3
T0 = datetime(2026, 1, 1, tzinfo=UTC)
Row = tuple[str, float, str, float | None]


def _id(n: int, kind: str) -> str:
    return str(uuid.UUID(int=(zlib.crc32(kind.encode()) & 0xFFFF) << 64 | n))


def _copy(conn: psycopg.Connection[Any], table: str, columns: list[str], rows: Any) -> None:
    with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def load(url: str) -> None:
    """100k learners over 100 locations, 3 courses each: enrollments, assignments, completions."""
    courses = [_id(c, "course") for c in range(PER_LEARNER)]
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=False) as conn:
        _copy(conn, "locations", ["gen", "org_id", "location_id", "name", "code"],
              ((1, ORG, _id(n, "loc"), f"loc {n}", f"L{n}") for n in range(LOCATIONS)))  # fmt: skip
        _copy(conn, "courses", ["gen", "org_id", "course_id", "title", "version", "fact_at", "fact_id"],
              ((1, ORG, c, f"Course {i}", 1, T0, "bench") for i, c in enumerate(courses)))  # fmt: skip
        _copy(conn, "learners", ["gen", "org_id", "user_id", "email", "first_name", "last_name", "location_id",
                                 "department", "kind", "disabled", "field_at"],
              ((1, ORG, _id(n, "user"), f"u{n}@example.com", "Learner", str(n), _id(n % LOCATIONS, "loc"),
                "Ops", "staff", False, "{}") for n in range(LEARNERS)))  # fmt: skip
        _copy(conn, "enrollments", ["gen", "org_id", "enrollment_id", "user_id", "course_id", "source", "enrolled_at",
                                    "progress_percent", "completed_at"],
              ((1, ORG, _id(n * 3 + i, "enr"), _id(n, "user"), c, "assignment", T0, 100 if (n + i) % 2 else 30,
                T0 + timedelta(days=n % 90) if (n + i) % 2 else None)
               for n in range(LEARNERS) for i, c in enumerate(courses)))  # fmt: skip
        _copy(conn, "assignments", ["gen", "org_id", "assignment_id", "user_id", "course_id", "title", "due_on",
                                    "mandatory", "cycle", "assigned_at", "completed_at"],
              ((1, ORG, _id(n * 3 + i, "asg"), _id(n, "user"), c, f"Course {i}",
                date(2026, 1, 1) + timedelta(days=n % 400),
                True, 1, T0, T0 + timedelta(days=n % 90) if (n + i) % 2 else None)
               for n in range(LEARNERS) for i, c in enumerate(courses)))  # fmt: skip
        _copy(conn, "completions", ["gen", "org_id", "completion_id", "kind", "user_id", "course_id", "title",
                                    "completed_at", "score_percent", "verification_code"],
              ((1, ORG, _id(n * 3 + i, "enr"), "course", _id(n, "user"), c, f"Course {i}",
                T0 + timedelta(days=n % 90, seconds=n), 80, f"CODE-{n}-{i}")
               for n in range(LEARNERS) for i, c in enumerate(courses) if (n + i) % 2))  # fmt: skip
        _copy(conn, "event_log", ["id", "type", "orgid", "time", "data", "received_at"],
              [("bench-newest", "DailyTick", ORG, T0, '{"date": "2026-01-01"}', T0)])  # fmt: skip
        conn.commit()
        conn.execute("ANALYZE")


def compliance_median_ms(client: Any, headers: dict[str, str], runs: int = 30) -> float:
    url = f"/v1/reports/compliance?location_id={_id(7, 'loc')}&limit=50"
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200 and len(response.get_json()["items"]) == 50, response.get_json()
    return statistics.median(timings)


def audit_csv(client: Any, headers: dict[str, str]) -> tuple[float, int, float]:
    """Seconds to stream the whole audit CSV, its rows, and peak traced memory in MiB."""
    csv_headers = {**headers, "Accept": "text/csv"}

    def export() -> int:
        lines = 0
        response = client.get("/v1/reports/audit", headers=csv_headers, buffered=False)
        for chunk in response.response:
            lines += chunk.count(b"\n") if isinstance(chunk, bytes) else chunk.count("\n")
        return lines - 1

    started = time.perf_counter()
    rows = export()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    export()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, rows, peak


def _event(n: int) -> Event:
    user, course = _id(n % 5000, "puser"), _id(n % 7, "pcourse")
    data = {"enrollment_id": _id(n % 20_000, "penr"), "org_id": ORG, "user_id": user, "course_id": course,
            "lesson_id": _id(n, "lesson"), "progress_percent": n % 101, "completed_at": format_time(T0)}  # fmt: skip
    return SUITE_EVENTS.validate(Event("LessonCompleted", data, ORG, "/bench", time=T0 + timedelta(seconds=n)))


ONBOARDING_COURSES = 3


def _onboarding(n: int) -> list[Event]:
    """What reporting hears of one onboarded employee: 8 events."""
    user, at = _id(n, "ouser"), format_time(T0 + timedelta(seconds=n))
    events = [
        Event("UserProvisioned", {"user_id": user, "email": f"o{n}@example.com", "org_id": ORG, "cause": "api",
              "cause_event_id": None, "created": True, "first_name": "New", "last_name": str(n),
              "location_id": _id(n % LOCATIONS, "loc"), "department": "Ops", "kind": "staff"}, ORG, "/bench"),
        Event("RoleAssigned", {"assignment_id": _id(n, "orole"), "user_id": user, "org_id": ORG,
              "role_id": _id(0, "orole-id"), "role": "learner", "permissions": [], "scope": "organization",
              "location_id": None, "client_org_id": None, "assigned_at": at}, ORG, "/bench"),
    ]  # fmt: skip
    for c in range(ONBOARDING_COURSES):
        course, key = _id(c, "course"), n * ONBOARDING_COURSES + c
        events.append(Event("AssignmentCreated", {"assignment_id": _id(key, "oasg"), "org_id": ORG, "user_id": user,
                            "course_id": course, "program_id": None, "title": f"Course {c}", "due_on": "2026-03-01",
                            "mandatory": True, "cycle": 1, "assigned_at": at, "actor_id": None,
                            "cause": "automation"}, ORG, "/bench"))  # fmt: skip
    for c in range(ONBOARDING_COURSES):
        course, key = _id(c, "course"), n * ONBOARDING_COURSES + c
        events.append(Event("EnrollmentCreated", {"enrollment_id": _id(key, "oenr"), "org_id": ORG, "user_id": user,
                            "course_id": course, "course_title": f"Course {c}", "source": "assignment",
                            "source_id": None, "enrolled_at": at}, ORG, "/bench"))  # fmt: skip
    return [SUITE_EVENTS.validate(event) for event in events]


def onboarding_events(count: int) -> list[Event]:
    return [event for n in range(count // 8) for event in _onboarding(n)]


def projection_rate(settings: Any, events: list[Event]) -> float:
    """Events/s through the real worker: consumer, inbox, event log and projections."""
    SERVICE.declare_topology(settings)
    engine = make_engine(settings.database_url)
    with engine.connect() as db:
        expected = db.execute(sa.text("SELECT count(*) FROM event_log")).scalar_one() + len(events)
    publisher = ConfirmingPublisher(settings.amqp_url, settings.exchange, app_id="bench")
    messages = [OutgoingMessage(SUITE_EVENTS.routing_key(e), e.to_json(), e.id, event_type=e.type) for e in events]
    for start in range(0, len(messages), 1000):
        publisher.publish_batch(messages[start : start + 1000])
    publisher.close()
    consumer = Consumer(settings, SERVICE.topology(settings), SERVICE.processor(SERVICE.runtime(settings)))
    thread = threading.Thread(target=consumer.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    with engine.connect() as db:
        while db.execute(sa.text("SELECT count(*) FROM event_log")).scalar_one() < expected:
            time.sleep(0.05)
    elapsed = time.perf_counter() - started
    consumer.stop()
    thread.join(timeout=10)
    engine.dispose()
    return len(events) / elapsed


def run(admin_url: str, amqp_url: str, count: int = 10_000) -> list[Row]:
    import bus  # the raw consume ceiling, measured in this run

    with scratch_database(admin_url, prefix="lms_bench_reporting") as url:
        migrations.upgrade(SERVICE.migrations, url)
        load(url)
        settings = replace(isolated_settings("reporting", url, amqp_url), consumer_retry_base_seconds=0.5)
        keys = TestKeys()
        client = SERVICE.create_app(settings, key_source=keys).test_client()
        headers = {"Authorization": f"Bearer {keys.mint(org=ORG, scope='reports:read')}"}
        compliance = compliance_median_ms(client, headers)
        seconds, rows, peak = audit_csv(client, headers)
        _, raw_consume = bus.raw_publish_and_consume(settings, count)
        projected = projection_rate(settings, [_event(n) for n in range(count)])
        onboarded = projection_rate(settings, onboarding_events(count))
        delete_broker_objects(amqp_url, settings)
    return [
        ("reporting: compliance page, median ms", compliance, "< 100 ms", None),
        (f"reporting: audit CSV {rows:,} rows, seconds", seconds, "< 5 s", None),
        ("reporting: audit CSV peak Python MiB", peak, "flat", None),
        ("reporting: projection rate (worker)", projected, "measured", projected / raw_consume),
        ("reporting: projection rate, onboarding mix (worker)", onboarded, "measured", onboarded / raw_consume),
    ]
