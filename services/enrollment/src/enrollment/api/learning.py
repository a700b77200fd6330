"""A learner's courses, enrollments and lesson completion."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select

from enrollment import learning, views
from enrollment.access import LEARN, READ, WRITE, actor, visible_user
from enrollment.api import schemas as s
from enrollment.models import Enrollment, User
from lms_common.api import PageArgs, dumped_page, page, paginate, runtime, unit_of_work
from lms_common.auth import require
from lms_common.db import raw_reads

blp = Blueprint("learning", __name__, url_prefix="/v1", description="Enrollments and progress")

# One instance: webargs builds a new schema from a class on every request of the hot read.
PAGE_ARGS = PageArgs()


@blp.route("/me/courses", methods=["GET"])
@require(LEARN, READ, WRITE)
@blp.arguments(PAGE_ARGS, location="query")
@blp.response(200, s.MyCoursePage)
def my_courses(args: dict[str, Any]) -> Any:
    """The courses the caller may learn now, in enrollment order, with progress and the sources that allow it"""
    who = actor()
    with raw_reads(runtime().engine) as reads:
        granted = learning.granted_courses(reads, who.user, who.org)
        if granted.unopened:  # a first look after a grant: open its enrollments, then read
            with unit_of_work() as writer:
                learning.open_grant_enrollments(writer, who.user, who.org)
        page = learning.my_course_page(reads, who, granted.course_ids, args["limit"], args.get("cursor"))
        return dumped_page(*page)


@blp.route("/enrollments", methods=["POST"])
@require(WRITE)
@blp.arguments(s.EnrollmentCreate)
@blp.response(201, s.EnrollmentOut)
def create_enrollment(body: dict[str, Any]) -> Any:
    """Enroll a user in a course directly (source `direct`); an existing enrollment gains the source"""
    who = actor()
    with unit_of_work() as session:
        user = visible_user(session, who, body["user_id"], WRITE)
        course = learning.course_in(session, who, body["course_id"])
        learning.enroll(session, user.org_id, [user.id], [course.id], kind="direct", ref="direct")
        return views.enrollment(session, learning.enrollment_of(session, user.id, course.id))  # type: ignore[arg-type]


@blp.route("/enrollments", methods=["GET"])
@require(LEARN, READ)
@blp.arguments(s.EnrollmentQuery, location="query")
@blp.response(200, s.EnrollmentPage)
def list_enrollments(args: dict[str, Any]) -> Any:
    """List enrollments (learners: their own); filters `user_id`, `course_id`"""
    who = actor()
    with unit_of_work() as session:
        query = select(Enrollment).where(Enrollment.org_id.in_(who.orgs()))
        user_id = args.get("user_id") if who.may(READ) else who.user
        if user_id:
            visible_user(session, who, user_id)
            query = query.where(Enrollment.user_id == user_id)
        scope = who.principal.locations_for(READ)
        if scope is not None and not user_id:
            query = query.where(Enrollment.user_id.in_(select(User.id).where(User.location_id.in_(scope))))
        if args.get("course_id"):
            query = query.where(Enrollment.course_id == args["course_id"])
        keys = [Enrollment.enrolled_at, Enrollment.id]
        rows, cursor = paginate(session, query, keys, args["limit"], args.get("cursor"))
        return page([views.enrollment(session, row) for row in rows], cursor)


@blp.route("/enrollments/<enrollment_id>", methods=["GET"])
@require(LEARN, READ)
@blp.response(200, s.EnrollmentOut)
def get_enrollment(enrollment_id: str) -> Any:
    """Read an enrollment with its completed lessons"""
    with unit_of_work() as session:
        return views.enrollment(session, learning.enrollment_for(session, actor(), enrollment_id, READ))


@blp.route("/enrollments/<enrollment_id>/lessons/<lesson_id>/complete", methods=["POST"])
@require(LEARN)
@blp.response(200, s.EnrollmentOut)
@blp.alt_response(403, description="the caller may not learn this course now")
@blp.alt_response(409, description="an earlier course of an ordered program is incomplete (code course_locked)")
def complete_lesson(enrollment_id: str, lesson_id: str) -> Any:
    """Complete a published lesson of one's own enrollment (quiz lessons complete by passing)"""
    with unit_of_work() as session:
        return views.enrollment(session, learning.complete_lesson(session, actor(), enrollment_id, lesson_id))
