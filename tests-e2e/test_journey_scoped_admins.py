"""Journey 5: a location admin and a reports-only admin see only their locations' people and
reports; the reports-only admin can call nothing but reports."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from conftest import Suite
from journey import PASSWORD, Api, bootstrap_client, build_course, create_person, eventually, web_app


def test_scoped_admins_see_only_their_locations(suite: Suite) -> None:
    admin = bootstrap_client(suite)
    app = web_app(admin, "http://127.0.0.1:9/signed-in")
    tag = uuid.uuid4().hex[:6]
    north = admin.post("identity", "/v1/locations", {"name": "North", "code": f"N-{tag}"}, expect=201)
    harbour = admin.post(
        "identity", "/v1/locations", {"name": "Harbour", "code": f"NH-{tag}", "parent_id": north["id"]}, expect=201
    )
    south = admin.post("identity", "/v1/locations", {"name": "South", "code": f"S-{tag}"}, expect=201)
    alice = create_person(admin, "alice", roles=("student",), location_id=north["id"])
    hugo = create_person(admin, "hugo", roles=("student",), location_id=harbour["id"])
    sam = create_person(admin, "sam", roles=("student",), location_id=south["id"])
    learners = {alice["id"], hugo["id"], sam["id"]}

    location_admin_user = create_person(
        admin,
        "northadmin",
        roles=({"role": "multi_location_admin", "location_id": north["id"], "include_descendants": True},),
        location_id=north["id"],
        kind="staff",
    )
    reports_admin_user = create_person(
        admin,
        "southreports",
        roles=({"role": "local_admin_reports", "location_id": south["id"]},),
        location_id=south["id"],
        kind="staff",
    )

    course = build_course(admin, "Fire safety", modules=1, lessons=1)
    due_on = (date.today() + timedelta(days=14)).isoformat()
    assignment = {"user_ids": sorted(learners), "course_ids": [course["id"]], "due_on": due_on, "mandatory": True}
    eventually(
        lambda: admin.call("POST", "enrollment", "/v1/assignments", json=assignment).status_code == 201,
        "the assignment of the three learners",
    )

    def reported_learners(who: Api) -> set[str]:
        items = who.get("reporting", "/v1/reports/compliance", limit=500)["items"]
        return {i["user_id"] for i in items if i["course_id"] == course["id"]}

    # The organization sees all three (once the events have reached reporting).
    eventually(lambda: reported_learners(admin) == learners, "all three in the org-wide compliance report")

    # The location admin: North and its Harbour child, not South.
    north_admin = app.sign_in(location_admin_user["email"], PASSWORD)
    people = {u["id"] for u in north_admin.items("identity", "/v1/users")}
    assert {alice["id"], hugo["id"]} <= people and sam["id"] not in people
    assert north_admin.call("GET", "identity", f"/v1/users/{sam['id']}").status_code == 404
    assert reported_learners(north_admin) == {alice["id"], hugo["id"]}
    transcript = north_admin.call("GET", "reporting", f"/v1/reports/learners/{sam['id']}/transcript")
    assert transcript.status_code in (403, 404)
    assert (
        north_admin.get("reporting", f"/v1/reports/learners/{hugo['id']}/transcript")["user"]["user_id"] == hugo["id"]
    )
    completions = north_admin.get("reporting", "/v1/reports/completions", course_id=course["id"])
    assert completions["totals"]["enrolled"] == 2
    # It manages its people: an assignment for someone in South is refused.
    elsewhere = {**assignment, "user_ids": [sam["id"]]}
    assert north_admin.call("POST", "enrollment", "/v1/assignments", json=elsewhere).status_code in (403, 404, 422)

    # The reports-only admin of South: South's reports, and nothing but reports (beyond its own
    # learning, which every role gives).
    south_reports = app.sign_in(reports_admin_user["email"], PASSWORD)
    assert reported_learners(south_reports) == {sam["id"]}
    assert south_reports.get("reporting", "/v1/reports/completions", course_id=course["id"])["totals"]["enrolled"] == 1
    other = south_reports.call("GET", "reporting", f"/v1/reports/learners/{alice['id']}/transcript")
    assert other.status_code in (403, 404)
    refused = {
        ("GET", "identity", "/v1/users"): None,
        ("GET", "identity", f"/v1/users/{sam['id']}"): None,
        ("POST", "identity", f"/v1/users/{sam['id']}/disable"): {},
        ("POST", "enrollment", "/v1/assignments"): {**assignment, "user_ids": [sam["id"]]},
        ("POST", "enrollment", "/v1/enrollments"): {"user_id": sam["id"], "course_id": course["id"]},
        ("POST", "catalog", "/v1/courses"): {"title": "Not allowed"},
        ("GET", "automation", "/v1/rules"): None,
    }
    for (method, service, path), body in refused.items():
        response = south_reports.call(method, service, path, json=body)
        assert response.status_code == 403, f"{method} {service}{path}: {response.status_code} {response.text}"
