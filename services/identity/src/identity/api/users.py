"""Users: create, list, read, change, disable, merge, kinds, password resets, role assignments."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from identity import services
from identity.access import location_allowed, user_filter, visible_user
from identity.api import schemas
from identity.models import RoleAssignment, User
from identity.permissions import PERMISSIONS
from lms_common.api import PageArgs, page, paginate, unit_of_work
from lms_common.auth import current_principal, require
from lms_common.errors import Forbidden, NotFound

blp = Blueprint("users", __name__, url_prefix="/v1", description="Users (contacts)")


def _check_place(permission: str, location_id: str | None) -> None:
    if not location_allowed(current_principal(), permission, location_id):
        raise Forbidden("you manage users only within your locations")


@blp.route("/users")
class Users(MethodView):
    @require("identity:read")
    @blp.arguments(schemas.UserListArgs, location="query")
    @blp.response(200, schemas.UserPage)
    def get(self, args: dict[str, Any]) -> Any:
        """List users (filters: email, location_id, department, kind, disabled)"""
        query = select(User).where(user_filter(current_principal(), "identity:read"))
        if "email" in args:
            query = query.where(User.email_key == args["email"].strip().lower())
        for name in ("location_id", "department", "kind"):
            if name in args:
                query = query.where(getattr(User, name) == args[name])
        if "disabled" in args:
            query = query.where(User.disabled_at.is_not(None) if args["disabled"] else User.disabled_at.is_(None))
        with unit_of_work() as session:
            items, cursor = paginate(session, query, [User.id], args["limit"], args["cursor"])
        return page(items, cursor)

    @require("identity:write")
    @blp.arguments(schemas.UserCreate)
    @blp.response(201, schemas.UserOut)
    def post(self, body: dict[str, Any]) -> Any:
        """Create a user in the caller's organization"""
        _check_place("identity:write", body.get("location_id"))
        with unit_of_work() as session:
            return services.create_user(session, current_principal().org, body)


@blp.route("/users/<user_id>")
class UserById(MethodView):
    @require("identity:read")
    @blp.response(200, schemas.UserOut)
    def get(self, user_id: str) -> Any:
        """Read a user"""
        with unit_of_work() as session:
            return visible_user(session, current_principal(), user_id, "identity:read")

    @require("identity:write")
    @blp.arguments(schemas.UserPatch)
    @blp.response(200, schemas.UserOut)
    def patch(self, body: dict[str, Any], user_id: str) -> Any:
        """Change a user's profile (not its role, organization or kind)"""
        if "location_id" in body:
            _check_place("identity:write", body["location_id"])
        with unit_of_work() as session:
            user = visible_user(session, current_principal(), user_id, "identity:write")
            return services.update_user(session, user, body)


@blp.route("/users/<user_id>/disable", methods=["POST"])
@require("identity:write")
@blp.response(200, schemas.UserOut)
def disable(user_id: str) -> Any:
    """Disable a user: no login, and its tokens refused by every service within seconds"""
    with unit_of_work() as session:
        return services.disable_user(session, visible_user(session, current_principal(), user_id, "identity:write"))


@blp.route("/users/<user_id>/enable", methods=["POST"])
@require("identity:write")
@blp.response(200, schemas.UserOut)
def enable(user_id: str) -> Any:
    """Enable a disabled user again"""
    with unit_of_work() as session:
        return services.enable_user(session, visible_user(session, current_principal(), user_id, "identity:write"))


@blp.route("/users/<user_id>/kind", methods=["PUT"])
@require("roles:write")
@blp.arguments(schemas.KindIn)
@blp.response(200, schemas.UserOut)
def change_kind(body: dict[str, Any], user_id: str) -> Any:
    """Change what kind of contact a user is (customer, staff, instructor, ...)"""
    with unit_of_work() as session:
        user = visible_user(session, current_principal(), user_id, "roles:write")
        return services.change_kind(session, user, body["kind"])


@blp.route("/users/merge", methods=["POST"])
@require("identity:write")
@blp.arguments(schemas.MergeIn)
@blp.response(200, schemas.UserOut)
def merge(body: dict[str, Any]) -> Any:
    """Merge from_user_id into to_user_id; the old login signs in as to_user_id"""
    principal = current_principal()
    with unit_of_work() as session:
        source = visible_user(session, principal, body["from_user_id"], "identity:write")
        target = visible_user(session, principal, body["to_user_id"], "identity:write")
        return services.merge_users(session, source, target)


@blp.route("/users/<user_id>/password-reset", methods=["POST"])
@require("identity:write")
@blp.response(202, schemas.ResetIssued)
def password_reset(user_id: str) -> Any:
    """Mail the user a single-use password reset token, valid for an hour"""
    with unit_of_work() as session:
        user = visible_user(session, current_principal(), user_id, "identity:write")
        return services.request_password_reset(session, user, f"{request.host_url}v1/password-reset/confirm")


@blp.route("/password-reset/confirm", methods=["POST"])
@blp.arguments(schemas.ResetConfirm)
@blp.response(204)
def password_reset_confirm(body: dict[str, Any]) -> None:
    """Choose a new password with a reset token (public: the token is the credential)"""
    with unit_of_work() as session:
        services.confirm_password_reset(session, body["token"], body["new_password"])


@blp.route("/users/<user_id>/roles")
class UserRoles(MethodView):
    @require("identity:read")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, schemas.AssignmentPage)
    def get(self, args: dict[str, Any], user_id: str) -> Any:
        """The user's role assignments"""
        with unit_of_work() as session:
            user = visible_user(session, current_principal(), user_id, "identity:read")
            query = select(RoleAssignment).where(RoleAssignment.user_id == user.id)
            items, cursor = paginate(session, query, [RoleAssignment.id], args["limit"], args["cursor"])
        return page(items, cursor)

    @require("roles:write")
    @blp.arguments(schemas.AssignmentIn)
    @blp.response(201, schemas.AssignmentOut)
    def post(self, body: dict[str, Any], user_id: str) -> Any:
        """Give the user a role: organization-wide, at a location (and its descendants) or a client org"""
        principal = current_principal()
        with unit_of_work() as session:
            user = visible_user(session, principal, user_id, "roles:write")
            return services.assign_role(
                session,
                principal,
                user,
                body["role"],
                location_id=body.get("location_id"),
                include_descendants=body["include_descendants"],
                client_org_id=body.get("client_org_id"),
            )


@blp.route("/users/<user_id>/roles/<assignment_id>", methods=["DELETE"])
@require("roles:write")
@blp.response(204)
def unassign(user_id: str, assignment_id: str) -> None:
    """Take a role assignment away"""
    principal = current_principal()
    with unit_of_work() as session:
        user = visible_user(session, principal, user_id, "roles:write")
        services.unassign_role(session, principal, user, assignment_id)


@blp.route("/me")
@require(*PERMISSIONS)
@blp.response(200, schemas.MeOut)
def me() -> Any:
    """Who the caller is: its token's subject, permissions and, for a person, its profile"""
    principal = current_principal()
    with unit_of_work() as session:
        user = session.get(User, principal.subject)
        if user is not None and user.org_id != principal.org:
            raise NotFound("no such user")
        return {
            "sub": principal.subject,
            "org": principal.org,
            "client_id": principal.client_id,
            "scope": sorted(principal.permissions),
            "locations": {p: sorted(ids) for p, ids in principal.location_scopes.items()},
            "clients": sorted(principal.client_orgs),
            "user": user,
        }
