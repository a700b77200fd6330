"""The server-rendered pages of the authorization endpoint, and their CSRF protection.

CSRF uses a signed double submit: a random nonce in an HttpOnly cookie and its HMAC under a
secret only the server knows in the form. A forged form cannot carry the HMAC of the victim's
cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from flask import Response, make_response, render_template_string, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from identity.models import InstanceSecret

CSRF_COOKIE = "lms_csrf"
CONSENT_SECONDS = 300

LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:24rem;margin:4rem auto}
label,input,button{display:block;width:100%;margin:.4rem 0}.error{color:#a00}</style></head>
<body><h1>{{ title }}</h1>{{ body|safe }}</body></html>"""

LOGIN = """{% if error %}<p class="error" id="error" role="alert">{{ error }}</p>{% endif %}
<p>Sign in to continue to <strong>{{ client_name }}</strong>.</p>
<form method="post" action="{{ action }}" id="login">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required value="{{ email }}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" id="submit">Sign in</button></form>"""

CONSENT = """<p><strong>{{ client_name }}</strong> asks to act for you with: {{ scope or "no permissions" }}.</p>
<form method="post" action="{{ action }}"><input type="hidden" name="csrf_token" value="{{ csrf }}">
<input type="hidden" name="consent_ticket" value="{{ ticket }}">
<button type="submit" name="consent" value="allow" id="allow">Allow</button>
<button type="submit" name="consent" value="deny" id="deny">Deny</button></form>"""


def instance_secret(session: Session, name: str) -> str:
    """A secret shared by every API process, created once in the database."""
    row = session.get(InstanceSecret, name)
    if row is not None:
        return row.value
    try:
        with session.begin_nested():
            session.add(InstanceSecret(name=name, value=secrets.token_urlsafe(48)))
    except IntegrityError:  # another process made it first
        pass
    return session.get(InstanceSecret, name).value  # type: ignore[union-attr]


def _csrf_value(secret: str, nonce: str) -> str:
    return hmac.new(secret.encode(), nonce.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: str) -> bool:
    nonce = request.cookies.get(CSRF_COOKIE, "")
    given = request.form.get("csrf_token", "")
    return bool(nonce) and hmac.compare_digest(_csrf_value(secret, nonce), given)


def render(
    secret: str, title: str, template: str, status: int = 200, redirect_uri: str | None = None, **values: object
) -> Response:
    """A page with a fresh CSRF nonce cookie and its token in the form.

    Browsers apply ``form-action`` to the redirects that follow a form post too, so a page whose
    form ends in a redirect to the client must name the client's origin there.
    """
    nonce = secrets.token_urlsafe(24)
    body = render_template_string(template, csrf=_csrf_value(secret, nonce), action=request.full_path, **values)
    response = make_response(render_template_string(LAYOUT, title=title, body=body), status)
    response.set_cookie(CSRF_COOKIE, nonce, httponly=True, samesite="Lax", secure=request.is_secure, path="/oauth")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    form_action = " ".join(["'self'", *([_origin(redirect_uri)] if redirect_uri else [])])
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'unsafe-inline'; form-action {form_action}"
    )
    return response


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


def consent_ticket(secret: str, user_id: str, client_id: str) -> str:
    return URLSafeTimedSerializer(secret, salt="consent").dumps({"user": user_id, "client": client_id})


def read_consent_ticket(secret: str, ticket: str, client_id: str) -> str | None:
    """The user id the ticket vouches for, if it is genuine, fresh, and for this client."""
    try:
        data = URLSafeTimedSerializer(secret, salt="consent").loads(ticket, max_age=CONSENT_SECONDS)
    except BadSignature:
        return None
    return str(data["user"]) if data.get("client") == client_id else None
