"""Runs: every evaluation of a rule against an event, and retrying a failed one."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from automation import services, views
from automation.api import schemas as s
from automation.api.common import READERS, WRITERS, listing
from automation.models import Run
from lms_common.api import unit_of_work
from lms_common.auth import current_principal, require

blp = Blueprint("runs", __name__, url_prefix="/v1", description="Runs: evaluations of rules against events")


@blp.route("/runs")
@require(*READERS)
@blp.arguments(s.RunQuery, location="query")
@blp.response(200, s.RunPage)
def list_runs(args: dict[str, Any]) -> Any:
    """List runs, newest last; filters `rule_id`, `status`, `event_id`"""
    query = services.run_query(current_principal().org, args.get("rule_id"), args.get("status"), args.get("event_id"))
    return listing(query, [Run.created_at, Run.id], args, views.run)


@blp.route("/runs/<run_id>")
@require(*READERS)
@blp.response(200, s.RunOut)
def get_run(run_id: str) -> Any:
    """Read a run"""
    with unit_of_work() as session:
        return views.run(services.get_run(session, current_principal().org, run_id))


@blp.route("/runs/<run_id>/retry", methods=["POST"])
@require(*WRITERS)
@blp.response(200, s.RunOut)
@blp.alt_response(409, description="the run did not fail, or its rule or event is gone")
def retry_run(run_id: str) -> Any:
    """Evaluate a failed run again (effects it already had are not repeated)"""
    with unit_of_work() as session:
        return views.run(services.retry_run(session, current_principal().org, run_id))
