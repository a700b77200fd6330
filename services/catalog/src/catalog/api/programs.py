"""Programs: ordered published courses, optionally taken in order."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from catalog import services, views
from catalog.api import schemas as s
from catalog.api.common import READERS, WRITERS, actor, listing
from catalog.models import Program
from lms_common.api import unit_of_work
from lms_common.auth import require

blp = Blueprint("programs", __name__, url_prefix="/v1", description="Programs: learning paths of courses")


@blp.route("/programs")
class Programs(MethodView):
    @require(*READERS)
    @blp.arguments(s.ProgramQuery, location="query")
    @blp.response(200, s.ProgramPage)
    def get(self, args: dict[str, Any]) -> Any:
        """List the programs the caller may see (learners: published only); filters `published`, `q`"""
        query = services.program_query(actor(), args.get("published"), args.get("q"))
        return listing(query, Program, args, views.program)

    @require(*WRITERS)
    @blp.arguments(s.ProgramCreate)
    @blp.response(201, s.ProgramOut)
    @blp.alt_response(409, description="the title is taken in this organization")
    def post(self, body: dict[str, Any]) -> Any:
        """Create an unpublished program (title unique in the organization)"""
        with unit_of_work() as session:
            program = services.create_program(
                session, actor(), body["title"], body["course_ids"], body["enforce_course_order"]
            )
            return views.program(program)


@blp.route("/programs/<program_id>")
class ProgramItem(MethodView):
    @require(*READERS)
    @blp.response(200, s.ProgramOut)
    def get(self, program_id: str) -> Any:
        """Read a program (an unpublished one answers 404 to learners)"""
        with unit_of_work() as session:
            return views.program(services.get_program(session, actor(), program_id))

    @require(*WRITERS)
    @blp.arguments(s.ProgramUpdate)
    @blp.response(200, s.ProgramOut)
    def patch(self, body: dict[str, Any], program_id: str) -> Any:
        """Change a program's title, enforce flag or ordered courses"""
        with unit_of_work() as session:
            return views.program(services.update_program(session, actor(), program_id, body))


@blp.route("/programs/<program_id>/courses", methods=["PUT"])
@require(*WRITERS)
@blp.arguments(s.CourseIds)
@blp.response(200, s.ProgramOut)
def set_program_courses(body: dict[str, Any], program_id: str) -> Any:
    """Replace and reorder the program's courses atomically"""
    with unit_of_work() as session:
        return views.program(services.update_program(session, actor(), program_id, body))


@blp.route("/programs/<program_id>/publish", methods=["POST"])
@require(*WRITERS)
@blp.response(200, s.ProgramOut)
@blp.alt_response(409, description="the program has no course, or an unpublished one")
def publish_program(program_id: str) -> Any:
    """Publish a program: it needs courses, all of them published"""
    with unit_of_work() as session:
        return views.program(services.publish_program(session, actor(), program_id))


@blp.route("/programs/<program_id>/unpublish", methods=["POST"])
@require(*WRITERS)
@blp.response(200, s.ProgramOut)
def unpublish_program(program_id: str) -> Any:
    """Unpublish a program"""
    with unit_of_work() as session:
        return views.program(services.unpublish_program(session, actor(), program_id))
