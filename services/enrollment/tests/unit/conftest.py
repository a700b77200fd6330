"""An app on a migrated SQLite database, callers with tokens, and a bus into the handlers."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from enrollment.app import create_app
from enrollment.service import SERVICE
from lms_common import migrations
from lms_common.config import Settings
from lms_common.testing import TEST_ISSUER, TestKeys

# Helpers shared by the tests (pytest runs with --import-mode=importlib: no package imports).
sys.path.insert(0, str(Path(__file__).parent))

from enrollment_helpers import ADMIN, LEARNER, ORG, Bus, Caller, new_id


@pytest.fixture(scope="session")
def keys() -> TestKeys:
    return TestKeys()


@pytest.fixture()
def settings(sqlite_url: str, tmp_path: Path) -> Settings:
    migrations.upgrade(SERVICE.migrations, sqlite_url)
    base = Settings.from_env("enrollment", env={})
    return dataclasses.replace(base, database_url=sqlite_url, issuer=TEST_ISSUER, var_dir=tmp_path / "var")


@pytest.fixture()
def app(settings: Settings, keys: TestKeys) -> Any:
    return create_app(settings, key_source=keys)


@pytest.fixture()
def bus(settings: Settings, keys: TestKeys) -> Bus:
    return Bus(SERVICE.processor(SERVICE.runtime(settings, keys)))


@pytest.fixture()
def as_user(app: Any, keys: TestKeys) -> Callable[..., Caller]:
    """``as_user(scope, org=..., user=...)``: a caller holding those permissions."""

    def make(scope: str, org: str = ORG, user: str | None = None, **claims: Any) -> Caller:
        user = user or new_id()
        return Caller(app.test_client(), keys.mint(sub=user, org=org, scope=scope, **claims), user)

    return make


@pytest.fixture()
def admin(as_user: Callable[..., Caller]) -> Caller:
    return as_user(ADMIN)


@pytest.fixture()
def learner(as_user: Callable[..., Caller], bus: Bus) -> Caller:
    caller = as_user(LEARNER)
    bus.user(caller.user)
    return caller
