"""The whole flow as an admin does it, with every step taken out of order refused with a 409."""

from catalog_helpers import build_course, ok, published_course, refused


def test_admin_builds_publishes_and_activates_a_product(moderator):
    course = ok(moderator.post("/v1/courses", json={"title": "Fire safety", "also_product": {}}), 201)
    assert course["status"] == "draft"
    product_id = course["product_id"]
    product = ok(moderator.get(f"/v1/products/{product_id}"))
    assert product == {**product, "title": "Fire safety", "status": "inactive", "course_ids": [course["id"]]}

    # Activating before the course is published names the course.
    problem = refused(moderator.post(f"/v1/products/{product_id}/activate"), 409, "product_courses_unpublished")
    assert "Fire safety" in problem["detail"] and problem["course_ids"] == [course["id"]]

    # Publishing the course before any lesson exists, then before a lesson is published.
    refused(moderator.post(f"/v1/courses/{course['id']}/publish"), 409, "course_has_no_published_lesson")
    module = ok(moderator.post(f"/v1/courses/{course['id']}/modules", json={"title": "Basics"}), 201)
    lesson = ok(moderator.post(f"/v1/modules/{module['id']}/lessons", json={"title": "Exits", "kind": "text"}), 201)
    assert lesson["status"] == "draft"
    refused(moderator.post(f"/v1/courses/{course['id']}/publish"), 409, "course_has_no_published_lesson")

    # A text lesson without a body cannot be published.
    problem = refused(moderator.post(f"/v1/lessons/{lesson['id']}/publish"), 409, "lesson_incomplete")
    assert "needs a body" in problem["detail"]
    ok(moderator.patch(f"/v1/lessons/{lesson['id']}", json={"body": "Know your exits."}))
    assert ok(moderator.post(f"/v1/lessons/{lesson['id']}/publish"))["status"] == "published"

    published = ok(moderator.post(f"/v1/courses/{course['id']}/publish"))
    assert published["status"] == "published" and published["published_at"]
    assert ok(moderator.post(f"/v1/products/{product_id}/activate"))["status"] == "active"

    # Unpublishing the course inside an active product is refused until the product is deactivated.
    problem = refused(moderator.post(f"/v1/courses/{course['id']}/unpublish"), 409, "course_in_active_product")
    assert product_id in problem["detail"] and problem["product_ids"] == [product_id]
    # ... and so is unpublishing its last published lesson while the course is published.
    refused(moderator.post(f"/v1/lessons/{lesson['id']}/unpublish"), 409, "last_published_lesson")
    assert ok(moderator.post(f"/v1/products/{product_id}/deactivate"))["status"] == "inactive"
    assert ok(moderator.post(f"/v1/courses/{course['id']}/unpublish"))["status"] == "draft"


def test_repeating_a_lifecycle_step_changes_nothing(moderator):
    ids = build_course(moderator)
    ok(moderator.post(f"/v1/lessons/{ids['lessons'][0]}/publish"))
    first = ok(moderator.post(f"/v1/courses/{ids['course']}/publish"))
    again = ok(moderator.post(f"/v1/courses/{ids['course']}/publish"))
    assert again["version"] == first["version"]


def test_a_product_with_no_course_cannot_be_activated(moderator):
    product = ok(moderator.post("/v1/products", json={"title": "Empty", "course_ids": []}), 201)
    refused(moderator.post(f"/v1/products/{product['id']}/activate"), 409, "product_empty")


def test_an_active_product_takes_only_published_courses(moderator):
    live = published_course(moderator, "Live")
    draft = build_course(moderator, "Draft")["course"]
    product = ok(moderator.post("/v1/products", json={"title": "Bundle", "course_ids": [live]}), 201)
    ok(moderator.post(f"/v1/products/{product['id']}/activate"))
    problem = refused(moderator.put(f"/v1/products/{product['id']}/courses", json={"course_ids": [live, draft]}), 409)
    assert problem["code"] == "product_courses_unpublished" and problem["course_ids"] == [draft]


def test_lesson_kinds_need_their_content_before_publishing(moderator):
    ids = build_course(moderator, kinds=("video", "quiz", "scorm"))
    video, quiz, scorm = ids["lessons"]
    ok(moderator.post(f"/v1/lessons/{video}/publish"))
    assert "quiz" in refused(moderator.post(f"/v1/lessons/{quiz}/publish"), 409, "lesson_incomplete")["detail"]
    assert "SCORM" in refused(moderator.post(f"/v1/lessons/{scorm}/publish"), 409, "lesson_incomplete")["detail"]


def test_unknown_fields_and_bad_kinds_are_422(moderator):
    refused(moderator.post("/v1/courses", json={"title": "x", "price": 3}), 422)
    module = build_course(moderator)["module"]
    refused(moderator.post(f"/v1/modules/{module}/lessons", json={"title": "x", "kind": "podcast"}), 422)
