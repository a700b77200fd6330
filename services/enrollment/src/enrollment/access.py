"""Who may do what, from the caller's token.

- ``learner`` acts on its own enrollments, attempts and certificates only.
- ``enrollment:read`` / ``enrollment:write`` read / change other people's learning, within the
  locations the token scopes them to (``Principal.locations_for``) or the whole organization.
- ``content:grant`` grants and revokes products (moderators, org and master admins).

Every lookup is filtered by organization first: another tenant's id answers 404, and so does a
user outside an admin's locations.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from enrollment.models import User
from lms_common.auth import Principal, current_principal
from lms_common.errors import NotFound

LEARN = "learner"
READ = "enrollment:read"
WRITE = "enrollment:write"
GRANT = "content:grant"


@dataclass(frozen=True)
class Actor:
    principal: Principal

    @property
    def org(self) -> str:
        return self.principal.org

    @property
    def user(self) -> str:
        return self.principal.subject

    def may(self, permission: str) -> bool:
        return self.principal.has(permission)

    def orgs(self) -> set[str]:
        """The organizations the caller acts in: its own and the client organizations it manages."""
        return {self.org, *self.principal.client_orgs}

    def sees_user(self, user: User | None, permission: str) -> bool:
        """Whether ``permission`` lets the caller act on ``user`` (organization and locations)."""
        if user is None or user.org_id not in self.orgs() or not self.may(permission):
            return False
        scope = self.principal.locations_for(permission)
        return scope is None or user.location_id in scope


def actor() -> Actor:
    return Actor(current_principal())


def visible_user(session: Session, who: Actor, user_id: str, permission: str = READ) -> User:
    """The user, when the caller is that user or may act on it with ``permission``; else 404."""
    user = session.get(User, user_id)
    if user_id == who.user and (user is None or user.org_id in who.orgs()):
        return user or User(id=user_id, org_id=who.org, email="", location_id=None)
    if not who.sees_user(user, permission):
        raise NotFound("no such user", code="user_not_found")
    return user  # type: ignore[return-value]


def check_self_or(session: Session, who: Actor, user_id: str, permission: str = READ) -> None:
    """404 unless ``user_id`` is the caller or a user it may act on with ``permission``."""
    visible_user(session, who, user_id, permission)
