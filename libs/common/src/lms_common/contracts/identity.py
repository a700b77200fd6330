"""Events identity publishes."""

from __future__ import annotations

from lms_common.contracts.schema import DATE_TIME, EMAIL, ID, NAME, UUID, array, obj
from lms_common.envelope import EventType

NULLABLE_UUID = {"anyOf": [UUID, {"type": "null"}]}
NULLABLE_NAME = {"anyOf": [NAME, {"type": "null"}]}
USER_KIND = {"enum": ["customer", "staff", "instructor", "affiliate", "provider", "freelancer"]}
INSTRUCTOR_STATUS = {"enum": ["new", "contacted", "verified", "approved", "inactive", "rejected", "disabled"]}

USER_DISABLED = EventType(
    domain="identity",
    name="UserDisabled",
    summary="A user was disabled: every service refuses its tokens issued before disabled_at.",
    schema=obj({"user_id": UUID, "disabled_at": DATE_TIME}, {"reason": {"type": "string", "maxLength": 500}}),
)

USER_ENABLED = EventType(
    domain="identity",
    name="UserEnabled",
    summary="A disabled user was enabled again: tokens issued from now on are accepted.",
    schema=obj({"user_id": UUID, "enabled_at": DATE_TIME}),
)

TOKEN_REVOKED = EventType(
    domain="identity",
    name="TokenRevoked",
    summary="An access token was revoked before its expiry: every service refuses its jti.",
    schema=obj({"jti": ID, "expires_at": DATE_TIME}),
)

# The profile facts other services keep a replica of (names for certificates, location and
# department for scoped reports and assignments).
_PROFILE = {
    "first_name": NAME,
    "last_name": NAME,
    "department": NULLABLE_NAME,
    "location_id": NULLABLE_UUID,
    "kind": USER_KIND,
}

USER_PROVISIONED = EventType(
    domain="identity",
    name="UserProvisioned",
    summary=(
        "A user exists (created, or found by email) because of an event (EmployeeOnboarded, "
        "InvoicePaid, SeatsAssigned for a pending seat holder; cause_event_id) or an API call "
        "(cause 'api', cause_event_id null)."
    ),
    schema=obj(
        {
            "user_id": UUID,
            "email": EMAIL,
            "org_id": ID,
            "cause": {"enum": ["api", "EmployeeOnboarded", "InvoicePaid", "SeatsAssigned"]},
            "cause_event_id": {"anyOf": [ID, {"type": "null"}]},
            "created": {"type": "boolean"},
        },
        {**_PROFILE, "employee_id": NULLABLE_NAME, "invoice_id": ID, "grant_id": UUID, "role": NAME},
    ),
)

USER_UPDATED = EventType(
    domain="identity",
    name="UserUpdated",
    summary="A user's profile changed; the payload is the profile as it is now.",
    schema=obj({"user_id": UUID, "email": EMAIL, "org_id": ID, **_PROFILE}),
)

CONTACTS_MERGED = EventType(
    domain="identity",
    name="ContactsMerged",
    summary="from_user_id was merged into to_user_id: move its learning history; it logs in as to_user_id.",
    schema=obj({"from_user_id": UUID, "to_user_id": UUID, "org_id": ID, "merged_at": DATE_TIME}),
)

ROLE_ASSIGNED = EventType(
    domain="identity",
    name="RoleAssigned",
    summary="A user was given a role within a scope (organization, location, location tree or client org).",
    schema=obj(
        {
            "assignment_id": UUID,
            "user_id": UUID,
            "org_id": ID,
            "role_id": UUID,
            "role": NAME,
            "permissions": array({"type": "string", "maxLength": 100}, max_items=100),
            "scope": {"enum": ["organization", "location", "location_tree", "client_organization"]},
            "location_id": NULLABLE_UUID,
            "client_org_id": {"anyOf": [ID, {"type": "null"}]},
            "assigned_at": DATE_TIME,
        }
    ),
)

ROLE_UNASSIGNED = EventType(
    domain="identity",
    name="RoleUnassigned",
    summary="A role assignment was removed from a user.",
    schema=obj({"assignment_id": UUID, "user_id": UUID, "org_id": ID, "role": NAME, "unassigned_at": DATE_TIME}),
)

INSTRUCTOR_STATUS_CHANGED = EventType(
    domain="identity",
    name="InstructorStatusChanged",
    summary="An instructor's status changed; only 'approved' instructors may be given cohorts.",
    schema=obj(
        {"user_id": UUID, "org_id": ID, "status": INSTRUCTOR_STATUS, "changed_at": DATE_TIME},
        {"previous_status": {"anyOf": [INSTRUCTOR_STATUS, {"type": "null"}]}},
    ),
)

LOCATION_CREATED = EventType(
    domain="identity",
    name="LocationCreated",
    summary="A location was added to an organization's location tree.",
    schema=obj({"location_id": UUID, "org_id": ID, "name": NAME, "code": NAME, "parent_id": NULLABLE_UUID}),
)

ORGANIZATION_UPDATED = EventType(
    domain="identity",
    name="OrganizationUpdated",
    summary=(
        "An organization was created or changed: its name, parent and time zone (an IANA name) as "
        "they are now. Dates such as assignment due dates are days in that time zone."
    ),
    schema=obj(
        {
            "org_id": ID,
            "name": NAME,
            "parent_id": {"anyOf": [ID, {"type": "null"}]},
            "time_zone": {"type": "string", "minLength": 1, "maxLength": 64},
            "updated_at": DATE_TIME,
        }
    ),
)

CLIENT_ORGANIZATION_ADDED = EventType(
    domain="identity",
    name="ClientOrganizationAdded",
    summary="A master organization added a client organization.",
    schema=obj({"org_id": ID, "client_org_id": ID, "name": NAME}),
)

EVENTS = [
    USER_DISABLED,
    USER_ENABLED,
    TOKEN_REVOKED,
    USER_PROVISIONED,
    USER_UPDATED,
    CONTACTS_MERGED,
    ROLE_ASSIGNED,
    ROLE_UNASSIGNED,
    INSTRUCTOR_STATUS_CHANGED,
    LOCATION_CREATED,
    ORGANIZATION_UPDATED,
    CLIENT_ORGANIZATION_ADDED,
]
