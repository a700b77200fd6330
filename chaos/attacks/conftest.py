"""The attack suite: the whole suite started as real processes (tests-e2e/harness.py), each
service on its own least-privilege broker user in a vhost of this run, attacked only through
HTTP and AMQP. Every check is recorded and printed as one table at the end.

One thing comes from outside HTTP and AMQP: identity's active signing key, read from its
database. Tokens that differ from a genuine one in exactly one respect (expired, wrong
audience, ...) must carry a good signature, or they would be refused for the wrong reason.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pika
import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests-e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the attacks' helpers

from attack_world import FAILED_LOGINS_PER_ADDRESS, LEDGER, TOKEN_RATE_PER_MINUTE, Check, Ledger, World
from harness import Suite, remove_suite, start_suite

from lms_common import broker_users
from lms_common.testing import DEFAULT_TEST_AMQP_URL

# The fault suite uses LMS_E2E_PORT_BASE itself, up to +910 (its private RabbitMQ at +700 and
# +701, the proxy at +710, PostgreSQL at +900); the attack suite's APIs, worker and relay
# metrics (+1..+205 of its own base) sit 1,000 ports above it, clear of all of them.
PORT_OFFSET = 1000


STARTED = time.monotonic()


@pytest.fixture(scope="session")
def ledger() -> Ledger:
    return LEDGER


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Each test makes many checks and records them all; it fails if any did not hold."""
    start = len(LEDGER.checks)
    result = yield
    failures = LEDGER.failures_since(start)
    if failures:
        raise AssertionError("\n".join(failures[:40]))
    return result


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """One row per kind of attack; every single check goes to var/chaos-attacks.txt."""
    if not LEDGER.checks:
        return
    write = terminalreporter.write_line
    terminalreporter.section("attack summary")
    kinds: dict[tuple[str, str], list[Check]] = {}
    for check in LEDGER.checks:
        kinds.setdefault((check.area, check.kind), []).append(check)
    width = min(70, max(len(kind) for _, kind in kinds))
    write(f"{'area':<12} {'attack':<{width}} {'checks':>6} {'failed':>6}  expected answer")
    for (area, kind), checks in kinds.items():
        failed = sum(not c.ok for c in checks)
        expected = "; ".join(sorted({c.expected for c in checks}))
        write(f"{area:<12} {kind[:width]:<{width}} {len(checks):>6} {failed:>6}  {expected}")
    total, failed = len(LEDGER.checks), sum(not c.ok for c in LEDGER.checks)
    write(f"{'total':<12} {'':<{width}} {total:>6} {failed:>6}  in {time.monotonic() - STARTED:.0f} s")
    for check in LEDGER.checks:
        if not check.ok:
            write(f"FAIL {check.area}: {check.attack}: expected {check.expected}, got {check.got}")
    detail = config.rootpath / "var" / "chaos-attacks.txt"
    detail.parent.mkdir(exist_ok=True)
    lines = [
        f"{'ok' if c.ok else 'FAIL':<4} {c.area:<12} {c.attack}  want {c.expected}  got {c.got}" for c in LEDGER.checks
    ]
    detail.write_text("\n".join(lines) + "\n")
    write(f"every check: {detail}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Rate-limit attacks exhaust the token endpoint for a minute: they go last."""
    items.sort(key=lambda item: item.get_closest_marker("exhausts_limits") is not None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "exhausts_limits: runs after every other attack")


# --- the broker: a vhost of this run with the suite's users ----------------------------------


@dataclass
class Broker:
    vhost: str
    user_prefix: str
    passwords: dict[str, str]
    admin_url: str

    def url(self, user: str) -> str:
        """The AMQP URL of one of deploy/rabbitmq/users.json's users in this vhost."""
        return broker_users.service_amqp_url(self.admin_url, self.user_prefix + user, self.passwords[user], self.vhost)


def _vhost_url(base: str, vhost: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), parts.query, ""))


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker | None]:
    """The suite's broker users (deploy/rabbitmq/users.json) in a vhost of this run, through
    rabbitmqctl; None where rabbitmqctl cannot be run (the broker attacks are then skipped)."""
    base = os.environ.get("LMS_TEST_AMQP_URL", DEFAULT_TEST_AMQP_URL)
    if (
        shutil.which("rabbitmqctl") is None
        or subprocess.run(["rabbitmqctl", "-q", "status"], capture_output=True, timeout=60, check=False).returncode
    ):
        yield None
        return
    run = uuid.uuid4().hex[:6]
    vhost, prefix = f"lms-attack-{run}", f"lms-attack-{run}-"
    admin = broker_users.Rabbitmqctl()
    users = broker_users.load(ROOT / "deploy/rabbitmq/users.json", exchange="lms.events", queue_prefix="")
    passwords = {user.name: secrets.token_urlsafe(24) for user in users}
    document = broker_users.definitions(
        users, vhost=vhost, exchange="lms.events", passwords=passwords, user_prefix=prefix
    )
    # The harness's own connection (clean-up) uses the test broker user, here in this vhost.
    test_user = unquote(urlsplit(base).username or "guest")
    document["permissions"].append({"user": test_user, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"})
    try:
        admin.import_definitions(document)
        found = Broker(vhost, prefix, passwords, _vhost_url(base, vhost))
        _wait_for_login(found.url("lms-hr"))
        yield found
    finally:
        broker_users.remove(admin, users, user_prefix=prefix)
        admin.delete_vhost(vhost)


def _wait_for_login(url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            pika.BlockingConnection(pika.URLParameters(url)).close()
            return
        except pika.exceptions.AMQPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="session")
def suite(tmp_path_factory: pytest.TempPathFactory, broker: Broker | None) -> Iterator[Suite]:
    base = int(os.environ.get("LMS_E2E_PORT_BASE", "23000")) + PORT_OFFSET
    extra = {
        "LMS_IDENTITY_TOKEN_RATE_PER_MINUTE": str(TOKEN_RATE_PER_MINUTE),
        "LMS_IDENTITY_FAILED_LOGINS_PER_ADDRESS": str(FAILED_LOGINS_PER_ADDRESS),
    }
    amqp_url = None
    if broker is not None:
        users = broker_users.load(ROOT / "deploy/rabbitmq/users.json")
        extra |= broker_users.service_environment(
            users, broker.passwords, broker.admin_url, broker.vhost, broker.user_prefix
        )
        extra |= {"LMS_EXCHANGE": "lms.events", "LMS_QUEUE_PREFIX": ""}
        amqp_url = broker.admin_url
    running = start_suite(tmp_path_factory.mktemp("attacks"), amqp_url=amqp_url, port_base=base, extra_env=extra)
    try:
        yield running
    finally:
        remove_suite(running)


# --- people and tokens --------------------------------------------------------------------------


def _signing_key(suite: Suite) -> dict[str, Any]:
    engine = sa.create_engine(suite.env["LMS_IDENTITY_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            row = connection.execute(
                sa.text("SELECT private_jwk FROM signing_keys WHERE status = 'active' ORDER BY created_at DESC")
            ).first()
    finally:
        engine.dispose()
    assert row is not None, "identity has no active signing key"
    value = row[0]
    return dict(json.loads(value) if isinstance(value, str) else value)


@pytest.fixture(scope="session")
def world(suite: Suite) -> World:
    boot = suite.bootstrap()
    token = suite.bootstrap_token()
    admin = {"Authorization": f"Bearer {token}"}
    found = World(suite, boot, admin, _signing_key(suite))
    from attack_seed import seed

    seed(found)
    return found
