"""identity's use cases, one function each; the REST views and the event handlers call them.

Every change that other services care about adds its event to the outbox in the same
transaction (source ``/identity``, ``orgid`` the organization).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from identity import mail
from identity.access import location_allowed, location_subtree
from identity.models import (
    LmsManagerSettings,
    Location,
    OAuthClient,
    Organization,
    PasswordResetToken,
    RefreshToken,
    Role,
    RoleAssignment,
    Team,
    TeamMember,
    User,
)
from identity.passwords import MIN_PASSWORD_LENGTH, hash_password, new_secret, token_hash, verify_password
from identity.permissions import BUILTIN_ROLES, PERMISSIONS
from lms_common import outbox
from lms_common.auth import Principal
from lms_common.contracts import identity as contract
from lms_common.db import new_id, utcnow
from lms_common.denylist import DisabledUser
from lms_common.envelope import Event, EventType, format_time
from lms_common.errors import Conflict, Forbidden, NotFound, Problem, Unprocessable

SOURCE = "/identity"
RESET_TOKEN_LIFETIME = timedelta(hours=1)


def identity_event(event_type: EventType, org_id: str, data: Mapping[str, Any]) -> Event:
    """An event identity publishes, about organization ``org_id``."""
    return Event(type=event_type.name, data=dict(data), orgid=org_id, source=SOURCE)


def publish(session: Session, event_type: EventType, org_id: str, data: Mapping[str, Any]) -> None:
    """Add an identity event to the outbox of this transaction."""
    outbox.add(session, identity_event(event_type, org_id, data))


def profile(user: User) -> dict[str, Any]:
    """The profile facts identity's events carry."""
    return {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "department": user.department,
        "location_id": user.location_id,
        "kind": user.kind,
    }


# --- organizations ------------------------------------------------------------------------------


def create_organization(
    session: Session, name: str, slug: str | None = None, parent_id: str | None = None, time_zone: str = "UTC"
) -> Organization:
    """A new tenant (or client organization) with the built-in roles seeded."""
    now = utcnow()
    org = Organization(name=name, slug=slug, parent_id=parent_id, time_zone=time_zone, created_at=now, updated_at=now)
    session.add(org)
    session.flush()
    seed_roles(session, org.id)
    _organization_updated(session, org)
    return org


def update_organization(session: Session, org: Organization, changes: Mapping[str, Any]) -> Organization:
    """Rename an organization or change its time zone (an IANA name, checked by the schema)."""
    for name in ("name", "time_zone"):
        if name in changes:
            setattr(org, name, changes[name])
    org.updated_at = utcnow()
    _organization_updated(session, org)
    return org


def _organization_updated(session: Session, org: Organization) -> None:
    data = {
        "org_id": org.id,
        "name": org.name,
        "parent_id": org.parent_id,
        "time_zone": org.time_zone,
        "updated_at": format_time(org.updated_at or org.created_at),
    }
    publish(session, contract.ORGANIZATION_UPDATED, org.id, data)


def seed_roles(session: Session, org_id: str) -> None:
    """Add the built-in roles the organization lacks (idempotent)."""
    existing = set(session.scalars(select(Role.name).where(Role.org_id == org_id)))
    for builtin in BUILTIN_ROLES:
        if builtin.name not in existing:
            session.add(
                Role(
                    org_id=org_id,
                    name=builtin.name,
                    title=builtin.title,
                    permissions=sorted(builtin.permissions),
                    builtin=True,
                    reaches_clients=builtin.reaches_clients,
                    created_at=utcnow(),
                )
            )
    session.flush()


def add_client(session: Session, master_org_id: str, name: str) -> Organization:
    """A client organization of ``master_org_id`` (in its time zone until changed)."""
    master = session.get(Organization, master_org_id)
    time_zone = master.time_zone if master is not None else "UTC"
    client = create_organization(session, name, parent_id=master_org_id, time_zone=time_zone)
    publish(
        session,
        contract.CLIENT_ORGANIZATION_ADDED,
        master_org_id,
        {"org_id": master_org_id, "client_org_id": client.id, "name": name},
    )
    return client


# --- users ---------------------------------------------------------------------------------------


def find_by_email(session: Session, org_id: str, email: str) -> User | None:
    return session.scalars(select(User).where(User.org_id == org_id, User.email_key == email.strip().lower())).first()


def _check_email_free(session: Session, org_id: str, email: str, user_id: str | None = None) -> None:
    found = find_by_email(session, org_id, email)
    if found is not None and found.id != user_id:
        raise Conflict("a user with this email exists in the organization", code="email_taken")


def _check_location(session: Session, org_id: str, location_id: str | None) -> None:
    if location_id is not None:
        location = session.get(Location, location_id)
        if location is None or location.org_id != org_id:
            raise Unprocessable("no such location", errors={"location_id": ["no such location"]})


def set_password(user: User, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Unprocessable(
            f"a password has at least {MIN_PASSWORD_LENGTH} characters",
            errors={"password": [f"at least {MIN_PASSWORD_LENGTH} characters"]},
        )
    user.password_hash = hash_password(password)


def create_user(
    session: Session,
    org_id: str,
    fields: Mapping[str, Any],
    *,
    cause: str = "api",
    cause_event_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> User:
    """A new user from profile ``fields`` (email, names, ...; ``password`` optional)."""
    values = dict(fields)
    password = values.pop("password", None)
    _check_email_free(session, org_id, values["email"])
    _check_location(session, org_id, values.get("location_id"))
    user = new_user(org_id, values, utcnow())
    if password:
        set_password(user, password)
    session.add(user)
    session.flush()
    provisioned(session, user, cause, cause_event_id, created=True, extra=extra)
    return user


def new_user(org_id: str, fields: Mapping[str, Any], now: datetime) -> User:
    """A user of profile ``fields`` (a customer unless they say otherwise), not yet in a session."""
    email_key = fields["email"].strip().lower()
    user = User(id=new_id(), org_id=org_id, email_key=email_key, created_at=now, updated_at=now, **fields)
    user.kind = user.kind or "customer"
    return user


def provisioned(
    session: Session,
    user: User,
    cause: str,
    cause_event_id: str | None,
    *,
    created: bool,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Publish UserProvisioned for ``user``."""
    outbox.add(session, provisioned_event(user, cause, cause_event_id, created=created, extra=extra))


def provisioned_event(
    user: User, cause: str, cause_event_id: str | None, *, created: bool, extra: Mapping[str, Any] | None = None
) -> Event:
    """UserProvisioned for ``user``, because of ``cause``."""
    data = {
        "user_id": user.id,
        "email": user.email,
        "org_id": user.org_id,
        "cause": cause,
        "cause_event_id": cause_event_id,
        "created": created,
        "employee_id": user.employee_id,
        **profile(user),
        **(extra or {}),
    }
    return identity_event(contract.USER_PROVISIONED, user.org_id, data)


def update_user(session: Session, user: User, changes: Mapping[str, Any]) -> User:
    """Change profile fields (never role, organization or kind: they have their own endpoints)."""
    if "email" in changes:
        _check_email_free(session, user.org_id, changes["email"], user.id)
        user.email_key = changes["email"].strip().lower()
    if "location_id" in changes:
        _check_location(session, user.org_id, changes["location_id"])
    previous_status = user.instructor_status
    if changes.get("instructor_status", previous_status) is None and previous_status is not None:
        # catalog keeps every instructor's latest status: a status ends by moving on, not by vanishing.
        reason = "an instructor status cannot be cleared; set it to 'inactive' or 'disabled'"
        raise Unprocessable(reason, errors={"instructor_status": [reason]})
    for name, value in changes.items():
        setattr(user, name, value)
    user.updated_at = utcnow()
    if "instructor_status" in changes and changes["instructor_status"] != previous_status:
        _instructor_status_changed(session, user, previous_status)
    publish(
        session,
        contract.USER_UPDATED,
        user.org_id,
        {"user_id": user.id, "email": user.email, "org_id": user.org_id, **profile(user)},
    )
    return user


def _instructor_status_changed(session: Session, user: User, previous: str | None) -> None:
    data = {
        "user_id": user.id,
        "org_id": user.org_id,
        "status": user.instructor_status,
        "previous_status": previous,
        "changed_at": format_time(utcnow()),
    }
    publish(session, contract.INSTRUCTOR_STATUS_CHANGED, user.org_id, data)


def change_kind(session: Session, user: User, kind: str) -> User:
    user.kind = kind
    user.updated_at = utcnow()
    publish(
        session,
        contract.USER_UPDATED,
        user.org_id,
        {"user_id": user.id, "email": user.email, "org_id": user.org_id, **profile(user)},
    )
    return user


def disable_user(session: Session, user: User, reason: str = "disabled") -> User:
    """Disable ``user``: no more logins, its refresh tokens die, every service refuses its tokens."""
    if user.disabled_at is not None:
        return user
    now = utcnow()
    user.disabled_at = now
    user.updated_at = now
    _revoke_refresh_tokens(session, user.id)
    # identity's own API refuses the user at once; other services learn it from the event.
    row = session.get(DisabledUser, user.id)
    if row is None:
        session.add(DisabledUser(user_id=user.id, disabled_at=now))
    else:
        row.disabled_at = now
    publish(
        session,
        contract.USER_DISABLED,
        user.org_id,
        {"user_id": user.id, "disabled_at": format_time(now), "reason": reason},
    )
    return user


def enable_user(session: Session, user: User) -> User:
    if user.disabled_at is None:
        return user
    now = utcnow()
    user.disabled_at = None
    user.updated_at = now
    session.execute(delete(DisabledUser).where(DisabledUser.user_id == user.id))
    publish(session, contract.USER_ENABLED, user.org_id, {"user_id": user.id, "enabled_at": format_time(now)})
    return user


def _revoke_refresh_tokens(session: Session, user_id: str) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def merge_users(session: Session, source: User, target: User) -> User:
    """Merge ``source`` into ``target``: ``source``'s login signs in as ``target`` from now on."""
    if source.id == target.id:
        raise Unprocessable("a user cannot be merged into itself", errors={"to_user_id": ["same as from_user_id"]})
    if source.merged_into_id is not None or target.merged_into_id is not None:
        raise Conflict("one of the users was already merged into another", code="already_merged")
    if target.disabled_at is not None:
        raise Conflict("cannot merge into a disabled user", code="target_disabled")
    now = utcnow()
    source.merged_into_id = target.id
    _move_assignments(session, source, target)
    session.execute(update(User).where(User.merged_into_id == source.id).values(merged_into_id=target.id))
    publish(
        session,
        contract.CONTACTS_MERGED,
        target.org_id,
        {"from_user_id": source.id, "to_user_id": target.id, "org_id": target.org_id, "merged_at": format_time(now)},
    )
    # The old subject's tokens must stop: it no longer exists as a person of its own.
    disable_user(session, source, reason=f"merged into {target.id}")
    return target


def _move_assignments(session: Session, source: User, target: User) -> None:
    held = {
        _assignment_key(a) for a in session.scalars(select(RoleAssignment).where(RoleAssignment.user_id == target.id))
    }
    for assignment in session.scalars(select(RoleAssignment).where(RoleAssignment.user_id == source.id)):
        if _assignment_key(assignment) in held:
            session.delete(assignment)
        else:
            assignment.user_id = target.id


def _assignment_key(a: RoleAssignment) -> tuple[str, str, str | None, str | None]:
    return (a.role_id, a.scope_kind, a.location_id, a.client_org_id)


def login_user(user: User, session: Session) -> User | None:
    """The user a login resolves to: through merges, and never a disabled one."""
    seen: set[str] = set()
    while user.merged_into_id is not None and user.id not in seen:
        seen.add(user.id)
        following = session.get(User, user.merged_into_id)
        if following is None:
            return None
        user = following
    return None if user.disabled_at is not None else user


def authenticate(session: Session, org_ids: Iterable[str], email: str, password: str) -> User | None:
    """The user whose email and password these are, in one of ``org_ids``, after merges."""
    key = email.strip().lower()
    for user in session.scalars(select(User).where(User.org_id.in_(list(org_ids)), User.email_key == key)):
        if verify_password(user.password_hash, password):
            return login_user(user, session)
    return None


# --- password reset ------------------------------------------------------------------------------


def request_password_reset(session: Session, user: User, reset_url: str) -> PasswordResetToken:
    """Mail ``user`` a single-use reset token; only its hash is kept."""
    token = new_secret()
    now = utcnow()
    row = PasswordResetToken(
        user_id=user.id, token_hash=token_hash(token), expires_at=now + RESET_TOKEN_LIFETIME, created_at=now
    )
    session.add(row)
    mail.queue(
        session,
        user.email,
        "Reset your LMS password",
        f"Use this token within an hour to choose a new password:\n\n{token}\n\n{reset_url}?token={token}\n",
    )
    session.flush()
    return row


def confirm_password_reset(session: Session, token: str, new_password: str) -> User:
    """Set a new password with a reset token: it works once, before it expires."""
    row = session.scalars(select(PasswordResetToken).where(PasswordResetToken.token_hash == token_hash(token))).first()
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        raise Problem("the reset token is unknown, used or expired", status=400, code="invalid_reset_token")
    user = session.get(User, row.user_id)
    if user is None or user.disabled_at is not None:
        raise Problem("the reset token is unknown, used or expired", status=400, code="invalid_reset_token")
    set_password(user, new_password)
    row.used_at = utcnow()
    _revoke_refresh_tokens(session, user.id)
    return user


# --- roles ---------------------------------------------------------------------------------------


def role_by_name(session: Session, org_id: str, name: str) -> Role:
    role = session.scalars(select(Role).where(Role.org_id == org_id, Role.name == name)).first()
    if role is None:
        raise Unprocessable(f"no role named {name!r}", errors={"role": ["no such role"]})
    return role


def _check_permissions(permissions: Iterable[str]) -> list[str]:
    unknown = sorted(set(permissions) - set(PERMISSIONS))
    if unknown:
        raise Unprocessable("unknown permissions", errors={"permissions": [f"unknown: {', '.join(unknown)}"]})
    return sorted(set(permissions))


def create_role(session: Session, org_id: str, name: str, title: str, permissions: Iterable[str]) -> Role:
    """A custom role; it gives the student rights like every role."""
    if session.scalars(select(Role.id).where(Role.org_id == org_id, Role.name == name)).first():
        raise Conflict("a role with this name exists", code="role_exists")
    role = Role(
        org_id=org_id, name=name, title=title or name, permissions=_check_permissions(permissions), created_at=utcnow()
    )
    session.add(role)
    session.flush()
    return role


def update_role(session: Session, role: Role, changes: Mapping[str, Any]) -> Role:
    """Rename or change the permissions of a role; every holder's next token follows."""
    if "permissions" in changes:
        role.permissions = _check_permissions(changes["permissions"])
    if "title" in changes:
        role.title = changes["title"]
    return role


def assign_role(
    session: Session,
    principal: Principal,
    user: User,
    role_name: str,
    *,
    location_id: str | None = None,
    include_descendants: bool = False,
    client_org_id: str | None = None,
) -> RoleAssignment:
    """Give ``user`` a role in a scope; nobody hands out more than it holds, or outside its reach."""
    role = role_by_name(session, user.org_id, role_name)
    if not set(role.permissions) <= principal.permissions:
        raise Forbidden("you cannot give a role with permissions you do not hold")
    scope_kind = _scope_kind(
        session,
        principal,
        user.org_id,
        location_id=location_id,
        include_descendants=include_descendants,
        client_org_id=client_org_id,
    )
    existing = session.scalars(
        select(RoleAssignment).where(
            RoleAssignment.user_id == user.id,
            RoleAssignment.role_id == role.id,
            RoleAssignment.scope_kind == scope_kind,
            RoleAssignment.location_id.is_(None) if location_id is None else RoleAssignment.location_id == location_id,
            RoleAssignment.client_org_id.is_(None)
            if client_org_id is None
            else RoleAssignment.client_org_id == client_org_id,
        )
    ).first()
    return existing or _add_assignment(
        session, user, role, scope_kind, location_id=location_id, client_org_id=client_org_id
    )


def _scope_kind(
    session: Session,
    principal: Principal,
    org_id: str,
    *,
    location_id: str | None,
    include_descendants: bool,
    client_org_id: str | None,
) -> str:
    if location_id is not None and client_org_id is not None:
        raise Unprocessable(
            "give location_id or client_org_id, not both", errors={"client_org_id": ["not with location_id"]}
        )
    if client_org_id is not None:
        client = session.get(Organization, client_org_id)
        if client is None or client.parent_id != org_id:
            raise Unprocessable(
                "no such client organization", errors={"client_org_id": ["no such client organization"]}
            )
        if not location_allowed(principal, "roles:write", None):
            raise Forbidden("a location administrator cannot assign client organization roles")
        return "client_organization"
    _check_location(session, org_id, location_id)
    if not location_allowed(principal, "roles:write", location_id):
        raise Forbidden("you can assign roles only within your locations")
    if location_id is None:
        return "organization"
    if include_descendants:
        reach = principal.locations_for("roles:write")
        if reach is not None and not location_subtree(session, org_id, [location_id]) <= reach:
            raise Forbidden("you can assign roles only within your locations")
        return "location_tree"
    return "location"


def _add_assignment(
    session: Session, user: User, role: Role, scope_kind: str, *, location_id: str | None, client_org_id: str | None
) -> RoleAssignment:
    assignment = new_assignment(
        user, role, scope_kind, location_id=location_id, client_org_id=client_org_id, now=utcnow()
    )
    session.add(assignment)
    session.flush()
    outbox.add(session, role_assigned_event(assignment, role))
    return assignment


def new_assignment(
    user: User, role: Role, scope_kind: str, *, location_id: str | None, client_org_id: str | None, now: datetime
) -> RoleAssignment:
    """``role`` for ``user`` in one scope, not yet in a session."""
    return RoleAssignment(
        id=new_id(),
        org_id=user.org_id,
        user_id=user.id,
        role_id=role.id,
        scope_kind=scope_kind,
        location_id=location_id,
        client_org_id=client_org_id,
        created_at=now,
    )


def role_assigned_event(assignment: RoleAssignment, role: Role) -> Event:
    """RoleAssigned for a new ``assignment`` of ``role``."""
    data = {
        "assignment_id": assignment.id,
        "user_id": assignment.user_id,
        "org_id": assignment.org_id,
        "role_id": role.id,
        "role": role.name,
        "permissions": sorted(role.permissions),
        "scope": assignment.scope_kind,
        "location_id": assignment.location_id,
        "client_org_id": assignment.client_org_id,
        "assigned_at": format_time(assignment.created_at),
    }
    return identity_event(contract.ROLE_ASSIGNED, assignment.org_id, data)


def grant_role(session: Session, user: User, role_name: str, location_id: str | None = None) -> RoleAssignment:
    """System-side assignment (provisioning): no principal, the role as named, idempotent."""
    role = role_by_name(session, user.org_id, role_name)
    scope_kind = provisioning_scope(location_id)
    existing = session.scalars(
        select(RoleAssignment).where(
            RoleAssignment.user_id == user.id,
            RoleAssignment.role_id == role.id,
            RoleAssignment.scope_kind == scope_kind,
        )
    ).first()
    if existing is not None and existing.location_id == location_id:
        return existing
    return _add_assignment(session, user, role, scope_kind, location_id=location_id, client_org_id=None)


def provisioning_scope(location_id: str | None) -> str:
    """The scope of a role provisioning gives: the location when there is one."""
    return "organization" if location_id is None else "location"


def unassign_role(session: Session, principal: Principal, user: User, assignment_id: str) -> None:
    assignment = session.get(RoleAssignment, assignment_id)
    if assignment is None or assignment.user_id != user.id:
        raise NotFound("no such role assignment")
    if not location_allowed(principal, "roles:write", assignment.location_id):
        raise Forbidden("you can remove roles only within your locations")
    role = session.get(Role, assignment.role_id)
    session.delete(assignment)
    data = {
        "assignment_id": assignment.id,
        "user_id": user.id,
        "org_id": user.org_id,
        "role": role.name if role else "",
        "unassigned_at": format_time(utcnow()),
    }
    publish(session, contract.ROLE_UNASSIGNED, user.org_id, data)


# --- locations, teams, settings ------------------------------------------------------------------


def create_location(session: Session, org_id: str, name: str, code: str, parent_id: str | None) -> Location:
    if parent_id is not None:
        _check_location(session, org_id, parent_id)
    if session.scalars(select(Location.id).where(Location.org_id == org_id, Location.code == code)).first():
        raise Conflict("a location with this code exists", code="location_code_taken")
    location = Location(org_id=org_id, name=name, code=code, parent_id=parent_id, created_at=utcnow())
    session.add(location)
    session.flush()
    data = {"location_id": location.id, "org_id": org_id, "name": name, "code": code, "parent_id": parent_id}
    publish(session, contract.LOCATION_CREATED, org_id, data)
    return location


def location_by_code(session: Session, org_id: str, code: str) -> Location | None:
    return session.scalars(select(Location).where(Location.org_id == org_id, Location.code == code)).first()


def create_team(session: Session, org_id: str, name: str, user_ids: Iterable[str]) -> Team:
    if session.scalars(select(Team.id).where(Team.org_id == org_id, Team.name == name)).first():
        raise Conflict("a team with this name exists", code="team_exists")
    team = Team(org_id=org_id, name=name, created_at=utcnow())
    session.add(team)
    session.flush()
    for user_id in _users_of_org(session, org_id, user_ids):
        session.add(TeamMember(team_id=team.id, user_id=user_id))
    session.flush()
    return team


def _users_of_org(session: Session, org_id: str, user_ids: Iterable[str]) -> list[str]:
    wanted = sorted(set(user_ids))
    found = set(session.scalars(select(User.id).where(User.org_id == org_id, User.id.in_(wanted)))) if wanted else set()
    missing = [user_id for user_id in wanted if user_id not in found]
    if missing:
        raise Unprocessable("unknown users", errors={"user_ids": [f"no such user: {', '.join(missing)}"]})
    return wanted


def team_members(session: Session, team_id: str) -> list[str]:
    return sorted(session.scalars(select(TeamMember.user_id).where(TeamMember.team_id == team_id)))


def lms_managers(session: Session, org_id: str) -> LmsManagerSettings:
    return session.get(LmsManagerSettings, org_id) or LmsManagerSettings(
        org_id=org_id, roles=[], user_ids=[], team_ids=[], all_staff=False
    )


def put_lms_managers(session: Session, org_id: str, values: Mapping[str, Any]) -> LmsManagerSettings:
    """Replace who can manage the LMS (they get the moderator permissions in their next token)."""
    for name in values["roles"]:
        role_by_name(session, org_id, name)
    _users_of_org(session, org_id, values["user_ids"])
    teams = set(session.scalars(select(Team.id).where(Team.org_id == org_id)))
    if set(values["team_ids"]) - teams:
        raise Unprocessable("unknown teams", errors={"team_ids": ["no such team"]})
    row = session.get(LmsManagerSettings, org_id) or LmsManagerSettings(org_id=org_id)
    row.roles, row.user_ids, row.team_ids = (
        sorted(set(values["roles"])),
        sorted(set(values["user_ids"])),
        sorted(set(values["team_ids"])),
    )
    row.all_staff = bool(values["all_staff"])
    row.updated_at = utcnow()
    session.add(row)
    return row


# --- OAuth clients -------------------------------------------------------------------------------


def create_oauth_client(
    session: Session,
    org_id: str,
    values: Mapping[str, Any],
    *,
    client_id: str | None = None,
    secret: str | None = None,
) -> tuple[OAuthClient, str | None]:
    """A client; its secret (None for public clients) is returned once and only its hash kept."""
    public = bool(values.get("public", False))
    secret = None if public else secret or new_secret()
    client = OAuthClient(
        client_id=client_id or f"c-{new_secret(12)}",
        org_id=org_id,
        name=values["name"],
        secret_hash=token_hash(secret) if secret else None,
        scopes=_check_permissions(values["scopes"]),
        grant_types=sorted(set(values["grant_types"])),
        redirect_uris=list(values.get("redirect_uris") or []),
        trusted=bool(values.get("trusted", False)),
        created_at=utcnow(),
    )
    session.add(client)
    session.flush()
    return client, secret
