"""Roles, locations, teams, client organizations, LMS managers, OAuth clients, warnings."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import Session

from identity import services
from identity.access import in_org, location_allowed
from identity.api import schemas
from identity.models import Location, OAuthClient, Organization, ProvisioningWarning, Role, RoleAssignment, Team, User
from lms_common.api import PageArgs, page, paginate, unit_of_work
from lms_common.auth import Principal, current_principal, require
from lms_common.errors import Forbidden, NotFound

blp = Blueprint("directory", __name__, url_prefix="/v1", description="Roles, locations, teams, organizations, settings")


def org_wide(permission: str) -> Principal:
    """The caller, when it holds ``permission`` for the whole organization (else 403)."""
    principal = current_principal()
    if principal.locations_for(permission) is not None:
        raise Forbidden(f"this needs {permission} for the whole organization")
    return principal


# --- roles -------------------------------------------------------------------------------------


@blp.route("/roles")
class Roles(MethodView):
    @require("identity:read", "roles:write")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, schemas.RolePage)
    def get(self, args: dict[str, Any]) -> Any:
        """List the organization's roles, built-in and custom"""
        query = select(Role).where(Role.org_id == current_principal().org)
        with unit_of_work() as session:
            return page(*paginate(session, query, [Role.id], args["limit"], args["cursor"]))

    @require("roles:write")
    @blp.arguments(schemas.RoleCreate)
    @blp.response(201, schemas.RoleOut)
    def post(self, body: dict[str, Any]) -> Any:
        """Create a custom role with any permission set"""
        principal = org_wide("roles:write")
        with unit_of_work() as session:
            return services.create_role(session, principal.org, body["name"], body["title"], body["permissions"])


@blp.route("/roles/<role_id>")
class RoleById(MethodView):
    @require("identity:read", "roles:write")
    @blp.response(200, schemas.RoleOut)
    def get(self, role_id: str) -> Any:
        """Read a role"""
        with unit_of_work() as session:
            return in_org(session, Role, role_id, current_principal().org, "role")

    @require("roles:write")
    @blp.arguments(schemas.RolePatch)
    @blp.response(200, schemas.RoleOut)
    def patch(self, body: dict[str, Any], role_id: str) -> Any:
        """Change a role's title or permissions (for every holder)"""
        principal = org_wide("roles:write")
        if not set(body.get("permissions", ())) <= principal.permissions:
            raise Forbidden("you cannot give a role permissions you do not hold")
        with unit_of_work() as session:
            role = in_org(session, Role, role_id, principal.org, "role")
            return services.update_role(session, role, body)  # type: ignore[arg-type]


# --- locations and teams ----------------------------------------------------------------------


@blp.route("/locations")
class Locations(MethodView):
    @require("identity:read")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, schemas.LocationPage)
    def get(self, args: dict[str, Any]) -> Any:
        """List the organization's locations"""
        query = select(Location).where(Location.org_id == current_principal().org)
        with unit_of_work() as session:
            return page(*paginate(session, query, [Location.id], args["limit"], args["cursor"]))

    @require("identity:write")
    @blp.arguments(schemas.LocationIn)
    @blp.response(201, schemas.LocationOut)
    def post(self, body: dict[str, Any]) -> Any:
        """Add a location (a scoped administrator only below its own locations)"""
        principal = current_principal()
        if not location_allowed(principal, "identity:write", body.get("parent_id")):
            raise Forbidden("you can add locations only within your locations")
        with unit_of_work() as session:
            return services.create_location(session, principal.org, body["name"], body["code"], body.get("parent_id"))


@blp.route("/locations/<location_id>")
@require("identity:read")
@blp.response(200, schemas.LocationOut)
def get_location(location_id: str) -> Any:
    """Read a location"""
    with unit_of_work() as session:
        return in_org(session, Location, location_id, current_principal().org, "location")


def _team_out(session: Session, team: Team) -> dict[str, Any]:
    return {
        "id": team.id,
        "name": team.name,
        "created_at": team.created_at,
        "user_ids": services.team_members(session, team.id),
    }


@blp.route("/teams")
class Teams(MethodView):
    @require("identity:read")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, schemas.TeamPage)
    def get(self, args: dict[str, Any]) -> Any:
        """List the organization's teams with their members"""
        query = select(Team).where(Team.org_id == current_principal().org)
        with unit_of_work() as session:
            items, cursor = paginate(session, query, [Team.id], args["limit"], args["cursor"])
            return page([_team_out(session, team) for team in items], cursor)

    @require("identity:write")
    @blp.arguments(schemas.TeamIn)
    @blp.response(201, schemas.TeamOut)
    def post(self, body: dict[str, Any]) -> Any:
        """Create a team of users"""
        principal = org_wide("identity:write")
        with unit_of_work() as session:
            return _team_out(session, services.create_team(session, principal.org, body["name"], body["user_ids"]))


@blp.route("/teams/<team_id>")
@require("identity:read")
@blp.response(200, schemas.TeamOut)
def get_team(team_id: str) -> Any:
    """Read a team"""
    with unit_of_work() as session:
        return _team_out(session, in_org(session, Team, team_id, current_principal().org, "team"))  # type: ignore[arg-type]


# --- organizations ----------------------------------------------------------------------------


def _reachable_org(session: Session, principal: Principal, org_id: str) -> Organization:
    org = session.get(Organization, org_id)
    if org is None or principal.org not in (org.id, org.parent_id):
        raise NotFound("no such organization")
    return org


def _reaches_clients(session: Session, principal: Principal) -> bool:
    user = session.get(User, principal.subject)
    if user is None:  # a machine client of the organization
        return True
    return any(role.reaches_clients for role in _org_wide_roles(session, user))


def _org_wide_roles(session: Session, user: User) -> list[Role]:
    query = (
        select(Role)
        .join(RoleAssignment, RoleAssignment.role_id == Role.id)
        .where(RoleAssignment.user_id == user.id, RoleAssignment.scope_kind == "organization")
    )
    return list(session.scalars(query))


@blp.route("/organizations/<org_id>")
class OrganizationResource(MethodView):
    @require("identity:read")
    @blp.response(200, schemas.OrganizationOut)
    def get(self, org_id: str) -> Any:
        """Read the caller's organization or one of its client organizations"""
        with unit_of_work() as session:
            return _reachable_org(session, current_principal(), org_id)

    @require("settings:write")
    @blp.arguments(schemas.OrganizationPatch)
    @blp.response(200, schemas.OrganizationOut)
    def patch(self, body: dict[str, Any], org_id: str) -> Any:
        """Rename the organization (or a client organization) or set its time zone"""
        principal = org_wide("settings:write")
        with unit_of_work() as session:
            org = _reachable_org(session, principal, org_id)
            if org.id != principal.org and not _reaches_clients(session, principal):
                raise NotFound("no such organization")
            return services.update_organization(session, org, body)


@blp.route("/organizations/<org_id>/clients")
class Clients(MethodView):
    @require("identity:read")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, schemas.OrganizationPage)
    def get(self, args: dict[str, Any], org_id: str) -> Any:
        """List the client organizations"""
        principal = current_principal()
        if org_id != principal.org:
            raise NotFound("no such organization")
        query = select(Organization).where(Organization.parent_id == org_id)
        with unit_of_work() as session:
            return page(*paginate(session, query, [Organization.id], args["limit"], args["cursor"]))

    @require("settings:write")
    @blp.arguments(schemas.ClientOrgIn)
    @blp.response(201, schemas.OrganizationOut)
    def post(self, body: dict[str, Any], org_id: str) -> Any:
        """Add a client organization (master administrators)"""
        principal = org_wide("settings:write")
        if org_id != principal.org:
            raise NotFound("no such organization")
        with unit_of_work() as session:
            if not _reaches_clients(session, principal):
                raise Forbidden("only a master administrator adds client organizations")
            return services.add_client(session, principal.org, body["name"])


# --- settings, OAuth clients, warnings ----------------------------------------------------------


@blp.route("/settings/lms-managers")
class LmsManagers(MethodView):
    @require("identity:read", "settings:write")
    @blp.response(200, schemas.LmsManagersOut)
    def get(self) -> Any:
        """Who can manage the LMS: roles, users, teams, all staff"""
        with unit_of_work() as session:
            return services.lms_managers(session, current_principal().org)

    @require("settings:write")
    @blp.arguments(schemas.LmsManagersIn)
    @blp.response(200, schemas.LmsManagersOut)
    def put(self, body: dict[str, Any]) -> Any:
        """Replace who can manage the LMS (they get the moderator permissions; never freelancers by all_staff)"""
        principal = org_wide("settings:write")
        with unit_of_work() as session:
            return services.put_lms_managers(session, principal.org, body)


@blp.route("/oauth-clients")
class OAuthClients(MethodView):
    @require("settings:write")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, schemas.OAuthClientPage)
    def get(self, args: dict[str, Any]) -> Any:
        """List the organization's OAuth clients (never their secrets)"""
        principal = org_wide("settings:write")
        query = select(OAuthClient).where(OAuthClient.org_id == principal.org)
        with unit_of_work() as session:
            return page(*paginate(session, query, [OAuthClient.id], args["limit"], args["cursor"]))

    @require("settings:write")
    @blp.arguments(schemas.OAuthClientIn)
    @blp.response(201, schemas.OAuthClientCreated)
    def post(self, body: dict[str, Any]) -> Any:
        """Register an OAuth client; its secret is shown once, here"""
        principal = org_wide("settings:write")
        if not set(body["scopes"]) <= principal.permissions:
            raise Forbidden("a client cannot hold permissions you do not hold")
        with unit_of_work() as session:
            client, secret = services.create_oauth_client(session, principal.org, body)
            fields = schemas.OAuthClientOut().fields
            return {**{name: getattr(client, name) for name in fields}, "client_secret": secret}


@blp.route("/provisioning-warnings")
@require("identity:read")
@blp.arguments(PageArgs, location="query")
@blp.response(200, schemas.WarningPage)
def warnings(args: dict[str, Any]) -> Any:
    """What provisioning from HR or billing could not do as asked (e.g. an unknown location code)"""
    query = select(ProvisioningWarning).where(ProvisioningWarning.org_id == current_principal().org)
    with unit_of_work() as session:
        return page(*paginate(session, query, [ProvisioningWarning.id], args["limit"], args["cursor"]))
