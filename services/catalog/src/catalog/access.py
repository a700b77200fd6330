"""Who may see and change what in the catalog, decided from the caller's token.

The contract's permissions say little about authorship, so the rule is:

- ``catalog:read`` alone (a learner) sees published content only: a draft course or lesson, an
  inactive product or an unpublished program answers 404, as if it did not exist.
- ``catalog:write`` (a course creator) creates content, and sees and edits what it created; it
  sees others' published content (editing it answers 403) but not their drafts (404).
- ``catalog:write`` plus ``content:grant`` or ``settings:write`` (a moderator or an org admin)
  sees and edits all content of the organization.

Every lookup is filtered by the caller's organization first: another tenant's id answers 404.
Publishing (lessons, courses, programs) and activating products are edits: the same rule holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from lms_common.auth import Principal
from lms_common.errors import Forbidden

READ = "catalog:read"
WRITE = "catalog:write"
MANAGER_PERMISSIONS = ("content:grant", "settings:write")


@dataclass(frozen=True)
class Actor:
    """The caller as the catalog sees it: organization, user and what it may do."""

    org: str
    user: str
    author: bool = False
    manager: bool = False

    @classmethod
    def from_principal(cls, principal: Principal) -> Actor:
        author = principal.has(WRITE)
        manager = author and any(principal.has(p) for p in MANAGER_PERMISSIONS)
        return cls(org=principal.org, user=principal.subject, author=author, manager=manager)

    def owns(self, created_by: str) -> bool:
        return self.author and created_by == self.user

    def sees(self, created_by: str, public: bool) -> bool:
        """Whether the caller may see an object: public ones always, drafts when it may edit them."""
        return public or self.manager or self.owns(created_by)

    def may_edit(self, created_by: str) -> bool:
        return self.manager or self.owns(created_by)

    def check_edit(self, created_by: str, what: str) -> None:
        """403 unless the caller may edit an object it can see."""
        if not self.may_edit(created_by):
            raise Forbidden(
                f"you may edit only the {what}s you created (moderators and org admins edit all)", code="not_owner"
            )
