"""The permissions (OAuth scopes) of CONTRACT section 2 and the built-in roles made of them."""

from __future__ import annotations

from dataclasses import dataclass

PERMISSIONS: tuple[str, ...] = (
    "catalog:read",
    "catalog:write",
    "enrollment:read",
    "enrollment:write",
    "identity:read",
    "identity:write",
    "roles:write",
    "automation:read",
    "automation:write",
    "reports:read",
    "events:publish",
    "settings:write",
    "content:grant",
    "learner",
)

# Every role gives the student rights: its own learning in the published catalog.
STUDENT = frozenset({"learner", "catalog:read"})
USER_ADMIN = STUDENT | {
    "identity:read",
    "identity:write",
    "roles:write",
    "enrollment:read",
    "enrollment:write",
    "reports:read",
}
REPORTS_ONLY = STUDENT | {"reports:read"}
MODERATOR = STUDENT | {"catalog:write", "content:grant", "enrollment:read", "enrollment:write"}
ORG_ADMIN = USER_ADMIN | MODERATOR | {"automation:read", "automation:write", "settings:write"}


@dataclass(frozen=True)
class BuiltinRole:
    """A role seeded in every organization; ``reaches_clients`` acts on client organizations."""

    name: str
    title: str
    permissions: frozenset[str]
    reaches_clients: bool = False


BUILTIN_ROLES: tuple[BuiltinRole, ...] = (
    BuiltinRole("student", "Student", STUDENT),
    BuiltinRole("purchaser", "Purchaser", STUDENT),
    BuiltinRole("instructor", "Instructor", STUDENT | {"enrollment:read", "reports:read"}),
    BuiltinRole("course_creator", "Course creator", STUDENT | {"catalog:write"}),
    BuiltinRole("moderator", "Moderator (LMS manager)", MODERATOR),
    BuiltinRole("local_admin", "Local administrator", USER_ADMIN),
    BuiltinRole("local_admin_reports", "Local administrator (reports only)", REPORTS_ONLY),
    BuiltinRole("multi_location_admin", "Multiple location administrator", USER_ADMIN),
    BuiltinRole("multi_location_admin_reports", "Multiple location administrator (reports only)", REPORTS_ONLY),
    BuiltinRole("org_admin", "Organization administrator", ORG_ADMIN),
    BuiltinRole("org_admin_reports", "Organization administrator (reports only)", REPORTS_ONLY),
    BuiltinRole("master_admin", "Master administrator", ORG_ADMIN, reaches_clients=True),
    BuiltinRole("master_admin_reports", "Master administrator (reports only)", REPORTS_ONLY, reaches_clients=True),
    BuiltinRole("super_admin", "Super administrator", frozenset(PERMISSIONS), reaches_clients=True),
)

BUILTIN_NAMES = frozenset(role.name for role in BUILTIN_ROLES)
USER_KINDS = ("customer", "staff", "instructor", "affiliate", "provider", "freelancer")
INSTRUCTOR_STATUSES = ("new", "contacted", "verified", "approved", "inactive", "rejected", "disabled")
SCOPE_KINDS = ("organization", "location", "location_tree", "client_organization")
