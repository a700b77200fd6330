"""On PostgreSQL and RabbitMQ: seats and quiz limits under concurrency, a large assignment job,
and the worker consuming real messages."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pika
import pytest
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.exc import IntegrityError

from enrollment import jobs
from enrollment.app import create_app
from enrollment.models import Assignment, Enrollment, Grant, Job, JobChunk
from enrollment.service import SERVICE
from lms_common import migrations
from lms_common.consumer import Consumer
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import make_engine, make_session_factory
from lms_common.envelope import Event, decode
from lms_common.outbox import OutboxMessage
from lms_common.processing import Delivery
from lms_common.testing import TestKeys, wait_until

ORG = "org-9"
ADMIN = "enrollment:read enrollment:write content:grant learner"


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture()
def settings(postgres_url, broker_settings, tmp_path):
    migrations.upgrade(SERVICE.migrations, postgres_url)
    return broker_settings("enrollment", postgres_url, var_dir=tmp_path)


@pytest.fixture()
def world(settings):
    keys = TestKeys()
    app = create_app(settings, key_source=keys)
    processor = SERVICE.processor(SERVICE.runtime(settings, keys))

    def send(event_type: str, data: dict[str, Any]) -> None:
        event = Event(type=event_type, data=data, orgid=ORG, source="/test")
        [result] = processor.process([Delivery(event.to_json(), SUITE_EVENTS.routing_key(event), event.id)])
        assert result.outcome.value == "handled", result.reason

    def caller(scope: str, user: str | None = None) -> tuple[Any, dict[str, str], str]:
        user = user or new_id()
        return app.test_client(), {"Authorization": f"Bearer {keys.mint(sub=user, org=ORG, scope=scope)}"}, user

    return send, caller


def user_event(user: str, email: str | None = None, location: str | None = None) -> dict[str, Any]:
    return {"user_id": user, "email": email or f"{user[:8]}@example.com", "org_id": ORG, "cause": "api",
            "cause_event_id": None, "created": True, "first_name": "Ada", "last_name": "L",
            "location_id": location}  # fmt: skip


def course_event(course: str, lessons: list[str]) -> dict[str, Any]:
    return {"course_id": course, "version": 1, "title": "Forklifts", "status": "published", "lesson_ids": lessons,
            "quiz_ids": [], "derived_from": None, "created_by": "a"}  # fmt: skip


def test_three_seats_and_five_concurrent_hand_outs_grant_exactly_three(world, settings):
    send, caller = world
    product, purchaser = new_id(), new_id()
    send("ProductActivated", {"product_id": product, "version": 1, "title": "P", "status": "active", "course_ids": []})
    client, headers, _ = caller(ADMIN)
    send("UserProvisioned", user_event(purchaser))
    answer = client.post("/v1/grants", json={"product_id": product, "user_id": purchaser, "seats": 3}, headers=headers)
    grant = answer.get_json()
    emails = [f"seat{i}@example.com" for i in range(5)]

    def hand_out(email: str) -> int:
        c, h, _ = caller("learner", purchaser)
        return c.post(f"/v1/grants/{grant['id']}/seats", json={"emails": [email]}, headers=h).status_code

    with ThreadPoolExecutor(5) as pool:
        statuses = sorted(pool.map(hand_out, emails))
    assert statuses == [200, 200, 200, 409, 409]
    for email in emails:  # identity provisions the pending holders it was told of (and others ask too)
        send("UserProvisioned", user_event(new_id(), email))
    with make_session_factory(make_engine(settings.database_url))() as session:
        assert session.get(Grant, grant["id"]).seats_used == 3
        seats = select(func.count()).select_from(Grant).where(Grant.parent_id == grant["id"], Grant.status == "active")
        assert session.scalar(seats) == 3


def test_a_cohort_of_three_seats_takes_exactly_three_of_five_concurrent_members(world, settings):
    send, caller = world
    cohort, course = new_id(), new_id()
    send("CourseUpdated", course_event(course, [new_id()]))
    data = {"cohort_id": cohort, "version": 1, "title": "Intake", "course_ids": [course], "starts_on": "2027-03-01",
            "ends_on": "2027-05-31", "seats": 3, "instructor_ids": []}  # fmt: skip
    send("CohortUpdated", data)
    users = [new_id() for _ in range(5)]
    for user in users:
        send("UserProvisioned", user_event(user))

    def join(user: str) -> int:
        client, headers, _ = caller(ADMIN)
        return client.post(f"/v1/cohorts/{cohort}/members", json={"user_ids": [user]}, headers=headers).status_code

    with ThreadPoolExecutor(5) as pool:
        statuses = sorted(pool.map(join, users))
    assert statuses == [200, 200, 200, 409, 409]
    with make_session_factory(make_engine(settings.database_url))() as session:
        enrolled = select(func.count()).select_from(Enrollment).where(Enrollment.course_id == course)
        assert session.scalar(enrolled) == 3


def test_a_learners_courses_page_by_enrollment_on_postgres(world):
    """Own grants, an organization's grant of two courses (enrolled at one instant), a
    program, and revoked grants in between: every page but the last is full, in order."""
    send, caller = world
    admin, admin_headers, _ = caller(ADMIN)
    learner, headers, user = caller("learner")
    send("UserProvisioned", user_event(user))

    def product_of(courses: list[str]) -> str:
        product = new_id()
        for course in courses:
            send("CourseUpdated", course_event(course, [new_id()]))
        data = {"product_id": product, "version": 1, "title": "P", "status": "active", "course_ids": courses}
        send("ProductActivated", data)
        return product

    def grant(product: str, **owner: str) -> dict[str, Any]:
        answer = admin.post("/v1/grants", json={"product_id": product, **owner}, headers=admin_headers)
        assert answer.status_code == 201, answer.get_json()
        return answer.get_json()

    own = [new_id() for _ in range(9)]
    grants = [grant(product_of([course]), user_id=user) for course in own]
    company = sorted([new_id(), new_id()])
    grant(product_of(company), organization_id=ORG)
    program, in_program = new_id(), [new_id(), own[0]]
    for course in in_program[:1]:
        send("CourseUpdated", course_event(course, [new_id()]))
    send("ProgramPublished", {"program_id": program, "version": 1, "title": "Academy", "published": True,
                              "enforce_course_order": False, "course_ids": in_program})  # fmt: skip
    members = admin.post(f"/v1/programs/{program}/members", json={"user_ids": [user]}, headers=admin_headers)
    assert members.status_code == 200, members.get_json()
    for revoked in (grants[0], grants[2], grants[3], grants[4]):
        answer = admin.post(f"/v1/grants/{revoked['id']}/revoke", headers=admin_headers)
        assert answer.status_code == 200, answer.get_json()

    pages, url = [], "/v1/me/courses?limit=3"
    while url:
        body = learner.get(url, headers=headers).get_json()
        pages.append([(item["course_id"], item["sources"]) for item in body["items"]])
        url = body["next_cursor"] and f"/v1/me/courses?limit=3&cursor={body['next_cursor']}"
    whole = learner.get("/v1/me/courses?limit=500", headers=headers).get_json()
    listed = [(item["course_id"], item["sources"]) for item in whole["items"]]
    assert pages == [listed[0:3], listed[3:6], listed[6:9]]
    one_instant = sorted(listed[6:8])  # enrolled together: in enrollment id order
    assert listed[6:8] in (one_instant, one_instant[::-1]) and [course for course, _ in one_instant] == company
    grant_only = [(course, ["grant"]) for course in (own[1], *own[5:])]
    assert listed[:6] + listed[8:] == [(own[0], ["program"]), *grant_only, (in_program[0], ["program"])]


def test_the_quiz_attempt_limit_holds_under_ten_concurrent_submissions(world, settings):
    send, caller = world
    course, lesson, quiz, question = new_id(), new_id(), new_id(), new_id()
    _, _, learner = caller("learner")
    admin, admin_headers, _ = caller(ADMIN)
    send("UserProvisioned", user_event(learner))
    send("CourseUpdated", course_event(course, [lesson]))
    questions = [{"question_id": question, "kind": "single_choice", "choices": ["a", "b"], "answer": "a"}]
    quiz_data = {"quiz_id": quiz, "version": 1, "lesson_id": lesson, "course_id": course, "pass_percent": 100,
                 "max_attempts": 3, "questions": questions}  # fmt: skip
    send("QuizChanged", quiz_data)
    admin.post("/v1/enrollments", json={"user_id": learner, "course_id": course}, headers=admin_headers)

    def submit(_: int) -> int:
        c, h, _ = caller("learner", learner)
        return c.post(f"/v1/quizzes/{quiz}/attempts", json={"answers": {question: "b"}}, headers=h).status_code

    with ThreadPoolExecutor(10) as pool:
        statuses = sorted(pool.map(submit, range(10)))
    assert statuses == [201] * 3 + [409] * 7


def test_a_large_assignment_answers_202_and_the_job_commits_everything(world, settings):
    send, caller = world
    location, course = new_id(), new_id()
    send("LocationCreated", {"location_id": location, "org_id": ORG, "name": "HQ", "code": "HQ", "parent_id": None})
    send("CourseUpdated", course_event(course, [new_id()]))
    engine = make_engine(settings.database_url)
    with make_session_factory(engine).begin() as session:
        from enrollment.models import User

        now = datetime.now(UTC)
        session.execute(User.__table__.insert(), [
            {"id": new_id(), "org_id": ORG, "email": f"u{i}@example.com", "first_name": "", "last_name": "",
             "location_id": location, "updated_at": now} for i in range(2500)
        ])  # fmt: skip
    client, headers, _ = caller(ADMIN)
    body = {"location_id": location, "course_ids": [course], "due_on": "2030-01-01"}
    stop = threading.Event()
    jobs.JobRunner.for_database(make_session_factory(engine), settings.database_url, stop).start()
    try:
        answer = client.post("/v1/assignments", json=body, headers=headers)
        assert answer.status_code == 202, answer.get_json()
        job = answer.get_json()

        def finished() -> Any:
            state = client.get(f"/v1/jobs/{job['id']}", headers=headers).get_json()
            return state if state["status"] in ("succeeded", "failed") else None

        result = wait_until(finished, timeout=30)["result"]
    finally:
        stop.set()
    assert (result["assignments"], result["enrollments"]) == (2500, 2500)
    with make_session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(Enrollment)) == 2500
        assert session.scalar(select(func.count()).select_from(Assignment)) == 2500
        kinds = dict(
            session.execute(select(OutboxMessage.event_type, func.count()).group_by(OutboxMessage.event_type)).all()
        )
    assert kinds["AssignmentCreated"] == 2500 and kinds["EnrollmentCreated"] == 2500
    engine.dispose()


def _queued_job(world, settings, users: int = 50) -> str:
    """A job assigning a course to ``users`` users of one location, stored as the API stores it."""
    send, _ = world
    location, course = new_id(), new_id()
    send("LocationCreated", {"location_id": location, "org_id": ORG, "name": "HQ", "code": "HQ", "parent_id": None})
    send("CourseUpdated", course_event(course, [new_id()]))
    for i in range(users):
        send("UserProvisioned", user_event(new_id(), f"job{i}@example.com", location))
    items = [{"course_id": course, "program_id": None, "title": "Forklifts"}]
    request = {"user_ids": None, "locations": [location], "department": None, "items": items,
               "due_on": "2030-01-01", "mandatory": True}  # fmt: skip
    engine = make_engine(settings.database_url)
    with make_session_factory(engine).begin() as session:
        job_id = jobs.enqueue(session, ORG, request, "admin").id
    engine.dispose()
    return job_id


def _killed_at(call: int, monkeypatch: Any) -> None:
    """Make the runner's process die during its ``call``-th run_assignment, before its commit."""
    real, calls = jobs.run_assignment, []

    def work_then_die(*args: Any, **kwargs: Any) -> Any:
        calls.append(real(*args, **kwargs))
        if len(calls) == call:
            monkeypatch.setattr(jobs, "run_assignment", real)  # the next runner lives
            raise SystemExit("the runner's process is killed before its commit")
        return calls[-1]

    monkeypatch.setattr(jobs, "run_assignment", work_then_die)


def test_a_job_whose_runner_dies_mid_work_is_taken_again_and_has_one_effect(world, settings, monkeypatch):
    job_id = _queued_job(world, settings)
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    _killed_at(1, monkeypatch)
    assert jobs.claim(factory, "dying", lease=timedelta(seconds=1)) == job_id
    with pytest.raises(SystemExit):
        jobs.run(factory, job_id, "dying")
    assert jobs.claim(factory, "survivor") is None  # the dead runner's lease holds a second
    taken = wait_until(lambda: jobs.claim(factory, "survivor"), timeout=10, interval=0.2)
    assert taken == job_id
    assert jobs.run(factory, job_id, "survivor") == "succeeded"
    with factory() as session:
        job = session.get(Job, job_id)
        assert (job.status, job.attempts, job.result["assignments"]) == ("succeeded", 2, 50)
        assert session.scalar(select(func.count()).select_from(Assignment)) == 50
        created = select(func.count()).where(OutboxMessage.event_type == "AssignmentCreated")
        assert session.scalar(created) == 50
    engine.dispose()


def test_a_runner_that_dies_between_chunks_is_continued_and_the_job_has_one_effect(world, settings, monkeypatch):
    job_id = _queued_job(world, settings, users=45)
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    monkeypatch.setattr(jobs, "CHUNK_USERS", 10)  # five chunks, two at a time
    _killed_at(2, monkeypatch)
    assert jobs.claim(factory, "dying", lease=timedelta(seconds=1)) == job_id
    with pytest.raises(SystemExit):
        jobs.run(factory, job_id, "dying")
    created = select(func.count()).where(OutboxMessage.event_type == "AssignmentCreated")
    with factory() as session:
        committed, assigned = session.execute(select(func.count(), func.sum(JobChunk.assignments))).one()
        assert 1 <= committed < 5 and session.scalar(created) == assigned  # whole chunks, nothing of the dead one
    assert wait_until(lambda: jobs.claim(factory, "survivor"), timeout=10, interval=0.2) == job_id
    assert jobs.run(factory, job_id, "survivor") == "succeeded"
    with factory() as session:
        job = session.get(Job, job_id)
        assert (job.status, job.attempts, job.result["assignments"], job.result["enrollments"]) == (
            "succeeded", 2, 45, 45,
        )  # fmt: skip
        assert len(set(job.result["batch_ids"])) == 5
        users = select(func.count(func.distinct(Assignment.user_id)), func.count())
        assert session.execute(users).one() == (45, 45)
        assert session.scalar(select(func.count()).select_from(Enrollment)) == 45
        assert session.scalar(created) == 45
        enrolled = select(func.count()).where(OutboxMessage.event_type == "EnrollmentCreated")
        assert session.scalar(enrolled) == 45
    engine.dispose()


def test_a_chunk_another_runner_already_committed_is_not_done_again(world, settings, monkeypatch):
    job_id = _queued_job(world, settings, users=15)
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    monkeypatch.setattr(jobs, "CHUNK_USERS", 10)
    assert jobs.claim(factory, "late") == job_id
    bounds = jobs._planned(factory, job_id, "late")
    first = jobs.chunks(job_id, bounds)[0]
    with make_session_factory(engine).begin() as session:
        job = session.get(Job, job_id)
        order = (job.org_id, job.request, job.created_by)
    jobs._run_chunk(factory, first, *order)
    with pytest.raises(IntegrityError):  # the same chunk again: its row is there, nothing is written
        jobs._run_chunk(factory, first, *order)
    assert jobs.run(factory, job_id, "late") == "succeeded"
    with factory() as session:
        assert session.get(Job, job_id).result["assignments"] == 15
        assert session.scalar(select(func.count()).select_from(Assignment)) == 15
    engine.dispose()


def test_a_live_runner_keeps_its_job_after_its_lease(world, settings, monkeypatch):
    job_id = _queued_job(world, settings, users=5)
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    working, finish = threading.Event(), threading.Event()
    real = jobs.run_assignment

    def slow(*args: Any, **kwargs: Any) -> Any:
        batch = real(*args, **kwargs)
        working.set()
        finish.wait(30)
        return batch

    monkeypatch.setattr(jobs, "run_assignment", slow)
    assert jobs.claim(factory, "slow", lease=-timedelta(seconds=1)) == job_id  # its lease is over at once
    outcome: list[str | None] = []
    thread = threading.Thread(target=lambda: outcome.append(jobs.run(factory, job_id, "slow")))
    thread.start()
    assert working.wait(30)
    assert jobs.claim(factory, "other") is None  # the job's row is locked by the live runner: skipped
    finish.set()
    thread.join(30)
    assert outcome == ["succeeded"]
    assert jobs.claim(factory, "other") is None
    engine.dispose()


def test_the_worker_carries_out_a_grant_command_from_the_real_broker(settings, amqp_url):
    consumer = Consumer(settings, SERVICE.topology(settings), SERVICE.processor(SERVICE.runtime(settings)))
    worker = threading.Thread(target=consumer.run, daemon=True)
    worker.start()
    try:
        wait_until(consumer.connected.is_set)
        product, user = new_id(), new_id()
        data = {"natural_key": "inv-1", "product_id": product, "owner": {"user_id": user},
                "source_event_id": "e1", "source_event_type": "InvoicePaid", "rule_id": None}  # fmt: skip
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        for _ in range(3):
            event = Event(type="GrantProduct", data=data, orgid=ORG, source="/automation", time=datetime.now(UTC))
            connection.channel().basic_publish(settings.exchange, "automation.GrantProduct", event.to_json())
        connection.close()
        engine = make_engine(settings.database_url)
        query = select(func.count()).select_from(Grant).where(Grant.product_id == product)
        with make_session_factory(engine)() as session:
            wait_until(lambda: session.scalar(query.execution_options(populate_existing=True)) == 1)
            session.rollback()
            assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
        engine.dispose()
    finally:
        consumer.stop()
        worker.join(timeout=10)


def test_a_batch_of_assignment_commands_on_postgres_has_one_effect_each(world, settings):
    send, _ = world
    processor = SERVICE.processor(SERVICE.runtime(settings, TestKeys()))
    users, course = [new_id() for _ in range(3)], new_id()
    for user in users:
        send("UserProvisioned", user_event(user))
    send("CourseUpdated", course_event(course, [new_id()]))

    def command(person: dict[str, str], key: str) -> Event:
        data = {"natural_key": key, "person": person, "course_ids": [course], "program_ids": [],
                "due_on": "2030-01-01", "mandatory": True, "source_event_id": new_id(),
                "source_event_type": "EmployeeOnboarded", "rule_id": None}  # fmt: skip
        return Event(type="AssignMandatoryTraining", data=data, orgid=ORG, source="/test")

    events = [command({"user_id": users[0]}, "k0"), command({"email": f"{users[1][:8]}@example.com"}, "k1")]
    events += [command({"user_id": users[2]}, "k2"), command({"user_id": users[0]}, "k0")]
    deliveries = [Delivery(event.to_json(), SUITE_EVENTS.routing_key(event), event.id) for event in events]
    assert [result.outcome.value for result in processor.process(deliveries)] == ["handled"] * 4
    with make_session_factory(make_engine(settings.database_url))() as session:
        assigned = session.execute(
            select(Assignment.user_id, Assignment.natural_key).where(Assignment.course_id == course)
        )
        assert sorted(assigned) == sorted(zip(users, ["k0", "k1", "k2"], strict=True))


def test_runs_of_assignment_commands_share_one_kept_insert_on_postgres(world, settings):
    """Each run of AssignMandatoryTraining inserts its assignments with the same statement
    object, its pairs and items bound as arrays; each pair gets its own command's key."""
    from sqlalchemy import event as sqlalchemy_event
    from sqlalchemy.orm import Session
    from sqlalchemy.sql.dml import Insert

    send, _ = world
    processor = SERVICE.processor(SERVICE.runtime(settings, TestKeys()))
    users, courses = [new_id() for _ in range(4)], [new_id(), new_id()]
    for user in users:
        send("UserProvisioned", user_event(user))
    for course in courses:
        send("CourseUpdated", course_event(course, [new_id()]))

    def command(user: str) -> Event:
        data = {"natural_key": f"employee:{user}", "person": {"user_id": user}, "course_ids": courses,
                "program_ids": [], "due_on": "2030-01-01", "mandatory": True, "source_event_id": new_id(),
                "source_event_type": "EmployeeOnboarded", "rule_id": None}  # fmt: skip
        return Event(type="AssignMandatoryTraining", data=data, orgid=ORG, source="/test")

    seen: list[Any] = []
    listener = lambda state: seen.append(state.statement)  # noqa: E731
    sqlalchemy_event.listen(Session, "do_orm_execute", listener)
    try:
        for run in (users[:2], users[2:]):
            assert _outcomes(processor, [command(user) for user in run]) == {"handled"}
    finally:
        sqlalchemy_event.remove(Session, "do_orm_execute", listener)
    inserts = [s for s in seen if isinstance(s, Insert) and s.table.name == "assignments"]
    assert len(inserts) == 2 and inserts[0] is inserts[1]
    with make_session_factory(make_engine(settings.database_url))() as session:
        assigned = session.execute(select(Assignment.user_id, Assignment.course_id, Assignment.natural_key))
        assert sorted(assigned) == sorted((u, c, f"employee:{u}") for u in users for c in courses)


def product_of_one_course(product: str, course: str) -> list[Event]:
    """A published course and an active product of it, as catalog announces them."""
    return [
        Event(type="CoursePublished", orgid=ORG, source="/test", data={
            "course_id": course, "version": 1, "title": "C", "status": "published", "lesson_ids": [new_id()],
            "quiz_ids": [], "derived_from": None, "created_by": "a"}),
        Event(type="ProductActivated", orgid=ORG, source="/test", data={
            "product_id": product, "version": 1, "title": "B", "status": "active", "course_ids": [course]}),
    ]  # fmt: skip


def _purchases(product: str, count: int, natural_key: Callable[[int], str]) -> tuple[list[Event], list[Event]]:
    """Identity's UserProvisioned and automation's GrantProduct for ``count`` new buyers of
    ``product``, the n-th command under ``natural_key(n)``."""
    buyers = [(new_id(), f"buyer{n}@example.com") for n in range(count)]
    users = [Event(type="UserProvisioned", orgid=ORG, source="/test", data={
        "user_id": user, "email": email, "org_id": ORG, "cause": "InvoicePaid", "cause_event_id": None,
        "created": True}) for user, email in buyers]  # fmt: skip
    grants = [Event(type="GrantProduct", orgid=ORG, source="/test", data={
        "natural_key": natural_key(n), "product_id": product, "owner": {"email": email},
        "source_event_id": new_id(), "source_event_type": "InvoicePaid", "rule_id": None})
        for n, (_, email) in enumerate(buyers)]  # fmt: skip
    return users, grants


def _outcomes(processor: Any, events: list[Event]) -> set[str]:
    """The outcomes of ``events`` delivered to ``processor`` as one batch."""
    deliveries = [Delivery(e.to_json(), SUITE_EVENTS.routing_key(e), e.id) for e in events]
    return {result.outcome.value for result in processor.process(deliveries)}


def test_purchases_a_batch_at_a_time_grant_once_on_postgres(settings):
    processor = SERVICE.processor(SERVICE.runtime(settings, TestKeys()))
    course, product = new_id(), new_id()
    setup = product_of_one_course(product, course)
    users, grants = _purchases(product, 5, lambda n: f"invoice:{n % 4}")

    assert _outcomes(processor, setup) == {"handled"}
    assert _outcomes(processor, grants[:2] + users + grants[2:]) == {"handled"}  # two wait for their users
    assert _outcomes(processor, grants) == {"duplicate"}
    session = make_session_factory(make_engine(settings.database_url))()
    assert session.scalar(select(func.count()).select_from(Grant)) == 4  # invoice:0 twice: one grant
    assert session.scalar(select(func.count()).select_from(Enrollment)) == 4
    granted = session.scalar(select(func.count()).where(OutboxMessage.event_type == "ProductGranted"))
    assert granted == 4
    session.close()


PURCHASE_TABLES = ("users", "grants", "enrollments", "enrollment_sources")


def _rows_read(factory: Any) -> int:
    """Rows read so far from the purchase path's tables, by sequential scans and through indexes."""
    with factory() as session:
        session.execute(text("SELECT pg_stat_force_next_flush()"))  # this backend's counts, now
    with factory() as session:
        query = text(
            "SELECT coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0)), 0) FROM pg_stat_user_tables"
            " WHERE relname IN :tables"
        ).bindparams(bindparam("tables", expanding=True))
        return int(session.scalar(query, {"tables": list(PURCHASE_TABLES)}))


def _earlier_buyers(session: Any, product: str, course: str, count: int) -> None:
    """Users with a grant of ``product`` and the enrollment in ``course`` it opened, as rows."""
    from enrollment.grants import owner_key
    from enrollment.models import EnrollmentSource, User

    now = datetime.now(UTC)
    users, grants, enrollments, sources = [], [], [], []
    for n in range(count):
        user, grant, enrollment = new_id(), new_id(), new_id()
        users.append({"id": user, "org_id": ORG, "email": f"earlier{n}@example.com", "first_name": "",
                      "last_name": "", "updated_at": now})  # fmt: skip
        grants.append({"id": grant, "org_id": ORG, "product_id": product, "user_id": user,
                       "owner_key": owner_key(user, None), "status": "active", "seats_used": 0,
                       "source": "automation", "created_at": now})  # fmt: skip
        enrollments.append({"id": enrollment, "org_id": ORG, "user_id": user, "course_id": course,
                            "progress_percent": 0, "first_source": "grant", "first_source_id": grant,
                            "enrolled_at": now})  # fmt: skip
        sources.append({"enrollment_id": enrollment, "kind": "grant", "ref": grant, "active": True})
    for model, rows in ((User, users), (Grant, grants), (Enrollment, enrollments), (EnrollmentSource, sources)):
        session.execute(model.__table__.insert(), rows)


def test_purchases_on_tables_with_stale_statistics_read_by_key(settings):
    """A burst of purchases fills the tables long before their statistics follow: each batch's
    look-ups (users, grants held, what the grants open, the enrollments they have) still go by
    key. Planned on the empty tables' statistics, they read every grant of the product and
    every grant source per batch: 48,527 rows for these two batches, against 302 by key."""
    runtime = SERVICE.runtime(settings, TestKeys())
    factory = runtime.session_factory  # the processor's own connection: its counts are flushed
    processor = SERVICE.processor(runtime)
    course, product = new_id(), new_id()

    assert _outcomes(processor, product_of_one_course(product, course)) == {"handled"}
    with factory.begin() as session:
        for table in PURCHASE_TABLES:
            session.execute(text(f"ANALYZE {table}"))
    with factory.begin() as session:  # 3,000 earlier buyers of the same product
        _earlier_buyers(session, product, course, 3000)
    users, grants = _purchases(product, 50, lambda n: f"invoice:{n}")

    before = _rows_read(factory)
    assert _outcomes(processor, users[:25] + grants[:25]) == {"handled"}  # known buyers
    assert _outcomes(processor, grants[25:] + users[25:]) == {"handled"}  # grants waiting for their buyers
    read = _rows_read(factory) - before

    with factory() as session:
        buyers = [event.data["user_id"] for event in users]
        mine = select(func.count()).select_from(Enrollment).where(Enrollment.user_id.in_(buyers))
        assert session.scalar(mine) == 50
        assert session.scalar(select(func.count()).select_from(Grant)) == 3050
    assert read < 1000, f"{read} rows read for 100 events: a table was walked"
    runtime.engine.dispose()


def _assign(session: Any, users: list[str], courses: list[str], cycle: int | None = None) -> Any:
    from enrollment import assignments

    items = [{"course_id": course, "program_id": None, "title": "Forklifts"} for course in courses]
    query = assignments.users_query(ORG, users, None, None)
    return assignments.assign(session, ORG, query, items, due_on=date(2030, 1, 1), mandatory=True, cycle=cycle)


def test_a_batch_on_a_populated_table_with_stale_statistics_finds_every_earlier_row(settings):
    """The key-driven lookups of earlier cycles, open assignments and enrollments give the
    outcome of the rules, on a table whose statistics were taken while it was empty."""
    from enrollment import learning
    from enrollment.models import Course, EnrollmentSource, LessonCompletion, User

    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    course, other, lesson = new_id(), new_id(), new_id()
    users = [new_id() for _ in range(3000)]
    completed, still_open, granted, fresh = users[:4]
    with factory.begin() as session:
        session.add_all(Course(id=c, org_id=ORG, title="Forklifts", status="published", version=1, lesson_count=1)
                        for c in (course, other))  # fmt: skip
        session.execute(User.__table__.insert(), [
            {"id": user, "org_id": ORG, "email": f"u{i}@example.com", "first_name": "", "last_name": "",
             "updated_at": datetime.now(UTC)} for i, user in enumerate(users)
        ])  # fmt: skip
        session.execute(text("ANALYZE assignments"))
        session.execute(text("ANALYZE enrollments"))
    with factory.begin() as session:
        _assign(session, [completed, still_open, *users[4:]], [course])
        learning.enroll(session, ORG, [granted], [course], kind="grant", ref="g-1")
        session.execute(
            update(Assignment).where(Assignment.user_id == completed).values(completed_at=datetime.now(UTC))
        )
        session.execute(update(Enrollment).where(Enrollment.user_id == completed)
                        .values(completed_at=datetime.now(UTC), progress_percent=100))  # fmt: skip
        enrollment = session.scalar(select(Enrollment.id).where(Enrollment.user_id == completed))
        session.add(LessonCompletion(enrollment_id=enrollment, lesson_id=lesson))
    events_before = _outbox_ids(factory)

    with factory.begin() as session:
        batch = _assign(session, [completed, still_open, granted, fresh], [course, other])
    assert (batch.assignments, batch.enrollments) == (7, 5)
    with factory() as session:
        cycles = session.execute(
            select(Assignment.user_id, Assignment.target_id, Assignment.cycle, Assignment.batch_id)
        )
        mine = sorted((u, t, c) for u, t, c, b in cycles if b == batch.id)
        assert mine == sorted([(completed, course, 2), (granted, course, 1), (fresh, course, 1)]
                              + [(user, other, 1) for user in (completed, still_open, granted, fresh)])  # fmt: skip
        reset = session.scalar(select(Enrollment).where(Enrollment.user_id == completed))
        assert (reset.completed_at, reset.progress_percent) == (None, 0)
        assert session.scalar(select(func.count()).select_from(LessonCompletion)) == 0
        per_user_course = session.execute(
            select(Enrollment.user_id, Enrollment.course_id, func.count()).group_by(
                Enrollment.user_id, Enrollment.course_id
            )
        ).all()
        assert {count for _, _, count in per_user_course} == {1}
        kept = session.scalar(
            select(Enrollment.id).where(Enrollment.user_id == granted, Enrollment.course_id == course)
        )
        sources = set(session.execute(select(EnrollmentSource.kind, EnrollmentSource.ref)
                                      .where(EnrollmentSource.enrollment_id == kept)))  # fmt: skip
        new_assignment = session.scalar(
            select(Assignment.id).where(Assignment.user_id == granted, Assignment.batch_id == batch.id,
                                        Assignment.course_id == course)
        )  # fmt: skip
        assert sources == {("grant", "g-1"), ("assignment", new_assignment)}
        assigned = set(session.scalars(select(Assignment.id).where(Assignment.batch_id == batch.id)))
        enrolled = set(session.scalars(select(Enrollment.id).where(Enrollment.batch_id == batch.id)))
    events = _outbox_ids(factory) - events_before
    assert events == {(a, "AssignmentCreated") for a in assigned} | {(e, "EnrollmentCreated") for e in enrolled}

    with factory.begin() as session:  # the same call again: everything is open already
        assert _assign(session, [completed, still_open, granted, fresh], [course, other]).assignments == 0
        assert _assign(session, [still_open], [course], cycle=2).assignments == 1  # a command's own cycle
        assert _assign(session, [still_open], [course], cycle=2).assignments == 0
    assert len(_outbox_ids(factory) - events_before) == len(events) + 1  # its AssignmentCreated: enrolled already
    engine.dispose()


def _outbox_ids(factory: Any) -> set[tuple[str, str]]:
    """Every outbox event (id, type), each checked against its contract."""
    with factory() as session:
        rows = session.execute(select(OutboxMessage.event_id, OutboxMessage.event_type, OutboxMessage.body)).all()
    for _, _, body in rows:
        SUITE_EVENTS.validate(decode(bytes(body)))
    return {(event_id, event_type) for event_id, event_type, _ in rows}


def test_a_batch_numbers_its_rows_in_insertion_order_and_leaves_the_planner_as_it_was(settings):
    """UUIDv7 ids, increasing within a batch and distinct between batches; sequential scans are
    allowed again after the batch."""
    from enrollment.models import Course, User

    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    courses, users = [new_id(), new_id()], [new_id() for _ in range(50)]
    with factory.begin() as session:
        session.add_all(Course(id=c, org_id=ORG, title="Forklifts", status="published", version=1, lesson_count=1)
                        for c in courses)  # fmt: skip
        session.execute(User.__table__.insert(), [
            {"id": user, "org_id": ORG, "email": f"u{i}@example.com", "first_name": "", "last_name": "",
             "updated_at": datetime.now(UTC)} for i, user in enumerate(users)
        ])  # fmt: skip
    with factory.begin() as session:
        first = _assign(session, users, courses[:1])
        second = _assign(session, users, courses[1:])
        assert session.scalar(text("SELECT current_setting('enable_seqscan')")) == "on"
    with factory() as session:
        for batch in (first, second):
            ids = list(session.scalars(select(Assignment.id).where(Assignment.batch_id == batch.id)
                                       .order_by(Assignment.created_at, text("ctid"))))  # fmt: skip
            assert len(ids) == 50 and ids == sorted(ids)
            assert {uuid.UUID(i).version for i in ids} == {7}
            enrolled = list(session.scalars(select(Enrollment.id).where(Enrollment.batch_id == batch.id)))
            assert len(set(enrolled)) == 50 and {uuid.UUID(i).version for i in enrolled} == {7}
        assert session.scalar(select(func.count(func.distinct(Assignment.id)))) == 100
    engine.dispose()


def test_the_worker_analyzes_its_users_and_enrollments_as_they_grow(settings):
    """Autovacuum may be off or a minute behind a burst: after a batch, the worker analyzes the
    tables its lookups read once they changed by autovacuum's threshold."""
    from enrollment import handlers
    from lms_common.statistics import StatisticsKeeper

    now = [0.0]
    keeper = StatisticsKeeper(handlers.KEEPER.tables, lock=1, clock=lambda: now[0])
    processor = replace(SERVICE, statistics=keeper).processor(SERVICE.runtime(settings, TestKeys()))
    people = iter(new_id() for _ in range(1000))

    def provisioned(count: int) -> None:
        events = [
            Event(type="UserProvisioned", data=user_event(next(people)), orgid=ORG, source="/t") for _ in range(count)
        ]
        deliveries = [Delivery(e.to_json(), SUITE_EVENTS.routing_key(e), e.id) for e in events]
        assert {result.outcome.value for result in processor.process(deliveries)} == {"handled"}

    engine = make_engine(settings.database_url)

    def users_analyzed() -> bool:
        now[0] += 10.0  # past the interval: the next batch looks again
        provisioned(1)
        with engine.connect() as connection:
            query = text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'users'")
            return connection.scalar(query) is not None

    provisioned(300)
    wait_until(users_analyzed, timeout=20, interval=0.5)  # the server publishes table counts within a second
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'users'")) >= 300
        grants_analyzed = text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'grants'")
        assert connection.scalar(grants_analyzed) is None  # unchanged: left alone
    engine.dispose()


def test_one_grant_command_enrolls_its_buyer_in_few_round_trips_and_wakes_the_relay(settings, monkeypatch):
    """The latency path of a purchase: one GrantProduct, one grant, one enrollment. Each
    statement is a round trip that every commit on the consumer's path waits for, and a buyer
    holding many grants pays no more for the next one than for its first. The product, its
    courses and their titles are one read; ProductGranted and EnrollmentCreated one insert."""
    import psycopg
    from sqlalchemy import event as sqlalchemy_event
    from sqlalchemy.engine import make_url

    from enrollment import handlers
    from enrollment.models import EnrollmentSource

    # The look at the tables' statistics comes once a minute, not with each event.
    monkeypatch.setattr(handlers.KEEPER, "refresh", lambda session: [])
    runtime = SERVICE.runtime(settings, TestKeys())
    processor = SERVICE.processor(runtime)
    user = new_id()
    products = [(new_id(), new_id()) for _ in range(41)]  # (product, course)

    def deliver(event: Event) -> None:
        [result] = processor.process([Delivery(event.to_json(), SUITE_EVENTS.routing_key(event), event.id)])
        assert result.outcome.value == "handled", result.reason

    def grant(n: int) -> Event:
        return Event(type="GrantProduct", orgid=ORG, source="/test", data={
            "natural_key": f"invoice:{n}", "product_id": products[n][0], "owner": {"user_id": user},
            "source_event_id": new_id(), "source_event_type": "InvoicePaid", "rule_id": None})  # fmt: skip

    for product, course in products:
        for event in product_of_one_course(product, course):
            deliver(event)
    statements: list[str] = []
    sqlalchemy_event.listen(runtime.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    dsn = make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN lms_outbox")
        deliver(grant(0))
        assert len(list(listener.notifies(timeout=1.0, stop_after=1))) == 1
    first = list(statements)
    assert len(first) == 9, "\n".join(first)  # a lone command: no bulk.by_index
    assert sum(statement.startswith("INSERT INTO outbox") for statement in first) == 1
    for n in range(1, 40):
        deliver(grant(n))
    statements.clear()
    deliver(grant(40))
    assert statements == first  # the same texts: nothing grows with the grants held
    factory = make_session_factory(make_engine(settings.database_url))
    with factory() as session:
        enrollments = session.scalars(select(Enrollment).where(Enrollment.user_id == user)).all()
        assert sorted(e.course_id for e in enrollments) == sorted(course for _, course in products)
        assert {e.first_source for e in enrollments} == {"grant"}
        ids = [e.id for e in enrollments]
        sources = session.execute(
            select(EnrollmentSource.kind, EnrollmentSource.active).where(EnrollmentSource.enrollment_id.in_(ids))
        ).all()
        assert sorted(sources) == [("grant", True)] * len(products)
    assert {event_type for _, event_type in _outbox_ids(factory)} == {"ProductGranted", "EnrollmentCreated"}


def test_a_buyer_announced_again_costs_the_same_whatever_it_holds(settings, monkeypatch):
    """identity announces a buyer it knows (UserProvisioned) with each of its purchases, just
    before the purchase's GrantProduct. Only the first announcement opens what the buyer's
    grants hold; the later ones read none of its grants, enrollments or sources, so the
    purchase's grant does not wait behind a look at everything bought before."""
    from sqlalchemy import event as sqlalchemy_event

    from enrollment import handlers

    monkeypatch.setattr(handlers.KEEPER, "refresh", lambda session: [])
    runtime = SERVICE.runtime(settings, TestKeys())
    processor = SERVICE.processor(runtime)
    user, email = new_id(), "buyer@example.com"
    products = [(new_id(), new_id()) for _ in range(30)]  # (product, course)

    def deliver(event: Event) -> None:
        [result] = processor.process([Delivery(event.to_json(), SUITE_EVENTS.routing_key(event), event.id)])
        assert result.outcome.value == "handled", result.reason

    def announced(created: bool) -> Event:
        data = {**user_event(user, email), "cause": "InvoicePaid", "cause_event_id": new_id(), "created": created}
        return Event(type="UserProvisioned", orgid=ORG, source="/test", data=data)

    def bought(n: int) -> None:
        deliver(Event(type="GrantProduct", orgid=ORG, source="/test", data={
            "natural_key": f"invoice:{n}", "product_id": products[n][0], "owner": {"user_id": user},
            "source_event_id": new_id(), "source_event_type": "InvoicePaid", "rule_id": None}))  # fmt: skip

    for product, course in products:
        for event in product_of_one_course(product, course):
            deliver(event)
    statements: list[str] = []
    sqlalchemy_event.listen(runtime.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    deliver(announced(created=True))
    first = list(statements)
    bought(0)
    statements.clear()
    deliver(announced(created=False))
    again = list(statements)
    assert len(again) < len(first), "\n".join(again)
    read = " ".join(again)
    for table in ("grants", "enrollments", "enrollment_sources"):
        assert f"FROM {table}" not in read, table
    for n in range(1, len(products)):
        bought(n)
    statements.clear()
    deliver(announced(created=False))
    assert statements == again  # the same texts after 30 purchases as after one
    factory = make_session_factory(make_engine(settings.database_url))
    with factory() as session:
        enrolled = session.scalars(select(Enrollment.course_id).where(Enrollment.user_id == user)).all()
    assert sorted(enrolled) == sorted(course for _, course in products)


def test_a_batch_wakes_the_relay_with_its_outbox_insert_even_after_a_rolled_back_savepoint(settings):
    """The NOTIFY travels with the events' ``INSERT ... SELECT``: no statement of its own, sent
    again when a savepoint that sent it rolled back, never from a transaction rolled back."""
    import psycopg
    from sqlalchemy import event as sqlalchemy_event
    from sqlalchemy.engine import make_url

    from enrollment import bulk, learning
    from lms_common import outbox

    def users() -> list[str]:  # more than enroll_few takes: the set-based path
        return [new_id() for _ in range(bulk.FEW + 1)]

    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    statements: list[str] = []
    sqlalchemy_event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    dsn = make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")
        with factory() as session:
            learning.enroll(session, ORG, users(), [new_id()], kind="grant", ref="g-0")
            session.rollback()
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
        with factory.begin() as session:
            learning.enroll(session, ORG, users(), [new_id()], kind="grant", ref="g-1")
        assert len(list(listener.notifies(timeout=1.0, stop_after=2))) == 1
        with factory.begin() as session:
            failed = session.begin_nested()
            learning.enroll(session, ORG, users(), [new_id()], kind="grant", ref="g-2")
            failed.rollback()
            learning.enroll(session, ORG, users(), [new_id()], kind="grant", ref="g-3")
        assert len(list(listener.notifies(timeout=1.0, stop_after=2))) == 1
    assert not [statement for statement in statements if statement.startswith("SELECT pg_notify")]
    assert sum("pg_notify" in statement for statement in statements) == 4
    assert {ref for _, ref in _outbox_refs(factory)} == {"g-1", "g-3"}
    engine.dispose()


def _outbox_refs(factory: Any) -> set[tuple[str, str]]:
    """(source, source id) of every EnrollmentCreated in the outbox, each checked against its contract."""
    with factory() as session:
        bodies = session.scalars(select(OutboxMessage.body).where(OutboxMessage.event_type == "EnrollmentCreated"))
        events = [decode(bytes(body)) for body in bodies]
    for event in events:
        SUITE_EVENTS.validate(event)
    return {(event.data["source"], event.data["source_id"]) for event in events}


def test_a_batch_whose_sql_builds_a_payload_off_its_contract_is_refused_on_postgres(settings):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
    from enrollment_helpers import refuses_events_off_their_contract

    engine = make_engine(settings.database_url)
    refuses_events_off_their_contract(make_session_factory(engine))
    engine.dispose()


@pytest.mark.parametrize("seed", range(3))
def test_random_small_batches_give_the_rows_and_events_of_the_set_based_path_on_postgres(postgres_admin_url, seed):
    import sys
    from contextlib import ExitStack
    from pathlib import Path

    from lms_common.testing import scratch_database

    sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
    from test_few_targets import compare_paths, database

    with ExitStack() as stack:
        factories = [database(stack.enter_context(scratch_database(postgres_admin_url))) for _ in range(2)]
        stack.callback(lambda: [factory.kw["bind"].dispose() for factory in factories])
        compare_paths(factories, seed)


@pytest.mark.parametrize("seed", range(3))
def test_random_assignment_command_batches_have_the_outcome_of_one_at_a_time_on_postgres(
    postgres_admin_url, tmp_path, monkeypatch, seed
):
    import random
    import sys
    from contextlib import ExitStack
    from pathlib import Path

    from lms_common.testing import scratch_database

    sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
    from test_assignment_rounds import _random_batches, compare

    rng = random.Random(seed)
    batches = list(_random_batches(rng))
    with ExitStack() as stack:
        urls = [stack.enter_context(scratch_database(postgres_admin_url)) for _ in range(2)]
        completions = [rng.sample(range(20), 4) for _ in batches]
        compare(urls, TestKeys(), tmp_path, monkeypatch, batches, completions=completions)


@pytest.mark.parametrize("whole", [True, False], ids=["batch", "one-at-a-time"])
def test_commands_naming_several_targets_equal_a_command_per_target_on_postgres(
    postgres_admin_url, tmp_path, monkeypatch, whole
):
    import random
    import sys
    from contextlib import ExitStack
    from pathlib import Path

    from lms_common.testing import scratch_database

    sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
    from test_assignment_rounds import _random_joined_batches, compare_split

    rng = random.Random(7)
    batches = list(_random_joined_batches(rng))
    with ExitStack() as stack:
        urls = [stack.enter_context(scratch_database(postgres_admin_url)) for _ in range(2)]
        completions = [rng.sample(range(20), 4) for _ in batches]
        compare_split(urls, TestKeys(), tmp_path, monkeypatch, batches, completions=completions, whole=whole)


def _course_index_reads(factory: Any) -> int:
    """Index entries read so far through the index of enrollments by course alone."""
    with factory() as session:
        session.execute(text("SELECT pg_stat_force_next_flush()"))  # this backend's counts, now
    with factory() as session:
        query = text("SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = 'ix_enrollments_course_id'")
        return int(session.scalar(query))


def test_enrolling_on_a_course_with_stale_statistics_reads_the_unique_key_not_the_course(settings):
    """Lookups of a (user, course) enrollment go through the unique index by user: with
    statistics taken while the table was empty, the index by course looked alike to the planner
    and each lookup read every enrollment of the course (a burst of invoices for one course
    read 1.1 million index entries for 3,000 purchases)."""
    from enrollment import bulk
    from enrollment.models import Course

    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    course = new_id()
    with factory.begin() as session:
        session.add(Course(id=course, org_id=ORG, title="Forklifts", status="published", version=1, lesson_count=1))
        session.execute(text("ANALYZE enrollments"))
        session.execute(text("ANALYZE enrollment_sources"))
    target = {"org_id": ORG, "course_id": course, "kind": "grant", "ref": "g-1"}
    earlier = [{**target, "user_id": new_id()} for _ in range(3000)]
    with factory.begin() as session:
        bulk.enroll(session, earlier, datetime.now(UTC))
    before = _course_index_reads(factory)
    with factory.begin() as session:  # a batch through bulk targets, then a few, some enrolled already
        assert bulk.enroll(session, [*earlier[:10], *({**target, "user_id": new_id()} for _ in range(40))],
                           datetime.now(UTC)) == 40  # fmt: skip
        assert bulk.enroll(session, [earlier[20], {**target, "user_id": new_id()}], datetime.now(UTC)) == 1
    assert _course_index_reads(factory) - before < 100
    engine.dispose()


def test_look_ups_by_index_hold_inside_nested_blocks_and_end_with_the_outermost(settings):
    """A command's handler holds its look-ups to indexes and so do the assignments it makes:
    the inner block changes nothing (and costs no round trip); the outer one restores the setting."""
    from sqlalchemy import event as sqlalchemy_event

    from enrollment import bulk

    engine = make_engine(settings.database_url)
    statements: list[str] = []
    sqlalchemy_event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    def seqscan(session: Any) -> str:
        return str(session.scalar(text("SELECT current_setting('enable_seqscan')")))

    with make_session_factory(engine).begin() as session:
        with bulk.by_index(session):
            with bulk.by_index(session):
                assert seqscan(session) == "off"
            assert seqscan(session) == "off"
        assert seqscan(session) == "on"
    assert sum("set_config" in statement for statement in statements) == 2
    engine.dispose()


def _command_keys_insert(session: Any) -> Any:
    """Command keys named by the array ``keys``, for the kept insert of the test below."""
    from sqlalchemy import String, literal
    from sqlalchemy.dialects.postgresql import ARRAY

    from enrollment import bulk
    from enrollment.models import CommandKey

    keys = select(func.unnest(bindparam("keys", type_=ARRAY(String))).label("key")).subquery()
    rows = select(
        literal(ORG), keys.c.key, literal("AssignMandatoryTraining"), bindparam("at", type_=CommandKey.done_at.type)
    )
    return bulk.fresh_insert(session, CommandKey.__table__, ["org_id", "natural_key", "command", "done_at"], rows)


def test_a_kept_insert_meeting_a_duplicate_skips_it_and_stays_plain_on_postgres(settings):
    """insert_fresh with a statement built once: a unique violation rolls its savepoint back and
    the rows go in again skipping the duplicate; the kept statement is unchanged for the next
    batch, which goes in plainly, and the transaction's earlier work survives."""
    from sqlalchemy import event as sqlalchemy_event

    from enrollment import bulk
    from enrollment.models import CommandKey

    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    statements: list[str] = []
    sqlalchemy_event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    now = datetime.now(UTC)
    with factory.begin() as session:
        kept = bulk.built_once(session, ("test command keys",), lambda: _command_keys_insert(session))
        assert bulk.insert_fresh(session, kept, {"keys": ["k1", "k2"], "at": now}) == 2
        assert bulk.insert_fresh(session, kept, {"keys": ["k2", "k3", "k3"], "at": now}) == 1
        again = bulk.built_once(session, ("test command keys",), lambda: _command_keys_insert(session))
        assert again is kept
        assert bulk.insert_fresh(session, kept, {"keys": ["k4"], "at": now}) == 1
    with factory() as session:
        assert sorted(session.scalars(select(CommandKey.natural_key).where(CommandKey.org_id == ORG))) == [
            "k1", "k2", "k3", "k4",
        ]  # fmt: skip
    inserts = [statement for statement in statements if statement.startswith("INSERT INTO command_keys")]
    assert ["ON CONFLICT" in statement for statement in inserts] == [False, False, True, False]
    engine.dispose()
