"""Due dates are days in the organization's time zone: overdue is judged there, around midnight."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from enrollment_helpers import ORG, new_id, ok, outbox_events

from enrollment import assignments
from enrollment.api import assignments as api
from lms_common.db import make_engine, make_session_factory, session_scope

DUE = "2026-11-23"


def organization(bus, time_zone, updated_at="2026-11-01T00:00:00Z", org=ORG):
    data = {"org_id": org, "name": "Acme", "parent_id": None, "time_zone": time_zone, "updated_at": updated_at}
    bus.send("OrganizationUpdated", data, org)


@pytest.fixture()
def assigned(bus, admin):
    """One assignment due on DUE; returns a function answering its status at a UTC instant."""
    user, course = new_id(), new_id()
    bus.user(user)
    bus.course(course, [new_id()])
    ok(admin.post("/v1/assignments", json={"user_ids": [user], "course_ids": [course], "due_on": DUE}), 201)

    def status_at(monkeypatch, instant):
        monkeypatch.setattr(api, "utcnow", lambda: instant)
        [row] = ok(admin.get(f"/v1/assignments?user_id={user}"))["items"]
        overdue = [r["user_id"] for r in ok(admin.get("/v1/assignments?status=overdue"))["items"]]
        assert (row["status"] == "overdue") == (overdue == [user])
        return row["status"]

    return status_at


def at(text):
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_without_a_time_zone_utc_decides(assigned, monkeypatch):
    assert assigned(monkeypatch, at("2026-11-23T23:59:59")) == "assigned"
    assert assigned(monkeypatch, at("2026-11-24T00:00:00")) == "overdue"


def test_west_of_utc_the_day_ends_later(bus, assigned, monkeypatch):
    organization(bus, "America/New_York")  # UTC-5 in November
    assert assigned(monkeypatch, at("2026-11-24T04:59:59")) == "assigned"  # 23:59:59 on the 23rd there
    assert assigned(monkeypatch, at("2026-11-24T05:00:00")) == "overdue"  # midnight there


def test_east_of_utc_the_day_ends_earlier(bus, assigned, monkeypatch):
    organization(bus, "Asia/Tokyo")  # UTC+9
    assert assigned(monkeypatch, at("2026-11-23T14:59:59")) == "assigned"
    assert assigned(monkeypatch, at("2026-11-23T15:00:00")) == "overdue"  # still the 23rd in UTC


def test_an_older_time_zone_event_does_not_overwrite_a_newer_one(bus, assigned, monkeypatch):
    organization(bus, "Asia/Tokyo", updated_at="2026-11-02T00:00:00Z")
    organization(bus, "America/New_York", updated_at="2026-11-01T00:00:00Z")  # late delivery
    assert assigned(monkeypatch, at("2026-11-23T15:00:00")) == "overdue"


def test_the_sweep_judges_each_organization_by_its_own_midnight(bus, admin, as_user, settings):
    organization(bus, "Asia/Tokyo")
    organization(bus, "America/New_York", org="org-ny")
    for org in (ORG, "org-ny"):
        user, course = new_id(), new_id()
        bus.user(user, org=org)
        bus.course(course, [new_id()], org=org)
        caller = admin if org == ORG else as_user("enrollment:write enrollment:read", org=org)
        ok(caller.post("/v1/assignments", json={"user_ids": [user], "course_ids": [course], "due_on": DUE}), 201)
    factory = make_session_factory(make_engine(settings.database_url))
    swept = []
    for instant in ("2026-11-23T14:59:59", "2026-11-23T15:00:00", "2026-11-24T04:59:59", "2026-11-24T05:00:00"):
        with session_scope(factory) as session:
            swept.append(assignments.sweep_overdue(session, at(instant)))
    assert swept == [0, 1, 0, 1]  # Tokyo's midnight, then New York's
    events = outbox_events(settings.database_url, "AssignmentOverdue")
    assert [e["orgid"] for e in events] == [ORG, "org-ny"]


def test_completing_after_local_midnight_is_late(bus, admin, as_user, settings, monkeypatch):
    from enrollment import replica

    organization(bus, "America/New_York")
    user, course, lesson = new_id(), new_id(), new_id()
    bus.user(user)
    bus.course(course, [lesson])
    ok(admin.post("/v1/assignments", json={"user_ids": [user], "course_ids": [course], "due_on": DUE}), 201)
    learner = as_user("learner", user=user)
    [mine] = ok(learner.get("/v1/me/courses"))["items"]
    real = replica.local_today
    # 03:00 UTC on the 24th is still the 23rd in New York: on time (UTC alone would say late).
    monkeypatch.setattr(replica, "local_today", lambda s, org, now: real(s, org, at("2026-11-24T03:00:00")))
    ok(learner.post(f"/v1/enrollments/{mine['enrollment_id']}/lessons/{lesson}/complete"))
    [completed] = outbox_events(settings.database_url, "AssignmentCompleted")
    assert completed["data"]["late"] is False
