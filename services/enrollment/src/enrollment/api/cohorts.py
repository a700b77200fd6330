"""Cohort members: each is enrolled in the cohort's courses, within the cohort's seats."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from enrollment import cohorts
from enrollment.access import LEARN, READ, WRITE, actor, visible_user
from enrollment.api import schemas as s
from lms_common.api import unit_of_work
from lms_common.auth import require
from lms_common.errors import NotFound

blp = Blueprint("cohorts", __name__, url_prefix="/v1", description="Cohort members")


@blp.route("/cohorts/<cohort_id>/members", methods=["POST"])
@require(WRITE)
@blp.arguments(s.Members)
@blp.response(200, s.CohortMembersOut)
@blp.alt_response(
    409, description="more members than the cohort's seats (code cohort_full), or the cohort has ended (cohort_ended)"
)
def add_members(body: dict[str, Any], cohort_id: str) -> Any:
    """Add members to a cohort: each gets an enrollment in every course of it (source cohort)"""
    who = actor()
    with unit_of_work() as session:
        cohort = cohorts.cohort_in(session, who.orgs(), cohort_id, lock=True)
        for user_id in body["user_ids"]:
            visible_user(session, who, user_id, WRITE)
        added = cohorts.add_members(session, cohort, body["user_ids"], who.user)
        return {"cohort_id": cohort.id, "added": added, "members": len(cohorts.members(session, cohort.id))}


@blp.route("/cohorts/<cohort_id>/members", methods=["GET"])
@require(READ, LEARN)
@blp.response(200, s.CohortMembersOut)
def list_members(cohort_id: str) -> Any:
    """The cohort's current members (admins who read enrollments, and the cohort's instructors)"""
    who = actor()
    with unit_of_work() as session:
        cohort = cohorts.cohort_in(session, who.orgs(), cohort_id)
        if not who.may(READ) and who.user not in (cohort.instructor_ids or []):
            raise NotFound("no such cohort", code="cohort_not_found")
        current = cohorts.members(session, cohort.id)
        return {"cohort_id": cohort.id, "user_ids": current, "members": len(current)}


@blp.route("/cohorts/<cohort_id>/members/<user_id>", methods=["DELETE"])
@require(WRITE)
@blp.response(204)
def remove_member(cohort_id: str, user_id: str) -> Any:
    """Remove a member from a cohort; its enrollments and history stay"""
    who = actor()
    with unit_of_work() as session:
        cohort = cohorts.cohort_in(session, who.orgs(), cohort_id)
        visible_user(session, who, user_id, WRITE)
        cohorts.remove_member(session, cohort, user_id, who.user)
        return "", 204
