"""The broker users' definitions and what `python -m lms_common.broker_users apply` makes of them."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

from lms_common.broker_users import BrokerUser, apply, load, remove, service_amqp_url, service_environment

DEFINITIONS = Path(__file__).resolve().parents[4] / "deploy/rabbitmq/users.json"
SERVICES = {"identity", "catalog", "enrollment", "automation", "reporting"}


class RecordingBroker:
    def __init__(self) -> None:
        self.imported: list[dict[str, Any]] = []
        self.deleted: list[str] = []

    def import_definitions(self, document: dict[str, Any]) -> None:
        self.imported.append(document)

    def delete_users(self, names: list[str]) -> None:
        self.deleted.extend(names)

    def delete_vhost(self, vhost: str) -> None:
        self.deleted.append(f"vhost {vhost}")


def users() -> dict[str, BrokerUser]:
    return {user.name: user for user in load(DEFINITIONS, exchange="lms.events", queue_prefix="t1.")}


def test_every_service_and_outside_publisher_has_a_user() -> None:
    found = users()
    assert {user.service for user in found.values() if user.service} == SERVICES
    assert {"lms-billing", "lms-hr"} <= set(found)


def test_a_service_configures_only_its_own_queues_and_the_events_exchanges() -> None:
    enrollment = users()["lms-enrollment"]
    allowed = re.compile(enrollment.configure)
    assert all(allowed.match(name) for name in ("lms.events", "lms.events.dead", "t1.enrollment", "t1.enrollment.dead"))
    assert not any(allowed.match(name) for name in ("t1.identity", "lms.eventsX", "enrollment", "amq.default"))


def test_outside_publishers_only_write_their_own_routing_keys_to_the_exchange() -> None:
    billing = users()["lms-billing"]
    assert re.match(billing.write, "lms.events") and not re.match(billing.write, "lms.events.dead")
    assert not re.match(billing.write, "amq.default")
    assert re.match(billing.topic_write, "billing.InvoicePaid")
    assert not re.match(billing.topic_write, "identity.UserDisabled")
    assert not re.match(billing.read, "t1.enrollment") and not re.match(billing.configure, "lms.events")


def test_reporting_cannot_publish_on_the_exchange() -> None:
    assert not re.match(users()["lms-reporting"].write, "lms.events")


def test_apply_imports_the_vhost_and_prefixed_users_with_hashed_passwords() -> None:
    broker = RecordingBroker()
    every = list(users().values())
    passwords = apply(broker, every, vhost="v1", exchange="lms.events", passwords={"lms-hr": "given"}, user_prefix="p-")
    [document] = broker.imported
    assert document["vhosts"] == [{"name": "v1"}]
    hr = next(user for user in document["users"] if user["name"] == "p-lms-hr")
    raw = base64.b64decode(hr["password_hash"])
    assert raw[4:] == hashlib.sha256(raw[:4] + b"given").digest()  # rabbit_password_hashing_sha256
    assert "given" not in str(document)
    assert {"user": "p-lms-hr", "vhost": "v1", "exchange": "lms.events", "write": "^hr\\.", "read": "^$"} in document[
        "topic_permissions"
    ]
    assert len(passwords["lms-billing"]) >= 24
    remove(broker, every, user_prefix="p-")
    assert set(broker.deleted) == {f"p-{user.name}" for user in every}


def test_service_environment_gives_each_service_its_url() -> None:
    every = list(users().values())
    passwords = {user.name: "pw" for user in every}
    env = service_environment(every, passwords, "amqp://guest:guest@broker:5672/%2F", "v1", "p-")
    assert set(env) == {f"LMS_{service.upper()}_AMQP_URL" for service in SERVICES}
    assert env["LMS_ENROLLMENT_AMQP_URL"] == "amqp://p-lms-enrollment:pw@broker:5672/v1"


def test_service_url_quotes_the_password_and_vhost() -> None:
    assert service_amqp_url("amqp://g:g@h:5672/%2F", "u", "a/b@c", "/") == "amqp://u:a%2Fb%40c@h:5672/%2F"


def test_management_api_imports_definitions_and_bulk_deletes_users() -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from lms_common.broker_users import ManagementApi

    seen: list[tuple[str, str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def answer(self, status: int) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append((self.command, self.path, json.loads(self.rfile.read(length)) if length else None))
            self.send_response(status)
            self.end_headers()

        def do_POST(self) -> None:
            self.answer(204)

        def do_DELETE(self) -> None:
            self.answer(404)

        def log_message(self, *_args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = ManagementApi(f"http://127.0.0.1:{server.server_address[1]}", "admin", "secret")
        apply(api, [users()["lms-hr"]], vhost="/", exchange="lms.events", passwords={"lms-hr": "pw"})
        remove(api, [users()["lms-hr"]])
        api.delete_vhost("gone")  # an absent vhost is no error
    finally:
        server.shutdown()
        server.server_close()
    assert [(method, path) for method, path, _ in seen] == [
        ("POST", "/api/definitions"),
        ("POST", "/api/users/bulk-delete"),
        ("DELETE", "/api/vhosts/gone"),
    ]
    assert seen[0][2]["permissions"] == [
        {"user": "lms-hr", "vhost": "/", "configure": "^$", "write": "^lms\\.events$", "read": "^$"}
    ]
    assert seen[1][2] == {"users": ["lms-hr"]}
