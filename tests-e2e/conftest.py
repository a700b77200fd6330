"""The whole suite as real processes, started the way `make run` starts it, on PostgreSQL and
RabbitMQ, driven only through HTTP and AMQP (see harness.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the tests import the harness

from harness import RELAYS, ROOT, SERVICES, WORKERS, Suite, group_alive, remove_suite, start_suite, stop_suite

__all__ = ["RELAYS", "ROOT", "SERVICES", "WORKERS", "Suite", "group_alive", "stop_suite"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stops_suite: stops the session's suite, so it runs after every other test")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that stop the suite go last, whatever the order of files and options."""
    items.sort(key=lambda item: item.get_closest_marker("stops_suite") is not None)


@pytest.fixture(scope="session")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    running = start_suite(tmp_path_factory.mktemp("suite"))
    try:
        yield running
    finally:
        remove_suite(running)
