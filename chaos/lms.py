"""Driving the suite under faults: publishing outside facts with confirms, reading effects, draining."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pika
import requests
import sqlalchemy as sa
from harness import RELAYS, WORKERS, Suite
from sqlalchemy.engine import make_url

from lms_common.db import new_id
from lms_common.envelope import Event

OUTBOX_SERVICES = RELAYS


def cloud_event(kind: str, source: str, org: str, data: dict[str, object], event_id: str | None = None) -> dict:
    """An outside system's event as the body a test may still tamper with."""
    return Event(type=kind, data=data, orgid=org, source=source, id=event_id or new_id()).to_dict()


def invoice_paid(org: str, product_id: str, number: int, run: str, event_id: str | None = None) -> dict:
    data = {
        "invoice_id": f"INV-{run}-{number}",
        "buyer": {"email": f"buyer-{run}-{number}@example.com", "first_name": "Ada", "last_name": f"N{number}"},
        "lines": [{"product_id": product_id, "quantity": 1}],
        "paid_at": datetime.now(UTC).isoformat(),
    }
    return cloud_event("InvoicePaid", "/billing", org, data, event_id)


@dataclass
class Message:
    routing_key: str
    body: bytes
    message_id: str


def as_message(event: dict) -> Message:
    domain = {"InvoicePaid": "billing"}.get(event["type"], "hr")
    return Message(f"{domain}.{event['type']}", json.dumps(event).encode(), event["id"])


@dataclass
class Publisher:
    """Publishes with confirms and the mandatory flag; across broker outages it reconnects and
    publishes the unconfirmed message again (the event id makes a second copy a duplicate)."""

    amqp_url: str
    exchange: str
    confirmed: int = 0
    retries: int = 0
    _connection: pika.BlockingConnection | None = None
    _channel: object = None

    def _open(self) -> None:
        self._connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        channel = self._connection.channel()
        channel.confirm_delivery()
        self._channel = channel

    def publish(self, message: Message, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        properties = pika.BasicProperties(
            content_type="application/cloudevents+json", message_id=message.message_id, delivery_mode=2
        )
        while True:
            try:
                if self._channel is None:
                    self._open()
                self._channel.basic_publish(  # type: ignore[attr-defined]
                    self.exchange, message.routing_key, message.body, properties=properties, mandatory=True
                )
                self.confirmed += 1
                return
            except (pika.exceptions.AMQPError, OSError) as exc:
                self.retries += 1
                self.close()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"could not publish {message.message_id}") from exc
                time.sleep(1.0)

    def publish_all(self, messages: Iterable[Message]) -> None:
        for message in messages:
            self.publish(message)

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception):  # already gone with the broker
                connection.close()


@dataclass
class Lms:
    """Reads the suite's state straight from its databases and its broker (the private ones)."""

    suite: Suite
    rabbit_ctl: Callable[..., str]
    engines: dict[str, sa.Engine] = field(default_factory=dict)

    def db(self, service: str) -> sa.Engine:
        if service not in self.engines:
            url = make_url(self.suite.env[f"LMS_{service.upper()}_DATABASE_URL"])
            self.engines[service] = sa.create_engine(url, pool_pre_ping=True, pool_size=2)
        return self.engines[service]

    def scalar(self, service: str, sql: str, **params: object) -> int:
        for _ in range(60):  # the database may be restarting under a fault
            try:
                with self.db(service).connect() as connection:
                    return int(connection.execute(sa.text(sql), params).scalar() or 0)
            except sa.exc.OperationalError:
                time.sleep(1)
        raise RuntimeError(f"{service}'s database does not answer")

    def org_id(self) -> str:
        with self.db("identity").connect() as connection:
            return str(connection.execute(sa.text("SELECT id FROM organizations WHERE slug = 'default'")).scalar())

    def grants(self, product_id: str) -> int:
        return self.scalar("enrollment", "SELECT count(*) FROM grants WHERE product_id = :p", p=product_id)

    def distinct_grantees(self, product_id: str) -> int:
        return self.scalar(
            "enrollment", "SELECT count(DISTINCT user_id) FROM grants WHERE product_id = :p", p=product_id
        )

    def outbox_backlog(self) -> dict[str, int]:
        return {s: self.scalar(s, "SELECT count(*) FROM outbox") for s in OUTBOX_SERVICES}

    def queues(self) -> dict[str, int]:
        """Messages (ready and unacknowledged) in each of this suite's queues."""
        out = self.rabbit_ctl("list_queues", "-q", "--no-table-headers", "name", "messages")
        counts = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].startswith(self.suite.queue_prefix) and parts[1].isdigit():
                counts[parts[0][len(self.suite.queue_prefix) :]] = int(parts[1])
        return counts

    def token(self) -> str:
        """An access token of the bootstrap client (every scope)."""
        return self.suite.bootstrap_token()

    def dead_letters(self) -> dict[str, list[str]]:
        """The message ids of every service's dead letters, after automation drained every
        dead-letter queue into its table (as its operator view does)."""
        headers = {"Authorization": f"Bearer {self.token()}"}
        for _ in range(30):
            response = requests.get(self.suite.url("automation", "/v1/dead-letters"), headers=headers, timeout=60)
            if response.status_code == 200 and not any(self.dead_letter_queues().values()):
                break
            time.sleep(2)
        found: dict[str, list[str]] = {}
        with self.db("automation").connect() as connection:
            for service, message_id in connection.execute(sa.text("SELECT service, message_id FROM dead_letters")):
                found.setdefault(service, []).append(str(message_id))
        return found

    def unacknowledged(self, service: str) -> int:
        """Deliveries the service's workers hold without having acknowledged them yet."""
        out = self.rabbit_ctl("list_queues", "-q", "--no-table-headers", "name", "messages_unacknowledged")
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == f"{self.suite.queue_prefix}{service}" and parts[1].isdigit():
                return int(parts[1])
        return 0

    def dead_letter_queues(self) -> dict[str, int]:
        return {name[: -len(".dead")]: n for name, n in self.queues().items() if name.endswith(".dead")}

    def live_queues(self) -> dict[str, int]:
        return {name: n for name, n in self.queues().items() if not name.endswith(".dead")}

    def consumed(self, outcome: str) -> int:
        """Messages of that outcome since each worker last started (worker /metrics)."""
        total = 0
        pattern = re.compile(rf'lms_consumer_messages_total\{{[^}}]*outcome="{outcome}"[^}}]*\}} ([0-9.e+]+)')
        for service in WORKERS:
            try:
                text = self.suite.worker_metrics(service)
            except requests.RequestException:
                continue
            total += int(sum(float(v) for v in pattern.findall(text)))
        return total

    def failures(self) -> int:
        """Batches the workers rolled back and relay cycles abandoned because the database or the
        broker failed, since each process last started (worker and relay /metrics)."""
        return self._worker_and_relay_total(
            ("lms_consumer_batch_failures_total", WORKERS), ("lms_outbox_relay_failures_total", RELAYS)
        )

    def lost_database_connections(self) -> int:
        """Database connections the workers and relays found lost, since each last started."""
        return self._worker_and_relay_total(
            ("lms_database_disconnects_total", WORKERS), ("lms_database_disconnects_total", RELAYS)
        )

    def _worker_and_relay_total(
        self, of_workers: tuple[str, Iterable[str]], of_relays: tuple[str, Iterable[str]]
    ) -> int:
        total = 0
        for (metric, services), read in (
            (of_workers, self.suite.worker_metrics),
            (of_relays, self.suite.relay_metrics),
        ):
            pattern = re.compile(rf"^{metric}(\{{[^}}]*\}})? ([0-9.e+]+)$", re.MULTILINE)
            for service in services:
                try:
                    total += int(sum(float(value) for _, value in pattern.findall(read(service))))
                except requests.RequestException:
                    continue
        return total

    def wait_drained(self, done: Callable[[], bool], timeout: float) -> bool:
        """Until ``done`` holds, every outbox is empty and every live queue is empty, twice in a row."""
        deadline, calm = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            try:
                quiet = done() and not any(self.outbox_backlog().values()) and not any(self.live_queues().values())
            except (subprocess.SubprocessError, RuntimeError):
                quiet = False
            calm = calm + 1 if quiet else 0
            if calm >= 2:
                return True
            time.sleep(2)
        return False
