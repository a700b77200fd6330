"""Fixtures of the integration tests: a migrated PostgreSQL database, isolated bus settings,
a tap on the exchange, and the fixture service run in a thread or as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fixture_service import SERVICE  # noqa: E402

from lms_common import migrations  # noqa: E402
from lms_common.config import Settings  # noqa: E402
from lms_common.consumer import Consumer  # noqa: E402
from lms_common.envelope import Event  # noqa: E402
from lms_common.service import Runtime  # noqa: E402
from lms_common.testing import wait_until  # noqa: E402


def ping(n: int, **data: Any) -> Event:
    return Event(type="Ping", data={"n": n, **data}, orgid="org-1", source="/test")


@pytest.fixture()
def db_url(postgres_url: str) -> str:
    migrations.upgrade(SERVICE.migrations, postgres_url)
    return postgres_url


@pytest.fixture()
def settings(broker_settings: Callable[..., Settings], db_url: str) -> Settings:
    settings = broker_settings("fixture", db_url, serve_metrics=False, consumer_max_attempts=5)
    SERVICE.declare_topology(settings)
    return settings


@pytest.fixture()
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = SERVICE.runtime(settings)
    yield rt
    rt.engine.dispose()


@dataclass
class Received:
    routing_key: str
    message_id: str | None
    headers: dict[str, Any]
    body: bytes

    @property
    def event_id(self) -> str:
        return str(json.loads(self.body)["id"])


class Bus:
    """The test's own connection: publish like an outside system, read queues, tap the exchange."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()
        self.tap_queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(self.tap_queue, settings.exchange, routing_key="#")

    def publish(self, routing_key: str, body: bytes, message_id: str | None = None) -> None:
        properties = pika.BasicProperties(message_id=message_id, delivery_mode=pika.DeliveryMode.Persistent)
        self.channel.basic_publish(self.settings.exchange, routing_key, body, properties=properties)

    def publish_event(self, event: Event) -> None:
        self.publish(SERVICE.catalog.routing_key(event), event.to_json(), event.id)

    def get_all(self, queue: str) -> list[Received]:
        received = []
        while True:
            method, properties, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                return received
            received.append(Received(method.routing_key, properties.message_id, properties.headers or {}, body))

    def tapped(self, expected: int, timeout: float = 20.0) -> list[Received]:
        """Everything the exchange routed so far, waiting until at least ``expected`` arrived."""
        seen: list[Received] = []

        def enough() -> bool:
            seen.extend(self.get_all(self.tap_queue))
            return len(seen) >= expected

        wait_until(enough, timeout=timeout)
        self.connection.process_data_events(time_limit=0.3)  # anything extra still in flight
        seen.extend(self.get_all(self.tap_queue))
        return seen

    def dead_letters(self, expected: int, timeout: float = 20.0) -> list[Received]:
        seen: list[Received] = []

        def enough() -> bool:
            seen.extend(self.get_all(self.settings.dead_letter_queue))
            return len(seen) >= expected

        wait_until(enough, timeout=timeout)
        return seen

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


@pytest.fixture()
def bus(settings: Settings) -> Iterator[Bus]:
    bus = Bus(settings)
    yield bus
    bus.close()


@contextmanager
def consuming(settings: Settings, rt: Runtime) -> Iterator[Consumer]:
    """The fixture service's consumer running in a thread for the block."""
    consumer = Consumer(settings, SERVICE.topology(settings), SERVICE.processor(rt))
    thread = threading.Thread(target=consumer.run, name="consumer", daemon=True)
    thread.start()
    try:
        wait_until(consumer.connected.is_set, timeout=10)
        yield consumer
    finally:
        consumer.stop()
        thread.join(timeout=15)
        assert not thread.is_alive(), "consumer did not stop"


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "LMS_FIXTURE_DATABASE_URL": settings.database_url,
        "LMS_AMQP_URL": settings.amqp_url,
        "LMS_EXCHANGE": settings.exchange,
        "LMS_QUEUE_PREFIX": settings.queue_prefix,
        "LMS_SERVE_METRICS": "0",
        "LMS_RELAY_POLL_SECONDS": "0.2",
        "LMS_CONSUMER_RETRY_BASE_SECONDS": "0.05",
        "LMS_LOG_LEVEL": "WARNING",
        **extra,
    }


def spawn(settings: Settings, command: str, **extra_env: str) -> subprocess.Popen[bytes]:
    """Run the fixture service's ``worker`` or ``relay`` as a real process."""
    return subprocess.Popen(
        [sys.executable, str(HERE / "fixture_service.py"), command],
        env=process_env(settings, **extra_env),
        cwd=HERE,
        stdout=subprocess.DEVNULL,
    )
