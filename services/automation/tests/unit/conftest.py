"""An app on a migrated SQLite database, callers with tokens, and an in-memory bus around it."""

from __future__ import annotations

import dataclasses
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from automation.app import create_app
from automation.service import SERVICE
from lms_common import migrations
from lms_common.config import Settings
from lms_common.testing import TEST_ISSUER, TestKeys

# Helpers shared by the tests (pytest runs with --import-mode=importlib: no package imports).
sys.path.insert(0, str(Path(__file__).parent))

from automation_helpers import ADMIN, ORG, Caller, Harness


@pytest.fixture(scope="session")
def keys() -> TestKeys:
    return TestKeys()


def make_settings(database_url: str, var_dir: Path) -> Settings:
    migrations.upgrade(SERVICE.migrations, database_url)
    base = Settings.from_env("automation", env={})
    # An AMQP URL nobody answers: the dead-letter drain gives up at once in unit tests.
    return dataclasses.replace(
        base,
        database_url=database_url,
        issuer=TEST_ISSUER,
        var_dir=var_dir,
        amqp_url="amqp://guest:guest@127.0.0.1:1/%2F",
    )


@pytest.fixture()
def settings(sqlite_url: str, tmp_path: Path) -> Settings:
    return make_settings(sqlite_url, tmp_path / "var")


@pytest.fixture()
def app(settings: Settings, keys: TestKeys) -> Any:
    return create_app(settings, key_source=keys)


@pytest.fixture()
def as_user(app: Any, keys: TestKeys) -> Callable[..., Caller]:
    """``as_user(scope, org=..., user=...)``: a caller holding those permissions."""

    def make(scope: str, org: str = ORG, user: str | None = None) -> Caller:
        user = user or str(uuid.uuid4())
        return Caller(app.test_client(), keys.mint(sub=user, org=org, scope=scope), user)

    return make


@pytest.fixture()
def admin(as_user: Callable[..., Caller]) -> Caller:
    return as_user(ADMIN)


@pytest.fixture()
def harness(settings: Settings, keys: TestKeys) -> Harness:
    return Harness(settings, keys)
