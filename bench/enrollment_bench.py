"""Enrollment at scale on PostgreSQL: one API call assigning 3 courses to N users (until every
assignment, enrollment and outbox event is committed), a batch of AssignMandatoryTraining
commands on an empty and on a filled assignments table, and the progress recompute of a course
with 100,000 enrollments when it gains a lesson."""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from datetime import UTC, date, datetime
from typing import Any

from bus import scratch_database
from sqlalchemy import String, func, insert, literal, select, true

from enrollment.app import create_app
from enrollment.jobs import JobRunner
from enrollment.models import Assignment, Course, CourseLesson, Enrollment, LessonCompletion, User
from enrollment.service import SERVICE
from lms_common import migrations
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import make_engine, make_session_factory, session_scope
from lms_common.envelope import Event
from lms_common.outbox import OutboxMessage
from lms_common.processing import Delivery
from lms_common.testing import TestKeys, isolated_settings

ORG = "bench"


def new_id() -> str:
    return str(uuid.uuid4())


def _seed(url: str, users: int, location: str, courses: list[str]) -> None:
    engine = make_engine(url)
    now = datetime.now(UTC)
    with session_scope(make_session_factory(engine)) as session:
        session.add_all(Course(id=c, org_id=ORG, title=f"Course {c[:4]}", status="published", version=1, lesson_count=1)
                        for c in courses)  # fmt: skip
        rows = [{"id": new_id(), "org_id": ORG, "email": f"u{i}@example.com", "first_name": "", "last_name": "",
                 "location_id": location, "updated_at": now} for i in range(users)]  # fmt: skip
        for start in range(0, len(rows), 50_000):
            session.execute(insert(User), rows[start : start + 50_000])
    with engine.connect() as connection:  # what autovacuum would have done by the time of the call
        connection.exec_driver_sql("ANALYZE users")
        connection.commit()
    engine.dispose()


def assignment_seconds(admin_url: str, amqp_url: str, users: int) -> float:
    """Seconds from the POST to the job's commit of users x 3 assignments, enrollments and events."""
    with scratch_database(admin_url) as url:
        migrations.upgrade(SERVICE.migrations, url)
        location, courses = new_id(), [new_id() for _ in range(3)]
        _seed(url, users, location, courses)
        keys = TestKeys()
        app = create_app(isolated_settings("enrollment", url, amqp_url), key_source=keys)
        token = keys.mint(org=ORG, scope="enrollment:read enrollment:write")
        client, headers = app.test_client(), {"Authorization": f"Bearer {token}"}
        from enrollment.models import Location

        engine = make_engine(url)
        with session_scope(make_session_factory(engine)) as session:
            session.add(Location(id=location, org_id=ORG, parent_id=None, name="HQ"))
        body = {"location_id": location, "course_ids": courses, "due_on": "2030-01-01"}
        stop = threading.Event()  # the job runner, as in a worker process
        JobRunner.for_database(make_session_factory(engine), url, stop).start()
        started = time.perf_counter()
        job = client.post("/v1/assignments", json=body, headers=headers).get_json()
        while client.get(f"/v1/jobs/{job['id']}", headers=headers).get_json()["status"] in ("queued", "running"):
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        stop.set()
        with make_session_factory(engine)() as session:
            events = session.scalar(select(func.count()).select_from(OutboxMessage))
            assert events == users * 6, f"{events} events for {users} users"
        engine.dispose()
        return elapsed


def recompute_seconds(admin_url: str, amqp_url: str, enrollments: int = 100_000) -> float:
    """Seconds for CourseUpdated adding a lesson to a course with ``enrollments`` enrollments."""
    with scratch_database(admin_url) as url:
        migrations.upgrade(SERVICE.migrations, url)
        course, lesson = new_id(), new_id()
        engine = make_engine(url)
        now = datetime.now(UTC)
        with session_scope(make_session_factory(engine)) as session:
            session.add(Course(id=course, org_id=ORG, title="Big", status="published", version=1, lesson_count=1))
            session.add(CourseLesson(course_id=course, lesson_id=lesson, position=0))
            ids = [new_id() for _ in range(enrollments)]
            session.execute(insert(Enrollment), [
                {"id": e, "org_id": ORG, "user_id": new_id(), "course_id": course, "progress_percent": 100,
                 "first_source": "direct", "first_source_id": "direct", "enrolled_at": now, "completed_at": now}
                for e in ids
            ])  # fmt: skip
            session.execute(
                insert(LessonCompletion), [{"enrollment_id": e, "lesson_id": lesson, "completed_at": now} for e in ids]
            )
        processor = SERVICE.processor(SERVICE.runtime(isolated_settings("enrollment", url, amqp_url), TestKeys()))
        data: dict[str, Any] = {"course_id": course, "version": 2, "title": "Big", "status": "published",
                                "lesson_ids": [lesson, new_id()], "quiz_ids": [], "derived_from": None,
                                "created_by": "b"}  # fmt: skip
        event = Event(type="CourseUpdated", data=data, orgid=ORG, source="/catalog")
        started = time.perf_counter()
        [result] = processor.process([Delivery(event.to_json(), "catalog.CourseUpdated", event.id)])
        elapsed = time.perf_counter() - started
        assert result.outcome.value == "handled", result.reason
        with make_session_factory(engine)() as session:
            assert session.scalar(select(func.max(Enrollment.progress_percent))) == 50
        engine.dispose()
        return elapsed


def _training(user: str, course: str, n: int, rule: str) -> Event:
    """automation's AssignMandatoryTraining for one onboarded employee and one course of its rule."""
    data = {"natural_key": f"employee:E-{n}:rule:{rule}:course:{course}:cycle:1", "person": {"user_id": user},
            "course_ids": [course], "program_ids": [], "due_on": "2030-01-01", "mandatory": True, "cycle": 1,
            "employee_id": f"E-{n}", "source_event_id": new_id(), "source_event_type": "EmployeeOnboarded",
            "rule_id": rule}  # fmt: skip
    return Event(type="AssignMandatoryTraining", data=data, orgid=ORG, source="/automation")


def _fill(session: Any, newcomers: list[str]) -> None:
    """Every course assigned to every user but ``newcomers``, and enrolled in, as earlier
    onboardings left them."""
    earlier = select(User.id).where(User.id.not_in(newcomers)).subquery()
    now, prefill = datetime.now(UTC), new_id()
    pairs = select(earlier.c.id, Course.id.label("course_id"), Course.title).join(Course, true()).subquery()
    assigned = select(
        func.gen_random_uuid().cast(String), literal(ORG), pairs.c.id, pairs.c.course_id, pairs.c.course_id,
        pairs.c.title, literal(date(2030, 1, 1)), true(), literal(1), literal(now), literal(prefill),
    )  # fmt: skip
    session.execute(insert(Assignment).from_select(
        ["id", "org_id", "user_id", "course_id", "target_id", "title", "due_on", "mandatory", "cycle", "created_at",
         "batch_id"], assigned))  # fmt: skip
    enrolled = select(
        func.gen_random_uuid().cast(String), literal(ORG), pairs.c.id, pairs.c.course_id, literal(0),
        literal("assignment"), literal(now), literal(prefill),
    )  # fmt: skip
    session.execute(insert(Enrollment).from_select(
        ["id", "org_id", "user_id", "course_id", "progress_percent", "first_source", "enrolled_at", "batch_id"],
        enrolled))  # fmt: skip


def training_batch_ms(admin_url: str, amqp_url: str, filled: int, batches: int = 20, batch: int = 100) -> float:
    """Median milliseconds per consumer batch of ``batch`` AssignMandatoryTraining commands (a
    third of as many employees, 3 courses each), after ``filled`` users already got the same 3
    courses; the table's statistics are left as a burst leaves them (none since it filled)."""
    with scratch_database(admin_url) as url:
        migrations.upgrade(SERVICE.migrations, url)
        location, courses = new_id(), [new_id() for _ in range(3)]
        employees = batches * batch // len(courses)
        _seed(url, filled + employees, location, courses)
        engine = make_engine(url)
        with session_scope(make_session_factory(engine)) as session:
            ids = list(session.scalars(select(User.id).order_by(User.email)))
            if filled:
                _fill(session, ids[:employees])
        processor = SERVICE.processor(SERVICE.runtime(isolated_settings("enrollment", url, amqp_url), TestKeys()))
        rule = new_id()
        commands = [_training(user, course, n, rule) for n, user in enumerate(ids[:employees]) for course in courses]
        times = []
        for start in range(0, len(commands), batch):
            started = time.perf_counter()
            results = processor.process(_deliveries(commands[start : start + batch]))
            times.append(time.perf_counter() - started)
            assert all(r.outcome.value == "handled" for r in results), [r.reason for r in results][:3]
        with make_session_factory(engine)() as session:
            assert session.scalar(select(func.count()).select_from(Assignment)) == (filled + employees) * 3
        engine.dispose()
        return statistics.median(times) * 1000


def _purchase(n: int, product: str) -> tuple[Event, Event]:
    """One paid invoice as enrollment sees it: identity's UserProvisioned and automation's GrantProduct."""
    user, email = new_id(), f"buyer{n}@example.com"
    provisioned = {"user_id": user, "email": email, "org_id": ORG, "cause": "InvoicePaid", "cause_event_id": new_id(),
                   "created": True, "first_name": "Ada", "last_name": "Lovelace"}  # fmt: skip
    grant = {"natural_key": f"invoice:INV-{n}:product:{product}", "product_id": product, "owner": {"email": email},
             "source_event_id": new_id(), "source_event_type": "InvoicePaid", "rule_id": None}  # fmt: skip
    return (Event(type="UserProvisioned", data=provisioned, orgid=ORG, source="/identity"),
            Event(type="GrantProduct", data=grant, orgid=ORG, source="/automation"))  # fmt: skip


def _deliveries(events: list[Event]) -> list[Delivery]:
    return [Delivery(e.to_json(), SUITE_EVENTS.routing_key(e), e.id) for e in events]


def purchase_rate(admin_url: str, amqp_url: str, invoices: int = 2_000, batch: int = 100) -> float:
    """Invoices per second through enrollment's consumer (batches of ``batch``, as the worker
    takes them): each a UserProvisioned and a GrantProduct of a 3-course product, until the
    grants, enrollments and events are committed. The two publishers' relays deliver in runs,
    so runs of ``batch`` alternate; every other run of grants comes before its users (and waits)."""
    with scratch_database(admin_url) as url:
        migrations.upgrade(SERVICE.migrations, url)
        processor = SERVICE.processor(SERVICE.runtime(isolated_settings("enrollment", url, amqp_url), TestKeys()))
        product, courses = new_id(), [new_id() for _ in range(3)]
        catalog = [Event(type="CoursePublished", orgid=ORG, source="/catalog", data={
            "course_id": c, "version": 1, "title": "Course", "status": "published", "lesson_ids": [new_id()],
            "quiz_ids": [], "derived_from": None, "created_by": "b"}) for c in courses]  # fmt: skip
        bundle = {"product_id": product, "version": 1, "title": "Bundle", "status": "active", "course_ids": courses}
        catalog.append(Event(type="ProductActivated", orgid=ORG, source="/catalog", data=bundle))
        processor.process(_deliveries(catalog))
        runs = []
        for start in range(0, invoices, batch):
            users, grants = zip(
                *(_purchase(n, product) for n in range(start, min(start + batch, invoices))), strict=True
            )
            runs += [list(grants), list(users)] if (start // batch) % 2 else [list(users), list(grants)]
        started = time.perf_counter()
        for run_ in runs:
            results = processor.process(_deliveries(run_))
            assert all(r.outcome.value == "handled" for r in results), [r.reason for r in results][:3]
        elapsed = time.perf_counter() - started
        engine = make_engine(url)
        with make_session_factory(engine)() as session:
            assert session.scalar(select(func.count()).select_from(Enrollment)) == invoices * 3
        engine.dispose()
        return invoices / elapsed


def run(admin_url: str, amqp_url: str) -> list[tuple[str, float, str, float | None]]:
    """Rows for bench/run.py: (measure, seconds, target, None)."""
    sizes = [5_000, 50_000] + ([500_000] if os.environ.get("LMS_BENCH_HUGE") else [])
    rows: list[tuple[str, float, str, float | None]] = [
        ("2,000 invoices (UserProvisioned + GrantProduct) through the consumer (/s)",
         purchase_rate(admin_url, amqp_url), ">= 500/s", None),
    ]  # fmt: skip
    if os.environ.get("BENCH_PURCHASES_ONLY"):
        return rows
    for filled in (0, 50_000):
        name = f"batch of 100 AssignMandatoryTraining, {filled * 3:,} assignments before (ms)"
        rows.append((name, training_batch_ms(admin_url, amqp_url, filled), "flat", None))
    for users in sizes:
        target = "< 10 s" if users == 50_000 else "growth"
        rows.append(
            (f"assign 3 courses to {users:,} users (s)", assignment_seconds(admin_url, amqp_url, users), target, None)
        )
    rows.append(("recompute 100,000 enrollments' progress (s)", recompute_seconds(admin_url, amqp_url), "< 5 s", None))
    return rows
