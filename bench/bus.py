"""Relay publish rate and consumer handling rate against raw pika, on this machine, in one run.

Raw ceilings: pika publishing one confirmed message at a time, pika publishing without
confirms, and pika consuming with manual acks. Ours: the outbox relay (batches of 500 with
asynchronous confirms) and the consumer (prefetched batches in one transaction, a savepoint
and an inbox row per message) with a trivial handler, both on PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pika
import sqlalchemy as sa
from sqlalchemy.orm import Session

from lms_common import migrations, outbox
from lms_common.config import Settings
from lms_common.consumer import Consumer
from lms_common.contracts import SUITE_EVENTS, TOKEN_REVOKED
from lms_common.db import make_engine, make_session_factory, session_scope
from lms_common.envelope import Event, EventCatalog
from lms_common.messaging import ConfirmingPublisher, Topology
from lms_common.processing import MessageProcessor
from lms_common.relay import Relay
from lms_common.testing import isolated_settings, scratch_database

MIGRATIONS = "services/reporting/src/reporting/migrations"  # any service: only runtime tables are used


def event(n: int) -> Event:
    return Event(
        type=TOKEN_REVOKED.name,
        data={"jti": f"bench-{n}", "expires_at": "2030-01-01T00:00:00Z"},
        orgid="bench",
        source="/bench",
    )


def raw_confirmed_publish(settings: Settings, count: int) -> float:
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    body = event(0).to_json()
    started = time.perf_counter()
    for _ in range(count):
        channel.basic_publish(settings.exchange, "bench.raw", body, pika.BasicProperties(delivery_mode=2))
    elapsed = time.perf_counter() - started
    connection.close()
    return count / elapsed


def raw_publish_and_consume(settings: Settings, count: int) -> tuple[float, float]:
    return raw_rates(settings.amqp_url, f"{settings.queue_prefix}raw", event(0).to_json(), count)


def raw_rates(amqp_url: str, queue: str, body: bytes, count: int) -> tuple[float, float]:
    """Ceilings: pika publishing ``count`` persistent messages to a quorum queue, then consuming
    them with manual acks (prefetch 200); events/s of each."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    started = time.perf_counter()
    for _ in range(count):
        channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    publish_rate = count / (time.perf_counter() - started)
    while channel.queue_declare(queue, passive=True).method.message_count < count:
        time.sleep(0.05)
    channel.basic_qos(prefetch_count=200)
    started = time.perf_counter()
    for received, (method, _properties, _body) in enumerate(channel.consume(queue), start=1):
        channel.basic_ack(method.delivery_tag)
        if received == count:
            break
    consume_rate = count / (time.perf_counter() - started)
    channel.cancel()
    channel.queue_delete(queue)
    connection.close()
    return publish_rate, consume_rate


def relay_rate(settings: Settings, count: int) -> float:
    factory = make_session_factory(make_engine(settings.database_url))
    with session_scope(factory) as session:
        outbox.add_many(session, [event(n) for n in range(count)])
    publisher = ConfirmingPublisher(settings.amqp_url, settings.exchange, app_id="bench")
    relay = Relay("bench", factory, publisher, batch_size=settings.relay_batch_size)
    started = time.perf_counter()
    published = 0
    while taken := relay.relay_once():
        published += taken
    elapsed = time.perf_counter() - started
    publisher.close()
    assert published == count, f"published {published} of {count}"
    return count / elapsed


def noop(_session: Session, _event: Event) -> None:
    """The trivial handler: the cost measured is the consumer's own."""


def consumer_rate(settings: Settings, topology: Topology, count: int) -> float:
    """Consume the ``count`` events the relay left in the service queue."""
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    channel = connection.channel()
    while channel.queue_declare(topology.queue, passive=True).method.message_count < count:
        time.sleep(0.05)
    engine = make_engine(settings.database_url)
    processor = MessageProcessor(
        "bench", make_session_factory(engine), {TOKEN_REVOKED.name: noop}, EventCatalog(SUITE_EVENTS)
    )
    consumer = Consumer(settings, topology, processor)
    thread = threading.Thread(target=consumer.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    with engine.connect() as db:
        while db.execute(sa.text("SELECT count(*) FROM inbox")).scalar_one() < count:
            time.sleep(0.02)
    elapsed = time.perf_counter() - started
    consumer.stop()
    thread.join(timeout=10)
    for queue in (topology.queue, topology.dead_letter_queue):
        channel.queue_delete(queue)
    connection.close()
    return count / elapsed


def run(admin_url: str, amqp_url: str, count: int = 20_000) -> list[tuple[str, float, str, float | None]]:
    with scratch_database(admin_url, prefix="lms_bench") as url:
        migrations.upgrade(MIGRATIONS, url)
        settings = replace(isolated_settings("bench", url, amqp_url), consumer_retry_base_seconds=0.5)
        topology = Topology.for_service(settings, [TOKEN_REVOKED.routing_key])
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        topology.declare(connection.channel())
        connection.close()
        confirmed = raw_confirmed_publish(settings, min(count, 3000))
        raw_publish, raw_consume = raw_publish_and_consume(settings, count)
        relay = relay_rate(settings, count)  # leaves its events in the service queue
        consume = consumer_rate(settings, topology, count)
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        connection.channel().exchange_delete(settings.exchange)
        connection.close()
    return [
        ("raw pika publish, one confirm at a time (events/s)", confirmed, "ceiling", None),
        ("raw pika publish, no confirms (events/s)", raw_publish, "ceiling", None),
        ("raw pika consume, manual ack (events/s)", raw_consume, "ceiling", None),
        ("outbox relay publish, confirmed (events/s)", relay, ">= 5,000/s", relay / raw_publish),
        ("consumer with inbox, trivial handler (events/s)", consume, ">= 3,000/s", consume / raw_consume),
    ]
