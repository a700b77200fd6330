"""Runs: listing with filters, and retrying a failed run without repeating its effects."""

from automation_helpers import commands, employee, event, ok, refused

from automation import commands as planning


def test_a_failed_run_is_retried_once_the_cause_is_gone(harness, settings, admin, monkeypatch):
    course = harness.catalog("course")
    action = {"type": "AssignMandatoryTraining", "course_ids": [course], "due_in_days": 3}
    rule = ok(admin.post("/v1/rules", json={"name": "R", "trigger": "EmployeeOnboarded", "actions": [action]}), 201)

    def broken(*_args, **_kwargs):
        raise RuntimeError("planner down")

    monkeypatch.setattr(planning, "training", broken)
    harness.publish(event("EmployeeOnboarded", employee()))
    [run] = ok(admin.get(f"/v1/runs?rule_id={rule['id']}&status=failed"))["items"]
    assert "planner down" in run["error"] and commands(settings.database_url) == []
    assert ok(admin.get("/v1/runs?status=succeeded"))["items"] == []

    monkeypatch.undo()
    retried = ok(admin.post(f"/v1/runs/{run['id']}/retry"))
    assert retried["status"] == "succeeded" and retried["attempts"] == 2 and retried["error"] is None
    assert len(commands(settings.database_url)) == 1
    refused(admin.post(f"/v1/runs/{run['id']}/retry"), 409, "run_not_failed")
    refused(admin.post("/v1/runs/nope/retry"), 404)
