"""Grants and seats: products given to users or organizations, and seats handed out by email."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from enrollment import learning, replica
from enrollment.events import publish, stamp
from enrollment.models import ACTIVE, REVOKED, Grant, Product, ProductCourse, SeatHolder
from lms_common.contracts import enrollment as contract
from lms_common.db import utcnow
from lms_common.errors import Conflict, NotFound


def owner_key(user_id: str | None, organization_id: str | None) -> str:
    return f"user:{user_id}" if user_id else f"org:{organization_id}"


def find(session: Session, org: str, product_id: str, key: str, lock: bool = False) -> Grant | None:
    query = select(Grant).where(Grant.org_id == org, Grant.product_id == product_id, Grant.owner_key == key)
    return session.scalar(query.with_for_update() if lock else query)


def grant(
    session: Session,
    org: str,
    product_id: str,
    *,
    user_id: str | None = None,
    organization_id: str | None = None,
    seats: int | None = None,
    source: str = "api",
    actor_id: str | None = None,
    natural_key: str | None = None,
    parent_id: str | None = None,
) -> tuple[Grant, bool]:
    """The grant of the product to the owner, created (or reopened) when needed; True when it was."""
    key = owner_key(user_id, organization_id)
    existing = find(session, org, product_id, key, lock=True)
    if existing is not None and existing.status == ACTIVE:
        return existing, False
    if existing is None:
        existing = _insert(session, org, product_id, key, user_id, organization_id, seats, source, parent_id)
        if existing is None:  # a concurrent request granted it first
            return find(session, org, product_id, key), False  # type: ignore[return-value]
    else:
        existing.status, existing.revoked_at, existing.seats = ACTIVE, None, seats
    cause = "automation" if source == "automation" else "api" if source == "api" else "system"
    _publish(session, existing, contract.PRODUCT_GRANTED, cause, actor_id, natural_key)
    learning.open_holder_enrollments(session, existing)
    return existing, True


def _insert(  # noqa: PLR0917 - the columns of one row
    session: Session,
    org: str,
    product_id: str,
    key: str,
    user_id: str | None,
    organization_id: str | None,
    seats: int | None,
    source: str,
    parent_id: str | None,
) -> Grant | None:
    row = Grant(
        org_id=org,
        product_id=product_id,
        user_id=user_id,
        organization_id=organization_id,
        owner_key=key,
        seats=seats,
        source=source,
        parent_id=parent_id,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    return row


def _publish(  # noqa: PLR0917
    session: Session, row: Grant, event_type: Any, cause: str, actor_id: str | None, natural_key: str | None
) -> None:
    product = session.get(Product, row.product_id)
    courses = session.scalars(
        select(ProductCourse.course_id)
        .where(ProductCourse.product_id == row.product_id)
        .order_by(ProductCourse.position)
    )
    payload = grant_fields(row, product, list(courses), cause, actor_id)
    if event_type is contract.PRODUCT_GRANTED:
        payload |= granted_fields(product, utcnow())
    else:
        payload["revoked_at"] = stamp(row.revoked_at)
    if natural_key:
        payload["natural_key"] = natural_key
    publish(session, event_type, row.org_id, payload)


def grant_fields(
    row: Grant, product: Product | None, course_ids: list[str], cause: str, actor_id: str | None
) -> dict[str, Any]:
    """The fields ProductGranted and ProductRevoked share."""
    return {
        "grant_id": row.id,
        "org_id": row.org_id,
        "product_id": row.product_id,
        "product_title": product.title if product else "",
        "user_id": row.user_id,
        "organization_id": row.organization_id,
        "seats": row.seats or 0,
        "course_ids": course_ids,
        "actor_id": actor_id,
        "cause": cause,
    }


def granted_fields(product: Product | None, at: datetime) -> dict[str, Any]:
    """ProductGranted's own fields: access opens only while the product is active."""
    return {"granted_at": stamp(at), "product_active": bool(product and product.status == ACTIVE)}


def revoke(
    session: Session, row: Grant, cause: str = "api", actor_id: str | None = None, key: str | None = None
) -> Grant:
    """Close the grant (and the seat grants handed out from it); learning history stays."""
    if row.status == REVOKED:
        return row
    row.status, row.revoked_at = REVOKED, utcnow()
    _publish(session, row, contract.PRODUCT_REVOKED, cause, actor_id, key)
    for child in session.scalars(select(Grant).where(Grant.parent_id == row.id, Grant.status == ACTIVE)):
        revoke(session, child, "system", actor_id)
    return row


def get_in(session: Session, orgs: set[str], grant_id: str) -> Grant:
    row = session.get(Grant, grant_id)
    if row is None or row.org_id not in orgs:
        raise NotFound("no such grant", code="grant_not_found")
    return row


def list_query(orgs: set[str], user_id: str | None, product_id: str | None) -> Any:
    query = select(Grant).where(Grant.org_id.in_(orgs))
    if user_id:
        query = query.where(Grant.user_id == user_id)
    if product_id:
        query = query.where(Grant.product_id == product_id)
    return query


# --- seats ----------------------------------------------------------------------------------------


def assign_seats(
    session: Session, grant_id: str, emails: list[str], cause: str = "api", actor_id: str | None = None
) -> list[SeatHolder]:
    """Hand out seats of a purchase by email, all or none; never more than were bought.

    The grant row is locked (``SELECT ... FOR UPDATE``) for the count and the increment, so
    concurrent hand-outs queue on it and the last ones find the seats gone.
    """
    locked = select(Grant).where(Grant.id == grant_id).with_for_update()
    row = session.scalar(locked.execution_options(populate_existing=True))
    if row is None or row.seats is None:
        raise Conflict("this grant holds no seats to hand out", code="no_seats")
    if row.status != ACTIVE:
        raise Conflict("the grant is revoked", code="grant_revoked")
    taken = set(session.scalars(select(SeatHolder.email).where(SeatHolder.grant_id == row.id)))
    new = [email for email in dict.fromkeys(e.lower() for e in emails) if email not in taken]
    if row.seats_used + len(new) > row.seats:
        raise Conflict(
            f"{row.seats - row.seats_used} seats left, {len(new)} asked",
            code="seats_exhausted",
            seats_left=row.seats - row.seats_used,
        )
    session.execute(update(Grant).where(Grant.id == row.id).values(seats_used=Grant.seats_used + len(new)))
    holders = [_seat(session, row, email, actor_id) for email in new]
    session.refresh(row)
    _seats_event(session, row, holders, cause, actor_id)
    return holders


def _seat(session: Session, purchase: Grant, email: str, actor_id: str | None) -> SeatHolder:
    user = replica.find_user_by_email(session, purchase.org_id, email)
    holder = SeatHolder(grant_id=purchase.id, org_id=purchase.org_id, email=email, user_id=user.id if user else None)
    session.add(holder)
    if user is not None:
        grant(
            session,
            purchase.org_id,
            purchase.product_id,
            user_id=user.id,
            source="seat",
            actor_id=actor_id,
            parent_id=purchase.id,
        )
    return holder


def _seats_event(session: Session, row: Grant, holders: list[SeatHolder], cause: str, actor_id: str | None) -> None:
    payload = {
        "grant_id": row.id,
        "org_id": row.org_id,
        "product_id": row.product_id,
        "purchaser_user_id": row.user_id,
        "seats_total": row.seats or 0,
        "seats_used": row.seats_used,
        "holders": [
            {"email": h.email, "user_id": h.user_id, "status": "granted" if h.user_id else "pending"} for h in holders
        ],
        "assigned_at": stamp(utcnow()),
        "actor_id": actor_id,
        "cause": cause,
    }
    publish(session, contract.SEATS_ASSIGNED, row.org_id, payload)


def resolve_seats(session: Session, user_id: str, email: str) -> None:
    """A user now exists for seats given to its email: grant it the product."""
    query = select(SeatHolder).where(SeatHolder.email == email.lower(), SeatHolder.user_id.is_(None))
    for holder in session.scalars(query):
        purchase = session.get(Grant, holder.grant_id)
        holder.user_id = user_id
        if purchase is not None and purchase.status == ACTIVE:
            grant(session, purchase.org_id, purchase.product_id, user_id=user_id, source="seat", parent_id=purchase.id)


# --- commands from automation -------------------------------------------------------------------------


def grant_command(session: Session, org: str, data: Mapping[str, Any], owner: Mapping[str, str]) -> None:
    """Carry out GrantProduct for a resolved owner (user_id or organization_id)."""
    invitees = list(data.get("invitees") or [])
    seats = data.get("seats") or 1
    purchase = is_purchase(data)
    row, _ = grant(
        session,
        org,
        data["product_id"],
        user_id=owner.get("user_id"),
        organization_id=owner.get("organization_id"),
        seats=max(seats, len(invitees)) if purchase else None,
        source="automation",
        natural_key=data["natural_key"],
    )
    if invitees:
        assign_seats(session, row.id, invitees, cause="automation")


def is_purchase(data: Mapping[str, Any]) -> bool:
    """GrantProduct for seats to hand out rather than a course list for the owner itself."""
    return (data.get("seats") or 1) > 1 or bool(data.get("invitees"))


def revoke_command(session: Session, org: str, data: Mapping[str, Any], owner: Mapping[str, str]) -> None:
    key = owner_key(owner.get("user_id"), owner.get("organization_id"))
    row = find(session, org, data["product_id"], key, lock=True)
    if row is not None:
        revoke(session, row, "automation", None, data["natural_key"])
