"""Cohorts as a source of enrollments: members learn the cohort's courses, within its seats."""

from __future__ import annotations

from enrollment_helpers import ORG, OTHER_ORG, new_id, ok, outbox_events, refused

VERSIONS: dict[str, int] = {}


def cohort(bus, cohort_id, courses, *, seats=3, org=ORG, instructors=()):
    VERSIONS[cohort_id] = VERSIONS.get(cohort_id, 0) + 1
    data = {"cohort_id": cohort_id, "version": VERSIONS[cohort_id], "title": "Spring intake", "course_ids": courses,
            "starts_on": "2027-03-01", "ends_on": "2027-05-31", "seats": seats,
            "instructor_ids": list(instructors)}  # fmt: skip
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
