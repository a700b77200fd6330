"""Rules on save: validation (422), tenancy (404), permissions (403), secrets never read back."""

from automation_helpers import ADMIN, OTHER_ORG, ok, refused

SECRET = "s3cret-s3cret-s3cret"


def rule(**overrides):
    body = {"name": "R", "trigger": "EmployeeOnboarded", "conditions": [], "actions": []}
    return {**body, **overrides}


def test_create_read_update_delete(harness, admin):
    course = harness.catalog("course")
    webhook = {"type": "CallWebhook", "url": "https://hooks.example.com/x", "secret": SECRET}
    training = {"type": "AssignMandatoryTraining", "course_ids": [course], "due_in_days": 5}
    created = ok(admin.post("/v1/rules", json=rule(actions=[training, webhook],
                 conditions=[{"field": "department", "op": "exists"}])), 201)  # fmt: skip
    assert created["enabled"] is True and created["version"] == 1
    assert created["actions"][1]["secret"] == "********" and created["actions"][1]["max_attempts"] == 3
    assert created["actions"][0] == {**training, "program_ids": [], "mandatory": True}
    changed = ok(admin.patch(f"/v1/rules/{created['id']}", json={"name": "Renamed", "actions": [training]}))
    assert changed["name"] == "Renamed" and changed["version"] == 2 and len(changed["actions"]) == 1
    assert [r["id"] for r in ok(admin.get("/v1/rules?trigger=EmployeeOnboarded"))["items"]] == [created["id"]]
    assert admin.delete(f"/v1/rules/{created['id']}").status_code == 204
    refused(admin.get(f"/v1/rules/{created['id']}"), 404)


def test_unknown_triggers_and_wrong_types_are_422(harness, admin):
    course = harness.catalog("course")
    training = {"type": "AssignMandatoryTraining", "course_ids": [course], "due_in_days": 5}
    refused(admin.post("/v1/rules", json=rule(trigger="PizzaOrdered", actions=[training])), 422, "unknown_trigger")
    bad = [
        rule(actions=[{**training, "due_in_days": "five"}]),
        rule(actions=[{"type": "SendFax"}]),
        rule(actions=[]),
        rule(actions=[training], conditions=[{"field": "department", "op": "in", "value": "Sales"}]),
        rule(actions=[training], conditions=[{"field": "department", "op": "like", "value": "x"}]),
        rule(actions=[training], conditions=[{"field": "a..b", "op": "eq", "value": 1}]),
        rule(actions=[training], enabled="yes"),
        rule(actions=[{**training, "course_ids": ["not-a-uuid"]}]),
        rule(actions=[{"type": "CallWebhook", "url": "ftp://x", "secret": SECRET}]),
        rule(actions=[training], colour="red"),
    ]
    for body in bad:
        refused(admin.post("/v1/rules", json=body), 422)


def test_items_not_in_this_organization_are_422(harness, admin):
    theirs = harness.catalog("product", org=OTHER_ORG)
    unknown = "00000000-0000-4000-8000-000000000000"
    grant = {"type": "GrantProduct", "product_ids": [theirs]}
    problem = refused(admin.post("/v1/rules", json=rule(actions=[grant])), 422, "unknown_products")
    assert problem["errors"]["actions"]["0"]["product_ids"] == [theirs]
    training = {"type": "AssignMandatoryTraining", "course_ids": [unknown], "due_in_days": 1}
    refused(admin.post("/v1/rules", json=rule(actions=[training])), 422, "unknown_courses")
    enroll = {"type": "EnrollInProgram", "program_ids": [unknown]}
    refused(admin.post("/v1/rules", json=rule(actions=[enroll])), 422, "unknown_programs")


def test_actions_must_fit_the_trigger(harness, admin):
    course, product = harness.catalog("course"), harness.catalog("product")
    grant = {"type": "GrantProduct", "product_ids": [product]}
    recertify = {"type": "AssignMandatoryTraining", "course_ids": [course], "due_in_days": 30, "every_months": 12}
    refused(admin.post("/v1/rules", json=rule(trigger="DailyTick", actions=[grant])), 422, "action_not_allowed")
    refused(admin.post("/v1/rules", json=rule(actions=[recertify])), 422, "action_not_allowed")
    ok(admin.post("/v1/rules", json=rule(trigger="DailyTick", actions=[recertify])), 201)


def test_tenancy_and_permissions(harness, admin, as_user):
    course = harness.catalog("course")
    training = {"type": "AssignMandatoryTraining", "course_ids": [course], "due_in_days": 5}
    created = ok(admin.post("/v1/rules", json=rule(actions=[training])), 201)
    stranger = as_user(ADMIN, org=OTHER_ORG)
    refused(stranger.get(f"/v1/rules/{created['id']}"), 404)
    refused(stranger.patch(f"/v1/rules/{created['id']}", json={"name": "x"}), 404)
    assert ok(stranger.get("/v1/rules"))["items"] == []
    reader = as_user("automation:read")
    assert ok(reader.get(f"/v1/rules/{created['id']}"))["id"] == created["id"]
    refused(reader.post("/v1/rules", json=rule(actions=[training])), 403)
    refused(as_user("catalog:read").get("/v1/rules"), 403)
    assert admin.client.get("/v1/rules").status_code == 401
