"""Journey 3: a program that enforces its course order: the second course stays locked until
the first is complete; program analytics report the completions and the days between them."""

from __future__ import annotations

from typing import Any

from conftest import Suite
from journey import (
    PASSWORD,
    bootstrap_client,
    build_course,
    complete_course,
    create_person,
    eventually,
    learnable,
    web_app,
)


def test_enforced_program_order_locks_the_next_course_until_the_first_completes(suite: Suite) -> None:
    admin = bootstrap_client(suite)
    app = web_app(admin, "http://127.0.0.1:9/signed-in")
    moderator = app.sign_in(create_person(admin, "moderator", roles=("moderator",), kind="staff")["email"], PASSWORD)
    first = build_course(moderator, "Forklift basics", modules=1, lessons=2)
    second = build_course(moderator, "Forklift advanced", modules=2, lessons=1)
    body = {"title": "Forklift licence", "enforce_course_order": True, "course_ids": [first["id"], second["id"]]}
    program = moderator.post("catalog", "/v1/programs", body, expect=201)
    moderator.post("catalog", f"/v1/programs/{program['id']}/publish", expect=200)

    person = create_person(admin, "driver", roles=("student",))
    # Membership needs enrollment to know the published program (it learns it from catalog's events).
    eventually(
        lambda: (
            admin.call(
                "POST", "enrollment", f"/v1/programs/{program['id']}/members", json={"user_ids": [person["id"]]}
            ).status_code
            in (200, 201)
        ),
        "the program membership",
    )
    learner = app.sign_in(person["email"], PASSWORD)
    one = eventually(lambda: learnable(learner, first["id"]), "the first course in GET /v1/me/courses")
    two = eventually(lambda: learnable(learner, second["id"]), "the second course in GET /v1/me/courses")
    assert "program" in str(one["sources"]) and "program" in str(two["sources"])

    locked_path = f"/v1/enrollments/{two['enrollment_id']}/lessons/{second['lesson_ids'][0]}/complete"
    locked = learner.call("POST", "enrollment", locked_path)
    assert locked.status_code == 409, locked.text
    assert locked.json()["code"] == "course_locked"

    assert complete_course(learner, one["enrollment_id"], first["lesson_ids"])["status"] == "completed"
    assert complete_course(learner, two["enrollment_id"], second["lesson_ids"])["status"] == "completed"
    progress = learner.get("enrollment", f"/v1/programs/{program['id']}/progress", user_id=person["id"])
    assert "completed" in str(progress)

    def analytics() -> dict[str, Any] | None:
        report = admin.get("reporting", f"/v1/reports/programs/{program['id']}")
        return report if report["completed"] == 1 else None

    report = eventually(analytics, "the program completion in program analytics")
    assert report["member_count"] == 1 and report["title"] == "Forklift licence"
    assert [(step["course_id"], step["completed"]) for step in report["funnel"]] == [
        (first["id"], 1),
        (second["id"], 1),
    ]
    # Both courses were completed within this test, minutes apart: zero whole days, but measured.
    assert report["average_days_between_courses"] is not None
    assert 0 <= report["average_days_between_courses"] < 1
