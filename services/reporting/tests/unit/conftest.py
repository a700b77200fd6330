"""A migrated SQLite database, the processor fed through the in-memory bus, and callers."""

from __future__ import annotations

import dataclasses
import sys
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from lms_common import migrations
from lms_common.config import Settings
from lms_common.contracts import SUITE_EVENTS
from lms_common.envelope import Event
from lms_common.memorybus import InMemoryBus
from lms_common.processing import Outcome
from lms_common.testing import TEST_ISSUER, TestKeys
from reporting.service import SERVICE

sys.path.insert(0, str(Path(__file__).parent))


class Feeder:
    """Publishes events onto an in-memory bus and drains them through reporting's processor."""

    def __init__(self, app: Any):
        self.bus = InMemoryBus()
        self.bus.bind("reporting", SERVICE.routing_keys())
        self.processor = SERVICE.processor(app.extensions["lms"])

    def __call__(self, events: Iterable[Event], batch_size: int = 7) -> list[Outcome]:
        for event in events:
            self.bus.publish_event(event, SUITE_EVENTS)
        results = self.bus.drain("reporting", self.processor, batch_size=batch_size)
        assert not self.bus.dead_letters["reporting"], self.bus.dead_letters["reporting"]
        return [result.outcome for result in results]


class Caller:
    def __init__(self, client: Any, token: str):
        self.client, self.headers = client, {"Authorization": f"Bearer {token}"}

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def json(self, url: str, status: int = 200) -> Any:
        response = self.get(url)
        assert response.status_code == status, response.get_json()
        return response.get_json()


@pytest.fixture(scope="session")
def keys() -> TestKeys:
    return TestKeys()


@pytest.fixture()
def settings(sqlite_url: str, tmp_path: Path) -> Settings:
    migrations.upgrade(SERVICE.migrations, sqlite_url)
    base = Settings.from_env("reporting", env={})
    return dataclasses.replace(base, database_url=sqlite_url, issuer=TEST_ISSUER, var_dir=tmp_path / "var")


@pytest.fixture()
def app(settings: Settings, keys: TestKeys) -> Any:
    return SERVICE.create_app(settings, key_source=keys)


@pytest.fixture()
def feed(app: Any) -> Feeder:
    return Feeder(app)


@pytest.fixture()
def as_user(app: Any, keys: TestKeys) -> Callable[..., Caller]:
    """``as_user(scope, org=..., sub=..., **claims)``: a caller with such a token."""

    def make(scope: str, org: str = "org-1", sub: str | None = None, **claims: Any) -> Caller:
        token = keys.mint(sub=sub or str(uuid.uuid4()), org=org, scope=scope, **claims)
        return Caller(app.test_client(), token)

    return make
