"""EmployeeOnboarded: the matching AssignMandatoryTraining rules, due on start date + N days,
one effect per employee, and the race with identity's UserProvisioned in both orders."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from automation_helpers import ADMIN, Harness, commands, employee, event, ok
from conftest import make_settings

from lms_common.contracts import SUITE_EVENTS

TRAINING = "AssignMandatoryTraining"


def training_rule(admin, name, course_ids=(), program_ids=(), *, days=30, conditions=()):
    action = {"type": TRAINING, "course_ids": list(course_ids), "program_ids": list(program_ids), "due_in_days": days}
    body = {"name": name, "trigger": "EmployeeOnboarded", "conditions": list(conditions), "actions": [action]}
    return ok(admin.post("/v1/rules", json=body), 201)["id"]


def engineering(op="eq"):
    return [{"field": "department", "op": op, "value": "Engineering"}]


def test_exactly_the_matching_rules_assign_due_on_start_plus_days(harness, settings, admin):
    safety, security, sales = (harness.catalog("course") for _ in range(3))
    path = harness.catalog("program")
    everyone = training_rule(admin, "Everyone", [safety], [path], days=14)
    engineers = training_rule(admin, "Engineers", [security], days=30, conditions=engineering())
    training_rule(admin, "Sales", [sales], days=7, conditions=[{"field": "department", "op": "in", "value": ["Sales"]}])

    harness.publish(event("EmployeeOnboarded", employee()))
    assigned = {
        (c["data"]["natural_key"], tuple(c["data"]["course_ids"]), tuple(c["data"]["program_ids"]), c["data"]["due_on"])
        for c in commands(settings.database_url)
    }
    assert assigned == {
        (f"employee:E-1001:rule:{everyone}:training:cycle:1", (safety,), (path,), "2026-12-15"),
        (f"employee:E-1001:rule:{engineers}:training:cycle:1", (security,), (), "2026-12-31"),
    }
    for command in commands(settings.database_url):
        data = command["data"]
        assert data["person"] == {"email": "grace@example.com"} and data["employee_id"] == "E-1001"
        assert data["cycle"] == 1 and data["mandatory"] is True
    statuses = sorted(r["status"] for r in ok(admin.get("/v1/runs"))["items"])
    assert statuses == ["not_matched", "succeeded", "succeeded"]


def test_one_command_names_every_course_and_program_of_the_rule(harness, settings, admin):
    first, second, path = harness.catalog("course"), harness.catalog("course"), harness.catalog("program")
    rule = training_rule(admin, "Everyone", [first, second], [path])
    harness.publish(event("EmployeeOnboarded", employee("E-1")))
    [command] = commands(settings.database_url)
    data = command["data"]
    assert data["natural_key"] == f"employee:E-1:rule:{rule}:training:cycle:1"
    assert (data["course_ids"], data["program_ids"]) == ([first, second], [path])
    [run] = ok(admin.get("/v1/runs"))["items"]
    assert [action["natural_key"] for action in run["actions"]] == [data["natural_key"]]


def test_a_rehire_gets_a_new_command_naming_every_target(harness, settings, admin):
    courses, path = [harness.catalog("course"), harness.catalog("course")], harness.catalog("program")
    rule = training_rule(admin, "Everyone", courses, [path])
    harness.publish(
        event("EmployeeOnboarded", employee()), event("EmployeeOnboarded", employee(start_date="2027-06-01"))
    )
    found = sorted(
        (c["data"]["natural_key"], c["data"]["cycle"], c["data"]["course_ids"], c["data"]["program_ids"])
        for c in commands(settings.database_url)
    )
    assert found == [
        (f"employee:E-1001:rule:{rule}:training:cycle:1", 1, courses, [path]),
        (f"employee:E-1001:rule:{rule}:training:cycle:2", 2, courses, [path]),
    ]


def test_the_same_employee_under_a_new_event_id_has_one_effect(harness, settings, admin):
    training_rule(
        admin, "Everyone", [harness.catalog("course"), harness.catalog("course")], [harness.catalog("program")]
    )
    harness.publish(event("EmployeeOnboarded", employee()), event("EmployeeOnboarded", employee()))
    assert len(commands(settings.database_url)) == 1
    assert sorted(r["status"] for r in ok(admin.get("/v1/runs"))["items"]) == ["duplicate", "succeeded"]


def test_a_rehire_opens_the_next_cycle_and_repeats_stay_in_theirs(harness, settings, admin):
    course = harness.catalog("course")
    rule = training_rule(admin, "Everyone", [course])
    first, rehire = employee(), employee(start_date="2027-06-01")
    offboarded = {"employee_id": "E-1001", "email": "grace@example.com", "last_day": "2027-01-31"}
    harness.publish(event("EmployeeOnboarded", first), event("EmployeeOffboarded", offboarded))
    harness.publish(event("EmployeeOnboarded", rehire), event("EmployeeOnboarded", first))
    harness.publish(event("EmployeeOnboarded", rehire))
    cycles = sorted(
        (c["data"]["cycle"], c["data"]["due_on"], c["data"]["natural_key"]) for c in commands(settings.database_url)
    )
    assert cycles == [
        (1, "2026-12-31", f"employee:E-1001:rule:{rule}:training:cycle:1"),
        (2, "2027-07-01", f"employee:E-1001:rule:{rule}:training:cycle:2"),
    ]


def test_a_disabled_rule_does_not_run(harness, settings, admin):
    rule = training_rule(admin, "Everyone", [harness.catalog("course")])
    ok(admin.patch(f"/v1/rules/{rule}", json={"enabled": False}))
    harness.publish(event("EmployeeOnboarded", employee()))
    assert commands(settings.database_url) == [] and ok(admin.get("/v1/runs"))["items"] == []


# --- the race with identity -------------------------------------------------------------------


class FakeEnrollment:
    """What enrollment does with automation's commands (CONTRACT, contracts/automation.py): a
    command for an email with no user yet waits for UserProvisioned; each natural key once."""

    def __init__(self) -> None:
        self.users: dict[str, str] = {}
        self.waiting: dict[str, list[dict]] = {}
        self.done: set[str] = set()
        self.assignments: list[tuple[str, str, str]] = []

    def handle(self, body: bytes) -> None:
        message = json.loads(body)
        if message["type"] == "UserProvisioned":
            self.users[message["data"]["email"]] = message["data"]["user_id"]
            for command in self.waiting.pop(message["data"]["email"], []):
                self.assign(command)
        elif message["type"] == TRAINING:
            self.assign(message["data"])

    def assign(self, command: dict) -> None:
        person = command["person"]
        user = person.get("user_id") or self.users.get(person["email"])
        if user is None:
            self.waiting.setdefault(person["email"], []).append(command)
            return
        if command["natural_key"] not in self.done:
            self.done.add(command["natural_key"])
            self.assignments.append((user, command["course_ids"][0], command["due_on"]))


def user_provisioned(user_id: str, onboarded_id: str):
    data = {"user_id": user_id, "email": "grace@example.com", "org_id": "org-1", "cause": "EmployeeOnboarded",
            "cause_event_id": onboarded_id, "created": True, "employee_id": "E-1001"}  # fmt: skip
    return event("UserProvisioned", data, event_id=f"provisioned-{onboarded_id}")


def race(tmp_path: Path, keys, identity_first: bool, *, course: str, onboarded_id: str, user_id: str):
    """Automation and a fake enrollment on one bus; identity's fact lands before or after."""
    settings = make_settings(f"sqlite:///{tmp_path / ('a' if identity_first else 'b')}.sqlite3", tmp_path)
    harness = Harness(settings, keys)
    harness.bus.bind("enrollment", ["automation.AssignMandatoryTraining", "identity.UserProvisioned"])
    harness.catalog("course", course)
    from automation.app import create_app

    caller = create_app(settings, key_source=keys).test_client()
    token = {"Authorization": f"Bearer {keys.mint(org='org-1', scope=ADMIN)}"}
    action = {"type": TRAINING, "course_ids": [course], "due_in_days": 10}
    rule = {"name": "All", "trigger": "EmployeeOnboarded", "actions": [action]}
    rule_id = caller.post("/v1/rules", json=rule, headers=token).get_json()["id"]
    enrollment = FakeEnrollment()
    onboarded = event("EmployeeOnboarded", employee(), event_id=onboarded_id)
    provisioned = user_provisioned(user_id, onboarded_id)

    steps = [lambda: harness.bus.publish_event(provisioned, SUITE_EVENTS), lambda: harness.publish(onboarded)]
    for step in steps if identity_first else reversed(steps):
        step()
        harness.drain()
        harness.relay_all()
        for delivery in list(harness.bus.queues["enrollment"]):
            enrollment.handle(delivery.body)
        harness.bus.queues["enrollment"].clear()
    # Each run has its own database and so its own rule id; everything else must be equal.
    emitted = [{k: c[k] for k in ("type", "data")} for c in harness.commands()]
    return json.loads(json.dumps(emitted).replace(rule_id, "<rule>")), enrollment


@pytest.mark.parametrize("identity_first", [True, False])
def test_the_identity_race_loses_and_doubles_nothing(tmp_path, keys, identity_first):
    course, onboarded_id, user_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    emitted, enrollment = race(
        tmp_path, keys, identity_first, course=course, onboarded_id=onboarded_id, user_id=user_id
    )
    other, _ = race(tmp_path, keys, not identity_first, course=course, onboarded_id=onboarded_id, user_id=user_id)
    # Automation's commands do not depend on the order: the same payloads and natural keys.
    assert emitted == other and len(emitted) == 1 and emitted[0]["data"]["person"] == {"email": "grace@example.com"}
    assert enrollment.assignments == [(user_id, course, "2026-12-11")] and enrollment.waiting == {}
