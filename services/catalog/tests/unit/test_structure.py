"""Modules and lessons in order: positions, atomic reordering, lists, search and pages."""

from catalog_helpers import MODERATOR, OTHER_ORG, build_course, ok, refused


def lesson_titles(caller, course):
    return [[x["title"] for x in m["lessons"]] for m in ok(caller.get(f"/v1/courses/{course}/outline"))["modules"]]


def test_positions_and_atomic_reorder(moderator):
    course = ok(moderator.post("/v1/courses", json={"title": "C"}), 201)["id"]
    m1 = ok(moderator.post(f"/v1/courses/{course}/modules", json={"title": "one"}), 201)["id"]
    m2 = ok(moderator.post(f"/v1/courses/{course}/modules", json={"title": "two"}), 201)["id"]
    m0 = ok(moderator.post(f"/v1/courses/{course}/modules", json={"title": "zero", "position": 0}), 201)["id"]
    outline = ok(moderator.get(f"/v1/courses/{course}/outline"))
    assert [m["title"] for m in outline["modules"]] == ["zero", "one", "two"]

    reordered = ok(moderator.put(f"/v1/courses/{course}/modules/order", json={"module_ids": [m2, m0, m1]}))
    assert [(m["title"], m["position"]) for m in reordered["modules"]] == [("two", 0), ("zero", 1), ("one", 2)]
    # A list that misses a module, or repeats one, is refused and changes nothing.
    refused(moderator.put(f"/v1/courses/{course}/modules/order", json={"module_ids": [m2, m0]}), 422, "order_mismatch")
    refused(moderator.put(f"/v1/courses/{course}/modules/order", json={"module_ids": [m2, m2, m1]}), 422)
    assert [m["title"] for m in ok(moderator.get(f"/v1/courses/{course}/outline"))["modules"]] == ["two", "zero", "one"]

    a = ok(moderator.post(f"/v1/modules/{m1}/lessons", json={"title": "a", "kind": "text"}), 201)["id"]
    b = ok(moderator.post(f"/v1/modules/{m1}/lessons", json={"title": "b", "kind": "text"}), 201)["id"]
    ok(moderator.put(f"/v1/modules/{m1}/lessons/order", json={"lesson_ids": [b, a]}))
    ok(moderator.patch(f"/v1/modules/{m2}", json={"position": 2}))
    assert lesson_titles(moderator, course) == [[], ["b", "a"], []]
    assert [m["title"] for m in ok(moderator.get(f"/v1/courses/{course}/outline"))["modules"]] == ["zero", "one", "two"]


def test_lists_filter_search_and_page(moderator):
    for title in ("Alpha 100%", "Beta", "alpha two", "Gamma"):
        ok(moderator.post("/v1/courses", json={"title": title}), 201)
    found = ok(moderator.get("/v1/courses?q=ALPHA"))["items"]
    assert sorted(c["title"] for c in found) == ["Alpha 100%", "alpha two"]
    assert [c["title"] for c in ok(moderator.get("/v1/courses?q=100%25"))["items"]] == ["Alpha 100%"]
    assert ok(moderator.get("/v1/courses?status=published"))["items"] == []

    first = moderator.get("/v1/courses?limit=3")
    body = ok(first)
    assert len(body["items"]) == 3 and body["next_cursor"] and 'rel="next"' in first.headers["Link"]
    rest = ok(moderator.get(f"/v1/courses?limit=3&cursor={body['next_cursor']}"))
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    seen = [c["id"] for c in body["items"] + rest["items"]]
    assert len(set(seen)) == 4
    refused(moderator.get("/v1/courses?cursor=garbage"), 400)
    refused(moderator.get("/v1/courses?limit=501"), 422)


def test_another_tenants_ids_are_unknown(moderator, as_user):
    ids = build_course(moderator)
    stranger = as_user(MODERATOR, org=OTHER_ORG)
    refused(stranger.get(f"/v1/modules/{ids['module']}"), 404)
    refused(stranger.post(f"/v1/modules/{ids['module']}/lessons", json={"title": "x", "kind": "text"}), 404)
    refused(stranger.post(f"/v1/lessons/{ids['lessons'][0]}/publish"), 404)
    # Another tenant's course in a body is unknown too.
    problem = refused(stranger.post("/v1/products", json={"title": "P", "course_ids": [ids["course"]]}), 422)
    assert problem["code"] == "unknown_courses"


def test_a_listed_course_is_the_course_as_read_alone(moderator):
    """The list builds its items straight from rows; they are what GET /v1/courses/{id} dumps."""
    for title in ("One", "Two"):
        ok(moderator.post("/v1/courses", json={"title": title, "description": f"About {title}"}), 201)
    listed = ok(moderator.get("/v1/courses"))["items"]
    assert listed == [ok(moderator.get(f"/v1/courses/{item['id']}")) for item in listed]
