from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def world(postgres_url: str, tmp_path: Path, broker_settings, world_factory):  # type: ignore[no-untyped-def]
    """A bootstrapped identity on a fresh PostgreSQL database, with its own names on the broker."""
    return world_factory(postgres_url, tmp_path, broker_settings("identity", postgres_url))
