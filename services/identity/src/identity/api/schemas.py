"""Request and response bodies of identity's REST API (marshmallow)."""

from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones

from marshmallow import Schema, ValidationError, fields, validate

from identity.permissions import INSTRUCTOR_STATUSES, PERMISSIONS, USER_KINDS
from lms_common.api import PageArgs, StrictSchema, page_schema

NAME = validate.Length(min=1, max=200)
GRANT_TYPES = ("authorization_code", "client_credentials", "refresh_token")


def _text(max_length: int = 200, **kwargs: object) -> fields.String:
    return fields.String(validate=validate.Length(max=max_length), **kwargs)  # type: ignore[arg-type]


class _ProfileFields(StrictSchema):
    title = _text(allow_none=True)
    department = _text(allow_none=True)
    phone_office = _text(50, allow_none=True)
    phone_mobile = _text(50, allow_none=True)
    locale = _text(20, allow_none=True)
    location_id = fields.String(allow_none=True, validate=validate.Length(max=36))
    photo = fields.URL(allow_none=True, data_key="photo_url", validate=validate.Length(max=1000))
    instructor_status = fields.String(allow_none=True, validate=validate.OneOf(INSTRUCTOR_STATUSES))


class UserCreate(_ProfileFields):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    first_name = fields.String(required=True, validate=NAME)
    last_name = fields.String(required=True, validate=NAME)
    kind = fields.String(load_default="customer", validate=validate.OneOf(USER_KINDS))
    password = fields.String(load_only=True, validate=validate.Length(max=500))


class UserPatch(_ProfileFields):
    email = fields.Email(validate=validate.Length(max=320))
    first_name = fields.String(validate=NAME)
    last_name = fields.String(validate=NAME)


class UserOut(Schema):
    id = fields.String()
    org_id = fields.String()
    email = fields.String()
    first_name = fields.String()
    last_name = fields.String()
    title = fields.String(allow_none=True)
    department = fields.String(allow_none=True)
    phone_office = fields.String(allow_none=True)
    phone_mobile = fields.String(allow_none=True)
    locale = fields.String(allow_none=True)
    location_id = fields.String(allow_none=True)
    photo_url = fields.String()
    kind = fields.String()
    instructor_status = fields.String(allow_none=True)
    employee_id = fields.String(allow_none=True)
    disabled = fields.Boolean()
    disabled_at = fields.DateTime(allow_none=True)
    merged_into_id = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class UserListArgs(PageArgs):
    email = fields.String(validate=validate.Length(max=320))
    location_id = fields.String(validate=validate.Length(max=36))
    department = _text()
    kind = fields.String(validate=validate.OneOf(USER_KINDS))
    disabled = fields.Boolean()


class KindIn(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(USER_KINDS))


class MergeIn(StrictSchema):
    from_user_id = fields.String(required=True, validate=validate.Length(max=36))
    to_user_id = fields.String(required=True, validate=validate.Length(max=36))


class ResetIssued(Schema):
    id = fields.String()
    expires_at = fields.DateTime()


class ResetConfirm(StrictSchema):
    token = fields.String(required=True, validate=validate.Length(min=1, max=200))
    new_password = fields.String(required=True, validate=validate.Length(max=500))


class RoleCreate(StrictSchema):
    name = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]{1,99}$"))
    title = _text(load_default="")
    permissions = fields.List(fields.String(validate=validate.OneOf(PERMISSIONS)), required=True)


class RolePatch(StrictSchema):
    title = _text()
    permissions = fields.List(fields.String(validate=validate.OneOf(PERMISSIONS)))


class RoleOut(Schema):
    id = fields.String()
    name = fields.String()
    title = fields.String()
    permissions = fields.List(fields.String())
    builtin = fields.Boolean()
    reaches_clients = fields.Boolean()
    created_at = fields.DateTime()


class AssignmentIn(StrictSchema):
    role = fields.String(required=True, validate=validate.Length(min=1, max=100))
    location_id = fields.String(allow_none=True, validate=validate.Length(max=36))
    include_descendants = fields.Boolean(load_default=False)
    client_org_id = fields.String(allow_none=True, validate=validate.Length(max=36))


class AssignmentOut(Schema):
    id = fields.String()
    user_id = fields.String()
    role_id = fields.String()
    scope = fields.String(attribute="scope_kind")
    location_id = fields.String(allow_none=True)
    client_org_id = fields.String(allow_none=True)
    created_at = fields.DateTime()


class LocationIn(StrictSchema):
    name = fields.String(required=True, validate=NAME)
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    parent_id = fields.String(allow_none=True, validate=validate.Length(max=36))


class LocationOut(Schema):
    id = fields.String()
    name = fields.String()
    code = fields.String()
    parent_id = fields.String(allow_none=True)
    created_at = fields.DateTime()


class TeamIn(StrictSchema):
    name = fields.String(required=True, validate=NAME)
    user_ids = fields.List(fields.String(validate=validate.Length(max=36)), load_default=list)


class TeamOut(Schema):
    id = fields.String()
    name = fields.String()
    user_ids = fields.List(fields.String())
    created_at = fields.DateTime()


class ClientOrgIn(StrictSchema):
    name = fields.String(required=True, validate=NAME)


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _time_zone(name: str) -> None:
    if name not in _time_zones():
        raise ValidationError("not an IANA time zone name, e.g. America/New_York")


class OrganizationPatch(StrictSchema):
    name = fields.String(validate=NAME)
    time_zone = fields.String(validate=_time_zone)


class OrganizationOut(Schema):
    id = fields.String()
    name = fields.String()
    slug = fields.String(allow_none=True)
    parent_id = fields.String(allow_none=True)
    time_zone = fields.String()
    created_at = fields.DateTime()


class LmsManagersIn(StrictSchema):
    roles = fields.List(fields.String(validate=validate.Length(max=100)), load_default=list)
    user_ids = fields.List(fields.String(validate=validate.Length(max=36)), load_default=list)
    team_ids = fields.List(fields.String(validate=validate.Length(max=36)), load_default=list)
    all_staff = fields.Boolean(load_default=False)


class LmsManagersOut(Schema):
    roles = fields.List(fields.String())
    user_ids = fields.List(fields.String())
    team_ids = fields.List(fields.String())
    all_staff = fields.Boolean()


class OAuthClientIn(StrictSchema):
    name = fields.String(required=True, validate=NAME)
    scopes = fields.List(fields.String(validate=validate.OneOf(PERMISSIONS)), required=True)
    grant_types = fields.List(
        fields.String(validate=validate.OneOf(GRANT_TYPES)), required=True, validate=validate.Length(min=1)
    )
    redirect_uris = fields.List(fields.URL(require_tld=False), load_default=list)
    trusted = fields.Boolean(load_default=False)
    public = fields.Boolean(load_default=False)


class OAuthClientOut(Schema):
    client_id = fields.String()
    name = fields.String()
    scopes = fields.List(fields.String())
    grant_types = fields.List(fields.String())
    redirect_uris = fields.List(fields.String())
    trusted = fields.Boolean()
    created_at = fields.DateTime()


class OAuthClientCreated(OAuthClientOut):
    client_secret = fields.String(allow_none=True)


class MeOut(Schema):
    sub = fields.String()
    org = fields.String()
    client_id = fields.String()
    scope = fields.List(fields.String())
    locations = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    clients = fields.List(fields.String())
    user = fields.Nested(UserOut, allow_none=True)


class WarningOut(Schema):
    id = fields.String()
    user_id = fields.String(allow_none=True)
    cause_event_id = fields.String()
    code = fields.String()
    detail = fields.String()
    created_at = fields.DateTime()


UserPage = page_schema(UserOut, "UserPage")
RolePage = page_schema(RoleOut, "RolePage")
AssignmentPage = page_schema(AssignmentOut, "AssignmentPage")
LocationPage = page_schema(LocationOut, "LocationPage")
TeamPage = page_schema(TeamOut, "TeamPage")
OrganizationPage = page_schema(OrganizationOut, "OrganizationPage")
OAuthClientPage = page_schema(OAuthClientOut, "OAuthClientPage")
WarningPage = page_schema(WarningOut, "WarningPage")


class OAuthError(Schema):
    """An OAuth 2 error (RFC 6749 section 5.2); the form pages answer problem details."""

    error = fields.String()
    error_description = fields.String()
