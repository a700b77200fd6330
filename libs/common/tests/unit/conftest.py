"""Fixtures of the libs/common unit tests: a migrated SQLite database, sessions, keys, events.

The runtime tables come from the real migration (``migrations/`` here calls
``create_runtime_tables_v1``), applied once to a template file that each test gets a copy of.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from lms_common import migrations
from lms_common.db import make_engine, make_session_factory
from lms_common.envelope import Event
from lms_common.testing import TEST_ISSUER, TestKeys

MIGRATIONS = str(Path(__file__).parent / "migrations")

# The payloads of CONTRACT section 4, and valid ones for the suite's own events.
CONTRACT_EXAMPLES: dict[str, dict[str, Any]] = {
    "InvoicePaid": {
        "invoice_id": "INV-1001",
        "buyer": {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"},
        "lines": [{"product_id": "<catalog product id>", "quantity": 1}],
        "invitees": ["bob@example.com"],
        "paid_at": "2026-11-23T10:00:00Z",
    },
    "EmployeeOnboarded": {
        "employee_id": "E-1001",
        "email": "grace@example.com",
        "first_name": "Grace",
        "last_name": "Hopper",
        "department": "Engineering",
        "job_title": "Engineer",
        "location_code": "NYC",
        "manager_email": "boss@example.com",
        "start_date": "2026-12-01",
    },
    "EmployeeOffboarded": {"employee_id": "E-1001", "email": "grace@example.com", "last_day": "2026-12-31"},
    "UserDisabled": {"user_id": "6f1c1c84-6c1e-4c39-9a43-8f1bd3f2c0a1", "disabled_at": "2026-11-23T10:00:00Z"},
    "UserEnabled": {"user_id": "6f1c1c84-6c1e-4c39-9a43-8f1bd3f2c0a1", "enabled_at": "2026-11-23T11:00:00Z"},
    "TokenRevoked": {"jti": "token-1", "expires_at": "2026-11-23T10:15:00Z"},
}


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "service.sqlite3"
    migrations.upgrade(MIGRATIONS, f"sqlite:///{path}")
    return path


@pytest.fixture()
def database_url(sqlite_url: str, migrated_template: Path) -> str:
    """A SQLite database of this test's own, holding the migrated runtime tables."""
    database = make_url(sqlite_url).database
    assert database
    shutil.copyfile(migrated_template, database)
    return sqlite_url


@pytest.fixture()
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture()
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture(scope="session")
def keys() -> TestKeys:
    return TestKeys()


@pytest.fixture()
def make_event() -> Callable[..., Event]:
    """An event of a contract type with its example payload, fields overridden as given."""

    def make(type_name: str, **data: Any) -> Event:
        return Event(type=type_name, data={**CONTRACT_EXAMPLES[type_name], **data}, orgid="org-1", source="test")

    return make


@pytest.fixture(params=sorted(CONTRACT_EXAMPLES))
def contract_event(request: pytest.FixtureRequest, make_event: Callable[..., Event]) -> Event:
    """Each contract event type in turn, with its example payload."""
    return make_event(request.param)


# --- tokens a verifier must refuse ------------------------------------------------------------


def b64(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def b64json(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode())


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": TEST_ISSUER, "sub": "user-1", "aud": "lms", "iat": now, "exp": now + 300, "org": "org-1"}
    return {**base, **overrides}


def unsigned_token(keys: TestKeys) -> str:
    return f"{b64json({'alg': 'none', 'typ': 'at+jwt', 'kid': keys.kid})}.{b64json(claims())}."


def hs256_with_public_key(keys: TestKeys) -> str:
    """The classic confusion attack: HMAC keyed with the public key the verifier holds."""
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'at+jwt', 'kid': keys.kid})}.{b64json(claims())}"
    secret = keys.signing_key.as_pem(private=False)
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def tampered(keys: TestKeys) -> str:
    header, payload, signature = keys.mint(scope="catalog:read").split(".")
    changed = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    changed["scope"] = "catalog:read catalog:write"
    return f"{header}.{b64json(changed)}.{signature}"


def without_typ(keys: TestKeys) -> str:
    return jwt.encode({"alg": "RS256", "kid": keys.kid}, claims(), keys.signing_key)


@cache
def stranger_key() -> RSAKey:
    return RSAKey.generate_key(2048)


def signed_by_another_key(keys: TestKeys) -> str:
    return jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": keys.kid}, claims(), stranger_key())


BAD_TOKENS = {
    "alg none": unsigned_token,
    "HS256 keyed with the public key": hs256_with_public_key,
    "expired": lambda keys: keys.mint(lifetime=-60),
    "not yet valid": lambda keys: keys.mint(nbf=int(time.time()) + 3600),
    "wrong issuer": lambda keys: keys.mint(issuer="http://evil.test"),
    "wrong audience": lambda keys: keys.mint(audience="billing"),
    "unknown kid": lambda keys: keys.mint(header={"kid": "retired-key"}),
    "tampered payload": tampered,
    "signed by another key": signed_by_another_key,
    "no typ": without_typ,
    "typ JWT": lambda keys: keys.mint(header={"typ": "JWT"}),
    "no exp": lambda keys: keys.mint(exp=None),
    "no iat": lambda keys: keys.mint(iat=None),
    "no org": lambda keys: keys.mint(org=""),
    "not a JWT": lambda keys: "not-a-token",
    "kid holding a path": lambda keys: keys.mint(header={"kid": "../../../../dev/null"}),
    "kid holding SQL": lambda keys: keys.mint(header={"kid": "x' OR '1'='1"}),
    "jku header": lambda keys: keys.mint(header={"jku": "http://127.0.0.1:9/jwks.json"}),
    "x5u header": lambda keys: keys.mint(header={"x5u": "http://127.0.0.1:9/cert.pem"}),
    "jwk header": lambda keys: keys.mint(header={"jwk": stranger_key().as_dict(private=False)}),
    "too large": lambda keys: keys.mint(padding="x" * 9000),
}


@pytest.fixture()
def mint_bad_token(keys: TestKeys) -> Callable[[str], str]:
    """A bad token of the kind named (a key of ``BAD_TOKENS``)."""
    return lambda kind: BAD_TOKENS[kind](keys)


@pytest.fixture(params=sorted(BAD_TOKENS))
def bad_token(request: pytest.FixtureRequest, keys: TestKeys) -> str:
    """Each kind of bad token in turn."""
    return BAD_TOKENS[request.param](keys)
