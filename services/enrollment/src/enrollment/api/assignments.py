"""Mandatory training assignments, and the jobs that carry out large ones."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import jsonify
from flask_smorest import Blueprint
from sqlalchemy import and_, select

from enrollment import assignments, jobs, replica, views
from enrollment.access import LEARN, READ, WRITE, Actor, actor, visible_user
from enrollment.api import schemas as s
from enrollment.models import Assignment, Enrollment, Job, Location, User
from lms_common.api import page, paginate, unit_of_work
from lms_common.auth import require
from lms_common.db import utcnow
from lms_common.errors import NotFound

blp = Blueprint("assignments", __name__, url_prefix="/v1", description="Mandatory training")

# Up to this many (user, item) pairs are assigned within the request; more become a job.
SYNC_LIMIT = 2_000


def today(session: Any, org: str) -> date:
    """Today in the organization's time zone: a due date is a day there."""
    return replica.local_today(session, org, utcnow())


def _audience(session: Any, who: Actor, body: dict[str, Any]) -> tuple[list[str] | None, set[str] | None]:
    """The user ids or locations the request names, checked against the caller's scope."""
    scope = who.principal.locations_for(WRITE)
    if "user_ids" in body:
        for user_id in body["user_ids"]:
            visible_user(session, who, user_id, WRITE)
        return body["user_ids"], None
    if "location_id" in body:
        location = session.get(Location, body["location_id"])
        if location is None or location.org_id != who.org or (scope is not None and location.id not in scope):
            raise NotFound("no such location", code="location_not_found")
        tree = replica.location_tree(session, who.org, location.id)
        return None, tree & scope if scope is not None else tree
    return None, set(scope) if scope is not None else None


@blp.route("/assignments", methods=["POST"])
@require(WRITE)
@blp.arguments(s.AssignmentCreate)
@blp.response(201, s.AssignResult)
@blp.alt_response(202, schema=s.JobOut, description="a large batch: poll GET /v1/jobs/{id}")
def create_assignments(body: dict[str, Any]) -> Any:
    """Assign courses and programs to users, a location (with its children) or a department"""
    who = actor()
    with unit_of_work() as session:
        user_ids, locations = _audience(session, who, body)
        items = assignments.items_for(session, {who.org}, body["course_ids"], body["program_ids"])
        request = {"user_ids": user_ids, "locations": sorted(locations) if locations is not None else None,
                   "department": body.get("department"), "items": items, "due_on": body["due_on"].isoformat(),
                   "mandatory": body["mandatory"]}  # fmt: skip
        users = assignments.users_query(who.org, user_ids, locations, body.get("department"))
        count = len(session.scalars(users.limit(SYNC_LIMIT + 1)).all())
        if count * len(items) <= SYNC_LIMIT:
            batch = jobs.run_assignment(session, who.org, request, who.user)
            rows = assignments.created(session, batch.id)
            now = today(session, who.org)
            return {"count": len(rows), "items": [views.assignment(session, row, now) for row in rows]}
        job = views.job(jobs.enqueue(session, who.org, request, who.user))
    # A Response of its own: the 201 schema above would not describe a job.
    return jsonify(s.JobOut().dump(job)), 202, {"Location": f"/v1/jobs/{job['id']}"}


@blp.route("/assignments", methods=["GET"])
@require(LEARN, READ)
@blp.arguments(s.AssignmentQuery, location="query")
@blp.response(200, s.AssignmentPage)
def list_assignments(args: dict[str, Any]) -> Any:
    """List assignments (learners: their own); filters `user_id`, `status` (derived when read)"""
    who = actor()
    with unit_of_work() as session:
        query = select(Assignment).where(Assignment.org_id == who.org)
        user_id = args.get("user_id") if who.may(READ) else who.user
        if user_id:
            visible_user(session, who, user_id)
            query = query.where(Assignment.user_id == user_id)
        scope = who.principal.locations_for(READ)
        if scope is not None and not user_id:
            query = query.where(Assignment.user_id.in_(select(User.id).where(User.location_id.in_(scope))))
        day = today(session, who.org)
        if args.get("status"):
            query = _with_status(query, args["status"], day)
        rows, cursor = paginate(
            session, query, [Assignment.created_at, Assignment.id], args["limit"], args.get("cursor")
        )
        return page([views.assignment(session, row, day) for row in rows], cursor)


def _with_status(query: Any, status: str, today: date) -> Any:
    """The derived status as a filter: completed, overdue (past due), in progress or assigned."""
    if status == "completed":
        return query.where(Assignment.completed_at.is_not(None))
    query = query.where(Assignment.completed_at.is_(None))
    if status == "overdue":
        return query.where(Assignment.due_on < today)
    started = (
        select(Enrollment.id)
        .where(
            and_(Enrollment.user_id == Assignment.user_id, Enrollment.course_id == Assignment.course_id),
            Enrollment.progress_percent > 0,
        )
        .exists()
    )
    query = query.where(Assignment.due_on >= today)
    return query.where(started) if status == "in_progress" else query.where(~started)


@blp.route("/jobs/<job_id>", methods=["GET"])
@require(WRITE, READ)
@blp.response(200, s.JobOut)
def get_job(job_id: str) -> Any:
    """Read a job: queued, running (attempt n), succeeded (with its result) or failed (with why)"""
    who = actor()
    with unit_of_work() as session:
        job = session.get(Job, job_id)
        if job is None or job.org_id != who.org:
            raise NotFound("no such job", code="job_not_found")
        return views.job(job)
