"""Progress, completion, program order, quizzes, certificates, merges and disabled users."""

from __future__ import annotations

import io

from enrollment_helpers import (
    ADMIN,
    OTHER_ORG,
    new_id,
    now,
    ok,
    outbox_events,
    refused,
    refuses_events_off_their_contract,
)
from pypdf import PdfReader

from enrollment import learning
from enrollment.models import Enrollment
from lms_common.db import make_engine, make_session_factory


def enrolled(bus, admin, learner, lessons, course=None):
    course = course or new_id()
    bus.course(course, lessons)
    return ok(admin.post("/v1/enrollments", json={"user_id": learner.user, "course_id": course}), 201), course


def complete(learner, enrollment, lesson):
    return learner.post(f"/v1/enrollments/{enrollment['id']}/lessons/{lesson}/complete")


def test_progress_never_exceeds_100_when_lessons_are_removed(bus, admin, learner):
    lessons = [new_id() for _ in range(4)]
    enrollment, course = enrolled(bus, admin, learner, lessons)
    for lesson in lessons[:3]:
        ok(complete(learner, enrollment, lesson))
    assert ok(learner.get(f"/v1/enrollments/{enrollment['id']}"))["progress_percent"] == 75
    bus.course(course, lessons[2:3])  # only one of the completed lessons stays published
    after = ok(learner.get(f"/v1/enrollments/{enrollment['id']}"))
    assert after["progress_percent"] == 100 and after["status"] == "completed"


def test_adding_a_lesson_lowers_progress_for_everyone_in_one_recompute(bus, admin, as_user, settings):
    lessons = [new_id(), new_id()]
    course = new_id()
    learners = [as_user("learner") for _ in range(3)]
    enrollments = []
    for learner in learners:
        bus.user(learner.user)
        enrollment, _ = enrolled(bus, admin, learner, lessons, course)
        ok(complete(learner, enrollment, lessons[0]))
        enrollments.append(enrollment)
    bus.course(course, [*lessons, new_id(), new_id()])
    assert [ok(admin.get(f"/v1/enrollments/{e['id']}"))["progress_percent"] for e in enrollments] == [25, 25, 25]


def test_completing_a_course_issues_a_verifiable_certificate_with_a_pdf(bus, admin, learner, app, settings):
    lesson = new_id()
    enrollment, course = enrolled(bus, admin, learner, [lesson])
    ok(complete(learner, enrollment, lesson))
    [certificate] = ok(learner.get("/v1/certificates"))["items"]
    assert certificate["course_id"] == course
    public = app.test_client().get(f"/v1/certificates/verify/{certificate['verification_code']}")
    assert ok(public)["valid"] is True and ok(public)["learner_name"] == "Ada Lovelace"
    assert app.test_client().get("/v1/certificates/verify/NOPE-NOPE-NOPE").status_code == 404
    pdf = learner.get(f"/v1/certificates/{certificate['id']}", headers={"Accept": "application/pdf"})
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = PdfReader(io.BytesIO(pdf.data)).pages[0].extract_text()
    assert certificate["verification_code"] in text and "Ada Lovelace" in text
    [completed] = outbox_events(settings.database_url, "CourseCompleted")
    assert completed["data"]["verification_code"] == certificate["verification_code"]


def test_program_order_refuses_course_two_until_course_one_is_complete(bus, admin, learner, settings):
    first, second, program = new_id(), new_id(), new_id()
    lesson_1, lesson_2 = new_id(), new_id()
    bus.course(first, [lesson_1])
    bus.course(second, [lesson_2])
    bus.program(program, [first, second], enforce=True)
    ok(admin.post(f"/v1/programs/{program}/members", json={"user_ids": [learner.user]}))
    mine = {c["course_id"]: c for c in ok(learner.get("/v1/me/courses"))["items"]}
    assert mine[second]["sources"] == ["program"]
    refused(complete(learner, {"id": mine[second]["enrollment_id"]}, lesson_2), 409, "course_locked")
    ok(complete(learner, {"id": mine[first]["enrollment_id"]}, lesson_1))
    ok(complete(learner, {"id": mine[second]["enrollment_id"]}, lesson_2))
    progress = ok(learner.get(f"/v1/programs/{program}/progress"))
    assert progress["progress_percent"] == 100 and progress["completed_at"]
    assert len(outbox_events(settings.database_url, "ProgramCompleted")) == 1
    assert admin.delete(f"/v1/programs/{program}/members/{learner.user}").status_code == 204
    assert ok(learner.get(f"/v1/enrollments/{mine[first]['enrollment_id']}"))["status"] == "completed"


QUESTIONS = [
    {"question_id": new_id(), "kind": "single_choice", "choices": ["a", "b"], "answer": "a"},
    {"question_id": new_id(), "kind": "true_false", "choices": [], "answer": True},
]


def test_quiz_attempts_are_graded_limited_and_a_pass_completes_the_lesson(bus, admin, learner):
    lesson, quiz = new_id(), new_id()
    enrollment, course = enrolled(bus, admin, learner, [lesson])
    bus.quiz(quiz, lesson, course, QUESTIONS, max_attempts=2, pass_percent=100)
    refused(complete(learner, enrollment, lesson), 409, "quiz_required")
    wrong = {QUESTIONS[0]["question_id"]: "b", QUESTIONS[1]["question_id"]: True}
    assert ok(learner.post(f"/v1/quizzes/{quiz}/attempts", json={"answers": wrong}), 201)["score_percent"] == 50
    right = {QUESTIONS[0]["question_id"]: "A ", QUESTIONS[1]["question_id"]: True}
    answer = ok(learner.post(f"/v1/quizzes/{quiz}/attempts", json={"answers": right}), 201)
    assert answer == {**answer, "score_percent": 100, "passed": True, "attempt": 2}
    refused(learner.post(f"/v1/quizzes/{quiz}/attempts", json={"answers": right}), 409, "attempts_exhausted")
    assert ok(learner.get(f"/v1/enrollments/{enrollment['id']}"))["status"] == "completed"


def test_contacts_merged_moves_history_and_the_further_progress_wins(bus, admin, as_user, settings):
    lessons = [new_id(), new_id()]
    course = new_id()
    old, new = as_user("learner"), as_user("learner")
    bus.user(old.user)
    bus.user(new.user)
    e_old, _ = enrolled(bus, admin, old, lessons, course)
    enrolled(bus, admin, new, lessons, course)
    ok(complete(old, e_old, lessons[0]))
    ok(complete(old, e_old, lessons[1]))
    data = {"from_user_id": old.user, "to_user_id": new.user, "org_id": "org-1", "merged_at": now()}
    bus.send("ContactsMerged", data)
    [kept] = ok(admin.get(f"/v1/enrollments?user_id={new.user}"))["items"]
    assert kept["progress_percent"] == 100 and kept["status"] == "completed"
    assert ok(admin.get(f"/v1/enrollments?user_id={old.user}"))["items"] == []
    assert len(ok(admin.get(f"/v1/certificates?user_id={new.user}"))["items"]) == 1


def test_a_disabled_user_loses_access_and_keeps_history(bus, admin, learner, settings):
    lesson = new_id()
    enrollment, _ = enrolled(bus, admin, learner, [lesson, new_id()])
    ok(complete(learner, enrollment, lesson))
    bus.send("UserDisabled", {"user_id": learner.user, "disabled_at": now()})
    # Refused: by the deny list (401) once the API reloads it, by the closed access (403) before.
    assert complete(learner, enrollment, new_id()).status_code in (401, 403)
    with make_session_factory(make_engine(settings.database_url))() as session:
        assert learning.sources_of(session, session.get(Enrollment, enrollment["id"])) == []
    kept = ok(admin.get(f"/v1/enrollments/{enrollment['id']}"))
    assert kept["progress_percent"] == 50 and [x["lesson_id"] for x in kept["lessons"]] == [lesson]


def test_learners_act_only_on_their_own_and_other_tenants_are_404(bus, admin, learner, as_user):
    lesson = new_id()
    enrollment, _ = enrolled(bus, admin, learner, [lesson])
    stranger = as_user("learner")
    refused(complete(stranger, enrollment, lesson), 404)
    refused(stranger.get(f"/v1/enrollments/{enrollment['id']}"), 404)
    outsider = as_user(ADMIN, org=OTHER_ORG)
    refused(outsider.get(f"/v1/enrollments/{enrollment['id']}"), 404)
    refused(outsider.post("/v1/enrollments", json={"user_id": learner.user, "course_id": new_id()}), 404)


def test_a_batch_whose_sql_builds_a_payload_off_its_contract_is_refused(settings):
    refuses_events_off_their_contract(make_session_factory(make_engine(settings.database_url)))
