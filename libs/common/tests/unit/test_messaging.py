"""The broker-facing pieces that need no broker: topology, message properties, backoff."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pika

from lms_common.config import Settings
from lms_common.consumer import Backoff, dead_letter_headers
from lms_common.messaging import OutgoingMessage, Topology
from lms_common.processing import Delivery
from lms_common.relay import MAX_REPUBLISH_DELAY, republish_delay
from lms_common.service import ServiceDefinition


class RecordingChannel:
    """Stands in for pika's channel: records what is declared."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


def topology(*keys: str) -> Topology:
    settings = replace(Settings.from_env("enrollment", env={}), queue_prefix="t.", consumer_delivery_limit=7)
    return Topology.for_service(settings, keys)


def test_topology_names_follow_the_service() -> None:
    plan = topology("hr.EmployeeOnboarded")
    assert (plan.exchange, plan.queue) == ("lms.events", "t.enrollment")
    assert (plan.dead_letter_exchange, plan.dead_letter_queue) == ("lms.events.dead", "t.enrollment.dead")


def test_topology_binds_each_key_once_in_order() -> None:
    assert topology("hr.b", "billing.a", "hr.b").routing_keys == ("billing.a", "hr.b")


def test_work_queue_is_quorum_with_a_delivery_limit_and_dead_letters() -> None:
    assert topology().queue_arguments() == {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "lms.events.dead",
        "x-dead-letter-routing-key": "t.enrollment.dead",
        "x-delivery-limit": 7,
    }


def test_declare_makes_a_durable_topic_exchange_and_binds_the_queue() -> None:
    channel = RecordingChannel()
    topology("hr.EmployeeOnboarded", "billing.InvoicePaid").declare(channel)  # type: ignore[arg-type]
    assert ("exchange_declare", ("lms.events",), {"exchange_type": "topic", "durable": True}) in channel.calls
    bindings = [(*args, kwargs["routing_key"]) for name, args, kwargs in channel.calls if name == "queue_bind"]
    assert bindings == [
        ("t.enrollment.dead", "lms.events.dead", "t.enrollment.dead"),
        ("t.enrollment", "lms.events", "billing.InvoicePaid"),
        ("t.enrollment", "lms.events", "hr.EmployeeOnboarded"),
    ]


def test_outgoing_message_is_a_persistent_cloudevent() -> None:
    message = OutgoingMessage("hr.X", b"{}", "event-1", {"x-request-id": "r-1"}, event_type="X")
    properties = message.properties("catalog")
    assert properties.content_type == "application/cloudevents+json"
    assert properties.delivery_mode == pika.DeliveryMode.Persistent.value
    assert (properties.message_id, properties.type, properties.app_id) == ("event-1", "X", "catalog")
    assert properties.headers == {"x-request-id": "r-1"}


def test_every_service_consumes_the_deny_list_events() -> None:
    keys = ServiceDefinition(name="catalog", title="Catalog", migrations="-").routing_keys()
    assert {"identity.UserDisabled", "identity.UserEnabled", "identity.TokenRevoked"} <= set(keys)


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(base=0.5, cap=3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_republish_delay_grows_and_is_capped() -> None:
    assert republish_delay(1) < republish_delay(2) < republish_delay(3)
    assert republish_delay(30) == MAX_REPUBLISH_DELAY


def test_dead_letter_headers_keep_the_original_and_say_why() -> None:
    delivery = Delivery(b"{}", "hr.EmployeeOnboarded", "e-1", {"x-request-id": "r-1"})
    headers = dead_letter_headers(delivery, "x" * 5000, "enrollment")
    assert headers["x-request-id"] == "r-1"
    assert headers["x-lms-original-routing-key"] == "hr.EmployeeOnboarded"
    assert headers["x-lms-original-queue"] == "enrollment"
    assert len(headers["x-lms-reason"]) == 2000
