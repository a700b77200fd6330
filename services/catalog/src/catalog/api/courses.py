"""Courses, their modules and lessons, SCORM uploads, publishing, duplicating and reordering."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from catalog import services, views
from catalog.api import schemas as s
from catalog.api.common import READERS, WRITERS, actor
from lms_common.api import dumped_page, runtime, unit_of_work
from lms_common.auth import require

blp = Blueprint("courses", __name__, url_prefix="/v1", description="Courses, modules and lessons")

SCORM_MAX_UPLOAD_BYTES = 100 * 1024 * 1024


@blp.before_request
def allow_scorm_uploads() -> None:
    """SCORM zips are far larger than JSON bodies: only the upload endpoint takes that much."""
    if request.endpoint == "courses.upload_scorm":
        request.max_content_length = SCORM_MAX_UPLOAD_BYTES


@blp.route("/courses")
class Courses(MethodView):
    @require(*READERS)
    # An instance: webargs would build a schema from the class on every request.
    @blp.arguments(s.CourseQuery(), location="query")
    @blp.response(200, s.CoursePage)
    def get(self, args: dict[str, Any]) -> Any:
        """List the courses the caller may see (learners: published only)

        Filters: `status`, `q` (title contains); creation order, cursor pagination.
        """
        rows, cursor = services.course_page(runtime().engine, actor(), args)
        return dumped_page([views.course_row(row) for row in rows], cursor)

    @require(*WRITERS)
    @blp.arguments(s.CourseCreate)
    @blp.response(201, s.CourseOut)
    def post(self, body: dict[str, Any]) -> Any:
        """Create a draft course, with `also_product` also a product holding it"""
        with unit_of_work() as session:
            course, product = services.create_course(
                session, actor(), body["title"], body["description"], body.get("also_product")
            )
            return views.course(course, product.id if product else None)


@blp.route("/courses/<course_id>")
class CourseItem(MethodView):
    @require(*READERS)
    @blp.response(200, s.CourseOut)
    def get(self, course_id: str) -> Any:
        """Read a course (a draft answers 404 to learners)"""
        with unit_of_work() as session:
            return views.course(services.get_course(session, actor(), course_id))

    @require(*WRITERS)
    @blp.arguments(s.CourseUpdate)
    @blp.response(200, s.CourseOut)
    def patch(self, body: dict[str, Any], course_id: str) -> Any:
        """Change a course's title or description"""
        with unit_of_work() as session:
            return views.course(services.update_course(session, actor(), course_id, body))


@blp.route("/courses/<course_id>/publish", methods=["POST"])
@require(*WRITERS)
@blp.response(200, s.CourseOut)
@blp.alt_response(409, description="the course has no published lesson")
def publish_course(course_id: str) -> Any:
    """Publish a course (it needs at least one published lesson)"""
    with unit_of_work() as session:
        return views.course(services.publish_course(session, actor(), course_id))


@blp.route("/courses/<course_id>/unpublish", methods=["POST"])
@require(*WRITERS)
@blp.response(200, s.CourseOut)
@blp.alt_response(409, description="an active product or a published program holds the course")
def unpublish_course(course_id: str) -> Any:
    """Unpublish a course (refused while an active product or published program holds it)"""
    with unit_of_work() as session:
        return views.course(services.unpublish_course(session, actor(), course_id))


@blp.route("/courses/<course_id>/duplicate", methods=["POST"])
@require(*WRITERS)
@blp.arguments(s.CourseDuplicate, required=False)
@blp.response(201, s.CourseOut)
def duplicate_course(body: dict[str, Any], course_id: str) -> Any:
    """Copy a course deeply as a new draft derived from it (e.g. for a new curriculum year)"""
    with unit_of_work() as session:
        return views.course(services.duplicate_course(session, actor(), course_id, (body or {}).get("title")))


@blp.route("/courses/<course_id>/outline", methods=["GET"])
@require(*READERS)
@blp.response(200, s.OutlineOut)
def course_outline(course_id: str) -> Any:
    """A course with its ordered modules and lessons (learners: published lessons only)"""
    who = actor()
    with unit_of_work() as session:
        course = services.get_course(session, who, course_id)
        return views.outline(course, drafts=who.sees(course.created_by, False))


@blp.route("/courses/<course_id>/modules", methods=["POST"])
@require(*WRITERS)
@blp.arguments(s.ModuleCreate)
@blp.response(201, s.ModuleOut)
def add_module(body: dict[str, Any], course_id: str) -> Any:
    """Add a module to a course, at `position` (0-based) or at the end"""
    with unit_of_work() as session:
        return views.module(services.add_module(session, actor(), course_id, body["title"], body["position"]))


@blp.route("/courses/<course_id>/modules/order", methods=["PUT"])
@require(*WRITERS)
@blp.arguments(s.ModuleOrder)
@blp.response(200, s.OutlineOut)
def reorder_modules(body: dict[str, Any], course_id: str) -> Any:
    """Reorder all modules of a course at once: `module_ids` lists each module exactly once"""
    with unit_of_work() as session:
        return views.outline(services.reorder_modules(session, actor(), course_id, body["module_ids"]), drafts=True)


@blp.route("/modules/<module_id>")
class ModuleItem(MethodView):
    @require(*READERS)
    @blp.response(200, s.ModuleOut)
    def get(self, module_id: str) -> Any:
        """Read a module with its lessons (learners: published lessons only)"""
        who = actor()
        with unit_of_work() as session:
            module = services.get_module(session, who, module_id)
            return views.module(module, drafts=who.sees(module.course.created_by, False))

    @require(*WRITERS)
    @blp.arguments(s.ModuleUpdate)
    @blp.response(200, s.ModuleOut)
    def patch(self, body: dict[str, Any], module_id: str) -> Any:
        """Rename a module or move it to another position"""
        with unit_of_work() as session:
            return views.module(services.update_module(session, actor(), module_id, body))


@blp.route("/modules/<module_id>/lessons", methods=["POST"])
@require(*WRITERS)
@blp.arguments(s.LessonCreate)
@blp.response(201, s.LessonOut)
def add_lesson(body: dict[str, Any], module_id: str) -> Any:
    """Add a draft lesson (text, video, pdf, link, quiz or scorm) to a module"""
    with unit_of_work() as session:
        return views.lesson(services.add_lesson(session, actor(), module_id, body))


@blp.route("/modules/<module_id>/lessons/order", methods=["PUT"])
@require(*WRITERS)
@blp.arguments(s.LessonOrder)
@blp.response(200, s.ModuleOut)
def reorder_lessons(body: dict[str, Any], module_id: str) -> Any:
    """Reorder all lessons of a module at once: `lesson_ids` lists each lesson exactly once"""
    with unit_of_work() as session:
        return views.module(services.reorder_lessons(session, actor(), module_id, body["lesson_ids"]))


@blp.route("/lessons/<lesson_id>")
class LessonItem(MethodView):
    @require(*READERS)
    @blp.response(200, s.LessonOut)
    def get(self, lesson_id: str) -> Any:
        """Read a lesson (a draft answers 404 to learners)"""
        with unit_of_work() as session:
            return views.lesson(services.get_lesson(session, actor(), lesson_id))

    @require(*WRITERS)
    @blp.arguments(s.LessonUpdate)
    @blp.response(200, s.LessonOut)
    def patch(self, body: dict[str, Any], lesson_id: str) -> Any:
        """Change a lesson's title, body, url or position"""
        with unit_of_work() as session:
            return views.lesson(services.update_lesson(session, actor(), lesson_id, body))


@blp.route("/lessons/<lesson_id>/publish", methods=["POST"])
@require(*WRITERS)
@blp.response(200, s.LessonOut)
@blp.alt_response(409, description="the lesson's content is not there yet")
def publish_lesson(lesson_id: str) -> Any:
    """Publish a lesson once its content is there (body, url, quiz or SCORM package)"""
    with unit_of_work() as session:
        return views.lesson(services.publish_lesson(session, actor(), lesson_id))


@blp.route("/lessons/<lesson_id>/unpublish", methods=["POST"])
@require(*WRITERS)
@blp.response(200, s.LessonOut)
@blp.alt_response(409, description="the last published lesson of a published course")
def unpublish_lesson(lesson_id: str) -> Any:
    """Unpublish a lesson (not the last published one of a published course)"""
    with unit_of_work() as session:
        return views.lesson(services.unpublish_lesson(session, actor(), lesson_id))


@blp.route("/lessons/<lesson_id>/scorm", methods=["POST"])
@require(*WRITERS)
@blp.arguments(s.ScormUpload, location="files")
@blp.response(200, s.LessonOut)
@blp.alt_response(422, description="the package is refused; `detail` and `code` say why")
def upload_scorm(files: dict[str, Any], lesson_id: str) -> Any:
    """Upload the SCORM 1.2 or 2004 zip of a scorm lesson (multipart field `package`)"""
    data = files["package"].read()
    with unit_of_work() as session:
        lesson = services.upload_scorm(session, actor(), lesson_id, data, runtime().settings.var_dir)
        return views.lesson(lesson)
