"""Who may do what where: effective permissions of a user, and the tenancy filters of queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from identity.models import LmsManagerSettings, Location, Organization, Role, RoleAssignment, TeamMember, User
from identity.permissions import MODERATOR, STUDENT
from lms_common.auth import Principal
from lms_common.errors import NotFound


@dataclass
class Grants:
    """A user's permissions: organization-wide, per location, and the client orgs it reaches."""

    org_wide: set[str] = field(default_factory=lambda: set(STUDENT))
    at_locations: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    clients: set[str] = field(default_factory=set)

    def all(self) -> set[str]:
        return self.org_wide | set(self.at_locations)


def location_subtree(session: Session, org_id: str, roots: Iterable[str]) -> set[str]:
    """The given locations and all their descendants."""
    children: dict[str | None, list[str]] = defaultdict(list)
    for location_id, parent_id in session.execute(
        select(Location.id, Location.parent_id).where(Location.org_id == org_id)
    ):
        children[parent_id].append(location_id)
    found, stack = set(), list(roots)
    while stack:
        current = stack.pop()
        if current not in found:
            found.add(current)
            stack.extend(children.get(current, ()))
    return found


def is_lms_manager(session: Session, user: User, role_names: set[str]) -> bool:
    """Who can manage the LMS: by role, by user, by team, or all staff (never freelancers)."""
    settings = session.get(LmsManagerSettings, user.org_id)
    if settings is None:
        return False
    if user.id in settings.user_ids or role_names & set(settings.roles):
        return True
    if settings.all_staff and user.kind == "staff":
        return True
    teams = set(session.scalars(select(TeamMember.team_id).where(TeamMember.user_id == user.id)))
    return bool(teams & set(settings.team_ids))


def client_orgs_of(session: Session, org_id: str) -> set[str]:
    return set(session.scalars(select(Organization.id).where(Organization.parent_id == org_id)))


def grants_of(session: Session, user: User) -> Grants:
    """Everything ``user`` may do, from its role assignments and the LMS manager settings."""
    grants = Grants()
    rows = session.execute(
        select(RoleAssignment, Role)
        .join(Role, Role.id == RoleAssignment.role_id)
        .where(RoleAssignment.user_id == user.id)
    ).all()
    for assignment, role in rows:
        _add_assignment(session, grants, assignment, role)
    if is_lms_manager(session, user, {role.name for _, role in rows}):
        grants.org_wide |= MODERATOR
    return grants


def _add_assignment(session: Session, grants: Grants, assignment: RoleAssignment, role: Role) -> None:
    permissions = set(role.permissions)
    if assignment.scope_kind == "organization":
        grants.org_wide |= permissions
        if role.reaches_clients:
            grants.clients |= client_orgs_of(session, assignment.org_id)
    elif assignment.scope_kind == "client_organization" and assignment.client_org_id:
        grants.clients.add(assignment.client_org_id)
    elif assignment.location_id:
        roots = [assignment.location_id]
        places = (
            location_subtree(session, assignment.org_id, roots) if assignment.scope_kind == "location_tree" else roots
        )
        for permission in permissions:
            grants.at_locations[permission] |= set(places)


# --- tenancy filters of queries ---------------------------------------------------------------


def user_filter(principal: Principal, permission: str) -> ColumnElement[bool]:
    """Users ``principal`` may see with ``permission``: its org, within its locations if scoped."""
    locations = principal.locations_for(permission)
    condition = User.org_id == principal.org
    if locations is not None:
        condition = condition & User.location_id.in_(sorted(locations))
    return condition


def location_allowed(principal: Principal, permission: str, location_id: str | None) -> bool:
    """May ``principal`` act with ``permission`` at ``location_id`` (None: organization level)?"""
    locations = principal.locations_for(permission)
    return locations is None or (location_id is not None and location_id in locations)


def visible_user(session: Session, principal: Principal, user_id: str, permission: str) -> User:
    """The user, or 404 when it is another tenant's or outside the caller's locations."""
    user = session.scalars(select(User).where(User.id == user_id, user_filter(principal, permission))).first()
    if user is None:
        raise NotFound("no such user")
    return user


def in_org(session: Session, model: type, object_id: str, org_id: str, what: str) -> object:
    """A row of ``model`` by id within the organization, else 404."""
    row = session.get(model, object_id)
    if row is None or getattr(row, "org_id", None) != org_id:
        raise NotFound(f"no such {what}")
    return row
