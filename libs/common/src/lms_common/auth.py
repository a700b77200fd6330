"""Verifying identity's access tokens, and the ``require(permission)`` decorator for views.

Tokens are RFC 9068 JWTs signed by identity. They are checked locally against identity's JWKS
(fetched, cached, fetched again on an unknown ``kid`` at most every few seconds): algorithm
allow-list, ``typ``, ``iss``, ``aud``, ``exp``, ``nbf``, then the deny list of disabled users
and revoked tokens. Authorization is deny by default: a view without ``require`` is public.

Claims beyond the contract's, minted by identity:
- ``loc``: permission -> location ids for permissions held only within locations (a local
  admin); a permission absent from ``loc`` holds in the whole organization.
- ``clients``: the client organizations a master admin acts on.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, Protocol, TypeVar, cast

import structlog
from flask import current_app, g, request
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from lms_common.errors import Forbidden, Unauthorized

log = structlog.get_logger("lms.auth")

ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
ACCESS_TOKEN_TYPES = {"at+jwt", "application/at+jwt"}
MAX_TOKEN_BYTES = 8192
# identity's key ids (``k20261123-1a2b3c4d``); anything else (a path, SQL, a URL) is refused
# before it reaches the key cache, so it cannot make the cache fetch the JWKS again.
KID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Headers that tell the verifier where to find a key, or hand it one. The keys come from
# identity's JWKS only, so a token carrying one of these was not minted by identity.
KEY_LOCATION_HEADERS = ("jku", "x5u", "jwk", "x5c", "crit")
# Tokens whose signature and claims have been checked, per process. A client sends the same
# token for up to 15 minutes, and its signature check was most of the cost of authenticating.
VERIFIED_TOKENS_KEPT = 4096


class InvalidToken(Exception):
    """The token cannot be trusted; the message says why (logged, not shown in detail)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (or a machine client) of one organization, with permissions."""

    subject: str
    org: str
    permissions: frozenset[str]
    client_id: str = ""
    token_id: str = ""
    issued_at: int = 0
    location_scopes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    client_orgs: frozenset[str] = frozenset()

    def has(self, permission: str) -> bool:
        return permission in self.permissions

    def locations_for(self, permission: str) -> frozenset[str] | None:
        """The locations where ``permission`` holds, or None when it holds organization-wide."""
        return self.location_scopes.get(permission)

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise InvalidToken("scope must be a space-separated string")
        locations = claims.get("loc") or {}
        if not isinstance(locations, dict):
            raise InvalidToken("loc must be an object")
        org = claims.get("org")
        if not isinstance(org, str) or not org:
            raise InvalidToken("org claim missing")
        return cls(
            subject=str(claims["sub"]),
            org=org,
            permissions=frozenset(scope.split()),
            client_id=str(claims.get("client_id", "")),
            token_id=str(claims.get("jti", "")),
            issued_at=int(claims.get("iat", 0)),
            location_scopes={str(p): frozenset(map(str, ids)) for p, ids in locations.items()},
            client_orgs=frozenset(map(str, claims.get("clients") or ())),
        )


class KeySource(Protocol):
    def key(self, kid: str) -> Any | None: ...


def fetch_json(url: str, timeout: float = 3.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own issuer
        return json.loads(response.read(1024 * 1024))


class JWKSCache:
    """Identity's public keys, refetched on an unknown ``kid`` no more than every few seconds.

    The limit keeps a flood of tokens with invented ``kid`` values from turning into a flood
    of requests to identity.
    """

    def __init__(self, url: str, min_refresh_seconds: float = 5.0, fetch: Callable[[str], Any] = fetch_json):
        self.url = url
        self.min_refresh_seconds = min_refresh_seconds
        self.fetch = fetch
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()

    def key(self, kid: str) -> Any | None:
        with self._lock:
            found = self._lookup(kid)
            if found is None and time.monotonic() - self._fetched_at >= self.min_refresh_seconds:
                self._refresh()
                found = self._lookup(kid)
            return found

    def _lookup(self, kid: str) -> Any | None:
        if self._keys is None:
            return None
        try:
            return self._keys.get_by_kid(kid)
        except (ValueError, KeyError, JoseError):  # joserfc raises InvalidKeyIdError, a JoseError
            return None

    def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            self._keys = KeySet.import_key_set(self.fetch(self.url))
        except Exception as exc:  # identity down: keep the keys we had
            log.warning("JWKS fetch failed", url=self.url, error=repr(exc))


class Revocations(Protocol):
    def is_revoked(self, principal: Principal) -> bool: ...


class VerifiedTokens:
    """Tokens already verified, with their principal and expiry; at most ``size`` of them.

    Only what cannot change for a given token is kept: its signature, issuer, audience and
    claims. Expiry is checked again on every use, with the verifier's leeway, and the deny list
    is never cached, so a revoked token or a disabled user is refused as soon as it is known.
    """

    def __init__(self, size: int = VERIFIED_TOKENS_KEPT):
        self.size = size
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def get(self, token: str, now: float, leeway: int) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        principal, expires_at = entry
        if expires_at <= now - leeway:  # the registry's own rule for exp
            self._entries.pop(token, None)
            return None
        return principal

    def put(self, token: str, principal: Principal, expires_at: float) -> None:
        with self._lock:
            while len(self._entries) >= self.size:
                self._entries.pop(next(iter(self._entries)))  # the oldest first
            self._entries[token] = (principal, expires_at)


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        leeway: int = 10,
        revocations: Revocations | None = None,
    ):
        self.keys = keys
        self.revocations = revocations
        self.leeway = leeway
        self.verified = VerifiedTokens()
        self.registry = JWTClaimsRegistry(
            leeway=leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
        )

    def verify(self, token: str) -> Principal:
        principal = self.verified.get(token, time.time(), self.leeway) or self._verify_signed(token)
        if self.revocations is not None and self.revocations.is_revoked(principal):
            raise InvalidToken("token revoked or user disabled")
        return principal

    def _verify_signed(self, token: str) -> Principal:
        """Signature, header and claims: what a token carries for its whole life."""
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("token too large")
        header = self._header(token)
        key = self.keys.key(header["kid"])
        if key is None:
            raise InvalidToken("unknown signing key")
        try:
            decoded = jwt.decode(token, key, algorithms=list(ALGORITHMS))
            self.registry.validate(decoded.claims)
        except JoseError as exc:
            raise InvalidToken(str(exc)) from exc
        principal = Principal.from_claims(decoded.claims)
        self.verified.put(token, principal, decoded.claims["exp"])
        return principal

    @staticmethod
    def _header(token: str) -> dict[str, Any]:
        try:
            header = dict(jws.extract_compact(token.encode()).headers())
        except (JoseError, ValueError, UnicodeError) as exc:
            raise InvalidToken("malformed token") from exc
        if header.get("alg") not in ALGORITHMS:
            raise InvalidToken(f"algorithm {header.get('alg')!r} not allowed")
        if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidToken("not an access token (typ must be at+jwt)")
        carried = [name for name in KEY_LOCATION_HEADERS if name in header]
        if carried:
            raise InvalidToken(f"header {', '.join(carried)} not allowed: keys come from identity's JWKS only")
        kid = header.get("kid")
        if not isinstance(kid, str) or not KID.match(kid):
            raise InvalidToken("kid missing or malformed")
        return header


# --- Flask side -------------------------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def _challenge(error: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="lms"'
    if error:
        value += f', error="{error}"'
    return {"WWW-Authenticate": value}


def authenticate() -> Principal:
    """The caller of this request, from its bearer token; 401 when there is none or it is bad."""
    if "principal" in g:
        return cast(Principal, g.principal)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer access token is required", headers=_challenge())
    verifier: TokenVerifier = current_app.extensions["lms"].verifier
    try:
        g.principal = verifier.verify(token.strip())
    except InvalidToken as exc:
        log.info("token refused", reason=str(exc))
        raise Unauthorized("the access token is invalid or expired", headers=_challenge("invalid_token")) from exc
    return cast(Principal, g.principal)


def current_principal() -> Principal:
    return authenticate()


def require(*permissions: str) -> Callable[[F], F]:
    """Deny the view unless the caller's token carries at least one of ``permissions``."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate()
            if not any(principal.has(permission) for permission in permissions):
                raise Forbidden(f"this needs the permission {' or '.join(permissions)}")
            return view(*args, **kwargs)

        doc = dict(getattr(wrapper, "_apidoc", {}))
        manual = dict(doc.get("manual_doc", {}))
        manual["security"] = [{"bearerAuth": list(permissions)}]
        doc["manual_doc"] = manual
        wrapper._apidoc = doc  # type: ignore[attr-defined]  # read by flask-smorest
        return cast(F, wrapper)

    return decorator
