"""Large assignment batches as durable jobs: stored at the 202, carried out by a runner, taken
again when their runner died, and counted right."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from enrollment_helpers import new_id, ok, outbox_events

from enrollment import jobs
from enrollment.api import assignments as api
from enrollment.models import Assignment, Job
from lms_common.db import make_engine, make_session_factory, session_scope
from lms_common.relay import PollWaker


@pytest.fixture()
def factory(settings):
    engine = make_engine(settings.database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture()
def large_request(bus, admin, monkeypatch):
    """POST /v1/assignments of one course to three users, made "large" (answered 202)."""
    monkeypatch.setattr(api, "SYNC_LIMIT", 2)
    location, course = new_id(), new_id()
    bus.location(location)
    for _ in range(3):
        bus.user(new_id(), location=location)
    bus.course(course, [new_id()])
    return {"location_id": location, "course_ids": [course], "due_on": "2030-01-01"}


def post_job(admin, body):
    answer = admin.post("/v1/assignments", json=body)
    assert answer.status_code == 202, answer.get_json()
    assert answer.headers["Location"] == f"/v1/jobs/{answer.get_json()['id']}"
    return answer.get_json()


def runner(factory, name="runner-a"):
    return jobs.JobRunner(factory, PollWaker(threading.Event()), threading.Event(), name=name)


def test_the_api_stores_the_job_and_a_runner_carries_it_out(admin, large_request, factory, settings):
    job = post_job(admin, large_request)
    assert (job["status"], job["attempts"], job["result"]) == ("queued", 0, None)
    assert ok(admin.get(f"/v1/jobs/{job['id']}"))["status"] == "queued"  # nothing ran in the API
    assert runner(factory).run_once() is True
    done = ok(admin.get(f"/v1/jobs/{job['id']}"))
    assert (done["status"], done["attempts"], done["error"]) == ("succeeded", 1, None)
    assert (done["result"]["assignments"], done["result"]["enrollments"]) == (3, 3)
    assert done["started_at"] and done["finished_at"]
    assert runner(factory).run_once() is False
    assert len(outbox_events(settings.database_url, "AssignmentCreated")) == 3


def test_a_job_whose_runner_died_is_taken_again_after_its_lease(admin, large_request, factory):
    job = post_job(admin, large_request)
    assert jobs.claim(factory, "dead-runner", lease=timedelta(minutes=5)) == job["id"]
    assert jobs.claim(factory, "runner-b") is None  # its lease still holds
    with session_scope(factory) as session:  # the lease passes
        row = session.get(Job, job["id"])
        row.lease_until = row.started_at - timedelta(seconds=1)
    assert jobs.claim(factory, "runner-b") == job["id"]
    assert jobs.run(factory, job["id"], "dead-runner") is None  # came back to life: no longer its job
    assert jobs.run(factory, job["id"], "runner-b") == "succeeded"
    done = ok(admin.get(f"/v1/jobs/{job['id']}"))
    assert (done["status"], done["attempts"], done["result"]["assignments"]) == ("succeeded", 2, 3)


def test_a_large_job_commits_its_users_in_chunks(admin, large_request, factory, settings, monkeypatch):
    monkeypatch.setattr(jobs, "CHUNK_USERS", 2)
    job = post_job(admin, large_request)
    assert runner(factory).run_once() is True
    result = ok(admin.get(f"/v1/jobs/{job['id']}"))["result"]
    assert (result["assignments"], result["enrollments"], len(result["batch_ids"])) == (3, 3, 2)
    assert result["batch_id"] == result["batch_ids"][0]
    events = outbox_events(settings.database_url, "AssignmentCreated")
    assert sorted(event["data"]["user_id"] for event in events) == sorted({e["data"]["user_id"] for e in events})


def test_a_runner_that_dies_between_chunks_leaves_the_rest_to_the_next(
    admin, large_request, factory, settings, monkeypatch
):
    monkeypatch.setattr(jobs, "CHUNK_USERS", 2)
    real, calls = jobs.run_assignment, []

    def die_in_second_chunk(*args, **kwargs):
        calls.append(real(*args, **kwargs))
        if len(calls) == 2:
            raise SystemExit("the runner's process is killed before the second chunk commits")
        return calls[-1]

    monkeypatch.setattr(jobs, "run_assignment", die_in_second_chunk)
    job = post_job(admin, large_request)
    assert jobs.claim(factory, "dying", lease=-timedelta(seconds=1)) == job["id"]
    with pytest.raises(SystemExit):
        jobs.run(factory, job["id"], "dying")
    running = ok(admin.get(f"/v1/jobs/{job['id']}"))
    assert (running["status"], running["result"]) == ("running", None)
    assert len(outbox_events(settings.database_url, "AssignmentCreated")) == 2  # the first chunk stays
    monkeypatch.setattr(jobs, "run_assignment", real)
    assert jobs.claim(factory, "survivor") == job["id"]
    assert jobs.run(factory, job["id"], "survivor") == "succeeded"
    done = ok(admin.get(f"/v1/jobs/{job['id']}"))
    assert (done["attempts"], done["result"]["assignments"], done["result"]["enrollments"]) == (2, 3, 3)
    assert len(outbox_events(settings.database_url, "AssignmentCreated")) == 3
    with factory() as session:
        assert session.query(Assignment).count() == 3


def test_the_same_request_again_has_no_second_effect(admin, large_request, factory):
    first, second = post_job(admin, large_request), post_job(admin, large_request)
    while runner(factory).run_once():
        pass
    results = [ok(admin.get(f"/v1/jobs/{job['id']}"))["result"] for job in (first, second)]
    assert [(r["assignments"], r["enrollments"]) for r in results] == [(3, 3), (0, 0)]
    with factory() as session:
        assert session.query(Assignment).count() == 3


def test_a_failing_job_is_tried_again_then_fails_with_its_reason(admin, large_request, factory, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the database said no")

    monkeypatch.setattr(jobs, "run_assignment", broken)
    job = post_job(admin, large_request)
    statuses = []
    for attempt in range(jobs.MAX_ATTEMPTS):
        assert jobs.claim(factory, f"runner-{attempt}") == job["id"]
        statuses.append(jobs.run(factory, job["id"], f"runner-{attempt}"))
    assert statuses == ["queued"] * (jobs.MAX_ATTEMPTS - 1) + ["failed"]
    failed = ok(admin.get(f"/v1/jobs/{job['id']}"))
    assert failed["status"] == "failed" and "the database said no" in failed["error"]


def test_a_job_whose_runner_keeps_dying_is_given_up(admin, large_request, factory):
    job = post_job(admin, large_request)
    for attempt in range(jobs.MAX_ATTEMPTS):
        assert jobs.claim(factory, f"runner-{attempt}", lease=-timedelta(seconds=1)) == job["id"]
    assert jobs.claim(factory, "runner-last") is None
    failed = ok(admin.get(f"/v1/jobs/{job['id']}"))
    assert failed["status"] == "failed" and "stopped each time" in failed["error"]


def test_another_organizations_job_answers_404(admin, large_request, as_user):
    job = post_job(admin, large_request)
    other = as_user("enrollment:read enrollment:write", org="org-2")
    assert other.get(f"/v1/jobs/{job['id']}").status_code == 404
