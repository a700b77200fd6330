"""Tokens made by the attacker: signed with identity's key but wrong in one respect, or signed
with keys identity never had, or not signed at all."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from functools import cache
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

ALL_PERMISSIONS = (
    "catalog:read catalog:write enrollment:read enrollment:write identity:read identity:write roles:write "
    "automation:read automation:write reports:read events:publish settings:write content:grant learner"
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode())


def claims(issuer: str, org: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": issuer,
        "sub": f"attacker-{uuid.uuid4().hex[:8]}",
        "aud": "lms",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
        "client_id": "attacker",
        "scope": ALL_PERMISSIONS,
        "org": org,
    }
    return {key: value for key, value in {**base, **overrides}.items() if value is not None}


def sign(key: dict[str, Any], payload: dict[str, Any], **header: Any) -> str:
    private = RSAKey.import_key(key)
    full = {"alg": "RS256", "typ": "at+jwt", "kid": key["kid"], **header}
    full = {name: value for name, value in full.items() if value is not None}
    return jwt.encode(full, payload, private)


@cache
def stranger_key() -> dict[str, Any]:
    return dict(RSAKey.generate_key(2048, parameters={"kid": "k20991231-deadbeef"}, private=True).as_dict(private=True))


def unsigned(key: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64json({'alg': 'none', 'typ': 'at+jwt', 'kid': key['kid']})}.{b64json(payload)}."


def hs256_with_public_key(key: dict[str, Any], payload: dict[str, Any]) -> str:
    """HMAC keyed with the verifier's public key, in the PEM and the JWKS forms."""
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'at+jwt', 'kid': key['kid']})}.{b64json(payload)}"
    secret = RSAKey.import_key(key).as_pem(private=False)
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"
