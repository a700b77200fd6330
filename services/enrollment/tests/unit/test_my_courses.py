"""GET /v1/me/courses pages through a learner's courses like every other list."""

from __future__ import annotations

from enrollment_helpers import new_id, ok, refused


def granted_course(bus, admin, learner):
    """A course of its own product, granted to the learner; the grant and the course."""
    course, product = new_id(), new_id()
    bus.course(course, [new_id()], title=f"Course {course[:8]}")
    bus.product(product, [course])
    return ok(admin.post("/v1/grants", json={"product_id": product, "user_id": learner.user}), 201), course


def program_courses(bus, admin, learner, count):
    courses, program = [new_id() for _ in range(count)], new_id()
    for course in courses:
        bus.course(course, [new_id()])
    bus.program(program, courses, enforce=False)
    ok(admin.post(f"/v1/programs/{program}/members", json={"user_ids": [learner.user]}))
    return courses


def walk(caller, limit):
    """Every page of the caller's courses at ``limit`` a page, following the Link header."""
    pages, url = [], f"/v1/me/courses?limit={limit}"
    while url:
        answer = caller.get(url)
        body = ok(answer)
        pages.append(body["items"])
        link = answer.headers.get("Link")
        assert (link is None) == (body["next_cursor"] is None), (link, body["next_cursor"])
        if link is None:
            break
        assert f"cursor={body['next_cursor']}" in link and f"limit={limit}" in link and link.endswith('>; rel="next"')
        url = link[link.index("/v1/") : link.index(">")]
    return pages


def test_pages_follow_each_other_in_enrollment_order_and_end_with_no_cursor(bus, admin, learner):
    granted = [granted_course(bus, admin, learner)[1] for _ in range(5)]
    in_program = program_courses(bus, admin, learner, 2)
    pages = walk(learner, 3)
    assert [len(page) for page in pages] == [3, 3, 1]
    listed = [item for page in pages for item in page]
    assert [item["course_id"] for item in listed[:5]] == granted
    assert {item["course_id"] for item in listed[5:]} == set(in_program)
    assert [item["sources"] for item in listed] == [["grant"]] * 5 + [["program"]] * 2
    whole = ok(learner.get("/v1/me/courses"))
    assert whole == {"items": listed, "next_cursor": None}
    assert listed[0] == {
        "course_id": granted[0],
        "title": f"Course {granted[0][:8]}",
        "enrollment_id": listed[0]["enrollment_id"],
        "progress_percent": 0,
        "status": "not_started",
        "sources": ["grant"],
    }


def test_courses_no_live_source_allows_are_skipped_and_every_page_but_the_last_is_full(bus, admin, learner):
    grants = [granted_course(bus, admin, learner) for _ in range(6)]
    [in_program] = program_courses(bus, admin, learner, 1)
    for grant, _ in grants[1:4]:
        ok(admin.post(f"/v1/grants/{grant['id']}/revoke"))
    pages = walk(learner, 2)
    assert [[item["course_id"] for item in page] for page in pages] == [
        [grants[0][1], grants[4][1]],
        [grants[5][1], in_program],
    ]


def test_a_course_with_a_revoked_grant_stays_for_its_other_source(bus, admin, learner):
    grant, course = granted_course(bus, admin, learner)
    program = new_id()
    bus.program(program, [course], enforce=False)
    ok(admin.post(f"/v1/programs/{program}/members", json={"user_ids": [learner.user]}))
    assert [item["sources"] for item in ok(learner.get("/v1/me/courses"))["items"]] == [["grant", "program"]]
    ok(admin.post(f"/v1/grants/{grant['id']}/revoke"))
    assert [item["sources"] for item in ok(learner.get("/v1/me/courses"))["items"]] == [["program"]]


def test_a_page_holds_fifty_courses_unless_told_otherwise(bus, admin, learner):
    courses = program_courses(bus, admin, learner, 51)
    first = ok(learner.get("/v1/me/courses"))
    assert len(first["items"]) == 50 and first["next_cursor"]
    rest = ok(learner.get(f"/v1/me/courses?cursor={first['next_cursor']}"))
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert {item["course_id"] for item in first["items"] + rest["items"]} == set(courses)
    assert len(ok(learner.get("/v1/me/courses?limit=500"))["items"]) == 51


def test_a_page_size_out_of_range_or_a_forged_cursor_is_refused(bus, admin, learner):
    granted_course(bus, admin, learner)
    for query in ("limit=0", "limit=501", "limit=ten"):
        refused(learner.get(f"/v1/me/courses?{query}"), 422)
    refused(learner.get("/v1/me/courses?cursor=not-a-cursor"), 400, "invalid_cursor")
    assert len(ok(learner.get("/v1/me/courses"))["items"]) == 1
