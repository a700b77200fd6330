"""The suite's RabbitMQ users, least privilege: one per service and one per outside publisher.

The users and their permission regexes are in ``deploy/rabbitmq/users.json``; ``<exchange>`` and
``<prefix>`` in a pattern stand for the deployment's ``LMS_EXCHANGE`` and ``LMS_QUEUE_PREFIX``.
A service's user may configure, read and write only its own queues and the events exchanges,
and publish (topic permissions) only routing keys of its own domain; billing and HR may only
publish ``billing.*`` / ``hr.*`` to the events exchange.

``python -m lms_common.broker_users apply`` creates the vhost and the users (passwords from
``LMS_BROKER_<USER>_PASSWORD``, else generated and kept in ``--passwords``), sets their
permissions, and prints each service's ``LMS_<SERVICE>_AMQP_URL``: one definitions import,
through the management HTTP API when ``--api`` is given, else through ``rabbitmqctl`` on this
machine. ``remove`` deletes the users again.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

from lms_common.config import DEFAULT_AMQP_URL, DEFAULT_EXCHANGE

DEFAULT_DEFINITIONS = Path("deploy/rabbitmq/users.json")


@dataclass(frozen=True)
class BrokerUser:
    name: str
    service: str | None
    configure: str
    write: str
    read: str
    topic_write: str
    topic_read: str


def load(path: Path, *, exchange: str = DEFAULT_EXCHANGE, queue_prefix: str = "") -> list[BrokerUser]:
    """The users of the definitions file, with the deployment's exchange and queue prefix filled in."""
    document = json.loads(path.read_text())

    def fill(pattern: str) -> str:
        return pattern.replace("<exchange>", re.escape(exchange)).replace("<prefix>", re.escape(queue_prefix))

    return [
        BrokerUser(
            name=name,
            service=spec.get("service"),
            configure=fill(spec["configure"]),
            write=fill(spec["write"]),
            read=fill(spec["read"]),
            topic_write=fill(spec["topic_write"]),
            topic_read=fill(spec["topic_read"]),
        )
        for name, spec in document["users"].items()
    ]


def password_variable(user: str) -> str:
    """``lms-billing`` -> ``LMS_BROKER_LMS_BILLING_PASSWORD``."""
    return "LMS_BROKER_" + re.sub(r"[^A-Za-z0-9]", "_", user).upper() + "_PASSWORD"


def service_amqp_url(base_url: str, user: str, password: str, vhost: str) -> str:
    """``base_url`` with this user, password and vhost."""
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme or "amqp", netloc, "/" + quote(vhost, safe=""), parts.query, ""))


def password_hash(password: str) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(
    users: Sequence[BrokerUser],
    *,
    vhost: str,
    exchange: str,
    passwords: Mapping[str, str],
    user_prefix: str = "",
) -> dict[str, Any]:
    """A RabbitMQ definitions document: the vhost, the users (password hashes only) and their
    permissions and topic permissions. Importing it again changes nothing but the hashes' salt."""
    names = {user.name: user_prefix + user.name for user in users}
    return {
        "vhosts": [{"name": vhost}],
        "users": [
            {
                "name": names[user.name],
                "password_hash": password_hash(passwords[user.name]),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
            }
            for user in users
        ],
        "permissions": [
            {"user": names[u.name], "vhost": vhost, "configure": u.configure, "write": u.write, "read": u.read}
            for u in users
        ],
        "topic_permissions": [
            {"user": names[u.name], "vhost": vhost, "exchange": exchange, "write": u.topic_write, "read": u.topic_read}
            for u in users
        ],
    }


class Broker(Protocol):
    def import_definitions(self, document: Mapping[str, Any]) -> None: ...
    def delete_users(self, names: Sequence[str]) -> None: ...
    def delete_vhost(self, vhost: str) -> None: ...


class Rabbitmqctl:
    """rabbitmqctl on this machine (needs the node's Erlang cookie, as root or rabbitmq).

    Everything goes in one ``import_definitions`` (passwords only as salted hashes, never on a
    command line), since each rabbitmqctl run starts an Erlang VM.
    """

    def __init__(self, command: str = "rabbitmqctl"):
        self.command = command

    def _run(self, *args: str, stdin: str | None = None, check: bool = True) -> int:
        done = subprocess.run(
            [self.command, "-q", *args], input=stdin, text=True, check=check, capture_output=True, timeout=120
        )
        return done.returncode

    def import_definitions(self, document: Mapping[str, Any]) -> None:
        self._run("import_definitions", "--format", "json", stdin=json.dumps(document))  # from stdin

    def delete_users(self, names: Sequence[str]) -> None:
        if not names:
            return
        quoted = ", ".join('<<"' + name.replace("\\", "").replace('"', "") + '">>' for name in names)
        expression = f'[rabbit_auth_backend_internal:delete_user(U, <<"lms">>) || U <- [{quoted}]], ok.'
        if self._run("eval", expression, check=False) != 0:  # an older node: one at a time
            for name in names:
                self._run("delete_user", name, check=False)

    def delete_vhost(self, vhost: str) -> None:
        self._run("delete_vhost", vhost, check=False)


class ManagementApi:
    """The management plugin's HTTP API (``http://host:15672``), as an administrator."""

    def __init__(self, url: str, username: str, password: str):
        self.url = url.rstrip("/")
        self.auth = base64.b64encode(f"{username}:{password}".encode()).decode()

    def _call(self, method: str, path: str, body: Any = None, *, missing_ok: bool = False) -> None:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}/api/{path}", data=data, method=method)  # noqa: S310
        request.add_header("Authorization", f"Basic {self.auth}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30):  # noqa: S310 - the operator's broker
                pass
        except urllib.error.HTTPError as exc:
            if not (missing_ok and exc.code == 404):
                raise

    def import_definitions(self, document: Mapping[str, Any]) -> None:
        self._call("POST", "definitions", document)

    def delete_users(self, names: Sequence[str]) -> None:
        self._call("POST", "users/bulk-delete", {"users": list(names)})

    def delete_vhost(self, vhost: str) -> None:
        self._call("DELETE", f"vhosts/{quote(vhost, safe='')}", missing_ok=True)


def apply(
    broker: Broker,
    users: Sequence[BrokerUser],
    *,
    vhost: str,
    exchange: str,
    passwords: Mapping[str, str],
    user_prefix: str = "",
) -> dict[str, str]:
    """Create the vhost and every user with its permissions; returns user name -> password."""
    given = {user.name: passwords.get(user.name) or secrets.token_urlsafe(24) for user in users}
    document = definitions(users, vhost=vhost, exchange=exchange, passwords=given, user_prefix=user_prefix)
    broker.import_definitions(document)
    return given


def remove(broker: Broker, users: Sequence[BrokerUser], *, user_prefix: str = "") -> None:
    broker.delete_users([user_prefix + user.name for user in users])


def service_environment(
    users: Sequence[BrokerUser], passwords: Mapping[str, str], base_url: str, vhost: str, user_prefix: str = ""
) -> dict[str, str]:
    """``LMS_<SERVICE>_AMQP_URL`` for every service user."""
    return {
        f"LMS_{user.service.upper()}_AMQP_URL": service_amqp_url(
            base_url, user_prefix + user.name, passwords[user.name], vhost
        )
        for user in users
        if user.service
    }


def _broker(args: argparse.Namespace) -> Broker:
    if args.api:
        username, _, password = (args.admin or "guest:guest").partition(":")
        return ManagementApi(args.api, username, password)
    return Rabbitmqctl()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lms_common.broker_users", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("apply", "remove", "show"))
    parser.add_argument("--definitions", type=Path, default=DEFAULT_DEFINITIONS)
    parser.add_argument("--vhost", default="/")
    parser.add_argument("--exchange", default=os.environ.get("LMS_EXCHANGE") or DEFAULT_EXCHANGE)
    parser.add_argument("--queue-prefix", default=os.environ.get("LMS_QUEUE_PREFIX", ""))
    parser.add_argument("--user-prefix", default="", help="prepended to every user name")
    parser.add_argument("--api", help="management API URL, e.g. http://127.0.0.1:15672 (else rabbitmqctl)")
    parser.add_argument("--admin", help="user:password of a management API administrator")
    parser.add_argument("--amqp-url", default=os.environ.get("LMS_AMQP_URL") or DEFAULT_AMQP_URL)
    parser.add_argument("--passwords", type=Path, help="JSON file keeping generated passwords (mode 0600)")
    args = parser.parse_args(argv)
    users = load(args.definitions, exchange=args.exchange, queue_prefix=args.queue_prefix)
    if args.command == "show":
        print(json.dumps([user.__dict__ for user in users], indent=2))
        return 0
    if args.command == "remove":
        remove(_broker(args), users, user_prefix=args.user_prefix)
        return 0
    kept = json.loads(args.passwords.read_text()) if args.passwords and args.passwords.exists() else {}
    passwords = {user.name: os.environ.get(password_variable(user.name)) or kept.get(user.name, "") for user in users}
    given = apply(
        _broker(args),
        users,
        vhost=args.vhost,
        exchange=args.exchange,
        passwords=passwords,
        user_prefix=args.user_prefix,
    )
    if args.passwords:
        args.passwords.write_text(json.dumps(given, indent=2))
        args.passwords.chmod(0o600)
    for name, value in service_environment(users, given, args.amqp_url, args.vhost, args.user_prefix).items():
        print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
