"""The events written to the outbox with each change, and their versions."""

from catalog_helpers import ORG, build_course, ok, outbox_events, published_course


def of(events, kind, subject_id):
    return [e["data"] for e in events if e["type"] == kind and subject_id in e["subject"]]


def test_course_events_carry_ordered_published_lessons_and_growing_versions(moderator, settings):
    ids = build_course(moderator, kinds=("text", "text", "quiz"))
    first, second, quiz_lesson = ids["lessons"]
    quiz = ok(moderator.post("/v1/quizzes", json={
        "lesson_id": quiz_lesson, "pass_percent": 50, "max_attempts": 2,
        "questions": [{"prompt": "Sky is blue?", "kind": "true_false", "answer": True}],
    }), 201)  # fmt: skip
    for lesson in (second, first, quiz_lesson):
        ok(moderator.post(f"/v1/lessons/{lesson}/publish"))
    ok(moderator.post(f"/v1/courses/{ids['course']}/publish"))

    events = outbox_events(settings.database_url)
    assert {e["source"] for e in events} == {"/catalog"} and {e["orgid"] for e in events} == {ORG}
    created = of(events, "CourseCreated", ids["course"])
    assert created[0]["status"] == "draft" and created[0]["version"] == 1
    published = of(events, "CoursePublished", ids["course"])[-1]
    assert published["lesson_ids"] == [first, second, quiz_lesson]
    assert published["quiz_ids"] == [quiz["id"]]
    versions = [e["data"]["version"] for e in events if e["type"].startswith("Course")]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert published["version"] == versions[-1]


def test_quiz_changed_carries_the_answer_key(moderator, settings):
    lesson = build_course(moderator, kinds=("quiz",))["lessons"][0]
    quiz = ok(moderator.post("/v1/quizzes", json={
        "lesson_id": lesson, "pass_percent": 80, "max_attempts": None,
        "questions": [
            {"prompt": "Pick one", "kind": "single_choice", "choices": ["a", "b"], "answer": "b"},
            {"prompt": "Pick some", "kind": "multiple_choice", "choices": ["a", "b", "c"], "answer": ["a", "c"]},
            {"prompt": "Say it", "kind": "short_text", "answer": "exit"},
        ],
    }), 201)  # fmt: skip
    ok(moderator.patch(f"/v1/quizzes/{quiz['id']}", json={"pass_percent": 60}))
    changes = of(outbox_events(settings.database_url), "QuizChanged", quiz["id"])
    assert [c["version"] for c in changes] == [1, 2]
    assert [q["answer"] for q in changes[-1]["questions"]] == ["b", ["a", "c"], "exit"]
    assert changes[-1]["pass_percent"] == 60 and changes[-1]["max_attempts"] is None


def test_product_and_program_events(moderator, settings):
    one, two = published_course(moderator, "One"), published_course(moderator, "Two")
    product = ok(moderator.post("/v1/products", json={"title": "Bundle", "course_ids": [one, two]}), 201)
    ok(moderator.put(f"/v1/products/{product['id']}/courses", json={"course_ids": [two, one]}))
    ok(moderator.post(f"/v1/products/{product['id']}/activate"))
    ok(moderator.post(f"/v1/products/{product['id']}/deactivate"))
    program = ok(moderator.post("/v1/programs", json={
        "title": "Path", "enforce_course_order": True, "course_ids": [one, two]}), 201)  # fmt: skip
    ok(moderator.post(f"/v1/programs/{program['id']}/publish"))

    events = outbox_events(settings.database_url)
    product_events = [(e["type"], e["data"]) for e in events if e["type"].startswith("Product")]
    assert [(kind, data["version"], data["course_ids"]) for kind, data in product_events] == [
        ("ProductUpdated", 1, [one, two]),
        ("ProductUpdated", 2, [two, one]),
        ("ProductActivated", 3, [two, one]),
        ("ProductDeactivated", 4, [two, one]),
    ]
    published = of(events, "ProgramPublished", program["id"])[0]
    assert published == {**published, "course_ids": [one, two], "enforce_course_order": True, "published": True}
    assert published["version"] == 2


def test_a_failed_change_adds_no_event(moderator, settings):
    ids = build_course(moderator)
    before = len(outbox_events(settings.database_url))
    assert moderator.post(f"/v1/courses/{ids['course']}/publish").status_code == 409
    assert len(outbox_events(settings.database_url)) == before
