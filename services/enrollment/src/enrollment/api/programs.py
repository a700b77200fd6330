"""Program membership and program progress."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select, update

from enrollment import assignments, learning
from enrollment.access import LEARN, READ, WRITE, Actor, actor, visible_user
from enrollment.api import schemas as s
from enrollment.events import publish, stamp
from enrollment.models import Program, ProgramMember
from lms_common.api import unit_of_work
from lms_common.auth import require
from lms_common.contracts import enrollment as contract
from lms_common.db import utcnow
from lms_common.errors import NotFound

blp = Blueprint("programs", __name__, url_prefix="/v1", description="Program members and progress")


def _program(session: Any, who: Actor, program_id: str) -> Program:
    program: Program | None = session.get(Program, program_id)
    if program is None or program.org_id not in who.orgs():
        raise NotFound("no such program", code="program_not_found")
    return program


@blp.route("/programs/<program_id>/members", methods=["POST"])
@require(WRITE)
@blp.arguments(s.Members)
@blp.response(200)
def add_members(body: dict[str, Any], program_id: str) -> Any:
    """Add members to a program: each gets an enrollment in every course of it"""
    who = actor()
    with unit_of_work() as session:
        program = _program(session, who, program_id)
        for user_id in body["user_ids"]:
            visible_user(session, who, user_id, WRITE)
        users = assignments.users_query(program.org_id, body["user_ids"], None, None)
        added = assignments.add_members(session, program.org_id, users, program.id, actor_id=who.user)
        return {"added": added, "program_id": program.id}


@blp.route("/programs/<program_id>/members/<user_id>", methods=["DELETE"])
@require(WRITE)
@blp.response(204)
def remove_member(program_id: str, user_id: str) -> Any:
    """Remove a member from a program; its completed history stays"""
    who = actor()
    with unit_of_work() as session:
        program = _program(session, who, program_id)
        visible_user(session, who, user_id, WRITE)
        member = session.get(ProgramMember, (program.id, user_id))
        if member is None or member.removed_at is not None:
            raise NotFound("not a member of this program", code="member_not_found")
        now = utcnow()
        member.removed_at = now
        _close_program_sources(session, program.id, user_id)
        payload = {"program_id": program.id, "org_id": program.org_id, "user_id": user_id, "removed_at": stamp(now),
                   "actor_id": who.user, "cause": "api"}  # fmt: skip
        publish(session, contract.PROGRAM_MEMBER_REMOVED, program.org_id, payload)
        return "", 204


def _close_program_sources(session: Any, program_id: str, user_id: str) -> None:
    from enrollment.models import Enrollment, EnrollmentSource

    mine = select(Enrollment.id).where(Enrollment.user_id == user_id)
    session.execute(
        update(EnrollmentSource)
        .where(EnrollmentSource.kind == "program", EnrollmentSource.ref == program_id)
        .where(EnrollmentSource.enrollment_id.in_(mine))
        .values(active=False)
    )


@blp.route("/programs/<program_id>/progress", methods=["GET"])
@require(LEARN, READ)
@blp.arguments(s.ProgressQuery, location="query")
@blp.response(200)
def program_progress(args: dict[str, Any], program_id: str) -> Any:
    """A member's progress in a program: the mean of its courses' progress"""
    who = actor()
    user_id = args.get("user_id") or who.user
    with unit_of_work() as session:
        program = _program(session, who, program_id)
        visible_user(session, who, user_id)
        courses: list[dict[str, Any]] = []
        for course_id in assignments.program_course_ids(session, program.id):
            found = learning.enrollment_of(session, user_id, course_id)
            courses.append({"course_id": course_id, "progress_percent": found.progress_percent if found else 0,
                            "completed_at": found.completed_at if found else None})  # fmt: skip
        member = session.get(ProgramMember, (program.id, user_id))
        mean = sum(c["progress_percent"] for c in courses) // len(courses) if courses else 0
        return {
            "program_id": program.id, "user_id": user_id, "progress_percent": mean, "courses": courses,
            "member": member is not None and member.removed_at is None,
            "completed_at": member.completed_at if member else None,
        }  # fmt: skip
