"""On PostgreSQL and RabbitMQ: the outbox reaches a real queue with the right payloads, and the
worker keeps the approved-instructor replica from identity's events."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import pika
import pytest
from sqlalchemy import select

from catalog.app import create_app
from catalog.models import Instructor
from catalog.service import SERVICE
from lms_common import migrations
from lms_common.consumer import Consumer
from lms_common.db import make_engine, make_session_factory
from lms_common.envelope import Event, format_time
from lms_common.messaging import ConfirmingPublisher
from lms_common.relay import Relay
from lms_common.testing import TestKeys, wait_until

MODERATOR = "catalog:read catalog:write content:grant"


@pytest.fixture()
def settings(postgres_url, broker_settings, tmp_path):
    migrations.upgrade(SERVICE.migrations, postgres_url)
    return broker_settings("catalog", postgres_url, var_dir=tmp_path)


@pytest.fixture()
def client(settings):
    keys = TestKeys()
    token = keys.mint(sub=str(uuid.uuid4()), org="org-9", scope=MODERATOR)
    app = create_app(settings, key_source=keys)
    return app.test_client(), {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def catalog_queue(settings, amqp_url):
    """A test queue bound to every catalog event on the run's exchange."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.exchange_declare(settings.exchange, exchange_type="topic", durable=True)
    name = f"{settings.queue_prefix}catalog-events"
    channel.queue_declare(name, auto_delete=False)
    channel.queue_bind(name, settings.exchange, routing_key="catalog.#")
    yield channel, name
    channel.queue_delete(name)
    connection.close()


def relay_all(settings: Any) -> None:
    engine = make_engine(settings.database_url)
    publisher = ConfirmingPublisher(settings.amqp_url, settings.exchange, app_id="catalog", heartbeat=10)
    try:
        relay = Relay("catalog", make_session_factory(engine), publisher)
        while relay.relay_once():
            pass
    finally:
        publisher.close()
        engine.dispose()


def read_all(channel: Any, queue: str, count: int) -> list[tuple[Any, Any, dict[str, Any]]]:
    messages: list[tuple[Any, Any, dict[str, Any]]] = []

    def more() -> bool:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is not None:
            messages.append((method, properties, json.loads(body)))
        return len(messages) >= count

    wait_until(more, timeout=10, interval=0.01)
    return messages


def call(client: Any, method: str, url: str, status: int, **kwargs: Any) -> Any:
    test_client, headers = client
    response = getattr(test_client, method)(url, headers=headers, **kwargs)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def test_outbox_events_reach_a_real_queue_with_their_payloads(client, settings, catalog_queue):
    course = call(client, "post", "/v1/courses", 201, json={"title": "Forklifts", "also_product": {"title": "Yard"}})
    module = call(client, "post", f"/v1/courses/{course['id']}/modules", 201, json={"title": "M"})
    lessons = [
        call(client, "post", f"/v1/modules/{module['id']}/lessons", 201, json={"title": t, "kind": "text", "body": t})
        for t in ("one", "two")
    ]
    for lesson in reversed(lessons):
        call(client, "post", f"/v1/lessons/{lesson['id']}/publish", 200)
    call(client, "post", f"/v1/courses/{course['id']}/publish", 200)
    call(client, "post", f"/v1/products/{course['product_id']}/activate", 200)

    relay_all(settings)
    channel, queue = catalog_queue
    messages = read_all(channel, queue, 9)
    kinds = [body["type"] for _, _, body in messages]
    assert kinds == ["CourseCreated", "ProductUpdated"] + ["CourseUpdated"] * 5 + [
        "CoursePublished",
        "ProductActivated",
    ]
    for method, properties, body in messages:
        assert method.routing_key == f"catalog.{body['type']}"
        assert properties.message_id == body["id"] and properties.content_type == "application/cloudevents+json"
        assert body["orgid"] == "org-9" and body["source"] == "/catalog" and body["specversion"] == "1.0"
    published = messages[7][2]["data"]
    assert published["lesson_ids"] == [lessons[0]["id"], lessons[1]["id"]] and published["status"] == "published"
    assert [m[2]["data"]["version"] for m in messages if m[2]["type"].startswith("Course")] == list(range(1, 8))
    activated = messages[8][2]["data"]
    assert activated == {"product_id": course["product_id"], "version": 2, "title": "Yard", "status": "active",
                         "course_ids": [course["id"]]}  # fmt: skip


def test_the_worker_keeps_approved_instructors_from_identity(client, settings, amqp_url):
    consumer = Consumer(settings, SERVICE.topology(settings), SERVICE.processor(SERVICE.runtime(settings)))
    worker = threading.Thread(target=consumer.run, daemon=True)
    worker.start()
    try:
        wait_until(consumer.connected.is_set)
        user = str(uuid.uuid4())
        data = {"user_id": user, "org_id": "org-9", "status": "approved", "changed_at": format_time(datetime.now(UTC))}
        event = Event(type="InstructorStatusChanged", data=data, orgid="org-9", source="/identity")
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        connection.channel().basic_publish(settings.exchange, "identity.InstructorStatusChanged", event.to_json())
        connection.close()
        engine = make_engine(settings.database_url)
        query = select(Instructor.status).where(Instructor.user_id == user)
        with make_session_factory(engine)() as session:
            wait_until(lambda: session.scalar(query.execution_options(populate_existing=True)) == "approved")
        engine.dispose()
        course = call(client, "post", "/v1/courses", 201, json={"title": "Cohort course"})
        body = {"title": "Group", "course_ids": [course["id"]], "starts_on": "2027-01-01", "ends_on": "2027-02-01",
                "seats": 5, "instructor_ids": [user]}  # fmt: skip
        assert call(client, "post", "/v1/cohorts", 201, json=body)["instructor_ids"] == [user]
    finally:
        consumer.stop()
        worker.join(timeout=10)
