"""OAuth 2 endpoints (token, authorize, revoke, introspect), discovery metadata and the JWKS."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from authlib.oauth2 import OAuth2Error
from flask import Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from flask_smorest import Blueprint
from sqlalchemy import select

from identity import keys, pages, ratelimit, services
from identity.api.schemas import OAuthError
from identity.models import Organization, User
from identity.oauth import Client
from identity.permissions import PERMISSIONS
from lms_common.api import runtime, unit_of_work
from lms_common.errors import problem_response

blp = Blueprint("oauth", __name__, url_prefix="/", description="OAuth 2 authorization server")

TOKEN_RATE_PER_MINUTE = int(os.environ.get("LMS_IDENTITY_TOKEN_RATE_PER_MINUTE", "600"))


def server() -> Any:
    """The authlib authorization server wired up by create_app (authlib carries no types)."""
    return current_app.extensions["identity.oauth"]


def metadata() -> dict[str, object]:
    """RFC 8414 authorization server metadata."""
    issuer = runtime().settings.issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "scopes_supported": list(PERMISSIONS),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
    }


@blp.route("/.well-known/oauth-authorization-server")
@blp.response(200)
def authorization_server_metadata() -> ResponseReturnValue:
    """RFC 8414 authorization server metadata"""
    return jsonify(metadata())


@blp.route("/.well-known/openid-configuration")
@blp.response(200)
def openid_configuration() -> ResponseReturnValue:
    """The same metadata at the OpenID discovery address"""
    return jsonify(metadata())


@blp.route("/.well-known/jwks.json")
@blp.response(200)
def jwks() -> ResponseReturnValue:
    """The public signing keys: the active one and, during a rotation, the retiring one"""
    with unit_of_work() as session:
        keys.active_key(session)  # a fresh installation publishes its first key at once
        body = keys.jwks(session)
    response = jsonify(body)
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


@blp.route("/oauth/token", methods=["POST"])
@blp.response(200)
@blp.alt_response(400, schema=OAuthError, description="RFC 6749 error")
@blp.alt_response(401, schema=OAuthError, description="RFC 6749 error: the client is not authenticated")
def token() -> ResponseReturnValue:
    """Token endpoint: client_credentials, authorization_code (PKCE S256), refresh_token"""
    with unit_of_work() as session:
        bucket = f"token:{request.remote_addr}"
        if ratelimit.over_limit(session, bucket, TOKEN_RATE_PER_MINUTE, timedelta(minutes=1)):
            return _too_many("too many token requests; slow down")
    # The rate-limit row is committed on its own: a failed grant must still count.
    with unit_of_work() as session:
        g.db = session
        return server().create_token_response()


@blp.route("/oauth/revoke", methods=["POST"])
@blp.response(200)
@blp.alt_response(400, schema=OAuthError, description="RFC 6749 error")
@blp.alt_response(401, schema=OAuthError, description="RFC 6749 error: the client is not authenticated")
def revoke() -> ResponseReturnValue:
    """RFC 7009 revocation of an access or refresh token"""
    with unit_of_work() as session:
        g.db = session
        return server().create_endpoint_response("revocation")


@blp.route("/oauth/introspect", methods=["POST"])
@blp.response(200)
@blp.alt_response(400, schema=OAuthError, description="RFC 6749 error")
@blp.alt_response(401, schema=OAuthError, description="RFC 6749 error: the client is not authenticated")
def introspect() -> ResponseReturnValue:
    """RFC 7662 introspection (for clients of the token's organization)"""
    with unit_of_work() as session:
        g.db = session
        return server().create_endpoint_response("introspection")


@blp.route("/oauth/authorize", methods=["GET", "POST"])
@blp.response(200)
@blp.alt_response(400, schema=OAuthError, description="RFC 6749 error, or the form's CSRF check failed (problem)")
def authorize() -> ResponseReturnValue:
    """Authorization endpoint: the login form, then the code (trusted clients skip consent)"""
    with unit_of_work() as session:
        g.db = session
        try:
            grant = server().get_consent_grant(end_user=None)
        except OAuth2Error as error:
            return server().handle_error_response(None, error)
        secret = pages.instance_secret(session, "csrf")
        if request.method == "GET":
            return _login_page(secret, grant)
        if not pages.csrf_ok(secret):
            return problem_response(400, detail="the form has expired or was not ours; reload the page", code="csrf")
        if "consent_ticket" in request.form:
            return _consent_decision(session, secret, grant)
        return _login(session, secret, grant)


def _login_page(secret: str, grant, error: str | None = None, status: int = 200) -> Response:  # type: ignore[no-untyped-def]
    return pages.render(
        secret,
        "Sign in",
        pages.LOGIN,
        status,
        redirect_uri=grant.redirect_uri,
        client_name=grant.client.row.name,
        error=error,
        email=request.form.get("email", ""),
    )


def _login(session, secret: str, grant) -> Response:  # type: ignore[no-untyped-def]
    email = request.form.get("email", "").strip()
    if ratelimit.login_blocked(session, email, request.remote_addr):
        return _too_many("too many failed sign-ins; try again in 15 minutes")
    client: Client = grant.client
    orgs = [
        client.row.org_id,
        *session.scalars(select(Organization.id).where(Organization.parent_id == client.row.org_id)),
    ]
    user = services.authenticate(session, orgs, email, request.form.get("password", ""))
    if user is None:
        ratelimit.record_failed_login(session, email, request.remote_addr)
        return _login_page(secret, grant, "The email or password is not right.", 401)
    if client.row.trusted:
        return server().create_authorization_response(grant=grant, grant_user=user)
    ticket = pages.consent_ticket(secret, user.id, client.row.client_id)
    return pages.render(
        secret,
        "Allow access?",
        pages.CONSENT,
        redirect_uri=grant.redirect_uri,
        client_name=client.row.name,
        scope=grant.request.scope,
        ticket=ticket,
    )


def _consent_decision(session, secret: str, grant) -> Response:  # type: ignore[no-untyped-def]
    user_id = pages.read_consent_ticket(secret, request.form["consent_ticket"], grant.client.row.client_id)
    user = session.get(User, user_id) if user_id else None
    if user is None:
        return _login_page(secret, grant, "Please sign in again.", 401)
    allowed = request.form.get("consent") == "allow"
    return server().create_authorization_response(
        grant=grant, grant_user=services.login_user(user, session) if allowed else None
    )


def _too_many(detail: str) -> Response:
    return problem_response(429, detail=detail, code="rate_limited", headers={"Retry-After": "60"})
