"""Cohorts: scheduled groups with courses, dates, seats and approved instructors."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from catalog import services, views
from catalog.api import schemas as s
from catalog.api.common import READERS, WRITERS, actor, listing
from catalog.models import Cohort
from lms_common.api import unit_of_work
from lms_common.auth import require

blp = Blueprint("cohorts", __name__, url_prefix="/v1", description="Cohorts")


@blp.route("/cohorts")
class Cohorts(MethodView):
    @require(*READERS)
    @blp.arguments(s.CohortQuery, location="query")
    @blp.response(200, s.CohortPage)
    def get(self, args: dict[str, Any]) -> Any:
        """List cohorts; filters `q` (title contains) and `course_id`"""
        query = services.cohort_query(actor(), args.get("q"), args.get("course_id"))
        return listing(query, Cohort, args, views.cohort)

    @require(*WRITERS)
    @blp.arguments(s.CohortCreate)
    @blp.response(201, s.CohortOut)
    @blp.alt_response(422, description="an instructor is not approved, or the dates are reversed")
    def post(self, body: dict[str, Any]) -> Any:
        """Create a cohort (only approved instructors may lead it)"""
        with unit_of_work() as session:
            return views.cohort(services.create_cohort(session, actor(), services.CohortFields(**body)))


@blp.route("/cohorts/<cohort_id>")
class CohortItem(MethodView):
    @require(*READERS)
    @blp.response(200, s.CohortOut)
    def get(self, cohort_id: str) -> Any:
        """Read a cohort"""
        with unit_of_work() as session:
            return views.cohort(services.get_cohort(session, actor(), cohort_id))

    @require(*WRITERS)
    @blp.arguments(s.CohortUpdate)
    @blp.response(200, s.CohortOut)
    def patch(self, body: dict[str, Any], cohort_id: str) -> Any:
        """Change a cohort (fields given replace the current ones)"""
        with unit_of_work() as session:
            return views.cohort(services.update_cohort(session, actor(), cohort_id, body))
