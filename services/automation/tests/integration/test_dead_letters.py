"""A poison message in a service's queue shows in the dead-letter view with its reason, original
routing key and payload, and is replayed to that queue once the cause is fixed."""

import threading
import uuid

import pika
import pytest
from integration_helpers import ORG, start_consumer

from automation.service import SERVICE
from lms_common import migrations
from lms_common.consumer import Consumer
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import make_engine, make_session_factory
from lms_common.envelope import Event
from lms_common.messaging import Topology
from lms_common.processing import MessageProcessor, Reject
from lms_common.testing import wait_until


class FlakyEnrollment:
    """Stands in for enrollment: refuses GrantProduct until its cause is fixed."""

    def __init__(self) -> None:
        self.fixed = threading.Event()
        self.handled: list[str] = []

    def grant(self, _session, event) -> None:
        if not self.fixed.is_set():
            raise Reject(f"no product {event.data['product_id']}")
        self.handled.append(event.id)


@pytest.fixture()
def enrollment(broker_settings, tmp_path):
    url = f"sqlite:///{tmp_path / 'enrollment.sqlite3'}"
    migrations.upgrade(SERVICE.migrations, url)  # any service's schema has the inbox it needs
    settings = broker_settings("enrollment", url)
    fake = FlakyEnrollment()
    processor = MessageProcessor(
        "enrollment", make_session_factory(make_engine(url)), {"GrantProduct": fake.grant}, SUITE_EVENTS
    )
    consumer = Consumer(settings, Topology.for_service(settings, ["automation.GrantProduct"]), processor)
    thread = start_consumer(consumer)
    yield settings, fake
    consumer.stop()
    thread.join(timeout=10)


def publish(amqp_url, exchange, routing_key, body):
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    connection.channel().basic_publish(exchange, routing_key, body, pika.BasicProperties(message_id=str(uuid.uuid4())))
    connection.close()


def grant_command():
    data = {"natural_key": "invoice:INV-1:product:p", "product_id": str(uuid.uuid4()), "owner": {"email": "a@b.co"},
            "source_event_id": "e-1", "source_event_type": "InvoicePaid", "rule_id": None}  # fmt: skip
    return Event(type="GrantProduct", data=data, orgid=ORG, source="/automation")


def test_a_poison_message_is_listed_and_replayed_after_the_fix(settings, call, enrollment, amqp_url):
    enrollment_settings, fake = enrollment
    command = grant_command()
    publish(amqp_url, settings.exchange, "automation.GrantProduct", command.to_json())
    publish(amqp_url, settings.exchange, "automation.GrantProduct", b"\xffnot an event")

    def listed():
        items = call("get", "/v1/dead-letters?service=enrollment", 200, scope="automation:read settings:write")["items"]
        return items if len(items) == 2 else None

    letters = {letter["event_type"]: letter for letter in wait_until(listed, timeout=20, interval=0.3)}
    letter = letters["GrantProduct"]
    assert letter["reason"].startswith("rejected by handler: no product")
    assert letter["original_routing_key"] == "automation.GrantProduct"
    assert letter["original_queue"] == enrollment_settings.queue and letter["org_id"] == ORG
    assert letter["payload"]["id"] == command.id and letter["payload"]["data"] == dict(command.data)
    assert "not JSON" in letters[None]["reason"] or "UTF-8" in letters[None]["reason"]
    # Without settings:write the letter of no organization is not shown.
    assert [x["id"] for x in call("get", "/v1/dead-letters?drain=false", 200)["items"]] == [letter["id"]]

    fake.fixed.set()
    replayed = call("post", f"/v1/dead-letters/{letter['id']}/replay", 200, json={})
    assert replayed["status"] == "replayed" and replayed["replay_count"] == 1
    wait_until(lambda: fake.handled == [command.id], timeout=15)
    assert call("post", "/v1/dead-letters/purge", 200, scope="automation:write settings:write", json={"all": True}) == {
        "count": 2
    }
    assert call("get", "/v1/dead-letters", 200)["items"] == []
