"""Whose data a caller may read in reports.

``reports:read`` held organization-wide reads the caller's organization and, for master
admins, its client organizations; held within locations (the token lists the expanded subtree)
it reads the learners of those locations only. Without ``reports:read``, a ``learner`` reads
its own transcript and nothing else. Every query is filtered by these organizations.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from lms_common.auth import Principal
from lms_common.errors import Forbidden, NotFound
from reporting.models import Location

REPORTS = "reports:read"
LEARNER = "learner"


@dataclass(frozen=True)
class Scope:
    """Organizations, and locations (None: all of them) a report may show."""

    orgs: frozenset[str]
    locations: frozenset[str] | None = None
    only_user: str | None = None

    def narrowed(self, locations: frozenset[str] | None) -> Scope:
        """This scope limited to ``locations`` as well (None: no further limit)."""
        if locations is None:
            return self
        kept = locations if self.locations is None else locations & self.locations
        return Scope(self.orgs, kept, self.only_user)


def report_scope(principal: Principal, org_id: str | None = None) -> Scope:
    """The scope of an admin's report; 403 without ``reports:read``, 404 for a foreign org."""
    if not principal.has(REPORTS):
        raise Forbidden(f"this needs the permission {REPORTS}")
    locations = principal.locations_for(REPORTS)
    orgs = {principal.org} if locations is not None else {principal.org, *principal.client_orgs}
    if org_id is not None:
        if org_id not in orgs:
            raise NotFound("no such organization")
        orgs = {org_id}
    return Scope(frozenset(orgs), locations)


def transcript_scope(principal: Principal, user_id: str) -> Scope:
    """An admin's report scope, or a learner's own transcript; 403 otherwise."""
    if principal.has(REPORTS):
        return report_scope(principal)
    if principal.has(LEARNER) and principal.subject == user_id:
        return Scope(frozenset({principal.org}), None, only_user=user_id)
    raise Forbidden(f"this needs the permission {REPORTS}, or to be the learner")


def subtree(session: Session, gen: int, scope: Scope, location_id: str) -> frozenset[str]:
    """``location_id`` and every location below it; 404 when it is not in the scope."""
    rows = session.execute(
        select(Location.location_id, Location.parent_id).where(Location.gen == gen, Location.org_id.in_(scope.orgs))
    )
    children: dict[str | None, list[str]] = defaultdict(list)
    known = set()
    for child, parent in rows:
        children[parent].append(child)
        known.add(child)
    if location_id not in known or (scope.locations is not None and location_id not in scope.locations):
        raise NotFound("no such location in your scope")
    found, todo = {location_id}, [location_id]
    while todo:
        for child in children[todo.pop()]:
            if child not in found:
                found.add(child)
                todo.append(child)
    return frozenset(found)
