"""The OAuth 2 authorization server (authlib): clients, grants, tokens, revocation, introspection.

authlib calls back into the functions below during a request; they use the request's unit of
work (``g.db``), opened by the views in :mod:`identity.api.oauth`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, InvalidRequestError, grants
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, g
from joserfc import jws, jwt
from joserfc.errors import JoseError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from identity import services
from identity.keys import DatabaseKeys
from identity.models import AuthorizationCode, OAuthClient, RefreshToken, User
from identity.passwords import new_secret, same_token, token_hash
from identity.tokens import ACCESS_TOKEN_SECONDS, client_claims, mint, user_claims
from lms_common.api import runtime
from lms_common.contracts import identity as contract
from lms_common.db import new_id, utcnow
from lms_common.denylist import DisabledUser, RevokedToken
from lms_common.envelope import format_time

CODE_LIFETIME = timedelta(minutes=5)
REFRESH_LIFETIME = timedelta(days=30)
SECRET_METHODS = ["client_secret_basic", "client_secret_post"]
ALL_METHODS = [*SECRET_METHODS, "none"]


def db() -> Session:
    return g.db  # type: ignore[no-any-return]


class Client(ClientMixin):  # type: ignore[misc]
    """authlib's view of an :class:`OAuthClient` row."""

    def __init__(self, row: OAuthClient):
        self.row = row

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.row.redirect_uris[0] if self.row.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = set(self.row.scopes)
        wanted = set(scope_to_list(scope)) if scope else allowed
        return " ".join(sorted(wanted & allowed))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.row.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return same_token(client_secret, self.row.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # A public client (no secret) authenticates with "none"; a confidential one never does.
        return method == "none" if self.row.secret_hash is None else method in SECRET_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.row.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.row.grant_types


def query_client(client_id: str) -> Client | None:
    row = db().scalars(select(OAuthClient).where(OAuthClient.client_id == client_id)).first()
    return Client(row) if row else None


# --- tokens ----------------------------------------------------------------------------------


def generate_token(
    *,
    grant_type: str,
    client: Client,
    user: User | None = None,
    scope: str | None = None,
    expires_in: int | None = None,
    include_refresh_token: bool = True,
) -> dict[str, Any]:
    """The token response: a JWT access token whose scope is what the user holds of ``scope``."""
    allowed = set(scope_to_list(client.get_allowed_scope(scope)))
    session = db()
    claims = user_claims(session, user, allowed) if user is not None else client_claims(client.row, allowed)
    token: dict[str, Any] = {
        "token_type": "Bearer",
        "access_token": mint(session, runtime().settings.issuer, client.row.client_id, claims),
        "expires_in": ACCESS_TOKEN_SECONDS,
        "scope": claims["scope"],
    }
    if include_refresh_token and user is not None:
        token["refresh_token"] = new_secret()
    return token


def save_token(token: dict[str, Any], request: Any) -> None:
    """Keep the hash of a new refresh token, in the family of the one it replaces."""
    if "refresh_token" not in token:
        return
    previous = getattr(request, "refresh_token", None)
    code = getattr(request, "authorization_code", None)
    family = previous.row.family_id if isinstance(previous, Refresh) else new_id()
    scope = previous.row.scope if isinstance(previous, Refresh) else (code.scope if code else token.get("scope", ""))
    now = utcnow()
    db().add(
        RefreshToken(
            token_hash=token_hash(token["refresh_token"]),
            family_id=family,
            client_id=request.client.get_client_id(),
            user_id=request.user.id,
            scope=scope,
            expires_at=now + REFRESH_LIFETIME,
            created_at=now,
        )
    )


@dataclass
class Refresh:
    """authlib's view of a refresh token row."""

    row: RefreshToken

    def check_client(self, client: Client) -> bool:
        return self.row.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.row.scope

    def is_expired(self) -> bool:
        return self.row.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.row.revoked_at is not None or self.row.used_at is not None


@dataclass
class Access:
    """A verified access token's claims, for revocation and introspection."""

    claims: dict[str, Any]

    def check_client(self, client: Client) -> bool:
        return self.claims.get("client_id") == client.get_client_id()

    def is_expired(self) -> bool:
        return int(self.claims.get("exp", 0)) <= time.time()

    def is_revoked(self) -> bool:
        session = db()
        if session.get(RevokedToken, str(self.claims.get("jti"))) is not None:
            return True
        disabled = session.get(DisabledUser, str(self.claims.get("sub")))
        return disabled is not None and int(self.claims.get("iat", 0)) <= disabled.disabled_at.timestamp()


def decode_access_token(session: Session, token: str) -> dict[str, Any] | None:
    """The claims of an access token this server signed (expired or not), else None."""
    try:
        header = jws.extract_compact(token.encode()).headers()
        key = DatabaseKeys(runtime().session_factory).key(str(header.get("kid", "")))
        if key is None:
            return None
        claims = dict(jwt.decode(token, key, algorithms=["RS256"]).claims)
    except (JoseError, ValueError, UnicodeError):
        return None
    return claims if claims.get("iss") == runtime().settings.issuer else None


def find_token(token_string: str, hint: str | None) -> Access | Refresh | None:
    session = db()
    if hint != "refresh_token" and token_string.count(".") == 2:
        claims = decode_access_token(session, token_string)
        if claims is not None:
            return Access(claims)
    row = session.scalars(select(RefreshToken).where(RefreshToken.token_hash == token_hash(token_string))).first()
    return Refresh(row) if row else None


def revoke_family(session: Session, family_id: str) -> None:
    now = utcnow()
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_access_token(session: Session, claims: dict[str, Any]) -> None:
    """Refuse this token here at once, and everywhere else through TokenRevoked."""
    jti = str(claims["jti"])
    expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
    if session.get(RevokedToken, jti) is None:
        session.add(RevokedToken(jti=jti, expires_at=expires_at))
        data = {"jti": jti, "expires_at": format_time(expires_at)}
        services.publish(session, contract.TOKEN_REVOKED, str(claims["org"]), data)


# --- grants ----------------------------------------------------------------------------------


class PkceS256(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 for every client, confidential ones too (authlib asks it of public ones)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge and code_challenge_method=S256")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'")
        super().validate_code_verifier(grant, result)


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_METHODS


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS

    def save_authorization_code(self, code: str, request: Any) -> None:
        now = utcnow()
        db().add(
            AuthorizationCode(
                code_hash=token_hash(code),
                client_id=request.client.get_client_id(),
                user_id=request.user.id,
                # Always bound to a redirect URI, so an altered one at the token endpoint fails.
                redirect_uri=request.payload.redirect_uri or request.client.get_default_redirect_uri(),
                scope=request.scope or "",
                code_challenge=request.payload.data.get("code_challenge"),
                code_challenge_method=request.payload.data.get("code_challenge_method"),
                expires_at=now + CODE_LIFETIME,
                created_at=now,
            )
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        row = db().scalars(select(AuthorizationCode).where(AuthorizationCode.code_hash == token_hash(code))).first()
        if row is None or row.client_id != client.get_client_id() or row.expires_at <= utcnow():
            return None
        return row

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        db().delete(authorization_code)

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        user = db().get(User, authorization_code.user_id)
        return services.login_user(user, db()) if user else None


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Refresh | None:
        session = db()
        row = session.scalars(select(RefreshToken).where(RefreshToken.token_hash == token_hash(refresh_token))).first()
        if row is None or row.expires_at <= utcnow():
            return None
        if row.used_at is not None or row.revoked_at is not None:
            # A spent token came back: someone holds a copy. Kill the whole family.
            revoke_family(session, row.family_id)
            return None
        return Refresh(row)

    def authenticate_user(self, refresh: Refresh) -> User | None:
        user = db().get(User, refresh.row.user_id)
        return services.login_user(user, db()) if user else None

    def revoke_old_credential(self, refresh: Refresh) -> None:
        refresh.row.used_at = utcnow()


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ALL_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Access | Refresh | None:
        return find_token(token_string, token_type_hint)

    def revoke_token(self, token: Access | Refresh, request: Any) -> None:
        if isinstance(token, Access):
            revoke_access_token(db(), token.claims)
        else:
            revoke_family(db(), token.row.family_id)


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = SECRET_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Access | Refresh | None:
        return find_token(token_string, token_type_hint)

    def check_permission(self, token: Access | Refresh, client: Client, request: Any) -> bool:
        # Resource servers of the token's organization may look at it.
        if isinstance(token, Access):
            return token.claims.get("org") == client.row.org_id
        user = db().get(User, token.row.user_id)
        return user is not None and user.org_id == client.row.org_id

    def introspect_token(self, token: Access | Refresh) -> dict[str, Any]:
        if isinstance(token, Access):
            return {**token.claims, "active": True, "token_type": "Bearer"}
        row = token.row
        return {
            "active": True,
            "token_type": "refresh_token",
            "client_id": row.client_id,
            "sub": row.user_id,
            "scope": row.scope,
            "exp": int(row.expires_at.timestamp()),
            "iat": int(row.created_at.timestamp()),
        }


def init_app(app: Flask) -> AuthorizationServer:
    """Attach the authorization server to ``app`` (``app.extensions["identity.oauth"]``)."""
    server = AuthorizationServer()
    server.init_app(app, query_client=query_client, save_token=save_token)
    server.register_token_generator("default", generate_token)
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(AuthorizationCodeGrant, [PkceS256(required=True)])
    server.register_grant(RefreshTokenGrant)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    app.extensions["identity.oauth"] = server
    return server
