"""Quizzes, programs, cohorts (with identity's instructor status) and duplicating courses."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from catalog_helpers import ORG, build_course, ok, outbox_events, published_course, refused

from catalog.service import SERVICE
from lms_common.db import make_engine, make_session_factory
from lms_common.envelope import Event, format_time
from lms_common.processing import Delivery, MessageProcessor, Outcome

QUESTIONS = [
    {"prompt": "Pick one", "kind": "single_choice", "choices": ["a", "b"], "answer": "a"},
    {"prompt": "True?", "kind": "true_false", "answer": False},
]


def make_quiz(caller, lesson):
    body = {"lesson_id": lesson, "pass_percent": 70, "max_attempts": 3, "questions": QUESTIONS}
    return ok(caller.post("/v1/quizzes", json=body), 201)


def test_learners_never_see_the_answers(moderator, learner):
    ids = build_course(moderator, kinds=("quiz",))
    quiz = make_quiz(moderator, ids["lessons"][0])
    assert [q["answer"] for q in quiz["questions"]] == ["a", False]
    refused(learner.get(f"/v1/quizzes/{quiz['id']}"), 404)  # its lesson is a draft
    ok(moderator.post(f"/v1/lessons/{ids['lessons'][0]}/publish"))
    ok(moderator.post(f"/v1/courses/{ids['course']}/publish"))
    seen = ok(learner.get(f"/v1/quizzes/{quiz['id']}"))
    assert seen["pass_percent"] == 70 and seen["max_attempts"] == 3
    assert all("answer" not in q for q in seen["questions"])


def test_quiz_rules(moderator):
    ids = build_course(moderator, kinds=("text", "quiz"))
    text, lesson = ids["lessons"]
    refused(moderator.post("/v1/quizzes", json={"lesson_id": text, "pass_percent": 50, "questions": QUESTIONS}), 409)
    make_quiz(moderator, lesson)
    refused(moderator.post("/v1/quizzes", json={"lesson_id": lesson, "pass_percent": 5, "questions": QUESTIONS}), 409)
    bad = [{"prompt": "?", "kind": "single_choice", "choices": ["a", "b"], "answer": "c"}]
    other = build_course(moderator, "Other", kinds=("quiz",))["lessons"][0]
    problem = refused(
        moderator.post("/v1/quizzes", json={"lesson_id": other, "pass_percent": 5, "questions": bad}), 422
    )
    assert problem["errors"] == {"questions": {"0": ["the answer must be one of the choices"]}}
    refused(moderator.post("/v1/quizzes", json={"lesson_id": other, "pass_percent": 101, "questions": QUESTIONS}), 422)


def test_program_title_is_unique_and_publishing_needs_published_courses(moderator):
    live, draft = published_course(moderator, "Live"), build_course(moderator, "Draft")["course"]
    program = ok(moderator.post("/v1/programs", json={"title": "Leaders", "course_ids": [live, draft]}), 201)
    assert program["course_count"] == 2 and program["published"] is False
    refused(moderator.post("/v1/programs", json={"title": "Leaders", "course_ids": []}), 409, "program_title_taken")
    problem = refused(moderator.post(f"/v1/programs/{program['id']}/publish"), 409, "program_courses_unpublished")
    assert problem["course_ids"] == [draft] and "Draft" in problem["detail"]
    ok(moderator.put(f"/v1/programs/{program['id']}/courses", json={"course_ids": [live]}))
    assert ok(moderator.post(f"/v1/programs/{program['id']}/publish"))["published"] is True
    refused(moderator.post(f"/v1/courses/{live}/unpublish"), 409, "course_in_published_program")
    assert [p["title"] for p in ok(moderator.get("/v1/programs?published=true"))["items"]] == ["Leaders"]


def instructor_event(user_id, status, when):
    data = {"user_id": user_id, "org_id": ORG, "status": status, "changed_at": format_time(when)}
    return Event(type="InstructorStatusChanged", data=data, orgid=ORG, source="/identity")


@pytest.fixture()
def deliver(settings):
    """Hand events to the catalog's handlers as its worker does (inbox, validation, savepoints)."""
    engine = make_engine(settings.database_url)
    processor = MessageProcessor("catalog", make_session_factory(engine), SERVICE.all_handlers, SERVICE.catalog)

    def send(event):
        [result] = processor.process([Delivery(body=event.to_json(), routing_key="identity.InstructorStatusChanged")])
        return result.outcome

    yield send
    engine.dispose()


def test_cohorts_take_only_approved_instructors(moderator, deliver, settings):
    course = published_course(moderator)
    approved, pending = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    assert deliver(instructor_event(approved, "approved", now)) is Outcome.HANDLED
    assert deliver(instructor_event(pending, "verified", now)) is Outcome.HANDLED
    body = {"title": "Spring", "course_ids": [course], "starts_on": "2027-03-01", "ends_on": "2027-04-01",
            "seats": 20, "instructor_ids": [approved, pending]}  # fmt: skip
    problem = refused(moderator.post("/v1/cohorts", json=body), 422, "instructor_not_approved")
    assert problem["errors"] == {"instructor_ids": [pending]}
    cohort = ok(moderator.post("/v1/cohorts", json={**body, "instructor_ids": [approved]}), 201)
    refused(moderator.patch(f"/v1/cohorts/{cohort['id']}", json={"ends_on": "2027-01-01"}), 422, "invalid_dates")
    ok(moderator.patch(f"/v1/cohorts/{cohort['id']}", json={"seats": 25}))
    [first, second] = [e["data"] for e in outbox_events(settings.database_url) if e["type"] == "CohortUpdated"]
    assert (first["version"], first["seats"], second["version"], second["seats"]) == (1, 20, 2, 25)
    assert second["instructor_ids"] == [approved] and second["starts_on"] == "2027-03-01"

    # An older status arriving late does not undo the newer one; a newer one does.
    deliver(instructor_event(approved, "rejected", now - timedelta(minutes=5)))
    ok(moderator.post("/v1/cohorts", json={**body, "title": "Summer", "instructor_ids": [approved]}), 201)
    deliver(instructor_event(approved, "inactive", now + timedelta(minutes=5)))
    refused(moderator.post("/v1/cohorts", json={**body, "title": "Fall", "instructor_ids": [approved]}), 422)
    assert [c["title"] for c in ok(moderator.get(f"/v1/cohorts?course_id={course}&q=spr"))["items"]] == ["Spring"]


def test_duplicate_is_a_deep_draft_copy(moderator, settings):
    ids = build_course(moderator, "2026 curriculum", kinds=("text", "quiz"))
    quiz = make_quiz(moderator, ids["lessons"][1])
    for lesson in ids["lessons"]:
        ok(moderator.post(f"/v1/lessons/{lesson}/publish"))
    ok(moderator.post(f"/v1/courses/{ids['course']}/publish"))

    copy = ok(moderator.post(f"/v1/courses/{ids['course']}/duplicate", json={"title": "2027 curriculum"}), 201)
    assert copy["status"] == "draft" and copy["derived_from"] == ids["course"] and copy["id"] != ids["course"]
    original, copied = (ok(moderator.get(f"/v1/courses/{c}/outline")) for c in (ids["course"], copy["id"]))
    assert [x["title"] for x in copied["modules"][0]["lessons"]] == ["text lesson", "quiz lesson"]
    new_lessons = {x["id"] for x in copied["modules"][0]["lessons"]} | {copied["modules"][0]["id"]}
    assert not new_lessons & ({x["id"] for x in original["modules"][0]["lessons"]} | {ids["module"]})
    new_quiz = copied["modules"][0]["lessons"][1]["quiz_id"]
    assert new_quiz and new_quiz != quiz["id"]
    assert ok(moderator.get(f"/v1/courses/{ids['course']}"))["status"] == "published"  # the original is untouched
    created = [e["data"] for e in outbox_events(settings.database_url) if e["type"] == "CourseCreated"][-1]
    assert created["derived_from"] == ids["course"] and created["quiz_ids"] == [new_quiz]
    assert ok(moderator.post(f"/v1/courses/{copy['id']}/duplicate"), 201)["title"] == "2027 curriculum (copy)"


def test_the_copy_of_a_course_with_the_longest_title_keeps_within_the_limit(moderator):
    course = ok(moderator.post("/v1/courses", json={"title": "x" * 200}), 201)
    copy = ok(moderator.post(f"/v1/courses/{course['id']}/duplicate"), 201)
    assert copy["title"] == "x" * 193 + " (copy)"
