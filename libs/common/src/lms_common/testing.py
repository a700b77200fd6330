"""Test helpers and pytest fixtures for real servers (``pytest_plugins = ["lms_common.testing"]``).

PostgreSQL and RabbitMQ come from testcontainers when a Docker engine answers, otherwise from
the local servers named by ``LMS_TEST_DATABASE_URL`` and ``LMS_TEST_AMQP_URL`` (defaults: this
machine's). Each test gets its own database and its own exchange and queue names, so runs never
see each other's data, and everything is removed afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pika
import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy.engine import make_url

from lms_common.config import Settings
from lms_common.db import normalise_url

DEFAULT_TEST_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_TEST_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
TEST_ISSUER = "http://issuer.test"


# --- tokens -----------------------------------------------------------------------------------


class TestKeys:
    """A signing key standing in for identity's, and a minting helper for access tokens."""

    __test__ = False  # not a test class

    def __init__(self, kid: str = "test-key") -> None:
        self.signing_key = RSAKey.generate_key(2048, parameters={"kid": kid})
        self.kid = kid

    def key(self, kid: str) -> Any | None:
        return self.signing_key if kid == self.kid else None

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.signing_key.as_dict(private=False)]}

    def mint(
        self,
        *,
        sub: str | None = None,
        org: str = "org-1",
        scope: str = "",
        header: dict[str, Any] | None = None,
        issuer: str = TEST_ISSUER,
        audience: str = "lms",
        lifetime: int = 300,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": issuer,
            "sub": sub or str(uuid.uuid4()),
            "aud": audience,
            "iat": now,
            "exp": now + lifetime,
            "jti": str(uuid.uuid4()),
            "client_id": "test-client",
            "scope": scope,
            "org": org,
            **claims,
        }
        payload = {key: value for key, value in payload.items() if value is not None}
        return jwt.encode(
            {"alg": "RS256", "typ": "at+jwt", "kid": self.kid, **(header or {})}, payload, self.signing_key
        )


# --- real servers -----------------------------------------------------------------------------


def docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    if docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver="psycopg") as container:
            yield container.get_connection_url()
        return
    yield normalise_url(os.environ.get("LMS_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL))


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    if docker_answers():
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:3.13-management") as container:
            params = container.get_connection_params()
            yield f"amqp://guest:guest@{params.host}:{params.port}/%2F"
        return
    yield os.environ.get("LMS_TEST_AMQP_URL", DEFAULT_TEST_AMQP_URL)


@contextmanager
def scratch_database(admin_url: str, prefix: str = "lms_test") -> Iterator[str]:
    """A fresh, empty PostgreSQL database for the block, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture()
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with scratch_database(postgres_admin_url) as url:
        yield url


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'service.sqlite3'}"


def isolated_settings(
    service: str, database_url: str, amqp_url: str = DEFAULT_TEST_AMQP_URL, **overrides: Any
) -> Settings:
    """Settings with their own exchange and queue names, so tests never share a queue."""
    run = uuid.uuid4().hex[:10]
    base = Settings.from_env(service, env={})
    return replace(
        base,
        database_url=database_url,
        amqp_url=amqp_url,
        issuer=TEST_ISSUER,
        exchange=f"lms.test.{run}",
        queue_prefix=f"test.{run}.",
        consumer_retry_base_seconds=0.05,
        relay_poll_seconds=0.2,
        heartbeat_seconds=10,
        **overrides,
    )


def delete_broker_objects(amqp_url: str, settings: Settings) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        for queue in (settings.queue, settings.dead_letter_queue):
            channel.queue_delete(queue)
        for exchange in (settings.exchange, settings.dead_letter_exchange):
            channel.exchange_delete(exchange)
    finally:
        connection.close()


@pytest.fixture()
def broker_settings(amqp_url: str) -> Iterator[Callable[..., Settings]]:
    """A factory of isolated settings on the real broker; their queues are deleted afterwards."""
    made: list[Settings] = []

    def make(service: str, database_url: str, **overrides: Any) -> Settings:
        settings = isolated_settings(service, database_url, amqp_url, **overrides)
        if made:  # services of one test share one bus
            settings = replace(settings, exchange=made[0].exchange, queue_prefix=made[0].queue_prefix)
        made.append(settings)
        return settings

    yield make
    for settings in made:
        delete_broker_objects(amqp_url, settings)


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(interval)
