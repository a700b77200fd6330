"""Signing keys: one active RSA key signs, retiring keys stay in the JWKS until tokens expire."""

from __future__ import annotations

import secrets
from typing import Any

from joserfc.jwk import RSAKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from identity.models import SigningKey
from lms_common.db import session_scope, utcnow

ACTIVE = "active"
RETIRING = "retiring"
RETIRED = "retired"


def _new_key(session: Session) -> SigningKey:
    kid = f"k{utcnow():%Y%m%d}-{secrets.token_hex(4)}"
    key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"}, private=True)
    row = SigningKey(kid=kid, private_jwk=key.as_dict(private=True), status=ACTIVE, created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def active_key(session: Session) -> tuple[str, RSAKey]:
    """The key that signs new tokens (created on first use)."""
    row = session.scalars(
        select(SigningKey).where(SigningKey.status == ACTIVE).order_by(SigningKey.created_at.desc())
    ).first()
    if row is None:
        row = _new_key(session)
    return row.kid, RSAKey.import_key(row.private_jwk)


def rotate(session: Session) -> str:
    """Make a new active key; the old active one keeps being published as retiring.

    Keys that were already retiring are retired: tokens they signed expired long ago (15 min).
    """
    for row in session.scalars(select(SigningKey).where(SigningKey.status.in_([ACTIVE, RETIRING]))):
        if row.status == RETIRING:
            row.status, row.retired_at = RETIRED, utcnow()
        else:
            row.status = RETIRING
    return _new_key(session).kid


def jwks(session: Session) -> dict[str, Any]:
    """The public keys of the active and retiring keys."""
    rows = session.scalars(
        select(SigningKey).where(SigningKey.status.in_([ACTIVE, RETIRING])).order_by(SigningKey.created_at)
    )
    return {"keys": [RSAKey.import_key(row.private_jwk).as_dict(private=False) for row in rows]}


class DatabaseKeys:
    """identity's own KeySource: its published keys, read from its database (no HTTP loop)."""

    def __init__(self, session_factory: sessionmaker[Session]):
        self.session_factory = session_factory

    def key(self, kid: str) -> Any | None:
        with session_scope(self.session_factory) as session:
            row = session.get(SigningKey, kid)
            if row is None or row.status == RETIRED:
                return None
            return RSAKey.import_key(row.private_jwk)
