"""The API benchmark's baseline: a bare Flask endpoint that verifies the same access token the
same way the services do (lms_common's TokenVerifier against identity's JWKS) and nothing else.

Served by gunicorn with the services' own settings (``-c python:lms_common.gunicorn_conf``), so
the ratio of a service's requests per second to this one's is the cost of the service's work.
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from lms_common.auth import InvalidToken, JWKSCache, TokenVerifier
from lms_common.config import AUDIENCE, DEFAULT_ISSUER


def create_app() -> Flask:
    issuer = (os.environ.get("LMS_ISSUER") or DEFAULT_ISSUER).rstrip("/")
    keys = JWKSCache(os.environ.get("LMS_JWKS_URL") or f"{issuer}/.well-known/jwks.json")
    verifier = TokenVerifier(keys, issuer=issuer, audience=AUDIENCE)
    app = Flask("bare")

    @app.get("/bare")
    def bare() -> ResponseReturnValue:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return jsonify(error="no token"), 401
        try:
            principal = verifier.verify(token.strip())
        except InvalidToken as exc:
            return jsonify(error=str(exc)), 401
        return jsonify(sub=principal.subject)

    return app
