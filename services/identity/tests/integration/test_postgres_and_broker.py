"""identity on PostgreSQL and RabbitMQ: the OAuth flows, provisioning, and a disabled user's
token refused by another service within five seconds, through the real bus."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from sqlalchemy import func, select

from identity.handlers import HANDLERS
from identity.models import User
from identity.service import SERVICE
from lms_common import migrations
from lms_common.auth import InvalidToken, JWKSCache
from lms_common.consumer import Consumer
from lms_common.contracts import SUITE_EVENTS
from lms_common.envelope import Event
from lms_common.messaging import ConfirmingPublisher
from lms_common.processing import Delivery, MessageProcessor
from lms_common.relay import Relay
from lms_common.service import ServiceDefinition
from lms_common.testing import wait_until


def test_code_flow_refresh_reuse_and_revocation_on_postgres(world) -> None:
    world.person("ada@example.com", "local_admin", at="EAST", descendants=True)
    client_id, secret = world.oauth_client()
    verifier, challenge = world.pkce()
    code = world.code_for(client_id, "ada@example.com", challenge)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": world.REDIRECT, "code_verifier": verifier}
    first = world.client.post("/oauth/token", data=data, auth=(client_id, secret)).json
    assert "identity:write" in first["scope"].split()
    second = world.client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=(client_id, secret),
    )
    assert second.status_code == 200
    reuse = world.client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=(client_id, secret),
    )
    assert reuse.json["error"] == "invalid_grant"
    world.client.post("/oauth/revoke", data={"token": second.json["access_token"]}, auth=(client_id, secret))
    assert world.client.post(
        "/oauth/introspect", data={"token": second.json["access_token"]}, auth=(client_id, secret)
    ).json == {"active": False}


def test_employee_onboarded_twice_on_postgres(world) -> None:
    processor = MessageProcessor("identity", world.app.extensions["lms"].session_factory, HANDLERS, SUITE_EVENTS)
    data = {
        "employee_id": "E-1",
        "email": "g@example.com",
        "first_name": "G",
        "last_name": "H",
        "start_date": "2026-12-01",
        "location_code": "NYC",
    }
    for event_id in ("a", "a", "b"):
        event = Event(type="EmployeeOnboarded", data=data, orgid=world.org_id, source="/hr", id=event_id)
        processor.process([Delivery(body=event.to_json(), routing_key="hr.EmployeeOnboarded", message_id=event_id)])
    with world.session() as session:
        assert session.scalar(select(func.count()).select_from(User).where(User.email_key == "g@example.com")) == 1


def test_a_pending_seat_holder_is_provisioned_once_on_postgres(world) -> None:
    processor = MessageProcessor("identity", world.app.extensions["lms"].session_factory, HANDLERS, SUITE_EVENTS)
    holders = [{"email": "seat@example.com", "user_id": None, "status": "pending"}]
    data = {
        "grant_id": "8c0f4b6e-36a3-4a53-9a5e-0d6c3f1c2b11",
        "org_id": world.org_id,
        "product_id": "5e1b6a0c-9f43-4b8e-a1c6-2a9c0f4e7d22",
        "purchaser_user_id": None,
        "seats_total": 3,
        "seats_used": 1,
        "holders": holders,
        "assigned_at": "2026-11-23T10:00:00Z",
        "actor_id": None,
        "cause": "api",
    }
    for event_id in ("s1", "s1", "s2"):
        event = Event(type="SeatsAssigned", data=data, orgid=world.org_id, source="/enrollment", id=event_id)
        processor.process([Delivery(body=event.to_json(), routing_key="enrollment.SeatsAssigned", message_id=event_id)])
    with world.session() as session:
        query = select(func.count()).select_from(User).where(User.email_key == "seat@example.com")
        assert session.scalar(query) == 1
    provisioned = [e["data"] for e in world.events("UserProvisioned") if e["data"]["cause"] == "SeatsAssigned"]
    assert [p["created"] for p in provisioned] == [True, False]


def test_disabled_user_refused_by_another_service_within_5_seconds(world, broker_settings, tmp_path) -> None:
    # Another service: its own database and queue; it only has the deny-list handlers.
    other = ServiceDefinition(name="otherservice", title="another service", migrations=SERVICE.migrations)
    other_url = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    migrations.upgrade(SERVICE.migrations, other_url, "0001")
    other_settings = replace(broker_settings("otherservice", other_url), issuer=world.settings.issuer)
    other.declare_topology(other_settings)
    rt = other.runtime(
        other_settings,
        key_source=JWKSCache("http://identity", 0, fetch=lambda _: world.client.get("/.well-known/jwks.json").json),
    )
    consumer = Consumer(other_settings, other.topology(other_settings), other.processor(rt))
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    publisher = ConfirmingPublisher(world.settings.amqp_url, world.settings.exchange, app_id="identity")
    relay = Relay("identity", world.app.extensions["lms"].session_factory, publisher, batch_size=100, poll_seconds=0.1)
    try:
        user_id, headers = world.person("ada@example.com", "student")
        token = headers["Authorization"].split()[1]
        assert rt.verifier.verify(token).subject == user_id
        admin = {"Authorization": f"Bearer {world.admin_token()}"}
        assert world.client.post(f"/v1/users/{user_id}/disable", headers=admin).status_code == 200
        disabled_at = time.monotonic()

        def refused() -> bool:
            relay.relay_once()
            try:
                rt.verifier.verify(token)
            except InvalidToken:
                return True
            return False

        wait_until(refused, timeout=5, interval=0.1)
        assert time.monotonic() - disabled_at < 5
    finally:
        consumer.stop()
        thread.join(timeout=10)
        publisher.close()
        rt.engine.dispose()
