"""Access tokens: RFC 9068 JWTs signed with the active key, at most 15 minutes long."""

from __future__ import annotations

import time
from typing import Any

from joserfc import jwt
from sqlalchemy.orm import Session

from identity import keys
from identity.access import grants_of
from identity.models import OAuthClient, User
from lms_common.db import new_id

ACCESS_TOKEN_SECONDS = 900
AUDIENCE = "lms"


def user_claims(session: Session, user: User, allowed: set[str]) -> dict[str, Any]:
    """``scope``, ``loc`` and ``clients`` of a user: its effective permissions within ``allowed``."""
    grants = grants_of(session, user)
    scope = grants.all() & allowed
    claims: dict[str, Any] = {"sub": user.id, "org": user.org_id, "scope": " ".join(sorted(scope))}
    # A permission held organization-wide needs no location list: it holds everywhere.
    loc = {p: sorted(ids) for p, ids in grants.at_locations.items() if p in scope and p not in grants.org_wide}
    if loc:
        claims["loc"] = loc
    if grants.clients:
        claims["clients"] = sorted(grants.clients)
    return claims


def client_claims(client: OAuthClient, allowed: set[str]) -> dict[str, Any]:
    """A machine client acts for its own organization with its allowed scopes."""
    return {"sub": client.client_id, "org": client.org_id, "scope": " ".join(sorted(allowed))}


def mint(session: Session, issuer: str, client_id: str, subject_claims: dict[str, Any]) -> str:
    """Sign an access token for ``subject_claims`` (sub, org, scope, ...)."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + ACCESS_TOKEN_SECONDS,
        "jti": new_id(),
        "client_id": client_id,
        **subject_claims,
    }
    kid, key = keys.active_key(session)
    return jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": kid}, claims, key)


def mint_for_user(
    session: Session, issuer: str, user: User, client: OAuthClient, requested: set[str] | None = None
) -> str:
    """A user's token through ``client`` (tests and the authorization-code grant use it)."""
    allowed = set(client.scopes) if requested is None else set(client.scopes) & requested
    return mint(session, issuer, client.client_id, user_claims(session, user, allowed))
