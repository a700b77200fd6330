"""Each report against the hand-built scenario, whose answers are known."""

from __future__ import annotations

import csv
import io

from reporting_events import ORG, assigned, at, completed, course, scenario, uid, user

from lms_common.contracts import SUITE_EVENTS
from lms_common.processing import Outcome
from reporting import projections

ORG_ADMIN = "reports:read"


def test_every_event_is_handled_and_logged_once(feed, app):
    events = scenario()
    outcomes = feed(events + events[:5])  # the first five again: redelivered
    assert outcomes.count(outcomes[0].HANDLED) == len(events)
    assert outcomes.count(outcomes[0].DUPLICATE) == 5


def test_completions_by_course_with_totals(feed, as_user):
    feed(scenario())
    body = as_user(ORG_ADMIN).json("/v1/reports/completions")
    assert body["as_of"] == at(7.5)
    assert body["totals"] == {"enrolled": 4, "not_started": 1, "in_progress": 1, "completed": 2, "completion_rate": 0.5}
    by_course = {item["title"]: item for item in body["items"]}
    assert by_course["Safety"] | {"key": None} == {
        "key": None, "title": "Safety", "enrolled": 3, "not_started": 1, "in_progress": 1, "completed": 1,
        "completion_rate": 0.3333,
    }  # fmt: skip
    assert by_course["Privacy"]["completed"] == 1


def test_completions_by_location_program_period_and_filters(feed, as_user):
    feed(scenario())
    admin = as_user(ORG_ADMIN)
    by_location = {i["title"]: i["enrolled"] for i in admin.json("/v1/reports/completions?group_by=location")["items"]}
    assert by_location == {"north": 2, "north-east": 1, "south": 1}
    north = admin.json(f"/v1/reports/completions?location_id={uid('north')}")["totals"]
    assert (north["enrolled"], north["completed"], north["in_progress"]) == (3, 2, 1)  # north-east included
    programs = admin.json("/v1/reports/completions?group_by=program")["items"]
    assert [(p["title"], p["enrolled"], p["completed"]) for p in programs] == [("Onboarding", 4, 2)]
    periods = admin.json("/v1/reports/completions?group_by=period")["items"]
    assert [(p["key"], p["enrolled"]) for p in periods] == [("2026-01", 4)]
    window = admin.json("/v1/reports/completions?from=2026-01-07&to=2026-01-31")["totals"]
    assert window["enrolled"] == 1  # cat enrolled on day 2
    only_privacy = admin.json(f"/v1/reports/completions?course_id={uid('privacy')}")["totals"]
    assert only_privacy["enrolled"] == 1


def test_completions_pages_with_a_cursor(feed, as_user):
    feed(scenario())
    admin = as_user(ORG_ADMIN)
    first = admin.get("/v1/reports/completions?limit=1")
    assert 'rel="next"' in first.headers["Link"]
    cursor = first.get_json()["next_cursor"]
    second = admin.json(f"/v1/reports/completions?limit=1&cursor={cursor}")
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    assert second["items"][0]["key"] != first.get_json()["items"][0]["key"]


def test_compliance_statuses_and_overdue_per_location(feed, as_user):
    feed(scenario())
    body = as_user(ORG_ADMIN).json("/v1/reports/compliance")
    statuses = {(i["name"], i["title"]): i["status"] for i in body["items"]}
    assert statuses == {
        ("Ann Tester", "Safety"): "completed",
        ("Bob Tester", "Safety"): "in_progress",
        ("Cat Tester", "Safety"): "overdue",
        ("Cat Tester", "Privacy"): "assigned",
    }
    overdue = {row["name"]: (row["assignments"], row["overdue"]) for row in body["overdue_by_location"]}
    assert overdue == {"north": (1, 0), "north-east": (1, 0), "south": (2, 1)}
    only = as_user(ORG_ADMIN).json("/v1/reports/compliance?status=overdue")["items"]
    assert [(i["name"], i["due_on"]) for i in only] == [("Cat Tester", "2026-01-08")]


def test_compliance_pages_cover_every_row_once(feed, as_user):
    feed(scenario())
    admin, seen, url = as_user(ORG_ADMIN), [], "/v1/reports/compliance?limit=3"
    while url:
        body = admin.json(url)
        seen += [item["assignment_id"] for item in body["items"]]
        url = f"/v1/reports/compliance?limit=3&cursor={body['next_cursor']}" if body["next_cursor"] else None
    assert len(seen) == len(set(seen)) == 4


def test_a_new_cycle_replaces_the_previous_one(feed, as_user):
    feed([*scenario(), assigned("cat", "safety", 3700, days=9, cycle=2, previous_assignment_id=uid("a/cat/safety/1"))])
    items = as_user(ORG_ADMIN).json("/v1/reports/compliance?status=overdue")["items"]
    assert items == []


def test_program_funnel_and_pace(feed, as_user):
    feed(scenario())
    body = as_user(ORG_ADMIN).json(f"/v1/reports/programs/{uid('onboarding')}")
    assert (body["member_count"], body["started"], body["completed"]) == (2, 2, 0)
    assert [(s["title"], s["started"], s["completed"]) for s in body["funnel"]] == [
        ("Safety", 2, 1),
        ("Privacy", 1, 1),
    ]
    assert body["average_days_between_courses"] == 4.0
    as_user(ORG_ADMIN).json(f"/v1/reports/programs/{uid('nothing')}", status=404)


def test_transcript(feed, as_user):
    feed(scenario())
    body = as_user(ORG_ADMIN).json(f"/v1/reports/learners/{uid('ann')}/transcript")
    assert body["user"]["email"] == "ann@example.com"
    courses = {c["title"]: c for c in body["courses"]}
    assert courses["Safety"]["score_percent"] == 95 and courses["Safety"]["best_quiz_score"] == 95
    assert courses["Safety"]["verification_code"] == "CERT-ANN-1"
    assert courses["Privacy"]["verification_code"] == "CERT-ANN-2"  # issued after the completion arrived
    assert courses["Privacy"]["status"] == "completed"
    assert [a["status"] for a in body["assignments"]] == ["completed"]
    assert [p["title"] for p in body["programs"]] == ["Onboarding"]
    assert [c["verification_code"] for c in body["certificates"]] == ["CERT-ANN-2"]


def test_audit_window(feed, as_user):
    feed(scenario())
    admin = as_user(ORG_ADMIN)
    rows = admin.json("/v1/reports/audit")["items"]
    assert [(r["name"], r["title"], r["score_percent"], r["verification_code"]) for r in rows] == [
        ("Ann Tester", "Safety", 95, "CERT-ANN-1"),
        ("Ann Tester", "Privacy", None, "CERT-ANN-2"),
    ]
    assert [r["title"] for r in admin.json("/v1/reports/audit?from=2026-01-09&to=2026-01-12")["items"]] == ["Privacy"]
    admin.json("/v1/reports/audit?from=2026-02-01&to=2026-01-01", status=422)


def test_csv_exports_with_as_of(feed, as_user):
    feed(scenario())
    admin = as_user(ORG_ADMIN)
    for path, count in [
        ("audit", 2),
        ("compliance", 4),
        ("completions", 2),
        (f"programs/{uid('onboarding')}", 2),
        (f"learners/{uid('ann')}/transcript", 2),
    ]:
        response = admin.get(f"/v1/reports/{path}", headers={"Accept": "text/csv"})
        assert response.status_code == 200 and response.mimetype == "text/csv"
        assert response.headers["X-As-Of"] == at(7.5)
        rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
        assert len(rows) == count, (path, rows)


def test_an_older_fact_never_overwrites_a_newer_one(feed, as_user):
    moved = user("ann", "south", days=5, kind="UserUpdated")
    retitled = course("safety", version=2, title="Safety v2")
    feed([*scenario(), moved, retitled])
    feed([user("ann", "north", days=0.1, kind="UserUpdated"), course("safety", version=1)])  # late and old
    admin = as_user(ORG_ADMIN)
    ann = admin.json(f"/v1/reports/learners/{uid('ann')}/transcript")
    assert ann["user"]["location_id"] == uid("south")
    assert {c["title"] for c in ann["courses"]} == {"Safety v2", "Privacy"}


def test_the_same_fact_under_two_event_ids_counts_once(feed, as_user):
    feed([*scenario(), completed("ann", "safety", 3, score=95, code="CERT-ANN-1")])
    assert as_user(ORG_ADMIN).json("/v1/reports/completions")["totals"]["completed"] == 2
    assert len(as_user(ORG_ADMIN).json("/v1/reports/audit")["items"]) == 2


def test_as_of_is_per_organization(feed, as_user):
    feed(scenario())
    assert as_user(ORG_ADMIN, org="org-2").json("/v1/reports/audit")["as_of"] == at(2)
    assert ORG == "org-1"


def test_a_projection_failing_in_a_batch_costs_only_its_own_message(feed, as_user, monkeypatch):
    """The batch's work fails as a whole: it is handled again message by message, in savepoints."""
    events = scenario()
    bad = events[12]  # ann enrolled in safety
    original = projections.PROJECTORS[bad.type]

    def failing(t: projections.Target) -> None:
        if t.event.id == bad.id:
            raise RuntimeError("projection failed")
        original(t)

    monkeypatch.setitem(projections.PROJECTORS, bad.type, failing)
    for event in events:
        feed.bus.publish_event(event, SUITE_EVENTS)
    results = feed.bus.drain("reporting", feed.processor, batch_size=len(events), max_attempts=1)
    assert [r.outcome.value for r in results].count("handled") == len(events) - 1
    assert [delivery.message_id for delivery, _ in feed.bus.dead_letters["reporting"]] == [bad.id]
    feed.bus.dead_letters["reporting"].clear()
    monkeypatch.setitem(projections.PROJECTORS, bad.type, original)
    assert feed([bad]) == [Outcome.HANDLED]  # its work was rolled back with its savepoint: done once now
    assert as_user(ORG_ADMIN).json("/v1/reports/completions")["totals"]["enrolled"] == 4
