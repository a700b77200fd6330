"""Rules: a trigger, conditions on the event's data, and ordered actions."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from automation import services, views
from automation.api import schemas as s
from automation.api.common import READERS, WRITERS, listing
from automation.models import Rule
from lms_common.api import unit_of_work
from lms_common.auth import current_principal, require

blp = Blueprint("rules", __name__, url_prefix="/v1", description="No-code rules: trigger, conditions, actions")


@blp.route("/rules")
class Rules(MethodView):
    @require(*READERS)
    @blp.arguments(s.RuleQuery, location="query")
    @blp.response(200, s.RulePage)
    def get(self, args: dict[str, Any]) -> Any:
        """List the organization's rules; filters `trigger`, `enabled`"""
        query = services.rule_query(current_principal().org, args.get("trigger"), args.get("enabled"))
        return listing(query, [Rule.created_at, Rule.id], args, views.rule)

    @require(*WRITERS)
    @blp.arguments(s.RuleCreate)
    @blp.response(201, s.RuleOut)
    @blp.alt_response(422, description="unknown trigger, wrong types, or products/courses/programs not in this org")
    def post(self, body: dict[str, Any]) -> Any:
        """Create a rule (validated against the trigger and this organization's catalog)"""
        caller = current_principal()
        with unit_of_work() as session:
            return views.rule(services.create_rule(session, caller.org, caller.subject, body))


@blp.route("/rules/<rule_id>")
class RuleItem(MethodView):
    @require(*READERS)
    @blp.response(200, s.RuleOut)
    def get(self, rule_id: str) -> Any:
        """Read a rule (a webhook's secret is never shown)"""
        with unit_of_work() as session:
            return views.rule(services.get_rule(session, current_principal().org, rule_id))

    @require(*WRITERS)
    @blp.arguments(s.RuleUpdate)
    @blp.response(200, s.RuleOut)
    def patch(self, body: dict[str, Any], rule_id: str) -> Any:
        """Change a rule's name, trigger, conditions, actions or enabled flag"""
        with unit_of_work() as session:
            return views.rule(services.update_rule(session, current_principal().org, rule_id, body))

    @require(*WRITERS)
    @blp.response(204)
    def delete(self, rule_id: str) -> None:
        """Delete a rule; its runs stay"""
        with unit_of_work() as session:
            services.delete_rule(session, current_principal().org, rule_id)
