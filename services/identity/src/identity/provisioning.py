"""Provisioning set-based: a consumer batch's run of EmployeeOnboarded, InvoicePaid or
SeatsAssigned events costs a handful of statements rather than several per event.

The run's organizations, roles, locations, users and their role assignments are read once; the
events are then decided one after the other against that picture, which every decision keeps
current (the second event for an email finds the user the first one created), and the new
users, assignments and events are written with one multi-row insert each. The outcome is the
per-event handlers' (:mod:`identity.handlers`), row for row and event for event.

An event the picture cannot decide alone, an employee identity knows already (its profile is
refreshed, perhaps re-enabled) or an unknown organization (rejected), goes to the per-event
handler: what the run decided before it is written first, and the rest of the run is read
afresh after it, so order holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import inspect, or_, select
from sqlalchemy.orm import InstanceState, Session

from identity import handlers, services
from identity.models import Location, Organization, Role, RoleAssignment, User
from lms_common import outbox
from lms_common.contracts import EMPLOYEE_ONBOARDED, INVOICE_PAID
from lms_common.contracts import enrollment as enrollment_contract
from lms_common.db import insert_rows, utcnow
from lms_common.envelope import Event
from lms_common.processing import BatchHandler, Handler, correlation_of, event_correlation
from lms_common.statistics import StatisticsKeeper

# A run looks its people up by organization and email or employee id: kept analyzed as the
# users grow, the lookups probe the unique indexes instead of reading the organization's users.
KEEPER = StatisticsKeeper(("users", "role_assignments"), lock=0x49444E54)  # "IDNT"


@dataclass
class Wanted:
    """What a run of events names, to be read in one query per table."""

    org_refs: set[str] = field(default_factory=set)
    email_keys: set[str] = field(default_factory=set)
    employee_ids: set[str] = field(default_factory=set)
    location_codes: set[str] = field(default_factory=set)
    roles: set[str] = field(default_factory=set)


@dataclass
class Plan:
    """What a run found in the database, and what it decided to add, in the order decided."""

    now: datetime
    organizations: dict[str, Organization]
    roles: dict[tuple[str, str], Role]
    locations: dict[tuple[str, str], Location]
    users_by_email: dict[tuple[str, str], User]
    users_by_employee: dict[tuple[str, str], User]
    # grant_role's check: for (user, role, scope kind), the location of the first assignment.
    held: dict[tuple[str, str, str], str | None]
    new_users: list[User] = field(default_factory=list)
    new_assignments: list[RoleAssignment] = field(default_factory=list)
    unknown_locations: list[tuple[Event, User, str]] = field(default_factory=list)
    events: list[tuple[Event, Event]] = field(default_factory=list)  # (cause, event to publish)

    def role(self, org_id: str, name: str) -> Role | None:
        return self.roles.get((org_id, name))

    def user_by_email(self, org_id: str, email: str) -> User | None:
        return self.users_by_email.get((org_id, email.strip().lower()))

    def employee(self, org_id: str, employee_id: str, email: str) -> User | None:
        """As :func:`handlers.employee`: by employee id first, then by email."""
        return self.users_by_employee.get((org_id, employee_id)) or self.user_by_email(org_id, email)

    def add_user(self, cause: Event, org_id: str, fields: Mapping[str, Any], extra: Mapping[str, str]) -> User:
        """A new user, as :func:`services.create_user` makes it, and its UserProvisioned."""
        user = services.new_user(org_id, fields, self.now)
        self.new_users.append(user)
        self.users_by_email[(org_id, user.email_key)] = user
        if user.employee_id is not None:
            self.users_by_employee[(org_id, user.employee_id)] = user
        self.publish(cause, services.provisioned_event(user, cause.type, cause.id, created=True, extra=extra))
        return user

    def announce(self, cause: Event, user: User, extra: Mapping[str, str]) -> None:
        """UserProvisioned for a user that was there already."""
        self.publish(cause, services.provisioned_event(user, cause.type, cause.id, created=False, extra=extra))

    def grant(self, cause: Event, user: User, role: Role, location_id: str | None) -> None:
        """As :func:`services.grant_role`: a new assignment unless the first one held is the same."""
        scope_kind = services.provisioning_scope(location_id)
        key = (user.id, role.id, scope_kind)
        if key in self.held and self.held[key] == location_id:
            return
        self.held.setdefault(key, location_id)
        assignment = services.new_assignment(
            user, role, scope_kind, location_id=location_id, client_org_id=None, now=self.now
        )
        self.new_assignments.append(assignment)
        self.publish(cause, services.role_assigned_event(assignment, role))

    def publish(self, cause: Event, event: Event) -> None:
        self.events.append((cause, event))

    def write(self, session: Session) -> None:
        """Everything decided: one insert per table, then the events in the order decided.

        The rows go in as arrays (:func:`insert_rows`): the ORM's bulk insert ran one insert per
        row, with its own bookkeeping for each, a fifth of the worker's CPU in an onboarding burst."""
        if self.new_users:
            insert_rows(session, User.__table__, [_columns(user) for user in self.new_users])
        if self.new_assignments:
            insert_rows(session, RoleAssignment.__table__, [_columns(row) for row in self.new_assignments])
        for cause, user, code in self.unknown_locations:
            handlers.warn_unknown_location(session, user.org_id, user.id, cause.id, code)
        # an event caused by a later message of the batch carries that message's request id,
        # as it would had the message been handled alone
        outbox.add_many(
            session, [event for _, event in self.events], request_ids=[correlation_of(c) for c, _ in self.events]
        )


def _columns(row: User | RoleAssignment) -> dict[str, Any]:
    state: InstanceState[Any] = inspect(row)
    return {column.key: getattr(row, column.key) for column in state.mapper.column_attrs}


def load(session: Session, wanted: Wanted) -> Plan:
    """The picture a run is decided against: one query per table it names."""
    organizations = _organizations(session, wanted.org_refs)
    org_ids = {org.id for org in organizations.values()}
    roles = {(role.org_id, role.name): role for role in _rows(session, Role, org_ids, Role.name.in_(wanted.roles))}
    codes = Location.code.in_(wanted.location_codes)
    found = _rows(session, Location, org_ids, codes) if wanted.location_codes else []
    locations = {(location.org_id, location.code): location for location in found}
    people = or_(User.email_key.in_(wanted.email_keys), User.employee_id.in_(wanted.employee_ids))
    users = _rows(session, User, org_ids, people) if wanted.email_keys or wanted.employee_ids else []
    return Plan(
        now=utcnow(),
        organizations=organizations,
        roles=roles,
        locations=locations,
        users_by_email={(user.org_id, user.email_key): user for user in users},
        users_by_employee={(user.org_id, user.employee_id): user for user in users if user.employee_id},
        held=_held(session, users, list(roles.values())),
    )


def _organizations(session: Session, refs: set[str]) -> dict[str, Organization]:
    """Organizations by id and by slug; an id wins over another organization's slug."""
    found = list(
        session.scalars(select(Organization).where(or_(Organization.id.in_(refs), Organization.slug.in_(refs))))
    )
    return {**{org.slug: org for org in found if org.slug}, **{org.id: org for org in found}}


def _rows(session: Session, model: Any, org_ids: set[str], condition: Any) -> list[Any]:
    if not org_ids:
        return []
    return list(session.scalars(select(model).where(model.org_id.in_(org_ids), condition)))


def _held(session: Session, users: list[User], roles: list[Role]) -> dict[tuple[str, str, str], str | None]:
    if not users or not roles:
        return {}
    query = select(RoleAssignment).where(
        RoleAssignment.user_id.in_([user.id for user in users]),
        RoleAssignment.role_id.in_([role.id for role in roles]),
    )
    held: dict[tuple[str, str, str], str | None] = {}
    for row in session.scalars(query):
        held.setdefault((row.user_id, row.role_id, row.scope_kind), row.location_id)
    return held


# --- customers: InvoicePaid, SeatsAssigned ---------------------------------------------------------

CUSTOMERS: dict[str, Callable[[Event], handlers.Customers]] = {
    INVOICE_PAID.name: handlers.invoice_customers,
    enrollment_contract.SEATS_ASSIGNED.name: handlers.pending_seat_holders,
}


def wanted_by_customers(events: list[Event]) -> Wanted:
    wanted = Wanted()
    for event in events:
        customers = CUSTOMERS[event.type](event)
        wanted.org_refs.add(customers.org_ref)
        for person, role in customers.people:
            wanted.email_keys.add(person["email"].strip().lower())
            wanted.roles.add(role)
    return wanted


def decide_customers(plan: Plan, event: Event) -> bool:
    """As the per-event handler: each person found or created, announced, given its role."""
    customers = CUSTOMERS[event.type](event)
    org = plan.organizations.get(customers.org_ref)
    if org is None or any(plan.role(org.id, role) is None for _, role in customers.people):
        return False  # the per-event handler rejects it, or fails as it always has
    for person, role_name in customers.people:
        extra = {**customers.cause, "role": role_name}
        user = plan.user_by_email(org.id, person["email"])
        if user is None:
            user = plan.add_user(event, org.id, handlers.new_customer_fields(person), extra)
        else:
            plan.announce(event, user, extra)
        plan.grant(event, user, plan.roles[(org.id, role_name)], None)
    return True


# --- employees: EmployeeOnboarded --------------------------------------------------------------


def wanted_by_employees(events: list[Event]) -> Wanted:
    wanted = Wanted(roles={"student"})
    for event in events:
        wanted.org_refs.add(event.orgid)
        wanted.email_keys.add(event.data["email"].strip().lower())
        wanted.employee_ids.add(event.data["employee_id"])
        if event.data.get("location_code"):
            wanted.location_codes.add(event.data["location_code"])
    return wanted


def decide_new_employee(plan: Plan, event: Event) -> bool:
    """As the per-event handler for an employee new to identity; any other is left to it."""
    data = event.data
    org = plan.organizations.get(event.orgid)
    student = plan.role(org.id, "student") if org else None
    if org is None or student is None or plan.employee(org.id, data["employee_id"], data["email"]):
        return False
    code = data.get("location_code")
    location = plan.locations.get((org.id, code)) if code else None
    fields = handlers.new_employee_fields(data, handlers.employee_profile(data, location))
    user = plan.add_user(event, org.id, fields, handlers.EMPLOYEE_ROLE)
    if code and location is None:
        plan.unknown_locations.append((event, user, code))
    plan.grant(event, user, student, location.id if location else None)
    return True


# --- runs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunProvisioner:
    """The batch handler of one event type: runs decided set-based, split at what it cannot decide."""

    wanted: Callable[[list[Event]], Wanted]
    decide: Callable[[Plan, Event], bool]
    per_event: Handler

    def __call__(self, session: Session, events: list[Event]) -> None:
        remaining = list(events)
        while remaining:
            decided = self._decide_run(session, remaining)
            remaining = remaining[decided:]
            if remaining:
                with event_correlation(remaining[0]):
                    self.per_event(session, remaining[0])
                remaining = remaining[1:]

    def _decide_run(self, session: Session, events: list[Event]) -> int:
        """Decide and write events until one needs the per-event handler; how many were."""
        plan = load(session, self.wanted(events))
        decided = 0
        while decided < len(events) and self.decide(plan, events[decided]):
            decided += 1
        plan.write(session)
        return decided


BATCH_HANDLERS: dict[str, BatchHandler] = {
    EMPLOYEE_ONBOARDED.name: RunProvisioner(wanted_by_employees, decide_new_employee, handlers.on_employee_onboarded),
    INVOICE_PAID.name: RunProvisioner(wanted_by_customers, decide_customers, handlers.on_invoice_paid),
    enrollment_contract.SEATS_ASSIGNED.name: RunProvisioner(
        wanted_by_customers, decide_customers, handlers.on_seats_assigned
    ),
}
