"""Recertification on the daily tick, and `python -m automation tick` publishing the tick once."""

import uuid

from automation_helpers import ORG, event, ok, outbox_events

from automation import cli

USER, RECENT = str(uuid.uuid4()), str(uuid.uuid4())


def completed(course, when, user=USER):
    data = {"enrollment_id": str(uuid.uuid4()), "org_id": ORG, "user_id": user, "course_id": course,
            "course_title": "Fire safety", "sources": ["assignment"], "enrolled_at": when, "completed_at": when,
            "score_percent": None, "certificate_id": None, "verification_code": None}  # fmt: skip
    return event("CourseCompleted", data)


def tick(harness, settings, day):
    assert cli.tick(settings, ["--date", day]) == 0
    harness.relay_all()
    harness.drain()


def test_a_course_is_reassigned_every_n_months_in_a_new_cycle(harness, settings, admin):
    course = harness.catalog("course")
    action = {"type": "AssignMandatoryTraining", "course_ids": [course], "due_in_days": 30, "every_months": 12}
    rule = ok(admin.post("/v1/rules", json={"name": "Yearly", "trigger": "DailyTick", "actions": [action]}), 201)["id"]
    harness.publish(completed(course, "2025-06-15T09:00:00Z"), completed(course, "2026-01-10T09:00:00Z", RECENT))

    tick(harness, settings, "2026-06-15")  # exactly 12 months: not older yet
    assert harness.commands() == []
    tick(harness, settings, "2026-06-16")
    tick(harness, settings, "2026-06-16")  # the same day again: the tick is published once
    tick(harness, settings, "2026-06-17")  # the same completion: not re-assigned again
    [assigned] = [c["data"] for c in harness.commands()]
    assert assigned["person"] == {"user_id": USER} and assigned["course_ids"] == [course]
    assert assigned["cycle"] == 2 and assigned["due_on"] == "2026-07-16"
    assert assigned["natural_key"] == f"user:{USER}:rule:{rule}:course:{course}:cycle:2"
    assert len(harness.emitted(("DailyTick",))) == 3

    harness.publish(completed(course, "2026-07-01T09:00:00Z"))  # recertified; a year later, again
    tick(harness, settings, "2027-07-02")
    cycles = [(c["data"]["person"].get("user_id"), c["data"]["cycle"]) for c in harness.commands()]
    assert sorted(cycles) == sorted([(USER, 2), (RECENT, 2), (USER, 3)])


def test_no_tick_without_a_rule_on_it(harness, settings):
    assert cli.tick(settings, ["--date", "2026-06-16"]) == 0
    assert outbox_events(settings.database_url) == []
