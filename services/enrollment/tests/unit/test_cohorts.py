"""Cohorts as a source of enrollments: members learn the cohort's courses, within its seats,
and an ended cohort takes no one new."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from enrollment_helpers import ORG, OTHER_ORG, new_id, ok, outbox_events, refused

VERSIONS: dict[str, int] = {}


def today() -> date:
    return datetime.now(UTC).date()


def cohort(bus, cohort_id, courses, *, seats=3, org=ORG, instructors=(), ends_on=None):
    """Announce the cohort as catalog does; by default it runs from 90 to 180 days from now."""
    VERSIONS[cohort_id] = VERSIONS.get(cohort_id, 0) + 1
    ends_on = ends_on or today() + timedelta(days=180)
    data = {"cohort_id": cohort_id, "version": VERSIONS[cohort_id], "title": "Spring intake", "course_ids": courses,
            "starts_on": min(ends_on, today() + timedelta(days=90)).isoformat(), "ends_on": ends_on.isoformat(),
            "seats": seats, "instructor_ids": list(instructors)}  # fmt: skip
    bus.send("CohortUpdated", data, org)


def sources(caller):
    return {item["course_id"]: item["sources"] for item in ok(caller.get("/v1/me/courses"))["items"]}


def test_members_learn_the_cohorts_courses_until_they_leave(bus, admin, as_user, settings):
    course, lesson, group, user = new_id(), new_id(), new_id(), new_id()
    bus.course(course, [lesson, new_id()])
    cohort(bus, group, [course])
    bus.user(user)
    learner = as_user("learner", user=user)
    answer = ok(admin.post(f"/v1/cohorts/{group}/members", json={"user_ids": [user]}))
    assert (answer["added"], answer["members"]) == ([user], 1)
    assert sources(learner) == {course: ["cohort"]}
    [created] = [e["data"] for e in outbox_events(settings.database_url, "EnrollmentCreated")]
    assert (created["source"], created["source_id"]) == ("cohort", group)
    [mine] = ok(learner.get("/v1/me/courses"))["items"]
    ok(learner.post(f"/v1/enrollments/{mine['enrollment_id']}/lessons/{lesson}/complete"))
    assert ok(admin.post(f"/v1/cohorts/{group}/members", json={"user_ids": [user]}))["added"] == []  # once
    assert admin.delete(f"/v1/cohorts/{group}/members/{user}").status_code == 204
    assert sources(learner) == {}
    refused(admin.delete(f"/v1/cohorts/{group}/members/{user}"), 404, "member_not_found")
    ok(admin.post(f"/v1/cohorts/{group}/members", json={"user_ids": [user]}))  # back again: history kept
    [back] = ok(learner.get("/v1/me/courses"))["items"]
    assert (back["enrollment_id"], back["progress_percent"], back["sources"]) == (mine["enrollment_id"], 50, ["cohort"])
    assert [e["data"]["user_id"] for e in outbox_events(settings.database_url, "CohortMemberRemoved")] == [user]


def test_never_more_members_than_seats(bus, admin):
    group, users = new_id(), [new_id() for _ in range(3)]
    cohort(bus, group, [], seats=2)
    for user in users:
        bus.user(user)
    ok(admin.post(f"/v1/cohorts/{group}/members", json={"user_ids": users[:1]}))
    body = refused(admin.post(f"/v1/cohorts/{group}/members", json={"user_ids": users[1:]}), 409, "cohort_full")
    assert body["seats_left"] == 1
    assert ok(admin.get(f"/v1/cohorts/{group}/members"))["user_ids"] == users[:1]  # all or none


def test_a_cohort_gaining_and_losing_courses_changes_its_members_enrollments(bus, admin, as_user):
    first, second, group, user = new_id(), new_id(), new_id(), new_id()
    bus.course(first, [new_id()])
    bus.course(second, [new_id()])
    cohort(bus, group, [first])
    bus.user(user)
    ok(admin.post(f"/v1/cohorts/{group}/members", json={"user_ids": [user]}))
    learner = as_user("learner", user=user)
    cohort(bus, group, [first, second])
    assert sources(learner) == {first: ["cohort"], second: ["cohort"]}
    cohort(bus, group, [second])
    assert sources(learner) == {second: ["cohort"]}


def test_cohort_sources_sit_beside_the_others(bus, admin, as_user):
    course, group, user = new_id(), new_id(), new_id()
    bus.course(course, [new_id()])
    cohort(bus, group, [course])
    bus.user(user)
    ok(admin.post("/v1/assignments", json={"user_ids": [user], "course_ids": [course], "due_on": "2030-01-01"}), 201)
    ok(admin.post(f"/v1/cohorts/{group}/members", json={"user_ids": [user]}))
    learner = as_user("learner", user=user)
    assert sources(learner) == {course: ["assignment", "cohort"]}
    admin.delete(f"/v1/cohorts/{group}/members/{user}")
    assert sources(learner) == {course: ["assignment"]}


def test_bad_input_and_other_tenants_change_nothing(bus, admin, as_user):
    group, foreign, user = new_id(), new_id(), new_id()
    cohort(bus, group, [])
    cohort(bus, foreign, [], org=OTHER_ORG)
    bus.user(user)
    refused(admin.post(f"/v1/cohorts/{foreign}/members", json={"user_ids": [user]}), 404, "cohort_not_found")
    refused(admin.post(f"/v1/cohorts/{group}/members", json={"user_ids": [user], "extra": 1}), 422)
    refused(admin.post(f"/v1/cohorts/{group}/members", json={"user_ids": ["not-a-uuid"]}), 422)
    refused(admin.post(f"/v1/cohorts/{group}/members", json={"user_ids": [new_id()]}), 404)
    refused(as_user("learner").post(f"/v1/cohorts/{group}/members", json={"user_ids": [user]}), 403)
    assert ok(admin.get(f"/v1/cohorts/{group}/members"))["members"] == 0


def test_the_cohorts_instructors_read_its_members_and_other_learners_do_not(bus, admin, as_user):
    group, user, instructor = new_id(), new_id(), new_id()
    cohort(bus, group, [], instructors=[instructor])
    bus.user(user)
    ok(admin.post(f"/v1/cohorts/{group}/members", json={"user_ids": [user]}))
    assert ok(as_user("learner", user=instructor).get(f"/v1/cohorts/{group}/members"))["user_ids"] == [user]
    refused(as_user("learner").get(f"/v1/cohorts/{group}/members"), 404, "cohort_not_found")
    refused(as_user("learner", user=instructor).post(f"/v1/cohorts/{group}/members", json={"user_ids": [user]}), 403)


def test_an_ended_cohort_takes_no_new_members_and_opens_no_course_it_gains(bus, admin, as_user, settings):
    first, second, group, member, late = new_id(), new_id(), new_id(), new_id(), new_id()
    bus.course(first, [new_id()])
    bus.course(second, [new_id()])
    cohort(bus, group, [first], ends_on=today() + timedelta(days=1))
    bus.user(member)
    bus.user(late)
    ok(admin.post(f"/v1/cohorts/{group}/members", json={"user_ids": [member]}))
    cohort(bus, group, [first], ends_on=today() - timedelta(days=2))  # catalog moved its end into the past
    body = refused(admin.post(f"/v1/cohorts/{group}/members", json={"user_ids": [late, member]}), 409, "cohort_ended")
    assert (today() - timedelta(days=2)).isoformat() in body["detail"]
    assert ok(admin.get(f"/v1/cohorts/{group}/members"))["user_ids"] == [member]  # nothing changed
    assert ok(admin.post(f"/v1/cohorts/{group}/members", json={"user_ids": [member]}))["added"] == []
    cohort(bus, group, [first, second], ends_on=today() - timedelta(days=2))
    assert sources(as_user("learner", user=member)) == {first: ["cohort"]}  # kept; the gained course not opened
    assert sources(as_user("learner", user=late)) == {}
    assert [e["data"]["course_id"] for e in outbox_events(settings.database_url, "EnrollmentCreated")] == [first]
