"""The whole suite as real processes, started the way `make run` starts it, on PostgreSQL and
RabbitMQ, driven only through HTTP and AMQP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from lms_common.testing import DEFAULT_TEST_AMQP_URL, DEFAULT_TEST_DATABASE_URL, wait_until

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the tests import the helpers below
SERVICES = ("identity", "catalog", "enrollment", "automation", "reporting")
WORKERS = ("identity", "catalog", "enrollment", "automation", "reporting")
RELAYS = ("identity", "catalog", "enrollment", "automation")
PORT_BASE = 18000  # away from `make run`'s 8001-8005, so both can run on one machine


@dataclass
class Suite:
    ports: dict[str, int]
    amqp_url: str
    exchange: str
    queue_prefix: str
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def worker_metrics(self, service: str) -> str:
        return requests.get(f"http://127.0.0.1:{self.ports[service] + 100}/metrics", timeout=5).text

    def relay_metrics(self, service: str) -> str:
        return requests.get(f"http://127.0.0.1:{self.ports[service] + 200}/metrics", timeout=5).text

    def publish(self, routing_key: str, body: bytes, message_id: str) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            properties = pika.BasicProperties(
                content_type="application/cloudevents+json", message_id=message_id, delivery_mode=2
            )
            channel.basic_publish(self.exchange, routing_key, body, properties=properties, mandatory=True)
        finally:
            connection.close()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="session")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    run = uuid.uuid4().hex[:8]
    admin_url = os.environ.get("LMS_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    amqp_url = os.environ.get("LMS_TEST_AMQP_URL", DEFAULT_TEST_AMQP_URL)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    databases = {service: f"lms_e2e_{run}_{service}" for service in SERVICES}
    with admin.connect() as connection:
        for name in databases.values():
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    ports = {service: PORT_BASE + i + 1 for i, service in enumerate(SERVICES)}
    env = {
        **os.environ,
        "LMS_AMQP_URL": amqp_url,
        "LMS_EXCHANGE": f"lms.e2e.{run}",
        "LMS_QUEUE_PREFIX": f"e2e.{run}.",
        "LMS_VAR_DIR": str(tmp_path_factory.mktemp("var")),
        "LMS_ISSUER": f"http://127.0.0.1:{ports['identity']}",
        "LMS_API_WORKERS": "1",
        "PYTHONUNBUFFERED": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",  # this virtualenv first
    }
    for service, name in databases.items():
        env[f"LMS_{service.upper()}_DATABASE_URL"] = (
            make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        )
        env[f"LMS_{service.upper()}_PORT"] = str(ports[service])
    log = tmp_path_factory.mktemp("logs") / "suite.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(ROOT / "deploy/local/run.sh")],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    suite = Suite(ports, amqp_url, env["LMS_EXCHANGE"], env["LMS_QUEUE_PREFIX"], process, log)
    try:
        for service in SERVICES:
            wait_until(lambda service=service: _answers(suite.url(service, "/healthz")), timeout=120, interval=0.5)
        yield suite
    finally:
        stop_suite(suite)
        _remove_broker_objects(suite)
        with admin.connect() as connection:
            for name in databases.values():
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def stop_suite(suite: Suite) -> None:
    """Ctrl-C, as a person at the terminal would; everything the suite started must exit."""
    if suite.process.poll() is None:
        os.killpg(suite.process.pid, signal.SIGINT)
        try:
            suite.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(suite.process.pid, signal.SIGKILL)
            suite.process.wait(timeout=10)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _remove_broker_objects(suite: Suite) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(suite.amqp_url))
    try:
        channel = connection.channel()
        for service in SERVICES:
            channel.queue_delete(f"{suite.queue_prefix}{service}")
            channel.queue_delete(f"{suite.queue_prefix}{service}.dead")
        channel.exchange_delete(suite.exchange)
        channel.exchange_delete(f"{suite.exchange}.dead")
    finally:
        connection.close()
