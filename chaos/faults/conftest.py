"""The fault suite: the whole LMS as separate processes on a private PostgreSQL cluster and a
private RabbitMQ node (reached through a TCP proxy that can cut and slow connections), so that
restarting or killing them never touches the machine's shared servers.

``CHAOS_SCALE`` (default 1) multiplies every count: CI runs ``CHAOS_SCALE=0.1``.
``LMS_E2E_PORT_BASE`` (default 23000) places every port: APIs +1..+5, worker metrics +101..,
relay metrics +201.., PostgreSQL +900, RabbitMQ +700 (and +701 for Erlang distribution), the
proxy +710.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent.parent / "tests-e2e")]

from harness import Suite, remove_suite, start_suite
from infra import PrivatePostgres, PrivateRabbit
from knobs import FIGURES, HEARTBEAT_SECONDS, PORT_BASE, SCALE
from lms import Lms
from proxy import Proxy


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    width = max(len(fault) for fault, _, _ in FIGURES)
    terminalreporter.section(f"fault suite (CHAOS_SCALE={SCALE:g})")
    terminalreporter.write_line(f"{'fault'.ljust(width)} | result | figures")
    terminalreporter.write_line(f"{'-' * width}-|--------|--------")
    for fault, figure, verdict in FIGURES:
        terminalreporter.write_line(f"{fault.ljust(width)} | {verdict.ljust(6)} | {figure}")


# Module scope: the servers and the suite stop before any other suite in the run (attacks) starts.
@pytest.fixture(scope="module")
def rabbit() -> Iterator[PrivateRabbit]:
    node = PrivateRabbit(PORT_BASE + 700, f"lms-chaos-{uuid.uuid4().hex[:6]}@localhost")
    try:
        node.start()
        yield node
    finally:
        node.remove()


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres(PORT_BASE + 900)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="module")
def proxy(rabbit: PrivateRabbit) -> Iterator[Proxy]:
    running = Proxy(PORT_BASE + 710, rabbit.port).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def suite(
    tmp_path_factory: pytest.TempPathFactory, rabbit: PrivateRabbit, postgres: PrivatePostgres, proxy: Proxy
) -> Iterator[Suite]:
    env = {
        "LMS_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        "LMS_CONSUMER_RETRY_BASE_SECONDS": "0.5",
        "LMS_LOG_LEVEL": "WARNING",
    }
    running = start_suite(
        tmp_path_factory.mktemp("chaos"),
        amqp_url=f"amqp://guest:guest@127.0.0.1:{proxy.listen_port}/%2F",
        admin_database_url=postgres.url,
        port_base=PORT_BASE,
        extra_env=env,
        mode="processes",
    )
    try:
        yield running
    finally:
        remove_suite(running, postgres.url)


@pytest.fixture(scope="module")
def lms(suite: Suite, rabbit: PrivateRabbit) -> Iterator[Lms]:
    driver = Lms(suite, rabbit.ctl)
    deadline = time.monotonic() + 120
    while not driver.live_queues() and time.monotonic() < deadline:  # workers declare their queues
        time.sleep(1)
    yield driver
    for engine in driver.engines.values():
        engine.dispose()
