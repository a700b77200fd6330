"""Mandatory training: bulk by location tree and department, derived status, the overdue sweep,
recertification cycles, the command from automation, and the worker's own sweep."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

from enrollment_helpers import new_id, ok, outbox_events, refused

from enrollment import assignments
from enrollment.models import Assignment
from enrollment.sweeper import OverdueSweeper
from lms_common.db import make_engine, make_session_factory, session_scope
from lms_common.testing import wait_until


def test_assigning_a_location_includes_its_children_and_enrolls(bus, admin, as_user, settings):
    root, child, elsewhere, course = new_id(), new_id(), new_id(), new_id()
    bus.location(root)
    bus.location(child, parent=root)
    bus.location(elsewhere)
    users = {where: new_id() for where in (root, child, elsewhere)}
    for where, user in users.items():
        bus.user(user, location=where)
    bus.course(course, [new_id()])
    body = {"location_id": root, "course_ids": [course], "due_on": "2030-01-01", "mandatory": True}
    answer = ok(admin.post("/v1/assignments", json=body), 201)
    assert sorted(a["user_id"] for a in answer["items"]) == sorted([users[root], users[child]])
    assert {a["status"] for a in answer["items"]} == {"assigned"}
    learner = as_user("learner", user=users[child])
    [mine] = ok(learner.get("/v1/me/courses"))["items"]
    assert mine["sources"] == ["assignment"]
    assert len(outbox_events(settings.database_url, "AssignmentCreated")) == 2
    assert len(outbox_events(settings.database_url, "EnrollmentCreated")) == 2


def test_overdue_is_derived_and_the_sweep_publishes_it_once(bus, admin, settings):
    user, course = new_id(), new_id()
    bus.user(user, department="Warehouse")
    bus.course(course, [new_id()])
    past = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    ok(admin.post("/v1/assignments", json={"department": "Warehouse", "course_ids": [course], "due_on": past}), 201)
    [row] = ok(admin.get("/v1/assignments?status=overdue"))["items"]
    assert row["user_id"] == user
    factory = make_session_factory(make_engine(settings.database_url))
    for expected in (1, 0):
        with session_scope(factory) as session:
            assert assignments.sweep_overdue(session, datetime.now(UTC)) == expected
    assert len(outbox_events(settings.database_url, "AssignmentOverdue")) == 1


def test_recertification_opens_a_new_cycle_and_keeps_the_old_completion(bus, admin, as_user, settings):
    user, course, lesson = new_id(), new_id(), new_id()
    bus.user(user)
    bus.course(course, [lesson])
    body = {"user_ids": [user], "course_ids": [course], "due_on": "2030-01-01"}
    [first] = ok(admin.post("/v1/assignments", json=body), 201)["items"]
    learner = as_user("learner", user=user)
    [mine] = ok(learner.get("/v1/me/courses"))["items"]
    ok(learner.post(f"/v1/enrollments/{mine['enrollment_id']}/lessons/{lesson}/complete"))
    assert ok(admin.post("/v1/assignments", json=body), 201)["count"] == 1
    rows = ok(admin.get(f"/v1/assignments?user_id={user}"))["items"]
    assert [(r["cycle"], r["status"]) for r in rows] == [(1, "completed"), (2, "assigned")]
    assert rows[0]["id"] == first["id"]


def test_the_command_has_one_effect_per_natural_key_and_waits_for_an_email(bus, settings):
    course = new_id()
    bus.course(course, [new_id()])
    data = {"natural_key": "employee:E-1:course", "person": {"email": "grace@example.com"}, "course_ids": [course],
            "program_ids": [], "due_on": date(2030, 1, 1).isoformat(), "mandatory": True,
            "source_event_id": new_id(), "source_event_type": "EmployeeOnboarded", "rule_id": None}  # fmt: skip
    bus.send("AssignMandatoryTraining", data)
    user = new_id()
    bus.user(user, "grace@example.com")
    bus.send("AssignMandatoryTraining", {**data, "source_event_id": new_id()})
    with make_session_factory(make_engine(settings.database_url))() as session:
        rows = session.query(Assignment).all()
    assert [(r.user_id, r.natural_key) for r in rows] == [(user, "employee:E-1:course")]


def test_training_for_a_disabled_user_waits_until_it_is_provisioned_again(bus, settings):
    course, user = new_id(), new_id()
    bus.course(course, [new_id()])
    bus.user(user, "grace@example.com")
    bus.send("UserDisabled", {"user_id": user, "disabled_at": "2027-01-31T00:00:00+00:00", "reason": "offboarded"})
    data = {"natural_key": "employee:E-1:course:cycle:2", "person": {"email": "grace@example.com"},
            "course_ids": [course], "program_ids": [], "due_on": date(2030, 1, 1).isoformat(), "mandatory": True,
            "cycle": 2, "source_event_id": new_id(), "source_event_type": "EmployeeOnboarded",
            "rule_id": None}  # fmt: skip
    bus.send("AssignMandatoryTraining", data)
    with make_session_factory(make_engine(settings.database_url))() as session:
        assert session.query(Assignment).count() == 0
    bus.send("UserEnabled", {"user_id": user, "enabled_at": "2027-06-01T00:00:00+00:00"})
    bus.user(user, "grace@example.com")
    with make_session_factory(make_engine(settings.database_url))() as session:
        rows = session.query(Assignment).all()
    assert [(r.user_id, r.cycle) for r in rows] == [(user, 2)]


def test_a_local_admin_assigns_only_within_its_locations(bus, as_user):
    mine, other, course = new_id(), new_id(), new_id()
    bus.location(mine)
    bus.location(other)
    outsider = new_id()
    bus.user(outsider, location=other)
    bus.course(course, [new_id()])
    local = as_user("enrollment:read enrollment:write", loc={"enrollment:write": [mine], "enrollment:read": [mine]})
    body = {"user_ids": [outsider], "course_ids": [course], "due_on": "2030-01-01"}
    refused(local.post("/v1/assignments", json=body), 404)
    refused(local.post("/v1/assignments", json={**body, "user_ids": None, "location_id": other}), 422)
    body = {"location_id": other, "course_ids": [course], "due_on": "2030-01-01"}
    refused(local.post("/v1/assignments", json=body), 404)


def test_the_worker_sweeps_overdue_assignments_on_its_own(bus, admin, settings):
    user, course = new_id(), new_id()
    bus.user(user)
    bus.course(course, [new_id()])
    past = (datetime.now(UTC).date() - timedelta(days=2)).isoformat()
    ok(admin.post("/v1/assignments", json={"user_ids": [user], "course_ids": [course], "due_on": past}), 201)
    stop = threading.Event()
    thread = OverdueSweeper(make_session_factory(make_engine(settings.database_url)), stop, every_seconds=0.05).start()
    try:
        wait_until(lambda: outbox_events(settings.database_url, "AssignmentOverdue"), timeout=10)
    finally:
        stop.set()
        thread.join(5)
    [overdue] = outbox_events(settings.database_url, "AssignmentOverdue")
    assert overdue["data"]["user_id"] == user
