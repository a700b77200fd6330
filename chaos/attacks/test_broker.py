"""Forged events on the bus: the broker itself refuses them under the suite's users."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any as Broker

import pika
import pytest
import requests
from attack_world import Ledger, World


def event(event_type: str, data: dict[str, object], org: str) -> tuple[str, bytes]:
    event_id = str(uuid.uuid4())
    body = {
        "specversion": "1.0",
        "id": event_id,
        "source": "/attacker",
        "type": event_type,
        "time": datetime.now(UTC).isoformat(),
        "orgid": org,
        "data": data,
    }
    return event_id, json.dumps(body).encode()


def publish(url: str, exchange: str, routing_key: str, body: bytes, message_id: str) -> str:
    """Publish with confirms as ``url``'s user: "confirmed", or the broker's refusal."""
    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
    except pika.exceptions.AMQPError as exc:
        return f"connection refused: {exc!r}"
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        properties = pika.BasicProperties(
            content_type="application/cloudevents+json", message_id=message_id, delivery_mode=2
        )
        channel.basic_publish(exchange, routing_key, body, properties=properties)
        return "confirmed"
    except pika.exceptions.ChannelClosedByBroker as exc:
        return f"{exc.reply_code} {exc.reply_text.split(' - ')[0]}"
    finally:
        if connection.is_open:
            connection.close()


def try_channel(url: str, action: str, queue: str) -> str:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        if action == "declare":
            channel.queue_declare(queue, durable=True)
        else:
            channel.basic_get(queue, auto_ack=False)
        return "allowed"
    except pika.exceptions.ChannelClosedByBroker as exc:
        return f"{exc.reply_code} {exc.reply_text.split(' - ')[0]}"
    finally:
        if connection.is_open:
            connection.close()


@pytest.fixture()
def users(broker: Broker | None) -> Broker:
    if broker is None:
        pytest.skip("rabbitmqctl cannot be run here: the suite's broker users were not applied")
    return broker


def test_forged_events_are_refused_by_the_broker(world: World, users: Broker, ledger: Ledger) -> None:
    org = world.ids["org_id"]
    disable = {"user_id": world.ids["user_id"], "disabled_at": datetime.now(UTC).isoformat()}
    attempts = [
        ("lms-hr", "lms.events", "identity.UserDisabled", "UserDisabled", disable),
        ("lms-billing", "lms.events", "enrollment.ProductGranted", "ProductGranted", {}),
        ("lms-billing", "lms.events", "hr.EmployeeOnboarded", "EmployeeOnboarded", {}),
        ("lms-reporting", "lms.events", "identity.UserDisabled", "UserDisabled", disable),
        ("lms-catalog", "lms.events", "identity.UserDisabled", "UserDisabled", disable),
        ("lms-billing", "", "enrollment", "GrantProduct", {}),
        ("lms-billing", "lms.events.dead", "enrollment.dead", "GrantProduct", {}),
    ]
    for user, exchange, key, event_type, data in attempts:
        event_id, body = event(event_type, data, org)
        outcome = publish(users.url(user), exchange, key, body, event_id)
        shown = exchange or "(default exchange)"
        ledger.record(
            "broker", f"{user} publishes {key} to {shown}", "403 ACCESS_REFUSED", outcome, outcome.startswith("403")
        )
    for user, action, queue in (
        ("lms-billing", "declare", "stolen"),
        ("lms-hr", "read", "identity"),
        ("lms-reporting", "read", "enrollment"),
    ):
        outcome = try_channel(users.url(user), action, queue)
        ledger.record(
            "broker", f"{user} {action}s queue {queue}", "403 ACCESS_REFUSED", outcome, outcome.startswith("403")
        )
    me = requests.get(
        world.suite.url("identity", f"/v1/users/{world.ids['user_id']}"), headers=world.admin, timeout=30
    ).json()
    ledger.record(
        "broker",
        "the user named in the forged UserDisabled",
        "still enabled",
        f"disabled={me.get('disabled')}",
        me.get("disabled") is False,
    )


def test_the_legitimate_publisher_still_gets_through(world: World, users: Broker, ledger: Ledger) -> None:
    email = f"buyer-{uuid.uuid4().hex[:8]}@attack.test"
    data = {
        "invoice_id": f"INV-{uuid.uuid4().hex[:8]}",
        "buyer": {"email": email, "first_name": "Ada", "last_name": "Buyer"},
        "lines": [{"product_id": world.ids.get("product_id", str(uuid.uuid4())), "quantity": 1}],
        "invitees": [],
        "paid_at": datetime.now(UTC).isoformat(),
    }
    event_id, body = event("InvoicePaid", data, world.ids["org_id"])
    outcome = publish(users.url("lms-billing"), "lms.events", "billing.InvoicePaid", body, event_id)
    ledger.record("broker", "lms-billing publishes billing.InvoicePaid", "confirmed", outcome, outcome == "confirmed")
    found: list[object] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not found:
        listing = requests.get(
            world.suite.url("identity", "/v1/users"), params={"email": email}, headers=world.admin, timeout=30
        )
        found = listing.json().get("items", []) if listing.status_code == 200 else []
        time.sleep(0 if found else 1)
    ledger.record(
        "broker",
        "the buyer provisioned by identity's worker (its own user)",
        "1 user",
        f"{len(found)} users",
        len(found) == 1,
    )
