"""Provisioning from the bus: HR and billing events, and seats handed out by email, become users
(one handler per event type)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from identity import services
from identity.models import Location, Organization, ProvisioningWarning, User
from lms_common.contracts import EMPLOYEE_OFFBOARDED, EMPLOYEE_ONBOARDED, INVOICE_PAID
from lms_common.contracts import enrollment as enrollment_contract
from lms_common.db import utcnow
from lms_common.envelope import Event
from lms_common.processing import Handler, Reject

log = structlog.get_logger("identity.handlers")


def organization(session: Session, orgid: str) -> Organization:
    """The event's organization, by id or slug; an event for no organization is dead-lettered."""
    org = (
        session.get(Organization, orgid)
        or session.scalars(select(Organization).where(Organization.slug == orgid)).first()
    )
    if org is None:
        raise Reject(f"no organization {orgid!r}")
    return org


def employee(session: Session, org_id: str, employee_id: str, email: str) -> User | None:
    """The user of an employee: by employee id first, then by email."""
    query = select(User).where(
        User.org_id == org_id, or_(User.employee_id == employee_id, User.email_key == email.strip().lower())
    )
    users = list(session.scalars(query))
    return next((u for u in users if u.employee_id == employee_id), users[0] if users else None)


EMPLOYEE_ROLE = {"role": "student"}


def employee_profile(data: Mapping[str, Any], location: Location | None) -> dict[str, Any]:
    """The profile an HR event gives its employee's user."""
    return {
        "first_name": data["first_name"],
        "last_name": data["last_name"],
        "department": data.get("department"),
        "title": data.get("job_title"),
        "location_id": location.id if location else None,
    }


def new_employee_fields(data: Mapping[str, Any], profile: Mapping[str, Any]) -> dict[str, Any]:
    return {"email": data["email"], "kind": "staff", "employee_id": data["employee_id"], **profile}


def on_employee_onboarded(session: Session, event: Event) -> None:
    """The employee becomes (or stays) a user with the student role at its location."""
    org, data = organization(session, event.orgid), event.data
    code = data.get("location_code")
    location = services.location_by_code(session, org.id, code) if code else None
    profile = employee_profile(data, location)
    user = employee(session, org.id, data["employee_id"], data["email"])
    if user is None:
        fields = new_employee_fields(data, profile)
        user = services.create_user(
            session, org.id, fields, cause=event.type, cause_event_id=event.id, extra=EMPLOYEE_ROLE
        )
    else:
        _refresh_employee(session, user, data, profile)
        services.provisioned(session, user, event.type, event.id, created=False, extra=EMPLOYEE_ROLE)
    if code and location is None:
        warn_unknown_location(session, org.id, user.id, event.id, code)
    services.grant_role(session, user, "student", location.id if location else None)


def _refresh_employee(session: Session, user: User, data: Mapping[str, Any], profile: dict[str, Any]) -> None:
    if profile["location_id"] is None:
        profile.pop("location_id")
    if services.find_by_email(session, user.org_id, data["email"]) in (None, user):
        profile["email"] = data["email"]
    user.employee_id = data["employee_id"]
    services.update_user(session, user, profile)
    services.enable_user(session, user)


def warn_unknown_location(session: Session, org_id: str, user_id: str, event_id: str, location_code: str) -> None:
    """Tell the organization's admins that an employee was provisioned without its location."""
    detail = f"no location with code {location_code!r}; provisioned without a location"
    _warn(session, org_id, user_id, event_id, code="unknown_location_code", detail=detail)


def _warn(session: Session, org_id: str, user_id: str | None, event_id: str, *, code: str, detail: str) -> None:
    log.warning("provisioning warning", org_id=org_id, user_id=user_id, code=code, detail=detail)
    session.add(
        ProvisioningWarning(
            org_id=org_id, user_id=user_id, cause_event_id=event_id, code=code, detail=detail, created_at=utcnow()
        )
    )


def on_employee_offboarded(session: Session, event: Event) -> None:
    """The employee's user is disabled; its history stays."""
    org = organization(session, event.orgid)
    user = employee(session, org.id, event.data["employee_id"], event.data["email"])
    if user is None:
        log.info("offboarded employee has no user", employee_id=event.data["employee_id"])
        return
    services.disable_user(session, user, reason="offboarded")


@dataclass(frozen=True)
class Customers:
    """Whom a billing or seats event provisions: each person in order, with the role it gets."""

    org_ref: str
    cause: Mapping[str, str]
    people: Sequence[tuple[Mapping[str, Any], str]]


def invoice_customers(event: Event) -> Customers:
    """The buyer, a purchaser when it buys seats for others, then each invitee once."""
    data = event.data
    invitees = data.get("invitees") or []
    buys_seats = bool(invitees) or any(line["quantity"] > 1 for line in data["lines"])
    buyer = (data["buyer"], "purchaser" if buys_seats else "student")
    students = [({"email": email}, "student") for email in _unique_emails(invitees)]
    return Customers(event.orgid, {"invoice_id": data["invoice_id"]}, [buyer, *students])


def pending_seat_holders(event: Event) -> Customers:
    """Every pending seat holder once, a student of the grant's organization."""
    pending = [holder["email"] for holder in event.data["holders"] if holder["status"] == "pending"]
    students = [({"email": email}, "student") for email in _unique_emails(pending)]
    return Customers(event.data["org_id"], {"grant_id": event.data["grant_id"]}, students)


def _unique_emails(addresses: list[str]) -> list[str]:
    return list(dict.fromkeys(address.strip().lower() for address in addresses))


def new_customer_fields(person: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "email": person["email"],
        "first_name": person.get("first_name") or "",
        "last_name": person.get("last_name") or "",
        "kind": "customer",
    }


def on_invoice_paid(session: Session, event: Event) -> None:
    """The buyer and its invitees exist as users; a buyer of seats for others is a purchaser."""
    _provision_customers(session, event, invoice_customers(event))


def on_seats_assigned(session: Session, event: Event) -> None:
    """Every pending seat holder becomes a student of the grant's organization.

    enrollment grants the product when our UserProvisioned arrives, so a holder identity knew
    already (enrollment had not heard of it yet) is announced again rather than skipped.
    """
    _provision_customers(session, event, pending_seat_holders(event))


def _provision_customers(session: Session, event: Event, customers: Customers) -> None:
    org = organization(session, customers.org_ref)
    for person, role in customers.people:
        user = _customer(session, org.id, person, event, {**customers.cause, "role": role})
        services.grant_role(session, user, role)


def _customer(session: Session, org_id: str, person: Mapping[str, Any], event: Event, extra: Mapping[str, str]) -> User:
    user = services.find_by_email(session, org_id, person["email"])
    if user is not None:
        services.provisioned(session, user, event.type, event.id, created=False, extra=extra)
        return user
    fields = new_customer_fields(person)
    return services.create_user(session, org_id, fields, cause=event.type, cause_event_id=event.id, extra=extra)


HANDLERS: dict[str, Handler] = {
    EMPLOYEE_ONBOARDED.name: on_employee_onboarded,
    EMPLOYEE_OFFBOARDED.name: on_employee_offboarded,
    INVOICE_PAID.name: on_invoice_paid,
    enrollment_contract.SEATS_ASSIGNED.name: on_seats_assigned,
}
