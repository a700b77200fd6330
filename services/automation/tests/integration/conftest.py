"""Automation on PostgreSQL and RabbitMQ: an app, its worker in a thread, and the relay."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from automation.app import create_app
from automation.service import SERVICE
from lms_common import migrations
from lms_common.config import Settings
from lms_common.consumer import Consumer
from lms_common.testing import TestKeys

sys.path.insert(0, str(Path(__file__).parent))

from integration_helpers import ORG, start_consumer


@pytest.fixture()
def settings(postgres_url: str, broker_settings: Callable[..., Settings], tmp_path: Any) -> Settings:
    migrations.upgrade(SERVICE.migrations, postgres_url)
    return broker_settings("automation", postgres_url, var_dir=tmp_path)


@pytest.fixture()
def keys() -> TestKeys:
    return TestKeys()


@pytest.fixture()
def call(settings: Settings, keys: TestKeys) -> Callable[..., Any]:
    """``call(method, url, status, scope=..., **kwargs)``: the JSON of an answer that must have that status."""
    client = create_app(settings, key_source=keys).test_client()

    def request(
        method: str, url: str, status: int, scope: str = "automation:read automation:write", **kwargs: Any
    ) -> Any:
        token = keys.mint(sub=str(uuid.uuid4()), org=ORG, scope=scope)
        response = getattr(client, method)(url, headers={"Authorization": f"Bearer {token}"}, **kwargs)
        assert response.status_code == status, response.get_json()
        return response.get_json()

    return request


@pytest.fixture()
def worker(settings: Settings) -> Iterator[Consumer]:
    consumer = Consumer(settings, SERVICE.topology(settings), SERVICE.processor(SERVICE.runtime(settings)))
    thread = start_consumer(consumer)
    yield consumer
    consumer.stop()
    thread.join(timeout=10)
