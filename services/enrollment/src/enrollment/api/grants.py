"""Grants of products to users or organizations, and the seats of a purchase."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from enrollment import grants, views
from enrollment.access import GRANT, LEARN, READ, actor, visible_user
from enrollment.api import schemas as s
from enrollment.models import Grant, Product
from lms_common.api import page, paginate, unit_of_work
from lms_common.auth import require
from lms_common.errors import NotFound

blp = Blueprint("grants", __name__, url_prefix="/v1", description="Product grants and seats")


@blp.route("/grants", methods=["POST"])
@require(GRANT)
@blp.arguments(s.GrantCreate)
@blp.response(201, s.GrantOut)
@blp.alt_response(200, schema=s.GrantOut, description="the product was already granted to this owner")
def create_grant(body: dict[str, Any]) -> Any:
    """Grant a product to a user or an organization (one grant per product and owner)"""
    who = actor()
    with unit_of_work() as session:
        product = session.get(Product, body["product_id"])
        if product is None or product.org_id not in who.orgs():
            raise NotFound("no such product", code="product_not_found")
        if "user_id" in body:
            visible_user(session, who, body["user_id"], GRANT)
        elif body["organization_id"] not in who.orgs():
            raise NotFound("no such organization", code="organization_not_found")
        row, created = grants.grant(
            session, product.org_id, product.id, user_id=body.get("user_id"),
            organization_id=body.get("organization_id"), seats=body.get("seats"), actor_id=who.user,
        )  # fmt: skip
        return views.grant(row), 201 if created else 200


@blp.route("/grants", methods=["GET"])
@require(GRANT, READ, LEARN)
@blp.arguments(s.GrantQuery, location="query")
@blp.response(200, s.GrantPage)
def list_grants(args: dict[str, Any]) -> Any:
    """List grants (learners and purchasers: their own); filters `user_id`, `product_id`"""
    who = actor()
    user_id = args.get("user_id")
    if not (who.may(GRANT) or who.may(READ)):
        user_id = who.user
    with unit_of_work() as session:
        query = grants.list_query(who.orgs(), user_id, args.get("product_id"))
        rows, cursor = paginate(session, query, [Grant.created_at, Grant.id], args["limit"], args.get("cursor"))
        return page([views.grant(row) for row in rows], cursor)


@blp.route("/grants/<grant_id>", methods=["GET"])
@require(GRANT, READ, LEARN)
@blp.response(200, s.GrantOut)
def get_grant(grant_id: str) -> Any:
    """Read a grant"""
    who = actor()
    with unit_of_work() as session:
        return views.grant(_visible(session, who, grant_id))


def _visible(session: Any, who: Any, grant_id: str) -> Grant:
    row = grants.get_in(session, who.orgs(), grant_id)
    if not (who.may(GRANT) or who.may(READ)) and row.user_id != who.user:
        raise NotFound("no such grant", code="grant_not_found")
    return row


@blp.route("/grants/<grant_id>/revoke", methods=["POST"])
@require(GRANT)
@blp.response(200, s.GrantOut)
def revoke_grant(grant_id: str) -> Any:
    """Revoke a grant (and the seats handed out from it); learning history stays"""
    who = actor()
    with unit_of_work() as session:
        return views.grant(grants.revoke(session, grants.get_in(session, who.orgs(), grant_id), actor_id=who.user))


@blp.route("/grants/<grant_id>/seats", methods=["POST"])
@require(GRANT, LEARN)
@blp.arguments(s.Seats)
@blp.response(200, s.SeatsOut)
@blp.alt_response(409, description="not enough seats left (code seats_exhausted), or no seats to hand out")
def assign_seats(body: dict[str, Any], grant_id: str) -> Any:
    """Hand out seats of a purchase by email (the purchaser, or a content granter)"""
    who = actor()
    with unit_of_work() as session:
        row = _visible(session, who, grant_id)
        holders = grants.assign_seats(session, row.id, body["emails"], actor_id=who.user)
        session.refresh(row)
        listed = [
            {"email": h.email, "user_id": h.user_id, "status": "granted" if h.user_id else "pending"} for h in holders
        ]
        return {"grant": views.grant(row), "holders": listed}
