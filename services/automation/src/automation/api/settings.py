"""Default behaviours of an organization, on until switched off."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from automation import services
from automation.api import schemas as s
from automation.api.common import READERS, WRITE
from lms_common.api import unit_of_work
from lms_common.auth import current_principal, require

blp = Blueprint("settings", __name__, url_prefix="/v1", description="Default behaviours")


@blp.route("/settings/defaults")
class DefaultBehaviours(MethodView):
    @require(*READERS)
    @blp.response(200, s.Defaults)
    def get(self) -> Any:
        """Which default behaviours are on (`invoice_paid_grants`: InvoicePaid grants its products)"""
        with unit_of_work() as session:
            return services.get_defaults(session, current_principal().org)

    @require(WRITE, "settings:write")
    @blp.arguments(s.Defaults)
    @blp.response(200, s.Defaults)
    def put(self, body: dict[str, Any]) -> Any:
        """Switch default behaviours on or off"""
        with unit_of_work() as session:
            return services.set_defaults(session, current_principal().org, body)
