"""Journey 2: an org admin's mandatory-training rule assigns two courses and a program to a new
employee the HR system announces on the bus, due start date + the rule's days; the compliance
report follows an assignment to completion; the offboarded employee is disabled and its history
stays reported."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from conftest import Suite
from journey import (
    PASSWORD,
    bootstrap_client,
    build_course,
    choose_password,
    complete_course,
    create_person,
    eventually,
    learnable,
    mailbox,
    publish_event,
    unique_email,
    user_by_email,
    web_app,
)

DUE_IN_DAYS = 30


def employee(location_code: str, department: str) -> dict[str, Any]:
    return {
        "employee_id": f"E-{uuid.uuid4().hex[:8]}",
        "email": unique_email(department.lower()),
        "first_name": "Grace",
        "last_name": "Hopper",
        "department": department,
        "job_title": "Engineer",
        "location_code": location_code,
        "manager_email": unique_email("boss"),
        "start_date": (date.today() + timedelta(days=7)).isoformat(),
    }


def test_onboarded_employee_is_assigned_reported_and_offboarded(suite: Suite) -> None:
    admin = bootstrap_client(suite)
    org_id = str(suite.bootstrap()["org_id"])
    app = web_app(admin, "http://127.0.0.1:9/signed-in")  # the code is read from the redirect, never followed
    code = f"NYC-{uuid.uuid4().hex[:6]}"
    location = admin.post("identity", "/v1/locations", {"name": "New York", "code": code}, expect=201)

    org_admin_user = create_person(admin, "orgadmin", roles=("org_admin",), kind="staff")
    org_admin = app.sign_in(org_admin_user["email"], PASSWORD)
    privacy = build_course(org_admin, "Privacy basics", modules=1, lessons=1)
    program = org_admin.post("catalog", "/v1/programs", {"title": "Engineering onboarding",
                             "enforce_course_order": False, "course_ids": [privacy["id"]]}, expect=201)  # fmt: skip
    org_admin.post("catalog", f"/v1/programs/{program['id']}/publish", expect=200)
    course = build_course(org_admin, "Secure coding", modules=1, lessons=3)
    training = {"type": "AssignMandatoryTraining", "course_ids": [course["id"], privacy["id"]],
                "program_ids": [program["id"]], "due_in_days": DUE_IN_DAYS}  # fmt: skip
    rule = {
        "name": "Engineers learn secure coding",
        "trigger": "EmployeeOnboarded",
        "conditions": [{"field": "department", "op": "eq", "value": "Engineering"}],
        "actions": [training],
        "enabled": True,
    }
    # Rules are checked against automation's copy of the catalog, which follows it on the bus.
    eventually(lambda: _created(org_admin.call("POST", "automation", "/v1/rules", json=rule)), "the rule")

    engineer, seller = employee(code, "Engineering"), employee(code, "Sales")
    publish_event(suite, "hr", "EmployeeOnboarded", org_id, engineer)
    publish_event(suite, "hr", "EmployeeOnboarded", org_id, seller)
    grace = eventually(lambda: user_by_email(admin, engineer["email"]), "the onboarded engineer's account")
    assert grace["location_id"] == location["id"] and grace["department"] == "Engineering"

    due_on = (date.fromisoformat(engineer["start_date"]) + timedelta(days=DUE_IN_DAYS)).isoformat()

    def assignment() -> dict[str, Any] | None:
        items = org_admin.get("enrollment", "/v1/assignments", user_id=grace["id"])["items"]
        return next((a for a in items if a["course_id"] == course["id"]), None)

    assigned_course = eventually(assignment, "the assignment")
    assert assigned_course["due_on"] == due_on and assigned_course["status"] == "assigned"
    # One command names the rule's two courses and its program: each is assigned, due alike.
    assigned_all = org_admin.get("enrollment", "/v1/assignments", user_id=grace["id"])["items"]
    targets = sorted((a["course_id"] or a["program_id"], a["due_on"]) for a in assigned_all)
    assert targets == sorted((target, due_on) for target in (course["id"], privacy["id"], program["id"]))

    def compliance(status: str) -> dict[str, Any] | None:
        items = org_admin.get("reporting", "/v1/reports/compliance", location_id=location["id"])["items"]
        mine = (i for i in items if i["user_id"] == grace["id"] and i["course_id"] == course["id"])
        return next((i for i in mine if i["status"] == status), None)

    assigned = eventually(lambda: compliance("assigned"), "the assignment in the compliance report")
    assert assigned["due_on"] == due_on and assigned["course_id"] == course["id"]
    # The rule is for Engineering only: the seller is provisioned but assigned nothing.
    seller_user = eventually(lambda: user_by_email(admin, seller["email"]), "the onboarded seller's account")
    assert org_admin.get("enrollment", "/v1/assignments", user_id=seller_user["id"])["items"] == []

    with mailbox() as box:
        password = choose_password(suite, admin, box, grace)
    learner = app.sign_in(engineer["email"], password)
    entry = eventually(lambda: learnable(learner, course["id"]), "the assigned course in GET /v1/me/courses")
    assert complete_course(learner, entry["enrollment_id"], course["lesson_ids"])["status"] == "completed"
    done = eventually(lambda: compliance("completed"), "the completion in the compliance report")
    assert done["completed_at"] and done["due_on"] == due_on

    # Offboarded: disabled everywhere, the token refused, signing in refused; history kept.
    publish_event(
        suite,
        "hr",
        "EmployeeOffboarded",
        org_id,
        {**{k: engineer[k] for k in ("employee_id", "email")}, "last_day": date.today().isoformat()},
    )
    eventually(lambda: (user_by_email(admin, engineer["email"]) or {}).get("disabled"), "the user disabled")
    eventually(
        lambda: learner.call("GET", "enrollment", "/v1/me/courses").status_code == 401, "enrollment refusing the token"
    )
    assert app.try_sign_in(engineer["email"], password).status_code == 401
    assert compliance("completed") is not None
    transcript = eventually(
        lambda: (
            (t := org_admin.get("reporting", f"/v1/reports/learners/{grace['id']}/transcript"))["user"]["disabled"]
            and t
        ),
        "the transcript of the disabled user",
    )
    assert [c["course_id"] for c in transcript["courses"] if c["status"] == "completed"] == [course["id"]]


def _created(response: Any) -> Any:
    return response if response.status_code == 201 else None
